//! The hot paths' reads on kept connections (`autoglue::db::Reads`): statements answer as on
//! the pool, are counted, leave the other half of the pool free, recover from failed and
//! cancelled statements, and never keep the pool from closing.

use std::{sync::atomic::Ordering, time::Duration};

use sea_orm::{ConnectionTrait, Statement};

use crate::helpers::{Backend, TestApp, backend, spawn_app_with};

/// The pool's size in these tests: two connections may be kept for reads.
const POOL: u32 = 4;

async fn app() -> TestApp {
    spawn_app_with(|c| c.database.max_connections = POOL).await
}

fn statement(app: &TestApp, sql: &str) -> Statement {
    Statement::from_string(app.state.db.get_database_backend(), sql)
}

/// The first column of the one row `sql` returns, read through the kept connections.
async fn read_number(app: &TestApp, sql: &str) -> i64 {
    let row = app
        .state
        .reads
        .query_one_raw(statement(app, sql))
        .await
        .expect("the read answers")
        .expect("one row");
    row.try_get_by_index::<i64>(0).expect("a number")
}

/// The pool's connections in use (checked out, kept ones included), on PostgreSQL.
fn in_use(app: &TestApp) -> u32 {
    let pool = app.state.db.get_postgres_connection_pool();
    pool.size() - pool.num_idle() as u32
}

#[tokio::test]
async fn reads_answer_and_count_like_the_pool() {
    let app = app().await;
    let before = app.state.statements.load(Ordering::SeqCst);
    assert_eq!(read_number(&app, "SELECT CAST(40 + 2 AS BIGINT)").await, 42);
    let rows = app
        .state
        .reads
        .query_all_raw(statement(
            &app,
            "SELECT CAST(1 AS BIGINT) UNION ALL SELECT CAST(2 AS BIGINT)",
        ))
        .await
        .unwrap();
    let numbers: Vec<i64> = rows
        .iter()
        .map(|r| r.try_get_by_index(0).unwrap())
        .collect();
    assert_eq!(numbers, [1, 2]);
    let none = app
        .state
        .reads
        .query_one_raw(statement(&app, "SELECT 1 WHERE 1 = 0"))
        .await
        .unwrap();
    assert!(none.is_none(), "no row reads as none");
    assert!(
        app.state.statements.load(Ordering::SeqCst) - before >= 3,
        "every read is counted with the pool's statements"
    );
}

#[tokio::test]
async fn a_failed_read_answers_its_error_and_the_next_one_works() {
    let app = app().await;
    let err = app
        .state
        .reads
        .query_all_raw(statement(&app, "SELECT * FROM no_such_table"))
        .await
        .expect_err("an unknown table fails");
    assert!(
        err.to_string().contains("no_such_table"),
        "the database's message comes through: {err}"
    );
    assert_eq!(read_number(&app, "SELECT CAST(7 AS BIGINT)").await, 7);
}

#[tokio::test]
async fn reads_keep_at_most_half_the_pool_and_leave_the_rest_to_others() {
    if backend() != Backend::Postgres {
        return; // SQLite's statements go to its pool; nothing is kept
    }
    let app = app().await;
    // Twelve slow reads at once: two run at a time on kept connections, the others wait
    // their turn for one of those, not for the pool.
    let reads = (0..12).map(|i| {
        let app = &app;
        async move {
            read_number(
                app,
                &format!("SELECT CAST({i} AS BIGINT) FROM pg_sleep(0.05)"),
            )
            .await
        }
    });
    let busy = async {
        tokio::time::sleep(Duration::from_millis(60)).await;
        // Meanwhile the pool still serves everything else, and sees two reads running.
        let started = std::time::Instant::now();
        let row = app
            .state
            .db
            .query_one_raw(statement(
                &app,
                "SELECT COUNT(*) FROM pg_stat_activity WHERE state = 'active' \
                 AND query LIKE '%FROM pg_sleep(0.05)' AND pid <> pg_backend_pid()",
            ))
            .await
            .expect("the pool answers while reads are busy")
            .unwrap();
        (row.try_get_by_index::<i64>(0).unwrap(), started.elapsed())
    };
    let (numbers, (running, waited)) = tokio::join!(futures_util::future::join_all(reads), busy);
    assert_eq!(
        numbers,
        (0..12).collect::<Vec<i64>>(),
        "each read got its own answer"
    );
    assert!(
        (1..=i64::from(POOL / 2)).contains(&running),
        "reads run on at most half the pool: {running} at once"
    );
    assert!(
        waited < Duration::from_millis(250),
        "another user of the pool did not wait for the reads ({waited:?})"
    );
    // The reads' connections stay checked out for the next reads.
    assert!(in_use(&app) >= POOL / 2, "the reads' connections are kept");
}

#[tokio::test]
async fn a_cancelled_read_does_not_leave_its_answer_to_the_next_one() {
    if backend() != Backend::Postgres {
        return; // SQLite's statements go to its pool; nothing is kept
    }
    let app = app().await;
    let sleep = "SELECT CAST(1 AS BIGINT) FROM pg_sleep(0.3)";
    for _ in 0..3 {
        let cancelled =
            tokio::time::timeout(Duration::from_millis(20), read_number(&app, sleep)).await;
        assert!(cancelled.is_err(), "the slow read was cancelled");
        assert_eq!(read_number(&app, "SELECT CAST(2 AS BIGINT)").await, 2);
    }
}

#[tokio::test]
async fn kept_connections_do_not_hold_up_closing_the_pool() {
    let app = app().await;
    for i in 0..4 {
        assert_eq!(
            read_number(&app, &format!("SELECT CAST({i} AS BIGINT)")).await,
            i
        );
    }
    if backend() == Backend::Postgres {
        assert!(in_use(&app) >= 1, "a read's connection is kept");
    }
    tokio::time::timeout(Duration::from_secs(5), app.state.db.clone().close())
        .await
        .expect("the pool closes although reads kept connections")
        .unwrap();
    assert!(
        app.state
            .reads
            .query_one_raw(statement(&app, "SELECT CAST(1 AS BIGINT)"))
            .await
            .is_err(),
        "a read after closing fails"
    );
}
