//! User API keys and organization keys: random secrets shown once, stored as argon2id
//! hashes behind a public prefix, with optional expiry and revocation.

use anyhow::Context;
use chrono::{DateTime, Utc};
use entity::{api_keys, enums::MemberRole, organization_keys};
use sea_orm::{
    ActiveModelBehavior, ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set,
};
use secrecy::SecretString;
use uuid::Uuid;

use crate::{
    Error, Result,
    auth::{passwords, secrets},
    error::OnUniqueViolation,
    services::audit::{self, Audit},
    state::AppState,
    viewer::{UserViewer, Viewer},
};

/// A key name: 1 to 100 characters after trimming.
pub fn parse_key_name(raw: &str, field: &str) -> Result<String> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(Error::bad_input(field, "name must be 1 to 100 characters"));
    }
    Ok(name.to_owned())
}

fn check_expiry(expires_at: Option<DateTime<Utc>>) -> Result<()> {
    match expires_at {
        Some(t) if t <= Utc::now() => Err(Error::bad_input(
            "input.expiresAt",
            "expiry must be in the future",
        )),
        _ => Ok(()),
    }
}

/// Keys are made by a signed-in user, never by another key: a key minted with a leaked key
/// would outlive the leaked one's revocation.
fn refuse_keys_minting_keys(me: &UserViewer) -> Result<()> {
    if me.api_key_id.is_some() {
        return Err(Error::Forbidden(
            "keys are created signed in, not with another key".into(),
        ));
    }
    Ok(())
}

/// Creates a user API key for the caller; the secret is returned once and never again.
pub async fn create_api_key(
    state: &AppState,
    viewer: &Viewer,
    name: String,
    expires_at: Option<DateTime<Utc>>,
) -> Result<(api_keys::Model, SecretString)> {
    let me = viewer.require_user()?;
    refuse_keys_minting_keys(me)?;
    check_expiry(expires_at)?;
    state.quotas.take_creation(viewer)?;
    let key = secrets::new_key(secrets::KeyKind::User);
    let mut row = api_keys::ActiveModel::new();
    row.user_id = Set(me.id);
    row.name = Set(name);
    row.prefix = Set(key.prefix.clone());
    row.secret_hash = Set(passwords::hash(key.secret.clone()).await?);
    row.expires_at = Set(expires_at);
    let row = row
        .insert(&state.db)
        .await
        .on_unique_violation("input.name", "you already have an API key with this name")?;
    audit::record(
        &state.db,
        viewer,
        Audit::new("api_key.create").target("api_key", row.id),
    )
    .await?;
    Ok((row, key.secret))
}

/// The caller's API keys, newest first.
pub async fn list_api_keys(state: &AppState, viewer: &Viewer) -> Result<Vec<api_keys::Model>> {
    let me = viewer.require_user()?;
    Ok(api_keys::Entity::find()
        .filter(api_keys::Column::UserId.eq(me.id))
        .order_by_desc(api_keys::Column::Id)
        .all(&state.db)
        .await
        .context("listing API keys")?)
}

/// Revokes one of the caller's API keys; it stops working at once.
pub async fn revoke_api_key(
    state: &AppState,
    viewer: &Viewer,
    id: Uuid,
) -> Result<api_keys::Model> {
    let me = viewer.require_user()?;
    let row = api_keys::Entity::find_by_id(id)
        .filter(api_keys::Column::UserId.eq(me.id))
        .one(&state.db)
        .await
        .context("loading an API key")?
        .ok_or(Error::NotFound("API key"))?;
    let mut model: api_keys::ActiveModel = row.into();
    model.revoked_at = Set(Some(Utc::now()));
    let row = model.update(&state.db).await?;
    audit::record(
        &state.db,
        viewer,
        Audit::new("api_key.revoke").target("api_key", id),
    )
    .await?;
    Ok(row)
}

/// Creates an organization key acting with `role` (admins and owners; never above the
/// caller's own role). Returns the row and the secret, shown once. Only users create keys:
/// a key minted by an organization key would outlive that key's revocation.
pub async fn create_org_key(
    state: &AppState,
    viewer: &Viewer,
    org: Uuid,
    name: String,
    role: MemberRole,
    expires_at: Option<DateTime<Utc>>,
) -> Result<(organization_keys::Model, SecretString)> {
    let mine = viewer.require_role(org, MemberRole::Admin)?;
    let Viewer::User(me) = viewer else {
        return Err(Error::Forbidden(
            "only a user may create organization keys, not another key".into(),
        ));
    };
    refuse_keys_minting_keys(me)?;
    if !mine.at_least(role) {
        return Err(Error::Forbidden(
            "a key cannot have a higher role than yours".into(),
        ));
    }
    check_expiry(expires_at)?;
    state.quotas.take_creation(viewer)?;
    let key = secrets::new_key(secrets::KeyKind::Organization);
    let mut row = organization_keys::ActiveModel::new();
    row.organization_id = Set(org);
    row.name = Set(name);
    row.role = Set(role);
    row.prefix = Set(key.prefix.clone());
    row.secret_hash = Set(passwords::hash(key.secret.clone()).await?);
    row.expires_at = Set(expires_at);
    row.created_by_user_id = Set(Some(me.id));
    let row = row.insert(&state.db).await.on_unique_violation(
        "input.name",
        "the organization already has a key with this name",
    )?;
    audit::record(
        &state.db,
        viewer,
        Audit::new("organization_key.create")
            .org(org)
            .target("organization_key", row.id),
    )
    .await?;
    Ok((row, key.secret))
}

/// The keys of an organization (admins and owners).
pub async fn list_org_keys(
    state: &AppState,
    viewer: &Viewer,
    org: Uuid,
) -> Result<Vec<organization_keys::Model>> {
    viewer.require_role(org, MemberRole::Admin)?;
    Ok(organization_keys::Entity::find()
        .filter(organization_keys::Column::OrganizationId.eq(org))
        .order_by_desc(organization_keys::Column::Id)
        .all(&state.db)
        .await
        .context("listing organization keys")?)
}

/// Revokes an organization key.
pub async fn revoke_org_key(
    state: &AppState,
    viewer: &Viewer,
    id: Uuid,
) -> Result<organization_keys::Model> {
    let row = organization_keys::Entity::find_by_id(id)
        .filter(viewer.visible_orgs(organization_keys::Column::OrganizationId))
        .one(&state.db)
        .await
        .context("loading an organization key")?
        .ok_or(Error::NotFound("organization key"))?;
    let org = row.organization_id;
    viewer.require_role(org, MemberRole::Admin)?;
    let mut model: organization_keys::ActiveModel = row.into();
    model.revoked_at = Set(Some(Utc::now()));
    let row = model.update(&state.db).await?;
    audit::record(
        &state.db,
        viewer,
        Audit::new("organization_key.revoke")
            .org(org)
            .target("organization_key", id),
    )
    .await?;
    Ok(row)
}
