//! Users from an OpenID Connect provider: found by (issuer, subject), else linked by an email
//! this system has verified (a `user_emails` row with `verified`, as earlier OIDC sign-ins
//! record), else created. An email someone typed into `signUp` or a profile proves nothing:
//! linking by it would hand that account to whoever registered the address first, so such
//! an account is never linked by email (its owner links explicitly, signed in, through
//! [`link`]), and the address goes to the account that proved it. A verified address in a
//! verified domain of an organization makes the user a member of it.

use anyhow::Context;
use chrono::Utc;
use entity::WriteTxn as _;
use entity::{
    enums::{EmailDomainStatus, MemberRole},
    memberships, organizations, user_emails, user_identities, users,
};
use sea_orm::{
    ActiveModelBehavior, ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction,
    EntityTrait, QueryFilter, Set, sea_query::Expr,
};

use crate::{
    Error, Result,
    auth::oidc::{self, IdClaims},
    services::users::{Username, parse_email},
    state::AppState,
    viewer::Viewer,
};

/// The user behind verified `claims`, created or linked as needed.
pub async fn sign_in(state: &AppState, claims: &IdClaims) -> Result<users::Model> {
    let email = claims
        .email
        .as_deref()
        .and_then(|e| parse_email(e, "email").ok())
        .filter(|_| claims.email_verified);
    let txn = state.db.begin_write().await?;
    let identity = user_identities::Entity::find()
        .filter(user_identities::Column::Issuer.eq(&claims.iss))
        .filter(user_identities::Column::Subject.eq(&claims.sub))
        .one(&txn)
        .await
        .context("loading an identity")?;
    let user = match identity {
        Some(identity) => {
            let user_id = identity.user_id;
            let mut identity: user_identities::ActiveModel = identity.into();
            identity.last_login_at = Set(Some(Utc::now()));
            identity.email = Set(claims.email.clone());
            identity.update(&txn).await?;
            users::Entity::find_by_id(user_id)
                .one(&txn)
                .await?
                .ok_or(Error::Unauthenticated)?
        }
        None => {
            let linked = match &email {
                Some(email) => verified_owner(&txn, email).await?,
                None => None,
            };
            let user = match linked {
                Some(user) => user,
                None => {
                    if let Some(email) = &email {
                        release_unverified(&txn, email).await?;
                    }
                    create(&txn, claims, email.clone()).await?
                }
            };
            let mut identity = user_identities::ActiveModel::new();
            identity.user_id = Set(user.id);
            identity.issuer = Set(claims.iss.clone());
            identity.subject = Set(claims.sub.clone());
            identity.email = Set(claims.email.clone());
            identity.last_login_at = Set(Some(Utc::now()));
            identity.insert(&txn).await?;
            user
        }
    };
    if user.disabled {
        return Err(Error::Unauthenticated);
    }
    if let Some(email) = &email {
        remember_email(&txn, &user, email).await?;
        join_claimed_domain(&txn, &user, email).await?;
    }
    let mut model: users::ActiveModel = user.into();
    model.last_login_at = Set(Some(Utc::now()));
    let user = model.update(&txn).await?;
    txn.commit().await?;
    Ok(user)
}

/// The user who proved `email` here before (a verified `user_emails` row).
async fn verified_owner<C: ConnectionTrait>(db: &C, email: &str) -> Result<Option<users::Model>> {
    let Some(row) = user_emails::Entity::find()
        .filter(user_emails::Column::Email.eq(email))
        .filter(user_emails::Column::Verified.eq(true))
        .one(db)
        .await
        .context("loading a verified email")?
    else {
        return Ok(None);
    };
    Ok(users::Entity::find_by_id(row.user_id)
        .one(db)
        .await
        .context("loading the email's user")?)
}

/// Takes `email` from accounts that only typed it in: the account that proves it gets it.
async fn release_unverified<C: ConnectionTrait>(db: &C, email: &str) -> Result<()> {
    let cleared = users::Entity::update_many()
        .col_expr(users::Column::Email, Expr::value(None::<String>))
        .filter(users::Column::Email.eq(email))
        .exec(db)
        .await
        .context("releasing an unverified email")?;
    user_emails::Entity::delete_many()
        .filter(user_emails::Column::Email.eq(email))
        .filter(user_emails::Column::Verified.eq(false))
        .exec(db)
        .await?;
    if cleared.rows_affected > 0 {
        tracing::info!("an unverified email went to the account that proved it at the provider");
    }
    Ok(())
}

/// A linking sign-in for the signed-in user: the path that starts it (`/auth/oidc/login`
/// with a link ticket) and the `Set-Cookie` value that binds the ticket to the asking
/// browser (without that cookie the path is refused, so a stolen or planted link does
/// nothing). Users signed in with an access token only: a leaked API key must not be able
/// to attach an identity to its owner's account.
pub fn start_link(
    state: &AppState,
    viewer: &Viewer,
    redirect: Option<&str>,
) -> Result<(String, String)> {
    let me = viewer.require_user()?;
    if me.api_key_id.is_some() {
        return Err(Error::Forbidden(
            "link an identity signed in with your password or provider, not an API key".into(),
        ));
    }
    let Some(provider) = state.oidc.as_ref() else {
        return Err(Error::bad_input("input", "OIDC sign-in is not configured"));
    };
    let (ticket, nonce) = provider.link_ticket(me.id);
    let mut url = url::Url::parse("http://autoglue.invalid/auth/oidc/login").expect("valid");
    url.query_pairs_mut()
        .append_pair("redirect", redirect.unwrap_or("/"))
        .append_pair("link", &ticket);
    let secure = state
        .config
        .auth
        .public_url
        .as_ref()
        .is_some_and(|u| u.scheme() == "https");
    let set_cookie = oidc::cookie(oidc::LINK_COOKIE, &nonce, oidc::LINK_TTL_SECS, secure);
    let path = format!("{}?{}", url.path(), url.query().unwrap_or_default());
    Ok((path, set_cookie))
}

/// Links the identity of verified `claims` to `user_id`, who is signed in and asked to
/// (`startOidcLink`). `CONFLICT` when the identity already belongs to another account.
pub async fn link(
    state: &AppState,
    user_id: uuid::Uuid,
    claims: &IdClaims,
) -> Result<users::Model> {
    let txn = state.db.begin_write().await?;
    let user = users::Entity::find_by_id(user_id)
        .one(&txn)
        .await?
        .filter(|u| !u.disabled)
        .ok_or(Error::Unauthenticated)?;
    let identity = user_identities::Entity::find()
        .filter(user_identities::Column::Issuer.eq(&claims.iss))
        .filter(user_identities::Column::Subject.eq(&claims.sub))
        .one(&txn)
        .await
        .context("loading an identity")?;
    match identity {
        Some(identity) if identity.user_id != user.id => {
            return Err(Error::Conflict {
                field: None,
                message: "this identity already signs in to another account".into(),
            });
        }
        Some(_) => {}
        None => {
            let mut identity = user_identities::ActiveModel::new();
            identity.user_id = Set(user.id);
            identity.issuer = Set(claims.iss.clone());
            identity.subject = Set(claims.sub.clone());
            identity.email = Set(claims.email.clone());
            identity.last_login_at = Set(Some(Utc::now()));
            identity.insert(&txn).await?;
            tracing::info!(username = %user.username, issuer = %claims.iss, "linked an OIDC identity");
        }
    }
    let email = claims
        .email
        .as_deref()
        .and_then(|e| parse_email(e, "email").ok())
        .filter(|_| claims.email_verified);
    if let Some(email) = &email
        && verified_owner(&txn, email).await?.is_none()
    {
        if user.email.as_deref() != Some(email.as_str()) {
            release_unverified(&txn, email).await?;
        }
        remember_email(&txn, &user, email).await?;
    }
    txn.commit().await?;
    Ok(user)
}

/// A new user named after the provider's username or the email's local part; a suffix
/// makes it unique.
async fn create(
    txn: &DatabaseTransaction,
    claims: &IdClaims,
    email: Option<String>,
) -> Result<users::Model> {
    let wanted = claims
        .preferred_username
        .clone()
        .or_else(|| {
            claims
                .email
                .as_deref()
                .and_then(|e| e.split('@').next())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "user".into());
    let base: String = wanted
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let base = format!("{:0<3}", base.trim_start_matches(['.', '_', '-']));
    for attempt in 0..5 {
        let candidate = match attempt {
            0 => base.clone(),
            _ => format!(
                "{}-{}",
                &base[..base.len().min(50)],
                &uuid::Uuid::new_v4().simple().to_string()[..6]
            ),
        };
        let Ok(username) = Username::parse(&candidate, "username") else {
            continue;
        };
        let taken = users::Entity::find()
            .filter(users::Column::Username.eq(username.as_str()))
            .one(txn)
            .await?
            .is_some();
        if taken {
            continue;
        }
        let mut user = users::ActiveModel::new();
        user.username = Set(username.as_str().to_owned());
        user.email = Set(email);
        user.display_name = Set(claims.name.clone());
        user.avatar_url = Set(claims.picture.clone());
        let user = user.insert(txn).await?;
        tracing::info!(username = %user.username, issuer = %claims.iss, "created a user at first OIDC sign-in");
        return Ok(user);
    }
    Err(Error::Internal(anyhow::anyhow!(
        "no free username near {base:?}"
    )))
}

async fn remember_email<C: ConnectionTrait>(
    db: &C,
    user: &users::Model,
    email: &str,
) -> Result<()> {
    let known = user_emails::Entity::find()
        .filter(user_emails::Column::Email.eq(email))
        .one(db)
        .await?;
    if known.is_none() {
        let mut row = user_emails::ActiveModel::new();
        row.user_id = Set(user.id);
        row.email = Set(email.to_owned());
        row.verified = Set(true);
        row.is_primary = Set(user.email.as_deref() == Some(email));
        row.insert(db).await?;
    }
    Ok(())
}

async fn join_claimed_domain<C: ConnectionTrait>(
    db: &C,
    user: &users::Model,
    email: &str,
) -> Result<()> {
    let Some((_, domain)) = email.rsplit_once('@') else {
        return Ok(());
    };
    let Some(org) = organizations::Entity::find()
        .filter(organizations::Column::EmailDomain.eq(domain))
        .filter(organizations::Column::EmailDomainStatus.eq(EmailDomainStatus::Verified))
        .one(db)
        .await?
    else {
        return Ok(());
    };
    let member = memberships::Entity::find()
        .filter(memberships::Column::OrganizationId.eq(org.id))
        .filter(memberships::Column::UserId.eq(user.id))
        .one(db)
        .await?;
    if member.is_none() {
        let mut row = memberships::ActiveModel::new();
        row.organization_id = Set(org.id);
        row.user_id = Set(user.id);
        row.role = Set(MemberRole::Member);
        row.insert(db).await?;
        tracing::info!(user = %user.username, organization = %org.name, "joined through a claimed email domain");
    }
    Ok(())
}
