//! The Redis queue (`workflows::queue::redis`) against a real Redis at `AG_TEST_REDIS_URL`
//! (default `redis://127.0.0.1:6379`).
//!
//! Every test works in its own namespace (`agtest:<test>:<uuid>`) and deletes it at the end,
//! even when it fails, so the suite can run twice at once.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime},
};

use apalis::layers::WorkerBuilderExt as _;
use apalis_core::{
    backend::TaskSink as _,
    error::{AbortError, BoxDynError, RetryAfterError, WorkerError},
    task::{attempt::Attempt, builder::TaskBuilder, data::Data, metadata::Meta},
    worker::builder::WorkerBuilder,
};
use futures_util::SinkExt as _;
use redis::{AsyncCommands as _, Commands as _, aio::ConnectionManager};
use serde::{Deserialize, Serialize};
use tokio::{sync::oneshot, task::JoinHandle};
use workflows::queue::redis::{
    CancelOutcome, Enqueue, JobFilter, JobKind, JobStatus, QueueAdmin, QueueConfig, QueueCounts,
    RedisQueue, RetryOutcome, connect, unique_worker_name,
};

fn redis_url() -> String {
    std::env::var("AG_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A namespace of its own for one test, deleted on drop.
struct Ns {
    url: String,
    name: String,
    conn: ConnectionManager,
}

impl Ns {
    async fn new(test: &str) -> Self {
        let url = redis_url();
        let conn = connect(&url)
            .await
            .unwrap_or_else(|e| panic!("Redis at {url} (AG_TEST_REDIS_URL): {e}"));
        Self {
            name: format!("agtest:{test}:{}", uuid::Uuid::now_v7().simple()),
            url,
            conn,
        }
    }

    fn config(&self, queue: &str) -> QueueConfig {
        QueueConfig::new(queue)
            .namespace(self.name.clone())
            .poll_interval(Duration::from_millis(20))
    }

    fn queue<Args>(&self, config: QueueConfig) -> RedisQueue<Args> {
        RedisQueue::new(self.conn.clone(), config).expect("valid config")
    }

    fn admin(&self) -> QueueAdmin {
        QueueAdmin::new(self.conn.clone(), self.name.clone())
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let Ok(client) = redis::Client::open(self.url.as_str()) else {
            return;
        };
        let Ok(mut conn) = client.get_connection() else {
            return;
        };
        let keys: Vec<String> = match conn.scan_match(format!("{}:*", self.name)) {
            Ok(iter) => iter.filter_map(Result::ok).collect(),
            Err(_) => return,
        };
        for chunk in keys.chunks(500) {
            let _: Result<(), _> = conn.del(chunk);
        }
    }
}

/// A worker running on a Tokio task until [`Running::stop`].
struct Running {
    stop: Option<oneshot::Sender<()>>,
    handle: JoinHandle<Result<(), WorkerError>>,
}

impl Running {
    /// Graceful stop: in-flight jobs finish, buffered ones are given back.
    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        tokio::time::timeout(Duration::from_secs(30), &mut self.handle)
            .await
            .expect("worker stops within 30 s")
            .expect("worker task")
            .expect("worker ran without error");
    }
}

macro_rules! start_worker {
    ($queue:expr, $concurrency:expr, $handler:expr $(, $data:expr)*) => {{
        let (tx, rx) = oneshot::channel::<()>();
        let name = unique_worker_name("test");
        let worker = WorkerBuilder::new(name.as_str())
            .backend($queue)
            $(.data($data))*
            .concurrency($concurrency)
            .build($handler);
        let handle = tokio::spawn(worker.run_until(async move {
            let _ = rx.await;
            Ok::<(), std::io::Error>(())
        }));
        Running { stop: Some(tx), handle }
    }};
}

/// Polls `check` every 20 ms until it holds; panics after `timeout`.
async fn wait_for<F, Fut>(timeout: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn counts(admin: &QueueAdmin, queue: &str) -> QueueCounts {
    admin.counts(queue).await.expect("counts")
}

/// Per-job execution counters for jobs numbered `0..n`.
struct Tally {
    runs: Vec<AtomicU32>,
    total: AtomicU64,
}

impl Tally {
    fn new(n: usize) -> Arc<Self> {
        Arc::new(Self {
            runs: (0..n).map(|_| AtomicU32::new(0)).collect(),
            total: AtomicU64::new(0),
        })
    }

    fn assert_each_ran_once(&self) {
        let never: Vec<usize> = (0..self.runs.len())
            .filter(|&i| self.runs[i].load(Ordering::SeqCst) == 0)
            .take(10)
            .collect();
        let twice: Vec<usize> = (0..self.runs.len())
            .filter(|&i| self.runs[i].load(Ordering::SeqCst) > 1)
            .take(10)
            .collect();
        assert!(never.is_empty(), "jobs never run, e.g. {never:?}");
        assert!(twice.is_empty(), "jobs run more than once, e.g. {twice:?}");
        assert_eq!(self.total.load(Ordering::SeqCst), self.runs.len() as u64);
    }
}

async fn tally(job: u64, tally: Data<Arc<Tally>>) {
    tally.runs[job as usize].fetch_add(1, Ordering::SeqCst);
    tally.total.fetch_add(1, Ordering::SeqCst);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backlog_of_50k_runs_each_job_exactly_once() {
    const N: usize = 50_000;
    let ns = Ns::new("backlog").await;
    let config = ns.config("backlog").batch_size(50);
    let queue = ns.queue::<u64>(config);
    let admin = ns.admin();

    let started = Instant::now();
    let created = queue
        .enqueue_many((0..N as u64).map(|i| (i, Enqueue::new())))
        .await
        .expect("enqueue");
    assert_eq!(created.len(), N);
    assert!(created.iter().all(|e| e.created));
    let c = counts(&admin, "backlog").await;
    assert_eq!((c.pending, c.enqueued, c.done), (N as u64, N as u64, 0));
    let enqueued = started.elapsed();

    let t = Tally::new(N);
    let w1 = start_worker!(queue.clone(), 50, tally, t.clone());
    let w2 = start_worker!(queue.clone(), 50, tally, t.clone());
    wait_for(Duration::from_secs(90), "50,000 jobs done", || async {
        counts(&admin, "backlog").await.done == N as u64
    })
    .await;
    let processed = started.elapsed() - enqueued;
    w1.stop().await;
    w2.stop().await;

    t.assert_each_ran_once();
    let c = counts(&admin, "backlog").await;
    assert_eq!(
        (c.pending, c.running, c.failed, c.dead, c.done, c.reclaimed),
        (0, 0, 0, 0, N as u64, 0)
    );
    eprintln!("backlog: enqueued {N} in {enqueued:?}, processed in {processed:?}");
    assert!(
        processed < Duration::from_secs(60),
        "50,000 jobs took {processed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_thousand_due_scheduled_jobs_are_promoted_and_done() {
    const N: usize = 20_000;
    let ns = Ns::new("scheduled").await;
    let queue = ns.queue::<u64>(ns.config("sched"));
    let admin = ns.admin();

    // Due a little later (so that they are created scheduled, even on a slow machine), then
    // left to fall due: 20,000 due jobs in the scheduled set, the case that stops
    // apalis-redis (it moves the whole set at once).
    let due = SystemTime::now() + Duration::from_secs(4);
    queue
        .enqueue_many((0..N as u64).map(|i| (i, Enqueue::new().at(due))))
        .await
        .expect("enqueue");
    let c = counts(&admin, "sched").await;
    assert_eq!((c.scheduled, c.pending), (N as u64, 0));
    if let Ok(left) = due.duration_since(SystemTime::now()) {
        tokio::time::sleep(left + Duration::from_millis(100)).await;
    }
    // Nothing moves them until a worker fetches.
    assert_eq!(counts(&admin, "sched").await.scheduled, N as u64);
    // A job due in the past is ready at once.
    let past = queue
        .enqueue(
            &0,
            Enqueue::new().at(SystemTime::now() - Duration::from_secs(3600)),
        )
        .await
        .expect("enqueue");
    let c = counts(&admin, "sched").await;
    assert_eq!((c.scheduled, c.pending), (N as u64, 1));
    admin.cancel("sched", &past.id).await.expect("cancel");

    let t = Tally::new(N);
    let w1 = start_worker!(queue.clone(), 50, tally, t.clone());
    let w2 = start_worker!(queue.clone(), 50, tally, t.clone());
    wait_for(
        Duration::from_secs(60),
        "20,000 scheduled jobs done",
        || async { counts(&admin, "sched").await.done == N as u64 },
    )
    .await;
    w1.stop().await;
    w2.stop().await;
    t.assert_each_ran_once();
    let c = counts(&admin, "sched").await;
    assert_eq!((c.scheduled, c.pending, c.running), (0, 0, 0));
}

/// The job of the `queue_worker` example.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SlowJob {
    id: u64,
    sleep_ms: u64,
}

/// The `queue_worker` example binary, built beside this test (or built now).
fn queue_worker_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    let bin = profile_dir.join("examples").join("queue_worker");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = std::process::Command::new(cargo)
            .args(["build", "-p", "workflows", "--example", "queue_worker"])
            .status()
            .expect("running cargo build");
        assert!(status.success(), "building the queue_worker example");
    }
    assert!(bin.exists(), "{} missing", bin.display());
    bin
}

#[derive(Default)]
struct Completions(Mutex<Vec<(u64, usize, Instant)>>);

impl Completions {
    fn record(&self, id: u64, attempt: usize) {
        self.0.lock().unwrap().push((id, attempt, Instant::now()));
    }
}

async fn complete_fast(
    job: SlowJob,
    attempt: Attempt,
    done: Data<Arc<Completions>>,
) -> Result<(), BoxDynError> {
    done.record(job.id, attempt.current());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_of_a_killed_worker_process_is_redone_after_its_lease() {
    let lease = Duration::from_secs(2);
    let ns = Ns::new("crash").await;
    let config = ns.config("crash").lease(lease).batch_size(1);
    let queue = ns.queue::<SlowJob>(config.clone());
    let admin = ns.admin();
    let mut conn = ns.conn.clone();
    let started_key = format!("{}:probe:crash:started", ns.name);
    let finished_key = format!("{}:probe:crash:finished", ns.name);

    let job = queue
        .enqueue(
            &SlowJob {
                id: 1,
                sleep_ms: 60_000,
            },
            Enqueue::new(),
        )
        .await
        .expect("enqueue");

    let mut child = std::process::Command::new(queue_worker_binary())
        .args([
            "--redis",
            &ns.url,
            "--namespace",
            &ns.name,
            "--queue",
            "crash",
        ])
        .args(["--lease-ms", "2000", "--concurrency", "1", "--batch", "1"])
        .args(["--name", "doomed"])
        .spawn()
        .expect("starting queue_worker");
    let child_pid = child.id();
    let mut started: Vec<String> = Vec::new();
    let start = Instant::now();
    while started.is_empty() {
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("the worker process did not start the job within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        started = conn.lrange(&started_key, 0, -1).await.unwrap();
    }
    assert_eq!(started, vec![format!("1:1:{child_pid}")]);
    let info = admin
        .job("crash", &job.id, false)
        .await
        .unwrap()
        .expect("job");
    assert_eq!(info.status, JobStatus::Running);
    let holder = info.worker.expect("holder");
    assert!(
        holder.starts_with("doomed@") && holder.contains(&format!(":{child_pid}:")),
        "{holder}"
    );
    // Mid-task, past at least one lease renewal.
    tokio::time::sleep(Duration::from_millis(800)).await;

    child.kill().expect("SIGKILL");
    let killed_at = Instant::now();
    child.wait().expect("reaping the worker");

    let done = Arc::new(Completions::default());
    let rescuer = start_worker!(queue.clone(), 4, complete_fast, done.clone());
    wait_for(Duration::from_secs(10), "the job redone", || async {
        !done.0.lock().unwrap().is_empty()
    })
    .await;
    let redone_after = done.0.lock().unwrap()[0].2 - killed_at;
    // Reclaimed when the lease ran out: at most `lease` after the kill (the last renewal was
    // before it), plus polling; and not before the lease could have expired.
    assert!(
        redone_after <= lease + Duration::from_millis(1500),
        "redone {redone_after:?} after the kill"
    );
    assert!(
        redone_after >= lease - config.heartbeat_interval() - Duration::from_millis(200),
        "redone only {redone_after:?} after the kill: before the lease expired?"
    );
    // Exactly once after the kill: give a duplicate time to show up.
    tokio::time::sleep(lease + Duration::from_millis(500)).await;
    rescuer.stop().await;
    let runs: Vec<(u64, usize)> = done
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|(id, attempt, _)| (*id, *attempt))
        .collect();
    assert_eq!(runs, vec![(1, 2)], "redone once, as its second attempt");
    let finished: Vec<String> = conn.lrange(&finished_key, 0, -1).await.unwrap();
    assert!(
        finished.is_empty(),
        "the killed worker finished: {finished:?}"
    );
    let c = counts(&admin, "crash").await;
    assert_eq!(
        (c.done, c.running, c.pending, c.reclaimed, c.dead),
        (1, 0, 0, 1, 0)
    );
}

#[derive(Default)]
struct Attempts(Mutex<Vec<(usize, Instant)>>);

impl Attempts {
    fn record(&self, attempt: usize) {
        self.0.lock().unwrap().push((attempt, Instant::now()));
    }
}

async fn always_fails(
    _job: u64,
    attempt: Attempt,
    seen: Data<Arc<Attempts>>,
) -> Result<(), BoxDynError> {
    seen.record(attempt.current());
    Err("boom: the dependency is down".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_job_retries_with_backoff_then_goes_dead() {
    let ns = Ns::new("retries").await;
    let base = Duration::from_millis(300);
    let config = ns
        .config("retries")
        .max_attempts(3)
        .backoff(base, Duration::from_secs(5));
    let queue = ns.queue::<u64>(config);
    let admin = ns.admin();
    let job = queue.enqueue(&1, Enqueue::new()).await.unwrap();
    let seen = Arc::new(Attempts::default());
    let worker = start_worker!(queue.clone(), 2, always_fails, seen.clone());

    // After the first failure the job waits for its retry.
    wait_for(
        Duration::from_secs(5),
        "a failed job awaiting retry",
        || async { counts(&admin, "retries").await.failed == 1 },
    )
    .await;
    let waiting = admin.job("retries", &job.id, false).await.unwrap().unwrap();
    assert_eq!(waiting.status, JobStatus::Failed);
    assert_eq!(waiting.attempt, 1);

    wait_for(Duration::from_secs(15), "the job dead", || async {
        counts(&admin, "retries").await.dead == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    worker.stop().await;

    let seen = seen.0.lock().unwrap().clone();
    let attempts: Vec<usize> = seen.iter().map(|(a, _)| *a).collect();
    assert_eq!(attempts, vec![1, 2, 3], "three attempts, then no more");
    let gap1 = seen[1].1 - seen[0].1;
    let gap2 = seen[2].1 - seen[1].1;
    // Equal jitter: at least half the nominal delay (300 ms, then 600 ms).
    assert!(gap1 >= base / 2, "first retry after {gap1:?}");
    assert!(gap2 >= base, "second retry after {gap2:?}");
    assert!(gap2 < Duration::from_secs(3), "second retry after {gap2:?}");

    let dead = admin.job("retries", &job.id, false).await.unwrap().unwrap();
    assert_eq!(dead.status, JobStatus::Dead);
    assert_eq!((dead.attempt, dead.max_attempts), (3, 3));
    assert!(
        dead.last_error.as_deref().unwrap_or("").contains("boom"),
        "{:?}",
        dead.last_error
    );
    let c = counts(&admin, "retries").await;
    assert_eq!((c.failed, c.dead, c.dead_total, c.done), (0, 1, 1, 0));
}

async fn aborts(_job: u64, attempt: Attempt, seen: Data<Arc<Attempts>>) -> Result<(), BoxDynError> {
    seen.record(attempt.current());
    Err(AbortError::new("the cluster no longer exists").into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_error_goes_to_dead_at_once() {
    let ns = Ns::new("abort").await;
    let queue = ns.queue::<u64>(
        ns.config("abort")
            .backoff(Duration::from_millis(10), Duration::from_millis(10)),
    );
    let admin = ns.admin();
    let job = queue.enqueue(&1, Enqueue::new()).await.unwrap();
    let seen = Arc::new(Attempts::default());
    let worker = start_worker!(queue.clone(), 2, aborts, seen.clone());
    wait_for(Duration::from_secs(5), "the job dead", || async {
        counts(&admin, "abort").await.dead == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    worker.stop().await;
    assert_eq!(seen.0.lock().unwrap().len(), 1, "no retry after an abort");
    let dead = admin.job("abort", &job.id, false).await.unwrap().unwrap();
    assert_eq!(
        (dead.status, dead.attempt, dead.max_attempts),
        (JobStatus::Dead, 1, 5)
    );
    assert!(
        dead.last_error
            .as_deref()
            .unwrap_or("")
            .contains("the cluster no longer exists"),
        "{:?}",
        dead.last_error
    );
}

async fn asks_to_retry_later(
    _job: u64,
    attempt: Attempt,
    seen: Data<Arc<Attempts>>,
) -> Result<(), BoxDynError> {
    seen.record(attempt.current());
    if attempt.current() == 1 {
        return Err(RetryAfterError::new("rate limited", Duration::from_millis(800)).into());
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_error_sets_the_delay() {
    let ns = Ns::new("retry-after").await;
    // The backoff alone would retry within 10 ms.
    let config = ns
        .config("ra")
        .backoff(Duration::from_millis(10), Duration::from_millis(10));
    let queue = ns.queue::<u64>(config);
    let admin = ns.admin();
    queue.enqueue(&1, Enqueue::new()).await.unwrap();
    let seen = Arc::new(Attempts::default());
    let worker = start_worker!(queue.clone(), 2, asks_to_retry_later, seen.clone());
    wait_for(Duration::from_secs(5), "the job done", || async {
        counts(&admin, "ra").await.done == 1
    })
    .await;
    worker.stop().await;
    let seen = seen.0.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    let gap = seen[1].1 - seen[0].1;
    assert!(gap >= Duration::from_millis(780), "retried after {gap:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_key_creates_one_job() {
    let ns = Ns::new("idem").await;
    let queue = ns.queue::<u64>(ns.config("idem"));
    let admin = ns.admin();

    let first = queue
        .enqueue(&1, Enqueue::new().idempotency_key("provision-cluster-7"))
        .await
        .unwrap();
    let second = queue
        .enqueue(&2, Enqueue::new().idempotency_key("provision-cluster-7"))
        .await
        .unwrap();
    assert!(first.created);
    assert!(!second.created);
    assert_eq!(first.id, second.id);
    // Through apalis' TaskSink too.
    let mut sink = queue.clone();
    sink.push_task(
        TaskBuilder::new(3)
            .idempotency_key("provision-cluster-7")
            .build(),
    )
    .await
    .unwrap();
    let c = counts(&admin, "idem").await;
    assert_eq!((c.pending, c.enqueued), (1, 1));

    let t = Tally::new(4);
    let worker = start_worker!(queue.clone(), 2, tally, t.clone());
    wait_for(Duration::from_secs(5), "the job done", || async {
        counts(&admin, "idem").await.done == 1
    })
    .await;
    // Done, but the key still names it: no second job.
    let again = queue
        .enqueue(&2, Enqueue::new().idempotency_key("provision-cluster-7"))
        .await
        .unwrap();
    assert_eq!(
        (again.id.as_str(), again.created),
        (first.id.as_str(), false)
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    worker.stop().await;
    let runs: Vec<u32> = t.runs.iter().map(|r| r.load(Ordering::SeqCst)).collect();
    assert_eq!(runs, vec![0, 1, 0, 0], "only the first payload ran, once");
    assert_eq!(counts(&admin, "idem").await.enqueued, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_sink_options_are_kept() {
    let ns = Ns::new("sink").await;
    let queue = ns.queue::<u64>(ns.config("sink"));
    let admin = ns.admin();
    let mut sink = queue.clone();
    sink.push(5).await.unwrap();
    sink.push_task(
        TaskBuilder::new(6)
            .max_attempts(2)
            .metadata(&JobKind::new("dns.sync"))
            .run_after(Duration::from_secs(3600))
            .build(),
    )
    .await
    .unwrap();
    let c = counts(&admin, "sink").await;
    assert_eq!((c.pending, c.scheduled), (1, 1));
    let scheduled = admin
        .list("sink", JobFilter::new(JobStatus::Scheduled).with_args())
        .await
        .unwrap();
    assert_eq!(scheduled.jobs.len(), 1);
    let job = &scheduled.jobs[0];
    assert_eq!(job.kind.as_deref(), Some("dns.sync"));
    assert_eq!((job.max_attempts, job.attempt), (2, 0));
    assert_eq!(job.args.as_deref(), Some(&b"6"[..]));
    let due_in = job.run_at_ms.unwrap() as i64 - job.created_at_ms.unwrap() as i64;
    assert!((3_598_000..=3_601_000).contains(&due_in), "{due_in}");
    let pending = admin
        .list("sink", JobFilter::new(JobStatus::Pending))
        .await
        .unwrap();
    assert_eq!(pending.jobs[0].max_attempts, 5, "the queue's default");
    assert_eq!(pending.jobs[0].kind, None);
    assert!(admin.queues().await.unwrap().contains(&"sink".to_owned()));
}

/// A task pushed with the id of a job the queue still holds is dropped (the engine names the
/// next stage's task so that a second push of it, after a lost acknowledgement, adds nothing),
/// and the default kind labels tasks pushed without one.
#[tokio::test]
async fn a_push_with_the_id_of_a_held_job_is_dropped() {
    let ns = Ns::new("dedupe").await;
    let queue = ns.queue::<u64>(ns.config("dedupe").default_kind("stage"));
    let admin = ns.admin();
    let mut sink = queue.clone();
    for args in [7, 8] {
        sink.push_task(
            TaskBuilder::new(args)
                .task_id(apalis_core::task::task_id::TaskId::from_string("named-1"))
                .build(),
        )
        .await
        .unwrap();
    }
    let c = counts(&admin, "dedupe").await;
    assert_eq!(c.pending, 1);
    let pending = admin
        .list("dedupe", JobFilter::new(JobStatus::Pending).with_args())
        .await
        .unwrap();
    assert_eq!(pending.jobs.len(), 1);
    assert_eq!(pending.jobs[0].id, "named-1");
    assert_eq!(
        pending.jobs[0].args.as_deref(),
        Some(&b"7"[..]),
        "the first push is kept"
    );
    assert_eq!(pending.jobs[0].kind.as_deref(), Some("stage"));
}

/// What the hand-on test's handler saw.
#[derive(Clone)]
struct HandOnTest {
    own: RedisQueue<u64>,
    other: RedisQueue<u64>,
    admin: QueueAdmin,
    /// (job, own queue's jobs created while it ran, other queue's jobs created then).
    seen: Arc<Mutex<Vec<(u64, u64, u64)>>>,
}

/// Jobs below 100 push job + 100 to their own queue and job to the other one, then succeed
/// (even) or abort (odd); the others only note that they ran.
async fn hands_on(job: u64, t: Data<HandOnTest>) -> Result<(), BoxDynError> {
    if job >= 100 {
        t.seen.lock().unwrap().push((job, 0, 0));
        return Ok(());
    }
    let created = |c: QueueCounts| c.enqueued;
    let own_before = created(t.admin.counts("handon").await?);
    let other_before = created(t.admin.counts("handon_other").await?);
    t.own.clone().push(job + 100).await?;
    t.other.clone().push(job).await?;
    let own_after = created(t.admin.counts("handon").await?);
    let other_after = created(t.admin.counts("handon_other").await?);
    t.seen
        .lock()
        .unwrap()
        .push((job, own_after - own_before, other_after - other_before));
    if job % 2 == 1 {
        return Err(AbortError::new("this one fails after pushing").into());
    }
    Ok(())
}

/// A handler's pushes to its own queue through apalis' `TaskSink` (apalis-workflow's next
/// stages) are created by its acknowledgement, in the same script: not while it runs, and not
/// at all if it fails. Pushes to another queue go out at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handlers_pushes_to_its_queue_go_out_with_its_acknowledgement() {
    let ns = Ns::new("handon").await;
    let own = ns.queue::<u64>(ns.config("handon"));
    let other = ns.queue::<u64>(ns.config("handon_other"));
    let admin = ns.admin();
    let test = HandOnTest {
        own: own.clone(),
        other,
        admin: admin.clone(),
        seen: Arc::default(),
    };
    let worker = start_worker!(own.clone(), 1, hands_on, test.clone());
    // One at a time, so that no other job of the queue is created while one runs.
    own.enqueue(&2, Enqueue::new()).await.unwrap();
    wait_for(Duration::from_secs(10), "jobs 2 and 102 done", || async {
        counts(&admin, "handon").await.done == 2
    })
    .await;
    own.enqueue(&3, Enqueue::new()).await.unwrap();
    wait_for(Duration::from_secs(10), "job 3 dead", || async {
        counts(&admin, "handon").await.dead == 1
    })
    .await;
    // Job 103 would have been created by now, had job 3 handed it on.
    tokio::time::sleep(Duration::from_millis(300)).await;
    worker.stop().await;

    let mut seen = test.seen.lock().unwrap().clone();
    seen.sort();
    assert_eq!(
        seen,
        vec![(2, 0, 1), (3, 0, 1), (102, 0, 0)],
        "nothing of its own queue created while a job ran, the other queue's at once; \
         only the job that succeeded handed on"
    );
    let c = counts(&admin, "handon").await;
    assert_eq!((c.enqueued, c.done, c.dead, c.pending), (3, 2, 1, 0));
    assert_eq!(counts(&admin, "handon_other").await.pending, 2);
}

/// The console test's job: `tag` picks the behaviour.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Tagged {
    tag: String,
}

#[derive(Clone, Default)]
struct Console {
    ran: Arc<Mutex<Vec<String>>>,
    release: Arc<tokio::sync::Notify>,
    kinds: Arc<Mutex<HashMap<String, Option<String>>>>,
}

async fn console_job(
    job: Tagged,
    attempt: Attempt,
    kind: Option<Meta<JobKind>>,
    console: Data<Console>,
) -> Result<(), BoxDynError> {
    console
        .kinds
        .lock()
        .unwrap()
        .insert(job.tag.clone(), kind.map(|k| k.0.0.clone()));
    if job.tag == "blocker" && attempt.current() == 1 {
        console.release.notified().await;
        return Err("the blocker failed".into());
    }
    console.ran.lock().unwrap().push(job.tag.clone());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_counts_lists_retries_and_cancels() {
    let ns = Ns::new("console").await;
    let config = ns.config("console").keep_done(100);
    let queue = ns.queue::<Tagged>(config);
    let admin = ns.admin();
    let tagged = |t: &str| Tagged { tag: t.to_owned() };

    let mut ids = HashMap::new();
    for (tag, kind) in [
        ("a1", "a"),
        ("b1", "b"),
        ("a2", "a"),
        ("b2", "b"),
        ("a3", "a"),
    ] {
        let e = queue
            .enqueue(&tagged(tag), Enqueue::new().kind(kind))
            .await
            .unwrap();
        ids.insert(tag, e.id);
    }
    for tag in ["later1", "later2"] {
        let e = queue
            .enqueue(
                &tagged(tag),
                Enqueue::new().kind("a").after(Duration::from_secs(3600)),
            )
            .await
            .unwrap();
        ids.insert(tag, e.id);
    }
    let c = counts(&admin, "console").await;
    assert_eq!(
        (c.pending, c.scheduled, c.running, c.enqueued),
        (5, 2, 0, 7)
    );

    // Pages of pending jobs, next to run first.
    let mut order = Vec::new();
    let mut filter = JobFilter::new(JobStatus::Pending).limit(2);
    let mut pages = 0;
    loop {
        let page = admin.list("console", filter.clone()).await.unwrap();
        pages += 1;
        assert!(page.jobs.len() <= 2);
        order.extend(page.jobs.iter().map(|j| j.id.clone()));
        match page.next_cursor {
            Some(c) => filter = filter.cursor(c),
            None => break,
        }
    }
    let expected: Vec<String> = ["a1", "b1", "a2", "b2", "a3"]
        .iter()
        .map(|t| ids[t].clone())
        .collect();
    assert_eq!(order, expected);
    assert_eq!(pages, 3);
    let b_jobs = admin
        .list("console", JobFilter::new(JobStatus::Pending).kind("b"))
        .await
        .unwrap();
    let b_ids: Vec<&str> = b_jobs.jobs.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(b_ids, vec![ids["b1"].as_str(), ids["b2"].as_str()]);
    assert!(b_jobs.jobs.iter().all(|j| j.kind.as_deref() == Some("b")));

    // Cancel: a pending job (left as a tombstone), a scheduled one; not twice.
    assert_eq!(
        admin.cancel("console", &ids["a2"]).await.unwrap(),
        CancelOutcome::Cancelled {
            from: JobStatus::Pending
        }
    );
    assert_eq!(
        admin.cancel("console", &ids["a2"]).await.unwrap(),
        CancelOutcome::NotCancellable(JobStatus::Cancelled)
    );
    assert_eq!(
        admin.cancel("console", &ids["later1"]).await.unwrap(),
        CancelOutcome::Cancelled {
            from: JobStatus::Scheduled
        }
    );
    assert_eq!(
        admin.cancel("console", &ids["later1"]).await.unwrap(),
        CancelOutcome::NotFound
    );
    // Retry: a scheduled job runs now, first.
    assert_eq!(
        admin.retry("console", &ids["later2"]).await.unwrap(),
        RetryOutcome::Retried {
            from: JobStatus::Scheduled
        }
    );
    assert_eq!(
        admin.retry("console", &ids["a1"]).await.unwrap(),
        RetryOutcome::NotRetriable(JobStatus::Pending)
    );
    let c = counts(&admin, "console").await;
    assert_eq!((c.pending, c.scheduled, c.cancelled), (5, 0, 2));
    let first = admin
        .list("console", JobFilter::new(JobStatus::Pending).limit(1))
        .await
        .unwrap();
    assert_eq!(first.jobs[0].id, ids["later2"]);
    let cancelled = admin
        .list("console", JobFilter::new(JobStatus::Cancelled))
        .await
        .unwrap();
    let mut cancelled_ids: Vec<String> = cancelled.jobs.into_iter().map(|j| j.id).collect();
    cancelled_ids.sort();
    let mut want = vec![ids["a2"].clone(), ids["later1"].clone()];
    want.sort();
    assert_eq!(cancelled_ids, want);

    // A job that blocks while running, then fails for good (one attempt).
    let blocker = queue
        .enqueue(&tagged("blocker"), Enqueue::new().kind("c").max_attempts(1))
        .await
        .unwrap();
    let console = Console::default();
    let worker = start_worker!(queue.clone(), 4, console_job, console.clone());
    wait_for(Duration::from_secs(5), "the others done", || async {
        let c = counts(&admin, "console").await;
        c.done == 5 && c.running == 1
    })
    .await;
    let running = admin
        .list("console", JobFilter::new(JobStatus::Running))
        .await
        .unwrap();
    assert_eq!(running.jobs.len(), 1);
    assert_eq!(running.jobs[0].id, blocker.id);
    assert!(
        running.jobs[0]
            .worker
            .as_deref()
            .unwrap()
            .starts_with("test@")
    );
    assert!(running.jobs[0].lease_deadline_ms.is_some());
    assert_eq!(
        admin.cancel("console", &blocker.id).await.unwrap(),
        CancelOutcome::Running
    );
    console.release.notify_waiters();
    wait_for(Duration::from_secs(5), "the blocker dead", || async {
        counts(&admin, "console").await.dead == 1
    })
    .await;
    assert_eq!(
        admin.cancel("console", &blocker.id).await.unwrap(),
        CancelOutcome::NotCancellable(JobStatus::Dead)
    );
    let dead = admin
        .list("console", JobFilter::new(JobStatus::Dead).kind("c"))
        .await
        .unwrap();
    assert_eq!(dead.jobs.len(), 1);
    assert_eq!(
        dead.jobs[0].last_error.as_deref(),
        Some("the blocker failed")
    );
    // Retry from dead: attempt kept (1 of 1), it gets one more and succeeds.
    assert_eq!(
        admin.retry("console", &blocker.id).await.unwrap(),
        RetryOutcome::Retried {
            from: JobStatus::Dead
        }
    );
    wait_for(Duration::from_secs(5), "the blocker done", || async {
        counts(&admin, "console").await.done == 6
    })
    .await;
    worker.stop().await;

    let mut ran = console.ran.lock().unwrap().clone();
    ran.sort();
    assert_eq!(ran, vec!["a1", "a3", "b1", "b2", "blocker", "later2"]);
    assert_eq!(
        console.kinds.lock().unwrap().get("b1"),
        Some(&Some("b".to_owned())),
        "handlers read the kind"
    );
    let c = counts(&admin, "console").await;
    assert_eq!(
        (c.pending, c.running, c.dead, c.done, c.cancelled, c.retried),
        (0, 0, 0, 6, 2, 2)
    );
    let done = admin
        .list("console", JobFilter::new(JobStatus::Done).limit(10))
        .await
        .unwrap();
    assert_eq!(done.jobs.len(), 6);
    assert_eq!(done.jobs[0].id, blocker.id, "newest first");
}

async fn slow_tally(job: u64, tally: Data<Arc<Tally>>) {
    tokio::time::sleep(Duration::from_millis(300)).await;
    tally.runs[job as usize].fetch_add(1, Ordering::SeqCst);
    tally.total.fetch_add(1, Ordering::SeqCst);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_stop_gives_buffered_jobs_back() {
    let ns = Ns::new("close").await;
    let queue = ns.queue::<u64>(ns.config("close").batch_size(10));
    let admin = ns.admin();
    let created = queue
        .enqueue_many((0..5u64).map(|i| (i, Enqueue::new())))
        .await
        .unwrap();
    let t = Tally::new(5);
    let worker = start_worker!(queue.clone(), 1, slow_tally, t.clone());
    // One running, four leased and buffered behind the concurrency limit.
    wait_for(Duration::from_secs(5), "the batch leased", || async {
        counts(&admin, "close").await.running == 5
    })
    .await;
    worker.stop().await;

    assert_eq!(t.total.load(Ordering::SeqCst), 1);
    assert_eq!(t.runs[0].load(Ordering::SeqCst), 1);
    let c = counts(&admin, "close").await;
    assert_eq!((c.done, c.running, c.pending), (1, 0, 4));
    let pending = admin
        .list("close", JobFilter::new(JobStatus::Pending))
        .await
        .unwrap();
    let order: Vec<&str> = pending.jobs.iter().map(|j| j.id.as_str()).collect();
    let want: Vec<&str> = created[1..].iter().map(|e| e.id.as_str()).collect();
    assert_eq!(order, want, "given back in order, at the front");
    assert!(
        pending.jobs.iter().all(|j| j.attempt == 0),
        "the attempts the leases counted are taken back"
    );
}

/// A worker fetches its next batch while it takes the one before (`QueueConfig::prefetch`,
/// on by default): it leases up to two batches. A graceful stop gives back both, in order;
/// without prefetching it leases one batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_fetches_its_next_batch_ahead_and_gives_it_back_at_a_graceful_stop() {
    let ns = Ns::new("ahead").await;
    let queue = ns.queue::<u64>(ns.config("ahead").batch_size(3));
    let admin = ns.admin();
    let created = queue
        .enqueue_many((0..8u64).map(|i| (i, Enqueue::new())))
        .await
        .unwrap();
    let t = Tally::new(8);
    let worker = start_worker!(queue.clone(), 1, slow_tally, t.clone());
    // One running, two buffered behind the concurrency limit, three more fetched ahead.
    wait_for(Duration::from_secs(5), "two batches leased", || async {
        counts(&admin, "ahead").await.running == 6
    })
    .await;
    worker.stop().await;

    assert_eq!(t.total.load(Ordering::SeqCst), 1);
    let c = counts(&admin, "ahead").await;
    assert_eq!((c.done, c.running, c.pending), (1, 0, 7));
    let pending = admin
        .list("ahead", JobFilter::new(JobStatus::Pending))
        .await
        .unwrap();
    let order: Vec<&str> = pending.jobs.iter().map(|j| j.id.as_str()).collect();
    let want: Vec<&str> = created[1..].iter().map(|e| e.id.as_str()).collect();
    assert_eq!(order, want, "given back in order, at the front");
    assert!(pending.jobs.iter().all(|j| j.attempt == 0));

    // Without prefetching: one batch at a time.
    let queue = ns.queue::<u64>(ns.config("ahead").batch_size(3).prefetch(false));
    let worker = start_worker!(queue, 1, slow_tally, t.clone());
    wait_for(Duration::from_secs(5), "one batch leased", || async {
        counts(&admin, "ahead").await.running == 3
    })
    .await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(counts(&admin, "ahead").await.running, 3);
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_are_renewed_while_jobs_run_or_wait_in_the_buffer() {
    let ns = Ns::new("renew").await;
    let config = ns
        .config("renew")
        .lease(Duration::from_millis(1500))
        .batch_size(5);
    let queue = ns.queue::<u64>(config);
    let admin = ns.admin();
    queue
        .enqueue_many((0..3u64).map(|i| (i, Enqueue::new())))
        .await
        .unwrap();
    let t = Tally::new(3);
    // Each job takes 1.8 s, more than a lease; the first worker leases all three at once and
    // runs them one at a time, so the last waits 3.6 s in its buffer. A second worker stands
    // by to take any lease that expires. (A lease of 600 ms, renewed every 200 ms, expired
    // once under the full suite's load on 2 cores: a renewal was late by more than 400 ms.)
    async fn long(job: u64, tally: Data<Arc<Tally>>) {
        tokio::time::sleep(Duration::from_millis(1800)).await;
        tally.runs[job as usize].fetch_add(1, Ordering::SeqCst);
        tally.total.fetch_add(1, Ordering::SeqCst);
    }
    let w1 = start_worker!(queue.clone(), 1, long, t.clone());
    wait_for(Duration::from_secs(5), "the three leased", || async {
        counts(&admin, "renew").await.running == 3
    })
    .await;
    let w2 = start_worker!(queue.clone(), 1, long, t.clone());
    wait_for(Duration::from_secs(20), "the three done", || async {
        counts(&admin, "renew").await.done == 3
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    w1.stop().await;
    w2.stop().await;
    t.assert_each_ran_once();
    let c = counts(&admin, "renew").await;
    assert_eq!((c.reclaimed, c.done, c.running), (0, 3, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_job_goes_dead_and_the_worker_goes_on() {
    let ns = Ns::new("poison").await;
    let queue = ns.queue::<u64>(ns.config("poison"));
    let admin = ns.admin();
    let mut raw = queue.clone();
    raw.send(TaskBuilder::new(b"\"not a number\"".to_vec()).build())
        .await
        .unwrap();
    queue.enqueue(&0, Enqueue::new()).await.unwrap();
    let t = Tally::new(1);
    let worker = start_worker!(queue.clone(), 2, tally, t.clone());
    wait_for(Duration::from_secs(5), "one done, one dead", || async {
        let c = counts(&admin, "poison").await;
        c.done == 1 && c.dead == 1
    })
    .await;
    worker.stop().await;
    t.assert_each_ran_once();
    let dead = admin
        .list("poison", JobFilter::new(JobStatus::Dead))
        .await
        .unwrap();
    assert!(
        dead.jobs[0]
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("do not decode"),
        "{:?}",
        dead.jobs[0].last_error
    );
}
