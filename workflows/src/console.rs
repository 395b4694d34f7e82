//! The job console: one view of the job queue whatever carries it, for instance admins.
//!
//! [`JobConsole`] reads queue sizes, lists jobs, and retries or cancels one job, over our
//! Redis queue ([`QueueAdmin`]) or over apalis' `Jobs` table in SQLite ([`sqlite`]). Both
//! answer in the same terms: the [`JobStatus`] set of the Redis queue, times as UTC, arguments
//! as JSON. What the console leaves alone: workflow runs themselves (the engine's business;
//! a job only says "drive run R") and who may call it (the API checks that).
//!
//! Cursors are positions in a status' order, as the Redis queue's are: on a queue that moves,
//! pages may overlap or skip a job. That is fine for a console and keeps every call bounded.

pub mod sqlite;

use chrono::{DateTime, Utc};
use sea_orm::DatabaseConnection;
use serde_json::Value;

pub use crate::queue::redis::{CancelOutcome, JobStatus, RetryOutcome};
use crate::{
    queue::redis::{JobFilter, JobInfo, QueueAdmin, QueueError},
    runtime::{QueueBackend, RUN_QUEUE},
};

/// The kind of the jobs that carry workflow runs ([`crate::RunTask`]).
pub const RUN_JOB_KIND: &str = "workflow_run";

/// Most jobs on one page.
pub const MAX_PAGE: usize = 500;

/// Why the console refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// The queue name is not one a queue can have.
    #[error("{0:?} is not a queue name")]
    InvalidQueue(String),
    /// The cursor was not made by this console.
    #[error("{0:?} is not a valid cursor")]
    InvalidCursor(String),
    /// The backend failed; the message is for logs.
    #[error("the job queue failed: {0}")]
    Backend(String),
}

impl From<QueueError> for ConsoleError {
    fn from(e: QueueError) -> Self {
        ConsoleError::Backend(e.to_string())
    }
}

impl From<sea_orm::DbErr> for ConsoleError {
    fn from(e: sea_orm::DbErr) -> Self {
        ConsoleError::Backend(e.to_string())
    }
}

/// `Result` with [`ConsoleError`].
pub type Result<T, E = ConsoleError> = std::result::Result<T, E>;

/// Sizes of one queue.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueSummary {
    /// The queue's name.
    pub name: String,
    /// Ready for a worker now.
    pub pending: u64,
    /// Taken by a worker.
    pub running: u64,
    /// Waiting for a later first run.
    pub scheduled: u64,
    /// Failed, waiting for another attempt.
    pub failed: u64,
    /// Out of attempts or aborted, kept until retried or trimmed.
    pub dead: u64,
    /// Finished successfully (Redis counts them ever; SQLite those still kept).
    pub done: u64,
    /// Cancelled from the console.
    pub cancelled: u64,
    /// Workers seen recently on the queue.
    pub workers: u64,
}

/// One job as the console shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// Its id in the queue.
    pub id: String,
    /// The queue holding it.
    pub queue: String,
    /// A label of what it does (`workflow_run` for runs), when known.
    pub kind: Option<String>,
    /// Where it is.
    pub status: JobStatus,
    /// Attempts started so far.
    pub attempts: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// The last attempt's error.
    pub last_error: Option<String>,
    /// When it is (or was) due.
    pub run_at: Option<DateTime<Utc>>,
    /// When it was created.
    pub created_at: Option<DateTime<Utc>>,
    /// When it went dead, was done or cancelled.
    pub finished_at: Option<DateTime<Utc>>,
    /// The worker holding it, while running.
    pub worker: Option<String>,
    /// Its arguments (for a run: `{"run_id": …, "ticket": …}`).
    pub args: Option<Value>,
}

/// Which jobs to list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobQuery {
    /// Their status.
    pub status: JobStatus,
    /// Only this kind.
    pub kind: Option<String>,
    /// Where the previous page stopped ([`JobPage::next_cursor`]).
    pub cursor: Option<String>,
    /// Most jobs on the page (1 to [`MAX_PAGE`]).
    pub limit: usize,
}

/// A page of jobs.
#[derive(Debug, Clone, PartialEq)]
pub struct JobPage {
    /// The jobs, in the status' order: pending next-to-run first, running by when they were
    /// taken, scheduled and failed by due time, dead, done and cancelled newest first.
    pub jobs: Vec<Job>,
    /// Cursor of the next page; `None` at the end. A page filtered by kind may be short and
    /// still have a next page (each call examines a bounded window).
    pub next_cursor: Option<String>,
}

/// The console over the job queue this process uses.
#[derive(Clone, Debug)]
pub enum JobConsole {
    /// Our Redis queue's namespace.
    Redis(Box<QueueAdmin>),
    /// apalis' tables in the application's SQLite database.
    Sqlite(DatabaseConnection),
}

impl JobConsole {
    /// The console of `backend`; `db` is the application's database (SQLite's queue lives
    /// there).
    pub fn of(backend: &QueueBackend, db: &DatabaseConnection) -> Self {
        match backend {
            QueueBackend::Redis(q) => JobConsole::Redis(Box::new(q.admin())),
            QueueBackend::Sqlite(_) => JobConsole::Sqlite(db.clone()),
        }
    }

    /// Every queue with its sizes, by name; the run queue is always there.
    pub async fn queues(&self) -> Result<Vec<QueueSummary>> {
        match self {
            JobConsole::Redis(admin) => {
                let mut names = admin.queues().await?;
                if !names.iter().any(|n| n == RUN_QUEUE) {
                    names.push(RUN_QUEUE.to_owned());
                    names.sort();
                }
                let mut out = Vec::with_capacity(names.len());
                for name in names {
                    let c = admin.counts(&name).await?;
                    out.push(QueueSummary {
                        name,
                        pending: c.pending,
                        running: c.running,
                        scheduled: c.scheduled,
                        failed: c.failed,
                        dead: c.dead,
                        done: c.done,
                        cancelled: c.cancelled,
                        workers: c.workers,
                    });
                }
                Ok(out)
            }
            JobConsole::Sqlite(db) => sqlite::queues(db).await,
        }
    }

    /// A page of `queue`'s jobs.
    pub async fn list(&self, queue: &str, query: JobQuery) -> Result<JobPage> {
        check_queue(queue)?;
        let offset = parse_cursor(query.cursor.as_deref())?;
        let limit = query.limit.clamp(1, MAX_PAGE);
        match self {
            JobConsole::Redis(admin) => {
                let mut filter = JobFilter::new(query.status).limit(limit).with_args();
                if let Some(kind) = query.kind {
                    filter = filter.kind(kind);
                }
                if offset > 0 {
                    filter = filter.cursor(offset.to_string());
                }
                let page = admin.list(queue, filter).await?;
                Ok(JobPage {
                    jobs: page
                        .jobs
                        .into_iter()
                        .map(|j| from_redis(queue, j))
                        .collect(),
                    next_cursor: page.next_cursor,
                })
            }
            JobConsole::Sqlite(db) => {
                sqlite::list(
                    db,
                    queue,
                    query.status,
                    query.kind.as_deref(),
                    offset,
                    limit,
                )
                .await
            }
        }
    }

    /// One job, if the queue still holds it (Redis keeps only the ids of done and cancelled
    /// jobs: those read as absent there).
    pub async fn job(&self, queue: &str, id: &str) -> Result<Option<Job>> {
        check_queue(queue)?;
        match self {
            JobConsole::Redis(admin) => Ok(admin
                .job(queue, id, true)
                .await?
                .map(|j| from_redis(queue, j))),
            JobConsole::Sqlite(db) => sqlite::job(db, queue, id).await,
        }
    }

    /// Makes a dead, failed or scheduled job ready now (a dead job out of attempts gets one
    /// more).
    pub async fn retry(&self, queue: &str, id: &str) -> Result<RetryOutcome> {
        check_queue(queue)?;
        match self {
            JobConsole::Redis(admin) => Ok(admin.retry(queue, id).await?),
            JobConsole::Sqlite(db) => sqlite::retry(db, queue, id).await,
        }
    }

    /// Cancels a pending, scheduled or failed job; a running one is refused (the queue
    /// cannot stop a handler; cancel the workflow run instead).
    pub async fn cancel(&self, queue: &str, id: &str) -> Result<CancelOutcome> {
        check_queue(queue)?;
        match self {
            JobConsole::Redis(admin) => Ok(admin.cancel(queue, id).await?),
            JobConsole::Sqlite(db) => sqlite::cancel(db, queue, id).await,
        }
    }
}

/// Queue names as both backends accept them.
fn check_queue(queue: &str) -> Result<()> {
    let valid = !queue.is_empty()
        && queue.len() <= 200
        && !queue.contains(['{', '}'])
        && !queue.chars().any(|c| c.is_whitespace() || c.is_control());
    if valid {
        Ok(())
    } else {
        Err(ConsoleError::InvalidQueue(queue.to_owned()))
    }
}

/// Cursors are decimal positions.
fn parse_cursor(cursor: Option<&str>) -> Result<u64> {
    match cursor {
        None => Ok(0),
        Some(c) => c
            .parse()
            .map_err(|_| ConsoleError::InvalidCursor(c.to_owned())),
    }
}

fn from_ms(ms: Option<u64>) -> Option<DateTime<Utc>> {
    ms.and_then(|ms| DateTime::from_timestamp_millis(ms as i64))
}

fn from_redis(queue: &str, j: JobInfo) -> Job {
    Job {
        id: j.id,
        queue: queue.to_owned(),
        kind: j.kind,
        status: j.status,
        attempts: j.attempt,
        max_attempts: j.max_attempts,
        last_error: j.last_error,
        run_at: from_ms(j.run_at_ms),
        created_at: from_ms(j.created_at_ms),
        finished_at: from_ms(j.finished_at_ms),
        worker: j.worker,
        args: j.args.and_then(|a| serde_json::from_slice(&a).ok()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_names_and_cursors_are_checked() {
        assert!(check_queue(RUN_QUEUE).is_ok());
        for bad in ["", "a b", "a{b}", "tab\t"] {
            assert!(matches!(
                check_queue(bad),
                Err(ConsoleError::InvalidQueue(_))
            ));
        }
        assert_eq!(parse_cursor(None).unwrap(), 0);
        assert_eq!(parse_cursor(Some("40")).unwrap(), 40);
        assert!(matches!(
            parse_cursor(Some("-1")),
            Err(ConsoleError::InvalidCursor(_))
        ));
    }
}
