//! [`RedisPersistence`]: apalis-core's [`Persistence`] over the queue's Lua scripts, and the
//! lease keeper that renews a worker's leases on its own timer.

use std::{
    collections::HashMap,
    fmt,
    sync::{
        Arc, Mutex, Weak,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use ::redis::{AsyncCommands, Value, aio::ConnectionManager};
use apalis_core::{
    backend::{
        TaskResult,
        persistence::{Persistence, TaskEvent},
    },
    task::{Task, builder::TaskBuilder, metadata::MetadataStore, status::Status, task_id::TaskId},
    worker::context::WorkerContext,
};
use tokio::sync::Notify;

use super::{
    config::{Keys, QueueConfig},
    enqueue::{KIND_METADATA_KEY, NewJob, push_jobs},
    error::QueueError,
    scripts::{self, array, invocation, opt_bytes, opt_i64, opt_string, protocol},
};

/// The jobs a handler pushes to its own queue through apalis' `TaskSink` while it runs (the
/// next stage of an apalis-workflow flow, say), set around every handler call by
/// [`OutcomeLayer`](super::OutcomeLayer). They are not pushed then: they are created by the
/// script that acknowledges the handler's job, and only if it succeeded and still held its
/// lease. The hand-over is atomic and costs no round trip of its own; a job that runs again
/// (its acknowledgement was lost, or it failed) pushes them again.
pub(crate) struct HandOn {
    /// The queue's key base: pushes to other queues go out at once.
    pub(crate) queue: Arc<str>,
    pub(crate) jobs: std::cell::RefCell<Vec<NewJob>>,
}

tokio::task_local! {
    pub(crate) static HAND_ON: HandOn;
}

/// Longest error message kept in a job's envelope.
const MAX_ERROR_LEN: usize = 4096;
/// How long a worker waits after a failed fetch (Redis away) before the next one.
const FETCH_ERROR_PAUSE: Duration = Duration::from_secs(1);
/// Most attempts settled by one ack script call.
const ACK_CHUNK: usize = 500;

/// State of one queue handle (one worker): the leases it holds and its keeper.
/// One lease a handle holds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Held {
    /// The attempt the lease was taken for: the lease token is `worker#attempt`.
    pub attempt: u64,
    /// The job has an idempotency key (to release when it is done).
    pub has_ikey: bool,
}

/// A fetch running in the background.
type Ahead = tokio::task::JoinHandle<Result<Vec<Task<Vec<u8>>>, QueueError>>;

pub(crate) struct Local {
    /// Leases this handle holds, by job id.
    pub(crate) held: Mutex<HashMap<String, Held>>,
    /// Delays asked for by `RetryAfterError` (or zero for `DeferredError`), by job id.
    pub(crate) retry_after: Mutex<HashMap<String, Duration>>,
    /// Jobs a finished handler pushed to this queue, by the id of its job: they go out with
    /// its acknowledgement ([`HAND_ON`]).
    pub(crate) handed_on: Mutex<HashMap<String, Vec<NewJob>>>,
    keeper_started: AtomicBool,
    stopped: AtomicBool,
    stop: Arc<Notify>,
    /// The next batch, fetched in the background while the worker takes the one before
    /// ([`QueueConfig::prefetch`]).
    ahead: Mutex<Option<Ahead>>,
    /// Acknowledgements sent from their own tasks and not answered yet.
    acks_in_flight: AtomicUsize,
    acks_settled: Notify,
}

impl Local {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            held: Mutex::new(HashMap::new()),
            retry_after: Mutex::new(HashMap::new()),
            handed_on: Mutex::new(HashMap::new()),
            ahead: Mutex::new(None),
            keeper_started: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            stop: Arc::new(Notify::new()),
            acks_in_flight: AtomicUsize::new(0),
            acks_settled: Notify::new(),
        })
    }

    /// Waits (at most `timeout`) until every acknowledgement sent has been answered.
    pub(crate) async fn drain_acks(&self, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let settled = self.acks_settled.notified();
            tokio::pin!(settled);
            settled.as_mut().enable();
            if self.acks_in_flight.load(Ordering::SeqCst) == 0 {
                return;
            }
            if tokio::time::timeout_at(deadline, settled).await.is_err() {
                tracing::warn!("acknowledgements still unanswered at close");
                return;
            }
        }
    }

    /// Stops the keeper (graceful close).
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.stop.notify_waiters();
    }

    fn held_pairs(&self) -> Vec<(String, u64)> {
        lock(&self.held)
            .iter()
            .map(|(id, h)| (id.clone(), h.attempt))
            .collect()
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        self.stop.notify_waiters();
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// apalis-core's [`Persistence`] for the Redis queue: every method is one (or, for large
/// pushes and acks, a few pipelined) Lua script calls touching a bounded number of elements.
///
/// Driven by apalis' `Persisted`, which [`RedisQueue`](super::RedisQueue) wraps.
#[derive(Clone)]
pub struct RedisPersistence {
    pub(crate) conn: ConnectionManager,
    pub(crate) config: Arc<QueueConfig>,
    pub(crate) keys: Arc<Keys>,
    pub(crate) local: Arc<Local>,
    /// Shared by every handle of the queue in this process: a push wakes idle workers at once.
    pub(crate) wake: Arc<Notify>,
    /// Whether this process added the queue to the namespace's list of queues.
    pub(crate) registered: Arc<AtomicBool>,
    /// Told of every batch a fetch leases, before the worker takes its tasks one by one.
    pub(crate) on_fetch: Option<FetchHook>,
}

/// A function told of the tasks each fetch leased, and the worker's name: see
/// [`RedisQueue::on_fetch`](super::RedisQueue::on_fetch).
pub type FetchHook = Arc<dyn Fn(&[Task<Vec<u8>>], &str) + Send + Sync>;

impl fmt::Debug for RedisPersistence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisPersistence")
            .field("queue", &self.config.queue)
            .field("namespace", &self.config.namespace)
            .finish_non_exhaustive()
    }
}

fn millis(d: Duration) -> u64 {
    d.as_millis().min(u64::MAX as u128) as u64
}

fn truncate(mut s: String) -> String {
    if s.len() > MAX_ERROR_LEN {
        let mut cut = MAX_ERROR_LEN;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

impl RedisPersistence {
    pub(crate) fn new(conn: ConnectionManager, config: QueueConfig) -> Self {
        let keys = Arc::new(config.keys());
        Self {
            conn,
            config: Arc::new(config),
            keys,
            local: Local::new(),
            wake: Arc::new(Notify::new()),
            registered: Arc::new(AtomicBool::new(false)),
            on_fetch: None,
        }
    }

    /// Adds the queue to the namespace's list of queues, once per process.
    pub(crate) async fn register_queue(&mut self) {
        if self.registered.load(Ordering::Relaxed) {
            return;
        }
        let registry = Keys::registry(&self.config.namespace);
        let queue = self.config.queue.clone();
        match self.conn.sadd::<_, _, ()>(registry, queue).await {
            Ok(()) => self.registered.store(true, Ordering::Relaxed),
            Err(e) => {
                tracing::warn!(queue = %self.config.queue, error = %e, "registering the queue failed")
            }
        }
    }

    /// A handle on the same queue with its own lease bookkeeping (for another worker).
    pub(crate) fn fork(&self) -> Self {
        Self {
            local: Local::new(),
            ..self.clone()
        }
    }

    /// Runs the fetch script: reclaim, promote, lease up to a batch.
    async fn fetch(&mut self, worker: &str) -> Result<Vec<Task<Vec<u8>>>, QueueError> {
        let cfg = &self.config;
        let mut inv = invocation(&scripts::FETCH, &self.keys);
        inv.arg(worker)
            .arg(cfg.batch_size)
            .arg(millis(cfg.lease))
            .arg(cfg.promote_batch)
            .arg(cfg.reclaim_batch)
            .arg(cfg.keep_dead)
            .arg(millis(cfg.idempotency_retention));
        let reply: Value = inv.invoke_async(&mut self.conn).await?;
        let mut items = array(reply)?.into_iter();
        let now_ms = items
            .next()
            .as_ref()
            .and_then(opt_i64)
            .ok_or_else(|| protocol("fetch: no server time"))?;
        let rest: Vec<Value> = items.collect();
        if !rest.len().is_multiple_of(8) {
            return Err(protocol("fetch: rows of 8 fields expected"));
        }
        let mut tasks = Vec::with_capacity(rest.len() / 8);
        let mut fields = rest.into_iter();
        let mut leased = Vec::with_capacity(tasks.capacity());
        while let Some(id) = fields.next() {
            let mut next = || fields.next().unwrap_or(Value::Nil);
            let (n, args, max, kind, ikey, run_at, meta) =
                (next(), next(), next(), next(), next(), next(), next());
            let id = opt_string(&id).ok_or_else(|| protocol("fetch: job id"))?;
            let n = opt_i64(&n)
                .ok_or_else(|| protocol("fetch: attempt"))?
                .max(1) as u64;
            let args = opt_bytes(args).ok_or_else(|| protocol("fetch: args"))?;
            let max = opt_i64(&max).unwrap_or(i64::from(cfg.max_attempts)).max(1) as usize;
            let mut meta: HashMap<String, String> = opt_string(&meta)
                .and_then(|m| serde_json::from_str(&m).ok())
                .unwrap_or_default();
            if let Some(kind) = opt_string(&kind) {
                meta.insert(KIND_METADATA_KEY.to_owned(), kind);
            }
            let mut builder = TaskBuilder::new(args)
                .task_id(TaskId::from_string(id.clone()))
                // apalis counts the attempt when the task starts: it will read `n`.
                .attempt((n - 1) as usize)
                .max_attempts(max)
                .status(Status::Queued)
                .lock_by(Some(worker.to_owned()))
                .lock_at(Some((now_ms / 1000) as u64))
                .with_metadata(MetadataStore::from_map(meta));
            if let Some(run_at) = opt_i64(&run_at) {
                builder = builder.run_at_timestamp((run_at.max(0) / 1000) as u64);
            }
            let ikey = opt_string(&ikey);
            leased.push((
                id,
                Held {
                    attempt: n,
                    has_ikey: ikey.is_some(),
                },
            ));
            if let Some(ikey) = ikey {
                builder = builder.idempotency_key(ikey);
            }
            tasks.push(builder.build());
        }
        if !leased.is_empty() {
            lock(&self.local.held).extend(leased);
            if let Some(hook) = &self.on_fetch {
                hook(&tasks, worker);
            }
        }
        Ok(tasks)
    }

    /// Marks the worker alive and reclaims a bounded batch of expired leases.
    async fn beat(&mut self, worker: &str) -> Result<u64, QueueError> {
        let cfg = &self.config;
        let mut inv = invocation(&scripts::HEARTBEAT, &self.keys);
        inv.arg(worker)
            .arg(cfg.reclaim_batch * 10)
            .arg(cfg.keep_dead)
            .arg(millis(cfg.idempotency_retention))
            .arg(millis(cfg.worker_ttl));
        Ok(inv.invoke_async(&mut self.conn).await?)
    }

    /// Renews every lease this handle holds; forgets those it lost.
    async fn renew(&mut self, worker: &str) -> Result<(), QueueError> {
        let held = self.local.held_pairs();
        let lost = renew(&mut self.conn, &self.keys, &self.config, worker, &held).await?;
        forget_lost(&self.local, lost);
        Ok(())
    }

    /// Starts the lease keeper of this handle, once, if there is a Tokio runtime.
    ///
    /// The keeper renews the handle's leases every heartbeat on its own task, so renewal does
    /// not depend on the worker's poll loop: apalis' `Persisted` only heartbeats between
    /// batches, and a worker whose concurrency is full with a batch still buffered would
    /// otherwise stop renewing and lose jobs it is running.
    fn spawn_keeper(&self, worker: &str) {
        if self.local.keeper_started.swap(true, Ordering::SeqCst) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.local.keeper_started.store(false, Ordering::SeqCst);
            return;
        };
        let local: Weak<Local> = Arc::downgrade(&self.local);
        let stop = self.local.stop.clone();
        let mut conn = self.conn.clone();
        let keys = self.keys.clone();
        let config = self.config.clone();
        let worker = worker.to_owned();
        runtime.spawn(async move {
            let period = config.heartbeat_interval();
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(period) => {}
                    _ = stop.notified() => {}
                }
                let held = match local.upgrade() {
                    Some(l) if !l.stopped.load(Ordering::SeqCst) => l.held_pairs(),
                    _ => break,
                };
                match renew(&mut conn, &keys, &config, &worker, &held).await {
                    Ok(lost) => {
                        if let Some(l) = local.upgrade() {
                            forget_lost(&l, lost);
                        }
                    }
                    Err(e) => tracing::warn!(queue = %config.queue, %worker, error = %e, "renewing leases failed"),
                }
            }
        });
    }

    /// Settles finished attempts. A failed call is retried a few times; if Redis stays away
    /// the attempts are left to their leases, which expire and hand the jobs out again
    /// (at-least-once), rather than stopping the worker.
    async fn ack(&mut self, worker: &str, groups: Vec<AckGroup>) {
        for chunk in groups.chunks(ACK_CHUNK) {
            let cfg = &self.config;
            let mut inv = invocation(&scripts::ACK, &self.keys);
            inv.arg(worker)
                .arg(cfg.keep_done)
                .arg(cfg.keep_dead)
                .arg(millis(cfg.idempotency_retention));
            for g in chunk {
                inv.arg(&g.id)
                    .arg(g.attempt)
                    .arg(g.outcome)
                    .arg(g.delay_ms)
                    .arg(&g.error)
                    .arg(if g.has_ikey { "1" } else { "0" })
                    .arg(g.hand_on.len());
                for job in &g.hand_on {
                    job.args_of(&mut inv);
                }
            }
            let mut tries = 0;
            loop {
                tries += 1;
                match inv.invoke_async::<(u64, u64, u64)>(&mut self.conn).await {
                    Ok((_, stale, created)) => {
                        if stale > 0 {
                            tracing::warn!(queue = %cfg.queue, %worker, stale, "finished attempts whose lease had expired were ignored");
                        }
                        if created > 0 {
                            self.wake.notify_waiters();
                        }
                        break;
                    }
                    Err(e) if tries < 3 => {
                        tracing::warn!(queue = %cfg.queue, error = %e, "acknowledging jobs failed, retrying");
                        tokio::time::sleep(Duration::from_millis(100 * tries)).await;
                    }
                    Err(e) => {
                        tracing::error!(queue = %cfg.queue, error = %e, jobs = chunk.len(), "acknowledging jobs failed; their leases will expire and they will run again");
                        break;
                    }
                }
            }
        }
    }
}

fn forget_lost(local: &Local, lost: Vec<(String, u64)>) {
    if lost.is_empty() {
        return;
    }
    // A lease settled while the renewal was under way is reported too: only those still held
    // for the same attempt were really lost.
    let lost: Vec<String> = {
        let mut held = lock(&local.held);
        lost.into_iter()
            .filter(|(id, n)| match held.get(id) {
                Some(h) if h.attempt == *n => held.remove(id).is_some(),
                _ => false,
            })
            .map(|(id, _)| id)
            .collect()
    };
    if !lost.is_empty() {
        tracing::warn!(jobs = ?lost, "leases lost (expired and reclaimed); their results will be ignored");
    }
}

async fn renew(
    conn: &mut ConnectionManager,
    keys: &Keys,
    config: &QueueConfig,
    worker: &str,
    held: &[(String, u64)],
) -> Result<Vec<(String, u64)>, QueueError> {
    let mut inv = invocation(&scripts::RENEW, keys);
    inv.arg(worker).arg(millis(config.lease));
    for (id, n) in held {
        inv.arg(id).arg(*n);
    }
    let lost: Vec<String> = inv.invoke_async(conn).await?;
    Ok(lost
        .chunks(2)
        .filter_map(|pair| match pair {
            [id, n] => n.parse().ok().map(|n| (id.clone(), n)),
            _ => None,
        })
        .collect())
}

struct AckGroup {
    id: String,
    attempt: u64,
    has_ikey: bool,
    outcome: &'static str,
    delay_ms: u64,
    error: String,
    /// Jobs to create if the attempt is settled as done.
    hand_on: Vec<NewJob>,
}

impl Persistence for RedisPersistence {
    type Compact = Vec<u8>;
    type Response = ();
    type Error = QueueError;

    async fn register(&mut self, worker: &WorkerContext) -> Result<(), QueueError> {
        self.spawn_keeper(worker.name());
        self.register_queue().await;
        if let Err(e) = self.beat(worker.name()).await {
            tracing::warn!(queue = %self.config.queue, error = %e, "first heartbeat failed");
        }
        Ok(())
    }

    async fn heartbeat(&mut self, worker: &WorkerContext) -> Result<(), QueueError> {
        // Without a keeper (no Tokio runtime) leases are renewed here.
        if !self.local.keeper_started.load(Ordering::SeqCst)
            && let Err(e) = self.renew(worker.name()).await
        {
            tracing::warn!(queue = %self.config.queue, error = %e, "renewing leases failed");
        }
        match self.beat(worker.name()).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(queue = %self.config.queue, reclaimed = n, "expired leases reclaimed")
            }
            Err(e) => tracing::warn!(queue = %self.config.queue, error = %e, "heartbeat failed"),
        }
        Ok(())
    }

    /// One fetch script call. When it leases nothing, waits one poll interval (or until a
    /// producer in this process pushes) and returns empty: the caller re-polls at once, so
    /// results of finished jobs and heartbeats are handled between two polls rather than
    /// after a long blocking wait. Redis errors are logged and treated as "nothing yet" so
    /// that a Redis restart does not stop the worker.
    async fn fetch_next(
        &mut self,
        worker: &WorkerContext,
    ) -> Result<Vec<Task<Vec<u8>>>, QueueError> {
        if worker.is_shutting_down() {
            return Ok(Vec::new());
        }
        let wake = self.wake.clone();
        let notified = wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let ahead = lock(&self.local.ahead).take();
        if let Some(ahead) = ahead {
            match ahead.await {
                Ok(Ok(tasks)) if !tasks.is_empty() => {
                    self.fetch_ahead(worker);
                    return Ok(tasks);
                }
                // Nothing was ready then: look again now.
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::warn!(queue = %self.config.queue, error = %e, "fetching jobs ahead failed")
                }
                Err(e) => {
                    tracing::warn!(queue = %self.config.queue, error = %e, "fetching jobs ahead stopped")
                }
            }
        }
        let wait = match self.fetch(worker.name()).await {
            Ok(tasks) if !tasks.is_empty() => {
                self.fetch_ahead(worker);
                return Ok(tasks);
            }
            Ok(_) => self.config.poll_interval,
            Err(e) => {
                tracing::warn!(queue = %self.config.queue, error = %e, "fetching jobs failed; retrying in 1 s");
                FETCH_ERROR_PAUSE
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = notified => {}
        }
        Ok(Vec::new())
    }

    async fn reenqueue_abandoned(
        &mut self,
        tasks: Vec<Task<Vec<u8>>>,
        worker: &WorkerContext,
    ) -> Result<u64, QueueError> {
        self.release(tasks, worker.name()).await
    }

    async fn handle_events(
        &mut self,
        events: Vec<TaskEvent<()>>,
        worker: &WorkerContext,
    ) -> Result<(), QueueError> {
        let mut groups = Vec::with_capacity(events.len());
        for event in events {
            let TaskEvent::Complete(result) = event else {
                continue;
            };
            if let Some(group) = self.settle(result) {
                groups.push(group);
            }
        }
        if groups.is_empty() {
            return Ok(());
        }
        // While running, acknowledge from a task of its own: the next fetch goes out at once
        // on the same (multiplexed) connection instead of waiting for this reply. At close,
        // acknowledge inline; the queue's close also waits for those still in flight.
        let runtime = tokio::runtime::Handle::try_current();
        match runtime {
            Ok(rt) if !worker.is_shutting_down() => {
                let mut this = self.clone();
                let worker = worker.name().to_owned();
                self.local.acks_in_flight.fetch_add(1, Ordering::SeqCst);
                rt.spawn(async move {
                    this.ack(&worker, groups).await;
                    if this.local.acks_in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
                        this.local.acks_settled.notify_waiters();
                    }
                });
            }
            _ => self.ack(worker.name(), groups).await,
        }
        Ok(())
    }

    async fn push_tasks(&mut self, tasks: Vec<Task<Vec<u8>>>) -> Result<(), QueueError> {
        let jobs = tasks
            .into_iter()
            .map(|t| {
                NewJob::from_task(
                    t,
                    self.config.max_attempts,
                    self.config.default_kind.as_deref(),
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        // Inside a handler of this queue: handed on with its acknowledgement.
        let mut jobs = Some(jobs);
        let _ = HAND_ON.try_with(|h| {
            if *h.queue == *self.keys.base {
                h.jobs.borrow_mut().extend(jobs.take().unwrap_or_default());
            }
        });
        let Some(jobs) = jobs else {
            return Ok(());
        };
        self.register_queue().await;
        push_jobs(&mut self.conn, &self.keys, jobs).await?;
        self.wake.notify_waiters();
        Ok(())
    }
}

impl RedisPersistence {
    /// Gives jobs this handle leased but did not start back to the front of `ready`, their
    /// attempt taken back.
    async fn release(
        &mut self,
        tasks: Vec<Task<Vec<u8>>>,
        worker: &str,
    ) -> Result<u64, QueueError> {
        let pairs: Vec<(String, u64)> = {
            let mut held = lock(&self.local.held);
            tasks
                .iter()
                .filter_map(|t| t.task_id().map(|id| id.to_string()))
                .filter_map(|id| held.remove(&id).map(|h| (id, h.attempt)))
                .collect()
        };
        if pairs.is_empty() {
            return Ok(0);
        }
        let mut inv = invocation(&scripts::RELEASE, &self.keys);
        inv.arg(worker);
        for (id, n) in &pairs {
            inv.arg(id).arg(*n);
        }
        let released: u64 = inv.invoke_async(&mut self.conn).await?;
        tracing::debug!(queue = %self.config.queue, released, "buffered jobs given back");
        Ok(released)
    }

    /// Fetches the next batch in the background ([`QueueConfig::prefetch`]), unless the
    /// worker is stopping.
    fn fetch_ahead(&self, worker: &WorkerContext) {
        if !self.config.prefetch || worker.is_shutting_down() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let mut this = self.clone();
        let worker = worker.name().to_owned();
        let ahead = runtime.spawn(async move { this.fetch(&worker).await });
        *lock(&self.local.ahead) = Some(ahead);
    }

    /// At close: gives back the batch fetched ahead, if any.
    pub(crate) async fn give_back_ahead(&mut self, worker: &str) {
        let ahead = lock(&self.local.ahead).take();
        let Some(Ok(Ok(tasks))) = (match ahead {
            Some(ahead) => Some(ahead.await),
            None => None,
        }) else {
            return;
        };
        if let Err(e) = self.release(tasks, worker).await {
            tracing::warn!(queue = %self.config.queue, error = %e, "giving back jobs fetched ahead failed; their leases will expire");
        }
    }
}

impl RedisPersistence {
    /// What to tell Redis about one finished attempt, or `None` if this handle no longer
    /// holds its lease.
    fn settle(&self, result: TaskResult<()>) -> Option<AckGroup> {
        let id = result.task_id.to_string();
        let hand_on = lock(&self.local.handed_on).remove(&id).unwrap_or_default();
        let Held { attempt, has_ikey } = lock(&self.local.held).remove(&id)?;
        let asked_delay = lock(&self.local.retry_after).remove(&id);
        let error = match &result.result {
            Ok(()) => String::new(),
            Err(e) => truncate(e.clone()),
        };
        let (outcome, delay) = match (&result.status, &result.result) {
            (Status::Done, Ok(())) => ("ok", Duration::ZERO),
            // AbortError (or a cancelled task context): no more attempts.
            (Status::Killed, _) => ("dead", Duration::ZERO),
            // RetryAfterError / DeferredError: the delay they asked for.
            (Status::Pending, _) => (
                "retry",
                asked_delay.unwrap_or_else(|| self.config.backoff.delay(attempt)),
            ),
            _ => ("retry", self.config.backoff.delay(attempt)),
        };
        if outcome != "ok" && !hand_on.is_empty() {
            tracing::debug!(queue = %self.config.queue, job = %id, jobs = hand_on.len(), "a job that did not succeed hands nothing on");
        }
        Some(AckGroup {
            id,
            attempt,
            has_ikey,
            outcome,
            delay_ms: millis(delay),
            error,
            hand_on: if outcome == "ok" { hand_on } else { Vec::new() },
        })
    }

    /// Sends a job this worker leased but cannot decode straight to dead.
    pub(crate) async fn bury(&mut self, worker: &str, id: String, error: String) {
        let Some(Held { attempt, has_ikey }) = lock(&self.local.held).remove(&id) else {
            return;
        };
        let group = AckGroup {
            id,
            attempt,
            has_ikey,
            outcome: "dead",
            delay_ms: 0,
            error: truncate(error),
            hand_on: Vec::new(),
        };
        self.ack(worker, vec![group]).await;
    }
}
