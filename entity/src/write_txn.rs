//! Write transactions that cannot fail half way on SQLite's lock upgrade.
//!
//! SQLite begins a transaction DEFERRED: it reads under a shared lock and asks for the write
//! lock at its first write. If another connection wrote in between, that upgrade fails at once
//! with SQLITE_BUSY; the busy timeout does not apply to it. A transaction that will write
//! therefore begins IMMEDIATE on SQLite, taking the write lock up front (waiting for it under the
//! busy timeout). PostgreSQL begins as usual.

use sea_orm::{
    DatabaseBackend, DatabaseConnection, DatabaseTransaction, DbErr, SqliteTransactionMode,
    TransactionOptions, TransactionTrait,
};

/// `begin_write()` on a database connection.
pub trait WriteTxn {
    /// Begins a transaction that is going to write (IMMEDIATE on SQLite).
    fn begin_write(&self) -> impl Future<Output = Result<DatabaseTransaction, DbErr>> + Send;
}

impl WriteTxn for DatabaseConnection {
    async fn begin_write(&self) -> Result<DatabaseTransaction, DbErr> {
        match self.get_database_backend() {
            DatabaseBackend::Sqlite => {
                self.begin_with_options(TransactionOptions {
                    sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                    ..Default::default()
                })
                .await
            }
            _ => self.begin().await,
        }
    }
}
