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

    let namespace = format!("ag_bench_flows_{}", std::process::id());
    let queue =
        RedisRunQueue::connect(&redis, &namespace, std::time::Duration::from_secs(30)).await?;
    let mut registry = Registry::new();
    testing::register(&mut registry);
    let engine = Engine::new(
        db.clone(),
        bus::EventBus::in_process(),
        registry,
        Arc::new(queue.clone()),
        EngineSettings::default(),
    );

    let began = Instant::now();
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
    loop {
        let done = workflow_runs::Entity::find()
            .filter(workflow_runs::Column::Status.eq(WorkflowStatus::Succeeded))
            .count(&db)
            .await? as usize;
        if done == runs {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let processed = processing.elapsed();
    let total = began.elapsed();
    let _ = stop.send(());
    let _ = worker.await;

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
