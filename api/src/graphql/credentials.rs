//! Provider credentials in GraphQL: the `Credential` type, the `credentials` connection,
//! and the mutations that create, update (rotate), reveal and delete them.
//!
//! The secret goes in as one `JSON` value whose shape depends on the kind (documented on
//! `CreateCredentialInput.secret`) and comes out only through `revealCredential`.

use async_graphql::{Context, Enum, ID, InputObject, Json, MaybeUndefined, Object, SimpleObject};
use chrono::{DateTime, Utc};
use entity::{
    credentials,
    enums::{CredentialKind, CredentialScope},
};
use serde_json::Value;

use super::{
    relay::{ConnectionFields, GlobalId, IdConnection, NodeKind, PageArgs, connection},
    ssh_keys::pick_org,
    state,
};
use crate::{
    Result,
    services::{
        api_keys::parse_key_name,
        credentials::{self as service, CredentialChange, NewCredential},
    },
    viewer::viewer,
};

/// Who issued a credential, derived from its kind.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "crate::services::credentials::Provider")]
pub enum CredentialProvider {
    Aws,
    Cloudflare,
    Hetzner,
    Digitalocean,
    /// Not tied to a provider (basic auth, OAuth 2 clients).
    Generic,
}

/// A secret an organization's workflows use to reach a provider. Only `revealCredential`
/// returns the secret itself.
#[derive(Clone)]
pub struct Credential(pub credentials::Model);

#[Object]
impl Credential {
    /// Global ID.
    pub async fn id(&self) -> ID {
        GlobalId::encode(NodeKind::Credential, self.0.id)
    }
    /// Unique name in the organization.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// What the secret is, which decides its fields.
    async fn kind(&self) -> CredentialKind {
        self.0.kind
    }
    async fn provider(&self) -> CredentialProvider {
        service::provider(self.0.kind).into()
    }
    /// What it may be used for.
    async fn scope(&self) -> CredentialScope {
        self.0.scope_kind
    }
    /// The AWS service (`SERVICE` scope) or resource ARN (`RESOURCE` scope).
    async fn scope_value(&self) -> Option<&str> {
        self.0.scope_value.as_deref()
    }
    /// Provider region or location it is meant for.
    async fn region(&self) -> Option<&str> {
        self.0.region.as_deref()
    }
    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }
    /// The names of the secret's fields that are set (never their values).
    async fn secret_fields(&self, ctx: &Context<'_>) -> Result<Vec<String>> {
        service::secret_fields(state(ctx), &self.0).await
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// When it last changed (a rotation included).
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

#[derive(Default)]
pub struct CredentialQuery;

#[Object]
impl CredentialQuery {
    /// The credentials of an organization (the active one when omitted), oldest first,
    /// optionally of one kind.
    #[graphql(complexity = "(first.or(last).unwrap_or(20).max(0) as usize) * child_complexity + 1")]
    #[allow(clippy::too_many_arguments)]
    async fn credentials(
        &self,
        ctx: &Context<'_>,
        organization_id: Option<ID>,
        kind: Option<CredentialKind>,
        after: Option<String>,
        before: Option<String>,
        first: Option<i32>,
        last: Option<i32>,
    ) -> Result<IdConnection<Credential>> {
        let (state, viewer) = (state(ctx), viewer(ctx).clone());
        let org = pick_org(&viewer, organization_id.as_ref(), "organizationId")?;
        let page = PageArgs {
            after,
            before,
            first,
            last,
        }
        .parse(state.config.graphql.max_page_size)?;
        let items = service::list_credentials(state, &viewer, org, kind, &page).await?;
        let counting = state.clone();
        let fields = ConnectionFields::new(move || {
            let (state, viewer) = (counting.clone(), viewer.clone());
            async move { service::count_credentials(&state, &viewer, org, kind).await }
        });
        Ok(connection(items, fields, |c| c.id, Credential))
    }
}

/// Input of `createCredential`.
#[derive(InputObject)]
pub struct CreateCredentialInput {
    /// The organization; defaults to the active one.
    pub organization_id: Option<ID>,
    /// Unique in the organization, 1 to 100 characters.
    pub name: String,
    pub kind: CredentialKind,
    /// `ACCOUNT` (the default) for every kind; AWS keys may be limited to a `SERVICE` or a
    /// `RESOURCE`.
    pub scope: Option<CredentialScope>,
    /// For `SERVICE`: the AWS service (`route53`, `s3`, `ec2`, …). For `RESOURCE`: its ARN
    /// (`arn:aws:route53:::hostedzone/Z123`).
    pub scope_value: Option<String>,
    /// AWS region (`eu-west-1`) or provider location (`fsn1`).
    pub region: Option<String>,
    pub description: Option<String>,
    /// The secret, an object whose fields depend on `kind` (`?` marks optional ones):
    /// - `AWS_ACCESS_KEY`: `{accessKeyId, secretAccessKey, sessionToken?, region?}`;
    ///   `accessKeyId` is `AKIA`/`ASIA` and 16 uppercase letters or digits, `secretAccessKey`
    ///   40 characters; `ASIA` (temporary) keys need `sessionToken`.
    /// - `CLOUDFLARE_API_TOKEN`, `HETZNER_API_TOKEN`, `DIGITALOCEAN_API_TOKEN`: `{token}`.
    /// - `BASIC_AUTH`: `{username, password}`.
    /// - `OAUTH2_CLIENT`: `{clientId, clientSecret, tokenUrl, scopes?}`; `tokenUrl` is an
    ///   `https://` URL, `scopes` a list of strings.
    pub secret: Json<Value>,
}

/// Result of `createCredential`.
#[derive(SimpleObject)]
pub struct CreateCredentialPayload {
    pub credential: Credential,
}

/// Input of `updateCredential`: omitted fields stay; `null` or `""` clears the optional
/// ones.
#[derive(InputObject)]
pub struct UpdateCredentialInput {
    pub id: ID,
    pub name: Option<String>,
    pub description: MaybeUndefined<String>,
    pub region: MaybeUndefined<String>,
    /// A whole new secret of the credential's kind (see `CreateCredentialInput.secret`):
    /// rotation replaces every field.
    pub secret: Option<Json<Value>>,
}

/// Result of `updateCredential`.
#[derive(SimpleObject)]
pub struct UpdateCredentialPayload {
    pub credential: Credential,
}

/// Input of `revealCredential`.
#[derive(InputObject)]
pub struct RevealCredentialInput {
    pub id: ID,
}

/// Result of `revealCredential`.
#[derive(SimpleObject)]
pub struct RevealCredentialPayload {
    pub credential: Credential,
    /// The secret, in the shape it was written.
    pub secret: Json<Value>,
}

/// Input of `deleteCredential`.
#[derive(InputObject)]
pub struct DeleteCredentialInput {
    pub id: ID,
}

/// Result of `deleteCredential`.
#[derive(SimpleObject)]
pub struct DeleteCredentialPayload {
    /// The credential as it was.
    pub credential: Credential,
}

/// Trimmed text, none when empty.
fn text(raw: Option<String>) -> Option<String> {
    raw.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty())
}

fn change_of(value: MaybeUndefined<String>) -> Option<Option<String>> {
    match value {
        MaybeUndefined::Undefined => None,
        MaybeUndefined::Null => Some(None),
        MaybeUndefined::Value(v) => Some(text(Some(v))),
    }
}

#[derive(Default)]
pub struct CredentialMutation;

#[Object]
impl CredentialMutation {
    /// Stores a credential (admins and owners).
    async fn create_credential(
        &self,
        ctx: &Context<'_>,
        input: CreateCredentialInput,
    ) -> Result<CreateCredentialPayload> {
        let viewer = viewer(ctx);
        let org = pick_org(
            viewer,
            input.organization_id.as_ref(),
            "input.organizationId",
        )?;
        let new = NewCredential {
            name: parse_key_name(&input.name, "input.name")?,
            kind: input.kind,
            scope: input.scope,
            scope_value: input.scope_value,
            region: input.region,
            description: text(input.description),
            secret: input.secret.0,
        };
        let credential = service::create_credential(state(ctx), viewer, org, new).await?;
        Ok(CreateCredentialPayload {
            credential: Credential(credential),
        })
    }

    /// Renames, describes or rotates a credential (admins and owners).
    async fn update_credential(
        &self,
        ctx: &Context<'_>,
        input: UpdateCredentialInput,
    ) -> Result<UpdateCredentialPayload> {
        let id = GlobalId::expect(&input.id, NodeKind::Credential, "input.id")?;
        let change = CredentialChange {
            name: input
                .name
                .map(|n| parse_key_name(&n, "input.name"))
                .transpose()?,
            description: change_of(input.description),
            region: change_of(input.region),
            secret: input.secret.map(|s| s.0),
        };
        let credential = service::update_credential(state(ctx), viewer(ctx), id, change).await?;
        Ok(UpdateCredentialPayload {
            credential: Credential(credential),
        })
    }

    /// Returns the secret (admins and owners). Written to the audit log.
    async fn reveal_credential(
        &self,
        ctx: &Context<'_>,
        input: RevealCredentialInput,
    ) -> Result<RevealCredentialPayload> {
        let id = GlobalId::expect(&input.id, NodeKind::Credential, "input.id")?;
        let (credential, secret) = service::reveal_credential(state(ctx), viewer(ctx), id).await?;
        Ok(RevealCredentialPayload {
            credential: Credential(credential),
            secret: Json(secret),
        })
    }

    /// Deletes a credential no domain uses (admins and owners).
    async fn delete_credential(
        &self,
        ctx: &Context<'_>,
        input: DeleteCredentialInput,
    ) -> Result<DeleteCredentialPayload> {
        let id = GlobalId::expect(&input.id, NodeKind::Credential, "input.id")?;
        let credential = service::delete_credential(state(ctx), viewer(ctx), id).await?;
        Ok(DeleteCredentialPayload {
            credential: Credential(credential),
        })
    }
}
