//! API keys of an organization (not tied to a person), with a role; only a hash of the secret is
//! stored.

use crate::enums::MemberRole;
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Eq, Serialize, Deserialize)]
#[sea_orm(table_name = "organization_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Owning organization; tenancy filters use it directly.
    pub organization_id: Uuid,
    /// Unique per organization.
    pub name: String,
    pub role: MemberRole,
    /// Public, unique prefix of the key, used to find the row.
    #[sea_orm(unique)]
    pub prefix: String,
    pub secret_hash: String,
    pub expires_at: Option<DateTimeUtc>,
    pub last_used_at: Option<DateTimeUtc>,
    pub revoked_at: Option<DateTimeUtc>,
    /// Creator; set to `NULL` when that user is deleted, the key stays.
    pub created_by_user_id: Option<Uuid>,
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
    /// Via `created_by_user_id`; the key outlives its creator (SET NULL).
    #[sea_orm(
        belongs_to = "super::users::Entity",
        from = "Column::CreatedByUserId",
        to = "super::users::Column::Id",
        on_delete = "SetNull"
    )]
    Users,
}

impl Related<super::organizations::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Organizations.def()
    }
}

impl Related<super::users::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Users.def()
    }
}

crate::behavior::uuid_v7_timestamps!();
