//! Three-step workflows per second through the whole engine: runs started (each inserting its
//! run and three step rows), enqueued on the Redis queue, driven by one worker at a given
//! concurrency, every step recorded (running, then succeeded with its output) in PostgreSQL.
//! Run by `bench/workflows.sh`.

use std::{sync::Arc, time::Instant};

// The allocator of the autoglue binary, whose workers this measures.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use entity::{enums::WorkflowStatus, workflow_runs};
use migration::{Migrator, MigratorTrait};
use sea_orm::{
    ColumnTrait, ConnectOptions, ConnectionTrait, Database, EntityTrait, PaginatorTrait,
    QueryFilter,
};
use workflows::{
    Engine, EngineSettings, Registry, StartRun,
    runtime::{RedisRunQueue, unique_worker_name},
    testing,
};

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_owned())
}

/// The machine's busy, idle and stolen clock ticks (`/proc/stat`).
fn machine_ticks() -> Option<(u64, u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let f: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let busy = f[0] + f[1] + f[2] + f[5] + f[6];
    Some((busy, f[3] + f[4], *f.get(7)?))
}

/// This process's user and system clock ticks.
fn own_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let postgres = arg("--postgres", "postgres://postgres@127.0.0.1:5432/postgres");
    let redis = arg("--redis", "redis://127.0.0.1:6379");
    let runs: usize = arg("--runs", "2000").parse()?;
    let concurrency: usize = arg("--concurrency", "50").parse()?;

    let name = format!("ag_bench_flows_{}", std::process::id());
    let admin = Database::connect(&postgres).await?;
    admin
        .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
        .await?;
    let mut url = url::Url::parse(&postgres)?;
    url.set_path(&name);
    let mut options = ConnectOptions::new(url.to_string());
    options
        // The engine batches its statements: a few connections are enough whatever the
        // concurrency (and PostgreSQL allows 100 by default).
        .max_connections(32)
        // As the autoglue binary's pool (api/src/db.rs): no ping per statement.
        .test_before_acquire_if_idle_for(std::time::Duration::from_secs(1))
        .sqlx_logging(false);
    let db = Database::connect(options).await?;
    Migrator::up(&db, None).await?;

    // Room for every event of the runs, so the counting subscriber never skips one.
    let bus = bus::EventBus::in_process_with_buffer(16 * runs + 1024);
    let namespace = format!("ag_bench_flows_{}", std::process::id());
    let queue =
        RedisRunQueue::connect(&redis, &namespace, std::time::Duration::from_secs(30)).await?;
    let mut registry = Registry::new();
    testing::register(&mut registry);
    let engine = Engine::new(
        db.clone(),
        bus.clone(),
        registry,
        Arc::new(queue.clone()),
        EngineSettings::default(),
    );

    let began = Instant::now();
    // The last run's end is seen as BullMQ's benchmark sees its last job's: by an event of
    // this process (the engine announces a run's end once it is committed), not by polling
    // the database, which would load the PostgreSQL the engine writes to. A database count
    // every half second stays as a fallback, in case the subscriber lagged and skipped events.
    let mut events = Box::pin(bus.subscribe());
    let (all_done, finished) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        use futures_util::StreamExt as _;
        let mut succeeded = std::collections::HashSet::new();
        while let Some(event) = events.next().await {
            if let bus::Event::WorkflowRunUpdated {
                run_id,
                status: WorkflowStatus::Succeeded,
                ..
            } = event
                && succeeded.insert(run_id)
                && succeeded.len() == runs
            {
                let _ = all_done.send(());
                return;
            }
        }
    });
    let starts = futures_util::future::join_all((0..runs).map(|_| {
        engine.start(StartRun {
            kind: testing::THREE_STEPS.into(),
            input: serde_json::json!({}),
            ..Default::default()
        })
    }))
    .await;
    for s in starts {
        s?;
    }
    let started = began.elapsed();

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(queue.clone().run_workers(
        engine.clone(),
        unique_worker_name("bench"),
        concurrency,
        async move {
            let _ = stopped.await;
        },
    ));
    let processing = Instant::now();
    let (machine0, own0) = (machine_ticks(), own_ticks());
    let succeeded = || {
        workflow_runs::Entity::find()
            .filter(workflow_runs::Column::Status.eq(WorkflowStatus::Succeeded))
            .count(&db)
    };
    tokio::pin!(finished);
    loop {
        tokio::select! {
            _ = &mut finished => break,
            _ = tokio::time::sleep(std::time::Duration::from_millis(500)) => {
                if succeeded().await? as usize == runs {
                    break;
                }
            }
        }
    }
    let processed = processing.elapsed();
    let (machine1, own1) = (machine_ticks(), own_ticks());
    let total = began.elapsed();
    let _ = stop.send(());
    let _ = worker.await;
    let done = succeeded().await? as usize;
    anyhow::ensure!(done == runs, "{done} of {runs} runs succeeded");

    println!(
        "{runs} three-step runs: started (recorded + enqueued) in {:.2} s ({:.0} runs/s); \
         processed in {:.2} s ({:.0} runs/s, {:.0} steps/s); end to end {:.0} runs/s",
        started.as_secs_f64(),
        runs as f64 / started.as_secs_f64(),
        processed.as_secs_f64(),
        runs as f64 / processed.as_secs_f64(),
        3.0 * runs as f64 / processed.as_secs_f64(),
        runs as f64 / total.as_secs_f64(),
    );
    // Where the CPU went while processing (Linux; clock ticks of 10 ms): the whole machine
    // (this process, PostgreSQL and Redis share it) and this process alone.
    if let (Some(m0), Some(m1), Some(o0), Some(o1)) = (machine0, machine1, own0, own1) {
        let busy = m1.0 - m0.0;
        let all = busy + (m1.1 - m0.1);
        println!(
            "while processing: machine busy {:.0} % of {} cores (steal {} ticks); \
             per run {:.0} µs of CPU in all, {:.0} µs in this process",
            100.0 * busy as f64 / all.max(1) as f64,
            std::thread::available_parallelism().map_or(1, |n| n.get()),
            m1.2 - m0.2,
            busy as f64 * 10_000.0 / runs as f64,
            (o1 - o0) as f64 * 10_000.0 / runs as f64,
        );
    }

    db.close().await?;
    admin
        .execute_unprepared(&format!("DROP DATABASE \"{name}\" WITH (FORCE)"))
        .await?;
    let client = redis::Client::open(redis.as_str())?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{namespace}*"))
        .query_async(&mut conn)
        .await?;
    if !keys.is_empty() {
        let _: () = redis::cmd("DEL").arg(keys).query_async(&mut conn).await?;
    }
    Ok(())
}
