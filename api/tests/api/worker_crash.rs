//! A worker process killed with SIGKILL in the middle of a step: another worker process picks
//! the run up within the job lease, resumes at the interrupted step without repeating the side
//! effect it had recorded, and finishes the run. Real processes (`autoglue serve --role
//! worker`), a real database and the real queue (Redis on PostgreSQL runs, apalis on SQLite on
//! SQLite runs, the database file shared by the processes).

use std::{process::Child, time::Duration};

use entity::{enums::WorkflowStatus, workflow_runs, workflow_steps};
use sea_orm::{ColumnTrait, Database, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder};
use serde_json::json;
use uuid::Uuid;
use workflows::{
    Engine, EngineSettings, Registry, StartRun,
    runtime::{QueueBackend, RedisRunQueue, SqliteRunQueue},
    testing,
};

use crate::helpers::{Backend, TestDb, autoglue, backend, redis_url, unique_redis_prefix};

const LEASE: Duration = Duration::from_secs(3);

struct Worker {
    child: Child,
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Setup {
    db: TestDb,
    conn: DatabaseConnection,
    prefix: String,
    master_key: String,
    engine: Engine,
    dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let master_key = vault::MasterKey::generate().to_base64();
    let prefix = unique_redis_prefix();
    // The engine below needs the tables first: migrate with the binary, as an operator would.
    let out = autoglue()
        .args(["migrate", "up"])
        .env("DATABASE_URL", &db.url)
        .env("AUTOGLUE_MASTER_KEY", &master_key)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let conn = Database::connect(&db.url).await.unwrap();
    let queue = match backend() {
        Backend::Postgres => QueueBackend::Redis(
            RedisRunQueue::connect(&redis_url(), &prefix, LEASE)
                .await
                .unwrap(),
        ),
        Backend::Sqlite => QueueBackend::Sqlite(
            SqliteRunQueue::setup_with_lease(conn.get_sqlite_connection_pool(), LEASE)
                .await
                .unwrap(),
        ),
    };
    let mut registry = Registry::new();
    testing::register(&mut registry);
    let engine = Engine::new(
        conn.clone(),
        bus::EventBus::in_process(),
        registry,
        queue.queue(),
        EngineSettings::default(),
    );
    Setup {
        db,
        conn,
        prefix,
        master_key,
        engine,
        dir,
    }
}

fn start_worker(s: &Setup) -> Worker {
    let mut cmd = autoglue();
    cmd.args(["serve", "--role", "worker"])
        .env("DATABASE_URL", &s.db.url)
        .env("AUTOGLUE_MASTER_KEY", &s.master_key)
        .env("AUTOGLUE_LISTEN", "127.0.0.1:0")
        .env("AUTOGLUE_TEST_WORKFLOWS", "true")
        .env("AUTOGLUE_JOB_LEASE_SECS", LEASE.as_secs().to_string())
        .env(
            "AUTOGLUE_LOG",
            std::env::var("AG_WORKER_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(std::process::Stdio::null());
    if std::env::var_os("AG_WORKER_LOG").is_none() {
        cmd.stderr(std::process::Stdio::null());
    }
    if backend() == Backend::Postgres {
        cmd.env("REDIS_URL", redis_url())
            .env("AUTOGLUE_REDIS_PREFIX", &s.prefix);
    }
    Worker {
        child: cmd.spawn().unwrap(),
    }
}

async fn run_of(conn: &DatabaseConnection, id: Uuid) -> workflow_runs::Model {
    workflow_runs::Entity::find_by_id(id)
        .one(conn)
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn a_run_whose_worker_is_killed_mid_step_is_resumed_by_another_worker() {
    let s = setup().await;
    let file = s.dir.path().join("effects.log");
    let mut first = start_worker(&s);
    let (run, _) = s
        .engine
        .start(StartRun {
            kind: testing::SIDE_EFFECT.into(),
            input: json!({"file": file.display().to_string(), "ms": 6000}),
            ..Default::default()
        })
        .await
        .unwrap();

    // The first worker made the effect, recorded it as done, and is sleeping in the same
    // step. (Killed between the effect and its record, the effect would be repeated: that
    // window is inherent, and `StepCtx::once` documents it.)
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let steps = workflow_steps::Entity::find()
            .filter(workflow_steps::Column::RunId.eq(run.id))
            .order_by_asc(workflow_steps::Column::Position)
            .all(&s.conn)
            .await
            .unwrap();
        if steps.first().is_some_and(|step| step.checkpoint.is_some()) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the first worker never ran the step"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        std::fs::read_to_string(&file)
            .unwrap()
            .contains("effect attempt 1")
    );
    let taken = run_of(&s.conn, run.id).await;
    assert_eq!(taken.status, WorkflowStatus::Running);
    let first_worker = taken.worker.clone().unwrap();
    first.child.kill().unwrap(); // SIGKILL
    first.child.wait().unwrap();
    let killed_at = std::time::Instant::now();

    let _second = start_worker(&s);
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let done = loop {
        let current = run_of(&s.conn, run.id).await;
        if current.status == WorkflowStatus::Succeeded {
            break current;
        }
        assert!(
            !matches!(
                current.status,
                WorkflowStatus::Failed | WorkflowStatus::Cancelled
            ),
            "{current:?}"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "not resumed: {current:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Resumed within the lease (plus start-up, the 6 s step and some slack on a loaded host).
    assert!(
        killed_at.elapsed() < Duration::from_secs(45),
        "{:?}",
        killed_at.elapsed()
    );
    assert_ne!(done.worker.as_deref(), Some(first_worker.as_str()));

    // The effect happened once; the step ran twice (the second attempt skipped the effect).
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(
        text.lines().collect::<Vec<_>>(),
        ["effect attempt 1", "after"]
    );
    let steps = workflow_steps::Entity::find()
        .filter(workflow_steps::Column::RunId.eq(run.id))
        .order_by_asc(workflow_steps::Column::Position)
        .all(&s.conn)
        .await
        .unwrap();
    assert_eq!(steps[0].attempt, 2, "{steps:?}");
    assert_eq!(steps[0].checkpoint, Some(json!({"appended": 1})));
    assert_eq!(
        (steps[1].status, steps[1].attempt),
        (WorkflowStatus::Succeeded, 1)
    );
}
