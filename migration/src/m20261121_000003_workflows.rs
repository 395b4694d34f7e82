//! Workflows: durable runs (provisioning, DNS sync, ...), their ordered steps with checkpoints,
//! and their log lines.

use crate::common::*;
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        create_table(
            manager,
            table(
                WorkflowRuns::Table,
                [
                    // NULL for instance-wide runs.
                    uuid_null(WorkflowRuns::OrganizationId),
                    uuid_null(WorkflowRuns::ClusterId),
                    string(WorkflowRuns::Kind),
                    enum_string(WorkflowRuns::Status),
                    string_null(WorkflowRuns::IdempotencyKey),
                    json_binary(WorkflowRuns::Input),
                    json_binary_null(WorkflowRuns::Output),
                    text_null(WorkflowRuns::Error),
                    integer(WorkflowRuns::Attempt),
                    at_null(WorkflowRuns::CancelRequestedAt),
                    uuid_null(WorkflowRuns::CreatedByUserId),
                    at_null(WorkflowRuns::StartedAt),
                    at_null(WorkflowRuns::FinishedAt),
                ],
            )
            .foreign_key(&mut fk(
                WorkflowRuns::Table,
                WorkflowRuns::OrganizationId,
                Organizations::Table,
                ForeignKeyAction::Cascade,
            ))
            // Run history outlives the cluster it worked on and the user who started it.
            .foreign_key(&mut fk(
                WorkflowRuns::Table,
                WorkflowRuns::ClusterId,
                Clusters::Table,
                ForeignKeyAction::SetNull,
            ))
            .foreign_key(&mut fk(
                WorkflowRuns::Table,
                WorkflowRuns::CreatedByUserId,
                Users::Table,
                ForeignKeyAction::SetNull,
            ))
            .take(),
            vec![
                // A retried request finds its run. NULLs are distinct on both backends, so runs
                // without a key (or instance-wide runs) never collide.
                unique(
                    WorkflowRuns::Table,
                    [
                        WorkflowRuns::OrganizationId,
                        WorkflowRuns::Kind,
                        WorkflowRuns::IdempotencyKey,
                    ],
                ),
                // Listing an organization's runs by status.
                index(
                    WorkflowRuns::Table,
                    [WorkflowRuns::OrganizationId, WorkflowRuns::Status],
                ),
                // Workers picking queued runs, and pruning old finished ones.
                index(
                    WorkflowRuns::Table,
                    [WorkflowRuns::Status, WorkflowRuns::FinishedAt],
                ),
                index(WorkflowRuns::Table, [WorkflowRuns::ClusterId]),
            ],
        )
        .await?;

        // Steps and logs are part of their run (CASCADE).
        create_table(
            manager,
            table(
                WorkflowSteps::Table,
                [
                    uuid(WorkflowSteps::RunId),
                    integer(WorkflowSteps::Position),
                    string(WorkflowSteps::Name),
                    enum_string(WorkflowSteps::Status),
                    integer(WorkflowSteps::Attempt),
                    json_binary_null(WorkflowSteps::Output),
                    // Side effects already done, so a retried step skips them.
                    json_binary_null(WorkflowSteps::Checkpoint),
                    text_null(WorkflowSteps::Error),
                    at_null(WorkflowSteps::StartedAt),
                    at_null(WorkflowSteps::FinishedAt),
                ],
            )
            .foreign_key(&mut fk(
                WorkflowSteps::Table,
                WorkflowSteps::RunId,
                WorkflowRuns::Table,
                ForeignKeyAction::Cascade,
            ))
            .take(),
            vec![unique(
                WorkflowSteps::Table,
                [WorkflowSteps::RunId, WorkflowSteps::Position],
            )],
        )
        .await?;

        create_table(
            manager,
            append_only_table(
                WorkflowLogs::Table,
                [
                    uuid(WorkflowLogs::RunId),
                    uuid_null(WorkflowLogs::StepId),
                    string(WorkflowLogs::Level),
                    text(WorkflowLogs::Message),
                ],
            )
            .foreign_key(&mut fk(
                WorkflowLogs::Table,
                WorkflowLogs::RunId,
                WorkflowRuns::Table,
                ForeignKeyAction::Cascade,
            ))
            .foreign_key(&mut fk(
                WorkflowLogs::Table,
                WorkflowLogs::StepId,
                WorkflowSteps::Table,
                ForeignKeyAction::Cascade,
            ))
            .take(),
            vec![
                // Reading (and tailing) a run's log in order.
                index(
                    WorkflowLogs::Table,
                    [WorkflowLogs::RunId, WorkflowLogs::CreatedAt],
                ),
                index(WorkflowLogs::Table, [WorkflowLogs::StepId]),
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_tables(
            manager,
            vec![
                WorkflowLogs::Table.into_iden(),
                WorkflowSteps::Table.into_iden(),
                WorkflowRuns::Table.into_iden(),
            ],
        )
        .await
    }
}

#[derive(DeriveIden)]
enum Organizations {
    Table,
}

#[derive(DeriveIden)]
enum Clusters {
    Table,
}

#[derive(DeriveIden)]
enum Users {
    Table,
}

#[derive(DeriveIden)]
enum WorkflowRuns {
    Table,
    OrganizationId,
    ClusterId,
    Kind,
    Status,
    IdempotencyKey,
    Input,
    Output,
    Error,
    Attempt,
    CancelRequestedAt,
    CreatedByUserId,
    StartedAt,
    FinishedAt,
}

#[derive(DeriveIden)]
enum WorkflowSteps {
    Table,
    RunId,
    Position,
    Name,
    Status,
    Attempt,
    Output,
    Checkpoint,
    Error,
    StartedAt,
    FinishedAt,
}

#[derive(DeriveIden)]
enum WorkflowLogs {
    Table,
    RunId,
    StepId,
    Level,
    Message,
    CreatedAt,
}
