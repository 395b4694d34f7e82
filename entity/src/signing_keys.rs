//! Instance-wide keys that sign access tokens; their public halves are published as JWKS.

use crate::enums::SigningKeyAlgorithm;
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Eq, Serialize, Deserialize)]
#[sea_orm(table_name = "signing_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// JWK key id.
    #[sea_orm(unique)]
    pub kid: String,
    pub algorithm: SigningKeyAlgorithm,
    /// Public key (PEM).
    #[sea_orm(column_type = "Text")]
    pub public_key: String,
    /// Private key sealed with the master key.
    #[sea_orm(column_type = "Blob")]
    pub private_key_sealed: Vec<u8>,
    /// From then on the key no longer signs (it still verifies).
    pub retired_at: Option<DateTimeUtc>,
    /// From then on the key leaves the JWKS (tokens it signed are no longer accepted).
    pub expires_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

crate::behavior::uuid_v7_timestamps!();
