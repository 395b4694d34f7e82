//! People who sign in: local password accounts and accounts linked to OIDC identities.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Eq, Serialize, Deserialize)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Unique login name.
    #[sea_orm(unique)]
    pub username: String,
    /// Primary email address, copied from the primary `user_emails` row.
    #[sea_orm(unique)]
    pub email: Option<String>,
    pub display_name: Option<String>,
    pub avatar_url: Option<String>,
    /// Password hash (PHC string); `None` for users that only sign in through OIDC.
    pub password_hash: Option<String>,
    /// Instance administrator.
    pub is_admin: bool,
    /// A disabled user cannot sign in and its keys and tokens are refused.
    pub disabled: bool,
    pub last_login_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::user_emails::Entity")]
    UserEmails,
    #[sea_orm(has_many = "super::user_identities::Entity")]
    UserIdentities,
    #[sea_orm(has_many = "super::memberships::Entity")]
    Memberships,
    #[sea_orm(has_many = "super::api_keys::Entity")]
    ApiKeys,
    #[sea_orm(has_many = "super::refresh_tokens::Entity")]
    RefreshTokens,
}

impl Related<super::user_emails::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::UserEmails.def()
    }
}

impl Related<super::user_identities::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::UserIdentities.def()
    }
}

impl Related<super::memberships::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Memberships.def()
    }
}

impl Related<super::api_keys::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::ApiKeys.def()
    }
}

impl Related<super::refresh_tokens::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::RefreshTokens.def()
    }
}

crate::behavior::uuid_v7_timestamps!();
