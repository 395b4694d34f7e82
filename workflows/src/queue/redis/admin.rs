//! [`QueueAdmin`]: what the job console reads and does.

use std::collections::HashMap;

use ::redis::{AsyncCommands, Value, aio::ConnectionManager};

use super::{
    config::{Keys, QueueConfig, valid_name},
    error::QueueError,
    scripts::{self, array, invocation, opt_bytes, opt_i64, opt_string, protocol},
};

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobStatus {
    /// Ready, waiting for a worker.
    Pending,
    /// Leased by a worker.
    Running,
    /// Waiting for its first run at a later time.
    Scheduled,
    /// Failed at least once, waiting for its next attempt.
    Failed,
    /// Out of attempts, aborted, or undecodable: kept with its last error until retried or
    /// trimmed.
    Dead,
    /// Finished successfully (only ids are kept, and only with `keep_done`).
    Done,
    /// Cancelled from the console (only ids are kept).
    Cancelled,
}

impl JobStatus {
    fn as_arg(self) -> &'static str {
        match self {
            JobStatus::Pending => "pending",
            JobStatus::Running => "running",
            JobStatus::Scheduled => "scheduled",
            JobStatus::Failed => "failed",
            JobStatus::Dead => "dead",
            JobStatus::Done => "done",
            JobStatus::Cancelled => "cancelled",
        }
    }

    /// From an envelope's state field (or a list's status name).
    fn from_state(s: &str) -> Option<Self> {
        Some(match s {
            "ready" | "pending" => JobStatus::Pending,
            "running" => JobStatus::Running,
            "delayed" | "scheduled" => JobStatus::Scheduled,
            "retry" | "failed" => JobStatus::Failed,
            "dead" => JobStatus::Dead,
            "done" => JobStatus::Done,
            "cancelled" => JobStatus::Cancelled,
            _ => return None,
        })
    }
}

/// Sizes and counters of one queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueCounts {
    /// Ready jobs.
    pub pending: u64,
    /// Leased jobs.
    pub running: u64,
    /// Jobs waiting for their first run (attempt 0).
    pub scheduled: u64,
    /// Jobs waiting for a retry (attempt > 0).
    pub failed: u64,
    /// Dead jobs kept.
    pub dead: u64,
    /// Jobs done, ever.
    pub done: u64,
    /// Jobs cancelled, ever.
    pub cancelled: u64,
    /// Jobs created, ever.
    pub enqueued: u64,
    /// Expired leases reclaimed, ever.
    pub reclaimed: u64,
    /// Jobs retried from the console, ever.
    pub retried: u64,
    /// Jobs that went dead, ever.
    pub dead_total: u64,
    /// Workers seen within the worker TTL.
    pub workers: u64,
}

/// One job as the console shows it. Times are Unix milliseconds (Redis server clock).
#[derive(Debug, Clone, PartialEq)]
pub struct JobInfo {
    /// The job's id.
    pub id: String,
    /// Where it is.
    pub status: JobStatus,
    /// Attempts started so far (the running one included).
    pub attempt: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// Its [`JobKind`](super::JobKind) label.
    pub kind: Option<String>,
    /// Its idempotency key.
    pub idempotency_key: Option<String>,
    /// When it was created.
    pub created_at_ms: Option<u64>,
    /// When it is (or was) due.
    pub run_at_ms: Option<u64>,
    /// The last attempt's error.
    pub last_error: Option<String>,
    /// When it went dead, was done or cancelled.
    pub finished_at_ms: Option<u64>,
    /// When its current (or last) lease was taken.
    pub leased_at_ms: Option<u64>,
    /// The worker holding it, while running.
    pub worker: Option<String>,
    /// When its lease expires, while running.
    pub lease_deadline_ms: Option<u64>,
    /// apalis metadata it was enqueued with (the kind excluded).
    pub metadata: HashMap<String, String>,
    /// Its encoded (JSON) arguments, when asked for.
    pub args: Option<Vec<u8>>,
}

/// Which jobs to list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobFilter {
    /// Their status.
    pub status: JobStatus,
    /// Only this kind (done and cancelled jobs keep no kind: a kind matches none of them).
    pub kind: Option<String>,
    /// Where the previous page stopped ([`JobPage::next_cursor`]).
    pub cursor: Option<String>,
    /// Most jobs on the page (1..=500, default 50).
    pub limit: usize,
    /// Include the jobs' arguments.
    pub with_args: bool,
}

impl JobFilter {
    /// The first page of jobs in `status`.
    pub fn new(status: JobStatus) -> Self {
        Self {
            status,
            kind: None,
            cursor: None,
            limit: 50,
            with_args: false,
        }
    }

    /// Only jobs of `kind`.
    pub fn kind(mut self, kind: impl Into<String>) -> Self {
        self.kind = Some(kind.into());
        self
    }

    /// The page after `cursor`.
    pub fn cursor(mut self, cursor: impl Into<String>) -> Self {
        self.cursor = Some(cursor.into());
        self
    }

    /// At most `limit` jobs.
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    /// Include the arguments.
    pub fn with_args(mut self) -> Self {
        self.with_args = true;
        self
    }
}

/// A page of jobs.
#[derive(Debug, Clone, PartialEq)]
pub struct JobPage {
    /// The jobs, in the status' order (see [`QueueAdmin::list`]).
    pub jobs: Vec<JobInfo>,
    /// Cursor of the next page; `None` at the end. A page filtered by kind may hold fewer
    /// than `limit` jobs (even none) and still have a next page: each call examines a bounded
    /// window of entries.
    pub next_cursor: Option<String>,
}

/// What [`QueueAdmin::retry`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryOutcome {
    /// The job is ready now, at the front of the queue.
    Retried {
        /// Where it came from.
        from: JobStatus,
    },
    /// Only dead, failed and scheduled jobs can be retried.
    NotRetriable(JobStatus),
    /// No such job (or it is done).
    NotFound,
}

/// What [`QueueAdmin::cancel`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelOutcome {
    /// The job is removed and counted as cancelled.
    Cancelled {
        /// Where it came from.
        from: JobStatus,
    },
    /// Refused: the job is running. Its worker finishes the attempt; a handler that must stop
    /// early watches its own cancellation signal (the workflow engine's run tickets).
    Running,
    /// Refused: the job is dead (final already) or cancelled.
    NotCancellable(JobStatus),
    /// No such job (or it is done).
    NotFound,
}

/// A worker seen on a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerInfo {
    /// Its name.
    pub name: String,
    /// Its last heartbeat (Unix ms, Redis server clock).
    pub last_seen_ms: u64,
}

/// The job console's view of the queues of one namespace.
///
/// Every call is one script or command touching a bounded number of entries. Retention
/// settings (`keep_cancelled`, `idempotency_retention`) come from the template configuration
/// given at construction.
#[derive(Clone)]
pub struct QueueAdmin {
    conn: ConnectionManager,
    template: QueueConfig,
}

impl std::fmt::Debug for QueueAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueAdmin")
            .field("namespace", &self.template.namespace)
            .finish_non_exhaustive()
    }
}

fn int(v: &Value) -> Option<u64> {
    opt_i64(v).map(|i| i.max(0) as u64)
}

impl QueueAdmin {
    /// The console of namespace `namespace` with default retention settings.
    pub fn new(conn: ConnectionManager, namespace: impl Into<String>) -> Self {
        Self {
            conn,
            template: QueueConfig::new("_").namespace(namespace),
        }
    }

    /// The console of `template`'s namespace, with its retention settings.
    pub fn with_config(conn: ConnectionManager, template: QueueConfig) -> Self {
        Self { conn, template }
    }

    fn keys(&self, queue: &str) -> Result<Keys, QueueError> {
        if !valid_name(queue) {
            return Err(QueueError::Config(format!("invalid queue name {queue:?}")));
        }
        Ok(Keys::new(&self.template.namespace, queue))
    }

    /// The queues of the namespace (every queue a worker ran on or a job was pushed to).
    pub async fn queues(&self) -> Result<Vec<String>, QueueError> {
        let mut conn = self.conn.clone();
        let mut names: Vec<String> = conn
            .smembers(Keys::registry(&self.template.namespace))
            .await?;
        names.sort();
        Ok(names)
    }

    /// Sizes and counters of `queue`, as one consistent snapshot.
    pub async fn counts(&self, queue: &str) -> Result<QueueCounts, QueueError> {
        let keys = self.keys(queue)?;
        let mut conn = self.conn.clone();
        let reply: Value = invocation(&scripts::COUNTS, &keys)
            .invoke_async(&mut conn)
            .await?;
        let v = array(reply)?;
        if v.len() != 12 {
            return Err(protocol("counts: 12 fields expected"));
        }
        let f = |i: usize| int(&v[i]).unwrap_or(0);
        Ok(QueueCounts {
            pending: f(0),
            running: f(1),
            scheduled: f(2),
            failed: f(3),
            dead: f(4),
            done: f(5),
            cancelled: f(6),
            enqueued: f(7),
            reclaimed: f(8),
            retried: f(9),
            dead_total: f(10),
            workers: f(11),
        })
    }

    /// A page of `queue`'s jobs. Pending jobs come next-to-run first, running ones by lease
    /// deadline, scheduled and failed ones by due time, dead, done and cancelled ones newest
    /// first. Cursors are positions: on a queue that moves, pages may overlap or skip a job.
    pub async fn list(&self, queue: &str, filter: JobFilter) -> Result<JobPage, QueueError> {
        let keys = self.keys(queue)?;
        let limit = filter.limit.clamp(1, 500);
        let offset: u64 = match &filter.cursor {
            None => 0,
            Some(c) => c
                .parse()
                .map_err(|_| QueueError::Config(format!("invalid cursor {c:?}")))?,
        };
        let max_scan = if filter.kind.is_some() {
            (limit * 20).clamp(200, 5000)
        } else {
            limit
        };
        let mut inv = invocation(&scripts::LIST, &keys);
        inv.arg(filter.status.as_arg())
            .arg(offset)
            .arg(limit)
            .arg(filter.kind.as_deref().unwrap_or(""))
            .arg(max_scan)
            .arg(if filter.with_args { "1" } else { "0" });
        let mut conn = self.conn.clone();
        let reply: Value = inv.invoke_async(&mut conn).await?;
        let mut items = array(reply)?.into_iter();
        let next = items
            .next()
            .as_ref()
            .and_then(opt_i64)
            .ok_or_else(|| protocol("list: cursor"))?;
        let rest: Vec<Value> = items.collect();
        if !rest.len().is_multiple_of(15) {
            return Err(protocol("list: rows of 15 fields expected"));
        }
        let mut jobs = Vec::with_capacity(rest.len() / 15);
        let mut it = rest.into_iter();
        loop {
            let row: Vec<Value> = it.by_ref().take(15).collect();
            if row.is_empty() {
                break;
            }
            jobs.push(parse_row(row)?);
        }
        Ok(JobPage {
            jobs,
            next_cursor: (next >= 0).then(|| next.to_string()),
        })
    }

    /// One job, if it has an envelope (done and cancelled jobs have none).
    pub async fn job(
        &self,
        queue: &str,
        id: &str,
        with_args: bool,
    ) -> Result<Option<JobInfo>, QueueError> {
        let keys = self.keys(queue)?;
        let mut inv = invocation(&scripts::JOB, &keys);
        inv.arg(id).arg(if with_args { "1" } else { "0" });
        let mut conn = self.conn.clone();
        let row = array(inv.invoke_async(&mut conn).await?)?;
        if row.is_empty() {
            return Ok(None);
        }
        parse_row(row).map(Some)
    }

    /// Makes a dead, failed or scheduled job ready now, at the front of the queue, keeping its
    /// attempt count (a dead job that had used all its attempts gets one more).
    pub async fn retry(&self, queue: &str, id: &str) -> Result<RetryOutcome, QueueError> {
        let keys = self.keys(queue)?;
        let mut inv = invocation(&scripts::RETRY, &keys);
        inv.arg(id);
        let mut conn = self.conn.clone();
        let (done, state): (i64, String) = inv.invoke_async(&mut conn).await?;
        Ok(match (done, JobStatus::from_state(&state)) {
            (1, Some(from)) => RetryOutcome::Retried { from },
            (_, Some(status)) => RetryOutcome::NotRetriable(status),
            _ => RetryOutcome::NotFound,
        })
    }

    /// Cancels a pending, scheduled or failed job: it is removed, its idempotency key
    /// released after the retention, and its id recorded as cancelled. Running jobs are
    /// refused ([`CancelOutcome::Running`]): the queue cannot stop a handler mid-flight, and
    /// pretending to would let the job finish behind the console's back.
    pub async fn cancel(&self, queue: &str, id: &str) -> Result<CancelOutcome, QueueError> {
        let keys = self.keys(queue)?;
        let mut inv = invocation(&scripts::CANCEL, &keys);
        inv.arg(id)
            .arg(self.template.keep_cancelled)
            .arg(self.template.idempotency_retention.as_millis() as u64);
        let mut conn = self.conn.clone();
        let (done, state): (i64, String) = inv.invoke_async(&mut conn).await?;
        Ok(match (done, JobStatus::from_state(&state)) {
            (1, Some(from)) => CancelOutcome::Cancelled { from },
            (_, Some(JobStatus::Running)) => CancelOutcome::Running,
            (_, Some(status)) => CancelOutcome::NotCancellable(status),
            _ => CancelOutcome::NotFound,
        })
    }

    /// Workers of `queue` seen within the worker TTL, most recent first (at most `limit`).
    pub async fn workers(&self, queue: &str, limit: usize) -> Result<Vec<WorkerInfo>, QueueError> {
        let keys = self.keys(queue)?;
        let mut conn = self.conn.clone();
        let stop = limit.clamp(1, 1000) as isize - 1;
        let rows: Vec<(String, f64)> = conn.zrevrange_withscores(&keys.all[9], 0, stop).await?;
        Ok(rows
            .into_iter()
            .map(|(name, at)| WorkerInfo {
                name,
                last_seen_ms: at as u64,
            })
            .collect())
    }
}

fn parse_row(row: Vec<Value>) -> Result<JobInfo, QueueError> {
    let [
        id,
        state,
        n,
        m,
        kind,
        ikey,
        created,
        run_at,
        error,
        finished,
        leased,
        holder,
        deadline,
        meta,
        args,
    ]: [Value; 15] = row
        .try_into()
        .map_err(|_| protocol("job: 15 fields expected"))?;
    let state = opt_string(&state).ok_or_else(|| protocol("job: state"))?;
    let status = JobStatus::from_state(&state)
        .ok_or_else(|| QueueError::Protocol(format!("job: unknown state {state:?}")))?;
    Ok(JobInfo {
        id: opt_string(&id).ok_or_else(|| protocol("job: id"))?,
        status,
        attempt: int(&n).unwrap_or(0) as u32,
        max_attempts: int(&m).unwrap_or(0) as u32,
        kind: opt_string(&kind),
        idempotency_key: opt_string(&ikey),
        created_at_ms: int(&created),
        run_at_ms: int(&run_at),
        last_error: opt_string(&error),
        finished_at_ms: int(&finished),
        leased_at_ms: int(&leased),
        worker: opt_string(&holder)
            .map(|h| h.rsplit_once('#').map(|(w, _)| w.to_owned()).unwrap_or(h)),
        lease_deadline_ms: int(&deadline),
        metadata: opt_string(&meta)
            .and_then(|m| serde_json::from_str(&m).ok())
            .unwrap_or_default(),
        args: opt_bytes(args),
    })
}
