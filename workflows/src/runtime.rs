//! Workers: apalis workers that run workflows as apalis-workflow flows. One code path; the
//! queue backend is chosen at start (apalis on SQLite for the embedded default, our Redis queue
//! in production).
//!
//! Every run goes through one flow ([`stages`]): stage `k` (apalis-workflow's step index,
//! carried in the task's metadata) drives step `k` of the run through [`Engine::stage`]. When a
//! step succeeds, apalis-workflow pushes the next stage as a new task with the same
//! [`RunTask`]; the steps' inputs and outputs stay in the database, not in the queue. On our
//! Redis queue that push is created by the stage's own acknowledgement, in one script call
//! ([`crate::queue::redis`], "Life of a job"). There are as many stages as the longest
//! registered workflow has steps. A stage that ends the chain (the run finished, waits for a
//! retry, or the task had nothing to do) answers [`Halt`], which [`HaltLayer`] turns into a
//! finished task.

use std::{
    cell::RefCell,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use anyhow::Context as _;
use apalis::layers::WorkerBuilderExt;
use apalis_core::{
    backend::{
        Backend, TaskSink, WireFormatBackend, ext::BackendExt, ext::poll_strategy::Strategy,
    },
    error::BoxDynError,
    task::{Task, builder::TaskBuilder, metadata::Metadata as _, status::Status},
    worker::builder::WorkerBuilder,
};
use apalis_sqlite::{SqlitePool, SqliteStorage};
use apalis_workflow::{
    SteppedFlow,
    sequential::{AndThen, GoTo, Layer, Stack, Step, StepResponse, WorkflowContext},
    sequential::{router::WorkflowRouter, step::Identity, workflow::RootStep},
};
use chrono::{DateTime, Utc};
use futures_util::{FutureExt, future::BoxFuture};

use crate::{
    console::RUN_JOB_KIND,
    engine::{Engine, NEXT_TASK_ID, RunQueue, RunTask, Staged},
    queue::redis::{JobKind, QueueAdmin, QueueConfig, RedisQueue},
};

/// The queue of workflow runs.
pub const RUN_QUEUE: &str = "workflow_runs";

pub use crate::queue::redis::unique_worker_name;

/// One apalis worker over `$backend` running the workflow flow ([`stages`])
/// `$concurrency` tasks at a time until `$shutdown` completes: the same for every backend. A
/// macro, not a function, because apalis' bounds on a backend differ in their associated
/// types from one backend to another.
macro_rules! work {
    ($backend:expr, $engine:expr, $name:expr, $concurrency:expr, $shutdown:expr) => {
        WorkerBuilder::new($name.as_str())
            .backend($backend)
            .concurrency($concurrency.max(1))
            .layer(HaltLayer {
                stages: positions(&$engine),
            })
            .build(stages(&$engine, &$name))
            .run_until(async move {
                $shutdown.await;
                Ok::<(), std::io::Error>(())
            })
            .await
            .context("the workflow worker failed")
    };
}

/// Runs on apalis' SQLite storage, in the application's own SQLite database.
#[derive(Clone)]
pub struct SqliteRunQueue {
    storage: SqliteStorage<RunTask>,
}

impl SqliteRunQueue {
    /// Creates apalis' tables in `pool`'s database if needed.
    pub async fn setup(pool: &SqlitePool) -> anyhow::Result<Self> {
        Self::setup_with_lease(pool, Duration::from_secs(30)).await
    }

    /// As [`Self::setup`]; a worker that stops its heartbeats (it crashed) loses its runs to
    /// other workers after about `lease` (three missed heartbeats).
    pub async fn setup_with_lease(pool: &SqlitePool, lease: Duration) -> anyhow::Result<Self> {
        SqliteStorage::setup(pool)
            .await
            .context("creating the job queue tables in SQLite")?;
        let heartbeat = (lease / 3).max(Duration::from_secs(1));
        let config = apalis_sqlite::Config::default()
            .queue(RUN_QUEUE)
            .heartbeat_interval(heartbeat)
            .missed_heartbeats(3);
        Ok(SqliteRunQueue {
            storage: SqliteStorage::new(pool).with_config(config),
        })
    }

    /// Runs `concurrency` runs at a time until `shutdown` completes.
    pub async fn run_workers(
        self,
        engine: Engine,
        name: String,
        concurrency: usize,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        // Without a strategy an idle worker only looks again when something else wakes it.
        // Each look is one short write statement on the application's own SQLite file; the
        // application's write transactions begin IMMEDIATE (`entity::WriteTxn`), so they wait
        // for it under the busy timeout instead of failing on the lock upgrade.
        let backend = self
            .storage
            .poll_with_strategy(Strategy::new().interval(Duration::from_millis(200)));
        work!(backend, engine, name, concurrency, shutdown)
    }
}

impl RunQueue for SqliteRunQueue {
    fn enqueue(
        &self,
        task: RunTask,
        position: usize,
        at: Option<DateTime<Utc>>,
    ) -> BoxFuture<'_, anyhow::Result<()>> {
        let mut storage = self.storage.clone();
        async move {
            storage
                .push_task(stage_task(task, position, at))
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))
        }
        .boxed()
    }
}

/// The task of a run (`task`: its [`RunTask`], encoded or not) at stage `position`, due at
/// `at`.
fn stage_task<T>(task: T, position: usize, at: Option<DateTime<Utc>>) -> Task<T> {
    let mut builder = TaskBuilder::new(task)
        .metadata(&WorkflowContext {
            step_index: position,
        })
        .metadata(&JobKind::new(RUN_JOB_KIND));
    if let Some(at) = at {
        builder = builder.run_at_time(at.into());
    }
    builder.build()
}

/// How many stages the flow has: the steps of the longest registered workflow.
fn positions(engine: &Engine) -> usize {
    let registry = engine.registry();
    registry
        .kinds()
        .into_iter()
        .filter_map(|kind| registry.get(kind))
        .map(|flow| flow.steps().len())
        .max()
        .unwrap_or(0)
        .max(1)
}

/// The flow every run goes through: one `and_then` stage per step position.
fn stages<B>(
    engine: &Engine,
    worker: &str,
) -> SteppedFlow<RunTask, RunTask, B, Stack<Stages, Identity>> {
    let worker: Arc<str> = Arc::from(worker);
    let stages = (0..positions(engine))
        .map(|position| StageFn {
            engine: engine.clone(),
            worker: worker.clone(),
            position,
        })
        .collect();
    SteppedFlow::new(RUN_QUEUE).add_step(Stages(stages))
}

/// Ends a flow early: the stage has nothing to hand on.
#[derive(Debug)]
pub struct Halt;

impl std::fmt::Display for Halt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the run goes no further on this task")
    }
}

impl std::error::Error for Halt {}

/// Stage `position` of the flow: [`Engine::stage`] for the run of the task.
#[derive(Clone)]
struct StageFn {
    engine: Engine,
    worker: Arc<str>,
    position: usize,
}

impl tower_service::Service<Task<RunTask>> for StageFn {
    type Response = RunTask;
    type Error = BoxDynError;
    type Future = BoxFuture<'static, Result<RunTask, BoxDynError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxDynError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, task: Task<RunTask>) -> Self::Future {
        let this = self.clone();
        let id = task.task_id().map(|id| id.to_string());
        // apalis counts this attempt when the task's future first runs, after this call.
        let delivery = task.ctx().attempt() + 1;
        let run = task.args;
        async move {
            // Every queue gives its tasks an id; without one a stage cannot be told apart
            // from a duplicate, so it does nothing.
            let Some(id) = id else {
                tracing::error!(run = %run.run_id, "a workflow task without an id");
                return Err(Box::new(Halt) as BoxDynError);
            };
            match this
                .engine
                .stage(run, this.position, &id, delivery, &this.worker)
                .await
            {
                Ok(Staged::Next) => Ok(run),
                Ok(Staged::Halt) => Err(Box::new(Halt) as BoxDynError),
                Err(e) => Err(Box::new(e) as BoxDynError),
            }
        }
        .boxed()
    }
}

/// The stages, as one apalis-workflow step that registers each as an `and_then` stage in
/// order (apalis-workflow's combinators fix the number of steps at compile time; ours is
/// known at start, from the registry).
#[derive(Clone)]
pub struct Stages(Vec<StageFn>);

/// [`Stages`] over the rest of the flow.
pub struct StagesStep<S> {
    stages: Vec<StageFn>,
    rest: S,
}

impl<S> Layer<S> for Stages {
    type Step = StagesStep<S>;

    fn layer(&self, rest: S) -> StagesStep<S> {
        StagesStep {
            stages: self.0.clone(),
            rest,
        }
    }
}

impl<S, B> Step<RunTask, B> for StagesStep<S>
where
    S: Step<RunTask, B>,
    B: Backend + WireFormatBackend,
    AndThen<StageFn>: Layer<RootStep<RunTask>>,
    <AndThen<StageFn> as Layer<RootStep<RunTask>>>::Step: Step<RunTask, B>,
{
    type Response = RunTask;
    type Error = BoxDynError;

    fn register(&mut self, router: &mut WorkflowRouter<B>) -> Result<(), BoxDynError> {
        for stage in &self.stages {
            // Each registers itself at the next index; its inner step registers nothing.
            AndThen::new(stage.clone())
                .layer(RootStep::<RunTask>::default())
                .register(router)?;
        }
        self.rest.register(router)
    }
}

/// Turns a stage's [`Halt`] into a finished task, and refuses a task for a stage this flow
/// does not have (apalis-workflow would panic on it; a task of a newer release, say).
#[derive(Clone)]
pub struct HaltLayer {
    stages: usize,
}

impl<S> tower_layer::Layer<S> for HaltLayer {
    type Service = HaltService<S>;

    fn layer(&self, inner: S) -> HaltService<S> {
        HaltService {
            inner,
            stages: self.stages,
        }
    }
}

/// See [`HaltLayer`].
#[derive(Clone)]
pub struct HaltService<S> {
    inner: S,
    stages: usize,
}

impl<S, Compact> tower_service::Service<Task<Compact>> for HaltService<S>
where
    S: tower_service::Service<Task<Compact>, Response = GoTo<StepResponse>, Error = BoxDynError>,
    S::Future: Send + 'static,
    Compact: Send + 'static,
{
    type Response = GoTo<StepResponse>;
    type Error = BoxDynError;
    type Future = BoxFuture<'static, Result<GoTo<StepResponse>, BoxDynError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxDynError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, task: Task<Compact>) -> Self::Future {
        let position = WorkflowContext::extract(task.metadata())
            .map(|c| c.step_index)
            .unwrap_or(0);
        if position >= self.stages {
            let message = format!(
                "no workflow stage {position} here (this worker has {})",
                self.stages
            );
            return async move { Err(message.into()) }.boxed();
        }
        let status = task.ctx().raw_status().clone();
        // The stage may name its successor's task id (engine::NEXT_TASK_ID), which the
        // queue's id generator takes when apalis-workflow pushes it, in this scope.
        let call = NEXT_TASK_ID.scope(RefCell::new(None), self.inner.call(task));
        async move {
            match call.await {
                Err(e) if e.downcast_ref::<Halt>().is_some() => {
                    // apalis' lifecycle layer, inside this one, already recorded the error;
                    // the acknowledgement reads the status: the task is done, not failed.
                    status.store(Status::Done);
                    Ok(GoTo::Done)
                }
                other => other,
            }
        }
        .boxed()
    }
}

/// Runs on our own Redis queue ([`crate::queue::redis`]).
#[derive(Clone)]
pub struct RedisRunQueue {
    queue: RedisQueue<RunTask>,
}

impl RedisRunQueue {
    /// Connects to Redis; every key of the queue starts with `namespace`.
    /// A worker that stops renewing (it crashed) loses its runs to other workers after
    /// `lease`.
    pub async fn connect(url: &str, namespace: &str, lease: Duration) -> anyhow::Result<Self> {
        Self::connect_with(
            url,
            QueueConfig::new(RUN_QUEUE)
                .namespace(namespace)
                .lease(lease),
        )
        .await
    }

    /// Connects with a queue configuration of one's own (tests shorten the lease).
    pub async fn connect_with(url: &str, mut config: QueueConfig) -> anyhow::Result<Self> {
        // The next stages apalis-workflow pushes carry no kind of their own.
        config
            .default_kind
            .get_or_insert_with(|| RUN_JOB_KIND.to_owned());
        let queue = RedisQueue::connect(url, config)
            .await
            .context("connecting the job queue to Redis")?;
        Ok(RedisRunQueue { queue })
    }

    /// The console over this queue's namespace.
    pub fn admin(&self) -> QueueAdmin {
        self.queue.admin()
    }

    /// Runs `concurrency` runs at a time until `shutdown` completes.
    pub async fn run_workers(
        self,
        engine: Engine,
        name: String,
        concurrency: usize,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        // Runs' first stages are claimed as soon as they are fetched (`Engine::preclaim`).
        let ahead = engine.clone();
        let queue = self.queue.on_fetch(move |tasks, worker| {
            for task in tasks {
                let position = WorkflowContext::extract(task.metadata()).map(|c| c.step_index);
                let (Ok(position), Some(id), Ok(run)) = (
                    position,
                    task.task_id(),
                    serde_json::from_slice::<RunTask>(&task.args),
                ) else {
                    continue;
                };
                // As `StageFn` counts it: apalis counts the attempt when the task starts.
                let delivery = task.ctx().attempt() + 1;
                ahead.preclaim(run, position, &id.to_string(), delivery, worker);
            }
        });
        work!(queue, engine, name, concurrency, shutdown)
    }
}

impl RunQueue for RedisRunQueue {
    fn names_next_stages(&self) -> bool {
        true
    }

    fn enqueue(
        &self,
        task: RunTask,
        position: usize,
        at: Option<DateTime<Utc>>,
    ) -> BoxFuture<'_, anyhow::Result<()>> {
        let queue = self.queue.clone();
        async move {
            // At once, not as a `TaskSink` push: from inside a stage (a retry scheduled, a
            // run started by a step) that would wait for the stage's acknowledgement.
            let args = serde_json::to_vec(&task)?;
            queue.push_now(stage_task(args, position, at)).await?;
            Ok(())
        }
        .boxed()
    }
}

/// The job queue this process uses, chosen at start.
#[derive(Clone)]
pub enum QueueBackend {
    /// apalis on SQLite, in the application's database (the embedded default).
    Sqlite(SqliteRunQueue),
    /// Our Redis queue (production).
    Redis(RedisRunQueue),
}

impl QueueBackend {
    /// The handle the engine enqueues through.
    pub fn queue(&self) -> SharedQueue {
        match self {
            QueueBackend::Sqlite(q) => Arc::new(q.clone()),
            QueueBackend::Redis(q) => Arc::new(q.clone()),
        }
    }

    /// Which backend, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            QueueBackend::Sqlite(_) => "sqlite",
            QueueBackend::Redis(_) => "redis",
        }
    }

    /// Runs workers on this backend until `shutdown` completes.
    pub async fn run_workers(
        self,
        engine: Engine,
        name: String,
        concurrency: usize,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        match self {
            QueueBackend::Sqlite(q) => q.run_workers(engine, name, concurrency, shutdown).await,
            QueueBackend::Redis(q) => q.run_workers(engine, name, concurrency, shutdown).await,
        }
    }
}

/// The shared handle callers keep.
pub type SharedQueue = Arc<dyn RunQueue>;
