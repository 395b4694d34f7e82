//! Turning a request's credentials into a [`Viewer`].
//!
//! - `Authorization: Bearer <jwt>`: an access token;
//! - `Authorization: Bearer agu_…`: a user API key;
//! - `Authorization: Bearer ago_…_…` or `X-Org-Key` + `X-Org-Secret`: an organization key;
//! - nothing: anonymous.
//!
//! `X-Org-ID` picks the active organization of a user (it must be one of theirs). Presented
//! but invalid credentials are an error (`UNAUTHENTICATED`), never a silent downgrade to
//! anonymous. Keys are checked against their argon2 hash once, then by digest from
//! [`super::limits::VerifiedKeys`]; their row is read on every request so revocation and
//! expiry take effect at once.

use std::sync::Arc;

use anyhow::Context;
use axum::http::HeaderMap;
use chrono::{DateTime, Utc};
use entity::{api_keys, enums::MemberRole, memberships, organization_keys, users};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QuerySelect, Set};
use uuid::Uuid;

use super::{
    passwords,
    secrets::{self, KeyKind, PresentedKey},
};
use crate::{
    Error, Result,
    graphql::relay::{GlobalId, NodeKind},
    state::AppState,
    viewer::{OrgKeyViewer, UserViewer, Viewer},
};

/// The credentials of a request, read from its headers (or a WebSocket init payload).
/// Its `Debug` shows which credentials are present, never their values.
#[derive(Default, Clone)]
pub struct Credentials {
    pub bearer: Option<String>,
    pub org_key: Option<(String, String)>,
    pub org_id: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = |present: bool| if present { "<redacted>" } else { "none" };
        f.debug_struct("Credentials")
            .field("bearer", &shown(self.bearer.is_some()))
            .field("org_key", &shown(self.org_key.is_some()))
            .field("org_id", &self.org_id)
            .finish()
    }
}

impl Credentials {
    /// Reads `Authorization`, `X-Org-Key`/`X-Org-Secret` and `X-Org-ID`.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let text = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
        };
        let bearer = text("authorization").and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
                .map(|t| t.trim().to_owned())
        });
        let org_key = match (text("x-org-key"), text("x-org-secret")) {
            (Some(k), Some(s)) => Some((k.to_owned(), s.to_owned())),
            _ => None,
        };
        Credentials {
            bearer,
            org_key,
            org_id: text("x-org-id").map(str::to_owned),
        }
    }
}

/// Authenticates `creds`.
pub async fn authenticate(state: &AppState, creds: &Credentials) -> Result<Viewer> {
    Ok(authenticate_until(state, creds).await?.0)
}

/// Authenticates `creds`; also says until when the credential is valid (an access token's
/// `exp`, a key's expiry), for connections that outlive one request.
pub async fn authenticate_until(
    state: &AppState,
    creds: &Credentials,
) -> Result<(Viewer, Option<DateTime<Utc>>)> {
    let (viewer, until) = match (&creds.bearer, &creds.org_key) {
        (None, None) => return Ok((Viewer::Anonymous, None)),
        (Some(_), Some(_)) => {
            return Err(Error::bad_input(
                "authorization",
                "send either a bearer token or X-Org-Key/X-Org-Secret, not both",
            ));
        }
        (None, Some((key, secret))) => {
            let key = secrets::parse_org_key_pair(key, secret).ok_or(Error::Unauthenticated)?;
            org_key_viewer(state, &key).await?
        }
        (Some(token), None) => match secrets::parse_bearer_key(token) {
            Some(key) if key.kind == KeyKind::Organization => org_key_viewer(state, &key).await?,
            Some(key) => api_key_viewer(state, &key).await?,
            None => {
                let claims = state.keyring.verify(token).await?;
                let exp = DateTime::from_timestamp(claims.exp, 0);
                (user_viewer(state, claims.sub, None).await?, exp)
            }
        },
    };
    Ok((with_active_org(viewer, creds.org_id.as_deref())?, until))
}

fn with_active_org(viewer: Viewer, org_id: Option<&str>) -> Result<Viewer> {
    let Some(raw) = org_id else { return Ok(viewer) };
    let org = Uuid::parse_str(raw)
        .or_else(|_| GlobalId::expect(raw, NodeKind::Organization, "X-Org-ID"))
        .map_err(|_| Error::bad_input("X-Org-ID", "not an organization ID"))?;
    match viewer {
        Viewer::User(mut u) => {
            if !u.memberships.iter().any(|(id, _)| *id == org) {
                return Err(Error::NotFound("organization"));
            }
            u.active_org = Some(org);
            Ok(Viewer::User(u))
        }
        Viewer::OrgKey(k) if k.organization_id != org => Err(Error::NotFound("organization")),
        other => Ok(other),
    }
}

/// The user and their memberships, read by one statement on every request (a row per
/// membership, or one without a membership): a disabled user or a changed role counts at
/// once.
async fn user_viewer(state: &AppState, user_id: Uuid, api_key_id: Option<Uuid>) -> Result<Viewer> {
    type Row = (Uuid, String, bool, bool, Option<Uuid>, Option<MemberRole>);
    let rows: Vec<Row> = users::Entity::find_by_id(user_id)
        .select_only()
        .columns([
            users::Column::Id,
            users::Column::Username,
            users::Column::IsAdmin,
            users::Column::Disabled,
        ])
        .column(memberships::Column::OrganizationId)
        .column(memberships::Column::Role)
        .left_join(memberships::Entity)
        .into_tuple()
        .all(&state.reads)
        .await
        .context("loading the caller")?;
    let Some((id, username, is_admin, disabled, ..)) = rows.first().cloned() else {
        return Err(Error::Unauthenticated);
    };
    if disabled {
        return Err(Error::Unauthenticated);
    }
    let memberships = rows
        .into_iter()
        .filter_map(|(.., org, role)| Some((org?, role?)))
        .collect();
    Ok(Viewer::User(UserViewer {
        id,
        username,
        is_admin,
        memberships: Arc::new(memberships),
        active_org: None,
        api_key_id,
    }))
}

/// Whether `key`'s secret matches `hash`, consulting and filling the digest cache.
async fn key_matches(
    state: &AppState,
    key: &PresentedKey,
    row_id: Uuid,
    hash: &str,
) -> Result<bool> {
    let digest = secrets::cache_digest(key);
    if state.verified_keys.get(&digest) == Some(row_id) {
        return Ok(true);
    }
    let ok = passwords::verify(key.secret.clone(), hash.to_owned()).await?;
    if ok {
        state.verified_keys.insert(digest, row_id);
    }
    Ok(ok)
}

/// Last-used times are written at most once a minute per key, not on every request.
fn stale(last: Option<chrono::DateTime<Utc>>) -> bool {
    last.is_none_or(|t| Utc::now() - t > chrono::Duration::seconds(60))
}

/// A key's viewer and the key's expiry.
type KeyViewer = (Viewer, Option<DateTime<Utc>>);

async fn api_key_viewer(state: &AppState, key: &PresentedKey) -> Result<KeyViewer> {
    let row = api_keys::Entity::find()
        .filter(api_keys::Column::Prefix.eq(&key.prefix))
        .one(&state.db)
        .await
        .context("loading an API key")?
        .ok_or(Error::Unauthenticated)?;
    let live = row.revoked_at.is_none() && row.expires_at.is_none_or(|t| t > Utc::now());
    if !live || !key_matches(state, key, row.id, &row.secret_hash).await? {
        return Err(Error::Unauthenticated);
    }
    let (user_id, id, last, until) = (row.user_id, row.id, row.last_used_at, row.expires_at);
    if stale(last) {
        let mut row: api_keys::ActiveModel = row.into();
        row.last_used_at = Set(Some(Utc::now()));
        row.update(&state.db).await?;
    }
    Ok((user_viewer(state, user_id, Some(id)).await?, until))
}

async fn org_key_viewer(state: &AppState, key: &PresentedKey) -> Result<KeyViewer> {
    let row = organization_keys::Entity::find()
        .filter(organization_keys::Column::Prefix.eq(&key.prefix))
        .one(&state.db)
        .await
        .context("loading an organization key")?
        .ok_or(Error::Unauthenticated)?;
    let live = row.revoked_at.is_none() && row.expires_at.is_none_or(|t| t > Utc::now());
    if !live || !key_matches(state, key, row.id, &row.secret_hash).await? {
        return Err(Error::Unauthenticated);
    }
    let viewer = OrgKeyViewer {
        key_id: row.id,
        organization_id: row.organization_id,
        role: row.role,
    };
    let until = row.expires_at;
    if stale(row.last_used_at) {
        let mut row: organization_keys::ActiveModel = row.into();
        row.last_used_at = Set(Some(Utc::now()));
        row.update(&state.db).await?;
    }
    Ok((Viewer::OrgKey(viewer), until))
}

#[cfg(test)]
mod tests {
    use super::Credentials;

    #[test]
    fn debug_never_shows_a_credential() {
        let creds = Credentials {
            bearer: Some("agu_secretbearer".into()),
            org_key: Some(("ago_key".into(), "orgsecret".into())),
            org_id: Some("org-1".into()),
        };
        let shown = format!("{creds:?}");
        for secret in ["agu_secretbearer", "ago_key", "orgsecret"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(
            shown.contains("<redacted>") && shown.contains("org-1"),
            "{shown}"
        );
    }
}
