//! DNS zones of an organization managed through a DNS provider credential.

use crate::enums::DomainStatus;
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Eq, Serialize, Deserialize)]
#[sea_orm(table_name = "domains")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Owning organization; tenancy filters use it directly.
    pub organization_id: Uuid,
    /// Zone apex, e.g. `example.com`; unique per organization.
    pub zone_name: String,
    /// Zone id at the DNS provider, once found.
    pub provider_zone_id: Option<String>,
    /// Credential used to manage the zone; it cannot be deleted while in use.
    pub credential_id: Option<Uuid>,
    pub status: DomainStatus,
    #[sea_orm(column_type = "Text")]
    pub last_error: Option<String>,
    pub last_synced_at: Option<DateTimeUtc>,
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
    /// Via `credential_id`; a credential managing a zone cannot be deleted (RESTRICT).
    #[sea_orm(
        belongs_to = "super::credentials::Entity",
        from = "Column::CredentialId",
        to = "super::credentials::Column::Id",
        on_delete = "Restrict"
    )]
    Credentials,
    #[sea_orm(has_many = "super::clusters::Entity")]
    Clusters,
    #[sea_orm(has_many = "super::dns_records::Entity")]
    DnsRecords,
}

impl Related<super::organizations::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Organizations.def()
    }
}

impl Related<super::credentials::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Credentials.def()
    }
}

impl Related<super::clusters::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Clusters.def()
    }
}

impl Related<super::dns_records::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::DnsRecords.def()
    }
}

crate::behavior::uuid_v7_timestamps!();
