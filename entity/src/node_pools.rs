//! Node pools of a cluster: groups of servers with the same role, labels and taints.

use crate::enums::NodePoolRole;
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Eq, Serialize, Deserialize)]
#[sea_orm(table_name = "node_pools")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Owning organization; tenancy filters use it directly.
    pub organization_id: Uuid,
    pub cluster_id: Uuid,
    /// Unique per cluster.
    pub name: String,
    pub role: NodePoolRole,
    pub desired_size: i32,
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
    /// Via `cluster_id`; deleted with its cluster (CASCADE).
    #[sea_orm(
        belongs_to = "super::clusters::Entity",
        from = "Column::ClusterId",
        to = "super::clusters::Column::Id",
        on_delete = "Cascade"
    )]
    Clusters,
    #[sea_orm(has_many = "super::node_pool_labels::Entity")]
    NodePoolLabels,
    #[sea_orm(has_many = "super::node_pool_annotations::Entity")]
    NodePoolAnnotations,
    #[sea_orm(has_many = "super::node_pool_taints::Entity")]
    NodePoolTaints,
    #[sea_orm(has_many = "super::servers::Entity")]
    Servers,
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

impl Related<super::node_pool_labels::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::NodePoolLabels.def()
    }
}

impl Related<super::node_pool_annotations::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::NodePoolAnnotations.def()
    }
}

impl Related<super::node_pool_taints::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::NodePoolTaints.def()
    }
}

impl Related<super::servers::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Servers.def()
    }
}

crate::behavior::uuid_v7_timestamps!();
