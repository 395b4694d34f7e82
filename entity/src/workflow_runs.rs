//! Runs of durable workflows (provisioning, DNS sync, ...), with input, output and retry state.

use crate::enums::WorkflowStatus;
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Eq, Serialize, Deserialize)]
#[sea_orm(table_name = "workflow_runs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Owning organization; `None` for instance-wide runs.
    pub organization_id: Option<Uuid>,
    /// Cluster the run works on; unset when the cluster is deleted, the history stays.
    pub cluster_id: Option<Uuid>,
    /// Workflow name.
    pub kind: String,
    pub status: WorkflowStatus,
    /// Unique per organization and kind: a retried request finds the existing run.
    pub idempotency_key: Option<String>,
    #[sea_orm(column_type = "JsonBinary")]
    pub input: Json,
    #[sea_orm(column_type = "JsonBinary")]
    pub output: Option<Json>,
    #[sea_orm(column_type = "Text")]
    pub error: Option<String>,
    pub attempt: i32,
    pub cancel_requested_at: Option<DateTimeUtc>,
    pub created_by_user_id: Option<Uuid>,
    pub started_at: Option<DateTimeUtc>,
    pub finished_at: Option<DateTimeUtc>,
    /// The queue task allowed to drive the run; a task with another ticket is stale.
    pub ticket: Option<Uuid>,
    /// When a retrying run's next attempt is due.
    pub next_attempt_at: Option<DateTimeUtc>,
    /// Worker that last claimed the run.
    pub worker: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// Via `organization_id`; deleted with its organization (CASCADE).
    #[sea_orm(
        belongs_to = "super::organizations::Entity",
        from = "Column::OrganizationId",
        to = "super::organizations::Column::Id",
        on_delete = "Cascade"
    )]
    Organizations,
    /// Via `cluster_id`; run history outlives the cluster (SET NULL).
    #[sea_orm(
        belongs_to = "super::clusters::Entity",
        from = "Column::ClusterId",
        to = "super::clusters::Column::Id",
        on_delete = "SetNull"
    )]
    Clusters,
    /// Via `created_by_user_id`; run history outlives the user (SET NULL).
    #[sea_orm(
        belongs_to = "super::users::Entity",
        from = "Column::CreatedByUserId",
        to = "super::users::Column::Id",
        on_delete = "SetNull"
    )]
    Users,
    #[sea_orm(has_many = "super::workflow_steps::Entity")]
    WorkflowSteps,
    #[sea_orm(has_many = "super::workflow_logs::Entity")]
    WorkflowLogs,
}

impl Related<super::organizations::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Organizations.def()
    }
}

impl Related<super::clusters::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Clusters.def()
    }
}

impl Related<super::users::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Users.def()
    }
}

impl Related<super::workflow_steps::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::WorkflowSteps.def()
    }
}

impl Related<super::workflow_logs::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::WorkflowLogs.def()
    }
}

crate::behavior::uuid_v7_timestamps!();
