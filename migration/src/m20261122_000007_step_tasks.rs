//! Steps run as their own queue tasks (apalis-workflow): the step row names the task that
//! claimed it, so a second task for the same step (pushed twice when an acknowledgement was
//! lost) finds it taken and does nothing, while the same task delivered again after a crash
//! resumes it.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(WorkflowSteps::Table)
                    .add_column(string_null(WorkflowSteps::TaskId))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(WorkflowSteps::Table)
                    .drop_column(WorkflowSteps::TaskId)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum WorkflowSteps {
    Table,
    TaskId,
}
