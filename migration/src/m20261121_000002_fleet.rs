//! Fleet: provider credentials, SSH keys, DNS domains, clusters with their node pools (labels,
//! annotations, taints), servers, load balancers and DNS records. Every row carries
//! `organization_id`, so tenancy filters never need a join.

use crate::common::*;
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        create_table(
            manager,
            org_table(
                Credentials::Table,
                [
                    string(Credentials::Name),
                    enum_string(Credentials::Kind),
                    enum_string(Credentials::ScopeKind),
                    // Service name or resource ARN, depending on scope_kind.
                    string_null(Credentials::ScopeValue),
                    string_null(Credentials::Region),
                    text_null(Credentials::Description),
                    sealed(Credentials::SecretSealed),
                ],
            ),
            vec![unique(
                Credentials::Table,
                [Credentials::OrganizationId, Credentials::Name],
            )],
        )
        .await?;

        create_table(
            manager,
            org_table(
                SshKeys::Table,
                [
                    string(SshKeys::Name),
                    enum_string(SshKeys::Algorithm),
                    integer_null(SshKeys::Bits),
                    string_null(SshKeys::Comment),
                    text(SshKeys::PublicKey),
                    string(SshKeys::Fingerprint),
                    sealed(SshKeys::PrivateKeySealed),
                ],
            ),
            vec![
                unique(SshKeys::Table, [SshKeys::OrganizationId, SshKeys::Name]),
                unique(
                    SshKeys::Table,
                    [SshKeys::OrganizationId, SshKeys::Fingerprint],
                ),
            ],
        )
        .await?;

        create_table(
            manager,
            org_table(
                Domains::Table,
                [
                    string(Domains::ZoneName),
                    string_null(Domains::ProviderZoneId),
                    uuid_null(Domains::CredentialId),
                    enum_string(Domains::Status),
                    text_null(Domains::LastError),
                    at_null(Domains::LastSyncedAt),
                ],
            )
            // A credential that manages a zone cannot be deleted from under it.
            .foreign_key(&mut fk(
                Domains::Table,
                Domains::CredentialId,
                Credentials::Table,
                ForeignKeyAction::Restrict,
            ))
            .take(),
            vec![unique(
                Domains::Table,
                [Domains::OrganizationId, Domains::ZoneName],
            )],
        )
        .await?;

        create_table(
            manager,
            org_table(
                Clusters::Table,
                [
                    string(Clusters::Name),
                    enum_string(Clusters::Status),
                    string(Clusters::K3sVersion),
                    string_null(Clusters::Region),
                    uuid_null(Clusters::DomainId),
                    string_null(Clusters::ApiEndpoint),
                    sealed_null(Clusters::KubeconfigSealed),
                    text_null(Clusters::StatusMessage),
                ],
            )
            // Deleting a domain leaves its clusters running, just without a zone.
            .foreign_key(&mut fk(
                Clusters::Table,
                Clusters::DomainId,
                Domains::Table,
                ForeignKeyAction::SetNull,
            ))
            .take(),
            vec![
                unique(Clusters::Table, [Clusters::OrganizationId, Clusters::Name]),
                index(
                    Clusters::Table,
                    [Clusters::OrganizationId, Clusters::Status],
                ),
            ],
        )
        .await?;

        // The parts of a cluster (metadata, node pools and their labels, annotations and taints)
        // are deleted with it (CASCADE).
        create_table(
            manager,
            org_table(
                ClusterMetadata::Table,
                [
                    uuid(ClusterMetadata::ClusterId),
                    string(ClusterMetadata::Key),
                    text(ClusterMetadata::Value),
                ],
            )
            .foreign_key(&mut fk(
                ClusterMetadata::Table,
                ClusterMetadata::ClusterId,
                Clusters::Table,
                ForeignKeyAction::Cascade,
            ))
            .take(),
            vec![unique(
                ClusterMetadata::Table,
                [ClusterMetadata::ClusterId, ClusterMetadata::Key],
            )],
        )
        .await?;

        create_table(
            manager,
            org_table(
                NodePools::Table,
                [
                    uuid(NodePools::ClusterId),
                    string(NodePools::Name),
                    enum_string(NodePools::Role),
                    integer(NodePools::DesiredSize),
                ],
            )
            .foreign_key(&mut fk(
                NodePools::Table,
                NodePools::ClusterId,
                Clusters::Table,
                ForeignKeyAction::Cascade,
            ))
            .take(),
            vec![unique(
                NodePools::Table,
                [NodePools::ClusterId, NodePools::Name],
            )],
        )
        .await?;

        create_table(
            manager,
            org_table(
                NodePoolLabels::Table,
                [
                    uuid(NodePoolLabels::NodePoolId),
                    string(NodePoolLabels::Key),
                    string(NodePoolLabels::Value),
                ],
            )
            .foreign_key(&mut fk(
                NodePoolLabels::Table,
                NodePoolLabels::NodePoolId,
                NodePools::Table,
                ForeignKeyAction::Cascade,
            ))
            .take(),
            vec![unique(
                NodePoolLabels::Table,
                [NodePoolLabels::NodePoolId, NodePoolLabels::Key],
            )],
        )
        .await?;

        create_table(
            manager,
            org_table(
                NodePoolAnnotations::Table,
                [
                    uuid(NodePoolAnnotations::NodePoolId),
                    string(NodePoolAnnotations::Key),
                    // Annotation values can be long (JSON blobs, certificates).
                    text(NodePoolAnnotations::Value),
                ],
            )
            .foreign_key(&mut fk(
                NodePoolAnnotations::Table,
                NodePoolAnnotations::NodePoolId,
                NodePools::Table,
                ForeignKeyAction::Cascade,
            ))
            .take(),
            vec![unique(
                NodePoolAnnotations::Table,
                [NodePoolAnnotations::NodePoolId, NodePoolAnnotations::Key],
            )],
        )
        .await?;

        create_table(
            manager,
            org_table(
                NodePoolTaints::Table,
                [
                    uuid(NodePoolTaints::NodePoolId),
                    string(NodePoolTaints::Key),
                    // May be empty: Kubernetes taints need not have a value.
                    string(NodePoolTaints::Value),
                    enum_string(NodePoolTaints::Effect),
                ],
            )
            .foreign_key(&mut fk(
                NodePoolTaints::Table,
                NodePoolTaints::NodePoolId,
                NodePools::Table,
                ForeignKeyAction::Cascade,
            ))
            .take(),
            // Kubernetes allows one taint per key and effect.
            vec![unique(
                NodePoolTaints::Table,
                [
                    NodePoolTaints::NodePoolId,
                    NodePoolTaints::Key,
                    NodePoolTaints::Effect,
                ],
            )],
        )
        .await?;

        create_table(
            manager,
            org_table(
                Servers::Table,
                [
                    uuid_null(Servers::ClusterId),
                    uuid_null(Servers::NodePoolId),
                    string(Servers::Hostname),
                    string_null(Servers::PublicIp),
                    string_null(Servers::PrivateIp),
                    enum_string(Servers::Role),
                    enum_string(Servers::Status),
                    string(Servers::SshUser),
                    integer(Servers::SshPort),
                    uuid_null(Servers::SshKeyId),
                    // Pinned SSH host key, checked on every connection.
                    text_null(Servers::HostKey),
                    text_null(Servers::StatusMessage),
                ],
            )
            // A cluster's servers go with it; deleting a node pool only detaches its servers.
            .foreign_key(&mut fk(
                Servers::Table,
                Servers::ClusterId,
                Clusters::Table,
                ForeignKeyAction::Cascade,
            ))
            .foreign_key(&mut fk(
                Servers::Table,
                Servers::NodePoolId,
                NodePools::Table,
                ForeignKeyAction::SetNull,
            ))
            // An SSH key in use cannot be deleted.
            .foreign_key(&mut fk(
                Servers::Table,
                Servers::SshKeyId,
                SshKeys::Table,
                ForeignKeyAction::Restrict,
            ))
            .take(),
            vec![
                unique(Servers::Table, [Servers::OrganizationId, Servers::Hostname]),
                index(Servers::Table, [Servers::ClusterId]),
                index(Servers::Table, [Servers::NodePoolId]),
            ],
        )
        .await?;
        // A cluster's bastion is its server with role 'bastion'; this index keeps it to at most
        // one. A clusters.bastion_server_id column instead would make clusters and servers
        // reference each other (a foreign key cycle that complicates inserts and deletes) and
        // could disagree with the servers' roles.
        create_partial_unique_index(
            manager,
            "CREATE UNIQUE INDEX ux_servers_one_bastion ON servers (cluster_id) \
             WHERE role = 'bastion'",
        )
        .await?;

        create_table(
            manager,
            org_table(
                LoadBalancers::Table,
                [
                    uuid_null(LoadBalancers::ClusterId),
                    string(LoadBalancers::Name),
                    enum_string(LoadBalancers::Kind),
                    enum_string(LoadBalancers::Purpose),
                    // JSON array of listeners.
                    json_binary(LoadBalancers::Listeners),
                    // JSON array of address strings.
                    json_binary(LoadBalancers::Addresses),
                ],
            )
            .foreign_key(&mut fk(
                LoadBalancers::Table,
                LoadBalancers::ClusterId,
                Clusters::Table,
                ForeignKeyAction::Cascade,
            ))
            .take(),
            vec![
                unique(
                    LoadBalancers::Table,
                    [LoadBalancers::OrganizationId, LoadBalancers::Name],
                ),
                index(LoadBalancers::Table, [LoadBalancers::ClusterId]),
            ],
        )
        .await?;

        create_table(
            manager,
            org_table(
                DnsRecords::Table,
                [
                    uuid(DnsRecords::DomainId),
                    uuid_null(DnsRecords::ClusterId),
                    enum_string(DnsRecords::Purpose),
                    // Relative to the zone, "@" for the apex.
                    string(DnsRecords::Name),
                    enum_string(DnsRecords::RecordType),
                    integer(DnsRecords::Ttl),
                    // JSON array of strings.
                    json_binary(DnsRecords::Values),
                    enum_string(DnsRecords::DesiredState),
                    enum_string(DnsRecords::ObservedState),
                    json_binary_null(DnsRecords::ObservedValues),
                    // Ownership marker: Autoglue never touches records it did not create.
                    string(DnsRecords::Owner),
                    at_null(DnsRecords::LastSyncedAt),
                    text_null(DnsRecords::LastError),
                ],
            )
            // Records are deleted with their zone and with the cluster they serve.
            .foreign_key(&mut fk(
                DnsRecords::Table,
                DnsRecords::DomainId,
                Domains::Table,
                ForeignKeyAction::Cascade,
            ))
            .foreign_key(&mut fk(
                DnsRecords::Table,
                DnsRecords::ClusterId,
                Clusters::Table,
                ForeignKeyAction::Cascade,
            ))
            .take(),
            vec![
                unique(
                    DnsRecords::Table,
                    [
                        DnsRecords::DomainId,
                        DnsRecords::Name,
                        DnsRecords::RecordType,
                    ],
                ),
                index(DnsRecords::Table, [DnsRecords::ClusterId]),
            ],
        )
        .await?;
        // A cluster's API name is its dns_records row with purpose 'control_plane'; this index
        // keeps it to at most one. As for the bastion, no clusters -> dns_records foreign key (a
        // cycle, since dns_records already references clusters).
        create_partial_unique_index(
            manager,
            "CREATE UNIQUE INDEX ux_dns_records_one_control_plane ON dns_records (cluster_id) \
             WHERE purpose = 'control_plane'",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Reverse order of creation; the partial indexes go with their tables.
        drop_tables(
            manager,
            vec![
                DnsRecords::Table.into_iden(),
                LoadBalancers::Table.into_iden(),
                Servers::Table.into_iden(),
                NodePoolTaints::Table.into_iden(),
                NodePoolAnnotations::Table.into_iden(),
                NodePoolLabels::Table.into_iden(),
                NodePools::Table.into_iden(),
                ClusterMetadata::Table.into_iden(),
                Clusters::Table.into_iden(),
                Domains::Table.into_iden(),
                SshKeys::Table.into_iden(),
                Credentials::Table.into_iden(),
            ],
        )
        .await
    }
}

#[derive(DeriveIden)]
enum Credentials {
    Table,
    OrganizationId,
    Name,
    Kind,
    ScopeKind,
    ScopeValue,
    Region,
    Description,
    SecretSealed,
}

#[derive(DeriveIden)]
enum SshKeys {
    Table,
    OrganizationId,
    Name,
    Algorithm,
    Bits,
    Comment,
    PublicKey,
    Fingerprint,
    PrivateKeySealed,
}

#[derive(DeriveIden)]
enum Domains {
    Table,
    OrganizationId,
    ZoneName,
    ProviderZoneId,
    CredentialId,
    Status,
    LastError,
    LastSyncedAt,
}

#[derive(DeriveIden)]
enum Clusters {
    Table,
    OrganizationId,
    Name,
    Status,
    K3sVersion,
    Region,
    DomainId,
    ApiEndpoint,
    KubeconfigSealed,
    StatusMessage,
}

#[derive(DeriveIden)]
enum ClusterMetadata {
    Table,
    ClusterId,
    Key,
    Value,
}

#[derive(DeriveIden)]
enum NodePools {
    Table,
    ClusterId,
    Name,
    Role,
    DesiredSize,
}

#[derive(DeriveIden)]
enum NodePoolLabels {
    Table,
    NodePoolId,
    Key,
    Value,
}

#[derive(DeriveIden)]
enum NodePoolAnnotations {
    Table,
    NodePoolId,
    Key,
    Value,
}

#[derive(DeriveIden)]
enum NodePoolTaints {
    Table,
    NodePoolId,
    Key,
    Value,
    Effect,
}

#[derive(DeriveIden)]
enum Servers {
    Table,
    OrganizationId,
    ClusterId,
    NodePoolId,
    Hostname,
    PublicIp,
    PrivateIp,
    Role,
    Status,
    SshUser,
    SshPort,
    SshKeyId,
    HostKey,
    StatusMessage,
}

#[derive(DeriveIden)]
enum LoadBalancers {
    Table,
    OrganizationId,
    ClusterId,
    Name,
    Kind,
    Purpose,
    Listeners,
    Addresses,
}

#[derive(DeriveIden)]
enum DnsRecords {
    Table,
    DomainId,
    ClusterId,
    Purpose,
    Name,
    RecordType,
    Ttl,
    Values,
    DesiredState,
    ObservedState,
    ObservedValues,
    Owner,
    LastSyncedAt,
    LastError,
}
