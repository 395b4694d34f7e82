//! Which internal failures are the database being unreachable, answered to clients as
//! `SERVICE_UNAVAILABLE` ("try again") rather than as a bug of ours.
//!
//! A database that restarts or is down surfaces as a failed connection attempt, a pool that
//! timed out waiting, a connection cut mid-statement, or PostgreSQL's own "shutting down" /
//! "starting up" errors (SQLSTATE classes 08 and 57P). Errors reach the API wrapped in
//! context, so the whole chain is searched.

use sea_orm::{DbErr, RuntimeErr, sqlx};

/// What clients read when the database cannot be reached.
pub const MESSAGE: &str = "the database is unavailable; try again shortly";

/// Whether `cause` is, somewhere in its chain, the database being unreachable.
pub fn database_unreachable(cause: &anyhow::Error) -> bool {
    cause.chain().any(|e| {
        e.downcast_ref::<DbErr>().is_some_and(db_unreachable)
            || e.downcast_ref::<sqlx::Error>()
                .is_some_and(sqlx_unreachable)
    })
}

fn db_unreachable(e: &DbErr) -> bool {
    match e {
        DbErr::ConnectionAcquire(_) => true,
        DbErr::Conn(RuntimeErr::SqlxError(e))
        | DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e)) => sqlx_unreachable(e),
        DbErr::Conn(_) => true,
        _ => false,
    }
}

fn sqlx_unreachable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|code| code.starts_with("08") || code.starts_with("57P")),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_failures_are_unreachable_and_other_errors_are_not() {
        let io = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        let wrapped = anyhow::Error::new(DbErr::Conn(RuntimeErr::SqlxError(io.into())))
            .context("loading the caller");
        assert!(database_unreachable(&wrapped));
        let acquire =
            anyhow::Error::new(DbErr::ConnectionAcquire(sea_orm::ConnAcquireErr::Timeout));
        assert!(database_unreachable(&acquire));
        let bug = anyhow::Error::new(DbErr::RecordNotFound("x".into())).context("x");
        assert!(!database_unreachable(&bug));
        assert!(!database_unreachable(&anyhow::anyhow!("something else")));
    }
}
