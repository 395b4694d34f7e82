//! The fence between key wrapping and master key rotation: the `instance_settings` row
//! `master_key_id` (see its migration).
//!
//! [`hold`] runs inside every transaction that wraps a new key under the master key: it
//! locks the row shared (PostgreSQL; SQLite's write transactions are exclusive anyway) and
//! refuses when the row names another master key. [`take`] runs first in the rotation's
//! transaction and locks it exclusively, so wrapping waits for a rotation in progress and
//! then sees the new id.

use anyhow::Context;
use sea_orm::{ConnectionTrait, DatabaseBackend, DatabaseConnection, Statement};
use sea_orm_migration::SchemaManager;

use crate::{Error, Result};

const NAME: &str = "master_key_id";

async fn read<C: ConnectionTrait>(db: &C, lock: &str) -> anyhow::Result<Option<String>> {
    let backend = db.get_database_backend();
    let sql = match backend {
        DatabaseBackend::Postgres => {
            format!("SELECT value FROM instance_settings WHERE name = $1 {lock}")
        }
        _ => "SELECT value FROM instance_settings WHERE name = ?".to_owned(),
    };
    let row = db
        .query_one_raw(Statement::from_sql_and_values(backend, sql, [NAME.into()]))
        .await
        .context("reading the master key fence")?;
    Ok(match row {
        Some(row) => row.try_get::<Option<String>>("", "value")?,
        None => None,
    })
}

/// Inside a transaction that wraps a key under `master_id`: waits for a rotation in
/// progress, then refuses if the master key is no longer `master_id`.
pub async fn hold<C: ConnectionTrait>(db: &C, master_id: &str) -> Result<()> {
    match read(db, "FOR SHARE").await? {
        Some(current) if current != master_id => {
            tracing::error!(
                current = %current,
                ours = %master_id,
                "the master key was rotated; this instance still has the old one"
            );
            Err(Error::Unavailable(
                "the master key was rotated: this server must restart with the new key",
            ))
        }
        _ => Ok(()),
    }
}

/// First in the rotation's transaction: locks the fence; returns the recorded id.
pub async fn take<C: ConnectionTrait>(db: &C) -> anyhow::Result<Option<String>> {
    read(db, "FOR UPDATE").await
}

/// Records `master_id` as the master key now (the rotation, at its end).
pub async fn set<C: ConnectionTrait>(db: &C, master_id: &str) -> anyhow::Result<()> {
    let backend = db.get_database_backend();
    let sql = match backend {
        DatabaseBackend::Postgres => "UPDATE instance_settings SET value = $1 WHERE name = $2",
        _ => "UPDATE instance_settings SET value = ? WHERE name = ?",
    };
    db.execute_raw(Statement::from_sql_and_values(
        backend,
        sql,
        [master_id.into(), NAME.into()],
    ))
    .await
    .context("recording the master key")?;
    Ok(())
}

/// At start-up: records `master_id` when no id is recorded yet (nothing before the
/// migrations made the table).
pub async fn record_if_unset(db: &DatabaseConnection, master_id: &str) -> anyhow::Result<()> {
    if !SchemaManager::new(db)
        .has_table("instance_settings")
        .await?
    {
        return Ok(());
    }
    let backend = db.get_database_backend();
    let sql = match backend {
        DatabaseBackend::Postgres => {
            "UPDATE instance_settings SET value = $1 WHERE name = $2 AND value IS NULL"
        }
        _ => "UPDATE instance_settings SET value = ? WHERE name = ? AND value IS NULL",
    };
    db.execute_raw(Statement::from_sql_and_values(
        backend,
        sql,
        [master_id.into(), NAME.into()],
    ))
    .await
    .context("recording the master key")?;
    Ok(())
}

/// The recorded id, for the start-up check; `None` before an id is recorded.
pub async fn recorded<C: ConnectionTrait>(db: &C) -> anyhow::Result<Option<String>> {
    read(db, "").await
}
