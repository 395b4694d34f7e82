//! SSH key pairs of an organization used to reach its servers; the private key is sealed.

use crate::enums::SshKeyAlgorithm;
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Eq, Serialize, Deserialize)]
#[sea_orm(table_name = "ssh_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Owning organization; tenancy filters use it directly.
    pub organization_id: Uuid,
    /// Unique per organization.
    pub name: String,
    pub algorithm: SshKeyAlgorithm,
    /// Key size (RSA only).
    pub bits: Option<i32>,
    pub comment: Option<String>,
    /// Public key in OpenSSH format.
    #[sea_orm(column_type = "Text")]
    pub public_key: String,
    /// SHA256 fingerprint; unique per organization.
    pub fingerprint: String,
    #[sea_orm(column_type = "Blob")]
    pub private_key_sealed: Vec<u8>,
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
    #[sea_orm(has_many = "super::servers::Entity")]
    Servers,
}

impl Related<super::organizations::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Organizations.def()
    }
}

impl Related<super::servers::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Servers.def()
    }
}

crate::behavior::uuid_v7_timestamps!();
