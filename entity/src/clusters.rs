//! K3s clusters of an organization.
//!
//! Its other links live on the rows that point here, so they cannot disagree: the control-plane
//! DNS record is the `dns_records` row with this `cluster_id` and purpose `control_plane`, the
//! apps and control-plane load balancers the `load_balancers` rows with this `cluster_id` and
//! that purpose (one each; see migration `m20261121_000005_cluster_links`).

use crate::enums::ClusterStatus;
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Eq, Serialize, Deserialize)]
#[sea_orm(table_name = "clusters")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Owning organization; tenancy filters use it directly.
    pub organization_id: Uuid,
    /// Unique per organization.
    pub name: String,
    pub status: ClusterStatus,
    pub k3s_version: String,
    pub region: Option<String>,
    /// Zone holding the cluster's DNS records, of the same organization; unset when the
    /// domain is deleted.
    pub domain_id: Option<Uuid>,
    /// URL of the Kubernetes API.
    pub api_endpoint: Option<String>,
    /// Admin kubeconfig sealed with the organization data key.
    #[sea_orm(column_type = "Blob")]
    pub kubeconfig_sealed: Option<Vec<u8>>,
    #[sea_orm(column_type = "Text")]
    pub status_message: Option<String>,
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
    /// Via `domain_id`; deleting the domain leaves the cluster without a zone (SET NULL).
    #[sea_orm(
        belongs_to = "super::domains::Entity",
        from = "Column::DomainId",
        to = "super::domains::Column::Id",
        on_delete = "SetNull"
    )]
    Domains,
    #[sea_orm(has_many = "super::cluster_metadata::Entity")]
    ClusterMetadata,
    #[sea_orm(has_many = "super::node_pools::Entity")]
    NodePools,
    #[sea_orm(has_many = "super::servers::Entity")]
    Servers,
    #[sea_orm(has_many = "super::load_balancers::Entity")]
    LoadBalancers,
    #[sea_orm(has_many = "super::dns_records::Entity")]
    DnsRecords,
    #[sea_orm(has_many = "super::workflow_runs::Entity")]
    WorkflowRuns,
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

impl Related<super::cluster_metadata::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::ClusterMetadata.def()
    }
}

impl Related<super::node_pools::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::NodePools.def()
    }
}

impl Related<super::servers::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Servers.def()
    }
}

impl Related<super::load_balancers::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::LoadBalancers.def()
    }
}

impl Related<super::dns_records::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::DnsRecords.def()
    }
}

impl Related<super::workflow_runs::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::WorkflowRuns.def()
    }
}

crate::behavior::uuid_v7_timestamps!();
