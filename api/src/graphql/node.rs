//! Relay's `Node` interface and the `node(id)` query.

use async_graphql::{Context, ID, Interface, Object};
use entity::{api_keys, enums::MemberRole, memberships, organization_keys};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use super::{
    api_keys::{ApiKey, OrganizationKey},
    audit::AuditEntry,
    credentials::Credential,
    dns::{DnsRecord, Domain},
    fleet::{Cluster, NodePool, Server},
    load_balancers::LoadBalancer,
    organizations::Organization,
    relay::{GlobalId, NodeKind},
    ssh_keys::SshKey,
    state,
    users::{Membership, User},
    workflows::{WorkflowLog, WorkflowRun, WorkflowStep},
};
use crate::{
    Result,
    services::{clusters as fleet_clusters, node_pools as fleet_pools, servers as fleet_servers},
    services::{credentials as creds, ssh_keys as keys},
    services::{dns as dns_domains, dns::records as dns_records, load_balancers as lbs},
    services::{organizations as orgs, users, workflow_runs as runs},
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
    Cluster(Cluster),
    NodePool(NodePool),
    Server(Server),
    SshKey(SshKey),
    Credential(Credential),
    Domain(Domain),
    DnsRecord(DnsRecord),
    LoadBalancer(LoadBalancer),
    WorkflowRun(WorkflowRun),
    WorkflowStep(WorkflowStep),
    WorkflowLog(WorkflowLog),
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
            NodeKind::SshKey => keys::find_ssh_key(state, viewer, global.id)
                .await?
                .map(|k| Node::SshKey(SshKey::new(k))),
            NodeKind::Credential => creds::find_credential(state, viewer, global.id)
                .await?
                .map(|c| Node::Credential(Credential(c))),
            NodeKind::Cluster => fleet_clusters::find(db, viewer, global.id)
                .await?
                .map(|c| Node::Cluster(Cluster(c))),
            NodeKind::NodePool => fleet_pools::find(db, viewer, global.id)
                .await?
                .map(|p| Node::NodePool(NodePool(p.into()))),
            NodeKind::Server => fleet_servers::find(db, viewer, global.id)
                .await?
                .map(|s| Node::Server(Server(s.into()))),
            NodeKind::Domain => dns_domains::find(db, viewer, global.id)
                .await?
                .map(|d| Node::Domain(Domain(d))),
            NodeKind::DnsRecord => dns_records::find(db, viewer, global.id)
                .await?
                .map(|r| Node::DnsRecord(DnsRecord(r))),
            NodeKind::LoadBalancer => lbs::find(db, viewer, global.id)
                .await?
                .map(|l| Node::LoadBalancer(LoadBalancer(l))),
            NodeKind::WorkflowRun => runs::find(db, viewer, global.id)
                .await?
                .map(|r| Node::WorkflowRun(WorkflowRun(r))),
            NodeKind::WorkflowStep => runs::find_visible_step(state, viewer, global.id)
                .await?
                .map(|s| Node::WorkflowStep(WorkflowStep(s))),
            NodeKind::WorkflowLog => runs::find_visible_log(state, viewer, global.id)
                .await?
                .map(|l| Node::WorkflowLog(WorkflowLog(l))),
        })
    }
}
