//! Log lines of workflow runs (append-only).

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Eq, Serialize, Deserialize)]
#[sea_orm(table_name = "workflow_logs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub run_id: Uuid,
    /// Step that logged the line, if any.
    pub step_id: Option<Uuid>,
    pub level: String,
    #[sea_orm(column_type = "Text")]
    pub message: String,
    pub created_at: DateTimeUtc,
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
    /// Via `step_id`; deleted with its workflow step (CASCADE).
    #[sea_orm(
        belongs_to = "super::workflow_steps::Entity",
        from = "Column::StepId",
        to = "super::workflow_steps::Column::Id",
        on_delete = "Cascade"
    )]
    WorkflowSteps,
}

impl Related<super::workflow_runs::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::WorkflowRuns.def()
    }
}

impl Related<super::workflow_steps::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::WorkflowSteps.def()
    }
}

crate::behavior::uuid_v7_timestamps!(append_only);
