//! Claims in batches: the tasks the workers fetched gather, and one transaction claims all
//! of them. Each task is one stage of a run (apalis-workflow's step index): it may start the
//! step at its position only if every step before succeeded and no other task holds that step.
//! The transaction locks the runs (PostgreSQL: `FOR UPDATE`; SQLite's write transactions are
//! exclusive), reads their steps, decides per task ([`decide`]), and for the tasks that win
//! marks the run running and starts their step, naming the task on the step row.
//!
//! A task that cannot claim says why ([`Claim`]): a retry handed out before it is due goes the
//! engine's slower way; a task whose step it already ended (its acknowledgement was lost) goes
//! on to the next stage; a stale or duplicate task does nothing.

use std::{
    collections::{HashMap, HashSet},
    fmt::Write as _,
    sync::Arc,
};

use entity::{WriteTxn as _, enums::WorkflowStatus, workflow_runs, workflow_steps};
use sea_orm::{
    ActiveEnum, ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait,
    FromQueryResult, QueryFilter, QueryOrder,
};
use tokio::sync::oneshot;
use uuid::Uuid;

use super::{
    Batcher,
    sql::{Cell, Sql},
};
use crate::engine::RunTask;

/// A claimed run, as the claim left it.
pub(crate) struct Claimed {
    pub run: workflow_runs::Model,
    /// Its steps in order, as updated.
    pub steps: Vec<workflow_steps::Model>,
    /// The claim changed the run's status to running (it was queued or retrying): worth
    /// telling subscribers; going on to the next step is not.
    pub taken_up: bool,
}

/// What a claim found.
pub(crate) enum Claim {
    /// The run is this task's to drive: the step at its position was started for it, or not
    /// (`None`: the run was asked to cancel, or the step is unknown here).
    Claimed(Claimed),
    /// This task already ended its step (the queue delivered it again after a lost
    /// acknowledgement): go on to the next stage, as the task named here if the step ended
    /// named one.
    Replay(Option<String>),
    /// A retry handed out before it is due.
    NotDue(workflow_runs::Model),
    /// Nothing to do, and why: stale (another ticket, a finished run) or a duplicate (another
    /// task holds the step, or an earlier step is unfinished).
    Skip(&'static str),
}

/// One fetched task: drive `task`'s run at step `position`, as queue task `task_id`, on its
/// `delivery`th delivery (1 = the first).
#[derive(Debug, Clone)]
pub(crate) struct Stage {
    pub task: RunTask,
    pub position: usize,
    pub task_id: String,
    pub delivery: usize,
}

struct Submission {
    stage: Stage,
    worker: String,
    done: oneshot::Sender<Result<Claim, DbErr>>,
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
const IN_FLIGHT: usize = 4;

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

    /// Claims `stage` for `worker` (see [`Claim`]).
    pub(crate) async fn claim(&self, stage: Stage, worker: &str) -> Result<Claim, DbErr> {
        Self::outcome(self.submit(stage, worker)).await
    }

    /// Hands the claim of `stage` to the batching task at once; the answer comes on the
    /// returned channel (see [`Claims::outcome`]).
    pub(crate) fn submit(
        &self,
        stage: Stage,
        worker: &str,
    ) -> oneshot::Receiver<Result<Claim, DbErr>> {
        let (done, claimed) = oneshot::channel();
        // If the task has stopped, `done` is dropped with the submission: the receiver says so.
        let _ = self.batcher.send(Submission {
            stage,
            worker: worker.to_owned(),
            done,
        });
        claimed
    }

    /// The answer to a submitted claim.
    pub(crate) async fn outcome(
        claimed: oneshot::Receiver<Result<Claim, DbErr>>,
    ) -> Result<Claim, DbErr> {
        claimed
            .await
            .map_err(|_| DbErr::Custom("the engine's claim task has stopped".into()))?
    }
}

async fn claim_batch(db: &DatabaseConnection, counts: &StepCounts, batch: Vec<Submission>) {
    // The same run twice in one batch is decided on what the first leaves behind: the later
    // ones wait for the next batch (in order, behind the first's commit).
    let mut seen = HashSet::new();
    let (first, again): (Vec<_>, Vec<_>) = batch
        .into_iter()
        .partition(|s| seen.insert(s.stage.task.run_id));
    claim_all(db, counts, first).await;
    if !again.is_empty() {
        Box::pin(claim_batch(db, counts, again)).await;
    }
}

/// Answers every submission: a stale one with [`Claim::Skip`], a failure with the error.
fn answer(subs: Vec<Submission>, result: Result<HashMap<(Uuid, String), Claim>, DbErr>) {
    match result {
        Ok(mut claims) => {
            for s in subs {
                let claim = claims
                    .remove(&(s.stage.task.run_id, s.stage.task_id.clone()))
                    .unwrap_or(Claim::Skip("stale: another ticket, or the run finished"));
                let _ = s.done.send(Ok(claim));
            }
        }
        Err(e) => {
            let message = e.to_string();
            for s in subs {
                let _ = s.done.send(Err(DbErr::Custom(message.clone())));
            }
        }
    }
}

/// What `stage` may do with `run`, whose steps are `steps` (in order).
fn decide(run: &workflow_runs::Model, steps: &[workflow_steps::Model], stage: &Stage) -> Decision {
    if run.next_attempt_at.is_some() {
        return Decision::NotDue;
    }
    let position = stage.position;
    let Some(step) = steps.get(position) else {
        // No such step in the run: let the engine end it, saying why.
        return Decision::Claim(Start::No);
    };
    let mine = step.task_id.as_deref() == Some(stage.task_id.as_str());
    if step.status == WorkflowStatus::Succeeded {
        return if mine {
            Decision::Replay
        } else {
            Decision::Skip("duplicate: another task ended this step")
        };
    }
    if steps[..position]
        .iter()
        .any(|s| s.status != WorkflowStatus::Succeeded)
    {
        return Decision::Skip("duplicate: an earlier step is unfinished");
    }
    let cancelled = run.cancel_requested_at.is_some();
    match step.status {
        WorkflowStatus::Running if !mine => {
            Decision::Skip("duplicate: another task holds this step")
        }
        // Started for this task by the step before it, and this is the task's first
        // delivery: nothing to write.
        WorkflowStatus::Running if stage.delivery <= 1 || cancelled => {
            Decision::Claim(Start::Already)
        }
        // Delivered again (its worker died, or its attempt failed): a new attempt.
        WorkflowStatus::Queued | WorkflowStatus::Retrying | WorkflowStatus::Running => {
            Decision::Claim(if cancelled { Start::No } else { Start::Now })
        }
        _ => Decision::Skip("the step ended"),
    }
}

enum Decision {
    Claim(Start),
    Replay,
    NotDue,
    Skip(&'static str),
}

/// What a claim does with the stage's step.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Start {
    /// Starts an attempt of it for this task.
    Now,
    /// Leaves it as it is: started for this task already.
    Already,
    /// Leaves it: the run was asked to cancel, or the step is unknown.
    No,
}

/// The runs of `batch` that still carry the tasks' tickets and are active, with their
/// steps; `lock` locks the runs' rows (PostgreSQL) until the transaction ends.
async fn read(
    db: &impl ConnectionTrait,
    batch: &[&Submission],
    lock: bool,
) -> Result<
    (
        HashMap<Uuid, workflow_runs::Model>,
        HashMap<Uuid, Vec<workflow_steps::Model>>,
    ),
    DbErr,
> {
    let backend = db.get_database_backend();
    let rows = batch
        .iter()
        .map(|s| {
            vec![
                Cell::Uuid(Some(s.stage.task.run_id)),
                Cell::Uuid(Some(s.stage.task.ticket)),
            ]
        })
        .collect();
    let mut sql = Sql::new(backend);
    sql.with_rows(&[("claim_id", "uuid"), ("claim_ticket", "uuid")], rows);
    let _ = write!(
        sql.text,
        "SELECT workflow_runs.* FROM workflow_runs JOIN v ON workflow_runs.id = v.claim_id \
         AND workflow_runs.ticket = v.claim_ticket \
         WHERE workflow_runs.status IN ('{queued}', '{running}', '{retrying}')",
        queued = WorkflowStatus::Queued.to_value(),
        running = WorkflowStatus::Running.to_value(),
        retrying = WorkflowStatus::Retrying.to_value(),
    );
    if lock && backend == DbBackend::Postgres {
        sql.text.push_str(" FOR UPDATE OF workflow_runs");
    }
    let runs: HashMap<Uuid, workflow_runs::Model> =
        workflow_runs::Model::find_by_statement(sql.statement())
            .all(db)
            .await?
            .into_iter()
            .map(|r| (r.id, r))
            .collect();
    let mut steps: HashMap<Uuid, Vec<workflow_steps::Model>> = HashMap::new();
    if !runs.is_empty() {
        for step in steps_of(db, runs.keys().copied().collect()).await? {
            steps.entry(step.run_id).or_default().push(step);
        }
    }
    Ok((runs, steps))
}

/// The steps of `runs`, in order of position.
///
/// On PostgreSQL through the `(run_id, position)` index whatever the table's statistics: a
/// plain `run_id IN (…)` over a table not analyzed yet (a new database, or the first minute
/// of a burst, before autovacuum's next look) is estimated at a quarter of the table and
/// read by a sequential scan of all of it (18 ms instead of 0.3 ms for 50 runs of 60,000
/// steps, measured during `bench/workflows.sh`). The runs come as rows of `v` (estimated at
/// 10) and each one's steps from a lateral subquery that `OFFSET 0` keeps from being
/// flattened into a join the planner could turn into that scan.
async fn steps_of(
    db: &impl ConnectionTrait,
    runs: Vec<Uuid>,
) -> Result<Vec<workflow_steps::Model>, DbErr> {
    let backend = db.get_database_backend();
    if backend != DbBackend::Postgres {
        return workflow_steps::Entity::find()
            .filter(workflow_steps::Column::RunId.is_in(runs))
            .order_by_asc(workflow_steps::Column::Position)
            .all(db)
            .await;
    }
    let mut sql = Sql::new(backend);
    sql.with_rows(
        &[("step_run", "uuid")],
        runs.into_iter()
            .map(|id| vec![Cell::Uuid(Some(id))])
            .collect(),
    );
    sql.text.push_str(
        "SELECT s.* FROM v CROSS JOIN LATERAL (SELECT * FROM workflow_steps \
         WHERE workflow_steps.run_id = v.step_run OFFSET 0) AS s ORDER BY s.position",
    );
    workflow_steps::Model::find_by_statement(sql.statement())
        .all(db)
        .await
}

/// Claims a batch. A first look reads without locks: a stage whose step the step before
/// started for it (the usual case on a queue that keeps the ids the engine names) needs no
/// write at all, and is answered at once. The rest are decided again under lock, in a
/// transaction that writes their claims.
async fn claim_all(db: &DatabaseConnection, counts: &StepCounts, batch: Vec<Submission>) {
    // A run's first stage, and a task delivered again, start their step: straight to the
    // write.
    let (mut writing, mut reading): (Vec<_>, Vec<_>) = batch
        .into_iter()
        .partition(|s| s.stage.position == 0 || s.stage.delivery > 1);
    let all: Vec<&Submission> = reading.iter().collect();
    let (mut runs, mut steps) = if all.is_empty() {
        Default::default()
    } else {
        match read(db, &all, false).await {
            Ok(read) => read,
            Err(e) => {
                answer(std::mem::take(&mut reading), Err(e));
                Default::default()
            }
        }
    };
    for s in reading {
        let Some(run) = runs.remove(&s.stage.task.run_id) else {
            answer(vec![s], Ok(HashMap::new()));
            continue;
        };
        let run_steps = steps.remove(&run.id).unwrap_or_default();
        let claim = match decide(&run, &run_steps, &s.stage) {
            Decision::Claim(Start::Already) if run.status == WorkflowStatus::Running => {
                Claim::Claimed(Claimed {
                    run,
                    steps: run_steps,
                    taken_up: false,
                })
            }
            Decision::Claim(_) => {
                writing.push(s);
                continue;
            }
            Decision::Replay => Claim::Replay(
                run_steps
                    .get(s.stage.position + 1)
                    .and_then(|st| st.task_id.clone()),
            ),
            Decision::NotDue => Claim::NotDue(run),
            Decision::Skip(why) => Claim::Skip(why),
        };
        let _ = s.done.send(Ok(claim));
    }
    // A run's first claim (its first stage, first delivery) on PostgreSQL: one statement.
    if db.get_database_backend() == DbBackend::Postgres {
        let (first, rest): (Vec<_>, Vec<_>) = writing
            .into_iter()
            .partition(|s| s.stage.position == 0 && s.stage.delivery <= 1);
        writing = rest;
        if !first.is_empty() {
            match claim_first(db, counts, &first).await {
                Ok(mut claimed) => {
                    for s in first {
                        match claimed.remove(&(s.stage.task.run_id, s.stage.task_id.clone())) {
                            Some(claim) => {
                                let _ = s.done.send(Ok(claim));
                            }
                            // Not a fresh run's first claim after all: decided the long way.
                            None => writing.push(s),
                        }
                    }
                }
                Err(e) => answer(first, Err(e)),
            }
        }
    }
    if !writing.is_empty() {
        let refs: Vec<&Submission> = writing.iter().collect();
        let claims = claim_writing(db, counts, &refs).await;
        answer(writing, claims);
    }
}

/// The first claims of runs that are queued and untouched (the usual first stage), on
/// PostgreSQL, in one statement instead of a transaction of five: the run is taken up and
/// its first step started only where [`decide`] would start it for this task (the run
/// queued with the task's ticket, not asked to cancel, no retry pending, of a kind known
/// here, its first step queued), and the runs so claimed are returned with their steps as
/// the statement left them. The others (the run changed meanwhile, say) are left out, for
/// the long way to decide. The row locks of the `UPDATE` order it against any other claim
/// of the same run, which then finds the run running. Like the long way, its commit does
/// not wait for the write-ahead log's flush (`set_config(…, true)` in the statement lasts
/// until its implicit transaction's commit).
async fn claim_first(
    db: &DatabaseConnection,
    counts: &StepCounts,
    batch: &[Submission],
) -> Result<HashMap<(Uuid, String), Claim>, DbErr> {
    use sea_orm::{IdenStatic as _, Iterable as _};
    let kinds: Vec<&str> = counts
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(kind, _)| kind.as_str())
        .collect();
    if kinds.is_empty() {
        return Ok(HashMap::new());
    }
    let now = entity::now();
    let rows = batch
        .iter()
        .map(|s| {
            vec![
                Cell::Uuid(Some(s.stage.task.run_id)),
                Cell::Uuid(Some(s.stage.task.ticket)),
                Cell::Text(Some(s.worker.clone())),
                Cell::Text(Some(s.stage.task_id.clone())),
                Cell::Time(Some(now)),
            ]
        })
        .collect();
    let mut sql = Sql::new(DbBackend::Postgres);
    sql.with_rows(
        &[
            ("claim_id", "uuid"),
            ("claim_ticket", "uuid"),
            ("claim_worker", "text"),
            ("claim_task", "text"),
            ("claim_at", "timestamptz"),
        ],
        rows,
    );
    let kinds_param = sql.bind(serde_json::to_string(&kinds).unwrap_or_default());
    let queued = WorkflowStatus::Queued.to_value();
    let running = WorkflowStatus::Running.to_value();
    let _ = write!(
        sql.text,
        ", r AS (UPDATE workflow_runs SET status = '{running}', worker = v.claim_worker, \
         attempt = workflow_runs.attempt + 1, \
         started_at = COALESCE(workflow_runs.started_at, v.claim_at), updated_at = v.claim_at \
         FROM v WHERE workflow_runs.id = v.claim_id AND workflow_runs.ticket = v.claim_ticket \
         AND workflow_runs.status = '{queued}' AND workflow_runs.next_attempt_at IS NULL \
         AND workflow_runs.cancel_requested_at IS NULL \
         AND workflow_runs.kind IN (SELECT json_array_elements_text({kinds_param}::json)) \
         AND EXISTS (SELECT 1 FROM workflow_steps f WHERE f.run_id = workflow_runs.id \
         AND f.position = 0 AND f.status = '{queued}') \
         RETURNING workflow_runs.*, v.claim_task, v.claim_at), \
         s AS (UPDATE workflow_steps SET status = '{running}', \
         attempt = workflow_steps.attempt + 1, started_at = r.claim_at, finished_at = NULL, \
         updated_at = r.claim_at, task_id = r.claim_task \
         FROM r WHERE workflow_steps.run_id = r.id AND workflow_steps.position = 0) \
         SELECT "
    );
    for c in workflow_runs::Column::iter() {
        let _ = write!(sql.text, "r.{0} AS r_{0}, ", c.as_str());
    }
    for c in workflow_steps::Column::iter() {
        let _ = write!(sql.text, "st.{0} AS s_{0}, ", c.as_str());
    }
    // The steps as they were before the statement (its parts share one snapshot); the
    // first one's start is applied below as the statement applied it.
    sql.text.push_str(
        "r.claim_task AS claim_task, set_config('synchronous_commit', 'off', true) AS off \
         FROM r CROSS JOIN LATERAL (SELECT * FROM workflow_steps \
         WHERE workflow_steps.run_id = r.id OFFSET 0) AS st ORDER BY st.run_id, st.position",
    );
    let mut claimed: HashMap<Uuid, Claimed> = HashMap::new();
    for row in db.query_all_raw(sql.statement()).await? {
        let mut step = workflow_steps::Model::from_query_result(&row, "s_")?;
        let entry = match claimed.entry(step.run_id) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(Claimed {
                run: workflow_runs::Model::from_query_result(&row, "r_")?,
                steps: Vec::new(),
                taken_up: true,
            }),
        };
        if step.position == 0 {
            let task: String = row.try_get("", "claim_task")?;
            super::start_attempt(&mut step, now, task);
        }
        entry.steps.push(step);
    }
    Ok(claimed
        .into_values()
        .filter_map(|c| {
            let task = c.steps.first()?.task_id.clone()?;
            Some(((c.run.id, task), Claim::Claimed(c)))
        })
        .collect())
}

/// The claims that write: decided again with the runs locked, then written and committed.
async fn claim_writing(
    db: &DatabaseConnection,
    counts: &StepCounts,
    batch: &[&Submission],
) -> Result<HashMap<(Uuid, String), Claim>, DbErr> {
    let backend = db.get_database_backend();
    let txn = db.begin_write().await?;
    if backend == DbBackend::Postgres {
        // A claim need not outlive a crash of the database: lost, it is as if the worker had
        // died before the step began, which the engine handles; and any later commit of the
        // run (a checkpoint, the step's end) flushes it too. Not waiting for its flush
        // halves a claim's latency.
        txn.execute_unprepared("SET LOCAL synchronous_commit TO OFF")
            .await?;
    }
    let now = entity::now();
    let (mut runs, mut steps) = read(&txn, batch, true).await?;
    let mut claims = HashMap::with_capacity(batch.len());
    let mut starts = Vec::new();
    let mut taken = Vec::new();
    for s in batch {
        let Stage {
            task,
            position,
            task_id,
            ..
        } = &s.stage;
        let Some(mut run) = runs.remove(&task.run_id) else {
            continue;
        };
        let mut steps = steps.remove(&run.id).unwrap_or_default();
        let claim = match decide(&run, &steps, &s.stage) {
            Decision::NotDue => Claim::NotDue(run),
            Decision::Replay => {
                Claim::Replay(steps.get(*position + 1).and_then(|st| st.task_id.clone()))
            }
            Decision::Skip(why) => Claim::Skip(why),
            Decision::Claim(start) => {
                let known = counts.get(&run.kind).copied().unwrap_or(0);
                let resuming = start == Start::Now
                    && steps
                        .get(*position)
                        .is_some_and(|st| st.status == WorkflowStatus::Running);
                // The same task again (a crash mid-step) resumes: a new attempt.
                if let (Start::Now, Some(step)) = (start, steps.get_mut(*position))
                    && *position < known
                {
                    starts.push(super::start_attempt(step, now, task_id.clone()));
                }
                let taken_up = run.status != WorkflowStatus::Running;
                // The run's row changes only when a worker takes it up or resumes a step;
                // going on to the next step leaves it be.
                if taken_up || resuming {
                    run.attempt += 1;
                    run.status = WorkflowStatus::Running;
                    run.worker = Some(s.worker.clone());
                    run.started_at = run.started_at.or(Some(now));
                    run.updated_at = now;
                    taken.push(vec![
                        Cell::Uuid(Some(run.id)),
                        Cell::Text(Some(s.worker.clone())),
                        Cell::Int(run.attempt),
                        Cell::Time(Some(now)),
                    ]);
                }
                Claim::Claimed(Claimed {
                    run,
                    steps,
                    taken_up,
                })
            }
        };
        claims.insert((task.run_id, task_id.clone()), claim);
    }
    if !taken.is_empty() {
        super::update_rows(
            &txn,
            backend,
            "workflow_runs",
            &[
                ("id", "uuid"),
                ("worker", "text"),
                ("attempt", "integer"),
                ("at", "timestamptz"),
            ],
            &format!(
                "status = '{running}', worker = v.worker, attempt = v.attempt, \
                 started_at = COALESCE(workflow_runs.started_at, v.at), updated_at = v.at",
                running = WorkflowStatus::Running.to_value()
            ),
            taken,
        )
        .await?;
    }
    super::start_steps(&txn, backend, &starts).await?;
    txn.commit().await?;
    Ok(claims)
}
