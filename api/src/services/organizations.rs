//! Organizations: the tenants. Everything else a user owns belongs to one.

use anyhow::Context;
use entity::WriteTxn as _;
use entity::{enums::MemberRole, memberships, organizations};
use sea_orm::{
    ActiveModelBehavior, ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter,
    Select, Set,
};
use uuid::Uuid;

use crate::{
    Error, Result,
    bus::Event,
    error::OnUniqueViolation,
    services::audit::{self, Audit},
    services::email_domains,
    services::pagination::{Page, PageRequest, fetch_page},
    state::AppState,
    viewer::Viewer,
};

/// A validated organization name: trimmed, 1 to 100 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrganizationName(String);

impl OrganizationName {
    /// Longest name accepted.
    pub const MAX_CHARS: usize = 100;

    /// Parses a name; `field` names the argument in the error.
    pub fn parse(raw: &str, field: &str) -> Result<Self> {
        let name = raw.trim();
        if name.is_empty() {
            return Err(Error::bad_input(field, "name must not be empty"));
        }
        if name.chars().count() > Self::MAX_CHARS {
            return Err(Error::bad_input(
                field,
                format!("name must be at most {} characters", Self::MAX_CHARS),
            ));
        }
        if name.chars().any(char::is_control) {
            return Err(Error::bad_input(
                field,
                "name must not contain control characters",
            ));
        }
        Ok(OrganizationName(name.to_owned()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What `create_organization` needs, already validated.
#[derive(Debug, Clone)]
pub struct NewOrganization {
    pub name: OrganizationName,
    pub description: Option<String>,
}

/// The organizations `viewer` may see, as a query to refine.
fn visible(viewer: &Viewer) -> Select<organizations::Entity> {
    organizations::Entity::find().filter(viewer.visible_orgs(organizations::Column::Id))
}

/// Creates an organization with the caller as its owner and its data key, in one
/// transaction, then announces it on the bus.
#[tracing::instrument(name = "create organization", skip_all, fields(name = %new.name.as_str()))]
pub async fn create_organization(
    state: &AppState,
    viewer: &Viewer,
    new: NewOrganization,
) -> Result<organizations::Model> {
    let me = viewer.require_user()?;
    state.quotas.take_creation(viewer)?;
    let txn = state.db.begin_write().await?;
    let mut model = organizations::ActiveModel::new();
    model.name = Set(new.name.as_str().to_owned());
    model.description = Set(new.description);
    let org = model.insert(&txn).await.on_unique_violation(
        "input.name",
        "an organization with this name already exists",
    )?;
    let mut owner = memberships::ActiveModel::new();
    owner.organization_id = Set(org.id);
    owner.user_id = Set(me.id);
    owner.role = Set(MemberRole::Owner);
    owner.insert(&txn).await?;
    state.keys.create_for(&txn, org.id).await?;
    let entry = Audit::new("organization.create")
        .org(org.id)
        .target("organization", org.id);
    audit::record(&txn, viewer, entry).await?;
    txn.commit().await?;
    state.bus.publish(Event::OrganizationCreated {
        organization_id: org.id,
    });
    Ok(org)
}

/// Changes to an organization; `None` leaves a field as it is, `Some(None)` clears it.
#[derive(Debug, Default)]
pub struct OrganizationChange {
    pub name: Option<OrganizationName>,
    pub description: Option<Option<String>>,
    pub email_domain: Option<Option<String>>,
}

/// Checks and normalizes an email domain such as `example.com`.
pub fn parse_email_domain(raw: &str, field: &str) -> Result<String> {
    let domain = raw.trim().trim_start_matches('@').to_lowercase();
    let labels_ok = domain.split('.').all(|l| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    });
    if domain.len() > 253 || !domain.contains('.') || !labels_ok {
        return Err(Error::bad_input(field, "not a valid domain name"));
    }
    Ok(domain)
}

/// Updates an organization (owners only: the email domain decides who joins).
pub async fn update_organization(
    state: &AppState,
    viewer: &Viewer,
    id: Uuid,
    change: OrganizationChange,
) -> Result<organizations::Model> {
    let org = find_organization(state, viewer, id)
        .await?
        .ok_or(Error::NotFound("organization"))?;
    viewer.require_role(org.id, MemberRole::Owner)?;
    let mut model: organizations::ActiveModel = org.into();
    if let Some(name) = change.name {
        model.name = Set(name.as_str().to_owned());
    }
    if let Some(description) = change.description {
        model.description = Set(description);
    }
    if let Some(domain) = change.email_domain {
        if let Some(domain) = &domain {
            email_domains::check_claimable(domain, "input.emailDomain")?;
        }
        let current = model.email_domain.clone().unwrap();
        email_domains::set_claim(&mut model, current.as_deref(), domain);
    }
    let org = model
        .update(&state.db)
        .await
        .on_unique_violation("input", "another organization already has this name")?;
    let entry = Audit::new("organization.update")
        .org(org.id)
        .target("organization", org.id);
    audit::record(&state.db, viewer, entry).await?;
    Ok(org)
}

/// Deletes an organization and everything it owns (owners only; refused while a workflow
/// run is active in it). The audit entry stays, its organization link cleared.
pub async fn delete_organization(
    state: &AppState,
    viewer: &Viewer,
    id: Uuid,
) -> Result<organizations::Model> {
    use entity::{enums::WorkflowStatus, workflow_runs};
    let org = find_organization(state, viewer, id)
        .await?
        .ok_or(Error::NotFound("organization"))?;
    viewer.require_role(org.id, MemberRole::Owner)?;
    let txn = state.db.begin_write().await?;
    let active = workflow_runs::Entity::find()
        .filter(workflow_runs::Column::OrganizationId.eq(id))
        .filter(workflow_runs::Column::Status.is_in([
            WorkflowStatus::Queued,
            WorkflowStatus::Running,
            WorkflowStatus::Retrying,
        ]))
        .count(&txn)
        .await?;
    if active > 0 {
        return Err(Error::Conflict {
            field: Some("input.id".into()),
            message: "workflow runs are active in this organization; cancel them first".into(),
        });
    }
    let entry = Audit::new("organization.delete")
        .org(id)
        .target("organization", id)
        .details(serde_json::json!({ "name": org.name }));
    audit::record(&txn, viewer, entry).await?;
    organizations::Entity::delete_by_id(id).exec(&txn).await?;
    txn.commit().await?;
    Ok(org)
}

/// One organization, if `viewer` may see it.
pub async fn find_organization(
    state: &AppState,
    viewer: &Viewer,
    id: Uuid,
) -> Result<Option<organizations::Model>> {
    let org = visible(viewer)
        .filter(organizations::Column::Id.eq(id))
        .one(&state.db)
        .await
        .context("loading an organization")?;
    Ok(org)
}

/// A page of the organizations `viewer` may see, oldest first.
pub async fn list_organizations(
    state: &AppState,
    viewer: &Viewer,
    page: &PageRequest,
) -> Result<Page<organizations::Model>> {
    fetch_page(&state.db, visible(viewer), organizations::Column::Id, page).await
}

/// How many organizations `viewer` may see.
pub async fn count_organizations(state: &AppState, viewer: &Viewer) -> Result<u64> {
    Ok(visible(viewer).count(&state.db).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_checked() {
        assert_eq!(
            OrganizationName::parse("  acme ", "n").unwrap().as_str(),
            "acme"
        );
        assert_eq!(
            OrganizationName::parse("   ", "input.name")
                .unwrap_err()
                .field(),
            Some("input.name")
        );
        assert!(OrganizationName::parse(&"x".repeat(101), "n").is_err());
        assert!(OrganizationName::parse("a\u{7}b", "n").is_err());
        assert!(OrganizationName::parse(&"é".repeat(100), "n").is_ok());
    }
}
