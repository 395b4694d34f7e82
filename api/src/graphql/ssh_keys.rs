//! SSH keys in GraphQL: the `SshKey` type, the `sshKeys` connection, and the mutations that
//! generate, import, reveal and delete keys. The private key is never a field of `SshKey`:
//! only `revealSshPrivateKey` returns it.

use std::collections::HashMap;

use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use entity::{enums::SshKeyAlgorithm, ssh_keys};
use secrecy::SecretString;
use uuid::Uuid;

use super::{
    relay::{ConnectionFields, GlobalId, IdConnection, NodeKind, PageArgs, connection},
    state,
};
use crate::{
    Result,
    services::{
        api_keys::parse_key_name,
        ssh_keys::{
            self as service, NewSshKey,
            keypair::{KeySpec, parse_comment},
        },
    },
    viewer::{Viewer, viewer},
};

/// An SSH key pair of an organization. Servers log in with it; its private key is sealed
/// and only `revealSshPrivateKey` returns it.
#[derive(Clone)]
pub struct SshKey {
    row: ssh_keys::Model,
    /// Counted with the rest of the page, when the page was asked for it.
    server_count: Option<u64>,
}

impl SshKey {
    pub fn new(row: ssh_keys::Model) -> Self {
        SshKey {
            row,
            server_count: None,
        }
    }
}

#[Object]
impl SshKey {
    /// Global ID.
    pub async fn id(&self) -> ID {
        GlobalId::encode(NodeKind::SshKey, self.row.id)
    }
    /// Unique name in the organization.
    async fn name(&self) -> &str {
        &self.row.name
    }
    async fn algorithm(&self) -> SshKeyAlgorithm {
        self.row.algorithm
    }
    /// Size in bits (RSA only).
    async fn bits(&self) -> Option<i32> {
        self.row.bits
    }
    /// The comment at the end of the public key.
    async fn comment(&self) -> Option<&str> {
        self.row.comment.as_deref()
    }
    /// The public key in OpenSSH format, ready for `authorized_keys`.
    async fn public_key(&self) -> &str {
        &self.row.public_key
    }
    /// `SHA256:…` fingerprint, as `ssh-keygen -l` prints it; unique in the organization.
    async fn fingerprint(&self) -> &str {
        &self.row.fingerprint
    }
    /// How many servers log in with this key (a key in use cannot be deleted).
    async fn server_count(&self, ctx: &Context<'_>) -> Result<u64> {
        if let Some(n) = self.server_count {
            return Ok(n);
        }
        let counts = service::count_servers_using(state(ctx), viewer(ctx), &[self.row.id]).await?;
        Ok(counts.get(&self.row.id).copied().unwrap_or(0))
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.row.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.row.updated_at
    }
}

#[derive(Default)]
pub struct SshKeyQuery;

#[Object]
impl SshKeyQuery {
    /// The SSH keys of an organization (the active one when omitted), oldest first.
    #[graphql(complexity = "(first.or(last).unwrap_or(20).max(0) as usize) * child_complexity + 1")]
    async fn ssh_keys(
        &self,
        ctx: &Context<'_>,
        organization_id: Option<ID>,
        after: Option<String>,
        before: Option<String>,
        first: Option<i32>,
        last: Option<i32>,
    ) -> Result<IdConnection<SshKey>> {
        let (state, viewer) = (state(ctx), viewer(ctx).clone());
        let org = pick_org(&viewer, organization_id.as_ref(), "organizationId")?;
        let page = PageArgs {
            after,
            before,
            first,
            last,
        }
        .parse(state.config.graphql.max_page_size)?;
        let items = service::list_ssh_keys(state, &viewer, org, &page).await?;
        // One query for the whole page, and only when asked for.
        let look = ctx.look_ahead().field("edges").field("node");
        let counts = if look.field("serverCount").exists() {
            let ids: Vec<Uuid> = items.items.iter().map(|k| k.id).collect();
            Some(service::count_servers_using(state, &viewer, &ids).await?)
        } else {
            None
        };
        let counting = state.clone();
        let fields = ConnectionFields::new(move || {
            let (state, viewer) = (counting.clone(), viewer.clone());
            async move { service::count_ssh_keys(&state, &viewer, org).await }
        });
        Ok(connection(
            items,
            fields,
            |k| k.id,
            |row| with_count(row, &counts),
        ))
    }
}

fn with_count(row: ssh_keys::Model, counts: &Option<HashMap<Uuid, u64>>) -> SshKey {
    let server_count = counts
        .as_ref()
        .map(|c| c.get(&row.id).copied().unwrap_or(0));
    SshKey { row, server_count }
}

/// The organization named by `raw`, else the active one.
pub(super) fn pick_org(viewer: &Viewer, raw: Option<&ID>, field: &str) -> Result<Uuid> {
    let org = raw
        .map(|id| GlobalId::expect(id, NodeKind::Organization, field))
        .transpose()?;
    viewer.pick_org(org, field)
}

/// Input of `generateSshKey`.
#[derive(InputObject)]
pub struct GenerateSshKeyInput {
    /// The organization; defaults to the active one.
    pub organization_id: Option<ID>,
    /// Unique in the organization, 1 to 100 characters.
    pub name: String,
    #[graphql(default_with = "SshKeyAlgorithm::Ed25519")]
    pub algorithm: SshKeyAlgorithm,
    /// RSA only: 2048, 3072 or 4096 (the default).
    pub bits: Option<i32>,
    /// Comment at the end of the public key, such as `deploy@example.com`.
    pub comment: Option<String>,
}

/// Result of `generateSshKey`.
#[derive(SimpleObject)]
pub struct GenerateSshKeyPayload {
    pub ssh_key: SshKey,
}

/// Input of `importSshKey`.
#[derive(InputObject)]
pub struct ImportSshKeyInput {
    /// The organization; defaults to the active one.
    pub organization_id: Option<ID>,
    /// Unique in the organization, 1 to 100 characters.
    pub name: String,
    /// An unencrypted OpenSSH private key (`-----BEGIN OPENSSH PRIVATE KEY-----`), Ed25519
    /// or RSA of 2048 bits or more.
    pub private_key: String,
    /// Replaces the key's own comment.
    pub comment: Option<String>,
}

/// Result of `importSshKey`.
#[derive(SimpleObject)]
pub struct ImportSshKeyPayload {
    pub ssh_key: SshKey,
}

/// Input of `revealSshPrivateKey`.
#[derive(InputObject)]
pub struct RevealSshPrivateKeyInput {
    pub id: ID,
}

/// Result of `revealSshPrivateKey`.
#[derive(SimpleObject)]
pub struct RevealSshPrivateKeyPayload {
    pub ssh_key: SshKey,
    /// The private key in OpenSSH PEM, unencrypted.
    pub private_key: String,
}

/// Input of `deleteSshKey`.
#[derive(InputObject)]
pub struct DeleteSshKeyInput {
    pub id: ID,
}

/// Result of `deleteSshKey`.
#[derive(SimpleObject)]
pub struct DeleteSshKeyPayload {
    /// The key as it was.
    pub ssh_key: SshKey,
}

fn new_key(name: &str, comment: Option<&str>) -> Result<NewSshKey> {
    Ok(NewSshKey {
        name: parse_key_name(name, "input.name")?,
        comment: comment
            .map(|c| parse_comment(c, "input.comment"))
            .transpose()?
            .flatten(),
    })
}

#[derive(Default)]
pub struct SshKeyMutation;

#[Object]
impl SshKeyMutation {
    /// Generates an SSH key pair (admins and owners). RSA 4096 takes a few seconds.
    async fn generate_ssh_key(
        &self,
        ctx: &Context<'_>,
        input: GenerateSshKeyInput,
    ) -> Result<GenerateSshKeyPayload> {
        let viewer = viewer(ctx);
        let org = pick_org(
            viewer,
            input.organization_id.as_ref(),
            "input.organizationId",
        )?;
        let new = new_key(&input.name, input.comment.as_deref())?;
        let spec = KeySpec::parse(input.algorithm, input.bits, "input.bits")?;
        let key = service::generate_ssh_key(state(ctx), viewer, org, new, spec).await?;
        Ok(GenerateSshKeyPayload {
            ssh_key: SshKey::new(key),
        })
    }

    /// Imports an existing private key (admins and owners).
    async fn import_ssh_key(
        &self,
        ctx: &Context<'_>,
        input: ImportSshKeyInput,
    ) -> Result<ImportSshKeyPayload> {
        let viewer = viewer(ctx);
        let org = pick_org(
            viewer,
            input.organization_id.as_ref(),
            "input.organizationId",
        )?;
        let new = new_key(&input.name, input.comment.as_deref())?;
        let pem = SecretString::from(input.private_key);
        let key = service::import_ssh_key(state(ctx), viewer, org, new, pem).await?;
        Ok(ImportSshKeyPayload {
            ssh_key: SshKey::new(key),
        })
    }

    /// Returns the private key (admins and owners). Written to the audit log.
    async fn reveal_ssh_private_key(
        &self,
        ctx: &Context<'_>,
        input: RevealSshPrivateKeyInput,
    ) -> Result<RevealSshPrivateKeyPayload> {
        let id = GlobalId::expect(&input.id, NodeKind::SshKey, "input.id")?;
        let (key, pem) = service::reveal_private_key(state(ctx), viewer(ctx), id).await?;
        Ok(RevealSshPrivateKeyPayload {
            ssh_key: SshKey::new(key),
            private_key: pem.to_string(),
        })
    }

    /// Deletes a key no server uses (admins and owners).
    async fn delete_ssh_key(
        &self,
        ctx: &Context<'_>,
        input: DeleteSshKeyInput,
    ) -> Result<DeleteSshKeyPayload> {
        let id = GlobalId::expect(&input.id, NodeKind::SshKey, "input.id")?;
        let key = service::delete_ssh_key(state(ctx), viewer(ctx), id).await?;
        Ok(DeleteSshKeyPayload {
            ssh_key: SshKey::new(key),
        })
    }
}
