//! Relay's `Node` interface and the `node(id)` query.

use async_graphql::{Context, ID, Interface, Object};
use entity::{api_keys, enums::MemberRole, memberships, organization_keys};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use super::{
    api_keys::{ApiKey, OrganizationKey},
    audit::AuditEntry,
    organizations::Organization,
    relay::{GlobalId, NodeKind},
    state,
    users::{Membership, User},
};
use crate::{
    Result,
    services::{organizations as orgs, users},
    viewer::viewer,
};

/// An object with a global ID, fetchable through `node(id)`.
#[derive(Interface)]
#[graphql(field(name = "id", ty = "ID", desc = "Global ID."))]
pub enum Node {
    Organization(Organization),
    User(User),
    Membership(Membership),
    ApiKey(ApiKey),
    OrganizationKey(OrganizationKey),
    AuditEntry(AuditEntry),
}

#[derive(Default)]
pub struct NodeQuery;

#[Object]
impl NodeQuery {
    /// Any object by its global ID; null when it does not exist or is not visible to you.
    async fn node(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Node>> {
        let global = GlobalId::decode(&id, "id")?;
        let (state, viewer) = (state(ctx), viewer(ctx));
        let db = &state.db;
        Ok(match global.kind {
            NodeKind::Organization => orgs::find_organization(state, viewer, global.id)
                .await?
                .map(|o| Node::Organization(Organization(o))),
            // Yourself, or anyone for an instance admin.
            NodeKind::User => match viewer.require_user() {
                Ok(me) if me.id == global.id || me.is_admin => users::find_user(db, global.id)
                    .await?
                    .map(|u| Node::User(User(u))),
                _ => None,
            },
            NodeKind::Membership => memberships::Entity::find_by_id(global.id)
                .filter(viewer.visible_orgs(memberships::Column::OrganizationId))
                .one(db)
                .await?
                .map(|m| Node::Membership(Membership(m))),
            NodeKind::ApiKey => match viewer.require_user() {
                Ok(me) => api_keys::Entity::find_by_id(global.id)
                    .filter(api_keys::Column::UserId.eq(me.id))
                    .one(db)
                    .await?
                    .map(|k| Node::ApiKey(ApiKey(k))),
                Err(_) => None,
            },
            NodeKind::OrganizationKey => organization_keys::Entity::find_by_id(global.id)
                .filter(viewer.visible_orgs(organization_keys::Column::OrganizationId))
                .one(db)
                .await?
                .filter(|k| {
                    viewer
                        .require_role(k.organization_id, MemberRole::Admin)
                        .is_ok()
                })
                .map(|k| Node::OrganizationKey(OrganizationKey(k))),
            // Audit entries are read through `Organization.auditLog`.
            NodeKind::AuditEntry => None,
        })
    }
}
