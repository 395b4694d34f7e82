//! DNS records Autoglue manages in a domain: desired state, and what the last sync observed at the
//! provider.

use crate::enums::{DnsDesiredState, DnsObservedState, DnsRecordPurpose, DnsRecordType};
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Eq, Serialize, Deserialize)]
#[sea_orm(table_name = "dns_records")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Owning organization; tenancy filters use it directly.
    pub organization_id: Uuid,
    pub domain_id: Uuid,
    /// Cluster the record serves; at most one `control_plane` record per cluster.
    pub cluster_id: Option<Uuid>,
    pub purpose: DnsRecordPurpose,
    /// Name relative to the zone, `@` for the apex.
    pub name: String,
    pub record_type: DnsRecordType,
    pub ttl: i32,
    /// JSON array of record values (strings).
    #[sea_orm(column_type = "JsonBinary")]
    pub values: Json,
    pub desired_state: DnsDesiredState,
    pub observed_state: DnsObservedState,
    /// Values found at the provider by the last sync.
    #[sea_orm(column_type = "JsonBinary")]
    pub observed_values: Option<Json>,
    /// Ownership marker, so Autoglue never touches records it did not create.
    pub owner: String,
    pub last_synced_at: Option<DateTimeUtc>,
    #[sea_orm(column_type = "Text")]
    pub last_error: Option<String>,
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
    /// Via `domain_id`; deleted with its domain (CASCADE).
    #[sea_orm(
        belongs_to = "super::domains::Entity",
        from = "Column::DomainId",
        to = "super::domains::Column::Id",
        on_delete = "Cascade"
    )]
    Domains,
    /// Via `cluster_id`; deleted with its cluster (CASCADE).
    #[sea_orm(
        belongs_to = "super::clusters::Entity",
        from = "Column::ClusterId",
        to = "super::clusters::Column::Id",
        on_delete = "Cascade"
    )]
    Clusters,
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

impl Related<super::clusters::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Clusters.def()
    }
}

crate::behavior::uuid_v7_timestamps!();
