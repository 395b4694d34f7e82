//! Servers: the machines of a cluster (bastion, control plane, workers), how to reach them
//! over SSH, and the host key pinned at first contact.

use anyhow::Context;
use entity::WriteTxn as _;
use entity::{
    enums::{MemberRole, ServerRole, ServerStatus},
    servers, ssh_keys,
};
use sea_orm::{
    ActiveModelBehavior, ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait,
    PaginatorTrait, QueryFilter, Select, Set,
};
use uuid::Uuid;

use crate::{
    Error, Result,
    error::OnUniqueViolation,
    services::{
        audit::{self, Audit},
        clusters, node_pools,
        pagination::{Page, PageRequest, fetch_page},
    },
    state::AppState,
    viewer::Viewer,
};

/// Which servers to list.
#[derive(Debug, Default, Clone)]
pub struct ServerFilter {
    pub cluster_id: Option<Uuid>,
    pub node_pool_id: Option<Uuid>,
    pub roles: Vec<ServerRole>,
    pub statuses: Vec<ServerStatus>,
}

/// Where a server sits and how to reach it, validated; every field is optional on update.
#[derive(Debug, Default, Clone)]
pub struct ServerFields {
    pub hostname: Option<String>,
    pub public_ip: Option<Option<String>>,
    pub private_ip: Option<Option<String>>,
    pub role: Option<ServerRole>,
    pub cluster_id: Option<Option<Uuid>>,
    pub node_pool_id: Option<Option<Uuid>>,
    pub ssh_user: Option<String>,
    pub ssh_port: Option<i32>,
    pub ssh_key_id: Option<Option<Uuid>>,
}

fn filtered(viewer: &Viewer, org: Uuid, f: &ServerFilter) -> Select<servers::Entity> {
    let mut q = servers::Entity::find()
        .filter(viewer.visible_orgs(servers::Column::OrganizationId))
        .filter(servers::Column::OrganizationId.eq(org));
    if let Some(c) = f.cluster_id {
        q = q.filter(servers::Column::ClusterId.eq(c));
    }
    if let Some(p) = f.node_pool_id {
        q = q.filter(servers::Column::NodePoolId.eq(p));
    }
    if !f.roles.is_empty() {
        q = q.filter(servers::Column::Role.is_in(f.roles.clone()));
    }
    if !f.statuses.is_empty() {
        q = q.filter(servers::Column::Status.is_in(f.statuses.clone()));
    }
    q
}

/// A page of an organization's servers.
pub async fn list(
    state: &AppState,
    viewer: &Viewer,
    org: Uuid,
    f: &ServerFilter,
    page: &PageRequest,
) -> Result<Page<servers::Model>> {
    viewer.require_role(org, MemberRole::Viewer)?;
    fetch_page(
        &state.db,
        filtered(viewer, org, f),
        servers::Column::Id,
        page,
    )
    .await
}

/// How many servers match.
pub async fn count(state: &AppState, viewer: &Viewer, org: Uuid, f: &ServerFilter) -> Result<u64> {
    Ok(filtered(viewer, org, f).count(&state.db).await?)
}

/// One server, if visible.
pub async fn find<C: ConnectionTrait>(
    db: &C,
    viewer: &Viewer,
    id: Uuid,
) -> Result<Option<servers::Model>> {
    Ok(servers::Entity::find_by_id(id)
        .filter(viewer.visible_orgs(servers::Column::OrganizationId))
        .one(db)
        .await
        .context("loading a server")?)
}

/// Checks that the referenced cluster, pool and SSH key are the organization's and agree
/// with each other, and that a bastion has a public address.
async fn check_refs<C: ConnectionTrait>(
    db: &C,
    viewer: &Viewer,
    org: Uuid,
    row: &servers::ActiveModel,
) -> Result<()> {
    let cluster = row.cluster_id.as_ref().to_owned();
    let pool = row.node_pool_id.as_ref().to_owned();
    if let Some(c) = cluster {
        let found = clusters::find(db, viewer, c)
            .await?
            .filter(|c| c.organization_id == org);
        found.ok_or_else(|| {
            Error::bad_input("input.clusterId", "no such cluster in this organization")
        })?;
    }
    if let Some(p) = pool {
        let found = node_pools::find(db, viewer, p)
            .await?
            .filter(|p| p.organization_id == org);
        let found = found.ok_or_else(|| {
            Error::bad_input("input.nodePoolId", "no such node pool in this organization")
        })?;
        if Some(found.cluster_id) != cluster {
            return Err(Error::bad_input(
                "input.nodePoolId",
                "the node pool belongs to another cluster",
            ));
        }
    }
    if let Some(k) = row.ssh_key_id.as_ref() {
        let found = ssh_keys::Entity::find_by_id(*k)
            .filter(ssh_keys::Column::OrganizationId.eq(org))
            .one(db)
            .await?;
        found.ok_or_else(|| {
            Error::bad_input("input.sshKeyId", "no such SSH key in this organization")
        })?;
    }
    if *row.role.as_ref() == ServerRole::Bastion && row.public_ip.as_ref().is_none() {
        return Err(Error::bad_input(
            "input.publicIp",
            "a bastion needs a public address",
        ));
    }
    Ok(())
}

fn apply(row: &mut servers::ActiveModel, f: ServerFields) {
    if let Some(v) = f.hostname {
        row.hostname = Set(v)
    }
    if let Some(v) = f.public_ip {
        row.public_ip = Set(v)
    }
    if let Some(v) = f.private_ip {
        row.private_ip = Set(v)
    }
    if let Some(v) = f.role {
        row.role = Set(v)
    }
    if let Some(v) = f.cluster_id {
        row.cluster_id = Set(v)
    }
    if let Some(v) = f.node_pool_id {
        row.node_pool_id = Set(v)
    }
    if let Some(v) = f.ssh_user {
        row.ssh_user = Set(v)
    }
    if let Some(v) = f.ssh_port {
        row.ssh_port = Set(v)
    }
    if let Some(v) = f.ssh_key_id {
        row.ssh_key_id = Set(v)
    }
}

async fn save<C: ConnectionTrait>(
    db: &C,
    row: servers::ActiveModel,
    insert: bool,
) -> Result<servers::Model> {
    let result = if insert {
        row.insert(db).await
    } else {
        row.update(db).await
    };
    result.on_unique_violation(
        "input",
        "the hostname is taken in this organization, or the cluster already has a bastion",
    )
}

/// Registers a server in `org` (members and above).
pub async fn register(
    state: &AppState,
    viewer: &Viewer,
    org: Uuid,
    f: ServerFields,
) -> Result<servers::Model> {
    viewer.require_role(org, MemberRole::Member)?;
    let txn = state.db.begin_write().await?;
    let mut row = servers::ActiveModel::new();
    row.organization_id = Set(org);
    row.status = Set(ServerStatus::Pending);
    (
        row.public_ip,
        row.private_ip,
        row.cluster_id,
        row.node_pool_id,
        row.ssh_key_id,
    ) = (Set(None), Set(None), Set(None), Set(None), Set(None));
    (row.ssh_user, row.ssh_port, row.host_key, row.status_message) =
        (Set("root".into()), Set(22), Set(None), Set(None));
    apply(&mut row, f);
    check_refs(&txn, viewer, org, &row).await?;
    let server = save(&txn, row, true).await?;
    audit::record(
        &txn,
        viewer,
        Audit::new("server.register")
            .org(org)
            .target("server", server.id),
    )
    .await?;
    txn.commit().await?;
    Ok(server)
}

/// Updates a server (members and above).
pub async fn update(
    state: &AppState,
    viewer: &Viewer,
    id: Uuid,
    f: ServerFields,
) -> Result<servers::Model> {
    let txn = state.db.begin_write().await?;
    let server = find(&txn, viewer, id)
        .await?
        .ok_or(Error::NotFound("server"))?;
    let org = server.organization_id;
    viewer.require_role(org, MemberRole::Member)?;
    let mut row: servers::ActiveModel = server.into();
    apply(&mut row, f);
    check_refs(&txn, viewer, org, &row).await?;
    let server = save(&txn, row, false).await?;
    audit::record(
        &txn,
        viewer,
        Audit::new("server.update").org(org).target("server", id),
    )
    .await?;
    txn.commit().await?;
    Ok(server)
}

/// Removes a server record (admins and above).
pub async fn remove(state: &AppState, viewer: &Viewer, id: Uuid) -> Result<servers::Model> {
    let txn = state.db.begin_write().await?;
    let server = find(&txn, viewer, id)
        .await?
        .ok_or(Error::NotFound("server"))?;
    viewer.require_role(server.organization_id, MemberRole::Admin)?;
    servers::Entity::delete_by_id(id).exec(&txn).await?;
    audit::record(
        &txn,
        viewer,
        Audit::new("server.remove")
            .org(server.organization_id)
            .target("server", id),
    )
    .await?;
    txn.commit().await?;
    Ok(server)
}

/// Forgets the pinned SSH host key, so the next connection pins a new one (admins).
pub async fn reset_host_key(state: &AppState, viewer: &Viewer, id: Uuid) -> Result<servers::Model> {
    let server = find(&state.db, viewer, id)
        .await?
        .ok_or(Error::NotFound("server"))?;
    let org = server.organization_id;
    viewer.require_role(org, MemberRole::Admin)?;
    let mut row: servers::ActiveModel = server.into();
    row.host_key = Set(None);
    let server = row.update(&state.db).await?;
    audit::record(
        &state.db,
        viewer,
        Audit::new("server.reset_host_key")
            .org(org)
            .target("server", id),
    )
    .await?;
    Ok(server)
}
