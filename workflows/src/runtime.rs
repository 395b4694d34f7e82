//! Workers: apalis workers that take [`RunTask`]s off the job queue and hand them to the
//! [`Engine`]. One code path; the queue backend is chosen at start (apalis on SQLite for the
//! embedded default, our Redis queue in production).

use std::{sync::Arc, time::Duration};

use anyhow::Context as _;
use apalis::layers::WorkerBuilderExt;
use apalis_core::{
    backend::{TaskSink, ext::BackendExt, ext::poll_strategy::Strategy},
    error::BoxDynError,
    task::{builder::TaskBuilder, data::Data},
    worker::{builder::WorkerBuilder, context::WorkerContext},
};
use apalis_sqlite::{SqlitePool, SqliteStorage};
use chrono::{DateTime, Utc};
use futures_util::{FutureExt, future::BoxFuture};

use crate::{
    engine::{Engine, RunQueue, RunTask},
    queue::redis::{Enqueue, QueueAdmin, QueueConfig, RedisQueue},
};

/// The queue of workflow runs.
pub const RUN_QUEUE: &str = "workflow_runs";

pub use crate::queue::redis::unique_worker_name;

/// One apalis worker over `$backend` running [`drive`] `$concurrency` at a time until
/// `$shutdown` completes: the same for every backend. A macro, not a function, because
/// apalis' bounds on a backend differ in their associated types from one backend to another.
macro_rules! work {
    ($backend:expr, $engine:expr, $name:expr, $concurrency:expr, $shutdown:expr) => {
        WorkerBuilder::new($name.as_str())
            .backend($backend)
            .data($engine)
            .concurrency($concurrency.max(1))
            .build(drive)
            .run_until(async move {
                $shutdown.await;
                Ok::<(), std::io::Error>(())
            })
            .await
            .context("the workflow worker failed")
    };
}

/// Runs on apalis' SQLite storage, in the application's own SQLite database.
#[derive(Clone)]
pub struct SqliteRunQueue {
    storage: SqliteStorage<RunTask>,
}

impl SqliteRunQueue {
    /// Creates apalis' tables in `pool`'s database if needed.
    pub async fn setup(pool: &SqlitePool) -> anyhow::Result<Self> {
        Self::setup_with_lease(pool, Duration::from_secs(30)).await
    }

    /// As [`Self::setup`]; a worker that stops its heartbeats (it crashed) loses its runs to
    /// other workers after about `lease` (three missed heartbeats).
    pub async fn setup_with_lease(pool: &SqlitePool, lease: Duration) -> anyhow::Result<Self> {
        SqliteStorage::setup(pool)
            .await
            .context("creating the job queue tables in SQLite")?;
        let heartbeat = (lease / 3).max(Duration::from_secs(1));
        let config = apalis_sqlite::Config::default()
            .queue(RUN_QUEUE)
            .heartbeat_interval(heartbeat)
            .missed_heartbeats(3);
        Ok(SqliteRunQueue {
            storage: SqliteStorage::new(pool).with_config(config),
        })
    }

    /// Runs `concurrency` runs at a time until `shutdown` completes.
    pub async fn run_workers(
        self,
        engine: Engine,
        name: String,
        concurrency: usize,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        // Without a strategy an idle worker only looks again when something else wakes it.
        // Each look is one short write statement on the application's own SQLite file; the
        // application's write transactions begin IMMEDIATE (`entity::WriteTxn`), so they wait
        // for it under the busy timeout instead of failing on the lock upgrade.
        let backend = self
            .storage
            .poll_with_strategy(Strategy::new().interval(Duration::from_millis(200)));
        work!(backend, engine, name, concurrency, shutdown)
    }
}

impl RunQueue for SqliteRunQueue {
    fn enqueue(
        &self,
        task: RunTask,
        at: Option<DateTime<Utc>>,
    ) -> BoxFuture<'_, anyhow::Result<()>> {
        let mut storage = self.storage.clone();
        async move {
            let mut builder = TaskBuilder::new(task);
            if let Some(at) = at {
                builder = builder.run_at_time(at.into());
            }
            storage
                .push_task(builder.build())
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))
        }
        .boxed()
    }
}

/// The apalis handler: one task drives one run as far as it can go now.
async fn drive(
    task: RunTask,
    engine: Data<Engine>,
    worker: WorkerContext,
) -> Result<(), BoxDynError> {
    engine
        .process(task, worker.name())
        .await
        .map_err(|e| Box::new(e) as BoxDynError)
}

/// Runs on our own Redis queue ([`crate::queue::redis`]).
#[derive(Clone)]
pub struct RedisRunQueue {
    queue: RedisQueue<RunTask>,
}

impl RedisRunQueue {
    /// Connects to Redis; every key of the queue starts with `namespace`.
    /// A worker that stops renewing (it crashed) loses its runs to other workers after
    /// `lease`.
    pub async fn connect(url: &str, namespace: &str, lease: Duration) -> anyhow::Result<Self> {
        Self::connect_with(
            url,
            QueueConfig::new(RUN_QUEUE)
                .namespace(namespace)
                .lease(lease),
        )
        .await
    }

    /// Connects with a queue configuration of one's own (tests shorten the lease).
    pub async fn connect_with(url: &str, config: QueueConfig) -> anyhow::Result<Self> {
        let queue = RedisQueue::connect(url, config)
            .await
            .context("connecting the job queue to Redis")?;
        Ok(RedisRunQueue { queue })
    }

    /// The console over this queue's namespace.
    pub fn admin(&self) -> QueueAdmin {
        self.queue.admin()
    }

    /// Runs `concurrency` runs at a time until `shutdown` completes.
    pub async fn run_workers(
        self,
        engine: Engine,
        name: String,
        concurrency: usize,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        work!(self.queue, engine, name, concurrency, shutdown)
    }
}

impl RunQueue for RedisRunQueue {
    fn enqueue(
        &self,
        task: RunTask,
        at: Option<DateTime<Utc>>,
    ) -> BoxFuture<'_, anyhow::Result<()>> {
        async move {
            let mut opts = Enqueue::new().kind("workflow_run");
            if let Some(at) = at {
                opts = opts.at(at.into());
            }
            self.queue
                .enqueue(&task, opts)
                .await
                .map(|_| ())
                .map_err(|e| anyhow::anyhow!("{e}"))
        }
        .boxed()
    }
}

/// The job queue this process uses, chosen at start.
#[derive(Clone)]
pub enum QueueBackend {
    /// apalis on SQLite, in the application's database (the embedded default).
    Sqlite(SqliteRunQueue),
    /// Our Redis queue (production).
    Redis(RedisRunQueue),
}

impl QueueBackend {
    /// The handle the engine enqueues through.
    pub fn queue(&self) -> SharedQueue {
        match self {
            QueueBackend::Sqlite(q) => Arc::new(q.clone()),
            QueueBackend::Redis(q) => Arc::new(q.clone()),
        }
    }

    /// Which backend, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            QueueBackend::Sqlite(_) => "sqlite",
            QueueBackend::Redis(_) => "redis",
        }
    }

    /// Runs workers on this backend until `shutdown` completes.
    pub async fn run_workers(
        self,
        engine: Engine,
        name: String,
        concurrency: usize,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        match self {
            QueueBackend::Sqlite(q) => q.run_workers(engine, name, concurrency, shutdown).await,
            QueueBackend::Redis(q) => q.run_workers(engine, name, concurrency, shutdown).await,
        }
    }
}

/// The shared handle callers keep.
pub type SharedQueue = Arc<dyn RunQueue>;
