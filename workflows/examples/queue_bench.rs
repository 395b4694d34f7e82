//! No-op job throughput of the Redis queue (see `bench/queue.sh`): enqueue N jobs, then
//! process them with one worker at concurrency C, in this one process.
//!
//! ```text
//! queue_bench [--redis redis://127.0.0.1:6379] [--jobs 20000] [--concurrency 50] [--batch 50]
//! ```

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use apalis::layers::WorkerBuilderExt as _;
use apalis_core::{
    error::BoxDynError,
    task::data::Data,
    worker::{builder::WorkerBuilder, context::WorkerContext},
};
use redis::AsyncCommands as _;
use workflows::queue::redis::{Enqueue, QueueConfig, RedisQueue, connect, unique_worker_name};

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

struct Counter {
    done: AtomicU64,
    target: u64,
}

async fn noop(_job: u64, counter: Data<Arc<Counter>>, worker: WorkerContext) {
    if counter.done.fetch_add(1, Ordering::Relaxed) + 1 == counter.target {
        let _ = worker.stop();
    }
}

async fn delete_namespace(
    conn: &mut redis::aio::ConnectionManager,
    namespace: &str,
) -> Result<(), BoxDynError> {
    let keys: Vec<String> = {
        let mut iter = conn
            .scan_match::<_, String>(format!("{namespace}:*"))
            .await?;
        let mut keys = Vec::new();
        while let Some(k) = futures_util::StreamExt::next(&mut iter).await {
            keys.push(k?);
        }
        keys
    };
    for chunk in keys.chunks(500) {
        conn.del::<_, ()>(chunk).await?;
    }
    Ok(())
}

fn rate(n: u64, d: Duration) -> String {
    format!("{:.0}", n as f64 / d.as_secs_f64())
}

#[tokio::main]
async fn main() -> Result<(), BoxDynError> {
    let args: Vec<String> = std::env::args().collect();
    let redis_url = arg(&args, "--redis").unwrap_or_else(|| "redis://127.0.0.1:6379".into());
    let num = |name: &str, default: u64| -> u64 {
        arg(&args, name)
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let jobs = num("--jobs", 20_000);
    let concurrency = num("--concurrency", 50) as usize;
    let batch = num("--batch", 50) as usize;

    let namespace = format!("autoglue:bench:{}", uuid::Uuid::now_v7().simple());
    let mut conn = connect(&redis_url).await?;
    let config = QueueConfig::new("bench")
        .namespace(namespace.clone())
        .batch_size(batch);
    let queue = RedisQueue::<u64>::new(conn.clone(), config)?;

    let t0 = Instant::now();
    let created = queue
        .enqueue_many((0..jobs).map(|i| (i, Enqueue::new())))
        .await?;
    let enqueue = t0.elapsed();
    assert_eq!(created.len() as u64, jobs);

    let counter = Arc::new(Counter {
        done: AtomicU64::new(0),
        target: jobs,
    });
    let t1 = Instant::now();
    WorkerBuilder::new(unique_worker_name("bench").as_str())
        .backend(queue.clone())
        .data(counter.clone())
        .concurrency(concurrency)
        .build(noop)
        .run()
        .await?;
    let process = t1.elapsed();
    let counts = queue.admin().counts("bench").await?;
    delete_namespace(&mut conn, &namespace).await?;

    println!("jobs {jobs}, concurrency {concurrency}, batch {batch}");
    println!(
        "enqueue : {:>8.3} s  {:>7} jobs/s (enqueue_many, 500 per script call, pipelined)",
        enqueue.as_secs_f64(),
        rate(jobs, enqueue)
    );
    println!(
        "process : {:>8.3} s  {:>7} jobs/s (one worker)",
        process.as_secs_f64(),
        rate(jobs, process)
    );
    println!(
        "total   : {:>8.3} s  {:>7} jobs/s (end to end)",
        (enqueue + process).as_secs_f64(),
        rate(jobs, enqueue + process)
    );
    if counts.done != jobs || counter.done.load(Ordering::Relaxed) != jobs {
        return Err(format!(
            "expected {jobs} done, queue says {} and the handler ran {}",
            counts.done,
            counter.done.load(Ordering::Relaxed)
        )
        .into());
    }
    Ok(())
}
