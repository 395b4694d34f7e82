//! Users from an OpenID Connect provider: found by (issuer, subject), else linked by a
//! verified email, else created. A verified address in a domain an organization claimed
//! makes the user a member of it.

use anyhow::Context;
use chrono::Utc;
use entity::WriteTxn as _;
use entity::{enums::MemberRole, memberships, organizations, user_emails, user_identities, users};
use sea_orm::{
    ActiveModelBehavior, ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction,
    EntityTrait, QueryFilter, Set,
};

use crate::{
    Error, Result,
    auth::oidc::IdClaims,
    services::users::{Username, parse_email},
    state::AppState,
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
                Some(email) => users::Entity::find()
                    .filter(users::Column::Email.eq(email))
                    .one(&txn)
                    .await
                    .context("loading a user by email")?,
                None => None,
            };
            let user = match linked {
                Some(user) => user,
                None => create(&txn, claims, email.clone()).await?,
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
