//! Opening the database pool for either backend.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use futures_util::future::BoxFuture;
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr, ExecResult,
    QueryResult, RuntimeErr, Statement, sea_query::Values,
};
use sea_query_sqlx::SqlxValues;

use crate::config::DatabaseSettings;

/// Counts every statement run on `conn` (and its clones made afterwards).
pub fn count_statements(conn: &mut DatabaseConnection) -> Arc<AtomicU64> {
    let counter = Arc::new(AtomicU64::new(0));
    let counting = counter.clone();
    conn.set_metric_callback(move |_| {
        counting.fetch_add(1, Ordering::Relaxed);
    });
    counter
}

/// Connects to the configured database. Errors name the URL with its password masked.
pub async fn connect(settings: &DatabaseSettings) -> anyhow::Result<DatabaseConnection> {
    let mut options = ConnectOptions::new(settings.url.expose());
    options
        .max_connections(settings.max_connections)
        .min_connections(0)
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(10))
        // sqlx pings every connection it hands out by default: a round trip per statement
        // (a sixth of the server's CPU on the fleet read). Connections idle for a second or
        // more are still checked, so one the server dropped is replaced, not used.
        .test_before_acquire_if_idle_for(Duration::from_secs(1))
        .sqlx_logging(false);
    Database::connect(options)
        .await
        .with_context(|| format!("cannot open database {}", settings.url.redacted()))
}

/// How long a kept connection may sit unused and still be used without a check: as long as
/// the pool's own [`ConnectOptions::test_before_acquire_if_idle_for`].
const KEEP_FRESH: Duration = Duration::from_secs(1);

/// Kept connections unused this long go back to the pool (a burst does not hold half the
/// pool for ever).
const KEEP_IDLE: Duration = Duration::from_secs(30);

/// How long a statement waits for a kept connection, as long as for one of the pool
/// ([`connect`]'s acquire timeout).
const KEEP_WAIT: Duration = Duration::from_secs(10);

/// The reads of the hot paths (authentication, the fleet's pages and relation lists): sea-orm
/// statements run on a set of pooled connections kept between statements.
///
/// sqlx pings every connection it takes back into its pool (a `Sync` and its answer, in sqlx
/// 0.9 unconditionally), so each statement cost two round trips and two wake-ups of
/// PostgreSQL (7 % of the server's CPU on the fleet read, `bench/README.md`). Up to half the
/// pool is checked out for these reads instead and handed from statement to statement, in
/// the order statements ask (a fair semaphore); the other half stays with the pool for
/// everything else, so neither can starve the other. A connection whose statement failed or
/// was cancelled half way goes back to the pool, which checks it, and a fresh one is taken
/// next time; one unused for [`KEEP_FRESH`] is pinged before use, one unused for
/// [`KEEP_IDLE`] goes back, and all go back when the pool closes (closing waits for them).
/// On SQLite (in process, no round trip) statements go to the pool.
///
/// Statements count in the same counter as the pool's ([`count_statements`]).
#[derive(Clone)]
pub struct Reads {
    db: DatabaseConnection,
    kept: Option<Arc<Kept>>,
    statements: Arc<AtomicU64>,
}

struct Kept {
    pool: sea_orm::sqlx::PgPool,
    /// One permit per connection that may be kept; a statement holds one while it runs.
    slots: tokio::sync::Semaphore,
    /// Kept connections not in use, the most recently used last.
    idle: std::sync::Mutex<Vec<(PgConnection, Instant)>>,
}

type PgConnection = sea_orm::sqlx::pool::PoolConnection<sea_orm::sqlx::Postgres>;

impl Reads {
    /// Reads over `db`'s pool, counted in `statements`; `max_connections` is the pool's size.
    /// Starts the task that gives back connections kept unused too long.
    pub fn new(db: DatabaseConnection, statements: Arc<AtomicU64>, max_connections: u32) -> Reads {
        let kept = (db.get_database_backend() == DbBackend::Postgres).then(|| {
            let kept = Arc::new(Kept {
                pool: db.get_postgres_connection_pool().clone(),
                slots: tokio::sync::Semaphore::new((max_connections as usize / 2).max(1)),
                idle: Default::default(),
            });
            // Gives back what sat unused too long, and everything once the pool is closing
            // (closing waits for every connection checked out).
            let (weak, pool) = (Arc::downgrade(&kept), kept.pool.clone());
            tokio::spawn(async move {
                let mut closing = std::pin::pin!(pool.close_event());
                let mut tick = tokio::time::interval(KEEP_IDLE / 2);
                loop {
                    let unused = tokio::select! {
                        _ = &mut closing => Duration::ZERO,
                        _ = tick.tick() => KEEP_IDLE,
                    };
                    let Some(kept) = weak.upgrade() else { return };
                    kept.give_back(unused);
                    if unused.is_zero() {
                        return;
                    }
                }
            });
            kept
        });
        Reads {
            db,
            kept,
            statements,
        }
    }

    /// Runs `stmt` on a kept connection and keeps the connection when the statement
    /// succeeded.
    async fn on_kept<T, F>(
        kept: &Kept,
        stmt: Statement,
        failed: fn(RuntimeErr) -> DbErr,
        run: F,
    ) -> Result<T, DbErr>
    where
        F: for<'c> FnOnce(
            &'c mut sea_orm::sqlx::PgConnection,
            sea_orm::sqlx::query::Query<'c, sea_orm::sqlx::Postgres, SqlxValues>,
        ) -> BoxFuture<'c, Result<T, sea_orm::sqlx::Error>>,
    {
        let (slot, mut conn) = tokio::time::timeout(KEEP_WAIT, kept.check_out())
            .await
            .map_err(|_| DbErr::ConnectionAcquire(sea_orm::ConnAcquireErr::Timeout))??;
        let Statement { sql, values, .. } = stmt;
        let values = SqlxValues(values.unwrap_or(Values(Vec::new())));
        let query = sea_orm::sqlx::query_with(sea_orm::sqlx::AssertSqlSafe(sql.as_str()), values);
        let result = run(&mut conn, query).await;
        if result.is_ok() && !kept.pool.is_closed() {
            kept.idle
                .lock()
                .expect("kept connections")
                .push((conn, Instant::now()));
        }
        drop(slot);
        result.map_err(|e| failed(RuntimeErr::SqlxError(Arc::new(e))))
    }
}

impl Kept {
    /// A slot and a connection for it: the most recently used kept one (pinged first when
    /// it sat unused for [`KEEP_FRESH`]), or a new one from the pool.
    async fn check_out(&self) -> Result<(tokio::sync::SemaphorePermit<'_>, PgConnection), DbErr> {
        let slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| DbErr::ConnectionAcquire(sea_orm::ConnAcquireErr::ConnectionClosed))?;
        let kept = self.idle.lock().expect("kept connections").pop();
        if let Some((mut conn, since)) = kept
            && (since.elapsed() < KEEP_FRESH
                || sea_orm::sqlx::Connection::ping(&mut *conn).await.is_ok())
        {
            return Ok((slot, conn));
        }
        let conn = self.pool.acquire().await.map_err(|e| match e {
            sea_orm::sqlx::Error::PoolTimedOut => {
                DbErr::ConnectionAcquire(sea_orm::ConnAcquireErr::Timeout)
            }
            sea_orm::sqlx::Error::PoolClosed => {
                DbErr::ConnectionAcquire(sea_orm::ConnAcquireErr::ConnectionClosed)
            }
            e => DbErr::Conn(RuntimeErr::SqlxError(Arc::new(e))),
        })?;
        Ok((slot, conn))
    }

    /// Gives the connections unused for `unused` or longer back to the pool.
    fn give_back(&self, unused: Duration) {
        let mut idle = self.idle.lock().expect("kept connections");
        let now = Instant::now();
        let stale = idle
            .iter()
            .position(|(_, since)| now.duration_since(*since) < unused)
            .unwrap_or(idle.len());
        // Least recently used first: everything before the first recent one is stale.
        let stale: Vec<_> = idle.drain(..stale).collect();
        drop(idle);
        drop(stale);
    }
}
#[async_trait::async_trait]
impl ConnectionTrait for Reads {
    fn get_database_backend(&self) -> DbBackend {
        self.db.get_database_backend()
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        let Some(kept) = &self.kept else {
            return self.db.execute_raw(stmt).await;
        };
        self.statements.fetch_add(1, Ordering::Relaxed);
        Self::on_kept(kept, stmt, DbErr::Exec, |conn, query| {
            Box::pin(async move { query.execute(conn).await.map(ExecResult::from) })
        })
        .await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        self.db.execute_unprepared(sql).await
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        let Some(kept) = &self.kept else {
            return self.db.query_one_raw(stmt).await;
        };
        self.statements.fetch_add(1, Ordering::Relaxed);
        Self::on_kept(kept, stmt, DbErr::Query, |conn, query| {
            Box::pin(async move {
                query
                    .fetch_optional(conn)
                    .await
                    .map(|r| r.map(QueryResult::from))
            })
        })
        .await
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        let Some(kept) = &self.kept else {
            return self.db.query_all_raw(stmt).await;
        };
        self.statements.fetch_add(1, Ordering::Relaxed);
        Self::on_kept(kept, stmt, DbErr::Query, |conn, query| {
            Box::pin(async move {
                let rows = query.fetch_all(conn).await?;
                Ok(rows.into_iter().map(QueryResult::from).collect())
            })
        })
        .await
    }
}
