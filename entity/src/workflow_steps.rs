//! Steps of a workflow run, in order, with their checkpoints.

use crate::enums::WorkflowStatus;
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Eq, Serialize, Deserialize)]
#[sea_orm(table_name = "workflow_steps")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub run_id: Uuid,
    /// Order within the run; unique per run.
    pub position: i32,
    pub name: String,
    pub status: WorkflowStatus,
    pub attempt: i32,
    #[sea_orm(column_type = "JsonBinary")]
    pub output: Option<Json>,
    /// Side effects already done, so a retried step skips them.
    #[sea_orm(column_type = "JsonBinary")]
    pub checkpoint: Option<Json>,
    #[sea_orm(column_type = "Text")]
    pub error: Option<String>,
    pub started_at: Option<DateTimeUtc>,
    pub finished_at: Option<DateTimeUtc>,
    /// The queue task (apalis-workflow stage) that last claimed the step.
    pub task_id: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// Via `run_id`; deleted with its workflow run (CASCADE).
    #[sea_orm(
        belongs_to = "super::workflow_runs::Entity",
        from = "Column::RunId",
        to = "super::workflow_runs::Column::Id",
        on_delete = "Cascade"
    )]
    WorkflowRuns,
    #[sea_orm(has_many = "super::workflow_logs::Entity")]
    WorkflowLogs,
}

impl Related<super::workflow_runs::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::WorkflowRuns.def()
    }
}

impl Related<super::workflow_logs::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::WorkflowLogs.def()
    }
}

crate::behavior::uuid_v7_timestamps!();
