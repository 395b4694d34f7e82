//! Column enums of every table, stored as short lower_snake strings so both PostgreSQL and SQLite
//! hold them in a plain string column (no database enum types to migrate). With the `graphql`
//! feature they also derive `async_graphql::Enum`, so the API exposes the very same values.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// Role of a member (or an organization key) inside an organization, from least to most privileged:
/// viewer < member < admin < owner.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[cfg_attr(feature = "graphql", derive(async_graphql::Enum))]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
pub enum MemberRole {
    /// Full control, including deleting the organization and managing owners.
    #[sea_orm(string_value = "owner")]
    Owner,
    /// Manages members, keys and every resource of the organization.
    #[sea_orm(string_value = "admin")]
    Admin,
    /// Creates and changes resources of the organization.
    #[sea_orm(string_value = "member")]
    Member,
    /// Reads resources of the organization, changes nothing.
    #[sea_orm(string_value = "viewer")]
    Viewer,
}

impl MemberRole {
    /// Privilege rank: viewer 0 < member 1 < admin 2 < owner 3.
    pub fn rank(self) -> u8 {
        match self {
            Self::Viewer => 0,
            Self::Member => 1,
            Self::Admin => 2,
            Self::Owner => 3,
        }
    }

    /// Whether this role grants at least the privileges of `other`.
    pub fn at_least(self, other: MemberRole) -> bool {
        self.rank() >= other.rank()
    }
}

/// Lifecycle state of a K3s cluster.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[cfg_attr(feature = "graphql", derive(async_graphql::Enum))]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
pub enum ClusterStatus {
    /// Recorded, nothing provisioned yet.
    #[sea_orm(string_value = "pending")]
    Pending,
    /// A workflow is installing or changing the cluster.
    #[sea_orm(string_value = "provisioning")]
    Provisioning,
    /// The cluster is up and serving its API.
    #[sea_orm(string_value = "ready")]
    Ready,
    /// The cluster serves but some nodes or components are unhealthy.
    #[sea_orm(string_value = "degraded")]
    Degraded,
    /// Provisioning failed; see the status message.
    #[sea_orm(string_value = "failed")]
    Failed,
    /// A workflow is tearing the cluster down.
    #[sea_orm(string_value = "deleting")]
    Deleting,
}

/// What the nodes of a node pool run.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[cfg_attr(feature = "graphql", derive(async_graphql::Enum))]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
pub enum NodePoolRole {
    /// K3s servers: the control plane (API server, datastore).
    #[sea_orm(string_value = "control_plane")]
    ControlPlane,
    /// K3s agents that run workloads.
    #[sea_orm(string_value = "worker")]
    Worker,
}

/// What a server does in its cluster.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[cfg_attr(feature = "graphql", derive(async_graphql::Enum))]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
pub enum ServerRole {
    /// SSH jump host through which the other servers of the cluster are reached.
    #[sea_orm(string_value = "bastion")]
    Bastion,
    /// K3s server node (control plane).
    #[sea_orm(string_value = "control_plane")]
    ControlPlane,
    /// K3s agent node that runs workloads.
    #[sea_orm(string_value = "worker")]
    Worker,
}

/// Provisioning state of a server.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[cfg_attr(feature = "graphql", derive(async_graphql::Enum))]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
pub enum ServerStatus {
    /// Registered, not yet provisioned.
    #[sea_orm(string_value = "pending")]
    Pending,
    /// A workflow is installing software on the server.
    #[sea_orm(string_value = "provisioning")]
    Provisioning,
    /// Provisioned and part of its cluster.
    #[sea_orm(string_value = "ready")]
    Ready,
    /// Provisioning failed; see the status message.
    #[sea_orm(string_value = "failed")]
    Failed,
}

/// Algorithm of an SSH key pair.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[cfg_attr(feature = "graphql", derive(async_graphql::Enum))]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
pub enum SshKeyAlgorithm {
    /// Ed25519 (recommended).
    #[sea_orm(string_value = "ed25519")]
    #[cfg_attr(feature = "graphql", graphql(name = "ED25519"))]
    Ed25519,
    /// RSA, for hosts that do not accept Ed25519.
    #[sea_orm(string_value = "rsa")]
    Rsa,
}

/// Kind of secret a credential holds, which decides the shape of its sealed payload.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[cfg_attr(feature = "graphql", derive(async_graphql::Enum))]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
pub enum CredentialKind {
    /// AWS access key id and secret access key.
    #[sea_orm(string_value = "aws_access_key")]
    AwsAccessKey,
    /// Cloudflare API token.
    #[sea_orm(string_value = "cloudflare_api_token")]
    CloudflareApiToken,
    /// Hetzner Cloud API token.
    #[sea_orm(string_value = "hetzner_api_token")]
    HetznerApiToken,
    /// DigitalOcean API token.
    #[sea_orm(string_value = "digitalocean_api_token")]
    DigitaloceanApiToken,
    /// User name and password.
    #[sea_orm(string_value = "basic_auth")]
    BasicAuth,
    /// OAuth 2 client id and client secret.
    #[sea_orm(string_value = "oauth2_client")]
    #[cfg_attr(feature = "graphql", graphql(name = "OAUTH2_CLIENT"))]
    Oauth2Client,
}

/// What a credential may be used for.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[cfg_attr(feature = "graphql", derive(async_graphql::Enum))]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
pub enum CredentialScope {
    /// The whole provider account.
    #[sea_orm(string_value = "account")]
    Account,
    /// One service of the provider (the scope value names it).
    #[sea_orm(string_value = "service")]
    Service,
    /// One resource (the scope value is its ARN).
    #[sea_orm(string_value = "resource")]
    Resource,
}

/// Whether an organization's claim on an email domain is proved.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[cfg_attr(feature = "graphql", derive(async_graphql::Enum))]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
pub enum EmailDomainStatus {
    /// Claimed, not proved: sign-ins from the domain do not join.
    #[sea_orm(string_value = "pending")]
    Pending,
    /// Proved by its DNS TXT record or approved by an instance admin.
    #[sea_orm(string_value = "verified")]
    Verified,
}

/// State of a DNS zone managed by Autoglue.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[cfg_attr(feature = "graphql", derive(async_graphql::Enum))]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
pub enum DomainStatus {
    /// Recorded, not yet verified with the DNS provider.
    #[sea_orm(string_value = "pending")]
    Pending,
    /// Found at the DNS provider; records are being synced.
    #[sea_orm(string_value = "active")]
    Active,
    /// The DNS provider refused or failed; see the last error.
    #[sea_orm(string_value = "error")]
    Error,
    /// Deleted while the provider may still hold its records: they are marked `ABSENT`, and
    /// the DNS reconcile removes them there before the domain's row goes.
    #[sea_orm(string_value = "deleting")]
    Deleting,
}

/// DNS resource record type.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[cfg_attr(feature = "graphql", derive(async_graphql::Enum))]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
pub enum DnsRecordType {
    /// IPv4 address.
    #[sea_orm(string_value = "a")]
    A,
    /// IPv6 address.
    #[sea_orm(string_value = "aaaa")]
    Aaaa,
    /// Canonical name (alias).
    #[sea_orm(string_value = "cname")]
    Cname,
    /// Text.
    #[sea_orm(string_value = "txt")]
    Txt,
    /// Mail exchanger.
    #[sea_orm(string_value = "mx")]
    Mx,
    /// Name server.
    #[sea_orm(string_value = "ns")]
    Ns,
    /// Service locator.
    #[sea_orm(string_value = "srv")]
    Srv,
    /// Certification authority authorization.
    #[sea_orm(string_value = "caa")]
    Caa,
}

/// Why a DNS record exists.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[cfg_attr(feature = "graphql", derive(async_graphql::Enum))]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
pub enum DnsRecordPurpose {
    /// Points at a cluster's Kubernetes API (one per cluster).
    #[sea_orm(string_value = "control_plane")]
    ControlPlane,
    /// Points at a cluster's application ingress.
    #[sea_orm(string_value = "apps")]
    Apps,
    /// Created by a user.
    #[sea_orm(string_value = "custom")]
    Custom,
}

/// Whether a DNS record should exist at the provider.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[cfg_attr(feature = "graphql", derive(async_graphql::Enum))]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
pub enum DnsDesiredState {
    /// The record should exist with the desired values.
    #[sea_orm(string_value = "present")]
    Present,
    /// The record should be removed from the provider.
    #[sea_orm(string_value = "absent")]
    Absent,
}

/// What the last sync found at the DNS provider.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[cfg_attr(feature = "graphql", derive(async_graphql::Enum))]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
pub enum DnsObservedState {
    /// Not synced yet.
    #[sea_orm(string_value = "unknown")]
    Unknown,
    /// A change was sent and is not confirmed yet.
    #[sea_orm(string_value = "pending")]
    Pending,
    /// The provider matches the desired state.
    #[sea_orm(string_value = "in_sync")]
    InSync,
    /// The provider differs from the desired state.
    #[sea_orm(string_value = "drifted")]
    Drifted,
    /// The last sync failed; see the last error.
    #[sea_orm(string_value = "error")]
    Error,
}

/// Network exposure of a load balancer.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[cfg_attr(feature = "graphql", derive(async_graphql::Enum))]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
pub enum LoadBalancerKind {
    /// Reachable from the internet.
    #[sea_orm(string_value = "public")]
    Public,
    /// Reachable from the private network only.
    #[sea_orm(string_value = "internal")]
    Internal,
}

/// Traffic a load balancer carries.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[cfg_attr(feature = "graphql", derive(async_graphql::Enum))]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
pub enum LoadBalancerPurpose {
    /// Application ingress traffic.
    #[sea_orm(string_value = "apps")]
    Apps,
    /// Kubernetes API traffic to the control plane.
    #[sea_orm(string_value = "control_plane")]
    ControlPlane,
    /// Anything else.
    #[sea_orm(string_value = "other")]
    Other,
}

/// State of a workflow run or of one of its steps.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[cfg_attr(feature = "graphql", derive(async_graphql::Enum))]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
pub enum WorkflowStatus {
    /// Waiting for a worker.
    #[sea_orm(string_value = "queued")]
    Queued,
    /// Being executed by a worker.
    #[sea_orm(string_value = "running")]
    Running,
    /// Finished successfully.
    #[sea_orm(string_value = "succeeded")]
    Succeeded,
    /// Finished with an error, no retry left.
    #[sea_orm(string_value = "failed")]
    Failed,
    /// Stopped on request.
    #[sea_orm(string_value = "cancelled")]
    Cancelled,
    /// Failed and waiting for another attempt.
    #[sea_orm(string_value = "retrying")]
    Retrying,
}

/// Effect of a Kubernetes node taint.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[cfg_attr(feature = "graphql", derive(async_graphql::Enum))]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
pub enum TaintEffect {
    /// New pods that do not tolerate the taint are not scheduled on the node.
    #[sea_orm(string_value = "no_schedule")]
    NoSchedule,
    /// The scheduler tries to avoid placing pods that do not tolerate the taint.
    #[sea_orm(string_value = "prefer_no_schedule")]
    PreferNoSchedule,
    /// Pods that do not tolerate the taint are evicted and not scheduled.
    #[sea_orm(string_value = "no_execute")]
    NoExecute,
}

impl TaintEffect {
    /// The effect as Kubernetes spells it in a node taint (`NoSchedule`, ...).
    pub fn as_kubernetes(self) -> &'static str {
        match self {
            Self::NoSchedule => "NoSchedule",
            Self::PreferNoSchedule => "PreferNoSchedule",
            Self::NoExecute => "NoExecute",
        }
    }
}

/// Algorithm of a token signing key.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[cfg_attr(feature = "graphql", derive(async_graphql::Enum))]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
pub enum SigningKeyAlgorithm {
    /// EdDSA over Ed25519.
    #[sea_orm(string_value = "eddsa")]
    EdDsa,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    #[sea_orm(string_value = "rs256")]
    Rs256,
}

/// Who performed an audited action.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[cfg_attr(feature = "graphql", derive(async_graphql::Enum))]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
pub enum ActorKind {
    /// A signed-in user.
    #[sea_orm(string_value = "user")]
    User,
    /// A user's API key.
    #[sea_orm(string_value = "api_key")]
    ApiKey,
    /// An organization key.
    #[sea_orm(string_value = "org_key")]
    OrgKey,
    /// Autoglue itself (workflows, background jobs).
    #[sea_orm(string_value = "system")]
    System,
}

/// Result of an audited action.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[cfg_attr(feature = "graphql", derive(async_graphql::Enum))]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
pub enum AuditOutcome {
    /// The action was carried out.
    #[sea_orm(string_value = "success")]
    Success,
    /// The action was allowed but failed.
    #[sea_orm(string_value = "failure")]
    Failure,
    /// The action was refused for lack of permission.
    #[sea_orm(string_value = "denied")]
    Denied,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_role_ranks() {
        assert!(MemberRole::Owner.at_least(MemberRole::Admin));
        assert!(MemberRole::Admin.at_least(MemberRole::Admin));
        assert!(!MemberRole::Member.at_least(MemberRole::Admin));
        assert!(MemberRole::Viewer.at_least(MemberRole::Viewer));
        assert!(!MemberRole::Viewer.at_least(MemberRole::Member));
    }

    #[test]
    fn string_values() {
        assert_eq!(DnsRecordType::Aaaa.to_value(), "aaaa");
        assert_eq!(SigningKeyAlgorithm::EdDsa.to_value(), "eddsa");
        assert_eq!(NodePoolRole::ControlPlane.to_value(), "control_plane");
        assert_eq!(
            TaintEffect::PreferNoSchedule.as_kubernetes(),
            "PreferNoSchedule"
        );
    }
}
