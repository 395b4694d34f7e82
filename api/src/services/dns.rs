//! DNS zones (domains) of an organization and the credential that manages each at the
//! provider. Records live in [`records`]; name and value parsers in [`values`].
//!
//! Invariant: a domain's credential belongs to its organization and can manage Route 53:
//! an AWS key scoped to the account, to the `route53` service, or to a Route 53 resource.
//! Syncing with the provider is a workflow's job; here are the records and their rules.

pub mod records;
pub mod values;

use anyhow::Context;
use entity::WriteTxn as _;
use entity::{
    credentials, dns_records, domains,
    enums::{CredentialKind, CredentialScope, DomainStatus, MemberRole},
};
use sea_orm::{
    ActiveModelBehavior, ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait,
    PaginatorTrait, QueryFilter, Select, Set,
};
use uuid::Uuid;

use crate::{
    Error, Result,
    error::OnUniqueViolation,
    services::{
        audit::{self, Audit},
        pagination::{Page, PageRequest, fetch_page},
    },
    state::AppState,
    viewer::Viewer,
};

const DUPLICATE_ZONE: &str = "the organization already has a domain with this zone name";

/// The domains `viewer` may see.
pub fn visible(viewer: &Viewer) -> Select<domains::Entity> {
    domains::Entity::find().filter(viewer.visible_orgs(domains::Column::OrganizationId))
}

fn of_org(viewer: &Viewer, org: Uuid) -> Select<domains::Entity> {
    visible(viewer).filter(domains::Column::OrganizationId.eq(org))
}

/// A page of an organization's domains (viewers and above).
pub async fn list(
    state: &AppState,
    viewer: &Viewer,
    org: Uuid,
    page: &PageRequest,
) -> Result<Page<domains::Model>> {
    viewer.require_role(org, MemberRole::Viewer)?;
    fetch_page(&state.db, of_org(viewer, org), domains::Column::Id, page).await
}

/// How many domains an organization has.
pub async fn count(state: &AppState, viewer: &Viewer, org: Uuid) -> Result<u64> {
    Ok(of_org(viewer, org).count(&state.db).await?)
}

/// One domain, if visible.
pub async fn find<C: ConnectionTrait>(
    db: &C,
    viewer: &Viewer,
    id: Uuid,
) -> Result<Option<domains::Model>> {
    Ok(visible(viewer)
        .filter(domains::Column::Id.eq(id))
        .one(db)
        .await
        .context("loading a domain")?)
}

/// A visible domain on which `viewer` holds at least `min`.
pub async fn get_for<C: ConnectionTrait>(
    db: &C,
    viewer: &Viewer,
    id: Uuid,
    min: MemberRole,
) -> Result<domains::Model> {
    let domain = find(db, viewer, id)
        .await?
        .ok_or(Error::NotFound("domain"))?;
    viewer.require_role(domain.organization_id, min)?;
    Ok(domain)
}

/// Checks that credential `id` is `org`'s and can manage Route 53 zones.
async fn check_credential<C: ConnectionTrait>(db: &C, org: Uuid, id: Uuid) -> Result<()> {
    let field = "input.credentialId";
    let credential = credentials::Entity::find_by_id(id)
        .filter(credentials::Column::OrganizationId.eq(org))
        .one(db)
        .await
        .context("loading a domain's credential")?
        .ok_or_else(|| Error::bad_input(field, "no such credential in this organization"))?;
    if credential.kind != CredentialKind::AwsAccessKey {
        return Err(Error::bad_input(field, "a domain needs an AWS access key"));
    }
    let value = credential.scope_value.as_deref().unwrap_or("");
    let covers_route53 = match credential.scope_kind {
        CredentialScope::Account => true,
        CredentialScope::Service => value == "route53",
        CredentialScope::Resource => value.contains(":route53:") || value.contains("hostedzone"),
    };
    if !covers_route53 {
        return Err(Error::bad_input(
            field,
            "the credential's scope does not cover Route 53",
        ));
    }
    Ok(())
}

/// A domain to create, validated.
pub struct NewDomain {
    pub zone_name: String,
    pub provider_zone_id: Option<String>,
    pub credential_id: Option<Uuid>,
}

/// Creates a domain in `org` (members and above), `PENDING` until the provider confirms it.
pub async fn create(
    state: &AppState,
    viewer: &Viewer,
    org: Uuid,
    new: NewDomain,
) -> Result<domains::Model> {
    viewer.require_role(org, MemberRole::Member)?;
    let txn = state.db.begin_write().await?;
    if let Some(credential) = new.credential_id {
        check_credential(&txn, org, credential).await?;
    }
    let mut row = domains::ActiveModel::new();
    row.organization_id = Set(org);
    row.zone_name = Set(new.zone_name);
    row.provider_zone_id = Set(new.provider_zone_id);
    row.credential_id = Set(new.credential_id);
    row.status = Set(DomainStatus::Pending);
    let domain = row
        .insert(&txn)
        .await
        .on_unique_violation("input.zoneName", DUPLICATE_ZONE)?;
    let entry = Audit::new("domain.create")
        .org(org)
        .target("domain", domain.id);
    audit::record(&txn, viewer, entry).await?;
    txn.commit().await?;
    Ok(domain)
}

/// Changes to a domain: `None` leaves a field as it is, `Some(None)` clears it.
#[derive(Default)]
pub struct DomainChange {
    pub provider_zone_id: Option<Option<String>>,
    pub credential_id: Option<Option<Uuid>>,
}

/// Updates a domain (members and above).
pub async fn update(
    state: &AppState,
    viewer: &Viewer,
    id: Uuid,
    change: DomainChange,
) -> Result<domains::Model> {
    let txn = state.db.begin_write().await?;
    let domain = get_for(&txn, viewer, id, MemberRole::Member).await?;
    let org = domain.organization_id;
    if let Some(Some(credential)) = change.credential_id {
        check_credential(&txn, org, credential).await?;
    }
    let mut row: domains::ActiveModel = domain.into();
    if let Some(zone_id) = change.provider_zone_id {
        row.provider_zone_id = Set(zone_id);
    }
    if let Some(credential) = change.credential_id {
        row.credential_id = Set(credential);
    }
    let domain = row.update(&txn).await?;
    let entry = Audit::new("domain.update").org(org).target("domain", id);
    audit::record(&txn, viewer, entry).await?;
    txn.commit().await?;
    Ok(domain)
}

/// Deletes a domain (admins and above); its clusters stay, without a zone (SET NULL). When
/// none of its records was ever synced it goes at once, records and all. Otherwise its
/// records are marked `ABSENT` and the domain becomes `DELETING`: the DNS reconcile removes
/// the records at the provider first, then the rows.
pub async fn delete(state: &AppState, viewer: &Viewer, id: Uuid) -> Result<domains::Model> {
    let txn = state.db.begin_write().await?;
    let domain = get_for(&txn, viewer, id, MemberRole::Admin).await?;
    let which = Condition::all().add(dns_records::Column::DomainId.eq(id));
    let published = records::release(&txn, which, false).await?;
    let domain = if published > 0 {
        // The rows go with the domain: it stays, DELETING, until the reconcile has removed
        // its records at the provider.
        let mut row: domains::ActiveModel = domain.into();
        row.status = Set(DomainStatus::Deleting);
        row.update(&txn).await?
    } else {
        domains::Entity::delete_by_id(id).exec(&txn).await?;
        domain
    };
    let entry = Audit::new("domain.delete")
        .org(domain.organization_id)
        .target("domain", id);
    audit::record(&txn, viewer, entry).await?;
    txn.commit().await?;
    Ok(domain)
}
