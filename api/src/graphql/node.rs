//! Relay's `Node` interface and the `node(id)` query.

use async_graphql::{Context, ID, Interface, Object};

use super::{
    organizations::Organization,
    relay::{GlobalId, NodeKind},
    state,
};
use crate::{Result, services::organizations as orgs, viewer::viewer};

/// An object with a global ID, fetchable through `node(id)`.
#[derive(Interface)]
#[graphql(field(name = "id", ty = "ID", desc = "Global ID."))]
pub enum Node {
    Organization(Organization),
}

#[derive(Default)]
pub struct NodeQuery;

#[Object]
impl NodeQuery {
    /// Any object by its global ID; null when it does not exist or is not visible to you.
    async fn node(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Node>> {
        let global = GlobalId::decode(&id, "id")?;
        let (state, viewer) = (state(ctx), viewer(ctx));
        Ok(match global.kind {
            NodeKind::Organization => orgs::find_organization(state, viewer, global.id)
                .await?
                .map(|o| Node::Organization(Organization(o))),
        })
    }
}
