//! Audit: the append-only trail of security-relevant actions.

use crate::common::*;
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        create_table(
            manager,
            append_only_table(
                AuditLog::Table,
                [
                    uuid_null(AuditLog::OrganizationId),
                    enum_string(AuditLog::ActorKind),
                    // No foreign key: the entry must survive its actor (user or key).
                    uuid_null(AuditLog::ActorId),
                    // Human-readable actor, kept for when the actor is gone.
                    string(AuditLog::ActorLabel),
                    string(AuditLog::Action),
                    string_null(AuditLog::TargetType),
                    uuid_null(AuditLog::TargetId),
                    enum_string(AuditLog::Outcome),
                    json_binary_null(AuditLog::Details),
                    string_null(AuditLog::Ip),
                    string_null(AuditLog::RequestId),
                ],
            )
            // The history outlives the organization: deleting it only unsets the reference.
            .foreign_key(&mut fk(
                AuditLog::Table,
                AuditLog::OrganizationId,
                Organizations::Table,
                ForeignKeyAction::SetNull,
            ))
            .take(),
            vec![index(
                AuditLog::Table,
                [AuditLog::OrganizationId, AuditLog::CreatedAt],
            )],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_tables(manager, vec![AuditLog::Table.into_iden()]).await
    }
}

#[derive(DeriveIden)]
enum Organizations {
    Table,
}

#[derive(DeriveIden)]
enum AuditLog {
    Table,
    OrganizationId,
    ActorKind,
    ActorId,
    ActorLabel,
    Action,
    TargetType,
    TargetId,
    Outcome,
    Details,
    Ip,
    RequestId,
    CreatedAt,
}
