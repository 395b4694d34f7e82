//! An organization's email domain is a claim until proved: `email_domain_status` is
//! `pending` (the claim) or `verified` (by a DNS TXT record with `email_domain_token`, or by
//! an instance admin), and only verified domains make verified sign-ins members.
//!
//! The unique index on `email_domain` let any organization block a domain's real owner by
//! claiming it first; now only verified claims are unique, so claims may pile up while one
//! proof wins. Claims made before this migration were never proved: they become pending,
//! each with a token of its own.

use crate::common::*;
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            string_len_null(Organizations::EmailDomainStatus, 32),
            string_len_null(Organizations::EmailDomainToken, 64),
            at_null(Organizations::EmailDomainVerifiedAt),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Organizations::Table)
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        let random = match manager.get_database_backend() {
            sea_orm::DatabaseBackend::Sqlite => "lower(hex(randomblob(16)))",
            _ => "md5(random()::text || id::text)",
        };
        manager
            .get_connection()
            .execute_unprepared(&format!(
                "UPDATE organizations SET email_domain_status = 'pending', \
                 email_domain_token = {random} WHERE email_domain IS NOT NULL"
            ))
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("ux_organizations_email_domain")
                    .table(Organizations::Table)
                    .to_owned(),
            )
            .await?;
        create_partial_unique_index(
            manager,
            "CREATE UNIQUE INDEX ux_organizations_verified_email_domain \
             ON organizations (email_domain) WHERE email_domain_status = 'verified'",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("ux_organizations_verified_email_domain")
                    .table(Organizations::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .get_connection()
            .execute_unprepared(
                "UPDATE organizations SET email_domain = NULL \
                 WHERE email_domain_status IS NULL OR email_domain_status <> 'verified'",
            )
            .await?;
        manager
            .create_index(unique(Organizations::Table, [Organizations::EmailDomain]))
            .await?;
        for column in [
            Organizations::EmailDomainStatus,
            Organizations::EmailDomainToken,
            Organizations::EmailDomainVerifiedAt,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Organizations::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Organizations {
    Table,
    EmailDomain,
    EmailDomainStatus,
    EmailDomainToken,
    EmailDomainVerifiedAt,
}
