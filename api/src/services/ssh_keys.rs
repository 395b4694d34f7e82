//! SSH keys of an organization: generated or imported key pairs that servers log in with.
//!
//! Owns the `ssh_keys` rows and their rules: viewers and above read the public part, admins
//! and above generate, import, reveal and delete. The private key is sealed with the
//! organization's data key, bound to its row (`ssh_keys.private_key_sealed`), and leaves
//! the server only through [`reveal_private_key`], which is audited. Names and
//! fingerprints are unique per organization; a key that a server uses cannot be deleted.
//! Key material itself (generation, parsing, fingerprints) lives in [`keypair`].

pub mod keypair;

use std::collections::HashMap;

use anyhow::Context;
use entity::{enums::MemberRole, servers, ssh_keys};
use sea_orm::{
    ActiveModelBehavior, ActiveModelTrait, ColumnTrait, DbErr, EntityTrait, ModelTrait,
    PaginatorTrait, QueryFilter, QuerySelect, Select, Set, SqlErr,
    sea_query::{Expr, ExprTrait},
};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use uuid::Uuid;
use vault::{SealContext, Zeroizing};

use self::keypair::{KeyMaterial, KeySpec};
use crate::{
    Error, Result,
    error::OnForeignKeyViolation,
    services::audit::{self, Audit},
    services::pagination::{Page, PageRequest, fetch_page},
    state::AppState,
    viewer::Viewer,
};

/// Where the private key of row `id` is sealed.
fn seal_context(id: Uuid) -> SealContext<'static> {
    SealContext::new("ssh_keys", "private_key_sealed", id)
}

/// The keys `viewer` may see, as a query to refine.
fn visible(viewer: &Viewer) -> Select<ssh_keys::Entity> {
    ssh_keys::Entity::find().filter(viewer.visible_orgs(ssh_keys::Column::OrganizationId))
}

/// Name and comment of a new key, already validated.
#[derive(Debug, Clone)]
pub struct NewSshKey {
    pub name: String,
    pub comment: Option<String>,
}

/// Generates a key pair in `org` (admins and owners).
#[tracing::instrument(name = "generate SSH key", skip_all, fields(org = %org))]
pub async fn generate_ssh_key(
    state: &AppState,
    viewer: &Viewer,
    org: Uuid,
    new: NewSshKey,
    spec: KeySpec,
) -> Result<ssh_keys::Model> {
    viewer.require_role(org, MemberRole::Admin)?;
    state.quotas.take_creation(viewer)?;
    let comment = new.comment.clone();
    // RSA takes seconds: off the async workers, a bounded number at once.
    let material = state
        .quotas
        .generate(move || keypair::generate(spec, comment))
        .await??;
    store(state, viewer, org, new.name, material, "ssh_key.generate").await
}

/// Imports an unencrypted OpenSSH private key into `org` (admins and owners). A comment
/// given replaces the key's own.
#[tracing::instrument(name = "import SSH key", skip_all, fields(org = %org))]
pub async fn import_ssh_key(
    state: &AppState,
    viewer: &Viewer,
    org: Uuid,
    new: NewSshKey,
    private_key: SecretString,
) -> Result<ssh_keys::Model> {
    viewer.require_role(org, MemberRole::Admin)?;
    let comment = new.comment.clone();
    // Checking an RSA key is big-number arithmetic: off the async workers too.
    let material = tokio::task::spawn_blocking(move || {
        keypair::import(private_key.expose_secret(), comment, "input.privateKey")
    })
    .await
    .context("joining the key import")??;
    store(state, viewer, org, new.name, material, "ssh_key.import").await
}

/// Seals the private key to a new row, inserts it and audits `action`.
async fn store(
    state: &AppState,
    viewer: &Viewer,
    org: Uuid,
    name: String,
    material: KeyMaterial,
    action: &'static str,
) -> Result<ssh_keys::Model> {
    let key = state.keys.for_org(&state.db, org).await?;
    // `new()` picks the id, which the seal binds: read it before sealing.
    let mut row = ssh_keys::ActiveModel::new();
    let id = row.id.clone().unwrap();
    row.organization_id = Set(org);
    row.name = Set(name);
    row.algorithm = Set(material.algorithm);
    row.bits = Set(material.bits);
    row.comment = Set(material.comment);
    row.public_key = Set(material.public_key);
    row.fingerprint = Set(material.fingerprint);
    row.private_key_sealed = Set(key.seal(&seal_context(id), material.private_pem.as_bytes()));
    let row = row.insert(&state.db).await.map_err(duplicate)?;
    let entry = Audit::new(action)
        .org(org)
        .target("ssh_key", row.id)
        .details(json!({ "algorithm": row.algorithm, "fingerprint": row.fingerprint }));
    audit::record(&state.db, viewer, entry).await?;
    Ok(row)
}

/// Unique violations as conflicts on the field at fault: the fingerprint index names its
/// column on both backends (`ux_ssh_keys_organization_id_fingerprint` on PostgreSQL,
/// `ssh_keys.fingerprint` on SQLite); anything else unique is the name.
fn duplicate(e: DbErr) -> Error {
    match e.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(m)) if m.contains("fingerprint") => Error::conflict(
            "input.privateKey",
            "the organization already has this key (same fingerprint)",
        ),
        Some(SqlErr::UniqueConstraintViolation(_)) => Error::conflict(
            "input.name",
            "the organization already has an SSH key with this name",
        ),
        _ => e.into(),
    }
}

/// One key, if `viewer` may see it.
pub async fn find_ssh_key(
    state: &AppState,
    viewer: &Viewer,
    id: Uuid,
) -> Result<Option<ssh_keys::Model>> {
    Ok(visible(viewer)
        .filter(ssh_keys::Column::Id.eq(id))
        .one(&state.db)
        .await
        .context("loading an SSH key")?)
}

/// The keys of `org` (viewers and above), as a query.
fn of_org(viewer: &Viewer, org: Uuid) -> Result<Select<ssh_keys::Entity>> {
    viewer.require_role(org, MemberRole::Viewer)?;
    Ok(visible(viewer).filter(ssh_keys::Column::OrganizationId.eq(org)))
}

/// A page of the keys of `org`, oldest first.
pub async fn list_ssh_keys(
    state: &AppState,
    viewer: &Viewer,
    org: Uuid,
    page: &PageRequest,
) -> Result<Page<ssh_keys::Model>> {
    fetch_page(&state.db, of_org(viewer, org)?, ssh_keys::Column::Id, page).await
}

/// How many keys `org` has.
pub async fn count_ssh_keys(state: &AppState, viewer: &Viewer, org: Uuid) -> Result<u64> {
    Ok(of_org(viewer, org)?.count(&state.db).await?)
}

/// How many servers use each of `keys`, in one query (keys no server uses are absent).
pub async fn count_servers_using(
    state: &AppState,
    viewer: &Viewer,
    keys: &[Uuid],
) -> Result<HashMap<Uuid, u64>> {
    let rows: Vec<(Uuid, i64)> = servers::Entity::find()
        .select_only()
        .column(servers::Column::SshKeyId)
        .column_as(Expr::col(servers::Column::Id).count(), "servers")
        .filter(servers::Column::SshKeyId.is_in(keys.iter().copied()))
        .filter(viewer.visible_orgs(servers::Column::OrganizationId))
        .group_by(servers::Column::SshKeyId)
        .into_tuple()
        .all(&state.db)
        .await
        .context("counting the servers of SSH keys")?;
    Ok(rows.into_iter().map(|(k, n)| (k, n as u64)).collect())
}

/// Loads a key for a privileged action: `NOT_FOUND` if invisible, `FORBIDDEN` below admin.
async fn find_for_admin(state: &AppState, viewer: &Viewer, id: Uuid) -> Result<ssh_keys::Model> {
    let row = find_ssh_key(state, viewer, id)
        .await?
        .ok_or(Error::NotFound("SSH key"))?;
    viewer.require_role(row.organization_id, MemberRole::Admin)?;
    Ok(row)
}

/// The private key in OpenSSH PEM (admins and owners); every reveal is audited, and so is
/// every attempt a member below admin makes.
pub async fn reveal_private_key(
    state: &AppState,
    viewer: &Viewer,
    id: Uuid,
) -> Result<(ssh_keys::Model, Zeroizing<String>)> {
    let row = find_ssh_key(state, viewer, id)
        .await?
        .ok_or(Error::NotFound("SSH key"))?;
    let entry = || {
        Audit::new("ssh_key.reveal")
            .org(row.organization_id)
            .target("ssh_key", row.id)
    };
    let org = row.organization_id;
    audit::require_role(&state.db, viewer, org, MemberRole::Admin, entry()).await?;
    let key = state.keys.for_org(&state.db, row.organization_id).await?;
    let pem = key
        .open(&seal_context(row.id), &row.private_key_sealed)
        .map_err(|e| anyhow::anyhow!("opening the private key of SSH key {id}: {e}"))?;
    let pem = String::from_utf8(pem.to_vec()).context("a sealed SSH key is not UTF-8")?;
    audit::record(&state.db, viewer, entry()).await?;
    Ok((row, Zeroizing::new(pem)))
}

/// Deletes a key (admins and owners); refused with `CONFLICT` while a server uses it.
pub async fn delete_ssh_key(
    state: &AppState,
    viewer: &Viewer,
    id: Uuid,
) -> Result<ssh_keys::Model> {
    let row = find_for_admin(state, viewer, id).await?;
    let users = servers::Entity::find()
        .filter(servers::Column::SshKeyId.eq(id))
        .count(&state.db)
        .await
        .context("counting the servers of an SSH key")?;
    if users > 0 {
        return Err(in_use());
    }
    // A server may have taken the key since the count: the foreign key still refuses.
    row.clone()
        .delete(&state.db)
        .await
        .on_foreign_key_violation(in_use)?;
    let entry = Audit::new("ssh_key.delete")
        .org(row.organization_id)
        .target("ssh_key", row.id)
        .details(json!({ "name": row.name, "fingerprint": row.fingerprint }));
    audit::record(&state.db, viewer, entry).await?;
    Ok(row)
}

fn in_use() -> Error {
    Error::conflict(
        "input.id",
        "servers use this key; give them another key or delete them first",
    )
}
