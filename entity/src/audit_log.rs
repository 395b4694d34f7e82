//! Audit trail of security-relevant actions (append-only).

use crate::enums::{ActorKind, AuditOutcome};
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Eq, Serialize, Deserialize)]
#[sea_orm(table_name = "audit_log")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Organization acted on; set to `NULL` when it is deleted, the history outlives it.
    pub organization_id: Option<Uuid>,
    pub actor_kind: ActorKind,
    /// User or key id (no foreign key, so the entry survives its actor).
    pub actor_id: Option<Uuid>,
    /// Human-readable actor, kept for when the actor is gone.
    pub actor_label: String,
    pub action: String,
    pub target_type: Option<String>,
    pub target_id: Option<Uuid>,
    pub outcome: AuditOutcome,
    #[sea_orm(column_type = "JsonBinary")]
    pub details: Option<Json>,
    pub ip: Option<String>,
    pub request_id: Option<String>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// Via `organization_id`; the history outlives the organization (SET NULL).
    #[sea_orm(
        belongs_to = "super::organizations::Entity",
        from = "Column::OrganizationId",
        to = "super::organizations::Column::Id",
        on_delete = "SetNull"
    )]
    Organizations,
}

impl Related<super::organizations::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Organizations.def()
    }
}

crate::behavior::uuid_v7_timestamps!(append_only);
