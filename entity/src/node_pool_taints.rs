//! Kubernetes node taints applied to every node of a node pool.

use crate::enums::TaintEffect;
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Eq, Serialize, Deserialize)]
#[sea_orm(table_name = "node_pool_taints")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Owning organization; tenancy filters use it directly.
    pub organization_id: Uuid,
    pub node_pool_id: Uuid,
    /// Unique per node pool together with `effect`.
    pub key: String,
    /// May be empty.
    pub value: String,
    pub effect: TaintEffect,
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
    /// Via `node_pool_id`; deleted with its node pool (CASCADE).
    #[sea_orm(
        belongs_to = "super::node_pools::Entity",
        from = "Column::NodePoolId",
        to = "super::node_pools::Column::Id",
        on_delete = "Cascade"
    )]
    NodePools,
}

impl Related<super::organizations::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Organizations.def()
    }
}

impl Related<super::node_pools::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::NodePools.def()
    }
}

crate::behavior::uuid_v7_timestamps!();
