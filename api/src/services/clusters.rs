//! Clusters: a K3s cluster an organization runs, with its metadata and sealed kubeconfig.
//! Provisioning and destruction are workflows; here are the records and their rules.
//!
//! A cluster's links are kept where they cannot disagree: its domain in `domain_id` (same
//! organization, checked here); its control-plane DNS record is the `PRESENT` record with
//! purpose `control_plane` and its `cluster_id`, which must sit in the cluster's domain
//! (checked here and in [`super::dns::records`]); its apps and control-plane load balancers
//! are the load balancers with its `cluster_id` and that purpose, at most one each.

use anyhow::Context;
use entity::WriteTxn as _;
use entity::{
    cluster_metadata, clusters, dns_records,
    enums::{
        ClusterStatus, DnsDesiredState, DnsRecordPurpose, MemberRole, NodePoolRole, ServerRole,
        WorkflowStatus,
    },
    node_pools, servers, workflow_runs,
};
use sea_orm::{
    ActiveModelBehavior, ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait,
    Iterable, PaginatorTrait, QueryFilter, Select, Set,
    sea_query::{CaseStatement, Expr},
};
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;
use vault::{SealContext, Zeroizing};

use crate::{
    Error, Result,
    error::OnUniqueViolation,
    services::{
        audit::{self, Audit},
        dns,
        pagination::{
            Cursor, Direction, Ordering, Page, PageRequest, SortKey, fetch_ordered_page,
            starts_with,
        },
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
    /// Matched literally and case-insensitively (names are lowercase).
    pub name_prefix: Option<String>,
}

/// What clusters can be ordered by; the id breaks ties.
#[derive(async_graphql::Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(name = "ClusterOrderField")]
pub enum ClusterSort {
    /// By name, in the database's collation.
    Name,
    CreatedAt,
    UpdatedAt,
    /// By lifecycle: PENDING, PROVISIONING, READY, DEGRADED, FAILED, DELETING.
    Status,
}

/// The place of `status` in the lifecycle order (the declaration order of the enum).
fn status_rank(status: ClusterStatus) -> i64 {
    ClusterStatus::iter().position(|s| s == status).unwrap_or(0) as i64
}

/// The ordering of a cluster list: by `sort` then id, or by id (creation order) alone.
pub fn ordering(sort: Option<ClusterSort>, direction: Direction) -> Ordering<clusters::Entity> {
    use clusters::Column;
    type Key = SortKey<clusters::Entity>;
    let key = sort.map(|sort| match sort {
        ClusterSort::Name => Key::text("name", Column::Name, |c| &c.name),
        ClusterSort::CreatedAt => Key::time("created_at", Column::CreatedAt, |c| c.created_at),
        ClusterSort::UpdatedAt => Key::time("updated_at", Column::UpdatedAt, |c| c.updated_at),
        ClusterSort::Status => {
            let rank: Expr = ClusterStatus::iter()
                .fold(CaseStatement::new(), |case, s| {
                    case.case(Column::Status.eq(s), status_rank(s))
                })
                .into();
            Key::int("status", rank, |c| status_rank(c.status))
        }
    });
    Ordering::new(key, direction, Column::Id, |c| c.id)
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
        q = q.filter(starts_with(clusters::Column::Name, &prefix.to_lowercase()));
    }
    q
}

/// A page of an organization's clusters in `ordering` (see [`ordering`]).
pub async fn list(
    state: &AppState,
    viewer: &Viewer,
    org: Uuid,
    filter: &ClusterFilter,
    ordering: &Ordering<clusters::Entity>,
    page: &PageRequest<Cursor>,
) -> Result<Page<clusters::Model>> {
    viewer.require_role(org, MemberRole::Viewer)?;
    fetch_ordered_page(&state.reads, filtered(viewer, org, filter), ordering, page).await
}

/// How many clusters match.
pub async fn count(
    state: &AppState,
    viewer: &Viewer,
    org: Uuid,
    filter: &ClusterFilter,
) -> Result<u64> {
    Ok(filtered(viewer, org, filter).count(&state.reads).await?)
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
    pub domain_id: Option<Uuid>,
}

/// Checks that domain `id` is one of `org`'s that `viewer` sees; any other answers
/// `NOT_FOUND`, as if it did not exist.
async fn check_domain<C: ConnectionTrait>(
    db: &C,
    viewer: &Viewer,
    org: Uuid,
    id: Uuid,
) -> Result<()> {
    match dns::find(db, viewer, id).await? {
        Some(domain) if domain.organization_id == org => Ok(()),
        _ => Err(Error::NotFound("domain")),
    }
}

/// The cluster's control-plane DNS record: its `PRESENT` record with that purpose (one
/// marked `ABSENT` is on its way out and no longer names the cluster).
pub async fn control_plane_record<C: ConnectionTrait>(
    db: &C,
    cluster: Uuid,
) -> Result<Option<dns_records::Model>> {
    Ok(dns_records::Entity::find()
        .filter(dns_records::Column::ClusterId.eq(cluster))
        .filter(dns_records::Column::Purpose.eq(DnsRecordPurpose::ControlPlane))
        .filter(dns_records::Column::DesiredState.eq(DnsDesiredState::Present))
        .one(db)
        .await
        .context("loading a cluster's control-plane record")?)
}

/// Creates a cluster in `org` (members and above), `PENDING` until provisioned.
pub async fn create(
    state: &AppState,
    viewer: &Viewer,
    org: Uuid,
    new: NewCluster,
) -> Result<clusters::Model> {
    viewer.require_role(org, MemberRole::Member)?;
    let txn = state.db.begin_write().await?;
    if let Some(domain) = new.domain_id {
        check_domain(&txn, viewer, org, domain).await?;
    }
    let mut row = clusters::ActiveModel::new();
    row.organization_id = Set(org);
    row.domain_id = Set(new.domain_id);
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
    /// `Some(None)` clears the domain.
    pub domain_id: Option<Option<Uuid>>,
}

/// Checks that the cluster may move from its domain to `to`: not while its control-plane
/// record sits in the current one (the record's name only means something in its zone).
async fn check_domain_change<C: ConnectionTrait>(
    db: &C,
    viewer: &Viewer,
    cluster: &clusters::Model,
    to: Option<Uuid>,
) -> Result<()> {
    if let Some(domain) = to {
        check_domain(db, viewer, cluster.organization_id, domain).await?;
    }
    if to == cluster.domain_id {
        return Ok(());
    }
    if control_plane_record(db, cluster.id).await?.is_some() {
        return Err(Error::conflict(
            "input.domainId",
            "the cluster's control-plane DNS record is in its current domain; delete that record first",
        ));
    }
    Ok(())
}

/// Updates a cluster (members and above). Metadata is replaced as a whole set.
pub async fn update(
    state: &AppState,
    viewer: &Viewer,
    id: Uuid,
    change: ClusterChange,
) -> Result<clusters::Model> {
    let txn = state.db.begin_write().await?;
    let cluster = get_for(&txn, viewer, id, MemberRole::Member).await?;
    if let Some(domain) = change.domain_id {
        check_domain_change(&txn, viewer, &cluster, domain).await?;
    }
    let org = cluster.organization_id;
    let mut row: clusters::ActiveModel = cluster.into();
    if let Some(name) = change.name {
        row.name = Set(name);
    }
    if let Some(domain) = change.domain_id {
        row.domain_id = Set(domain);
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
/// Its DNS records that the provider may hold stay, marked `ABSENT` and without a cluster,
/// until the DNS reconcile has removed them there.
pub async fn delete(state: &AppState, viewer: &Viewer, id: Uuid) -> Result<clusters::Model> {
    let txn = state.db.begin_write().await?;
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
    // Its DNS records outlive it until the reconcile has removed them at the provider.
    dns::records::release(
        &txn,
        Condition::all().add(dns_records::Column::ClusterId.eq(id)),
        true,
    )
    .await?;
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

/// Reveals a cluster's kubeconfig (admins and above), writing the audit log; a member below
/// admin who asks is refused, and the refusal is audited too.
pub async fn reveal_kubeconfig(
    state: &AppState,
    viewer: &Viewer,
    id: Uuid,
) -> Result<Option<Zeroizing<String>>> {
    let cluster = find(&state.db, viewer, id)
        .await?
        .ok_or(Error::NotFound("cluster"))?;
    let entry = || {
        Audit::new("cluster.reveal_kubeconfig")
            .org(cluster.organization_id)
            .target("cluster", id)
    };
    let org = cluster.organization_id;
    audit::require_role(&state.db, viewer, org, MemberRole::Admin, entry()).await?;
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
    audit::record(&state.db, viewer, entry()).await?;
    Ok(Some(Zeroizing::new(text)))
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
    // K3s puts the API name into its certificate at install, so the name must be known
    // before the control plane is installed; the DNS step only points it at the servers.
    let record = control_plane_record(db, cluster.id).await?;
    if record.is_none_or(|r| Some(r.domain_id) != cluster.domain_id) {
        missing.push("a control-plane DNS record in the cluster's domain".to_owned());
    }
    Ok(missing)
}
