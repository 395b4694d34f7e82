//! Load balancers in front of a cluster: exposure, purpose, listeners and addresses.
//!
//! Invariants: names are unique per organization; listeners are unique by (port, protocol)
//! and stored as a JSON array of [`Listener`]; addresses are IPs or host names; a cluster
//! has at most one `apps` and one `control_plane` load balancer (they are its
//! `appsLoadBalancer` and `controlPlaneLoadBalancer`; a partial unique index backs the check
//! here). Creating the load balancer at a provider is not done here.

use anyhow::Context;
use entity::WriteTxn as _;
use entity::{
    enums::{LoadBalancerKind, LoadBalancerPurpose, MemberRole},
    load_balancers,
};
use sea_orm::{
    ActiveModelBehavior, ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait,
    PaginatorTrait, QueryFilter, Select, Set,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    Error, Result,
    error::OnUniqueViolation,
    services::{
        audit::{self, Audit},
        clusters,
        pagination::{Page, PageRequest, fetch_page},
        validate,
    },
    state::AppState,
    viewer::Viewer,
};

const DUPLICATE_NAME: &str = "the organization already has a load balancer with this name";

/// Protocol a listener accepts.
#[derive(async_graphql::Enum, Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListenerProtocol {
    Tcp,
    Udp,
    Http,
    Https,
}

/// A port a load balancer listens on and the port it forwards to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listener {
    pub port: u16,
    pub protocol: ListenerProtocol,
    pub target_port: u16,
}

fn port(value: i32, field: &str) -> Result<u16> {
    u16::try_from(value)
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| Error::bad_input(field, "port must be 1 to 65535"))
}

/// Checks listeners as `(port, protocol, target port)`; errors name `{field}.{index}.*`.
pub fn parse_listeners(
    raw: &[(i32, ListenerProtocol, Option<i32>)],
    field: &str,
) -> Result<Vec<Listener>> {
    let mut listeners: Vec<Listener> = Vec::with_capacity(raw.len());
    for (i, &(p, protocol, target)) in raw.iter().enumerate() {
        let port = port(p, &format!("{field}.{i}.port"))?;
        let target_port = match target {
            Some(t) => self::port(t, &format!("{field}.{i}.targetPort"))?,
            None => port,
        };
        if listeners
            .iter()
            .any(|l| l.port == port && l.protocol == protocol)
        {
            return Err(Error::bad_input(
                format!("{field}.{i}"),
                "listeners must be unique by port and protocol",
            ));
        }
        listeners.push(Listener {
            port,
            protocol,
            target_port,
        });
    }
    Ok(listeners)
}

/// Checks addresses: each an IP address or a host name.
pub fn parse_addresses(raw: &[String], field: &str) -> Result<Vec<String>> {
    raw.iter()
        .enumerate()
        .map(|(i, a)| {
            let field = format!("{field}.{i}");
            validate::ip(a, &field).or_else(|_| {
                validate::hostname(a, &field)
                    .map_err(|_| Error::bad_input(&field, "not an IP address or host name"))
            })
        })
        .collect()
}

/// The listeners stored on a row.
pub fn listeners_of(row: &load_balancers::Model) -> Result<Vec<Listener>> {
    Ok(serde_json::from_value(row.listeners.clone()).context("reading listeners")?)
}

/// The addresses stored on a row.
pub fn addresses_of(row: &load_balancers::Model) -> Result<Vec<String>> {
    Ok(serde_json::from_value(row.addresses.clone()).context("reading addresses")?)
}

/// The load balancers `viewer` may see.
pub fn visible(viewer: &Viewer) -> Select<load_balancers::Entity> {
    load_balancers::Entity::find()
        .filter(viewer.visible_orgs(load_balancers::Column::OrganizationId))
}

fn filtered(viewer: &Viewer, org: Uuid, cluster: Option<Uuid>) -> Select<load_balancers::Entity> {
    let q = visible(viewer).filter(load_balancers::Column::OrganizationId.eq(org));
    match cluster {
        Some(c) => q.filter(load_balancers::Column::ClusterId.eq(c)),
        None => q,
    }
}

/// A page of an organization's load balancers, optionally of one cluster (viewers and above).
pub async fn list(
    state: &AppState,
    viewer: &Viewer,
    org: Uuid,
    cluster: Option<Uuid>,
    page: &PageRequest,
) -> Result<Page<load_balancers::Model>> {
    viewer.require_role(org, MemberRole::Viewer)?;
    let select = filtered(viewer, org, cluster);
    fetch_page(&state.db, select, load_balancers::Column::Id, page).await
}

/// How many load balancers match.
pub async fn count(
    state: &AppState,
    viewer: &Viewer,
    org: Uuid,
    cluster: Option<Uuid>,
) -> Result<u64> {
    Ok(filtered(viewer, org, cluster).count(&state.db).await?)
}

/// One load balancer, if visible.
pub async fn find<C: ConnectionTrait>(
    db: &C,
    viewer: &Viewer,
    id: Uuid,
) -> Result<Option<load_balancers::Model>> {
    Ok(visible(viewer)
        .filter(load_balancers::Column::Id.eq(id))
        .one(db)
        .await
        .context("loading a load balancer")?)
}

async fn get_for<C: ConnectionTrait>(
    db: &C,
    viewer: &Viewer,
    id: Uuid,
    min: MemberRole,
) -> Result<load_balancers::Model> {
    let lb = find(db, viewer, id)
        .await?
        .ok_or(Error::NotFound("load balancer"))?;
    viewer.require_role(lb.organization_id, min)?;
    Ok(lb)
}

async fn check_cluster<C: ConnectionTrait>(
    db: &C,
    viewer: &Viewer,
    org: Uuid,
    cluster: Uuid,
) -> Result<()> {
    let found = clusters::find(db, viewer, cluster).await?;
    if found.is_none_or(|c| c.organization_id != org) {
        return Err(Error::bad_input(
            "input.clusterId",
            "no such cluster in this organization",
        ));
    }
    Ok(())
}

/// Refuses a second `apps` or `control_plane` load balancer on one cluster (`except`: the
/// one being changed).
async fn check_purpose_free<C: ConnectionTrait>(
    db: &C,
    cluster: Option<Uuid>,
    purpose: LoadBalancerPurpose,
    except: Option<Uuid>,
) -> Result<()> {
    let Some(cluster) = cluster else {
        return Ok(());
    };
    let what = match purpose {
        LoadBalancerPurpose::Apps => "an apps",
        LoadBalancerPurpose::ControlPlane => "a control-plane",
        LoadBalancerPurpose::Other => return Ok(()),
    };
    let mut q = load_balancers::Entity::find()
        .filter(load_balancers::Column::ClusterId.eq(cluster))
        .filter(load_balancers::Column::Purpose.eq(purpose));
    if let Some(id) = except {
        q = q.filter(load_balancers::Column::Id.ne(id));
    }
    if let Some(other) = q.one(db).await.context("loading load balancers")? {
        return Err(Error::conflict(
            "input.purpose",
            format!(
                "the cluster already has {what} load balancer ({})",
                other.name
            ),
        ));
    }
    Ok(())
}

/// A load balancer to create, validated.
pub struct NewLoadBalancer {
    pub name: String,
    pub cluster_id: Option<Uuid>,
    pub kind: LoadBalancerKind,
    pub purpose: LoadBalancerPurpose,
    pub listeners: Vec<Listener>,
    pub addresses: Vec<String>,
}

/// Creates a load balancer in `org` (members and above).
pub async fn create(
    state: &AppState,
    viewer: &Viewer,
    org: Uuid,
    new: NewLoadBalancer,
) -> Result<load_balancers::Model> {
    viewer.require_role(org, MemberRole::Member)?;
    let txn = state.db.begin_write().await?;
    if let Some(cluster) = new.cluster_id {
        check_cluster(&txn, viewer, org, cluster).await?;
    }
    check_purpose_free(&txn, new.cluster_id, new.purpose, None).await?;
    let mut row = load_balancers::ActiveModel::new();
    row.organization_id = Set(org);
    row.cluster_id = Set(new.cluster_id);
    row.name = Set(new.name);
    row.kind = Set(new.kind);
    row.purpose = Set(new.purpose);
    row.listeners = Set(serde_json::to_value(&new.listeners).context("encoding listeners")?);
    row.addresses = Set(serde_json::to_value(&new.addresses).context("encoding addresses")?);
    let lb = row
        .insert(&txn)
        .await
        .on_unique_violation("input.name", DUPLICATE_NAME)?;
    let entry = Audit::new("load_balancer.create")
        .org(org)
        .target("load_balancer", lb.id);
    audit::record(&txn, viewer, entry).await?;
    txn.commit().await?;
    Ok(lb)
}

/// Changes to a load balancer: `None` leaves a field as it is, `Some(None)` clears it.
#[derive(Default)]
pub struct LoadBalancerChange {
    pub name: Option<String>,
    pub cluster_id: Option<Option<Uuid>>,
    pub kind: Option<LoadBalancerKind>,
    pub purpose: Option<LoadBalancerPurpose>,
    pub listeners: Option<Vec<Listener>>,
    pub addresses: Option<Vec<String>>,
}

/// Updates a load balancer (members and above); listeners and addresses are replaced whole.
pub async fn update(
    state: &AppState,
    viewer: &Viewer,
    id: Uuid,
    change: LoadBalancerChange,
) -> Result<load_balancers::Model> {
    let txn = state.db.begin_write().await?;
    let lb = get_for(&txn, viewer, id, MemberRole::Member).await?;
    let org = lb.organization_id;
    if let Some(Some(cluster)) = change.cluster_id {
        check_cluster(&txn, viewer, org, cluster).await?;
    }
    let cluster = change.cluster_id.unwrap_or(lb.cluster_id);
    let purpose = change.purpose.unwrap_or(lb.purpose);
    check_purpose_free(&txn, cluster, purpose, Some(lb.id)).await?;
    let mut row: load_balancers::ActiveModel = lb.into();
    if let Some(name) = change.name {
        row.name = Set(name);
    }
    if let Some(cluster) = change.cluster_id {
        row.cluster_id = Set(cluster);
    }
    if let Some(kind) = change.kind {
        row.kind = Set(kind);
    }
    if let Some(purpose) = change.purpose {
        row.purpose = Set(purpose);
    }
    if let Some(listeners) = change.listeners {
        row.listeners = Set(serde_json::to_value(&listeners).context("encoding listeners")?);
    }
    if let Some(addresses) = change.addresses {
        row.addresses = Set(serde_json::to_value(&addresses).context("encoding addresses")?);
    }
    let lb = row
        .update(&txn)
        .await
        .on_unique_violation("input.name", DUPLICATE_NAME)?;
    let entry = Audit::new("load_balancer.update")
        .org(org)
        .target("load_balancer", id);
    audit::record(&txn, viewer, entry).await?;
    txn.commit().await?;
    Ok(lb)
}

/// Deletes a load balancer record (admins and above).
pub async fn delete(state: &AppState, viewer: &Viewer, id: Uuid) -> Result<load_balancers::Model> {
    let txn = state.db.begin_write().await?;
    let lb = get_for(&txn, viewer, id, MemberRole::Admin).await?;
    load_balancers::Entity::delete_by_id(id).exec(&txn).await?;
    let entry = Audit::new("load_balancer.delete")
        .org(lb.organization_id)
        .target("load_balancer", id);
    audit::record(&txn, viewer, entry).await?;
    txn.commit().await?;
    Ok(lb)
}
