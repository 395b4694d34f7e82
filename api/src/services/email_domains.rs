//! Email domain claims: an organization owner claims a domain (`updateOrganization`'s
//! `emailDomain`), and verified OIDC sign-ins with an address in it join the organization.
//!
//! A claim is `PENDING` until proved, by the DNS TXT record of [`challenge`] (checked by
//! `verifyEmailDomain`) or by an instance admin (`approveEmailDomain`): a claim alone would
//! let any organization collect the members of `gmail.com` or of a rival. Public mail
//! domains cannot be claimed at all. Only one organization holds a domain verified; pending
//! claims block nobody.

pub mod challenge;

use anyhow::Context;
use chrono::Utc;
use entity::{enums::EmailDomainStatus, enums::MemberRole, organizations};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, Set, sea_query::Expr};
use uuid::Uuid;

use crate::{
    Error, Result,
    error::OnUniqueViolation,
    services::{
        audit::{self, Audit},
        organizations::find_organization,
    },
    state::AppState,
    viewer::Viewer,
};

/// Mail services whose addresses anyone can have: an organization cannot claim them.
const PUBLIC_MAIL_DOMAINS: &[&str] = &[
    "gmail.com",
    "googlemail.com",
    "outlook.com",
    "hotmail.com",
    "live.com",
    "msn.com",
    "yahoo.com",
    "ymail.com",
    "icloud.com",
    "me.com",
    "mac.com",
    "aol.com",
    "proton.me",
    "protonmail.com",
    "pm.me",
    "gmx.com",
    "gmx.net",
    "gmx.de",
    "web.de",
    "mail.com",
    "mail.ru",
    "yandex.ru",
    "yandex.com",
    "qq.com",
    "163.com",
    "126.com",
    "zoho.com",
    "fastmail.com",
    "tutanota.com",
    "hey.com",
];

/// Refuses public mail domains; `domain` is already normalized.
pub fn check_claimable(domain: &str, field: &str) -> Result<()> {
    if PUBLIC_MAIL_DOMAINS.contains(&domain) || domain.starts_with("yahoo.") {
        return Err(Error::bad_input(
            field,
            "a public mail domain cannot be claimed: anyone can have an address there",
        ));
    }
    Ok(())
}

/// Sets `model`'s claim to `domain` (or clears it): a new claim is pending, with a fresh
/// token; claiming the domain already held keeps its state.
pub fn set_claim(
    model: &mut organizations::ActiveModel,
    current: Option<&str>,
    domain: Option<String>,
) {
    if domain.as_deref() == current {
        return;
    }
    let claimed = domain.is_some();
    model.email_domain = Set(domain);
    model.email_domain_status = Set(claimed.then_some(EmailDomainStatus::Pending));
    model.email_domain_token = Set(claimed.then(|| Uuid::new_v4().simple().to_string()));
    model.email_domain_verified_at = Set(None);
}

/// The organization `id` as its owner sees it, with a claim to act on.
async fn claimed(
    state: &AppState,
    viewer: &Viewer,
    id: Uuid,
) -> Result<(organizations::Model, String)> {
    let org = find_organization(state, viewer, id)
        .await?
        .ok_or(Error::NotFound("organization"))?;
    let domain = org.email_domain.clone().ok_or_else(|| {
        Error::bad_input(
            "input.organizationId",
            "the organization claims no email domain",
        )
    })?;
    Ok((org, domain))
}

/// Checks the claim's TXT record (owners); verified when it holds the token.
pub async fn verify(state: &AppState, viewer: &Viewer, id: Uuid) -> Result<organizations::Model> {
    let (org, domain) = claimed(state, viewer, id).await?;
    viewer.require_role(org.id, MemberRole::Owner)?;
    if org.email_domain_status == Some(EmailDomainStatus::Verified) {
        return Ok(org);
    }
    let token = org.email_domain_token.clone().unwrap_or_default();
    let published = challenge::is_published(state.config.auth.dns_resolver, &domain, &token)
        .await
        .map_err(|e| {
            tracing::warn!(error = %format!("{e:#}"), "the DNS check of a domain claim failed");
            Error::Unavailable("no DNS server answered; try again later")
        })?;
    if !published {
        return Err(Error::Conflict {
            field: None,
            message: format!(
                "no TXT record {:?} with the value {:?} was found",
                challenge::record_name(&domain),
                challenge::record_value(&token)
            ),
        });
    }
    let proved = Proved {
        domain: &domain,
        token: Some(&token),
    };
    mark_verified(
        state,
        viewer,
        org,
        proved,
        "organization.email_domain.verify",
    )
    .await
}

/// Verifies the claim on `domain` without a DNS record (instance admins): the domain the
/// admin saw, so a claim changed meanwhile is not approved in its place.
pub async fn approve(
    state: &AppState,
    viewer: &Viewer,
    id: Uuid,
    domain: &str,
) -> Result<organizations::Model> {
    viewer.require_instance_admin()?;
    let org = organizations::Entity::find_by_id(id)
        .one(&state.db)
        .await
        .context("loading an organization")?
        .ok_or(Error::NotFound("organization"))?;
    if org.email_domain.as_deref() != Some(domain) {
        return Err(Error::bad_input(
            "input.emailDomain",
            "the organization does not claim this email domain",
        ));
    }
    let proved = Proved {
        domain,
        token: None,
    };
    mark_verified(
        state,
        viewer,
        org,
        proved,
        "organization.email_domain.approve",
    )
    .await
}

/// What was proved: the domain, and the token its TXT record held (none: an admin).
struct Proved<'a> {
    domain: &'a str,
    token: Option<&'a str>,
}

/// Marks the claim verified only if it is still the claim that was proved: the DNS check
/// takes seconds, and an owner who switched the claim meanwhile must not get the new domain
/// verified by the old one's record.
async fn mark_verified(
    state: &AppState,
    viewer: &Viewer,
    org: organizations::Model,
    proved: Proved<'_>,
    action: &'static str,
) -> Result<organizations::Model> {
    use organizations::Column;
    let mut update = organizations::Entity::update_many()
        .col_expr(
            Column::EmailDomainStatus,
            Expr::value(EmailDomainStatus::Verified),
        )
        .col_expr(Column::EmailDomainVerifiedAt, Expr::value(Utc::now()))
        .filter(Column::Id.eq(org.id))
        .filter(Column::EmailDomain.eq(proved.domain));
    if let Some(token) = proved.token {
        update = update.filter(Column::EmailDomainToken.eq(token));
    }
    let done = update.exec(&state.db).await.on_unique_violation(
        "input.organizationId",
        "another organization holds this email domain verified",
    )?;
    if done.rows_affected == 0 {
        return Err(Error::Conflict {
            field: None,
            message: "the claim changed while it was checked; check it again".into(),
        });
    }
    let org = organizations::Entity::find_by_id(org.id)
        .one(&state.db)
        .await
        .context("loading an organization")?
        .ok_or(Error::NotFound("organization"))?;
    let entry = Audit::new(action)
        .org(org.id)
        .target("organization", org.id);
    audit::record(&state.db, viewer, entry).await?;
    Ok(org)
}
