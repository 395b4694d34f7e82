//! Machine credentials over GraphQL: user API keys and organization keys.

use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use entity::{api_keys, enums::MemberRole, organization_keys};
use secrecy::ExposeSecret;

use super::{
    relay::{GlobalId, NodeKind},
    state,
};
use crate::{
    Result,
    auth::secrets::org_key_name,
    services::api_keys::{self as service, parse_key_name},
    viewer::viewer,
};

/// A user API key. Its secret is shown once, when it is created.
#[derive(Clone)]
pub struct ApiKey(pub api_keys::Model);

#[Object]
impl ApiKey {
    /// Global ID.
    pub async fn id(&self) -> ID {
        GlobalId::encode(NodeKind::ApiKey, self.0.id)
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// The public part of the key (`agu_<prefix>_…`), to recognise it.
    async fn prefix(&self) -> String {
        format!("agu_{}", self.0.prefix)
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.0.expires_at
    }
    async fn last_used_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_used_at
    }
    async fn revoked_at(&self) -> Option<DateTime<Utc>> {
        self.0.revoked_at
    }
}

/// An organization key: acts as the organization with a fixed role.
#[derive(Clone)]
pub struct OrganizationKey(pub organization_keys::Model);

#[Object]
impl OrganizationKey {
    /// Global ID.
    pub async fn id(&self) -> ID {
        GlobalId::encode(NodeKind::OrganizationKey, self.0.id)
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// The key to send as `X-Org-Key` (public).
    async fn key(&self) -> String {
        org_key_name(&self.0.prefix)
    }
    /// The role the key acts with.
    async fn role(&self) -> MemberRole {
        self.0.role
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.0.expires_at
    }
    async fn last_used_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_used_at
    }
    async fn revoked_at(&self) -> Option<DateTime<Utc>> {
        self.0.revoked_at
    }
}

/// Input of `createApiKey`.
#[derive(InputObject)]
pub struct CreateApiKeyInput {
    pub name: String,
    /// When it stops working; never when omitted.
    pub expires_at: Option<DateTime<Utc>>,
}

/// Result of `createApiKey`.
#[derive(SimpleObject)]
pub struct CreateApiKeyPayload {
    pub api_key: ApiKey,
    /// The whole key, to send as `Authorization: Bearer …`. Shown this once only.
    pub secret: String,
}

/// Input of the revoke mutations.
#[derive(InputObject)]
pub struct RevokeInput {
    pub id: ID,
}

/// Result of `revokeApiKey`.
#[derive(SimpleObject)]
pub struct RevokeApiKeyPayload {
    pub api_key: ApiKey,
}

/// Input of `createOrganizationKey`.
#[derive(InputObject)]
pub struct CreateOrganizationKeyInput {
    /// The organization; defaults to the active one.
    pub organization_id: Option<ID>,
    pub name: String,
    /// The role the key acts with; at most yours.
    pub role: MemberRole,
    pub expires_at: Option<DateTime<Utc>>,
}

/// Result of `createOrganizationKey`.
#[derive(SimpleObject)]
pub struct CreateOrganizationKeyPayload {
    pub organization_key: OrganizationKey,
    /// Send as `X-Org-Secret` with `X-Org-Key`, or as `Authorization: Bearer <key>_<secret>`.
    /// Shown this once only.
    pub secret: String,
}

/// Result of `revokeOrganizationKey`.
#[derive(SimpleObject)]
pub struct RevokeOrganizationKeyPayload {
    pub organization_key: OrganizationKey,
}

#[derive(Default)]
pub struct ApiKeyMutation;

#[Object]
impl ApiKeyMutation {
    /// Creates an API key for yourself.
    async fn create_api_key(
        &self,
        ctx: &Context<'_>,
        input: CreateApiKeyInput,
    ) -> Result<CreateApiKeyPayload> {
        let name = parse_key_name(&input.name, "input.name")?;
        let (key, secret) =
            service::create_api_key(state(ctx), viewer(ctx), name, input.expires_at).await?;
        Ok(CreateApiKeyPayload {
            api_key: ApiKey(key),
            secret: secret.expose_secret().to_owned(),
        })
    }

    /// Revokes one of your API keys; it stops working at once.
    async fn revoke_api_key(
        &self,
        ctx: &Context<'_>,
        input: RevokeInput,
    ) -> Result<RevokeApiKeyPayload> {
        let id = GlobalId::expect(&input.id, NodeKind::ApiKey, "input.id")?;
        let key = service::revoke_api_key(state(ctx), viewer(ctx), id).await?;
        Ok(RevokeApiKeyPayload {
            api_key: ApiKey(key),
        })
    }

    /// Creates an organization key (admins and owners).
    async fn create_organization_key(
        &self,
        ctx: &Context<'_>,
        input: CreateOrganizationKeyInput,
    ) -> Result<CreateOrganizationKeyPayload> {
        let viewer = viewer(ctx);
        let org = input
            .organization_id
            .as_ref()
            .map(|id| GlobalId::expect(id, NodeKind::Organization, "input.organizationId"))
            .transpose()?;
        let org = viewer.pick_org(org, "input.organizationId")?;
        let name = parse_key_name(&input.name, "input.name")?;
        let (key, secret) =
            service::create_org_key(state(ctx), viewer, org, name, input.role, input.expires_at)
                .await?;
        Ok(CreateOrganizationKeyPayload {
            organization_key: OrganizationKey(key),
            secret: secret.expose_secret().to_owned(),
        })
    }

    /// Revokes an organization key (admins and owners).
    async fn revoke_organization_key(
        &self,
        ctx: &Context<'_>,
        input: RevokeInput,
    ) -> Result<RevokeOrganizationKeyPayload> {
        let id = GlobalId::expect(&input.id, NodeKind::OrganizationKey, "input.id")?;
        let key = service::revoke_org_key(state(ctx), viewer(ctx), id).await?;
        Ok(RevokeOrganizationKeyPayload {
            organization_key: OrganizationKey(key),
        })
    }
}
