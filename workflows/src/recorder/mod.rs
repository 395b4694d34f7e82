//! Group commit of the engine's records.
//!
//! Every record the engine makes while it drives runs (a run and its steps inserted, a step
//! started or finished, a checkpoint, a log line, a run's end) goes through one writer task per
//! engine. A caller hands over its writes and waits until they are committed, so nothing a run
//! goes on from is lost in a crash; meanwhile other runs' writes gather, and the writer commits
//! all of them in one transaction with one multi-row statement per kind of write. Under load
//! each run still waits for one commit per transition, but the database sees a few statements
//! per batch instead of one per write; when idle a batch is a single submission and waits for
//! nothing else.
//!
//! If a batch fails (one run's row was deleted with its organization, a duplicate idempotency
//! key), each submission of it is committed again on its own, so only the faulty one fails.

mod batch;
mod claims;
mod sql;

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use entity::{enums::WorkflowStatus, workflow_logs, workflow_runs, workflow_steps};
use sea_orm::{ActiveEnum, ConnectionTrait, DatabaseConnection, DbErr};
use serde_json::Value;
use tokio::sync::oneshot;
use uuid::Uuid;

use batch::Batcher;
pub(crate) use claims::{Claim, Claimed, Claims, Stage};
use sql::{Batch, Cell, update_rows};

/// One record to make.
#[derive(Debug, Clone)]
pub(crate) enum Write {
    /// A new run.
    InsertRun(Box<workflow_runs::Model>),
    /// A new step of a run inserted in the same or an earlier submission.
    InsertStep(Box<workflow_steps::Model>),
    /// A log line.
    InsertLog(Box<workflow_logs::Model>),
    /// A step's attempt began.
    StepStarted {
        id: Uuid,
        attempt: i32,
        at: DateTime<Utc>,
        /// The queue task that claimed the step.
        task_id: Option<String>,
    },
    /// A step's attempt ended.
    StepFinished {
        id: Uuid,
        status: WorkflowStatus,
        output: Option<Value>,
        error: Option<String>,
        at: DateTime<Utc>,
    },
    /// A step's checkpoints, whole.
    Checkpoint {
        id: Uuid,
        value: Value,
        at: DateTime<Utc>,
    },
    /// A run ended; unless it succeeded, its steps that never ran end as cancelled.
    RunFinished {
        id: Uuid,
        status: WorkflowStatus,
        output: Option<Value>,
        error: Option<String>,
        at: DateTime<Utc>,
    },
}

struct Submission {
    writes: Vec<Write>,
    done: oneshot::Sender<Result<(), DbErr>>,
}

/// Hands writes to the engine's writer task; cheap to clone.
#[derive(Clone)]
pub(crate) struct Recorder {
    batcher: Batcher<Submission>,
}

/// Most submissions committed in one transaction (bounded so that one statement stays well
/// under the databases' bind-parameter limits).
const MAX_BATCH: usize = 256;

/// Batches committed at once, each in its own transaction. A run has at most one submission
/// waiting at any time, so batches in flight never write the same run; several of them keep
/// the database busy while one waits for its commit to reach the disk.
const IN_FLIGHT: usize = 4;

impl Recorder {
    /// Starts the writer task on the current tokio runtime; it ends when every clone of the
    /// recorder is dropped.
    pub(crate) fn spawn(db: DatabaseConnection) -> Recorder {
        let batcher = Batcher::spawn(MAX_BATCH, IN_FLIGHT, move |batch| {
            let db = db.clone();
            async move { commit(&db, batch).await }
        });
        Recorder { batcher }
    }

    /// Commits `writes` (with whatever else is waiting) and returns once they are durable.
    pub(crate) async fn write(&self, writes: Vec<Write>) -> Result<(), DbErr> {
        if writes.is_empty() {
            return Ok(());
        }
        let (done, committed) = oneshot::channel();
        if !self.batcher.send(Submission { writes, done }) {
            return Err(DbErr::Custom("the engine's writer has stopped".into()));
        }
        committed
            .await
            .map_err(|_| DbErr::Custom("the engine's writer has stopped".into()))?
    }
}

async fn commit(db: &DatabaseConnection, batch: Vec<Submission>) {
    if batch.len() > 1 && !overlaps(&batch) {
        let writes: Vec<&Write> = batch.iter().flat_map(|s| s.writes.iter()).collect();
        match apply(db, &writes).await {
            Ok(()) => {
                for s in batch {
                    let _ = s.done.send(Ok(()));
                }
                return;
            }
            Err(e) => {
                tracing::debug!(error = %e, size = batch.len(), "a batch of workflow records failed; committing its submissions one by one");
            }
        }
    }
    for s in batch {
        let writes: Vec<&Write> = s.writes.iter().collect();
        let _ = s.done.send(apply(db, &writes).await);
    }
}

/// Whether two submissions write the same row (then they are committed one by one, in order:
/// one multi-row statement would apply them in no defined order).
fn overlaps(batch: &[Submission]) -> bool {
    writes_a_row_twice(batch.iter().flat_map(|s| s.writes.iter()))
}

/// Whether two of `writes` write the same row.
fn writes_a_row_twice<'a>(writes: impl Iterator<Item = &'a Write>) -> bool {
    let mut seen = HashSet::new();
    writes
        .filter_map(|w| match w {
            Write::StepStarted { id, .. }
            | Write::StepFinished { id, .. }
            | Write::Checkpoint { id, .. } => Some((0u8, *id)),
            Write::RunFinished { id, .. } => Some((1u8, *id)),
            _ => None,
        })
        .any(|key| !seen.insert(key))
}

async fn apply(db: &DatabaseConnection, writes: &[&Write]) -> Result<(), DbErr> {
    // One statement cannot write a row twice in order: such writes go one statement each.
    let one_statement = !writes_a_row_twice(writes.iter().copied());
    let mut batch = Batch::new(db.get_database_backend(), one_statement);

    let runs: Vec<Vec<Cell>> = writes
        .iter()
        .filter_map(|w| match w {
            Write::InsertRun(r) => Some(vec![
                Cell::Uuid(Some(r.id)),
                Cell::Uuid(r.organization_id),
                Cell::Uuid(r.cluster_id),
                Cell::Text(Some(r.kind.clone())),
                Cell::Text(Some(r.status.to_value())),
                Cell::Text(r.idempotency_key.clone()),
                Cell::Json(Some(r.input.clone())),
                Cell::Json(r.output.clone()),
                Cell::Text(r.error.clone()),
                Cell::Int(r.attempt),
                Cell::Time(r.cancel_requested_at),
                Cell::Uuid(r.created_by_user_id),
                Cell::Time(r.started_at),
                Cell::Time(r.finished_at),
                Cell::Uuid(r.ticket),
                Cell::Time(r.next_attempt_at),
                Cell::Text(r.worker.clone()),
                Cell::Time(Some(r.created_at)),
                Cell::Time(Some(r.updated_at)),
            ]),
            _ => None,
        })
        .collect();
    batch.insert(
        "workflow_runs",
        &[
            ("id", "uuid"),
            ("organization_id", "uuid"),
            ("cluster_id", "uuid"),
            ("kind", "text"),
            ("status", "text"),
            ("idempotency_key", "text"),
            ("input", "jsonb"),
            ("output", "jsonb"),
            ("error", "text"),
            ("attempt", "integer"),
            ("cancel_requested_at", "timestamptz"),
            ("created_by_user_id", "uuid"),
            ("started_at", "timestamptz"),
            ("finished_at", "timestamptz"),
            ("ticket", "uuid"),
            ("next_attempt_at", "timestamptz"),
            ("worker", "text"),
            ("created_at", "timestamptz"),
            ("updated_at", "timestamptz"),
        ],
        runs,
    );

    let steps: Vec<Vec<Cell>> = writes
        .iter()
        .filter_map(|w| match w {
            Write::InsertStep(st) => Some(vec![
                Cell::Uuid(Some(st.id)),
                Cell::Uuid(Some(st.run_id)),
                Cell::Int(st.position),
                Cell::Text(Some(st.name.clone())),
                Cell::Text(Some(st.status.to_value())),
                Cell::Int(st.attempt),
                Cell::Json(st.output.clone()),
                Cell::Json(st.checkpoint.clone()),
                Cell::Text(st.error.clone()),
                Cell::Time(st.started_at),
                Cell::Time(st.finished_at),
                Cell::Time(Some(st.created_at)),
                Cell::Time(Some(st.updated_at)),
            ]),
            _ => None,
        })
        .collect();
    batch.insert(
        "workflow_steps",
        &[
            ("id", "uuid"),
            ("run_id", "uuid"),
            ("position", "integer"),
            ("name", "text"),
            ("status", "text"),
            ("attempt", "integer"),
            ("output", "jsonb"),
            ("checkpoint", "jsonb"),
            ("error", "text"),
            ("started_at", "timestamptz"),
            ("finished_at", "timestamptz"),
            ("created_at", "timestamptz"),
            ("updated_at", "timestamptz"),
        ],
        steps,
    );

    let logs: Vec<Vec<Cell>> = writes
        .iter()
        .filter_map(|w| match w {
            Write::InsertLog(l) => Some(vec![
                Cell::Uuid(Some(l.id)),
                Cell::Uuid(Some(l.run_id)),
                Cell::Uuid(l.step_id),
                Cell::Text(Some(l.level.clone())),
                Cell::Text(Some(l.message.clone())),
                Cell::Time(Some(l.created_at)),
            ]),
            _ => None,
        })
        .collect();
    batch.insert(
        "workflow_logs",
        &[
            ("id", "uuid"),
            ("run_id", "uuid"),
            ("step_id", "uuid"),
            ("level", "text"),
            ("message", "text"),
            ("created_at", "timestamptz"),
        ],
        logs,
    );

    let started: Vec<StepStart> = writes
        .iter()
        .filter_map(|w| match w {
            Write::StepStarted {
                id,
                attempt,
                at,
                task_id,
            } => Some((*id, *attempt, *at, task_id.clone())),
            _ => None,
        })
        .collect();
    batch.update(
        "workflow_steps",
        START_COLUMNS,
        START_ASSIGNMENTS,
        start_rows(&started),
    );

    let finished: Vec<Vec<Cell>> = writes
        .iter()
        .filter_map(|w| match w {
            Write::StepFinished {
                id,
                status,
                output,
                error,
                at,
            } => Some(end_row(*id, *status, output, error, *at)),
            _ => None,
        })
        .collect();
    batch.update("workflow_steps", END_COLUMNS, END_ASSIGNMENTS, finished);

    let checkpoints: Vec<Vec<Cell>> = writes
        .iter()
        .filter_map(|w| match w {
            Write::Checkpoint { id, value, at } => Some(vec![
                Cell::Uuid(Some(*id)),
                Cell::Json(Some(value.clone())),
                Cell::Time(Some(*at)),
            ]),
            _ => None,
        })
        .collect();
    batch.update(
        "workflow_steps",
        &[
            ("id", "uuid"),
            ("checkpoint", "jsonb"),
            ("at", "timestamptz"),
        ],
        "checkpoint = v.checkpoint, updated_at = v.at",
        checkpoints,
    );

    let ended: Vec<Vec<Cell>> = writes
        .iter()
        .filter_map(|w| match w {
            Write::RunFinished {
                id,
                status,
                output,
                error,
                at,
            } => Some(end_row(*id, *status, output, error, *at)),
            _ => None,
        })
        .collect();
    if !ended.is_empty() {
        batch.update(
            "workflow_runs",
            END_COLUMNS,
            &format!("{END_ASSIGNMENTS}, ticket = NULL, next_attempt_at = NULL"),
            ended,
        );
    }

    // Steps that never ran (or waited for a retry) of a run that did not succeed.
    let unfinished: Vec<Vec<Cell>> = writes
        .iter()
        .filter_map(|w| match w {
            Write::RunFinished { id, status, at, .. } if *status != WorkflowStatus::Succeeded => {
                Some(vec![
                    Cell::Uuid(Some(*id)),
                    Cell::Text(Some(WorkflowStatus::Cancelled.to_value())),
                    Cell::Time(Some(*at)),
                ])
            }
            _ => None,
        })
        .collect();
    if !unfinished.is_empty() {
        batch.add(
            &[("id", "uuid"), ("status", "text"), ("at", "timestamptz")],
            unfinished,
            &format!(
                "UPDATE workflow_steps SET status = v.status, updated_at = v.at FROM v \
                 WHERE workflow_steps.run_id = v.id AND workflow_steps.status IN ('{}', '{}')",
                WorkflowStatus::Queued.to_value(),
                WorkflowStatus::Retrying.to_value(),
            ),
        );
    }
    batch.run(db).await
}

/// A step to mark running: `(step id, attempt, at, claiming task)`.
pub(crate) type StepStart = (Uuid, i32, DateTime<Utc>, Option<String>);

/// Marks `step` running, a new attempt for task `task_id`, as its row will read once the
/// returned start is committed: one place for a claim and for a step started by the one
/// before it.
pub(crate) fn start_attempt(
    step: &mut workflow_steps::Model,
    at: DateTime<Utc>,
    task_id: String,
) -> StepStart {
    step.status = WorkflowStatus::Running;
    step.attempt += 1;
    step.started_at = Some(at);
    step.finished_at = None;
    step.updated_at = at;
    step.task_id = Some(task_id);
    (step.id, step.attempt, at, step.task_id.clone())
}

impl From<StepStart> for Write {
    fn from((id, attempt, at, task_id): StepStart) -> Write {
        Write::StepStarted {
            id,
            attempt,
            at,
            task_id,
        }
    }
}

/// Marks steps running.
async fn start_steps(
    db: &impl ConnectionTrait,
    backend: sea_orm::DbBackend,
    steps: &[StepStart],
) -> Result<(), DbErr> {
    let rows = start_rows(steps);
    update_rows(
        db,
        backend,
        "workflow_steps",
        START_COLUMNS,
        START_ASSIGNMENTS,
        rows,
    )
    .await
}

/// The columns of a step's start, as [`start_rows`] gives them.
const START_COLUMNS: &[(&str, &str)] = &[
    ("id", "uuid"),
    ("status", "text"),
    ("attempt", "integer"),
    ("at", "timestamptz"),
    ("task_id", "text"),
];

/// What a step's start writes.
const START_ASSIGNMENTS: &str = "status = v.status, attempt = v.attempt, started_at = v.at, \
     finished_at = NULL, updated_at = v.at, task_id = v.task_id";

/// The rows that mark `steps` running.
fn start_rows(steps: &[StepStart]) -> Vec<Vec<Cell>> {
    steps
        .iter()
        .map(|(id, attempt, at, task_id)| {
            vec![
                Cell::Uuid(Some(*id)),
                Cell::Text(Some(WorkflowStatus::Running.to_value())),
                Cell::Int(*attempt),
                Cell::Time(Some(*at)),
                Cell::Text(task_id.clone()),
            ]
        })
        .collect()
}

/// The columns of a step's or a run's end, as [`end_row`] gives them.
const END_COLUMNS: &[(&str, &str)] = &[
    ("id", "uuid"),
    ("status", "text"),
    ("output", "jsonb"),
    ("error", "text"),
    ("at", "timestamptz"),
];

/// What a step's or a run's end writes.
const END_ASSIGNMENTS: &str =
    "status = v.status, output = v.output, error = v.error, finished_at = v.at, updated_at = v.at";

fn end_row(
    id: Uuid,
    status: WorkflowStatus,
    output: &Option<Value>,
    error: &Option<String>,
    at: DateTime<Utc>,
) -> Vec<Cell> {
    vec![
        Cell::Uuid(Some(id)),
        Cell::Text(Some(status.to_value())),
        Cell::Json(output.clone()),
        Cell::Text(error.clone()),
        Cell::Time(Some(at)),
    ]
}
