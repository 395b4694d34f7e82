//! Provider credentials of an organization: API tokens, AWS keys, passwords and OAuth 2
//! clients that workflows use to reach DNS and cloud providers.
//!
//! Owns the `credentials` rows and their rules: viewers and above read the metadata (and
//! which secret fields are set), admins and above create, update, reveal and delete. The
//! secret is validated against its kind ([`secret`]), sealed with the organization's data
//! key bound to its row (`credentials.secret_sealed`), and leaves the server only through
//! [`reveal_credential`], which is audited. Names are unique per organization; a
//! credential a domain uses cannot be deleted.

pub mod scope;
pub mod secret;

use anyhow::Context;
use entity::{
    credentials, domains,
    enums::{CredentialKind, CredentialScope, MemberRole},
};
use sea_orm::{
    ActiveModelBehavior, ActiveModelTrait, ColumnTrait, EntityTrait, ModelTrait, PaginatorTrait,
    QueryFilter, Select, Set,
};
use serde_json::{Value, json};
use uuid::Uuid;
use vault::SealContext;

pub use self::secret::{Provider, provider};
use self::{
    scope::{parse_region, parse_scope},
    secret::{Secret, fields_of},
};
use crate::{
    Error, Result,
    error::{OnForeignKeyViolation, OnUniqueViolation},
    services::audit::{self, Audit},
    services::pagination::{Page, PageRequest, fetch_page},
    state::AppState,
    viewer::Viewer,
};

/// Where the secret of row `id` is sealed.
fn seal_context(id: Uuid) -> SealContext<'static> {
    SealContext::new("credentials", "secret_sealed", id)
}

/// The credentials `viewer` may see, as a query to refine.
fn visible(viewer: &Viewer) -> Select<credentials::Entity> {
    credentials::Entity::find().filter(viewer.visible_orgs(credentials::Column::OrganizationId))
}

const DUPLICATE_NAME: &str = "the organization already has a credential with this name";

/// A credential to create. Name and description are validated; the rest depends on the
/// kind and is checked by [`create_credential`]. No `Debug`: it holds the secret.
pub struct NewCredential {
    pub name: String,
    pub kind: CredentialKind,
    pub scope: Option<CredentialScope>,
    pub scope_value: Option<String>,
    pub region: Option<String>,
    pub description: Option<String>,
    /// The secret as the client sent it (`input.secret`).
    pub secret: Value,
}

/// Creates a credential in `org` (admins and owners).
#[tracing::instrument(name = "create credential", skip_all, fields(org = %org, kind = ?new.kind))]
pub async fn create_credential(
    state: &AppState,
    viewer: &Viewer,
    org: Uuid,
    new: NewCredential,
) -> Result<credentials::Model> {
    viewer.require_role(org, MemberRole::Admin)?;
    let scope = parse_scope(new.kind, new.scope, new.scope_value.as_deref())?;
    let region = match &new.region {
        Some(r) => parse_region(new.kind, r, "input.region")?,
        None => None,
    };
    let secret = Secret::parse(new.kind, &new.secret, "input.secret")?;
    let key = state.keys.for_org(&state.db, org).await?;
    // `new()` picks the id, which the seal binds: read it before sealing.
    let mut row = credentials::ActiveModel::new();
    let id = row.id.clone().unwrap();
    row.organization_id = Set(org);
    row.name = Set(new.name);
    row.kind = Set(new.kind);
    row.scope_kind = Set(scope.kind);
    row.scope_value = Set(scope.value);
    row.region = Set(region);
    row.description = Set(new.description);
    row.secret_sealed = Set(key.seal(&seal_context(id), &secret.to_bytes()));
    let row = row
        .insert(&state.db)
        .await
        .on_unique_violation("input.name", DUPLICATE_NAME)?;
    let entry = Audit::new("credential.create")
        .org(org)
        .target("credential", row.id)
        .details(json!({ "name": row.name, "kind": row.kind }));
    audit::record(&state.db, viewer, entry).await?;
    Ok(row)
}

/// Changes to a credential: `None` leaves a field as it is, `Some(None)` clears it. A new
/// secret replaces the old one whole (rotation), validated like a new one.
#[derive(Default)]
pub struct CredentialChange {
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    pub region: Option<Option<String>>,
    pub secret: Option<Value>,
}

/// Updates or rotates a credential (admins and owners).
#[tracing::instrument(name = "update credential", skip_all, fields(id = %id))]
pub async fn update_credential(
    state: &AppState,
    viewer: &Viewer,
    id: Uuid,
    change: CredentialChange,
) -> Result<credentials::Model> {
    let row = find_for_admin(state, viewer, id).await?;
    let kind = row.kind;
    let region = match change.region {
        Some(Some(r)) => Some(parse_region(kind, &r, "input.region")?),
        Some(None) => Some(None),
        None => None,
    };
    let secret = change
        .secret
        .map(|s| Secret::parse(kind, &s, "input.secret"))
        .transpose()?;
    let rotated = secret.is_some();
    let org = row.organization_id;
    let mut model: credentials::ActiveModel = row.into();
    if let Some(name) = change.name {
        model.name = Set(name);
    }
    if let Some(description) = change.description {
        model.description = Set(description);
    }
    if let Some(region) = region {
        model.region = Set(region);
    }
    if let Some(secret) = secret {
        let key = state.keys.for_org(&state.db, org).await?;
        model.secret_sealed = Set(key.seal(&seal_context(id), &secret.to_bytes()));
    }
    let row = model
        .update(&state.db)
        .await
        .on_unique_violation("input.name", DUPLICATE_NAME)?;
    let entry = Audit::new("credential.update")
        .org(org)
        .target("credential", id)
        .details(json!({ "secretRotated": rotated }));
    audit::record(&state.db, viewer, entry).await?;
    Ok(row)
}

/// One credential, if `viewer` may see it.
pub async fn find_credential(
    state: &AppState,
    viewer: &Viewer,
    id: Uuid,
) -> Result<Option<credentials::Model>> {
    Ok(visible(viewer)
        .filter(credentials::Column::Id.eq(id))
        .one(&state.db)
        .await
        .context("loading a credential")?)
}

/// The credentials of `org` (viewers and above), optionally of one kind, as a query.
fn of_org(
    viewer: &Viewer,
    org: Uuid,
    kind: Option<CredentialKind>,
) -> Result<Select<credentials::Entity>> {
    viewer.require_role(org, MemberRole::Viewer)?;
    let mut select = visible(viewer).filter(credentials::Column::OrganizationId.eq(org));
    if let Some(kind) = kind {
        select = select.filter(credentials::Column::Kind.eq(kind));
    }
    Ok(select)
}

/// A page of the credentials of `org`, oldest first.
pub async fn list_credentials(
    state: &AppState,
    viewer: &Viewer,
    org: Uuid,
    kind: Option<CredentialKind>,
    page: &PageRequest,
) -> Result<Page<credentials::Model>> {
    let select = of_org(viewer, org, kind)?;
    fetch_page(&state.db, select, credentials::Column::Id, page).await
}

/// How many credentials `org` has (of `kind`, when given).
pub async fn count_credentials(
    state: &AppState,
    viewer: &Viewer,
    org: Uuid,
    kind: Option<CredentialKind>,
) -> Result<u64> {
    Ok(of_org(viewer, org, kind)?.count(&state.db).await?)
}

/// Opens the secret of `row` (already authorized) as JSON.
async fn open_secret(state: &AppState, row: &credentials::Model) -> Result<Value> {
    let key = state.keys.for_org(&state.db, row.organization_id).await?;
    let plain = key
        .open(&seal_context(row.id), &row.secret_sealed)
        .map_err(|e| anyhow::anyhow!("opening the secret of credential {}: {e}", row.id))?;
    Ok(serde_json::from_slice(&plain).context("a sealed credential is not JSON")?)
}

/// The names of the secret fields `row` has set, in documented order; never their values.
pub async fn secret_fields(state: &AppState, row: &credentials::Model) -> Result<Vec<String>> {
    let secret = open_secret(state, row).await?;
    Ok(fields_of(row.kind)
        .iter()
        .filter(|f| secret.get(**f).is_some_and(|v| !v.is_null()))
        .map(|f| (*f).to_owned())
        .collect())
}

/// Loads a credential for a privileged action: `NOT_FOUND` if invisible, `FORBIDDEN`
/// below admin.
async fn find_for_admin(state: &AppState, viewer: &Viewer, id: Uuid) -> Result<credentials::Model> {
    let row = find_credential(state, viewer, id)
        .await?
        .ok_or(Error::NotFound("credential"))?;
    viewer.require_role(row.organization_id, MemberRole::Admin)?;
    Ok(row)
}

/// The secret of a credential (admins and owners); every reveal is audited, and so is every
/// attempt a member below admin makes.
pub async fn reveal_credential(
    state: &AppState,
    viewer: &Viewer,
    id: Uuid,
) -> Result<(credentials::Model, Value)> {
    let row = find_credential(state, viewer, id)
        .await?
        .ok_or(Error::NotFound("credential"))?;
    let entry = || {
        Audit::new("credential.reveal")
            .org(row.organization_id)
            .target("credential", row.id)
    };
    let org = row.organization_id;
    audit::require_role(&state.db, viewer, org, MemberRole::Admin, entry()).await?;
    let secret = open_secret(state, &row).await?;
    audit::record(&state.db, viewer, entry()).await?;
    Ok((row, secret))
}

/// Deletes a credential (admins and owners); refused with `CONFLICT` while a domain uses it.
pub async fn delete_credential(
    state: &AppState,
    viewer: &Viewer,
    id: Uuid,
) -> Result<credentials::Model> {
    let row = find_for_admin(state, viewer, id).await?;
    let users = domains::Entity::find()
        .filter(domains::Column::CredentialId.eq(id))
        .count(&state.db)
        .await
        .context("counting the domains of a credential")?;
    if users > 0 {
        return Err(in_use());
    }
    // A domain may have taken it since the count: the foreign key still refuses.
    row.clone()
        .delete(&state.db)
        .await
        .on_foreign_key_violation(in_use)?;
    let entry = Audit::new("credential.delete")
        .org(row.organization_id)
        .target("credential", row.id)
        .details(json!({ "name": row.name, "kind": row.kind }));
    audit::record(&state.db, viewer, entry).await?;
    Ok(row)
}

fn in_use() -> Error {
    Error::conflict(
        "input.id",
        "domains use this credential; give them another one or delete them first",
    )
}
