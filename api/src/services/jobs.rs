//! The job console: the job queue's sizes and jobs, and retrying or cancelling one job, for
//! instance admins only (`FORBIDDEN` for everyone else, organization owners included: the
//! queue carries every organization's work).
//!
//! The queue backend is behind [`workflows::console::JobConsole`]. Cancelling the job that
//! carries a workflow run's current ticket cancels the run too: nothing else would ever drive
//! it, and a run left `QUEUED` forever would block its cluster. Both actions are audited.

use entity::workflow_runs;
use sea_orm::{ActiveEnum, EntityTrait};
use serde_json::json;
use workflows::{
    RunTask,
    console::{
        CancelOutcome, ConsoleError, Job, JobConsole, JobPage, JobQuery, QueueSummary, RetryOutcome,
    },
};

use crate::{
    Error, Result,
    services::audit::{self, Audit},
    state::AppState,
    viewer::Viewer,
};

fn console(state: &AppState) -> JobConsole {
    JobConsole::of(&state.queue, &state.db)
}

/// The console's failures in the API's terms; `queue_field` and `cursor_field` name the
/// arguments at fault.
fn console_error(e: ConsoleError, queue_field: &str, cursor_field: &str) -> Error {
    match e {
        ConsoleError::InvalidQueue(q) => {
            Error::bad_input(queue_field, format!("{q:?} is not a queue name"))
        }
        ConsoleError::InvalidCursor(c) => {
            Error::bad_input(cursor_field, format!("{c:?} is not a valid cursor"))
        }
        ConsoleError::Backend(cause) => {
            tracing::error!(%cause, "the job console failed");
            Error::Unavailable("the job queue is unavailable; try again later")
        }
    }
}

/// Every queue with its sizes.
pub async fn queues(state: &AppState, viewer: &Viewer) -> Result<Vec<QueueSummary>> {
    viewer.require_instance_admin()?;
    console(state)
        .queues()
        .await
        .map_err(|e| console_error(e, "queue", "after"))
}

/// A page of a queue's jobs.
pub async fn list(
    state: &AppState,
    viewer: &Viewer,
    queue: &str,
    query: JobQuery,
) -> Result<JobPage> {
    viewer.require_instance_admin()?;
    console(state)
        .list(queue, query)
        .await
        .map_err(|e| console_error(e, "queue", "after"))
}

fn status_name(status: workflows::console::JobStatus) -> String {
    format!("{status:?}").to_lowercase()
}

/// Makes a dead, failed or scheduled job ready now; returns it as it is after.
pub async fn retry(state: &AppState, viewer: &Viewer, queue: &str, id: &str) -> Result<Job> {
    viewer.require_instance_admin()?;
    let console = console(state);
    let fail = |e| console_error(e, "input.queue", "input.id");
    match console.retry(queue, id).await.map_err(fail)? {
        RetryOutcome::Retried { .. } => {}
        RetryOutcome::NotFound => return Err(Error::NotFound("job")),
        RetryOutcome::NotRetriable(status) => {
            return Err(Error::Conflict {
                field: None,
                message: format!(
                    "a {} job cannot be retried; only dead, failed and scheduled ones",
                    status_name(status)
                ),
            });
        }
    }
    let entry = Audit::new("job.retry").details(json!({ "queue": queue, "job": id }));
    audit::record(&state.db, viewer, entry).await?;
    // A worker may have taken (and even finished) it already.
    let job = console.job(queue, id).await.map_err(fail)?;
    Ok(job.unwrap_or_else(|| gone(queue, id, workflows::console::JobStatus::Done)))
}

/// A job the queue keeps no envelope of any more, as last known.
fn gone(queue: &str, id: &str, status: workflows::console::JobStatus) -> Job {
    Job {
        id: id.to_owned(),
        queue: queue.to_owned(),
        kind: None,
        status,
        attempts: 0,
        max_attempts: 0,
        last_error: None,
        run_at: None,
        created_at: None,
        finished_at: None,
        worker: None,
        args: None,
    }
}

/// Cancels a pending, scheduled or failed job (and the workflow run it carries, see the
/// module docs); returns it as cancelled.
pub async fn cancel(state: &AppState, viewer: &Viewer, queue: &str, id: &str) -> Result<Job> {
    viewer.require_instance_admin()?;
    let console = console(state);
    let fail = |e| console_error(e, "input.queue", "input.id");
    let before = console.job(queue, id).await.map_err(fail)?;
    match console.cancel(queue, id).await.map_err(fail)? {
        CancelOutcome::Cancelled { .. } => {}
        CancelOutcome::NotFound => return Err(Error::NotFound("job")),
        CancelOutcome::Running => {
            return Err(Error::Conflict {
                field: None,
                message: "the job is running; cancel its workflow run instead".into(),
            });
        }
        CancelOutcome::NotCancellable(status) => {
            return Err(Error::Conflict {
                field: None,
                message: format!("a {} job cannot be cancelled", status_name(status)),
            });
        }
    }
    let run = cancel_carried_run(state, before.as_ref()).await?;
    let entry =
        Audit::new("job.cancel").details(json!({ "queue": queue, "job": id, "workflow_run": run }));
    audit::record(&state.db, viewer, entry).await?;
    let job = console.job(queue, id).await.map_err(fail)?;
    Ok(job.unwrap_or_else(|| {
        let mut job =
            before.unwrap_or_else(|| gone(queue, id, workflows::console::JobStatus::Cancelled));
        job.status = workflows::console::JobStatus::Cancelled;
        job.worker = None;
        job
    }))
}

/// Cancels the run `job` carried when the job held its current ticket; returns its id.
async fn cancel_carried_run(state: &AppState, job: Option<&Job>) -> Result<Option<uuid::Uuid>> {
    let Some(task) = job
        .and_then(|j| j.args.clone())
        .and_then(|a| serde_json::from_value::<RunTask>(a).ok())
    else {
        return Ok(None);
    };
    let run = workflow_runs::Entity::find_by_id(task.run_id)
        .one(&state.db)
        .await?;
    let Some(run) = run.filter(|r| r.ticket == Some(task.ticket)) else {
        return Ok(None);
    };
    match state.engine.cancel(run.id).await {
        Ok(_) => Ok(Some(run.id)),
        // Finished meanwhile: nothing to do.
        Err(workflows::EngineError::InvalidState(_)) => Ok(None),
        Err(e) => {
            tracing::warn!(error = %e, run = %run.id, status = %run.status.to_value(), "could not cancel the run of a cancelled job");
            Ok(None)
        }
    }
}
