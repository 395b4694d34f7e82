//! Clusters: a K3s cluster an organization runs, with its metadata and sealed kubeconfig.
//! Provisioning and destruction are workflows; here are the records and their rules.

use anyhow::Context;
use entity::{
    cluster_metadata, clusters,
    enums::{ClusterStatus, MemberRole, NodePoolRole, ServerRole, WorkflowStatus},
    node_pools, servers, workflow_runs,
};
use sea_orm::{
    ActiveModelBehavior, ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait,
    PaginatorTrait, QueryFilter, Select, Set, TransactionTrait,
};
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;
use vault::SealContext;

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

/// The K3s version of a cluster created without one.
pub const DEFAULT_K3S_VERSION: &str = "v1.31.4+k3s1";

/// Which clusters to list.
#[derive(Debug, Default, Clone)]
pub struct ClusterFilter {
    pub statuses: Vec<ClusterStatus>,
    pub name_prefix: Option<String>,
}

/// The clusters `viewer` may see.
pub fn visible(viewer: &Viewer) -> Select<clusters::Entity> {
    clusters::Entity::find().filter(viewer.visible_orgs(clusters::Column::OrganizationId))
}

fn filtered(viewer: &Viewer, org: Uuid, filter: &ClusterFilter) -> Select<clusters::Entity> {
    let mut q = visible(viewer).filter(clusters::Column::OrganizationId.eq(org));
    if !filter.statuses.is_empty() {
        q = q.filter(clusters::Column::Status.is_in(filter.statuses.clone()));
    }
    if let Some(prefix) = &filter.name_prefix {
        q = q.filter(clusters::Column::Name.starts_with(prefix));
    }
    q
}

/// A page of an organization's clusters.
pub async fn list(
    state: &AppState,
    viewer: &Viewer,
    org: Uuid,
    filter: &ClusterFilter,
    page: &PageRequest,
) -> Result<Page<clusters::Model>> {
    viewer.require_role(org, MemberRole::Viewer)?;
    fetch_page(
        &state.db,
        filtered(viewer, org, filter),
        clusters::Column::Id,
        page,
    )
    .await
}

/// How many clusters match.
pub async fn count(
    state: &AppState,
    viewer: &Viewer,
    org: Uuid,
    filter: &ClusterFilter,
) -> Result<u64> {
    Ok(filtered(viewer, org, filter).count(&state.db).await?)
}

/// One cluster, if visible.
pub async fn find<C: ConnectionTrait>(
    db: &C,
    viewer: &Viewer,
    id: Uuid,
) -> Result<Option<clusters::Model>> {
    Ok(visible(viewer)
        .filter(clusters::Column::Id.eq(id))
        .one(db)
        .await
        .context("loading a cluster")?)
}

async fn get_for<C: ConnectionTrait>(
    db: &C,
    viewer: &Viewer,
    id: Uuid,
    min: MemberRole,
) -> Result<clusters::Model> {
    let cluster = find(db, viewer, id)
        .await?
        .ok_or(Error::NotFound("cluster"))?;
    viewer.require_role(cluster.organization_id, min)?;
    Ok(cluster)
}

/// A cluster to create, validated.
pub struct NewCluster {
    pub name: String,
    pub k3s_version: Option<String>,
    pub region: Option<String>,
    pub metadata: Vec<(String, String)>,
}

/// Creates a cluster in `org` (members and above), `PENDING` until provisioned.
pub async fn create(
    state: &AppState,
    viewer: &Viewer,
    org: Uuid,
    new: NewCluster,
) -> Result<clusters::Model> {
    viewer.require_role(org, MemberRole::Member)?;
    let txn = state.db.begin().await?;
    let mut row = clusters::ActiveModel::new();
    row.organization_id = Set(org);
    row.name = Set(new.name);
    row.status = Set(ClusterStatus::Pending);
    row.k3s_version = Set(new
        .k3s_version
        .unwrap_or_else(|| DEFAULT_K3S_VERSION.into()));
    row.region = Set(new.region);
    let cluster = row.insert(&txn).await.on_unique_violation(
        "input.name",
        "the organization already has a cluster with this name",
    )?;
    replace_metadata(&txn, &cluster, &new.metadata).await?;
    audit::record(
        &txn,
        viewer,
        Audit::new("cluster.create")
            .org(org)
            .target("cluster", cluster.id),
    )
    .await?;
    txn.commit().await?;
    Ok(cluster)
}

/// Changes to a cluster; `None` leaves a field as it is.
#[derive(Default)]
pub struct ClusterChange {
    pub name: Option<String>,
    pub k3s_version: Option<String>,
    pub region: Option<Option<String>>,
    pub metadata: Option<Vec<(String, String)>>,
}

/// Updates a cluster (members and above). Metadata is replaced as a whole set.
pub async fn update(
    state: &AppState,
    viewer: &Viewer,
    id: Uuid,
    change: ClusterChange,
) -> Result<clusters::Model> {
    let txn = state.db.begin().await?;
    let cluster = get_for(&txn, viewer, id, MemberRole::Member).await?;
    let org = cluster.organization_id;
    let mut row: clusters::ActiveModel = cluster.into();
    if let Some(name) = change.name {
        row.name = Set(name);
    }
    if let Some(version) = change.k3s_version {
        row.k3s_version = Set(version);
    }
    if let Some(region) = change.region {
        row.region = Set(region);
    }
    let cluster = row.update(&txn).await.on_unique_violation(
        "input.name",
        "the organization already has a cluster with this name",
    )?;
    if let Some(metadata) = change.metadata {
        replace_metadata(&txn, &cluster, &metadata).await?;
    }
    audit::record(
        &txn,
        viewer,
        Audit::new("cluster.update").org(org).target("cluster", id),
    )
    .await?;
    txn.commit().await?;
    Ok(cluster)
}

async fn replace_metadata<C: ConnectionTrait>(
    db: &C,
    cluster: &clusters::Model,
    entries: &[(String, String)],
) -> Result<()> {
    cluster_metadata::Entity::delete_many()
        .filter(cluster_metadata::Column::ClusterId.eq(cluster.id))
        .exec(db)
        .await?;
    if entries.is_empty() {
        return Ok(());
    }
    let rows = entries.iter().map(|(k, v)| {
        let mut row = cluster_metadata::ActiveModel::new();
        row.organization_id = Set(cluster.organization_id);
        row.cluster_id = Set(cluster.id);
        row.key = Set(k.clone());
        row.value = Set(v.clone());
        row
    });
    cluster_metadata::Entity::insert_many(rows)
        .exec(db)
        .await
        .on_unique_violation("input.metadata", "metadata keys must be unique")?;
    Ok(())
}

/// Deletes a cluster and everything it owns (admins and above), unless a workflow run is
/// still active on it: destruction of real machines goes through the destroy workflow.
pub async fn delete(state: &AppState, viewer: &Viewer, id: Uuid) -> Result<clusters::Model> {
    let txn = state.db.begin().await?;
    let cluster = get_for(&txn, viewer, id, MemberRole::Admin).await?;
    let active = workflow_runs::Entity::find()
        .filter(workflow_runs::Column::ClusterId.eq(id))
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
            message: "a workflow run is active on this cluster; cancel it first".into(),
        });
    }
    clusters::Entity::delete_by_id(id).exec(&txn).await?;
    audit::record(
        &txn,
        viewer,
        Audit::new("cluster.delete")
            .org(cluster.organization_id)
            .target("cluster", id),
    )
    .await?;
    txn.commit().await?;
    Ok(cluster)
}

fn kubeconfig_context(id: Uuid) -> SealContext<'static> {
    SealContext::new("clusters", "kubeconfig_sealed", id)
}

/// Stores a cluster's kubeconfig, sealed (admins and above).
pub async fn set_kubeconfig(
    state: &AppState,
    viewer: &Viewer,
    id: Uuid,
    kubeconfig: SecretString,
) -> Result<clusters::Model> {
    let cluster = get_for(&state.db, viewer, id, MemberRole::Admin).await?;
    let key = state
        .keys
        .for_org(&state.db, cluster.organization_id)
        .await?;
    let sealed = key.seal(
        &kubeconfig_context(id),
        kubeconfig.expose_secret().as_bytes(),
    );
    let org = cluster.organization_id;
    let mut row: clusters::ActiveModel = cluster.into();
    row.kubeconfig_sealed = Set(Some(sealed));
    let cluster = row.update(&state.db).await?;
    audit::record(
        &state.db,
        viewer,
        Audit::new("cluster.set_kubeconfig")
            .org(org)
            .target("cluster", id),
    )
    .await?;
    Ok(cluster)
}

/// Reveals a cluster's kubeconfig (admins and above), writing the audit log.
pub async fn reveal_kubeconfig(
    state: &AppState,
    viewer: &Viewer,
    id: Uuid,
) -> Result<Option<String>> {
    let cluster = get_for(&state.db, viewer, id, MemberRole::Admin).await?;
    let Some(sealed) = &cluster.kubeconfig_sealed else {
        return Ok(None);
    };
    let key = state
        .keys
        .for_org(&state.db, cluster.organization_id)
        .await?;
    let plain = key
        .open(&kubeconfig_context(id), sealed)
        .map_err(|e| anyhow::anyhow!("opening the kubeconfig of cluster {id}: {e}"))?;
    let text = String::from_utf8(plain.to_vec()).context("kubeconfig is not UTF-8")?;
    audit::record(
        &state.db,
        viewer,
        Audit::new("cluster.reveal_kubeconfig")
            .org(cluster.organization_id)
            .target("cluster", id),
    )
    .await?;
    Ok(Some(text))
}

/// What a cluster still lacks before it can be provisioned; empty when ready.
pub async fn missing_for_provisioning<C: ConnectionTrait>(
    db: &C,
    cluster: &clusters::Model,
) -> Result<Vec<String>> {
    let pools = node_pools::Entity::find()
        .filter(node_pools::Column::ClusterId.eq(cluster.id))
        .all(db)
        .await?;
    let servers = servers::Entity::find()
        .filter(servers::Column::ClusterId.eq(cluster.id))
        .all(db)
        .await?;
    let mut missing = Vec::new();
    if !servers.iter().any(|s| s.role == ServerRole::Bastion) {
        missing.push("a bastion server".to_owned());
    }
    if !pools.iter().any(|p| p.role == NodePoolRole::ControlPlane) {
        missing.push("a control-plane node pool".to_owned());
    }
    if !servers.iter().any(|s| s.role == ServerRole::ControlPlane) {
        missing.push("a control-plane server".to_owned());
    }
    if servers.iter().any(|s| s.ssh_key_id.is_none()) {
        missing.push("an SSH key on every server".to_owned());
    }
    if cluster.domain_id.is_none() {
        missing.push("a domain".to_owned());
    }
    Ok(missing)
}
