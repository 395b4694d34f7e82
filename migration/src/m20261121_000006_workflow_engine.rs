//! What the workflow engine needs beyond the run, step and log tables: the ticket that makes
//! a stale queue task harmless, when a retrying run is due, which worker holds a run, and
//! idempotency keys for instance-wide runs (scheduled upkeep).

use crate::common::*;
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per ALTER TABLE.
        for column in [
            // The queue task that may drive the run; a task carrying another ticket is stale.
            uuid_null(WorkflowRuns::Ticket),
            // When a retrying run's next attempt is due.
            at_null(WorkflowRuns::NextAttemptAt),
            // Worker that last claimed the run (shown to operators).
            string_null(WorkflowRuns::Worker),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(WorkflowRuns::Table)
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        // Runs without an organization have NULL there, and NULLs never collide in the
        // (organization_id, kind, idempotency_key) index: instance-wide runs get their own.
        create_partial_unique_index(
            manager,
            "CREATE UNIQUE INDEX ux_workflow_runs_instance_idempotency \
             ON workflow_runs (kind, idempotency_key) WHERE organization_id IS NULL",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("ux_workflow_runs_instance_idempotency")
                    .table(WorkflowRuns::Table)
                    .to_owned(),
            )
            .await?;
        for column in [
            WorkflowRuns::Ticket,
            WorkflowRuns::NextAttemptAt,
            WorkflowRuns::Worker,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(WorkflowRuns::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum WorkflowRuns {
    Table,
    Ticket,
    NextAttemptAt,
    Worker,
}
