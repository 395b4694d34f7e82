//! Room for a step row's updates on its own page (PostgreSQL).
//!
//! A step row is written three times or more: inserted with its run, started, ended (and
//! checkpointed in between). None of those updates changes an indexed column, so PostgreSQL
//! can make each a heap-only tuple (HOT: the new version on the same page, no index entry)
//! provided the page has room. Inserted at the default fill factor (100) the pages are full,
//! and about 60 % of the updates went to another page with a new entry in both of the table's
//! indexes (measured with `pg_stat_user_tables` during `bench/workflows.sh`). At 50, the
//! start and the end of a step fit beside it and the space of old versions is pruned in
//! place. Applies to pages written from now on; SQLite has no such setting.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        on_postgres(manager, "ALTER TABLE workflow_steps SET (fillfactor = 50)").await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        on_postgres(manager, "ALTER TABLE workflow_steps RESET (fillfactor)").await
    }
}

async fn on_postgres(manager: &SchemaManager<'_>, sql: &str) -> Result<(), DbErr> {
    if manager.get_database_backend() != sea_orm::DatabaseBackend::Postgres {
        return Ok(());
    }
    manager
        .get_connection()
        .execute_unprepared(sql)
        .await
        .map(|_| ())
}
