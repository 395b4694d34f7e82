//! Servers (machines reached over SSH) of an organization, usually nodes of a cluster. A cluster's
//! bastion is its server with role `bastion` (at most one per cluster).

use crate::enums::{ServerRole, ServerStatus};
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Eq, Serialize, Deserialize)]
#[sea_orm(table_name = "servers")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Owning organization; tenancy filters use it directly.
    pub organization_id: Uuid,
    pub cluster_id: Option<Uuid>,
    /// Unset when the node pool is deleted; the server stays.
    pub node_pool_id: Option<Uuid>,
    /// Unique per organization.
    pub hostname: String,
    pub public_ip: Option<String>,
    pub private_ip: Option<String>,
    pub role: ServerRole,
    pub status: ServerStatus,
    pub ssh_user: String,
    pub ssh_port: i32,
    /// Key used to log in; a key in use cannot be deleted.
    pub ssh_key_id: Option<Uuid>,
    /// Pinned SSH host key, checked on every connection.
    #[sea_orm(column_type = "Text")]
    pub host_key: Option<String>,
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
    /// Via `cluster_id`; deleted with its cluster (CASCADE).
    #[sea_orm(
        belongs_to = "super::clusters::Entity",
        from = "Column::ClusterId",
        to = "super::clusters::Column::Id",
        on_delete = "Cascade"
    )]
    Clusters,
    /// Via `node_pool_id`; deleting the node pool only detaches its servers (SET NULL).
    #[sea_orm(
        belongs_to = "super::node_pools::Entity",
        from = "Column::NodePoolId",
        to = "super::node_pools::Column::Id",
        on_delete = "SetNull"
    )]
    NodePools,
    /// Via `ssh_key_id`; a key in use cannot be deleted (RESTRICT).
    #[sea_orm(
        belongs_to = "super::ssh_keys::Entity",
        from = "Column::SshKeyId",
        to = "super::ssh_keys::Column::Id",
        on_delete = "Restrict"
    )]
    SshKeys,
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

impl Related<super::node_pools::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::NodePools.def()
    }
}

impl Related<super::ssh_keys::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::SshKeys.def()
    }
}

crate::behavior::uuid_v7_timestamps!();
