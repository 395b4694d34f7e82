//! Organizations: the tenants that own every fleet resource.

use crate::enums::EmailDomainStatus;
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Eq, Serialize, Deserialize)]
#[sea_orm(table_name = "organizations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    #[sea_orm(unique)]
    pub name: String,
    #[sea_orm(column_type = "Text")]
    pub description: Option<String>,
    /// Claimed email domain; unique among verified claims only.
    pub email_domain: Option<String>,
    /// Whether the claim is proved; only verified domains make sign-ins members.
    pub email_domain_status: Option<EmailDomainStatus>,
    /// The value the claim's DNS TXT record must hold.
    pub email_domain_token: Option<String>,
    pub email_domain_verified_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::memberships::Entity")]
    Memberships,
    #[sea_orm(has_many = "super::organization_keys::Entity")]
    OrganizationKeys,
    #[sea_orm(has_many = "super::organization_data_keys::Entity")]
    OrganizationDataKeys,
    #[sea_orm(has_many = "super::credentials::Entity")]
    Credentials,
    #[sea_orm(has_many = "super::ssh_keys::Entity")]
    SshKeys,
    #[sea_orm(has_many = "super::domains::Entity")]
    Domains,
    #[sea_orm(has_many = "super::clusters::Entity")]
    Clusters,
    #[sea_orm(has_many = "super::workflow_runs::Entity")]
    WorkflowRuns,
}

impl Related<super::memberships::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Memberships.def()
    }
}

impl Related<super::organization_keys::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::OrganizationKeys.def()
    }
}

impl Related<super::organization_data_keys::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::OrganizationDataKeys.def()
    }
}

impl Related<super::credentials::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Credentials.def()
    }
}

impl Related<super::ssh_keys::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::SshKeys.def()
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

impl Related<super::workflow_runs::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::WorkflowRuns.def()
    }
}

crate::behavior::uuid_v7_timestamps!();
