//! A Redis queue worker process, for the crash test (`tests/redis_queue.rs`) and for trying
//! the queue by hand.
//!
//! ```text
//! queue_worker --redis redis://127.0.0.1:6379 --namespace autoglue:q --queue demo \
//!     [--lease-ms 30000] [--concurrency 10] [--batch 10] [--name worker]
//! ```
//!
//! It runs [`SlowJob`]s: each appends `"<id>:<attempt>:<pid>"` to the list
//! `<namespace>:probe:<queue>:started`, sleeps `sleep_ms`, then appends the same to
//! `…:finished`. It stops gracefully on Ctrl-C or SIGTERM.

use std::time::Duration;

use apalis::layers::WorkerBuilderExt as _;
use apalis_core::{
    error::BoxDynError,
    task::{attempt::Attempt, data::Data},
    worker::builder::WorkerBuilder,
};
use redis::AsyncCommands as _;
use serde::{Deserialize, Serialize};
use workflows::queue::redis::{QueueConfig, RedisQueue, connect, unique_worker_name};

/// The job this worker runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SlowJob {
    /// Caller's id of the job.
    pub id: u64,
    /// How long the job takes.
    pub sleep_ms: u64,
}

#[derive(Clone)]
struct Probe {
    conn: redis::aio::ConnectionManager,
    started: String,
    finished: String,
}

async fn run(job: SlowJob, attempt: Attempt, probe: Data<Probe>) -> Result<(), BoxDynError> {
    let mut conn = probe.conn.clone();
    let mark = format!("{}:{}:{}", job.id, attempt.current(), std::process::id());
    conn.rpush::<_, _, ()>(&probe.started, &mark).await?;
    tokio::time::sleep(Duration::from_millis(job.sleep_ms)).await;
    conn.rpush::<_, _, ()>(&probe.finished, &mark).await?;
    Ok(())
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

#[tokio::main]
async fn main() -> Result<(), BoxDynError> {
    let args: Vec<String> = std::env::args().collect();
    let redis_url = arg(&args, "--redis").unwrap_or_else(|| "redis://127.0.0.1:6379".into());
    let namespace = arg(&args, "--namespace").unwrap_or_else(|| "autoglue:q".into());
    let queue = arg(&args, "--queue").unwrap_or_else(|| "demo".into());
    let num = |name: &str, default: u64| -> u64 {
        arg(&args, name)
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let lease = Duration::from_millis(num("--lease-ms", 30_000));
    let concurrency = num("--concurrency", 10) as usize;
    let batch = num("--batch", 10) as usize;
    let name = unique_worker_name(&arg(&args, "--name").unwrap_or_else(|| "queue-worker".into()));

    let conn = connect(&redis_url).await?;
    let config = QueueConfig::new(queue.clone())
        .namespace(namespace.clone())
        .lease(lease)
        .batch_size(batch);
    let backend = RedisQueue::<SlowJob>::new(conn.clone(), config)?;
    let probe = Probe {
        conn,
        started: format!("{namespace}:probe:{queue}:started"),
        finished: format!("{namespace}:probe:{queue}:finished"),
    };
    eprintln!("queue_worker {name} on {namespace}:{{{queue}}}");
    WorkerBuilder::new(name.as_str())
        .backend(backend)
        .data(probe)
        .concurrency(concurrency.max(1))
        .build(run)
        .run_until(async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            tokio::select! {
                r = tokio::signal::ctrl_c() => r,
                _ = term.recv() => Ok(()),
            }
        })
        .await?;
    Ok(())
}
