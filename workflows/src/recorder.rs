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

use std::{collections::HashSet, fmt::Write as _, sync::Arc};

use chrono::{DateTime, Utc};
use entity::{WriteTxn as _, enums::WorkflowStatus, workflow_logs, workflow_runs, workflow_steps};
use sea_orm::{
    ActiveEnum, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr,
    Statement, Value as SqlValue,
};
use serde_json::Value;
use tokio::sync::{Semaphore, mpsc, oneshot};
use uuid::Uuid;

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
    tx: mpsc::UnboundedSender<Submission>,
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
        let (tx, mut rx) = mpsc::unbounded_channel::<Submission>();
        tokio::spawn(async move {
            let in_flight = Arc::new(Semaphore::new(IN_FLIGHT));
            let mut batch = Vec::new();
            loop {
                // Wait for a free slot first: meanwhile submissions gather into the next batch.
                let Ok(slot) = in_flight.clone().acquire_owned().await else {
                    return;
                };
                if rx.recv_many(&mut batch, MAX_BATCH).await == 0 {
                    return;
                }
                let batch = std::mem::take(&mut batch);
                let db = db.clone();
                tokio::spawn(async move {
                    commit(&db, batch).await;
                    drop(slot);
                });
            }
        });
        Recorder { tx }
    }

    /// Commits `writes` (with whatever else is waiting) and returns once they are durable.
    pub(crate) async fn write(&self, writes: Vec<Write>) -> Result<(), DbErr> {
        if writes.is_empty() {
            return Ok(());
        }
        let (done, committed) = oneshot::channel();
        self.tx
            .send(Submission { writes, done })
            .map_err(|_| DbErr::Custom("the engine's writer has stopped".into()))?;
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
    let mut seen = HashSet::new();
    batch
        .iter()
        .flat_map(|s| s.writes.iter())
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
    let txn = db.begin_write().await?;
    let backend = db.get_database_backend();

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
    insert_rows(
        &txn,
        backend,
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
    )
    .await?;

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
    insert_rows(
        &txn,
        backend,
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
    )
    .await?;

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
    insert_rows(
        &txn,
        backend,
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
    )
    .await?;

    let started: Vec<Vec<Cell>> = writes
        .iter()
        .filter_map(|w| match w {
            Write::StepStarted { id, attempt, at } => Some(vec![
                Cell::Uuid(Some(*id)),
                Cell::Text(Some(WorkflowStatus::Running.to_value())),
                Cell::Int(*attempt),
                Cell::Time(Some(*at)),
            ]),
            _ => None,
        })
        .collect();
    update_rows(
        &txn,
        backend,
        "workflow_steps",
        &[
            ("id", "uuid"),
            ("status", "text"),
            ("attempt", "integer"),
            ("at", "timestamptz"),
        ],
        "status = v.status, attempt = v.attempt, started_at = v.at, finished_at = NULL, \
         updated_at = v.at",
        started,
    )
    .await?;

    let finished: Vec<Vec<Cell>> = writes
        .iter()
        .filter_map(|w| match w {
            Write::StepFinished {
                id,
                status,
                output,
                error,
                at,
            } => Some(vec![
                Cell::Uuid(Some(*id)),
                Cell::Text(Some(status.to_value())),
                Cell::Json(output.clone()),
                Cell::Text(error.clone()),
                Cell::Time(Some(*at)),
            ]),
            _ => None,
        })
        .collect();
    update_rows(
        &txn,
        backend,
        "workflow_steps",
        &[
            ("id", "uuid"),
            ("status", "text"),
            ("output", "jsonb"),
            ("error", "text"),
            ("at", "timestamptz"),
        ],
        "status = v.status, output = v.output, error = v.error, finished_at = v.at, \
         updated_at = v.at",
        finished,
    )
    .await?;

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
    update_rows(
        &txn,
        backend,
        "workflow_steps",
        &[
            ("id", "uuid"),
            ("checkpoint", "jsonb"),
            ("at", "timestamptz"),
        ],
        "checkpoint = v.checkpoint, updated_at = v.at",
        checkpoints,
    )
    .await?;

    let ended: Vec<Vec<Cell>> = writes
        .iter()
        .filter_map(|w| match w {
            Write::RunFinished {
                id,
                status,
                output,
                error,
                at,
            } => Some(vec![
                Cell::Uuid(Some(*id)),
                Cell::Text(Some(status.to_value())),
                Cell::Json(output.clone()),
                Cell::Text(error.clone()),
                Cell::Time(Some(*at)),
            ]),
            _ => None,
        })
        .collect();
    update_rows(
        &txn,
        backend,
        "workflow_runs",
        &[
            ("id", "uuid"),
            ("status", "text"),
            ("output", "jsonb"),
            ("error", "text"),
            ("at", "timestamptz"),
        ],
        "status = v.status, output = v.output, error = v.error, finished_at = v.at, \
         updated_at = v.at, ticket = NULL, next_attempt_at = NULL",
        ended,
    )
    .await?;

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
        let mut sql = Sql::new(backend);
        let _ = write!(
            sql.text,
            "WITH v (id, status, at) AS ({{rows}}) UPDATE workflow_steps SET status = v.status, \
             updated_at = v.at FROM v WHERE workflow_steps.run_id = v.id \
             AND workflow_steps.status IN ('{}', '{}')",
            WorkflowStatus::Queued.to_value(),
            WorkflowStatus::Retrying.to_value(),
        );
        sql.rows(
            &[("id", "uuid"), ("status", "text"), ("at", "timestamptz")],
            unfinished,
        );
        txn.execute_raw(sql.statement()).await?;
    }
    txn.commit().await
}

/// A value of a row handed to [`insert_rows`] or [`update_rows`].
enum Cell {
    Uuid(Option<Uuid>),
    Text(Option<String>),
    Int(i32),
    Time(Option<DateTime<Utc>>),
    Json(Option<Value>),
}

impl Cell {
    fn sql(self) -> SqlValue {
        match self {
            Cell::Uuid(v) => v.into(),
            Cell::Text(v) => v.into(),
            Cell::Int(v) => v.into(),
            Cell::Time(v) => v.into(),
            Cell::Json(v) => v.into(),
        }
    }

    fn json(self) -> Value {
        match self {
            Cell::Uuid(v) => v.map_or(Value::Null, |v| Value::String(v.to_string())),
            Cell::Text(v) => v.map_or(Value::Null, Value::String),
            Cell::Int(v) => Value::from(v),
            Cell::Time(v) => v.map_or(Value::Null, |v| {
                Value::String(v.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
            }),
            // As text, cast back in SQL: `jsonb_to_recordset` reads a JSON `null` as SQL NULL,
            // which would lose a step's `null` output (or a run's `null` input).
            Cell::Json(v) => v.map_or(Value::Null, |v| Value::String(v.to_string())),
        }
    }
}

/// `INSERT INTO table (columns) …` of `rows` (values in `columns`' order).
async fn insert_rows(
    txn: &DatabaseTransaction,
    backend: DbBackend,
    table: &str,
    columns: &[(&str, &str)],
    rows: Vec<Vec<Cell>>,
) -> Result<(), DbErr> {
    if rows.is_empty() {
        return Ok(());
    }
    let names = columns
        .iter()
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(", ");
    let mut sql = Sql::new(backend);
    let _ = write!(
        sql.text,
        "WITH v ({names}) AS ({{rows}}) INSERT INTO {table} ({names}) SELECT {names} FROM v"
    );
    sql.rows(columns, rows);
    txn.execute_raw(sql.statement()).await?;
    Ok(())
}

/// `UPDATE table SET assignments FROM v WHERE table.id = v.id`, where `v` holds `rows` under
/// `columns` (the first is `id`) and `assignments` refer to them as `v.name`.
async fn update_rows(
    txn: &DatabaseTransaction,
    backend: DbBackend,
    table: &str,
    columns: &[(&str, &str)],
    assignments: &str,
    rows: Vec<Vec<Cell>>,
) -> Result<(), DbErr> {
    if rows.is_empty() {
        return Ok(());
    }
    let names = columns
        .iter()
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(", ");
    let mut sql = Sql::new(backend);
    let _ = write!(
        sql.text,
        "WITH v ({names}) AS ({{rows}}) UPDATE {table} SET {assignments} FROM v \
         WHERE {table}.id = v.id"
    );
    sql.rows(columns, rows);
    txn.execute_raw(sql.statement()).await?;
    Ok(())
}

/// SQL text with bind parameters numbered for the backend.
struct Sql {
    backend: DbBackend,
    text: String,
    values: Vec<SqlValue>,
}

impl Sql {
    fn new(backend: DbBackend) -> Self {
        Sql {
            backend,
            text: String::with_capacity(512),
            values: Vec::new(),
        }
    }

    fn bind(&mut self, value: impl Into<SqlValue>) -> String {
        self.values.push(value.into());
        match self.backend {
            DbBackend::Postgres => format!("${}", self.values.len()),
            _ => "?".to_owned(),
        }
    }

    /// Puts `rows` where the text says `{rows}`. On PostgreSQL the whole set is one JSON
    /// parameter, so the statement's text (and its prepared plan) is the same whatever the
    /// number of rows; elsewhere (SQLite, in process, cheap to prepare) a `VALUES` list.
    fn rows(&mut self, columns: &[(&str, &str)], rows: Vec<Vec<Cell>>) {
        let source = match self.backend {
            DbBackend::Postgres => {
                let set: Vec<Value> = rows
                    .into_iter()
                    .map(|row| {
                        Value::Object(
                            columns
                                .iter()
                                .zip(row)
                                .map(|((name, _), cell)| ((*name).to_owned(), cell.json()))
                                .collect(),
                        )
                    })
                    .collect();
                let param = self.bind(Value::Array(set));
                let types = columns
                    .iter()
                    .map(|(name, ty)| match *ty {
                        "jsonb" => format!("{name} text"),
                        ty => format!("{name} {ty}"),
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                let select = columns
                    .iter()
                    .map(|(name, ty)| match *ty {
                        "jsonb" => format!("{name}::jsonb"),
                        _ => (*name).to_owned(),
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                // Not `jsonb_to_recordset($1)`: its estimate of 100 rows makes the generic plan
                // join a whole table by hash. `unnest` of an array is estimated at 10 rows, so
                // the rows are found through the primary key.
                format!(
                    "SELECT {select} FROM unnest(ARRAY(SELECT jsonb_array_elements({param}))) \
                     AS e (j), LATERAL jsonb_to_record(e.j) AS r ({types})"
                )
            }
            _ => {
                let mut values = String::from("VALUES ");
                for (i, row) in rows.into_iter().enumerate() {
                    values.push_str(if i == 0 { "(" } else { ", (" });
                    for (j, cell) in row.into_iter().enumerate() {
                        if j > 0 {
                            values.push_str(", ");
                        }
                        let placeholder = self.bind(cell.sql());
                        values.push_str(&placeholder);
                    }
                    values.push(')');
                }
                values
            }
        };
        self.text = self.text.replacen("{rows}", &source, 1);
    }

    fn statement(self) -> Statement {
        Statement::from_sql_and_values(self.backend, self.text, self.values)
    }
}
