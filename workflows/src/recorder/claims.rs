//! Claims in batches: the workers' first deliveries of run tasks gather, and one transaction
//! claims all of them (a conditional `UPDATE … RETURNING`), reads their steps and starts the
//! first unfinished step of each run not asked to cancel (the engine would otherwise commit
//! that start on its own right after).
//!
//! Only first deliveries come here (a run with no retry pending); a task this cannot claim
//! (stale, or a retry handed out early) goes the engine's slower way, which says why.

use std::{
    collections::{HashMap, HashSet},
    fmt::Write as _,
    sync::Arc,
};

use entity::{WriteTxn as _, enums::WorkflowStatus, workflow_runs, workflow_steps};
use sea_orm::{
    ActiveEnum, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, FromQueryResult, QueryFilter,
    QueryOrder,
};
use tokio::sync::oneshot;
use uuid::Uuid;

use super::{
    Batcher,
    sql::{Cell, Sql},
};
use crate::engine::RunTask;

/// A claimed run, its steps in order (as updated), and the step whose attempt the claim
/// started, if any.
pub(crate) type Claimed = (
    workflow_runs::Model,
    Vec<workflow_steps::Model>,
    Option<Uuid>,
);

struct Submission {
    task: RunTask,
    worker: String,
    done: oneshot::Sender<Result<Option<Claimed>, DbErr>>,
}

/// Hands claims to the batching task; cheap to clone.
#[derive(Clone)]
pub(crate) struct Claims {
    batcher: Batcher<Submission>,
}

/// How many steps each workflow kind known here has: a claim starts a step only of a known
/// kind and position.
pub(crate) type StepCounts = HashMap<String, usize>;

const MAX_BATCH: usize = 256;
const IN_FLIGHT: usize = 2;

impl Claims {
    /// Starts the batching task on the current tokio runtime.
    pub(crate) fn spawn(db: DatabaseConnection, steps: StepCounts) -> Claims {
        let steps = Arc::new(steps);
        let batcher = Batcher::spawn(MAX_BATCH, IN_FLIGHT, move |batch| {
            let db = db.clone();
            let steps = steps.clone();
            async move { claim_batch(&db, &steps, batch).await }
        });
        Claims { batcher }
    }

    /// Claims the run of `task` for `worker` if it is a first delivery still due: the run
    /// (as updated) and its steps; `None` when this path cannot claim it.
    pub(crate) async fn claim(
        &self,
        task: RunTask,
        worker: &str,
    ) -> Result<Option<Claimed>, DbErr> {
        let (done, claimed) = oneshot::channel();
        if !self.batcher.send(Submission {
            task,
            worker: worker.to_owned(),
            done,
        }) {
            return Err(DbErr::Custom("the engine's claim task has stopped".into()));
        }
        claimed
            .await
            .map_err(|_| DbErr::Custom("the engine's claim task has stopped".into()))?
    }
}

async fn claim_batch(db: &DatabaseConnection, counts: &StepCounts, batch: Vec<Submission>) {
    // The same run twice in one statement would be claimed once for both: the later ones
    // take the engine's single path.
    let mut seen = HashSet::new();
    let (first, again): (Vec<_>, Vec<_>) =
        batch.into_iter().partition(|s| seen.insert(s.task.run_id));
    for s in again {
        let _ = s.done.send(Ok(None));
    }
    match claim_all(db, counts, &first).await {
        Ok(mut claimed) => {
            for s in first {
                let _ = s
                    .done
                    .send(Ok(claimed.remove(&(s.task.run_id, s.task.ticket))));
            }
        }
        Err(e) => {
            let message = e.to_string();
            for s in first {
                let _ = s.done.send(Err(DbErr::Custom(message.clone())));
            }
        }
    }
}

async fn claim_all(
    db: &DatabaseConnection,
    counts: &StepCounts,
    batch: &[Submission],
) -> Result<HashMap<(Uuid, Uuid), Claimed>, DbErr> {
    let backend = db.get_database_backend();
    let txn = db.begin_write().await?;
    let now = entity::now();
    let rows = batch
        .iter()
        .map(|s| {
            vec![
                Cell::Uuid(Some(s.task.run_id)),
                Cell::Uuid(Some(s.task.ticket)),
                Cell::Text(Some(s.worker.clone())),
            ]
        })
        .collect();
    let mut sql = Sql::new(backend);
    // `v`'s names differ from the run's, so PostgreSQL's `RETURNING *` (which includes `v`)
    // reads unambiguously; SQLite returns the run's columns only.
    sql.with_rows(
        &[
            ("claim_id", "uuid"),
            ("claim_ticket", "uuid"),
            ("claim_worker", "text"),
        ],
        rows,
    );
    let _ = write!(
        sql.text,
        "UPDATE workflow_runs SET status = '{running}', worker = v.claim_worker, \
         attempt = workflow_runs.attempt + 1, started_at = COALESCE(workflow_runs.started_at, ",
        running = WorkflowStatus::Running.to_value(),
    );
    let at = sql.bind(now);
    let _ = write!(sql.text, "{at}), next_attempt_at = NULL, updated_at = ");
    let at = sql.bind(now);
    let _ = write!(
        sql.text,
        "{at} FROM v WHERE workflow_runs.id = v.claim_id \
         AND workflow_runs.ticket = v.claim_ticket \
         AND workflow_runs.status IN ('{queued}', '{running}', '{retrying}') \
         AND workflow_runs.next_attempt_at IS NULL RETURNING *",
        queued = WorkflowStatus::Queued.to_value(),
        running = WorkflowStatus::Running.to_value(),
        retrying = WorkflowStatus::Retrying.to_value(),
    );
    let runs = workflow_runs::Model::find_by_statement(sql.statement())
        .all(&txn)
        .await?;
    if runs.is_empty() {
        return Ok(HashMap::new());
    }
    let ids: Vec<Uuid> = runs.iter().map(|r| r.id).collect();
    let mut steps: HashMap<Uuid, Vec<workflow_steps::Model>> = HashMap::new();
    for step in workflow_steps::Entity::find()
        .filter(workflow_steps::Column::RunId.is_in(ids))
        .order_by_asc(workflow_steps::Column::Position)
        .all(&txn)
        .await?
    {
        steps.entry(step.run_id).or_default().push(step);
    }
    let mut claimed = HashMap::with_capacity(runs.len());
    let mut starts = Vec::new();
    for run in runs {
        let Some(ticket) = run.ticket else { continue };
        let mut steps = steps.remove(&run.id).unwrap_or_default();
        let known = counts.get(&run.kind).copied().unwrap_or(0);
        let next = steps
            .iter_mut()
            .find(|s| s.status != WorkflowStatus::Succeeded)
            .filter(|s| run.cancel_requested_at.is_none() && (s.position as usize) < known);
        let started = next.map(|step| {
            step.status = WorkflowStatus::Running;
            step.attempt += 1;
            step.started_at = Some(now);
            step.finished_at = None;
            step.updated_at = now;
            starts.push((step.id, step.attempt, now));
            step.id
        });
        claimed.insert((run.id, ticket), (run, steps, started));
    }
    super::start_steps(&txn, backend, &starts).await?;
    txn.commit().await?;
    Ok(claimed)
}
