//! The job console in GraphQL (instance admins): queues, their jobs, retry and cancel. One
//! shape over both queue backends (Redis, apalis on SQLite).

use async_graphql::{Context, Enum, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use serde_json::Value;
use workflows::console::{self, QueueSummary};

use super::state;
use crate::{Error, Result, services::jobs as service, viewer::viewer};

/// Where a job is in the queue.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "workflows::console::JobStatus")]
pub enum JobStatus {
    /// Ready for a worker now.
    Pending,
    /// Taken by a worker.
    Running,
    /// Waiting for a later first run.
    Scheduled,
    /// Failed, waiting for another attempt.
    Failed,
    /// Out of attempts or aborted: kept until retried.
    Dead,
    /// Finished successfully.
    Done,
    /// Cancelled from the console.
    Cancelled,
}

/// A job queue and its sizes.
#[derive(SimpleObject)]
pub struct JobQueue {
    pub name: String,
    pub pending: u64,
    pub running: u64,
    pub scheduled: u64,
    pub failed: u64,
    pub dead: u64,
    /// Done jobs (counted ever on Redis; those still kept on SQLite).
    pub done: u64,
    pub cancelled: u64,
    /// Workers seen recently.
    pub workers: u64,
}

impl From<QueueSummary> for JobQueue {
    fn from(q: QueueSummary) -> Self {
        JobQueue {
            name: q.name,
            pending: q.pending,
            running: q.running,
            scheduled: q.scheduled,
            failed: q.failed,
            dead: q.dead,
            done: q.done,
            cancelled: q.cancelled,
            workers: q.workers,
        }
    }
}

/// One job of a queue.
pub struct Job(pub console::Job);

#[Object]
impl Job {
    /// Its id in the queue.
    async fn id(&self) -> &str {
        &self.0.id
    }
    async fn queue(&self) -> &str {
        &self.0.queue
    }
    /// What it does (`workflow_run` for workflow runs), when known.
    async fn kind(&self) -> Option<&str> {
        self.0.kind.as_deref()
    }
    async fn status(&self) -> JobStatus {
        self.0.status.into()
    }
    /// Attempts started so far.
    async fn attempts(&self) -> u32 {
        self.0.attempts
    }
    async fn max_attempts(&self) -> u32 {
        self.0.max_attempts
    }
    async fn last_error(&self) -> Option<&str> {
        self.0.last_error.as_deref()
    }
    /// When it is (or was) due.
    async fn run_at(&self) -> Option<DateTime<Utc>> {
        self.0.run_at
    }
    async fn created_at(&self) -> Option<DateTime<Utc>> {
        self.0.created_at
    }
    /// When it went dead, was done or cancelled.
    async fn finished_at(&self) -> Option<DateTime<Utc>> {
        self.0.finished_at
    }
    /// The worker holding it, while running.
    async fn worker(&self) -> Option<&str> {
        self.0.worker.as_deref()
    }
    /// Its arguments (a workflow run's: `{"run_id", "ticket"}`).
    async fn args(&self) -> Option<&Value> {
        self.0.args.as_ref()
    }
}

/// A page of jobs.
#[derive(SimpleObject)]
pub struct JobPage {
    pub jobs: Vec<Job>,
    /// Pass as `after` for the next page.
    pub end_cursor: Option<String>,
    /// A page filtered by kind may be short, or empty, and still have a next one.
    pub has_next_page: bool,
}

#[derive(Default)]
pub struct JobQuery;

#[Object]
impl JobQuery {
    /// The job queues and their sizes (instance admins).
    async fn job_queues(&self, ctx: &Context<'_>) -> Result<Vec<JobQueue>> {
        let queues = service::queues(state(ctx), viewer(ctx)).await?;
        Ok(queues.into_iter().map(JobQueue::from).collect())
    }

    /// A queue's jobs in one status (instance admins): pending next-to-run first, running by
    /// when they were taken, scheduled and failed by due time, the others newest first.
    #[graphql(complexity = "(first.unwrap_or(20).max(0) as usize) * child_complexity + 1")]
    async fn jobs(
        &self,
        ctx: &Context<'_>,
        queue: String,
        status: JobStatus,
        kind: Option<String>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<JobPage> {
        let state = state(ctx);
        let max = state.config.graphql.max_page_size as i32;
        let limit = match first {
            None => 20.min(max),
            Some(n) if (1..=max).contains(&n) => n,
            Some(_) => {
                return Err(Error::bad_input(
                    "first",
                    format!("first must be 1 to {max}"),
                ));
            }
        };
        let query = console::JobQuery {
            status: status.into(),
            kind,
            cursor: after,
            limit: limit as usize,
        };
        let page = service::list(state, viewer(ctx), &queue, query).await?;
        Ok(JobPage {
            has_next_page: page.next_cursor.is_some(),
            end_cursor: page.next_cursor,
            jobs: page.jobs.into_iter().map(Job).collect(),
        })
    }
}

/// Input naming one job.
#[derive(InputObject)]
pub struct JobInput {
    pub queue: String,
    pub id: String,
}

/// A payload holding a job.
#[derive(SimpleObject)]
pub struct JobPayload {
    pub job: Job,
}

#[derive(Default)]
pub struct JobMutation;

#[Object]
impl JobMutation {
    /// Makes a dead, failed or scheduled job ready now (instance admins).
    async fn retry_job(&self, ctx: &Context<'_>, input: JobInput) -> Result<JobPayload> {
        let job = service::retry(state(ctx), viewer(ctx), &input.queue, &input.id).await?;
        Ok(JobPayload { job: Job(job) })
    }

    /// Cancels a pending, scheduled or failed job (instance admins); the workflow run it
    /// carries is cancelled with it. A running job is refused: cancel its run instead.
    async fn cancel_job(&self, ctx: &Context<'_>, input: JobInput) -> Result<JobPayload> {
        let job = service::cancel(state(ctx), viewer(ctx), &input.queue, &input.id).await?;
        Ok(JobPayload { job: Job(job) })
    }
}
