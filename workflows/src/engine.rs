//! The engine: starts runs, drives them step by step on a worker, records everything in the
//! database and publishes every change on the bus.
//!
//! # How a run stays correct across crashes
//!
//! The database is the record of a run: its row and one row per step (status, attempt,
//! output, checkpoint, error, the queue task that claimed it). The queue carries "drive step
//! K of run R with ticket T": apalis-workflow's stage K ([`crate::runtime`]); when a step
//! succeeds, apalis-workflow pushes stage K+1. A stage claims its step with a conditional
//! write (the ticket must still be the run's, every earlier step succeeded, no other task
//! holds the step), reads the output recorded by the step before, and runs it. So:
//!
//! - a worker killed in the middle of a step loses nothing: the queue's lease expires, the task
//!   goes to another worker, which re-runs that step (attempt + 1, its checkpoints intact) and
//!   goes on; steps already done are not repeated;
//! - apalis-workflow pushes the next stage before the queue acknowledges the current one: a
//!   stage delivered again after a lost acknowledgement finds its step ended by itself and only
//!   pushes the next stage again; of two tasks for one step, the second finds it held by the
//!   first and does nothing;
//! - a retry is a new task with a new ticket, delayed by the backoff; the old task, should it
//!   ever be delivered again, finds another ticket and does nothing;
//! - cancelling a queued run finishes it at once; a running one is told through its steps'
//!   [`StepCtx::cancelled`] and stops between steps at the latest.

use entity::WriteTxn as _;
use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
    time::Duration,
};

use bus::{Event, EventBus};
use chrono::{DateTime, Utc};
use entity::{enums::WorkflowStatus, workflow_logs, workflow_runs, workflow_steps};
use futures_util::future::BoxFuture;
use sea_orm::{
    ActiveEnum, ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, DbErr,
    EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, SqlErr, sea_query::Expr,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{Mutex, watch};
use uuid::Uuid;

use crate::{
    flow::{StepDef, Workflow},
    recorder::{Claim, Claimed, Claims, Recorder, Stage, Write, start_attempt},
    step::{StepCtx, StepError},
};

/// What the queue carries: drive run `run_id`, if `ticket` is still its ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunTask {
    /// The run.
    pub run_id: Uuid,
    /// Must equal the run's `ticket` for the task to do anything.
    pub ticket: Uuid,
}

/// Where the engine puts [`RunTask`]s: the Redis queue or apalis on SQLite.
pub trait RunQueue: Send + Sync + 'static {
    /// Enqueues `task` at the workflow stage `position` (the step it drives; apalis-workflow
    /// pushes the stages after it), to be taken at `at` or at once.
    fn enqueue(
        &self,
        task: RunTask,
        position: usize,
        at: Option<DateTime<Utc>>,
    ) -> BoxFuture<'_, anyhow::Result<()>>;

    /// Whether the next stage apalis-workflow pushes takes the id the engine names in
    /// [`NEXT_TASK_ID`], and a push with the id of a job the queue still holds is dropped.
    /// Then a step's end starts the next step for that task in the same commit, and the next
    /// stage, on its first delivery, needs no write to claim it.
    fn names_next_stages(&self) -> bool {
        false
    }
}

tokio::task_local! {
    /// The id for the next stage's task, named by the stage that runs in this scope; the
    /// queue's id generator takes it (see [`RunQueue::names_next_stages`]).
    pub static NEXT_TASK_ID: std::cell::RefCell<Option<String>>;
}

/// Names the next stage's task, when running in a [`NEXT_TASK_ID`] scope.
fn name_next_stage(id: String) {
    let _ = NEXT_TASK_ID.try_with(|next| *next.borrow_mut() = Some(id));
}

/// What a stage leaves to the workflow: go on to the next stage, or stop the chain here (the
/// run ended, waits for a retry, or the task had nothing to do).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Staged {
    /// The step succeeded and the run goes on at the next position.
    Next,
    /// Nothing follows this task.
    Halt,
}

/// The workflows an engine knows, by kind.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    flows: HashMap<String, Arc<Workflow>>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `flow`, replacing one of the same kind.
    pub fn register(&mut self, flow: Workflow) -> &mut Self {
        self.flows.insert(flow.kind().to_owned(), Arc::new(flow));
        self
    }

    /// The workflow of `kind`.
    pub fn get(&self, kind: &str) -> Option<&Arc<Workflow>> {
        self.flows.get(kind)
    }

    /// Every registered kind, sorted.
    pub fn kinds(&self) -> Vec<&str> {
        let mut kinds: Vec<&str> = self.flows.keys().map(String::as_str).collect();
        kinds.sort_unstable();
        kinds
    }
}

/// Tunables of the engine.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// How often a running step checks whether its run was cancelled.
    pub cancel_poll: Duration,
    /// How long a step may go on after cancellation was requested before it is dropped.
    pub cancel_grace: Duration,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            cancel_poll: Duration::from_millis(500),
            cancel_grace: Duration::from_secs(10),
        }
    }
}

/// Why the engine refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// No run with that id.
    #[error("workflow run not found")]
    NotFound,
    /// No workflow of that kind is registered.
    #[error("unknown workflow kind {0:?}")]
    UnknownKind(String),
    /// The run is not in a state that allows the action.
    #[error("{0}")]
    InvalidState(String),
    /// The database failed.
    #[error("database error: {0}")]
    Db(#[from] DbErr),
    /// The queue refused the task.
    #[error("the job queue failed: {0}")]
    Queue(String),
}

/// A request to start a run.
#[derive(Debug, Clone, Default)]
pub struct StartRun {
    /// Registered workflow kind.
    pub kind: String,
    /// The first step's input.
    pub input: Value,
    /// Owner; `None` for instance-wide runs.
    pub organization_id: Option<Uuid>,
    /// The cluster the run works on.
    pub cluster_id: Option<Uuid>,
    /// The same key (per organization and kind) returns the same run.
    pub idempotency_key: Option<String>,
    /// Who asked.
    pub created_by_user_id: Option<Uuid>,
}

/// The engine; cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    db: DatabaseConnection,
    recorder: Recorder,
    claims: Claims,
    bus: EventBus,
    registry: Registry,
    queue: Arc<dyn RunQueue>,
    settings: EngineSettings,
    handoffs: ByTask<Handoff>,
    preclaims: ByTask<Preclaim>,
}

/// Values by (run, queue task id), taken once: what a stage leaves for the next stage of its
/// run ([`Handoff`]) and claims made ahead ([`Preclaim`]). At most [`ByTask::CAP`] entries:
/// when full, those older than a minute (left by a task another process took, or given back
/// at a close) are dropped, and if that is not enough, all are; a stage that finds nothing
/// reads or claims for itself.
struct ByTask<T>(std::sync::Mutex<HashMap<(Uuid, String), (T, std::time::Instant)>>);

impl<T> Default for ByTask<T> {
    fn default() -> Self {
        ByTask(std::sync::Mutex::new(HashMap::new()))
    }
}

impl<T> ByTask<T> {
    const CAP: usize = 10_000;

    fn put(&self, run: Uuid, task_id: String, value: T) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= Self::CAP {
            map.retain(|_, (_, at)| at.elapsed() < Duration::from_secs(60));
            if map.len() >= Self::CAP {
                map.clear();
            }
        }
        map.insert((run, task_id), (value, std::time::Instant::now()));
    }

    fn take(&self, run: Uuid, task_id: &str) -> Option<T> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(&(run, task_id.to_owned()))
            .map(|(value, _)| value)
    }
}

/// What a stage left for the next stage of its run, by the next stage's task id, when this
/// process takes that task too: the run and its steps as the stage's commit left them, so
/// the next stage need not read them again. As between two steps of one loop, a
/// cancellation requested meanwhile is seen by the next stage's watcher, one poll later;
/// while a run is running nothing else changes its ticket or steps.
struct Handoff {
    run: workflow_runs::Model,
    steps: Vec<workflow_steps::Model>,
}

/// A claim made ahead: a worker's queue fetches a batch of tasks and hands them to the worker
/// one at a time, as its slots free up; the first stage of a fresh run is claimed as soon as
/// its task is fetched ([`Engine::preclaim`]), so that when the task gets a slot the claim
/// has (mostly) been committed meanwhile instead of being waited for then. Taken by the
/// stage ([`Engine::stage`]). A cancellation requested between the claim and the stage is
/// seen by the stage's watcher, as one requested while its step runs.
type Preclaim = tokio::sync::oneshot::Receiver<Result<Claim, DbErr>>;

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("kinds", &self.inner.registry.kinds())
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

const ACTIVE: [WorkflowStatus; 3] = [
    WorkflowStatus::Queued,
    WorkflowStatus::Running,
    WorkflowStatus::Retrying,
];

fn is_finished(status: WorkflowStatus) -> bool {
    matches!(
        status,
        WorkflowStatus::Succeeded | WorkflowStatus::Failed | WorkflowStatus::Cancelled
    )
}

impl Engine {
    /// An engine over `db`, publishing on `bus`, enqueueing on `queue`. Starts the engine's
    /// writer task ([`crate::recorder`]), so it must be called inside a tokio runtime.
    pub fn new(
        db: DatabaseConnection,
        bus: EventBus,
        registry: Registry,
        queue: Arc<dyn RunQueue>,
        settings: EngineSettings,
    ) -> Self {
        Engine {
            inner: Arc::new(Inner {
                recorder: Recorder::spawn(db.clone()),
                claims: Claims::spawn(
                    db.clone(),
                    registry
                        .flows
                        .iter()
                        .map(|(kind, flow)| (kind.clone(), flow.steps().len()))
                        .collect(),
                ),
                db,
                bus,
                registry,
                queue,
                settings,
                handoffs: ByTask::default(),
                preclaims: ByTask::default(),
            }),
        }
    }

    /// The registered workflows.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// The database the engine records in.
    pub fn db(&self) -> &DatabaseConnection {
        &self.inner.db
    }

    /// Starts a run, or returns the run started earlier with the same idempotency key (then
    /// `created` is false and the input is not compared).
    pub async fn start(&self, req: StartRun) -> Result<(workflow_runs::Model, bool), EngineError> {
        let flow = self
            .inner
            .registry
            .get(&req.kind)
            .ok_or_else(|| EngineError::UnknownKind(req.kind.clone()))?
            .clone();
        if let Some(existing) = self.find_by_key(&req).await? {
            return Ok((existing, false));
        }
        let ticket = Uuid::now_v7();
        let now = entity::now();
        let run = workflow_runs::Model {
            id: Uuid::now_v7(),
            organization_id: req.organization_id,
            cluster_id: req.cluster_id,
            kind: req.kind.clone(),
            status: WorkflowStatus::Queued,
            idempotency_key: req.idempotency_key.clone(),
            input: req.input.clone(),
            output: None,
            error: None,
            attempt: 0,
            cancel_requested_at: None,
            created_by_user_id: req.created_by_user_id,
            started_at: None,
            finished_at: None,
            ticket: Some(ticket),
            next_attempt_at: None,
            worker: None,
            created_at: now,
            updated_at: now,
        };
        let mut writes = vec![Write::InsertRun(Box::new(run.clone()))];
        for (position, step) in flow.steps().iter().enumerate() {
            writes.push(Write::InsertStep(Box::new(workflow_steps::Model {
                id: Uuid::now_v7(),
                run_id: run.id,
                position: position as i32,
                name: step.name.clone(),
                status: WorkflowStatus::Queued,
                attempt: 0,
                output: None,
                checkpoint: None,
                error: None,
                started_at: None,
                finished_at: None,
                task_id: None,
                created_at: now,
                updated_at: now,
            })));
        }
        match self.inner.recorder.write(writes).await {
            Ok(()) => {}
            Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
                // Another request with the same key won the race.
                return match self.find_by_key(&req).await? {
                    Some(existing) => Ok((existing, false)),
                    None => Err(EngineError::Db(e)),
                };
            }
            Err(e) => return Err(e.into()),
        }
        self.publish_run(&run);
        if let Err(e) = self
            .inner
            .queue
            .enqueue(
                RunTask {
                    run_id: run.id,
                    ticket,
                },
                0,
                None,
            )
            .await
        {
            // Nothing will drive the run: say so on the run rather than leave it queued.
            let message = format!("could not enqueue the run: {e:#}");
            self.finish_run(
                &run,
                WorkflowStatus::Failed,
                None,
                Some(message.clone()),
                None,
            )
            .await?;
            return Err(EngineError::Queue(message));
        }
        Ok((run, true))
    }

    async fn find_by_key(&self, req: &StartRun) -> Result<Option<workflow_runs::Model>, DbErr> {
        let Some(key) = &req.idempotency_key else {
            return Ok(None);
        };
        let mut query = workflow_runs::Entity::find()
            .filter(workflow_runs::Column::Kind.eq(req.kind.as_str()))
            .filter(workflow_runs::Column::IdempotencyKey.eq(key.as_str()));
        query = match req.organization_id {
            Some(org) => query.filter(workflow_runs::Column::OrganizationId.eq(org)),
            None => query.filter(workflow_runs::Column::OrganizationId.is_null()),
        };
        query.one(&self.inner.db).await
    }

    /// Cancels a run: a queued or retrying run ends at once; a running one is asked to stop
    /// and ends when its current step returns or its grace period is over.
    pub async fn cancel(&self, run_id: Uuid) -> Result<workflow_runs::Model, EngineError> {
        let run = self.load(run_id).await?;
        if is_finished(run.status) {
            return Err(EngineError::InvalidState(format!(
                "the run is already {}",
                run.status.to_value()
            )));
        }
        let now = entity::now();
        workflow_runs::Entity::update_many()
            .col_expr(workflow_runs::Column::CancelRequestedAt, Expr::value(now))
            .col_expr(workflow_runs::Column::UpdatedAt, Expr::value(now))
            .filter(workflow_runs::Column::Id.eq(run_id))
            .filter(workflow_runs::Column::CancelRequestedAt.is_null())
            .exec(&self.inner.db)
            .await?;
        // Not running: nobody else will finish it. The condition keeps a worker that claims it
        // right now from being overwritten; that worker sees the request before its first step.
        let ended = workflow_runs::Entity::update_many()
            .col_expr(
                workflow_runs::Column::Status,
                Expr::value(WorkflowStatus::Cancelled),
            )
            .col_expr(workflow_runs::Column::FinishedAt, Expr::value(now))
            .col_expr(
                workflow_runs::Column::Ticket,
                Expr::value(Option::<Uuid>::None),
            )
            .col_expr(workflow_runs::Column::UpdatedAt, Expr::value(now))
            .filter(workflow_runs::Column::Id.eq(run_id))
            .filter(
                workflow_runs::Column::Status
                    .is_in([WorkflowStatus::Queued, WorkflowStatus::Retrying]),
            )
            .exec(&self.inner.db)
            .await?;
        if ended.rows_affected > 0 {
            self.cancel_remaining_steps(run_id).await?;
        }
        let run = self.load(run_id).await?;
        self.publish_run(&run);
        Ok(run)
    }

    /// Starts a failed or cancelled run again from its first unfinished step; steps that
    /// succeeded keep their output and are not repeated.
    pub async fn retry(&self, run_id: Uuid) -> Result<workflow_runs::Model, EngineError> {
        let run = self.load(run_id).await?;
        if !matches!(
            run.status,
            WorkflowStatus::Failed | WorkflowStatus::Cancelled
        ) {
            return Err(EngineError::InvalidState(format!(
                "only a failed or cancelled run can be retried; this one is {}",
                run.status.to_value()
            )));
        }
        if !self.inner.registry.flows.contains_key(&run.kind) {
            return Err(EngineError::UnknownKind(run.kind));
        }
        let ticket = Uuid::now_v7();
        let now = entity::now();
        let txn = self.inner.db.begin_write().await?;
        let claimed = workflow_runs::Entity::update_many()
            .col_expr(
                workflow_runs::Column::Status,
                Expr::value(WorkflowStatus::Queued),
            )
            .col_expr(workflow_runs::Column::Ticket, Expr::value(ticket))
            .col_expr(
                workflow_runs::Column::Error,
                Expr::value(Option::<String>::None),
            )
            .col_expr(
                workflow_runs::Column::FinishedAt,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .col_expr(
                workflow_runs::Column::CancelRequestedAt,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .col_expr(workflow_runs::Column::UpdatedAt, Expr::value(now))
            .filter(workflow_runs::Column::Id.eq(run_id))
            .filter(workflow_runs::Column::Status.eq(run.status))
            .exec(&txn)
            .await?;
        if claimed.rows_affected == 0 {
            return Err(EngineError::InvalidState(
                "the run changed meanwhile; read it again".into(),
            ));
        }
        // Unfinished steps start over with a fresh attempt count; checkpoints stay.
        workflow_steps::Entity::update_many()
            .col_expr(
                workflow_steps::Column::Status,
                Expr::value(WorkflowStatus::Queued),
            )
            .col_expr(workflow_steps::Column::Attempt, Expr::value(0))
            .col_expr(workflow_steps::Column::UpdatedAt, Expr::value(now))
            .filter(workflow_steps::Column::RunId.eq(run_id))
            .filter(workflow_steps::Column::Status.ne(WorkflowStatus::Succeeded))
            .exec(&txn)
            .await?;
        let position = workflow_steps::Entity::find()
            .filter(workflow_steps::Column::RunId.eq(run_id))
            .filter(workflow_steps::Column::Status.ne(WorkflowStatus::Succeeded))
            .order_by_asc(workflow_steps::Column::Position)
            .one(&txn)
            .await?
            .map_or(0, |s| usize::try_from(s.position).unwrap_or(0));
        txn.commit().await?;
        let run = self.load(run_id).await?;
        self.publish_run(&run);
        self.inner
            .queue
            .enqueue(RunTask { run_id, ticket }, position, None)
            .await
            .map_err(|e| EngineError::Queue(format!("{e:#}")))?;
        Ok(run)
    }

    /// Claims ahead the first stage of a run, fetched by `worker`'s queue as task `task_id`
    /// on its `delivery`th delivery but not given a slot yet ([`Preclaim`]). Later stages
    /// and tasks delivered again are claimed when they run (a later stage mostly finds its
    /// step started by the one before, with nothing to write).
    pub fn preclaim(
        &self,
        task: RunTask,
        position: usize,
        task_id: &str,
        delivery: usize,
        worker: &str,
    ) {
        if position != 0 || delivery > 1 {
            return;
        }
        let stage = Stage {
            task,
            position,
            task_id: task_id.to_owned(),
            delivery,
        };
        let claimed = self.inner.claims.submit(stage, worker);
        self.inner
            .preclaims
            .put(task.run_id, task_id.to_owned(), claimed);
    }

    /// Runs one stage of a run: the step at `position`, as queue task `task_id`. The claim
    /// ([`Claims`]) decides whether this task may run it: a stale task (another ticket, a
    /// finished run), a second task for a step another task holds, or one for a step whose
    /// predecessor is unfinished does nothing; the same task delivered again after a crash
    /// resumes the step (a new attempt); one whose step it already ended goes on. An error
    /// means the database or queue failed; the queue retries the task.
    /// `delivery` counts the queue's deliveries of this task (1 = the first).
    pub async fn stage(
        &self,
        task: RunTask,
        position: usize,
        task_id: &str,
        delivery: usize,
        worker: &str,
    ) -> Result<Staged, EngineError> {
        let handed = (delivery <= 1)
            .then(|| self.inner.handoffs.take(task.run_id, task_id))
            .flatten()
            .filter(|h| h.run.ticket == Some(task.ticket));
        let claim = match handed {
            Some(Handoff { run, steps }) => Claim::Claimed(Claimed {
                run,
                steps,
                taken_up: false,
            }),
            None => {
                let stage = Stage {
                    task,
                    position,
                    task_id: task_id.to_owned(),
                    delivery,
                };
                self.claim(stage, worker).await?
            }
        };
        let Claimed {
            run,
            steps,
            taken_up,
        } = match claim {
            Claim::Claimed(claimed) => claimed,
            Claim::Replay(next) => {
                if let Some(next) = next {
                    name_next_stage(next);
                }
                return Ok(Staged::Next);
            }
            Claim::NotDue(_) | Claim::Skip(_) => return Ok(Staged::Halt),
        };
        if taken_up {
            self.publish_run(&run);
        }
        let Some(flow) = self.inner.registry.get(&run.kind).cloned() else {
            let message = format!("no workflow {:?} is registered on this worker", run.kind);
            self.finish_run(&run, WorkflowStatus::Failed, None, Some(message), None)
                .await?;
            return Ok(Staged::Halt);
        };
        let (cancel_tx, cancel) = watch::channel(run.cancel_requested_at.is_some());
        let _watcher = AbortOnDrop(self.watch_cancellation(run.id, cancel_tx));
        let (Some(step), Some(def)) = (steps.get(position).cloned(), flow.steps().get(position))
        else {
            let name = steps.get(position).map_or("?", |s| s.name.as_str());
            let message = format!(
                "step {position} ({name}) is not part of workflow {:?} on this worker",
                run.kind
            );
            self.finish_run(&run, WorkflowStatus::Failed, None, Some(message), None)
                .await?;
            return Ok(Staged::Halt);
        };
        if *cancel.borrow() {
            // A step started for this task by the one before it never ran: it ends too.
            let unrun = (step.status == WorkflowStatus::Running).then(|| {
                Ended::of(
                    step,
                    WorkflowStatus::Cancelled,
                    None,
                    Some("cancelled".to_owned()),
                )
            });
            self.finish_run(&run, WorkflowStatus::Cancelled, None, None, unrun)
                .await?;
            return Ok(Staged::Halt);
        }
        let input = match position.checked_sub(1) {
            None => run.input.clone(),
            Some(before) => steps[before].output.clone().unwrap_or(Value::Null),
        };
        // The claim (or the step before) committed the step's start.
        let (attempted, end) = self.attempt(&run, step, def, input, cancel).await?;
        match attempted {
            Attempted::Succeeded(output) if position + 1 >= flow.steps().len() => {
                self.finish_run(
                    &run,
                    WorkflowStatus::Succeeded,
                    Some(output),
                    None,
                    Some(end),
                )
                .await?;
                Ok(Staged::Halt)
            }
            Attempted::Succeeded(_) => {
                // Committed before the next stage is pushed: it reads this output. Where the
                // queue takes the ids the engine names, the next step starts in the same
                // commit, for the task about to be pushed.
                let mut writes = vec![end.write];
                let next = steps
                    .get(position + 1)
                    .filter(|_| self.inner.queue.names_next_stages())
                    .map(|next| {
                        let mut next = next.clone();
                        let id = Uuid::now_v7().to_string();
                        writes.push(start_attempt(&mut next, entity::now(), id).into());
                        next
                    });
                self.inner.recorder.write(writes).await?;
                self.publish_step(&run, &end.step);
                // Its start is announced by its own stage, when it begins.
                if let Some(next) = next
                    && let Some(id) = next.task_id.clone()
                {
                    let mut steps = steps;
                    steps[position] = end.step;
                    steps[position + 1] = next;
                    self.inner
                        .handoffs
                        .put(run.id, id.clone(), Handoff { run, steps });
                    name_next_stage(id);
                }
                Ok(Staged::Next)
            }
            Attempted::Cancelled => {
                self.finish_run(&run, WorkflowStatus::Cancelled, None, None, Some(end))
                    .await?;
                Ok(Staged::Halt)
            }
            Attempted::Failed(message) => {
                self.finish_run(&run, WorkflowStatus::Failed, None, Some(message), Some(end))
                    .await?;
                Ok(Staged::Halt)
            }
            Attempted::Retry { delay, message } => {
                self.schedule_retry(&run, position, delay, message, end)
                    .await?;
                Ok(Staged::Halt)
            }
        }
    }

    /// Claims `stage` for `worker` ([`Claims`]). A retry handed out before its backoff is
    /// over (queues keep run-at times to the second, apalis on SQLite, or may hand a task out
    /// a little early) waits for it, or goes back to the queue when it is far off.
    async fn claim(&self, stage: Stage, worker: &str) -> Result<Claim, EngineError> {
        let claimed = match self.inner.preclaims.take(stage.task.run_id, &stage.task_id) {
            Some(claimed) => Claims::outcome(claimed).await?,
            None => self.inner.claims.claim(stage.clone(), worker).await?,
        };
        let run = match claimed {
            Claim::NotDue(run) => run,
            Claim::Skip(why) => {
                tracing::debug!(run = %stage.task.run_id, position = stage.position, why, "nothing to do");
                return Ok(Claim::Skip(why));
            }
            other => return Ok(other),
        };
        if let Some(due) = run.next_attempt_at
            && let Ok(early) = (due - Utc::now()).to_std()
        {
            if early > Duration::from_secs(5) {
                self.inner
                    .queue
                    .enqueue(stage.task, stage.position, Some(due))
                    .await
                    .map_err(|e| EngineError::Queue(format!("{e:#}")))?;
                return Ok(Claim::Skip("a retry handed out early: queued again"));
            }
            tokio::time::sleep(early).await;
        }
        // Due: only while the run still has this task's ticket.
        workflow_runs::Entity::update_many()
            .col_expr(
                workflow_runs::Column::NextAttemptAt,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .filter(workflow_runs::Column::Id.eq(stage.task.run_id))
            .filter(workflow_runs::Column::Ticket.eq(stage.task.ticket))
            .filter(workflow_runs::Column::Status.is_in(ACTIVE))
            .exec(&self.inner.db)
            .await?;
        Ok(match self.inner.claims.claim(stage, worker).await? {
            Claim::NotDue(_) => Claim::Skip("the retry was moved meanwhile"),
            other => other,
        })
    }

    /// Polls the run's cancellation request for as long as the run is driven here; the first
    /// look is one period after the claim (which read it).
    fn watch_cancellation(
        &self,
        run_id: Uuid,
        cancel: watch::Sender<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let engine = self.clone();
        tokio::spawn(async move {
            if *cancel.borrow() {
                return;
            }
            let period = engine.inner.settings.cancel_poll;
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            loop {
                tick.tick().await;
                if engine.cancel_requested(run_id).await.unwrap_or(false) {
                    let _ = cancel.send(true);
                    return;
                }
            }
        })
    }

    /// One attempt of one step, whose start is committed already; its end is returned, to be
    /// committed with what follows.
    async fn attempt(
        &self,
        run: &workflow_runs::Model,
        step: workflow_steps::Model,
        def: &StepDef,
        input: Value,
        cancel: watch::Receiver<bool>,
    ) -> Result<(Attempted, Ended), EngineError> {
        let attempt = step.attempt;
        self.publish_step(run, &step);

        let checkpoint: BTreeMap<String, Value> = match &step.checkpoint {
            Some(Value::Object(map)) => map.clone().into_iter().collect(),
            _ => BTreeMap::new(),
        };
        let ctx = StepCtx {
            engine: self.clone(),
            run_id: run.id,
            step_id: step.id,
            position: step.position,
            attempt,
            organization_id: run.organization_id,
            cluster_id: run.cluster_id,
            cancel,
            checkpoint: Arc::new(Mutex::new(checkpoint)),
        };
        let outcome = self.run_step(def, ctx, input).await;

        let (status, output, error, result) = match outcome {
            StepOutcome::Done(Ok(output)) => (
                WorkflowStatus::Succeeded,
                Some(output.clone()),
                None,
                Attempted::Succeeded(output),
            ),
            StepOutcome::Cancelled => (
                WorkflowStatus::Cancelled,
                None,
                Some("cancelled".to_owned()),
                Attempted::Cancelled,
            ),
            StepOutcome::Done(Err(e)) => {
                let exhausted = attempt as u32 >= def.retry.max_attempts;
                if e.permanent || exhausted {
                    let why = if e.permanent {
                        String::new()
                    } else {
                        format!(" (attempt {attempt} of {})", def.retry.max_attempts)
                    };
                    let message = format!("step {} failed{why}: {}", def.name, e.message);
                    (
                        WorkflowStatus::Failed,
                        None,
                        Some(e.message),
                        Attempted::Failed(message),
                    )
                } else {
                    let message = format!(
                        "step {} failed (attempt {attempt} of {}): {}",
                        def.name, def.retry.max_attempts, e.message
                    );
                    (
                        WorkflowStatus::Retrying,
                        None,
                        Some(e.message),
                        Attempted::Retry {
                            delay: def.retry.delay_after(attempt as u32),
                            message,
                        },
                    )
                }
            }
        };
        Ok((result, Ended::of(step, status, output, error)))
    }

    /// Runs the step body in its own task (a panic fails the attempt, not the worker), under
    /// its timeout, watching for cancellation.
    async fn run_step(&self, def: &StepDef, ctx: StepCtx, input: Value) -> StepOutcome {
        let mut cancelled = ctx.cancel.clone();
        let mut body = tokio::spawn((def.run)(ctx, input));
        let timeout = tokio::time::sleep(def.timeout);
        tokio::pin!(timeout);
        enum First {
            Body(Result<Result<Value, StepError>, tokio::task::JoinError>),
            TimedOut,
            Cancelled,
        }
        let first = tokio::select! {
            joined = &mut body => First::Body(joined),
            _ = &mut timeout => First::TimedOut,
            _ = async { let _ = cancelled.wait_for(|c| *c).await; } => First::Cancelled,
        };
        let joined = match first {
            First::Body(joined) => joined,
            First::TimedOut => {
                body.abort();
                return StepOutcome::Done(Err(StepError::retryable(format!(
                    "timed out after {}",
                    humanize(def.timeout)
                ))));
            }
            First::Cancelled => {
                // Cooperative first: the step sees `is_cancelled` and may finish cleanly.
                return match tokio::time::timeout(self.inner.settings.cancel_grace, &mut body).await
                {
                    Ok(Ok(Ok(output))) => StepOutcome::Done(Ok(output)),
                    _ => {
                        body.abort();
                        StepOutcome::Cancelled
                    }
                };
            }
        };
        match joined {
            // The body saw the cancellation first and stopped with an error: still a cancel
            // (otherwise a run cancelled mid-step would end FAILED, depending on which task
            // the scheduler woke first).
            Ok(Err(_)) if *cancelled.borrow() => StepOutcome::Cancelled,
            Ok(result) => StepOutcome::Done(result),
            Err(e) if e.is_panic() => {
                StepOutcome::Done(Err(StepError::retryable("the step panicked")))
            }
            Err(_) => StepOutcome::Cancelled,
        }
    }

    async fn cancel_requested(&self, run_id: Uuid) -> Result<bool, DbErr> {
        let run = workflow_runs::Entity::find_by_id(run_id)
            .one(&self.inner.db)
            .await?;
        Ok(run.is_none_or(|r| r.cancel_requested_at.is_some()))
    }

    async fn schedule_retry(
        &self,
        run: &workflow_runs::Model,
        position: usize,
        delay: Duration,
        message: String,
        ended: Ended,
    ) -> Result<(), EngineError> {
        self.inner.recorder.write(vec![ended.write]).await?;
        self.publish_step(run, &ended.step);
        let ticket = Uuid::now_v7();
        let due = Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default();
        // Only the fields set below are written: a cancellation requested meanwhile stays.
        let mut row = run.clone().into_active_model();
        row.status = Set(WorkflowStatus::Retrying);
        row.ticket = Set(Some(ticket));
        row.next_attempt_at = Set(Some(due));
        row.error = Set(Some(message));
        let updated = row.update(&self.inner.db).await?;
        self.publish_run(&updated);
        self.inner
            .queue
            .enqueue(
                RunTask {
                    run_id: run.id,
                    ticket,
                },
                position,
                Some(due),
            )
            .await
            .map_err(|e| EngineError::Queue(format!("{e:#}")))
    }

    /// Ends the run, committing the end of its last attempt with it.
    async fn finish_run(
        &self,
        run: &workflow_runs::Model,
        status: WorkflowStatus,
        output: Option<Value>,
        error: Option<String>,
        ended: Option<Ended>,
    ) -> Result<(), EngineError> {
        let at = entity::now();
        let mut writes = Vec::with_capacity(2);
        let last = ended.map(|e| {
            writes.push(e.write);
            e.step
        });
        // Only these fields are written: a cancellation requested meanwhile stays.
        writes.push(Write::RunFinished {
            id: run.id,
            status,
            output: output.clone(),
            error: error.clone(),
            at,
        });
        self.inner.recorder.write(writes).await?;
        if let Some(step) = last {
            self.publish_step(run, &step);
        }
        let mut finished = run.clone();
        finished.status = status;
        finished.output = output;
        finished.error = error;
        finished.ticket = None;
        finished.next_attempt_at = None;
        finished.finished_at = Some(at);
        finished.updated_at = at;
        self.publish_run(&finished);
        Ok(())
    }

    /// Steps that never ran (or were waiting for a retry) of a finished run end as cancelled;
    /// `started_at` tells those that ran from those that did not.
    async fn cancel_remaining_steps(&self, run_id: Uuid) -> Result<(), DbErr> {
        let now = entity::now();
        workflow_steps::Entity::update_many()
            .col_expr(
                workflow_steps::Column::Status,
                Expr::value(WorkflowStatus::Cancelled),
            )
            .col_expr(workflow_steps::Column::UpdatedAt, Expr::value(now))
            .filter(workflow_steps::Column::RunId.eq(run_id))
            .filter(
                workflow_steps::Column::Status
                    .is_in([WorkflowStatus::Queued, WorkflowStatus::Retrying]),
            )
            .exec(&self.inner.db)
            .await?;
        Ok(())
    }

    async fn load(&self, run_id: Uuid) -> Result<workflow_runs::Model, EngineError> {
        workflow_runs::Entity::find_by_id(run_id)
            .one(&self.inner.db)
            .await?
            .ok_or(EngineError::NotFound)
    }

    pub(crate) async fn append_log(
        &self,
        run_id: Uuid,
        organization_id: Option<Uuid>,
        step_id: Option<Uuid>,
        level: &str,
        message: String,
    ) -> Result<(), DbErr> {
        let row = workflow_logs::Model {
            id: Uuid::now_v7(),
            run_id,
            step_id,
            level: level.to_owned(),
            message,
            created_at: entity::now(),
        };
        let log_id = row.id;
        let level = row.level.clone();
        let message = row.message.clone();
        self.inner
            .recorder
            .write(vec![Write::InsertLog(Box::new(row))])
            .await?;
        self.inner.bus.publish(Event::WorkflowLogAppended {
            run_id,
            organization_id,
            step_id,
            log_id,
            level,
            message,
        });
        Ok(())
    }

    pub(crate) async fn store_checkpoint(&self, step_id: Uuid, value: Value) -> Result<(), DbErr> {
        self.inner
            .recorder
            .write(vec![Write::Checkpoint {
                id: step_id,
                value,
                at: entity::now(),
            }])
            .await
    }

    fn publish_run(&self, run: &workflow_runs::Model) {
        self.inner.bus.publish(Event::WorkflowRunUpdated {
            run_id: run.id,
            organization_id: run.organization_id,
            cluster_id: run.cluster_id,
            kind: run.kind.clone(),
            status: run.status,
        });
    }

    fn publish_step(&self, run: &workflow_runs::Model, step: &workflow_steps::Model) {
        self.inner.bus.publish(Event::WorkflowStepUpdated {
            run_id: run.id,
            organization_id: run.organization_id,
            step_id: step.id,
            position: step.position,
            name: step.name.clone(),
            status: step.status,
            attempt: step.attempt,
        });
    }
}

enum Attempted {
    Succeeded(Value),
    Cancelled,
    Failed(String),
    Retry { delay: Duration, message: String },
}

/// The end of a step's attempt, not committed yet, and the step as it will read after.
struct Ended {
    write: Write,
    step: workflow_steps::Model,
}

impl Ended {
    /// `step`'s attempt ending now as `status`. (A cancelled attempt would keep the output an
    /// earlier attempt recorded: none, as only a succeeded step has one.)
    fn of(
        mut step: workflow_steps::Model,
        status: WorkflowStatus,
        output: Option<Value>,
        error: Option<String>,
    ) -> Ended {
        let at = entity::now();
        step.status = status;
        step.output = output.clone();
        step.error = error.clone();
        step.finished_at = Some(at);
        step.updated_at = at;
        Ended {
            write: Write::StepFinished {
                id: step.id,
                status,
                output,
                error,
                at,
            },
            step,
        }
    }
}

enum StepOutcome {
    Done(Result<Value, StepError>),
    Cancelled,
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn humanize(d: Duration) -> String {
    if d.as_millis() < 1000 {
        format!("{} ms", d.as_millis())
    } else {
        format!("{} s", d.as_secs_f64())
    }
}
