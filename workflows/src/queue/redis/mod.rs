//! Our Redis job queue for apalis 1.0: [`RedisQueue`], a durable apalis backend, and
//! [`QueueAdmin`], the job console's view.
//!
//! # Why not apalis-redis
//!
//! apalis-redis 1.0.0 has three defects measured on our hardware that this design rules out:
//!
//! 1. **A backlog stops the worker.** Its fetch moves the whole scheduled set with one Lua
//!    `unpack`; past ~8,000 queued tasks Redis refuses ("too many results to unpack") and
//!    `worker.run()` fails having processed nothing. Here every script works on a bounded
//!    slice: due jobs are promoted with `ZRANGEBYSCORE … LIMIT 0 promote_batch` (≤ 1000),
//!    ready jobs are taken with `RPOP ready batch`, expired leases with
//!    `ZRANGEBYSCORE … LIMIT 0 reclaim_batch`; `unpack` is only applied to those bounded
//!    arrays. No command ever reads or moves a whole set or list, so the cost of a fetch is
//!    O(batch · log n) whatever the backlog.
//! 2. **Leasing is O(backlog).** With `lock_tasks` it runs an `LREM` over the whole backlog
//!    for every lease (7,000 jobs/s with 2,000 queued, 1,900 with 20,000). Here a job is
//!    leased as it is popped (`RPOP` + `ZADD leases`), acknowledged with `ZREM`/`HDEL`, and a
//!    job cancelled while ready is left in the list as a tombstone that the fetch popping it
//!    discards: nothing ever searches the backlog.
//! 3. **Orphans wait 5 minutes, and names must be unique.** Its orphan window is
//!    heartbeat × missed heartbeats (30 s × 10), and in-flight tasks are tracked per worker
//!    name. Here each job has its own lease with a deadline (default 30 s, [`QueueConfig::lease`]);
//!    the worker renews the leases it holds every heartbeat (a third of the lease) from its own
//!    Tokio task, and any worker's fetch or heartbeat returns expired leases to ready. A job
//!    whose worker died runs again at most `lease` (+ one poll) after the last renewal. The
//!    lease token is `worker#attempt`, so a late result from a worker that lost its lease is
//!    ignored, and correctness does not depend on worker names (use [`unique_worker_name`]
//!    anyway: the console shows them).
//!
//! # Layout
//!
//! For queue `q` in namespace `ns` (default `autoglue:q`), keys are `ns:{q}:…` (the braces
//! keep a queue in one Redis Cluster slot, as its scripts need):
//!
//! | key | type | holds |
//! | --- | --- | --- |
//! | `ready` | LIST | ids ready to run; pushed left, popped right (FIFO); retried, reclaimed and released ids go to the right end |
//! | `delayed` | ZSET | jobs waiting for their first run, score = run-at ms |
//! | `retry` | ZSET | jobs waiting for their next attempt, score = due ms |
//! | `leases` | ZSET | running jobs, score = lease deadline ms |
//! | `holders` | HASH | running job id → `worker#attempt` (the lease token; the console's "who") |
//! | `job:<id>` | HASH | the envelope: `a` args (JSON), `n` attempts started, `m` max attempts, `k` kind, `i` idempotency key, `c` created, `r` run-at, `e` last error, `s` state, `l` leased-at, `f` finished-at, `md` apalis metadata |
//! | `dead` | ZSET | dead jobs (envelope kept), score = died-at ms; trimmed to `keep_dead` |
//! | `done` | ZSET | ids of done jobs (only with `keep_done` > 0), trimmed to `keep_done` |
//! | `cancelled` | ZSET | ids of cancelled jobs, trimmed to `keep_cancelled` |
//! | `stats` | HASH | counters: done, enqueued, cancelled, reclaimed, retried, dead_total, tombstones |
//! | `workers` | ZSET | worker name → last heartbeat ms |
//! | `ikey:<key>` | STRING | idempotency key → job id (expires `idempotency_retention` after the job ends) |
//!
//! plus `ns:queues`, the SET of queue names. All times come from the Redis server's clock
//! (`TIME` inside the scripts), so leases do not depend on the workers' clocks agreeing.
//!
//! # Cost per job
//!
//! Every script is cached (EVALSHA) and batched: a push writes one `HSET` per job and one
//! `LPUSH`/`ZADD` per 500 jobs (4 script calls per round trip); a fetch does one `HMGET` and
//! one `HSET` per job plus one `ZADD leases` and one `HSET holders` per batch; an ack checks
//! the lease tokens of up to 500 jobs with one `HMGET` and removes them with one `ZREM`, one
//! `HDEL` and one `DEL`, creating the jobs they hand on as a push would. Acks go out from
//! their own task, so the worker's next fetch does not wait for them (close waits for them).
//! See `bench/README.md` for the throughput.
//!
//! # Life of a job
//!
//! push → `ready` (or `delayed`) → fetch leases it (attempt `n` + 1, `leases`, `holders`) →
//! the handler's result is acknowledged in batches:
//! - success: lease and envelope deleted, `done` counted, and the jobs the handler pushed to
//!   this same queue through apalis' `TaskSink` while it ran (apalis-workflow's next stage)
//!   created by the same script call: a hand-over with no round trip of its own, atomic with
//!   the acknowledgement. Until then they exist only in the worker; if the job fails, loses
//!   its lease or its worker dies, they are not created, and the job's next run pushes them
//!   again. [`RedisQueue::push_now`] and pushes to other queues go out at once;
//! - error with attempts left: `retry` at now + [`Backoff`] (exponential, equal jitter,
//!   capped), or at the delay an apalis `RetryAfterError` asked for;
//! - error with no attempts left, an apalis `AbortError`, or arguments that do not decode:
//!   `dead`, with the error;
//! - lease expired (worker died): back to the front of `ready`, or `dead` if that was its last
//!   attempt.
//!
//! A graceful stop gives the jobs leased but not started back to the front of `ready`, their
//! attempt taken back.
//!
//! # Known limits
//!
//! - At-least-once: a worker that loses its lease (stalled past it, or cut off from Redis for
//!   longer) may finish a job another worker also runs; its late result is ignored. A fetch
//!   whose reply is lost (connection dropped, 5 s reply timeout) leaves its jobs leased until
//!   the lease expires, with that attempt counted.
//! - The lease keeper renews as long as the process lives: a handler stuck forever holds its
//!   job forever (bound handlers with a timeout).
//! - Console pages are offsets into moving lists: on a busy queue they may overlap or skip.
//! - Done and cancelled jobs keep only their ids (and only as many as configured).
//! - Single Redis (or one Cluster slot per queue): keys of one queue share a hash tag, and the
//!   scripts build job keys from it.
//!
//! # Running a worker
//!
//! ```no_run
//! use apalis::layers::WorkerBuilderExt as _;
//! use apalis_core::{backend::TaskSink as _, worker::builder::WorkerBuilder};
//! use workflows::queue::redis::{Enqueue, QueueConfig, RedisQueue, unique_worker_name};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let queue = RedisQueue::<u64>::connect("redis://127.0.0.1:6379", QueueConfig::new("demo")).await?;
//! queue.enqueue(&7, Enqueue::new().kind("demo.seven")).await?;
//! let mut producer = queue.clone();
//! producer.push(8).await?; // apalis' TaskSink works too
//! WorkerBuilder::new(unique_worker_name("demo"))
//!     .backend(queue)
//!     .concurrency(50)
//!     .build(|n: u64| async move { println!("{n}") })
//!     .run()
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! Set [`QueueConfig::batch_size`] near the concurrency. A worker fetches its next batch while
//! it takes the one before ([`QueueConfig::prefetch`], on by default), so a slot that frees up
//! does not wait for a fetch's round trip; it then holds up to two batches' leases, and gives
//! back those it did not start when it stops gracefully. Each clone of a queue is a separate
//! worker's handle (its own leases); clones share the connection and wake each other's idle
//! workers on push.

mod admin;
mod config;
mod enqueue;
mod error;
mod layer;
mod persist;
mod scripts;

use std::{
    marker::PhantomData,
    pin::Pin,
    task::{Context, Poll, ready},
};

use ::redis::aio::ConnectionManager;
use apalis_codec::json::JsonCodec;
use apalis_core::{
    backend::{
        Backend, BackendConfig, WireFormatBackend,
        finalize::Durable,
        future::BoxSyncFuture,
        persistence::{Persisted, State, TaskPersistLayer},
    },
    task::{Task, task_id::TaskId},
    worker::context::WorkerContext,
};
use futures_util::{FutureExt, Sink};
use serde::{Serialize, de::DeserializeOwned};
use tower_layer::Stack;

pub use admin::{
    CancelOutcome, JobFilter, JobInfo, JobPage, JobStatus, QueueAdmin, QueueCounts, RetryOutcome,
    WorkerInfo,
};
pub use config::{Backoff, DEFAULT_NAMESPACE, QueueConfig};
pub use enqueue::{Enqueue, Enqueued, JobKind, KIND_METADATA_KEY, NoKind};
pub use error::QueueError;
pub use layer::{DiscardOutput, OutcomeLayer, OutcomeService, OutputNotKept};
pub use persist::{FetchHook, RedisPersistence};

use enqueue::{NewJob, push_jobs};

/// A worker name no other process has: `prefix@host:pid:random`.
pub fn unique_worker_name(prefix: &str) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "host".to_owned());
    let suffix: u32 = rand::random();
    format!("{prefix}@{host}:{}:{suffix:08x}", std::process::id())
}

/// Connects to Redis with a reconnecting, multiplexed connection whose replies may take up
/// to 5 s (redis-rs' default, 500 ms, is short for a busy 2-core host; every queue call is
/// bounded, so a slower reply means an overloaded server, not a big command).
pub async fn connect(url: &str) -> Result<ConnectionManager, QueueError> {
    let client = ::redis::Client::open(url)?;
    let config = ::redis::aio::ConnectionManagerConfig::new()
        .set_response_timeout(Some(std::time::Duration::from_secs(5)))
        .set_connection_timeout(Some(std::time::Duration::from_secs(5)));
    Ok(client.get_connection_manager_with_config(config).await?)
}

/// A durable apalis backend on Redis for jobs of type `Args` (JSON-encoded). See the module
/// docs for the design.
///
/// It is apalis' `Persisted` driver around [`RedisPersistence`], with:
/// - a re-poll after an empty fetch (the fetch itself waited a poll interval), so idle workers
///   neither spin nor sleep until the next heartbeat;
/// - undecodable arguments sent to dead instead of stopping the worker;
/// - on close, the lease keeper stopped and the worker unlisted.
pub struct RedisQueue<Args> {
    persist: Persisted<RedisPersistence>,
    codec: JsonCodec<Vec<u8>>,
    cleanup: Option<BoxSyncFuture<()>>,
    /// At close: giving back the batch fetched ahead, while under way.
    give_back: Option<BoxSyncFuture<()>>,
    /// At close: the batch fetched ahead has been given back.
    gave_back: bool,
    _args: PhantomData<fn() -> Args>,
}

impl<Args> std::fmt::Debug for RedisQueue<Args> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisQueue")
            .field("queue", &self.persist.config.queue)
            .field("namespace", &self.persist.config.namespace)
            .finish_non_exhaustive()
    }
}

impl<Args> Clone for RedisQueue<Args> {
    /// Another handle on the queue, with its own lease bookkeeping: give each worker its own.
    fn clone(&self) -> Self {
        Self {
            persist: Persisted::new(self.persist.fork()),
            codec: self.codec.clone(),
            cleanup: None,
            give_back: None,
            gave_back: false,
            _args: PhantomData,
        }
    }
}

impl<Args> RedisQueue<Args> {
    /// The queue `config` describes, on `conn`.
    pub fn new(conn: ConnectionManager, config: QueueConfig) -> Result<Self, QueueError> {
        config.validate()?;
        Ok(Self {
            persist: Persisted::new(RedisPersistence::new(conn, config)),
            codec: JsonCodec::default(),
            cleanup: None,
            give_back: None,
            gave_back: false,
            _args: PhantomData,
        })
    }

    /// Connects to `url` and opens the queue `config` describes.
    pub async fn connect(url: &str, config: QueueConfig) -> Result<Self, QueueError> {
        config.validate()?;
        Self::new(connect(url).await?, config)
    }

    /// Calls `hook` with the tasks of every batch a fetch of this handle (and of its clones
    /// made after) leases, and the worker's name, before the worker takes them one at a time
    /// as its slots free up: a way to start work they will need (the workflow engine claims
    /// their runs). It runs inside the fetch, so it must not block.
    pub fn on_fetch(
        mut self,
        hook: impl Fn(&[Task<Vec<u8>>], &str) + Send + Sync + 'static,
    ) -> Self {
        self.persist.on_fetch = Some(std::sync::Arc::new(hook));
        self
    }

    /// The queue's settings.
    pub fn queue_config(&self) -> &QueueConfig {
        &self.persist.config
    }

    /// The console's view of this queue's namespace, with this queue's retention settings.
    pub fn admin(&self) -> QueueAdmin {
        QueueAdmin::with_config(self.persist.conn.clone(), (*self.persist.config).clone())
    }

    /// Pushes an apalis task whose arguments are encoded already (JSON bytes of `Args`) at
    /// once, also from inside a handler of this queue, where `TaskSink` pushes wait for the
    /// handler's acknowledgement (see the module docs).
    pub async fn push_now(&self, task: Task<Vec<u8>>) -> Result<Enqueued, QueueError> {
        let config = &self.persist.config;
        let job = NewJob::from_task(task, config.max_attempts, config.default_kind.as_deref())?;
        self.push_one(job).await
    }

    /// Pushes one encoded job.
    async fn push_one(&self, job: NewJob) -> Result<Enqueued, QueueError> {
        self.push_encoded(vec![job])
            .await?
            .pop()
            .ok_or_else(|| QueueError::Protocol("push: no reply".into()))
    }

    /// Pushes already encoded jobs (JSON bytes of `Args`).
    async fn push_encoded(&self, jobs: Vec<NewJob>) -> Result<Vec<Enqueued>, QueueError> {
        let mut persist = (*self.persist).clone();
        persist.register_queue().await;
        let out = push_jobs(&mut persist.conn, &self.persist.keys, jobs).await?;
        self.persist.wake.notify_waiters();
        Ok(out)
    }
}

impl<Args: Serialize> RedisQueue<Args> {
    /// Creates one job. With an idempotency key already in use, creates nothing and returns
    /// the existing job's id with `created: false`.
    pub async fn enqueue(&self, args: &Args, opts: Enqueue) -> Result<Enqueued, QueueError> {
        let job = NewJob::new(
            serde_json::to_vec(args)?,
            opts,
            self.persist.config.max_attempts,
        );
        self.push_one(job).await
    }

    /// Creates many jobs in a few round trips (500 per script call, pipelined).
    pub async fn enqueue_many(
        &self,
        jobs: impl IntoIterator<Item = (Args, Enqueue)>,
    ) -> Result<Vec<Enqueued>, QueueError> {
        let max = self.persist.config.max_attempts;
        let jobs = jobs
            .into_iter()
            .map(|(args, opts)| Ok(NewJob::new(serde_json::to_vec(&args)?, opts, max)))
            .collect::<Result<Vec<_>, QueueError>>()?;
        self.push_encoded(jobs).await
    }
}

impl<Args> Backend for RedisQueue<Args>
where
    Args: DeserializeOwned,
{
    type Task = Task<Vec<u8>>;
    type Error = QueueError;

    fn poll_ready(
        &mut self,
        cx: &mut Context<'_>,
        worker: &WorkerContext,
    ) -> Poll<Result<(), QueueError>> {
        let heartbeat = self.persist.config.heartbeat_interval();
        self.persist.poll_ready(cx, worker, heartbeat)
    }

    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        worker: &WorkerContext,
    ) -> Poll<Option<Result<Task<Vec<u8>>, QueueError>>> {
        loop {
            match self.persist.poll_next(cx, worker) {
                Poll::Ready(Some(Ok(task))) => {
                    // apalis decodes after us and stops the worker on a decoding error: one bad
                    // job would stop all processing. Check first; send a bad one to dead.
                    match serde_json::from_slice::<Args>(&task.args) {
                        Ok(_) => return Poll::Ready(Some(Ok(task))),
                        Err(e) => self.bury_undecodable(&task, worker, e),
                    }
                }
                Poll::Pending => {
                    // `Persisted` parks after an empty fetch until its heartbeat timer fires;
                    // our fetch already waited a poll interval, so look again right away.
                    if matches!(self.persist.state(), State::Ready) {
                        cx.waker().wake_by_ref();
                    }
                    return Poll::Pending;
                }
                other => return other,
            }
        }
    }

    fn poll_close(
        &mut self,
        cx: &mut Context<'_>,
        worker: &WorkerContext,
    ) -> Poll<Result<(), QueueError>> {
        if self.cleanup.is_none() {
            // The batch fetched ahead goes back first: the buffered jobs, given back next, go
            // in front of it, so all keep their order.
            if !self.gave_back {
                let giving = self.give_back.get_or_insert_with(|| {
                    let mut persist = (*self.persist).clone();
                    let name = worker.name().to_owned();
                    async move { persist.give_back_ahead(&name).await }
                        .boxed()
                        .into()
                });
                ready!(giving.poll_unpin(cx));
                self.give_back = None;
                self.gave_back = true;
            }
            ready!(self.persist.poll_close(cx, worker))?;
            self.persist.local.stop();
            let local = self.persist.local.clone();
            let mut conn = self.persist.conn.clone();
            let workers = self.persist.keys.all[9].clone();
            let name = worker.name().to_owned();
            self.cleanup = Some(
                async move {
                    use ::redis::AsyncCommands as _;
                    local.drain_acks(std::time::Duration::from_secs(10)).await;
                    if let Err(e) = conn.zrem::<_, _, ()>(workers, name).await {
                        tracing::warn!(error = %e, "unlisting the worker failed");
                    }
                }
                .boxed()
                .into(),
            );
        }
        let cleanup = self.cleanup.as_mut().expect("set above");
        ready!(cleanup.poll_unpin(cx));
        Poll::Ready(Ok(()))
    }
}

impl<Args> RedisQueue<Args> {
    fn bury_undecodable(
        &mut self,
        task: &Task<Vec<u8>>,
        worker: &WorkerContext,
        error: serde_json::Error,
    ) {
        let Some(id) = task.task_id().map(|id| id.to_string()) else {
            return;
        };
        let error = format!(
            "arguments do not decode as {}: {error}",
            std::any::type_name::<Args>()
        );
        tracing::error!(queue = %self.persist.config.queue, job = %id, %error, "job sent to dead");
        let mut persist = (*self.persist).clone();
        let name = worker.name().to_owned();
        let fut = async move { persist.bury(&name, id, error).await };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(fut);
            }
            // No runtime to settle it on: its lease expires and it ends in dead after its
            // attempts.
            Err(_) => drop(fut),
        }
    }
}

/// The id type of jobs on this queue: ids are UUIDv7 strings, the same whether our
/// [`RedisQueue::enqueue`] makes them or apalis-workflow asks for one for a next stage. In a
/// [`crate::engine::NEXT_TASK_ID`] scope, a stage may have named the id already: it is taken
/// (once).
#[derive(Debug, Clone, Copy, Default)]
pub struct JobId;

impl apalis_core::task::task_id::GenerateId for JobId {
    fn generate() -> TaskId {
        let named = crate::engine::NEXT_TASK_ID
            .try_with(|next| next.borrow_mut().take())
            .ok()
            .flatten();
        TaskId::from_string(named.unwrap_or_else(enqueue::new_id))
    }
}

impl<Args> BackendConfig for RedisQueue<Args> {
    type Args = Args;
    type Id = JobId;
    type Kind = Durable;
    type Config = QueueConfig;
    type Layer = Stack<OutcomeLayer, TaskPersistLayer<DiscardOutput, ()>>;

    fn config(&self) -> &QueueConfig {
        &self.persist.config
    }

    fn middleware(&mut self, _worker: &mut WorkerContext) -> Self::Layer {
        let batch = self.persist.config.batch_size;
        // Leases are taken at fetch time, so apalis' own locking (lock_tasks) is off; results
        // are "persisted" (sent to handle_events) so every attempt is acknowledged.
        let persist = self
            .persist
            .layer(DiscardOutput, batch)
            .persist_results(true)
            .lock_tasks(false);
        let outcome = OutcomeLayer {
            local: self.persist.local.clone(),
            wake: self.persist.wake.clone(),
            queue: std::sync::Arc::from(self.persist.keys.base.as_str()),
        };
        Stack::new(outcome, persist)
    }
}

impl<Args> WireFormatBackend for RedisQueue<Args> {
    type Codec = JsonCodec<Vec<u8>>;
    type Compact = Vec<u8>;

    fn codec(&self) -> &Self::Codec {
        &self.codec
    }
}

impl<Args> Sink<Task<Vec<u8>>> for RedisQueue<Args> {
    type Error = QueueError;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), QueueError>> {
        Sink::poll_ready(Pin::new(&mut self.get_mut().persist), cx)
    }

    fn start_send(self: Pin<&mut Self>, item: Task<Vec<u8>>) -> Result<(), QueueError> {
        Sink::start_send(Pin::new(&mut self.get_mut().persist), item)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), QueueError>> {
        Sink::poll_flush(Pin::new(&mut self.get_mut().persist), cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), QueueError>> {
        Sink::poll_close(Pin::new(&mut self.get_mut().persist), cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync + Unpin>() {}

    #[test]
    fn queue_handles_are_send_sync_unpin() {
        assert_send_sync::<RedisQueue<u64>>();
        assert_send_sync::<QueueAdmin>();
    }

    #[test]
    fn worker_names_differ_per_call() {
        let a = unique_worker_name("w");
        let b = unique_worker_name("w");
        assert_ne!(a, b);
        assert!(a.starts_with("w@"));
        assert!(a.contains(&format!(":{}:", std::process::id())));
    }
}
