//! Identity: users with their emails and OIDC identities, organizations with their memberships
//! and keys, the organization data keys that seal secrets, and the token signing and refresh
//! tables.

use crate::common::*;
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        create_table(
            manager,
            table(
                Users::Table,
                [
                    string(Users::Username),
                    string_null(Users::Email),
                    string_null(Users::DisplayName),
                    string_null(Users::AvatarUrl),
                    // NULL for users that only sign in through OIDC.
                    string_null(Users::PasswordHash),
                    boolean(Users::IsAdmin).default(false).take(),
                    boolean(Users::Disabled).default(false).take(),
                    at_null(Users::LastLoginAt),
                ],
            ),
            vec![
                unique(Users::Table, [Users::Username]),
                // Many NULLs allowed: unique indexes treat NULLs as distinct on both backends.
                unique(Users::Table, [Users::Email]),
            ],
        )
        .await?;

        // The rows of a user go with the user (CASCADE).
        create_table(
            manager,
            table(
                UserEmails::Table,
                [
                    uuid(UserEmails::UserId),
                    string(UserEmails::Email),
                    boolean(UserEmails::Verified),
                    boolean(UserEmails::IsPrimary),
                ],
            )
            .foreign_key(&mut fk(
                UserEmails::Table,
                UserEmails::UserId,
                Users::Table,
                ForeignKeyAction::Cascade,
            ))
            .take(),
            vec![
                unique(UserEmails::Table, [UserEmails::Email]),
                index(UserEmails::Table, [UserEmails::UserId]),
            ],
        )
        .await?;

        create_table(
            manager,
            table(
                UserIdentities::Table,
                [
                    uuid(UserIdentities::UserId),
                    string(UserIdentities::Issuer),
                    string(UserIdentities::Subject),
                    string_null(UserIdentities::Email),
                    at_null(UserIdentities::LastLoginAt),
                ],
            )
            .foreign_key(&mut fk(
                UserIdentities::Table,
                UserIdentities::UserId,
                Users::Table,
                ForeignKeyAction::Cascade,
            ))
            .take(),
            vec![
                unique(
                    UserIdentities::Table,
                    [UserIdentities::Issuer, UserIdentities::Subject],
                ),
                index(UserIdentities::Table, [UserIdentities::UserId]),
            ],
        )
        .await?;

        create_table(
            manager,
            table(
                Organizations::Table,
                [
                    string(Organizations::Name),
                    text_null(Organizations::Description),
                    // A claimed email domain belongs to one organization.
                    string_null(Organizations::EmailDomain),
                ],
            ),
            vec![
                unique(Organizations::Table, [Organizations::Name]),
                unique(Organizations::Table, [Organizations::EmailDomain]),
            ],
        )
        .await?;

        create_table(
            manager,
            org_table(
                Memberships::Table,
                [uuid(Memberships::UserId), enum_string(Memberships::Role)],
            )
            .foreign_key(&mut fk(
                Memberships::Table,
                Memberships::UserId,
                Users::Table,
                ForeignKeyAction::Cascade,
            ))
            .take(),
            vec![
                unique(
                    Memberships::Table,
                    [Memberships::OrganizationId, Memberships::UserId],
                ),
                // "Organizations of a user" (the unique index above serves the other direction).
                index(Memberships::Table, [Memberships::UserId]),
            ],
        )
        .await?;

        create_table(
            manager,
            table(
                ApiKeys::Table,
                [
                    uuid(ApiKeys::UserId),
                    string(ApiKeys::Name),
                    // Public prefix that finds the row; only a hash of the secret is kept.
                    string(ApiKeys::Prefix),
                    string(ApiKeys::SecretHash),
                    at_null(ApiKeys::ExpiresAt),
                    at_null(ApiKeys::LastUsedAt),
                    at_null(ApiKeys::RevokedAt),
                ],
            )
            .foreign_key(&mut fk(
                ApiKeys::Table,
                ApiKeys::UserId,
                Users::Table,
                ForeignKeyAction::Cascade,
            ))
            .take(),
            vec![
                unique(ApiKeys::Table, [ApiKeys::Prefix]),
                unique(ApiKeys::Table, [ApiKeys::UserId, ApiKeys::Name]),
            ],
        )
        .await?;

        create_table(
            manager,
            org_table(
                OrganizationKeys::Table,
                [
                    string(OrganizationKeys::Name),
                    enum_string(OrganizationKeys::Role),
                    string(OrganizationKeys::Prefix),
                    string(OrganizationKeys::SecretHash),
                    at_null(OrganizationKeys::ExpiresAt),
                    at_null(OrganizationKeys::LastUsedAt),
                    at_null(OrganizationKeys::RevokedAt),
                    uuid_null(OrganizationKeys::CreatedByUserId),
                ],
            )
            // The key belongs to the organization, not to its creator: it outlives the user.
            .foreign_key(&mut fk(
                OrganizationKeys::Table,
                OrganizationKeys::CreatedByUserId,
                Users::Table,
                ForeignKeyAction::SetNull,
            ))
            .take(),
            vec![
                unique(OrganizationKeys::Table, [OrganizationKeys::Prefix]),
                unique(
                    OrganizationKeys::Table,
                    [OrganizationKeys::OrganizationId, OrganizationKeys::Name],
                ),
            ],
        )
        .await?;

        create_table(
            manager,
            org_table(
                OrganizationDataKeys::Table,
                [
                    integer(OrganizationDataKeys::Version),
                    // The data key encrypted with the master key identified by master_key_id.
                    sealed(OrganizationDataKeys::WrappedKey),
                    string(OrganizationDataKeys::MasterKeyId),
                ],
            ),
            vec![unique(
                OrganizationDataKeys::Table,
                [
                    OrganizationDataKeys::OrganizationId,
                    OrganizationDataKeys::Version,
                ],
            )],
        )
        .await?;

        // Instance-wide, no organization.
        create_table(
            manager,
            table(
                SigningKeys::Table,
                [
                    string(SigningKeys::Kid),
                    enum_string(SigningKeys::Algorithm),
                    text(SigningKeys::PublicKey),
                    sealed(SigningKeys::PrivateKeySealed),
                    // Stops signing at retired_at, leaves the JWKS at expires_at.
                    at_null(SigningKeys::RetiredAt),
                    at_null(SigningKeys::ExpiresAt),
                ],
            ),
            vec![unique(SigningKeys::Table, [SigningKeys::Kid])],
        )
        .await?;

        // No updated_at: a token only ever gets used_at / revoked_at set.
        create_table(
            manager,
            append_only_table(
                RefreshTokens::Table,
                [
                    uuid(RefreshTokens::UserId),
                    uuid(RefreshTokens::FamilyId),
                    string(RefreshTokens::TokenHash),
                    at(RefreshTokens::ExpiresAt),
                    at_null(RefreshTokens::UsedAt),
                    at_null(RefreshTokens::RevokedAt),
                    // No foreign key: expired tokens are pruned in any order.
                    uuid_null(RefreshTokens::ReplacedById),
                    text_null(RefreshTokens::UserAgent),
                    string_null(RefreshTokens::Ip),
                ],
            )
            .foreign_key(&mut fk(
                RefreshTokens::Table,
                RefreshTokens::UserId,
                Users::Table,
                ForeignKeyAction::Cascade,
            ))
            .take(),
            vec![
                unique(RefreshTokens::Table, [RefreshTokens::TokenHash]),
                // Revoking a whole family on reuse.
                index(RefreshTokens::Table, [RefreshTokens::FamilyId]),
                // Pruning expired tokens.
                index(RefreshTokens::Table, [RefreshTokens::ExpiresAt]),
                index(RefreshTokens::Table, [RefreshTokens::UserId]),
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_tables(
            manager,
            vec![
                RefreshTokens::Table.into_iden(),
                SigningKeys::Table.into_iden(),
                OrganizationDataKeys::Table.into_iden(),
                OrganizationKeys::Table.into_iden(),
                ApiKeys::Table.into_iden(),
                Memberships::Table.into_iden(),
                Organizations::Table.into_iden(),
                UserIdentities::Table.into_iden(),
                UserEmails::Table.into_iden(),
                Users::Table.into_iden(),
            ],
        )
        .await
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Username,
    Email,
    DisplayName,
    AvatarUrl,
    PasswordHash,
    IsAdmin,
    Disabled,
    LastLoginAt,
}

#[derive(DeriveIden)]
enum UserEmails {
    Table,
    UserId,
    Email,
    Verified,
    IsPrimary,
}

#[derive(DeriveIden)]
enum UserIdentities {
    Table,
    UserId,
    Issuer,
    Subject,
    Email,
    LastLoginAt,
}

#[derive(DeriveIden)]
enum Organizations {
    Table,
    Name,
    Description,
    EmailDomain,
}

#[derive(DeriveIden)]
enum Memberships {
    Table,
    OrganizationId,
    UserId,
    Role,
}

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    UserId,
    Name,
    Prefix,
    SecretHash,
    ExpiresAt,
    LastUsedAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum OrganizationKeys {
    Table,
    OrganizationId,
    Name,
    Role,
    Prefix,
    SecretHash,
    ExpiresAt,
    LastUsedAt,
    RevokedAt,
    CreatedByUserId,
}

#[derive(DeriveIden)]
enum OrganizationDataKeys {
    Table,
    OrganizationId,
    Version,
    WrappedKey,
    MasterKeyId,
}

#[derive(DeriveIden)]
enum SigningKeys {
    Table,
    Kid,
    Algorithm,
    PublicKey,
    PrivateKeySealed,
    RetiredAt,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum RefreshTokens {
    Table,
    UserId,
    FamilyId,
    TokenHash,
    ExpiresAt,
    UsedAt,
    RevokedAt,
    ReplacedById,
    UserAgent,
    Ip,
}
