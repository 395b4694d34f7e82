//! Load balancers in front of a cluster.

use crate::enums::{LoadBalancerKind, LoadBalancerPurpose};
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Eq, Serialize, Deserialize)]
#[sea_orm(table_name = "load_balancers")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Owning organization; tenancy filters use it directly.
    pub organization_id: Uuid,
    pub cluster_id: Option<Uuid>,
    /// Unique per organization.
    pub name: String,
    pub kind: LoadBalancerKind,
    pub purpose: LoadBalancerPurpose,
    /// JSON array of listeners.
    #[sea_orm(column_type = "JsonBinary")]
    pub listeners: Json,
    /// JSON array of address strings.
    #[sea_orm(column_type = "JsonBinary")]
    pub addresses: Json,
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

crate::behavior::uuid_v7_timestamps!();
