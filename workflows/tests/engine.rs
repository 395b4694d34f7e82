//! The engine against a real database and queue, with workflows that really sleep, fail, time
//! out and get cancelled: apalis on SQLite (the embedded default) by default, PostgreSQL with
//! the Redis queue when `AG_TEST_BACKEND=postgres` (as `scripts/test` runs the suite twice).
//! Real worker processes are covered by the API's tests.

use std::time::Duration;

use bus::{Event, EventBus};
use entity::{enums::WorkflowStatus, workflow_logs, workflow_runs, workflow_steps};
use futures_util::StreamExt;
use migration::{Migrator, MigratorTrait};
use sea_orm::{
    ColumnTrait, ConnectionTrait, Database, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder,
};
use serde_json::json;
use tokio::sync::oneshot;
use uuid::Uuid;
use workflows::{
    Engine, EngineSettings, Registry, StartRun,
    runtime::{QueueBackend, RedisRunQueue, SqliteRunQueue, unique_worker_name},
    testing,
};

struct Harness {
    engine: Engine,
    db: DatabaseConnection,
    bus: EventBus,
    queue: QueueBackend,
    _stop: oneshot::Sender<()>,
    _store: Store,
}

/// Where a test's data lives: a temporary SQLite file, or a PostgreSQL database of its own
/// (dropped with it) and a Redis namespace of its own.
enum Store {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { name: String },
}

fn postgres_admin_url() -> String {
    std::env::var("AG_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn on_postgres() -> bool {
    std::env::var("AG_TEST_BACKEND").is_ok_and(|b| b == "postgres")
}

/// The test's own name under `AG_TEST_RUN_ID`, for its database and its Redis keys.
fn unique_name() -> String {
    let run = std::env::var("AG_TEST_RUN_ID").unwrap_or_else(|_| "local".into());
    format!("ag_test_{run}_{}", Uuid::now_v7().simple())
}

impl Drop for Store {
    fn drop(&mut self) {
        let Store::Postgres { name } = self else {
            return;
        };
        let name = name.clone();
        // Drop runs inside the test's runtime: do the async work on a thread of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(conn) = Database::connect(&postgres_admin_url()).await {
                    let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                    let _ = conn.execute_unprepared(&sql).await;
                }
            });
        })
        .join();
    }
}

async fn harness() -> Harness {
    harness_with(true).await
}

/// As [`harness`]; without workers the test drives stages itself.
async fn harness_with(workers: bool) -> Harness {
    let (db, queue, store) = if on_postgres() {
        let name = unique_name();
        let admin = postgres_admin_url();
        let conn = Database::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {admin} does not answer: {e}"));
        conn.execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
            .await
            .unwrap();
        let mut url = url::Url::parse(&admin).unwrap();
        url.set_path(&name);
        let db = Database::connect(url.as_str()).await.unwrap();
        let redis =
            std::env::var("AG_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let queue = RedisRunQueue::connect(&redis, &name, Duration::from_secs(30))
            .await
            .unwrap_or_else(|e| panic!("Redis at {redis} (AG_TEST_REDIS_URL): {e:#}"));
        (db, QueueBackend::Redis(queue), Store::Postgres { name })
    } else {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let db = Database::connect(&url).await.unwrap();
        let queue = SqliteRunQueue::setup(db.get_sqlite_connection_pool())
            .await
            .unwrap();
        (db, QueueBackend::Sqlite(queue), Store::Sqlite(dir))
    };
    Migrator::up(&db, None).await.unwrap();
    let bus = EventBus::in_process();
    let mut registry = Registry::new();
    testing::register(&mut registry);
    let engine = Engine::new(
        db.clone(),
        bus.clone(),
        registry,
        queue.queue(),
        EngineSettings {
            cancel_poll: Duration::from_millis(50),
            cancel_grace: Duration::from_secs(2),
        },
    );
    let (stop, stopped) = oneshot::channel::<()>();
    if workers {
        tokio::spawn(queue.clone().run_workers(
            engine.clone(),
            unique_worker_name("test"),
            8,
            async move {
                let _ = stopped.await;
            },
        ));
    }
    Harness {
        engine,
        db,
        bus,
        queue,
        _stop: stop,
        _store: store,
    }
}

fn start(kind: &str, input: serde_json::Value) -> StartRun {
    StartRun {
        kind: kind.into(),
        input,
        ..Default::default()
    }
}

async fn run_of(db: &DatabaseConnection, id: Uuid) -> workflow_runs::Model {
    workflow_runs::Entity::find_by_id(id)
        .one(db)
        .await
        .unwrap()
        .unwrap()
}

async fn steps_of(db: &DatabaseConnection, id: Uuid) -> Vec<workflow_steps::Model> {
    workflow_steps::Entity::find()
        .filter(workflow_steps::Column::RunId.eq(id))
        .order_by_asc(workflow_steps::Column::Position)
        .all(db)
        .await
        .unwrap()
}

/// Polls until the run reaches `status` or the time is up.
async fn wait_for(
    db: &DatabaseConnection,
    id: Uuid,
    status: WorkflowStatus,
    within: Duration,
) -> workflow_runs::Model {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let run = run_of(db, id).await;
        if run.status == status {
            return run;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "run {id} is {:?} (error {:?}), not {status:?}, after {within:?}",
            run.status,
            run.error
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn a_run_goes_through_its_steps_and_records_each() {
    let h = harness().await;
    let mut events = Box::pin(h.bus.subscribe());
    let (run, created) = h
        .engine
        .start(start(testing::SLEEP, json!({"ms": 50})))
        .await
        .unwrap();
    assert!(created);
    assert_eq!(run.status, WorkflowStatus::Queued);
    let done = wait_for(
        &h.db,
        run.id,
        WorkflowStatus::Succeeded,
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(done.output, Some(json!(50)));
    assert!(done.started_at.is_some() && done.finished_at.is_some());
    let steps = steps_of(&h.db, run.id).await;
    let names: Vec<_> = steps
        .iter()
        .map(|s| (s.name.as_str(), s.status, s.attempt))
        .collect();
    assert_eq!(
        names,
        [
            ("sleep", WorkflowStatus::Succeeded, 1),
            ("done", WorkflowStatus::Succeeded, 1)
        ]
    );
    assert_eq!(steps[0].output, Some(json!(50)));
    let logs = workflow_logs::Entity::find()
        .filter(workflow_logs::Column::RunId.eq(run.id))
        .order_by_asc(workflow_logs::Column::CreatedAt)
        .all(&h.db)
        .await
        .unwrap();
    let lines: Vec<_> = logs.iter().map(|l| l.message.as_str()).collect();
    assert_eq!(lines, ["sleeping 50 ms", "woke up"]);
    assert!(logs.iter().all(|l| l.step_id == Some(steps[0].id)));

    // Run, step and log changes were published, ending with the run's success.
    let mut seen = Vec::new();
    while let Ok(Some(event)) =
        tokio::time::timeout(Duration::from_millis(200), events.next()).await
    {
        seen.push(event);
    }
    assert!(seen.iter().any(|e| matches!(e, Event::WorkflowStepUpdated { name, status: WorkflowStatus::Running, .. } if name == "sleep")));
    assert!(
        seen.iter().any(
            |e| matches!(e, Event::WorkflowLogAppended { message, .. } if message == "woke up")
        )
    );
    assert!(matches!(
        seen.iter()
            .rev()
            .find(|e| matches!(e, Event::WorkflowRunUpdated { .. })),
        Some(Event::WorkflowRunUpdated {
            status: WorkflowStatus::Succeeded,
            ..
        })
    ));

    // On the queue: one task per step (apalis-workflow pushed the second stage), both done;
    // the last one, which ends the flow, is done too, not failed and tried again.
    let console = workflows::console::JobConsole::of(&h.queue, &h.db);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let queues = console.queues().await.unwrap();
        let q = queues
            .iter()
            .find(|q| q.name == workflows::runtime::RUN_QUEUE)
            .unwrap();
        let counts = (q.pending, q.running, q.scheduled, q.failed, q.dead, q.done);
        if counts == (0, 0, 0, 0, 0, 2) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "queue counts (pending, running, scheduled, failed, dead, done): {counts:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn failing_steps_are_retried_with_backoff_then_succeed() {
    let h = harness().await;
    let began = std::time::Instant::now();
    let (run, _) = h
        .engine
        .start(start(testing::FLAKY, json!({"fail_times": 2})))
        .await
        .unwrap();
    let done = wait_for(
        &h.db,
        run.id,
        WorkflowStatus::Succeeded,
        Duration::from_secs(20),
    )
    .await;
    // Delays of 200 ms then 400 ms (no jitter) came before the third attempt.
    assert!(
        began.elapsed() >= Duration::from_millis(600),
        "{:?}",
        began.elapsed()
    );
    assert_eq!(done.output, Some(json!(3)));
    let step = &steps_of(&h.db, run.id).await[1];
    assert_eq!((step.status, step.attempt), (WorkflowStatus::Succeeded, 3));
    assert_eq!(step.error, None);
}

#[tokio::test]
async fn a_step_out_of_attempts_fails_the_run_and_says_why() {
    let h = harness().await;
    let (run, _) = h
        .engine
        .start(start(testing::FLAKY, json!({"fail_times": 5})))
        .await
        .unwrap();
    let failed = wait_for(
        &h.db,
        run.id,
        WorkflowStatus::Failed,
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(
        failed.error.as_deref(),
        Some("step flaky failed (attempt 3 of 3): planned failure 3 of 5")
    );
    let step = &steps_of(&h.db, run.id).await[1];
    assert_eq!((step.status, step.attempt), (WorkflowStatus::Failed, 3));
}

#[tokio::test]
async fn a_permanent_error_is_not_retried() {
    let h = harness().await;
    let (run, _) = h
        .engine
        .start(start(
            testing::FLAKY,
            json!({"fail_times": 5, "permanent": true}),
        ))
        .await
        .unwrap();
    let failed = wait_for(
        &h.db,
        run.id,
        WorkflowStatus::Failed,
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(
        failed.error.as_deref(),
        Some("step flaky failed: planned failure 1 of 5")
    );
    assert_eq!(steps_of(&h.db, run.id).await[1].attempt, 1);
}

#[tokio::test]
async fn a_step_that_outlives_its_timeout_is_stopped_and_retried() {
    let h = harness().await;
    let began = std::time::Instant::now();
    let (run, _) = h
        .engine
        .start(start(testing::TIMEOUT, json!({})))
        .await
        .unwrap();
    let failed = wait_for(
        &h.db,
        run.id,
        WorkflowStatus::Failed,
        Duration::from_secs(20),
    )
    .await;
    assert!(began.elapsed() < Duration::from_secs(10));
    assert_eq!(
        failed.error.as_deref(),
        Some("step slow failed (attempt 2 of 2): timed out after 300 ms")
    );
}

#[tokio::test]
async fn cancelling_a_running_run_stops_its_step_and_records_what_ran() {
    let h = harness().await;
    let (run, _) = h
        .engine
        .start(start(testing::SLEEP, json!({"ms": 60_000})))
        .await
        .unwrap();
    wait_for(
        &h.db,
        run.id,
        WorkflowStatus::Running,
        Duration::from_secs(20),
    )
    .await;
    // Let the step start.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let began = std::time::Instant::now();
    h.engine.cancel(run.id).await.unwrap();
    let cancelled = wait_for(
        &h.db,
        run.id,
        WorkflowStatus::Cancelled,
        Duration::from_secs(10),
    )
    .await;
    assert!(
        began.elapsed() < Duration::from_secs(5),
        "{:?}",
        began.elapsed()
    );
    assert!(cancelled.cancel_requested_at.is_some() && cancelled.finished_at.is_some());
    let steps = steps_of(&h.db, run.id).await;
    assert_eq!(steps[0].status, WorkflowStatus::Cancelled);
    assert!(steps[0].started_at.is_some(), "the first step ran");
    assert_eq!(steps[1].status, WorkflowStatus::Cancelled);
    assert!(steps[1].started_at.is_none(), "the second step never ran");
    // A finished run cannot be cancelled again.
    assert!(h.engine.cancel(run.id).await.is_err());
}

#[tokio::test]
async fn retrying_a_failed_run_resumes_at_the_failed_step() {
    let h = harness().await;
    let (run, _) = h
        .engine
        .start(start(testing::FLAKY, json!({"fail_times": 3})))
        .await
        .unwrap();
    wait_for(
        &h.db,
        run.id,
        WorkflowStatus::Failed,
        Duration::from_secs(20),
    )
    .await;
    let retried = h.engine.retry(run.id).await.unwrap();
    assert_eq!(
        (retried.status, retried.error),
        (WorkflowStatus::Queued, None)
    );
    assert!(
        h.engine.retry(run.id).await.is_err(),
        "a queued run is not retried twice"
    );
    // The step's fourth attempt overall (the first of the retry) succeeds; `prepare`, which
    // had succeeded, is not run again.
    let done = wait_for(
        &h.db,
        run.id,
        WorkflowStatus::Succeeded,
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(done.output, Some(json!(1)));
    let steps = steps_of(&h.db, run.id).await;
    assert_eq!(
        (steps[0].status, steps[0].attempt),
        (WorkflowStatus::Succeeded, 1)
    );
    assert_eq!(
        (steps[1].status, steps[1].attempt),
        (WorkflowStatus::Succeeded, 1)
    );
    assert_eq!(steps[1].checkpoint, Some(json!({"failures": 3})));
}

#[tokio::test]
async fn the_same_idempotency_key_returns_the_same_run() {
    let h = harness().await;
    let req = StartRun {
        idempotency_key: Some("key-1".into()),
        ..start(testing::SLEEP, json!({"ms": 1}))
    };
    let (first, created) = h.engine.start(req.clone()).await.unwrap();
    assert!(created);
    let (second, created_again) = h.engine.start(req.clone()).await.unwrap();
    assert!(!created_again);
    assert_eq!(first.id, second.id);
    let (other, _) = h
        .engine
        .start(StartRun {
            idempotency_key: Some("key-2".into()),
            ..req.clone()
        })
        .await
        .unwrap();
    assert_ne!(other.id, first.id);
    // Concurrent starts with one key make one run. They are committed in one batch with
    // runs of no key, which the duplicates must not take down with them.
    let key = StartRun {
        idempotency_key: Some("key-3".into()),
        ..req.clone()
    };
    let keyless = StartRun {
        idempotency_key: None,
        ..req
    };
    let (keyed, unkeyed) = tokio::join!(
        futures_util::future::join_all((0..8).map(|_| h.engine.start(key.clone()))),
        futures_util::future::join_all((0..8).map(|_| h.engine.start(keyless.clone()))),
    );
    let ids: std::collections::HashSet<Uuid> = keyed.into_iter().map(|r| r.unwrap().0.id).collect();
    assert_eq!(ids.len(), 1);
    let created: std::collections::HashSet<Uuid> = unkeyed
        .into_iter()
        .map(|r| {
            let (run, created) = r.unwrap();
            assert!(created);
            run.id
        })
        .collect();
    assert_eq!(created.len(), 8);
    wait_for(
        &h.db,
        first.id,
        WorkflowStatus::Succeeded,
        Duration::from_secs(20),
    )
    .await;
    let runs = workflow_runs::Entity::find().all(&h.db).await.unwrap();
    assert_eq!(runs.len(), 3 + 8);
}

#[tokio::test]
async fn a_side_effect_is_recorded_as_done_in_the_step_checkpoint() {
    let h = harness().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("effects.log");
    let (run, _) = h
        .engine
        .start(start(
            testing::SIDE_EFFECT,
            json!({"file": file.display().to_string(), "ms": 10}),
        ))
        .await
        .unwrap();
    wait_for(
        &h.db,
        run.id,
        WorkflowStatus::Succeeded,
        Duration::from_secs(20),
    )
    .await;
    let step = &steps_of(&h.db, run.id).await[0];
    assert_eq!(step.checkpoint, Some(json!({"appended": 1})));
    // One effect line and one `after`. (That a later attempt skips a recorded effect is
    // tested with a killed worker process: api/tests/api/worker_crash.rs.)
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(
        text.lines().collect::<Vec<_>>(),
        ["effect attempt 1", "after"]
    );
}

#[tokio::test]
async fn unknown_kinds_are_refused() {
    let h = harness().await;
    let err = h.engine.start(start("nope", json!({}))).await.unwrap_err();
    assert_eq!(err.to_string(), "unknown workflow kind \"nope\"");
}

#[tokio::test]
async fn one_housekeeping_run_per_period_however_many_instances_tick() {
    use workflows::housekeeping::{self, Scheduler};
    let h = harness().await;
    // The harness registry lacks housekeeping; a second engine on the same database and
    // queue stands for another instance.
    let scheduler = Scheduler {
        period: Duration::from_secs(3600),
        run_retention: Duration::from_secs(7 * 86_400),
    };
    let mut registry = Registry::new();
    housekeeping::register(&mut registry);
    let engines: Vec<Engine> = (0..3)
        .map(|_| {
            Engine::new(
                h.db.clone(),
                h.bus.clone(),
                registry.clone(),
                h.queue.queue(),
                EngineSettings::default(),
            )
        })
        .collect();
    let created = futures_util::future::join_all(engines.iter().map(|e| scheduler.tick(e))).await;
    let created: Vec<bool> = created.into_iter().map(Result::unwrap).collect();
    assert_eq!(created.iter().filter(|c| **c).count(), 1, "{created:?}");
    let runs = workflow_runs::Entity::find()
        .filter(workflow_runs::Column::Kind.eq(housekeeping::KIND))
        .all(&h.db)
        .await
        .unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].organization_id, None);
    assert!(
        runs[0]
            .idempotency_key
            .as_deref()
            .unwrap()
            .starts_with("housekeeping@")
    );
}

#[tokio::test]
async fn housekeeping_prunes_finished_runs_past_retention_only() {
    use workflows::housekeeping;
    let h = harness().await;
    let (old, _) = h
        .engine
        .start(start(testing::SLEEP, json!({"ms": 1})))
        .await
        .unwrap();
    wait_for(
        &h.db,
        old.id,
        WorkflowStatus::Succeeded,
        Duration::from_secs(20),
    )
    .await;
    let (active, _) = h
        .engine
        .start(start(testing::SLEEP, json!({"ms": 60_000})))
        .await
        .unwrap();
    // Everything finished before now + 1 s is past a retention that ends then.
    let cutoff = chrono::Utc::now() + chrono::Duration::seconds(1);
    let pruned = housekeeping::prune_runs(&h.db, cutoff).await.unwrap();
    assert_eq!(pruned, 1);
    assert!(
        workflow_runs::Entity::find_by_id(old.id)
            .one(&h.db)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        steps_of(&h.db, old.id).await.is_empty(),
        "steps go with their run"
    );
    assert!(
        workflow_runs::Entity::find_by_id(active.id)
            .one(&h.db)
            .await
            .unwrap()
            .is_some()
    );
}

/// A harness without workers, a started `test.three_steps` run, and its first task's
/// payload: the test drives the stages itself.
async fn three_steps_without_workers() -> (Harness, workflow_runs::Model, workflows::engine::RunTask)
{
    let h = harness_with(false).await;
    let (run, _) = h
        .engine
        .start(start(testing::THREE_STEPS, json!({})))
        .await
        .unwrap();
    let task = workflows::engine::RunTask {
        run_id: run.id,
        ticket: run.ticket.unwrap(),
    };
    (h, run, task)
}

/// apalis-workflow pushes a run's next stage before the queue acknowledges the current one:
/// if that acknowledgement is lost, the current stage is delivered again and pushes the next
/// stage a second time. The task delivered again goes on without redoing its step; of two
/// tasks for one step only one runs it. On the Redis queue the engine names the next stage's
/// task (its step is started for that id with the end of the step before, and the queue drops
/// a second push of a job it holds): any other task finds the step taken. On apalis' SQLite
/// storage each stage claims its step for its own task.
#[tokio::test]
async fn a_replayed_stage_goes_on_and_a_duplicate_stage_does_nothing() {
    use workflows::engine::Staged;
    let (h, run, task) = three_steps_without_workers().await;
    let stage = |position, id: String, delivery| {
        let engine = h.engine.clone();
        async move {
            engine
                .stage(task, position, &id, delivery, "w")
                .await
                .unwrap()
        }
    };

    // A stage for a step whose predecessor has not run does nothing.
    assert_eq!(stage(1, "early".into(), 1).await, Staged::Halt);
    assert_eq!(
        steps_of(&h.db, run.id).await[1].status,
        WorkflowStatus::Queued
    );

    assert_eq!(stage(0, "a".into(), 1).await, Staged::Next);
    // Delivered again after a lost acknowledgement: goes on, the step is not repeated.
    assert_eq!(stage(0, "a".into(), 2).await, Staged::Next);
    let steps = steps_of(&h.db, run.id).await;
    assert_eq!(
        (
            steps[0].status,
            steps[0].attempt,
            steps[0].task_id.as_deref()
        ),
        (WorkflowStatus::Succeeded, 1, Some("a"))
    );

    match steps[1].task_id.clone() {
        Some(named) => {
            // Started for the named task with the end of step 0.
            assert!(on_postgres());
            assert_eq!(steps[1].status, WorkflowStatus::Running);
            assert_eq!(stage(1, "intruder".into(), 1).await, Staged::Halt);
            assert_eq!(stage(1, named.clone(), 1).await, Staged::Next);
            assert_eq!(stage(1, named, 1).await, Staged::Next);
        }
        None => {
            // Two tasks for step 1, at once: one runs it, the other does nothing.
            let (b, c) = tokio::join!(stage(1, "b".into(), 1), stage(1, "c".into(), 1));
            let mut outcomes = [b, c];
            outcomes.sort_by_key(|o| *o == Staged::Halt);
            assert_eq!(outcomes, [Staged::Next, Staged::Halt]);
        }
    }
    let steps = steps_of(&h.db, run.id).await;
    assert_eq!(
        (steps[1].status, steps[1].attempt),
        (WorkflowStatus::Succeeded, 1)
    );

    // The last stage ends the run; another task for it afterwards does nothing.
    let last = steps[2].task_id.clone().unwrap_or_else(|| "d".into());
    assert_eq!(stage(2, last, 1).await, Staged::Halt);
    assert_eq!(stage(2, "e".into(), 1).await, Staged::Halt);
    let done = run_of(&h.db, run.id).await;
    assert_eq!(
        (done.status, done.output),
        (WorkflowStatus::Succeeded, Some(json!(3)))
    );
    // Taken up once: going on to the next step is not another attempt of the run.
    assert_eq!(done.attempt, 1);
    let steps = steps_of(&h.db, run.id).await;
    assert!(steps.iter().all(|s| s.attempt == 1), "{steps:?}");
}

/// A stage whose worker died mid-step is delivered again: it resumes its step with a new
/// attempt, and counts the run taken up again; another task for the step meanwhile does
/// nothing.
#[tokio::test]
async fn a_stage_delivered_again_resumes_its_step_with_a_new_attempt() {
    use sea_orm::{ActiveModelTrait, ActiveValue::Set, IntoActiveModel};
    use workflows::engine::Staged;
    let (h, run, task) = three_steps_without_workers().await;
    assert_eq!(
        h.engine.stage(task, 0, "a", 1, "w1").await.unwrap(),
        Staged::Next
    );
    // Task "b" took step 1 (its first attempt) and its worker died in the middle.
    let mut step = steps_of(&h.db, run.id).await[1].clone().into_active_model();
    step.status = Set(WorkflowStatus::Running);
    step.attempt = Set(1);
    step.task_id = Set(Some("b".into()));
    step.update(&h.db).await.unwrap();

    assert_eq!(
        h.engine.stage(task, 1, "c", 1, "w2").await.unwrap(),
        Staged::Halt
    );
    assert_eq!(
        h.engine.stage(task, 1, "b", 2, "w2").await.unwrap(),
        Staged::Next
    );
    let steps = steps_of(&h.db, run.id).await;
    assert_eq!(
        (
            steps[1].status,
            steps[1].attempt,
            steps[1].task_id.as_deref()
        ),
        (WorkflowStatus::Succeeded, 2, Some("b"))
    );
    assert_eq!(steps[1].output, Some(json!(2)));
    let resumed = run_of(&h.db, run.id).await;
    assert_eq!(resumed.attempt, 2, "taken up, then resumed");
    assert_eq!(resumed.worker.as_deref(), Some("w2"));
}

/// A run's first stage is claimed as soon as its task is fetched (`Engine::preclaim`, which
/// the Redis queue's workers call for every batch they lease): the stage then runs on that
/// claim without claiming again. A task given back after its claim (its worker closed before
/// giving it a slot) runs on another worker as the same attempt; claims ahead of later stages
/// or of tasks delivered again do nothing.
#[tokio::test]
async fn a_first_stage_claimed_ahead_runs_on_its_claim_and_elsewhere_if_given_back() {
    use workflows::engine::Staged;
    let (h, run, task) = three_steps_without_workers().await;

    // Not a first stage, or not a first delivery: nothing is claimed ahead.
    h.engine.preclaim(task, 1, "later", 1, "w1");
    h.engine.preclaim(task, 0, "again", 2, "w1");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(run_of(&h.db, run.id).await.status, WorkflowStatus::Queued);

    h.engine.preclaim(task, 0, "a", 1, "w1");
    let claimed = wait_for(
        &h.db,
        run.id,
        WorkflowStatus::Running,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(
        (claimed.attempt, claimed.worker.as_deref()),
        (1, Some("w1"))
    );
    let steps = steps_of(&h.db, run.id).await;
    assert_eq!(
        (
            steps[0].status,
            steps[0].attempt,
            steps[0].task_id.as_deref()
        ),
        (WorkflowStatus::Running, 1, Some("a"))
    );
    assert_eq!(
        h.engine.stage(task, 0, "a", 1, "w1").await.unwrap(),
        Staged::Next
    );
    let steps = steps_of(&h.db, run.id).await;
    assert_eq!(
        (steps[0].status, steps[0].attempt, steps[0].output.clone()),
        (WorkflowStatus::Succeeded, 1, Some(json!(1)))
    );
    assert_eq!(run_of(&h.db, run.id).await.attempt, 1, "claimed once");

    // Another run, claimed ahead by a worker that then closed and gave its task back: the
    // task's next delivery counts as its first, on another worker (another engine here).
    let (second, _) = h
        .engine
        .start(start(testing::THREE_STEPS, json!({})))
        .await
        .unwrap();
    let second_task = workflows::engine::RunTask {
        run_id: second.id,
        ticket: second.ticket.unwrap(),
    };
    h.engine.preclaim(second_task, 0, "x", 1, "w1");
    wait_for(
        &h.db,
        second.id,
        WorkflowStatus::Running,
        Duration::from_secs(10),
    )
    .await;
    let mut registry = Registry::new();
    testing::register(&mut registry);
    let other = Engine::new(
        h.db.clone(),
        h.bus.clone(),
        registry,
        h.queue.queue(),
        EngineSettings::default(),
    );
    assert_eq!(
        other.stage(second_task, 0, "x", 1, "w2").await.unwrap(),
        Staged::Next
    );
    let steps = steps_of(&h.db, second.id).await;
    assert_eq!(
        (
            steps[0].status,
            steps[0].attempt,
            steps[0].task_id.as_deref()
        ),
        (WorkflowStatus::Succeeded, 1, Some("x"))
    );
    assert_eq!(run_of(&h.db, second.id).await.attempt, 1);
    // Another task for the same first step does nothing.
    assert_eq!(
        other.stage(second_task, 0, "y", 1, "w2").await.unwrap(),
        Staged::Halt
    );
}

/// Step rows are stored with room for their updates on PostgreSQL (migration 8), so a step's
/// start and end stay on its page (heap-only updates); on SQLite, which has no such setting,
/// the migration is applied and changes nothing.
#[tokio::test]
async fn step_rows_leave_room_for_their_updates_on_postgres() {
    let h = harness_with(false).await;
    let backend = h.db.get_database_backend();
    let applied =
        h.db.query_one_raw(sea_orm::Statement::from_string(
            backend,
            "SELECT COUNT(*) AS n FROM seaql_migrations \
             WHERE version = 'm20261204_000008_step_fillfactor'",
        ))
        .await
        .unwrap()
        .expect("a count");
    assert_eq!(applied.try_get::<i64>("", "n").unwrap(), 1);
    if !on_postgres() {
        return;
    }
    let row =
        h.db.query_one_raw(sea_orm::Statement::from_string(
            backend,
            "SELECT array_to_string(reloptions, ',') AS options FROM pg_class \
             WHERE oid = 'workflow_steps'::regclass",
        ))
        .await
        .unwrap()
        .expect("workflow_steps exists");
    let options: Option<String> = row.try_get("", "options").unwrap();
    assert_eq!(options.as_deref(), Some("fillfactor=50"));
}
