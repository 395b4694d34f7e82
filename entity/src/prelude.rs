//! Every `Entity`, re-exported under its table's name in PascalCase (`Users`, `Clusters`, ...).

pub use super::api_keys::Entity as ApiKeys;
pub use super::audit_log::Entity as AuditLog;
pub use super::cluster_metadata::Entity as ClusterMetadata;
pub use super::clusters::Entity as Clusters;
pub use super::credentials::Entity as Credentials;
pub use super::dns_records::Entity as DnsRecords;
pub use super::domains::Entity as Domains;
pub use super::load_balancers::Entity as LoadBalancers;
pub use super::memberships::Entity as Memberships;
pub use super::node_pool_annotations::Entity as NodePoolAnnotations;
pub use super::node_pool_labels::Entity as NodePoolLabels;
pub use super::node_pool_taints::Entity as NodePoolTaints;
pub use super::node_pools::Entity as NodePools;
pub use super::organization_data_keys::Entity as OrganizationDataKeys;
pub use super::organization_keys::Entity as OrganizationKeys;
pub use super::organizations::Entity as Organizations;
pub use super::refresh_tokens::Entity as RefreshTokens;
pub use super::servers::Entity as Servers;
pub use super::signing_keys::Entity as SigningKeys;
pub use super::ssh_keys::Entity as SshKeys;
pub use super::user_emails::Entity as UserEmails;
pub use super::user_identities::Entity as UserIdentities;
pub use super::users::Entity as Users;
pub use super::workflow_logs::Entity as WorkflowLogs;
pub use super::workflow_runs::Entity as WorkflowRuns;
pub use super::workflow_steps::Entity as WorkflowSteps;
