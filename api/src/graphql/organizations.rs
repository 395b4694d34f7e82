//! Organizations in GraphQL: the `Organization` type, its queries, mutations and events.

use async_graphql::{
    Context, ID, InputObject, MaybeUndefined, Object, SimpleObject, Subscription,
    futures_util::Stream,
};
use chrono::{DateTime, Utc};
use entity::{
    audit_log,
    enums::{EmailDomainStatus, MemberRole},
    organizations,
};
use futures_util::StreamExt;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};

use super::{
    api_keys::OrganizationKey,
    audit::AuditEntry,
    email_domains::EmailDomainChallenge,
    relay::{ConnectionFields, GlobalId, IdConnection, NodeKind, PageArgs, connection},
    state,
    users::Membership,
};
use crate::{
    Result,
    bus::Event,
    services::{
        api_keys, memberships as members,
        organizations::{self as service, NewOrganization, OrganizationName},
        pagination::fetch_page,
    },
    viewer::{Viewer, viewer},
};

/// A tenant: members, clusters and everything they own belong to one organization.
#[derive(Clone)]
pub struct Organization(pub organizations::Model);

#[Object]
impl Organization {
    /// Global ID.
    pub async fn id(&self) -> ID {
        GlobalId::encode(NodeKind::Organization, self.0.id)
    }
    /// Unique name.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// Free text shown next to the name.
    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }
    /// Email domain claimed by the organization: once the claim is `VERIFIED`, users who
    /// sign in with a verified address there join as members.
    async fn email_domain(&self) -> Option<&str> {
        self.0.email_domain.as_deref()
    }
    /// Whether the email domain claim is proved.
    async fn email_domain_status(&self) -> Option<EmailDomainStatus> {
        self.0.email_domain_status
    }
    /// The DNS TXT record that proves the claim (owners; null for others), checked by
    /// `verifyEmailDomain`.
    async fn email_domain_challenge(&self, ctx: &Context<'_>) -> Option<EmailDomainChallenge> {
        let owner = viewer(ctx).role_in(self.0.id) == Some(MemberRole::Owner);
        let (domain, token) = (
            self.0.email_domain.as_deref()?,
            self.0.email_domain_token.as_deref()?,
        );
        owner.then(|| EmailDomainChallenge::new(domain, token))
    }
    /// When it was created.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// When it last changed.
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    /// Your role here.
    async fn viewer_role(&self, ctx: &Context<'_>) -> Result<Option<MemberRole>> {
        // Read now, not from the request's start: the membership may be minutes old or
        // made by this very request (createOrganization).
        members::current_role(state(ctx), viewer(ctx), self.0.id).await
    }
    /// Who belongs to it.
    async fn members(&self, ctx: &Context<'_>) -> Result<Vec<Membership>> {
        let rows = members::list_members(state(ctx), viewer(ctx), self.0.id).await?;
        Ok(rows.into_iter().map(|(m, _)| Membership(m)).collect())
    }
    /// Its organization keys (admins and owners).
    async fn keys(&self, ctx: &Context<'_>) -> Result<Vec<OrganizationKey>> {
        let rows = api_keys::list_org_keys(state(ctx), viewer(ctx), self.0.id).await?;
        Ok(rows.into_iter().map(OrganizationKey).collect())
    }
    /// What was done in it, newest last (admins and owners).
    #[graphql(complexity = "(first.or(last).unwrap_or(20).max(0) as usize) * child_complexity + 1")]
    async fn audit_log(
        &self,
        ctx: &Context<'_>,
        after: Option<String>,
        before: Option<String>,
        first: Option<i32>,
        last: Option<i32>,
    ) -> Result<IdConnection<AuditEntry>> {
        let (state, viewer) = (state(ctx), viewer(ctx));
        viewer.require_role(self.0.id, MemberRole::Admin)?;
        let page = PageArgs {
            after,
            before,
            first,
            last,
        }
        .parse(state.config.graphql.max_page_size)?;
        let select =
            audit_log::Entity::find().filter(audit_log::Column::OrganizationId.eq(self.0.id));
        let items = fetch_page(&state.db, select.clone(), audit_log::Column::Id, &page).await?;
        let db = state.db.clone();
        let fields = ConnectionFields::new(move || {
            let (db, select) = (db.clone(), select.clone());
            async move { Ok(select.count(&db).await?) }
        });
        Ok(connection(items, fields, |e| e.id, AuditEntry))
    }
}

#[derive(Default)]
pub struct OrganizationQuery;

#[Object]
impl OrganizationQuery {
    /// One organization by ID; null when it does not exist or is not visible to you.
    async fn organization(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Organization>> {
        let id = GlobalId::expect(&id, NodeKind::Organization, "id")?;
        let org = service::find_organization(state(ctx), viewer(ctx), id).await?;
        Ok(org.map(Organization))
    }

    /// The organizations visible to you, oldest first.
    #[graphql(complexity = "(first.or(last).unwrap_or(20).max(0) as usize) * child_complexity + 1")]
    async fn organizations(
        &self,
        ctx: &Context<'_>,
        after: Option<String>,
        before: Option<String>,
        first: Option<i32>,
        last: Option<i32>,
    ) -> Result<IdConnection<Organization>> {
        let state = state(ctx);
        let page = PageArgs {
            after,
            before,
            first,
            last,
        }
        .parse(state.config.graphql.max_page_size)?;
        let viewer = viewer(ctx).clone();
        let items = service::list_organizations(state, &viewer, &page).await?;
        let counting = state.clone();
        let fields = ConnectionFields::new(move || {
            let (state, viewer) = (counting.clone(), viewer.clone());
            async move { service::count_organizations(&state, &viewer).await }
        });
        Ok(connection(items, fields, |o| o.id, Organization))
    }
}

/// Input of `createOrganization`.
#[derive(InputObject)]
pub struct CreateOrganizationInput {
    /// Unique name, 1 to 100 characters.
    pub name: String,
    /// Optional free text.
    pub description: Option<String>,
}

/// Result of `createOrganization`.
#[derive(SimpleObject)]
pub struct CreateOrganizationPayload {
    /// The new organization.
    pub organization: Organization,
}

/// Input of `updateOrganization`: omitted fields stay; `null` or `""` clears the optional ones.
#[derive(InputObject)]
pub struct UpdateOrganizationInput {
    pub id: ID,
    pub name: Option<String>,
    pub description: MaybeUndefined<String>,
    /// Claim an email domain (public mail domains are refused): the claim is `PENDING` until
    /// proved by its DNS TXT record (`verifyEmailDomain`) or an instance admin
    /// (`approveEmailDomain`); then users who sign in with a verified address there join.
    pub email_domain: MaybeUndefined<String>,
}

/// Input of `deleteOrganization`.
#[derive(InputObject)]
pub struct DeleteOrganizationInput {
    pub id: ID,
}

/// Result of `updateOrganization`.
#[derive(SimpleObject)]
pub struct UpdateOrganizationPayload {
    pub organization: Organization,
}

fn optional_text(value: MaybeUndefined<String>) -> Option<Option<String>> {
    match value {
        MaybeUndefined::Undefined => None,
        MaybeUndefined::Null => Some(None),
        MaybeUndefined::Value(v) => Some(Some(v.trim().to_owned()).filter(|v| !v.is_empty())),
    }
}

#[derive(Default)]
pub struct OrganizationMutation;

#[Object]
impl OrganizationMutation {
    /// Creates an organization.
    async fn create_organization(
        &self,
        ctx: &Context<'_>,
        input: CreateOrganizationInput,
    ) -> Result<CreateOrganizationPayload> {
        let new = NewOrganization {
            name: OrganizationName::parse(&input.name, "input.name")?,
            description: input.description.filter(|d| !d.trim().is_empty()),
        };
        let org = service::create_organization(state(ctx), viewer(ctx), new).await?;
        Ok(CreateOrganizationPayload {
            organization: Organization(org),
        })
    }

    /// Deletes an organization and everything it owns (owners).
    async fn delete_organization(
        &self,
        ctx: &Context<'_>,
        input: DeleteOrganizationInput,
    ) -> Result<UpdateOrganizationPayload> {
        let id = GlobalId::expect(&input.id, NodeKind::Organization, "input.id")?;
        let org = service::delete_organization(state(ctx), viewer(ctx), id).await?;
        Ok(UpdateOrganizationPayload {
            organization: Organization(org),
        })
    }

    /// Renames, describes or claims an email domain for an organization (owners).
    async fn update_organization(
        &self,
        ctx: &Context<'_>,
        input: UpdateOrganizationInput,
    ) -> Result<UpdateOrganizationPayload> {
        let id = GlobalId::expect(&input.id, NodeKind::Organization, "input.id")?;
        let email_domain = optional_text(input.email_domain)
            .map(|d| {
                d.map(|d| service::parse_email_domain(&d, "input.emailDomain"))
                    .transpose()
            })
            .transpose()?;
        let change = service::OrganizationChange {
            name: input
                .name
                .map(|n| OrganizationName::parse(&n, "input.name"))
                .transpose()?,
            description: optional_text(input.description),
            email_domain,
        };
        let org = service::update_organization(state(ctx), viewer(ctx), id, change).await?;
        Ok(UpdateOrganizationPayload {
            organization: Organization(org),
        })
    }
}

#[derive(Default)]
pub struct OrganizationSubscription;

#[Subscription]
impl OrganizationSubscription {
    /// Organizations created from now on that are visible to you.
    async fn organization_created(
        &self,
        ctx: &Context<'_>,
    ) -> impl Stream<Item = Organization> + use<> {
        let state = state(ctx).clone();
        let viewer: Viewer = viewer(ctx).clone();
        state.bus.subscribe().filter_map(move |event| {
            let (state, viewer) = (state.clone(), viewer.clone());
            async move {
                let Event::OrganizationCreated { organization_id } = event else {
                    return None;
                };
                // Authorized per subscriber and per event: the viewer must see it now.
                match service::find_organization(&state, &viewer, organization_id).await {
                    Ok(org) => org.map(Organization),
                    Err(e) => {
                        tracing::warn!(error = %e, "dropping an event that failed to load");
                        None
                    }
                }
            }
        })
    }
}
