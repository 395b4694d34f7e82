//! Cloud and DNS provider credentials of an organization; the secret is sealed with the
//! organization data key.

use crate::enums::{CredentialKind, CredentialScope};
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Eq, Serialize, Deserialize)]
#[sea_orm(table_name = "credentials")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Owning organization; tenancy filters use it directly.
    pub organization_id: Uuid,
    /// Unique per organization.
    pub name: String,
    pub kind: CredentialKind,
    pub scope_kind: CredentialScope,
    /// Service name or resource ARN, depending on `scope_kind`.
    pub scope_value: Option<String>,
    pub region: Option<String>,
    #[sea_orm(column_type = "Text")]
    pub description: Option<String>,
    /// Sealed secret payload (its shape depends on `kind`).
    #[sea_orm(column_type = "Blob")]
    pub secret_sealed: Vec<u8>,
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
    #[sea_orm(has_many = "super::domains::Entity")]
    Domains,
}

impl Related<super::organizations::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Organizations.def()
    }
}

impl Related<super::domains::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Domains.def()
    }
}

crate::behavior::uuid_v7_timestamps!();
