//! Sessions: password login, refresh-token rotation with reuse detection, logout.
//!
//! A login issues a short-lived access token (JWT) and an opaque refresh token that starts a
//! *family*. Each refresh spends its token and issues the next one of the family; presenting
//! a spent token again means it leaked, so the whole family is revoked. Refresh tokens are
//! stored as SHA-256 digests only.

use anyhow::Context;
use chrono::{DateTime, Utc};
use entity::{refresh_tokens, users};
use sea_orm::{
    ActiveModelBehavior, ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set,
    sea_query::Expr,
};
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use crate::{
    Error, Result,
    auth::secrets,
    services::{
        audit::{self, Audit},
        users::{check_password, find_user},
    },
    state::AppState,
    viewer::Viewer,
};

/// What a successful login or refresh hands the client.
pub struct Session {
    pub access_token: String,
    pub expires_at: DateTime<Utc>,
    pub refresh_token: SecretString,
    pub user: users::Model,
}

/// Where a request came from, for rate limits and the refresh-token record.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub ip: String,
    pub user_agent: Option<String>,
}

/// Password login. Every failure reads the same (`UNAUTHENTICATED`, "invalid username or
/// password") whether or not the user exists, and costs the same time.
pub async fn login(
    state: &AppState,
    client: &ClientInfo,
    username: &str,
    password: SecretString,
) -> Result<Session> {
    let username = username.trim().to_lowercase();
    // Reserved before the password is checked, so parallel guesses count at once.
    let Some(attempt) = state.login_limiter.reserve(&username, &client.ip) else {
        return Err(Error::RateLimited(
            "too many failed attempts; try again later",
        ));
    };
    let user = users::Entity::find()
        .filter(users::Column::Username.eq(&username))
        .one(&state.db)
        .await
        .context("loading a user")?;
    if !check_password(user.as_ref(), password).await? {
        attempt.failed();
        return Err(Error::Unauthenticated);
    }
    attempt.succeeded();
    let user = user.expect("a verified password has a user");
    let mut model: users::ActiveModel = user.into();
    model.last_login_at = Set(Some(Utc::now()));
    let user = model.update(&state.db).await?;
    start_session(state, client, user, Uuid::now_v7()).await
}

/// Issues an access token and a refresh token of `family` for `user`.
pub async fn start_session(
    state: &AppState,
    client: &ClientInfo,
    user: users::Model,
    family: Uuid,
) -> Result<Session> {
    let (access_token, expires_at) = state.keyring.issue(user.id)?;
    let refresh_token = secrets::new_refresh_token();
    let mut row = refresh_tokens::ActiveModel::new();
    row.user_id = Set(user.id);
    row.family_id = Set(family);
    row.token_hash = Set(secrets::digest(refresh_token.expose_secret()));
    row.expires_at = Set(Utc::now() + state.config.auth.refresh_token_ttl);
    row.ip = Set(Some(client.ip.clone()));
    row.user_agent = Set(client.user_agent.clone());
    row.insert(&state.db).await?;
    Ok(Session {
        access_token,
        expires_at,
        refresh_token,
        user,
    })
}

async fn revoke_family(state: &AppState, family: Uuid) -> Result<()> {
    refresh_tokens::Entity::update_many()
        .col_expr(refresh_tokens::Column::RevokedAt, Expr::value(Utc::now()))
        .filter(refresh_tokens::Column::FamilyId.eq(family))
        .filter(refresh_tokens::Column::RevokedAt.is_null())
        .exec(&state.db)
        .await?;
    Ok(())
}

/// Spends `token` and issues the next of its family.
pub async fn refresh(
    state: &AppState,
    client: &ClientInfo,
    token: SecretString,
) -> Result<Session> {
    let digest = secrets::digest(token.expose_secret());
    let row = refresh_tokens::Entity::find()
        .filter(refresh_tokens::Column::TokenHash.eq(digest))
        .one(&state.db)
        .await
        .context("loading a refresh token")?
        .ok_or(Error::Unauthenticated)?;
    let now = Utc::now();
    if row.revoked_at.is_some() || row.expires_at <= now {
        return Err(Error::Unauthenticated);
    }
    // Spend it atomically: of two concurrent uses, exactly one wins.
    let spent = refresh_tokens::Entity::update_many()
        .col_expr(refresh_tokens::Column::UsedAt, Expr::value(now))
        .filter(refresh_tokens::Column::Id.eq(row.id))
        .filter(refresh_tokens::Column::UsedAt.is_null())
        .exec(&state.db)
        .await?;
    if spent.rows_affected != 1 {
        tracing::warn!(family = %row.family_id, user = %row.user_id, "refresh token reused; revoking its family");
        revoke_family(state, row.family_id).await?;
        return Err(Error::Unauthenticated);
    }
    let user = find_user(&state.db, row.user_id)
        .await?
        .filter(|u| !u.disabled)
        .ok_or(Error::Unauthenticated)?;
    start_session(state, client, user, row.family_id).await
}

/// Revokes the family of `token` (this device's session). Answers the same whether or not
/// the token was known.
pub async fn logout(state: &AppState, viewer: &Viewer, token: SecretString) -> Result<()> {
    let digest = secrets::digest(token.expose_secret());
    let row = refresh_tokens::Entity::find()
        .filter(refresh_tokens::Column::TokenHash.eq(digest))
        .one(&state.db)
        .await
        .context("loading a refresh token")?;
    if let Some(row) = row {
        revoke_family(state, row.family_id).await?;
        audit::record(
            &state.db,
            viewer,
            Audit::new("session.logout").target("user", row.user_id),
        )
        .await?;
    }
    Ok(())
}
