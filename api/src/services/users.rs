//! Users: accounts, the bootstrapped instance admin, profiles and passwords.

use anyhow::Context;
use entity::{refresh_tokens, users};
use sea_orm::{
    ActiveModelBehavior, ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait,
    PaginatorTrait, QueryFilter, Set, sea_query::Expr,
};
use secrecy::SecretString;
use uuid::Uuid;

use crate::{
    Error, Result,
    auth::passwords,
    config::AdminBootstrap,
    error::OnUniqueViolation,
    services::audit::{self, Audit},
    state::AppState,
    viewer::Viewer,
};

/// A username: 3 to 64 of `a-z 0-9 . _ -`, starting with a letter or digit; stored lowercase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub fn parse(raw: &str, field: &str) -> Result<Self> {
        let name = raw.trim().to_lowercase();
        let valid_chars = name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
        let starts_well = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric());
        if !(3..=64).contains(&name.len()) || !valid_chars || !starts_well {
            return Err(Error::bad_input(
                field,
                "username must be 3 to 64 characters of a-z, 0-9, '.', '_' or '-', starting with a letter or digit",
            ));
        }
        Ok(Username(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Checks and normalizes (trim, lowercase) an email address.
pub fn parse_email(raw: &str, field: &str) -> Result<String> {
    let email = raw.trim().to_lowercase();
    let ok = email.len() <= 254
        && !email.chars().any(char::is_whitespace)
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.contains('@')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        });
    if !ok {
        return Err(Error::bad_input(field, "not a valid email address"));
    }
    Ok(email)
}

/// A user to create, validated.
pub struct NewUser {
    pub username: Username,
    pub email: Option<String>,
    pub password: SecretString,
    pub is_admin: bool,
}

async fn insert_user<C: ConnectionTrait>(db: &C, new: NewUser) -> Result<users::Model> {
    let hash = passwords::hash(new.password).await?;
    let mut user = users::ActiveModel::new();
    user.username = Set(new.username.as_str().to_owned());
    user.email = Set(new.email);
    user.password_hash = Set(Some(hash));
    user.is_admin = Set(new.is_admin);
    user.insert(db).await.on_unique_violation(
        "input.username",
        "a user with this username or email already exists",
    )
}

/// Creates the instance admin from `AUTOGLUE_ADMIN_*` when no user exists yet.
pub async fn bootstrap_admin<C: ConnectionTrait>(
    db: &C,
    admin: &AdminBootstrap,
) -> anyhow::Result<()> {
    if users::Entity::find().count(db).await? > 0 {
        return Ok(());
    }
    let username = Username::parse(&admin.username, "AUTOGLUE_ADMIN_USERNAME")
        .map_err(|e| anyhow::anyhow!("invalid AUTOGLUE_ADMIN_USERNAME: {e}"))?;
    passwords::check_policy(&admin.password, "AUTOGLUE_ADMIN_PASSWORD")
        .map_err(|e| anyhow::anyhow!("invalid AUTOGLUE_ADMIN_PASSWORD: {e}"))?;
    let new = NewUser {
        username,
        email: None,
        password: admin.password.clone(),
        is_admin: true,
    };
    let user = insert_user(db, new)
        .await
        .map_err(|e| anyhow::anyhow!("creating the admin: {e}"))?;
    tracing::info!(username = %user.username, "created the instance admin");
    Ok(())
}

/// Creates a user (instance admins only).
pub async fn create_user(state: &AppState, viewer: &Viewer, new: NewUser) -> Result<users::Model> {
    viewer.require_instance_admin()?;
    let user = insert_user(&state.db, new).await?;
    audit::record(
        &state.db,
        viewer,
        Audit::new("user.create").target("user", user.id),
    )
    .await?;
    Ok(user)
}

/// Open sign-up, when the instance allows it.
pub async fn sign_up(state: &AppState, new: NewUser) -> Result<users::Model> {
    if !state.config.auth.signup_enabled {
        return Err(Error::Forbidden(
            "sign-up is closed on this instance; ask an admin".into(),
        ));
    }
    insert_user(
        &state.db,
        NewUser {
            is_admin: false,
            ..new
        },
    )
    .await
}

/// One user by id.
pub async fn find_user<C: ConnectionTrait>(db: &C, id: Uuid) -> Result<Option<users::Model>> {
    Ok(users::Entity::find_by_id(id)
        .one(db)
        .await
        .context("loading a user")?)
}

/// Changes the caller's password after checking the current one; signs out every session.
pub async fn change_password(
    state: &AppState,
    viewer: &Viewer,
    current: SecretString,
    new: SecretString,
) -> Result<()> {
    let me = viewer.require_user()?;
    passwords::check_policy(&new, "input.newPassword")?;
    let user = find_user(&state.db, me.id)
        .await?
        .ok_or(Error::Unauthenticated)?;
    let hash = user.password_hash.clone().unwrap_or_default();
    if !passwords::verify(current, hash).await? {
        return Err(Error::bad_input(
            "input.currentPassword",
            "the current password is wrong",
        ));
    }
    let mut user: users::ActiveModel = user.into();
    user.password_hash = Set(Some(passwords::hash(new).await?));
    user.update(&state.db).await?;
    refresh_tokens::Entity::update_many()
        .col_expr(
            refresh_tokens::Column::RevokedAt,
            Expr::value(chrono::Utc::now()),
        )
        .filter(refresh_tokens::Column::UserId.eq(me.id))
        .filter(refresh_tokens::Column::RevokedAt.is_null())
        .exec(&state.db)
        .await?;
    audit::record(
        &state.db,
        viewer,
        Audit::new("user.change_password").target("user", me.id),
    )
    .await?;
    Ok(())
}

/// Profile fields a user edits; None leaves a field as it is, an empty string clears it.
pub struct ProfileChange {
    pub display_name: Option<String>,
    pub avatar_url: Option<String>,
}

/// Updates the caller's profile.
pub async fn update_profile(
    state: &AppState,
    viewer: &Viewer,
    change: ProfileChange,
) -> Result<users::Model> {
    let me = viewer.require_user()?;
    let user = find_user(&state.db, me.id)
        .await?
        .ok_or(Error::Unauthenticated)?;
    let clean = |v: String| {
        let v = v.trim().to_owned();
        (!v.is_empty()).then_some(v)
    };
    let mut model: users::ActiveModel = user.into();
    if let Some(name) = change.display_name {
        if name.chars().count() > 100 {
            return Err(Error::bad_input(
                "input.displayName",
                "display name must be at most 100 characters",
            ));
        }
        model.display_name = Set(clean(name));
    }
    if let Some(url) = change.avatar_url {
        let url = clean(url);
        if let Some(u) = &url
            && !(u.starts_with("https://") || u.starts_with("http://"))
        {
            return Err(Error::bad_input(
                "input.avatarUrl",
                "avatar URL must be http(s)",
            ));
        }
        model.avatar_url = Set(url);
    }
    let user = model.update(&state.db).await?;
    audit::record(
        &state.db,
        viewer,
        Audit::new("user.update_profile").target("user", me.id),
    )
    .await?;
    Ok(user)
}

/// Whether `secret` is the user's password (constant work whether or not the user exists).
pub async fn check_password(user: Option<&users::Model>, secret: SecretString) -> Result<bool> {
    match user.and_then(|u| u.password_hash.clone()) {
        Some(hash) if !user.is_some_and(|u| u.disabled) => passwords::verify(secret, hash).await,
        _ => {
            let _ = passwords::verify(secret, passwords::dummy_hash().await?.to_owned()).await?;
            Ok(false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_and_emails_are_checked() {
        assert_eq!(Username::parse(" Alice ", "u").unwrap().as_str(), "alice");
        for bad in ["ab", "-abc", "a b c", "ünï", &"x".repeat(65)] {
            assert!(Username::parse(bad, "u").is_err(), "{bad}");
        }
        assert_eq!(
            parse_email(" A@Example.COM ", "e").unwrap(),
            "a@example.com"
        );
        for bad in ["a", "a@b", "@b.c", "a@.c", "a b@c.d"] {
            assert!(parse_email(bad, "e").is_err(), "{bad}");
        }
    }
}
