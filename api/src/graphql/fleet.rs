//! The fleet in GraphQL: clusters, node pools and servers.

use async_graphql::{
    Context, ContextSelectionSet, ID, InputObject, InputType, MaybeUndefined, Object, Positioned,
    ScalarType, ServerResult, SimpleObject, Value,
    dataloader::Loader,
    parser::types::{Selection, SelectionSet},
};
use chrono::{DateTime, Utc};
use entity::{
    clusters,
    enums::{
        ClusterStatus, LoadBalancerPurpose, NodePoolRole, ServerRole, ServerStatus, TaintEffect,
    },
    node_pools, servers,
};
use futures_util::FutureExt;
use secrecy::SecretString;
use std::sync::Arc;
use uuid::Uuid;

use super::{
    dns::{DnsRecord, Domain},
    load_balancers::LoadBalancer,
    loaders::{
        AnnotationsOfPool, Children, ControlPlaneRecordOfCluster, DomainInOrg, FleetLoader,
        LabelsOfPool, LoadBalancersOfCluster, LoadError, Loaders, MetadataOfCluster, Narrow,
        PoolsOfCluster, ServersOfCluster, ServersOfPool, TaintsOfPool,
    },
    organizations::Organization,
    plain::{NestedLists, NestedLoad, PageItem, PlainFields, PlainList, prepare_groups},
    relay::{
        ConnectionFields, GlobalId, IdConnection, NodeKind, OrderedConnection, PageArgs,
        connection, ordered_connection_of,
    },
    rendered::{load_failed, write_enum, write_int, write_opt_str, write_str, write_value},
    rows::Columns,
    state,
};
use crate::{
    Error, Result,
    services::{
        clusters::{
            self as cluster_service, ClusterChange, ClusterFilter, ClusterSort, NewCluster,
        },
        dns::values::fqdn,
        node_pools::{self as pool_service, NewPool, PoolSets, Taint as TaintValue},
        organizations as orgs,
        pagination::Direction,
        servers::{self as server_service, ServerFields, ServerFilter},
        validate,
    },
    viewer::viewer,
};

/// The rows of `key` through the request's [`Loaders`] (none: an empty list).
pub(super) async fn load<K, M>(ctx: &Context<'_>, key: K) -> Result<Children<M>>
where
    K: Send + Sync + Clone + Eq + std::hash::Hash + 'static,
    M: Send + Sync + 'static,
    FleetLoader: Loader<K, Value = Children<M>, Error = LoadError>,
{
    let loader = ctx
        .data::<Loaders>()
        .map_err(|_| anyhow::anyhow!("no loaders in the request"))?;
    Ok(loader
        .load_one(key)
        .await
        .map_err(|e| anyhow::anyhow!("loading children: {e}"))?
        .unwrap_or_default())
}

fn id_of(raw: &ID, kind: NodeKind, field: &str) -> Result<Uuid> {
    GlobalId::expect(raw, kind, field)
}

fn opt_id(raw: &Option<ID>, kind: NodeKind, field: &str) -> Result<Option<Uuid>> {
    raw.as_ref().map(|id| id_of(id, kind, field)).transpose()
}

/// A key and its value (labels, annotations, metadata).
#[derive(SimpleObject, Clone)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
}

/// A key and value to set.
#[derive(InputObject, Clone)]
pub struct KeyValueInput {
    pub key: String,
    pub value: String,
}

/// A node taint.
#[derive(SimpleObject, Clone)]
pub struct Taint {
    pub key: String,
    pub value: String,
    pub effect: TaintEffect,
}

/// A taint to set.
#[derive(InputObject, Clone)]
pub struct TaintInput {
    pub key: String,
    #[graphql(default)]
    pub value: String,
    pub effect: TaintEffect,
}

fn key_values(
    items: Vec<KeyValueInput>,
    field: &str,
    label_values: bool,
) -> Result<Vec<(String, String)>> {
    items
        .into_iter()
        .enumerate()
        .map(|(i, kv)| {
            let key = validate::k8s_key(&kv.key, &format!("{field}.{i}.key"))?;
            let value = if label_values {
                validate::label_value(&kv.value, &format!("{field}.{i}.value"))?
            } else {
                kv.value
            };
            Ok((key, value))
        })
        .collect()
}

fn pool_sets(
    labels: Option<Vec<KeyValueInput>>,
    annotations: Option<Vec<KeyValueInput>>,
    taints: Option<Vec<TaintInput>>,
) -> Result<PoolSets> {
    Ok(PoolSets {
        labels: labels
            .map(|l| key_values(l, "input.labels", true))
            .transpose()?,
        annotations: annotations
            .map(|a| key_values(a, "input.annotations", false))
            .transpose()?,
        taints: taints
            .map(|ts| {
                ts.into_iter()
                    .enumerate()
                    .map(|(i, t)| {
                        Ok(TaintValue {
                            key: validate::k8s_key(&t.key, &format!("input.taints.{i}.key"))?,
                            value: validate::label_value(
                                &t.value,
                                &format!("input.taints.{i}.value"),
                            )?,
                            effect: t.effect,
                        })
                    })
                    .collect::<Result<Vec<_>>>()
            })
            .transpose()?,
    })
}

/// Whether a cluster can be provisioned, and what it lacks.
#[derive(SimpleObject)]
pub struct ProvisioningReadiness {
    pub ready: bool,
    pub missing: Vec<String>,
}

// Field futures stay small on purpose. async-graphql boxes one future per selected field,
// and an object's field future is as large as its largest resolver: a resolver that awaits
// a service (a SQL statement, a transaction, an audit write) inline made every `name` or
// `hostname` of the type allocate and copy several kilobytes. Those resolvers box their
// service call, so plain fields cost a small allocation.

/// A K3s cluster.
#[derive(Clone)]
pub struct Cluster(pub clusters::Model);

impl Cluster {
    async fn domain_model(&self, ctx: &Context<'_>) -> Result<Option<entity::domains::Model>> {
        let Some(id) = self.0.domain_id else {
            return Ok(None);
        };
        let key = DomainInOrg {
            org: self.0.organization_id,
            id,
        };
        Ok(load(ctx, key)
            .await?
            .into_iter()
            .next()
            .map(Arc::unwrap_or_clone))
    }

    async fn control_plane_record_model(
        &self,
        ctx: &Context<'_>,
    ) -> Result<Option<entity::dns_records::Model>> {
        let key = ControlPlaneRecordOfCluster(self.0.id);
        Ok(load(ctx, key)
            .await?
            .into_iter()
            .next()
            .map(Arc::unwrap_or_clone))
    }

    async fn load_balancer(
        &self,
        ctx: &Context<'_>,
        purpose: LoadBalancerPurpose,
    ) -> Result<Option<LoadBalancer>> {
        let all = load(ctx, LoadBalancersOfCluster(self.0.id)).await?;
        Ok(all
            .into_iter()
            .find(|lb| lb.purpose == purpose)
            .map(|lb| LoadBalancer(Arc::unwrap_or_clone(lb))))
    }
}

#[Object]
impl Cluster {
    /// Global ID.
    pub async fn id(&self) -> ID {
        GlobalId::encode(NodeKind::Cluster, self.0.id)
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn status(&self) -> ClusterStatus {
        self.0.status
    }
    /// Why the status is what it is, when there is something to say.
    async fn status_message(&self) -> Option<&str> {
        self.0.status_message.as_deref()
    }
    #[graphql(name = "k3sVersion")]
    async fn k3s_version(&self) -> &str {
        &self.0.k3s_version
    }
    async fn region(&self) -> Option<&str> {
        self.0.region.as_deref()
    }
    /// The Kubernetes API endpoint, once provisioned.
    async fn api_endpoint(&self) -> Option<&str> {
        self.0.api_endpoint.as_deref()
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    async fn organization(&self, ctx: &Context<'_>) -> Result<Organization> {
        Box::pin(orgs::find_organization(
            state(ctx),
            viewer(ctx),
            self.0.organization_id,
        ))
        .await?
        .map(Organization)
        .ok_or(Error::NotFound("organization"))
    }
    /// Free-form metadata, unique keys.
    async fn metadata(&self, ctx: &Context<'_>) -> Result<PlainList<KeyValue>> {
        let rows = load(ctx, MetadataOfCluster(self.0.id)).await?;
        Ok(rows.iter().map(key_value).collect::<Vec<_>>().into())
    }
    async fn node_pools(&self, ctx: &Context<'_>) -> Result<PlainList<NodePool>> {
        Ok(load(ctx, PoolsOfCluster(self.0.id))
            .await?
            .into_iter()
            .map(NodePool)
            .collect::<Vec<_>>()
            .into())
    }
    async fn servers(&self, ctx: &Context<'_>) -> Result<PlainList<Server>> {
        Ok(load(ctx, ServersOfCluster(self.0.id))
            .await?
            .into_iter()
            .map(Server)
            .collect::<Vec<_>>()
            .into())
    }
    /// The bastion: the cluster's server with role BASTION.
    async fn bastion(&self, ctx: &Context<'_>) -> Result<Option<Server>> {
        let servers = load(ctx, ServersOfCluster(self.0.id)).await?;
        Ok(servers
            .into_iter()
            .find(|s| s.role == ServerRole::Bastion)
            .map(Server))
    }
    /// The global ID of the DNS zone holding the cluster's records.
    async fn domain_id(&self) -> Option<ID> {
        self.0
            .domain_id
            .map(|id| GlobalId::encode(NodeKind::Domain, id))
    }
    /// The DNS zone holding the cluster's records; null once the domain is deleted.
    async fn domain(&self, ctx: &Context<'_>) -> Result<Option<Domain>> {
        Ok(self.domain_model(ctx).await?.map(Domain))
    }
    /// The DNS record naming the Kubernetes API: the cluster's PRESENT record with purpose
    /// CONTROL_PLANE (made with `createDnsRecord`, in the cluster's domain).
    async fn control_plane_record(&self, ctx: &Context<'_>) -> Result<Option<DnsRecord>> {
        Ok(self.control_plane_record_model(ctx).await?.map(DnsRecord))
    }
    /// The fully qualified name of the Kubernetes API: the control-plane record's name in the
    /// cluster's domain (the zone itself for "@"), without a trailing dot. Null without both.
    async fn control_plane_fqdn(&self, ctx: &Context<'_>) -> Result<Option<String>> {
        // Both at once, so they join the batches of the `domain` and record fields.
        let (record, domain) =
            futures_util::try_join!(self.control_plane_record_model(ctx), self.domain_model(ctx))?;
        let (Some(record), Some(domain)) = (record, domain) else {
            return Ok(None);
        };
        Ok((record.domain_id == domain.id).then(|| fqdn(&record.name, &domain.zone_name)))
    }
    /// The load balancers in front of the cluster, oldest first.
    async fn load_balancers(&self, ctx: &Context<'_>) -> Result<Vec<LoadBalancer>> {
        Ok(load(ctx, LoadBalancersOfCluster(self.0.id))
            .await?
            .into_iter()
            .map(|lb| LoadBalancer(Arc::unwrap_or_clone(lb)))
            .collect())
    }
    /// The load balancer for application traffic: the cluster's one with purpose APPS.
    async fn apps_load_balancer(&self, ctx: &Context<'_>) -> Result<Option<LoadBalancer>> {
        self.load_balancer(ctx, LoadBalancerPurpose::Apps).await
    }
    /// The load balancer for the Kubernetes API: the cluster's one with purpose CONTROL_PLANE.
    async fn control_plane_load_balancer(&self, ctx: &Context<'_>) -> Result<Option<LoadBalancer>> {
        self.load_balancer(ctx, LoadBalancerPurpose::ControlPlane)
            .await
    }
    /// The kubeconfig (admins and above; every read is written to the audit log).
    async fn kubeconfig(&self, ctx: &Context<'_>) -> Result<Option<String>> {
        let revealed = Box::pin(cluster_service::reveal_kubeconfig(
            state(ctx),
            viewer(ctx),
            self.0.id,
        ))
        .await?;
        // The response needs its own copy; the opened one is wiped when dropped here.
        Ok(revealed.map(|text| text.as_str().to_owned()))
    }
    /// Whether it is complete enough to provision.
    async fn provisioning_readiness(&self, ctx: &Context<'_>) -> Result<ProvisioningReadiness> {
        let missing = Box::pin(cluster_service::missing_for_provisioning(
            &state(ctx).db,
            &self.0,
        ))
        .await?;
        Ok(ProvisioningReadiness {
            ready: missing.is_empty(),
            missing,
        })
    }
}

/// A group of servers with one role, size and set of labels, annotations and taints.
#[derive(Clone)]
pub struct NodePool(pub Arc<node_pools::Model>);

#[Object]
impl NodePool {
    /// Global ID.
    pub async fn id(&self) -> ID {
        GlobalId::encode(NodeKind::NodePool, self.0.id)
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn role(&self) -> NodePoolRole {
        self.0.role
    }
    async fn desired_size(&self) -> i32 {
        self.0.desired_size
    }
    async fn labels(&self, ctx: &Context<'_>) -> Result<PlainList<KeyValue>> {
        let rows = load(ctx, LabelsOfPool(self.0.id)).await?;
        Ok(rows.iter().map(key_value).collect::<Vec<_>>().into())
    }
    async fn annotations(&self, ctx: &Context<'_>) -> Result<PlainList<KeyValue>> {
        let rows = load(ctx, AnnotationsOfPool(self.0.id)).await?;
        Ok(rows.iter().map(key_value).collect::<Vec<_>>().into())
    }
    async fn taints(&self, ctx: &Context<'_>) -> Result<Vec<Taint>> {
        let rows = load(ctx, TaintsOfPool(self.0.id)).await?;
        Ok(rows
            .iter()
            .map(|t| Taint {
                key: t.key.clone(),
                value: t.value.clone(),
                effect: t.effect,
            })
            .collect())
    }
    async fn servers(&self, ctx: &Context<'_>) -> Result<PlainList<Server>> {
        Ok(load(ctx, ServersOfPool(self.0.id))
            .await?
            .into_iter()
            .map(Server)
            .collect::<Vec<_>>()
            .into())
    }
    async fn cluster(&self, ctx: &Context<'_>) -> Result<Cluster> {
        Box::pin(cluster_service::find(
            &state(ctx).db,
            viewer(ctx),
            self.0.cluster_id,
        ))
        .await?
        .map(Cluster)
        .ok_or(Error::NotFound("cluster"))
    }
}

/// A machine of a cluster.
#[derive(Clone)]
pub struct Server(pub Arc<servers::Model>);

#[Object]
impl Server {
    /// Global ID.
    pub async fn id(&self) -> ID {
        GlobalId::encode(NodeKind::Server, self.0.id)
    }
    async fn hostname(&self) -> &str {
        &self.0.hostname
    }
    async fn public_ip(&self) -> Option<&str> {
        self.0.public_ip.as_deref()
    }
    async fn private_ip(&self) -> Option<&str> {
        self.0.private_ip.as_deref()
    }
    async fn role(&self) -> ServerRole {
        self.0.role
    }
    async fn status(&self) -> ServerStatus {
        self.0.status
    }
    async fn status_message(&self) -> Option<&str> {
        self.0.status_message.as_deref()
    }
    async fn ssh_user(&self) -> &str {
        &self.0.ssh_user
    }
    async fn ssh_port(&self) -> i32 {
        self.0.ssh_port
    }
    /// The SSH host key pinned at first contact; `resetServerHostKey` clears it.
    async fn host_key(&self) -> Option<&str> {
        self.0.host_key.as_deref()
    }
    /// The global ID of the SSH key used to log in.
    async fn ssh_key_id(&self) -> Option<ID> {
        self.0
            .ssh_key_id
            .map(|id| GlobalId::encode(NodeKind::SshKey, id))
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn cluster(&self, ctx: &Context<'_>) -> Result<Option<Cluster>> {
        let Some(id) = self.0.cluster_id else {
            return Ok(None);
        };
        Ok(
            Box::pin(cluster_service::find(&state(ctx).db, viewer(ctx), id))
                .await?
                .map(Cluster),
        )
    }
    async fn node_pool(&self, ctx: &Context<'_>) -> Result<Option<NodePool>> {
        let Some(id) = self.0.node_pool_id else {
            return Ok(None);
        };
        Ok(
            Box::pin(pool_service::find(&state(ctx).db, viewer(ctx), id))
                .await?
                .map(|p| NodePool(p.into())),
        )
    }
}

impl PlainFields for Cluster {
    fn nested<'a: 'i, 'i>(
        ctx: &'a ContextSelectionSet<'a>,
        items: &'i [Self],
        name: &str,
        set: &'a Positioned<SelectionSet>,
    ) -> Option<NestedLoad<'a, 'i>> {
        Some(match name {
            "nodePools" => {
                let key = |c: &Self| PoolsOfCluster(c.0.id);
                children(ctx, set, items, key, pool, NodePool::columns).boxed()
            }
            "servers" => {
                let key = |c: &Self| ServersOfCluster(c.0.id);
                children(ctx, set, items, key, server, Server::columns).boxed()
            }
            "metadata" => key_value_lists(ctx, set, items, |c| MetadataOfCluster(c.0.id)),
            _ => return None,
        })
    }

    fn plain(&self, name: &str) -> Option<Value> {
        let c = &self.0;
        Some(match name {
            "id" => GlobalId::encode(NodeKind::Cluster, c.id).0.into(),
            "name" => c.name.as_str().into(),
            "status" => c.status.to_value(),
            "statusMessage" => opt_str(&c.status_message),
            "k3sVersion" => c.k3s_version.as_str().into(),
            "region" => opt_str(&c.region),
            "apiEndpoint" => opt_str(&c.api_endpoint),
            "createdAt" => ScalarType::to_value(&c.created_at),
            "updatedAt" => ScalarType::to_value(&c.updated_at),
            "domainId" => c.domain_id.map_or(Value::Null, |id| {
                GlobalId::encode(NodeKind::Domain, id).0.into()
            }),
            _ => return None,
        })
    }
}

impl PlainFields for Server {
    fn plain(&self, name: &str) -> Option<Value> {
        let s = &*self.0;
        Some(match name {
            "id" => GlobalId::encode(NodeKind::Server, s.id).0.into(),
            "hostname" => s.hostname.as_str().into(),
            "publicIp" => opt_str(&s.public_ip),
            "privateIp" => opt_str(&s.private_ip),
            "role" => s.role.to_value(),
            "status" => s.status.to_value(),
            "statusMessage" => opt_str(&s.status_message),
            "sshUser" => s.ssh_user.as_str().into(),
            "sshPort" => s.ssh_port.into(),
            "hostKey" => opt_str(&s.host_key),
            "sshKeyId" => s.ssh_key_id.map_or(Value::Null, |id| {
                GlobalId::encode(NodeKind::SshKey, id).0.into()
            }),
            "createdAt" => ScalarType::to_value(&s.created_at),
            _ => return None,
        })
    }

    fn render(&self, name: &str, out: &mut Vec<u8>) -> bool {
        let s = &*self.0;
        match name {
            "id" => GlobalId::write_json(NodeKind::Server, s.id, out),
            "hostname" => write_str(out, &s.hostname),
            "publicIp" => write_opt_str(out, s.public_ip.as_deref()),
            "privateIp" => write_opt_str(out, s.private_ip.as_deref()),
            "role" => write_enum(out, s.role),
            "status" => write_enum(out, s.status),
            "statusMessage" => write_opt_str(out, s.status_message.as_deref()),
            "sshUser" => write_str(out, &s.ssh_user),
            "sshPort" => write_int(out, s.ssh_port.into()),
            "hostKey" => write_opt_str(out, s.host_key.as_deref()),
            _ => {
                return self.plain(name).is_some_and(|v| {
                    write_value(out, &v);
                    true
                });
            }
        }
        true
    }
}

impl PlainFields for NodePool {
    fn plain(&self, name: &str) -> Option<Value> {
        let p = &*self.0;
        Some(match name {
            "id" => GlobalId::encode(NodeKind::NodePool, p.id).0.into(),
            "name" => p.name.as_str().into(),
            "role" => p.role.to_value(),
            "desiredSize" => p.desired_size.into(),
            _ => return None,
        })
    }

    fn render(&self, name: &str, out: &mut Vec<u8>) -> bool {
        let p = &*self.0;
        match name {
            "id" => GlobalId::write_json(NodeKind::NodePool, p.id, out),
            "name" => write_str(out, &p.name),
            "role" => write_enum(out, p.role),
            "desiredSize" => write_int(out, p.desired_size.into()),
            _ => return false,
        }
        true
    }

    fn nested<'a: 'i, 'i>(
        ctx: &'a ContextSelectionSet<'a>,
        items: &'i [Self],
        name: &str,
        set: &'a Positioned<SelectionSet>,
    ) -> Option<NestedLoad<'a, 'i>> {
        Some(match name {
            "labels" => key_value_lists(ctx, set, items, |p| LabelsOfPool(p.0.id)),
            "annotations" => key_value_lists(ctx, set, items, |p| AnnotationsOfPool(p.0.id)),
            "servers" => {
                let key = |p: &Self| ServersOfPool(p.0.id);
                children(ctx, set, items, key, server, Server::columns).boxed()
            }
            _ => return None,
        })
    }
}

/// The children of each of `items` (keyed by `key`, each turned into `C` by `item`) through
/// the request's loaders, in one batch, prepared for `set`. Only the columns that the fields
/// of `set` need are read, as `columns` maps a field of `C` to them (all, if one is not
/// mapped): the rows become `C`s that only this list writes, by those fields.
async fn children<'a: 'i, 'i, P, K, M, C>(
    ctx: &'a ContextSelectionSet<'a>,
    set: &'a Positioned<SelectionSet>,
    items: &'i [P],
    key: impl Fn(&P) -> K,
    item: impl Fn(&Arc<M>) -> C,
    columns: fn(&str) -> Option<Columns>,
) -> Option<ServerResult<Box<dyn NestedLists + 'a>>>
where
    K: Send + Sync + Copy + Eq + std::hash::Hash + 'static,
    M: Send + Sync + 'static,
    C: PlainFields + Send + Sync + 'a,
    FleetLoader: Loader<Narrow<K>, Value = Children<M>, Error = LoadError>,
{
    let loaders = ctx.data_opt::<Loaders>()?;
    let columns = selected_columns(ctx, set, columns, 0).unwrap_or(Columns::ALL);
    let keys = items.iter().map(|p| Narrow {
        key: key(p),
        columns,
    });
    let lists = match loaders.load_many(keys.collect()).await {
        Ok(lists) => lists,
        Err(e) => return Some(Err(load_failed(e, set.pos))),
    };
    let groups: Vec<Vec<C>> = lists
        .into_iter()
        .map(|rows| rows.unwrap_or_default().iter().map(&item).collect())
        .collect();
    prepare_groups(ctx, set, groups).await
}

/// The columns the fields of `set` read, as `columns` maps each field (fragments of any
/// type condition included: more columns than needed is harmless); `None` if a field is
/// not mapped.
fn selected_columns(
    ctx: &ContextSelectionSet<'_>,
    set: &Positioned<SelectionSet>,
    columns: fn(&str) -> Option<Columns>,
    depth: usize,
) -> Option<Columns> {
    if depth > 16 {
        return None;
    }
    let mut all = Columns::NONE;
    for item in &set.node.items {
        let more = match &item.node {
            Selection::Field(f) => match f.node.name.node.as_str() {
                "__typename" => continue,
                name => columns(name)?,
            },
            Selection::InlineFragment(f) => {
                selected_columns(ctx, &f.node.selection_set, columns, depth + 1)?
            }
            Selection::FragmentSpread(s) => {
                let fragment = ctx.query_env.fragments.get(&s.node.fragment_name.node)?;
                selected_columns(ctx, &fragment.node.selection_set, columns, depth + 1)?
            }
        };
        all = all.and(more);
    }
    Some(all)
}

/// `Columns` of the `Column` variants given.
macro_rules! columns {
    ($($column:expr),* $(,)?) => {
        Columns::at(&[$($column as usize),*])
    };
}

impl Server {
    /// The columns the plain field `name` writes ([`PlainFields::render`]).
    fn columns(name: &str) -> Option<Columns> {
        use servers::Column as C;
        Some(match name {
            "id" => columns![C::Id],
            "hostname" => columns![C::Hostname],
            "publicIp" => columns![C::PublicIp],
            "privateIp" => columns![C::PrivateIp],
            "role" => columns![C::Role],
            "status" => columns![C::Status],
            "statusMessage" => columns![C::StatusMessage],
            "sshUser" => columns![C::SshUser],
            "sshPort" => columns![C::SshPort],
            "hostKey" => columns![C::HostKey],
            "sshKeyId" => columns![C::SshKeyId],
            "createdAt" => columns![C::CreatedAt],
            _ => return None,
        })
    }
}

impl NodePool {
    /// The columns the plain field or relation list `name` reads ([`PlainFields::render`],
    /// [`PlainFields::nested`]).
    fn columns(name: &str) -> Option<Columns> {
        use node_pools::Column as C;
        Some(match name {
            "id" | "labels" | "annotations" | "servers" => columns![C::Id],
            "name" => columns![C::Name],
            "role" => columns![C::Role],
            "desiredSize" => columns![C::DesiredSize],
            _ => return None,
        })
    }
}

/// [`children`] for a relation of key-value rows (labels, annotations, metadata).
fn key_value_lists<'a: 'i, 'i, P, K, M>(
    ctx: &'a ContextSelectionSet<'a>,
    set: &'a Positioned<SelectionSet>,
    items: &'i [P],
    key: fn(&P) -> K,
) -> NestedLoad<'a, 'i>
where
    P: Sync,
    K: Send + Sync + Copy + Eq + std::hash::Hash + 'static,
    M: KeyValueRow + Send + Sync + 'static,
    FleetLoader: Loader<Narrow<K>, Value = Children<M>, Error = LoadError>,
{
    children(ctx, set, items, key, key_value::<M>, key_value_columns::<M>).boxed()
}

/// The columns of a key-value row that the field `name` of [`KeyValue`] reads.
fn key_value_columns<M: KeyValueRow>(name: &str) -> Option<Columns> {
    match name {
        "key" => Some(M::KEY),
        "value" => Some(M::VALUE),
        _ => None,
    }
}

fn pool(row: &Arc<node_pools::Model>) -> NodePool {
    NodePool(row.clone())
}

fn server(row: &Arc<servers::Model>) -> Server {
    Server(row.clone())
}

fn key_value<M: KeyValueRow>(row: &Arc<M>) -> KeyValue {
    KeyValue {
        key: row.key().to_owned(),
        value: row.value().to_owned(),
    }
}

/// A row of key and value (a label, an annotation).
trait KeyValueRow {
    /// The columns of the key and of the value.
    const KEY: Columns;
    const VALUE: Columns;
    fn key(&self) -> &str;
    fn value(&self) -> &str;
}

macro_rules! key_value_rows {
    ($($module:ident),+) => {
        $(impl KeyValueRow for entity::$module::Model {
            const KEY: Columns = Columns::of(entity::$module::Column::Key as usize);
            const VALUE: Columns = Columns::of(entity::$module::Column::Value as usize);
            fn key(&self) -> &str {
                &self.key
            }
            fn value(&self) -> &str {
                &self.value
            }
        })+
    };
}

key_value_rows!(node_pool_labels, node_pool_annotations, cluster_metadata);

impl PlainFields for KeyValue {
    fn plain(&self, name: &str) -> Option<Value> {
        Some(match name {
            "key" => self.key.as_str().into(),
            "value" => self.value.as_str().into(),
            _ => return None,
        })
    }

    fn render(&self, name: &str, out: &mut Vec<u8>) -> bool {
        match name {
            "key" => write_str(out, &self.key),
            "value" => write_str(out, &self.value),
            _ => return false,
        }
        true
    }
}

fn opt_str(value: &Option<String>) -> Value {
    value.as_deref().map_or(Value::Null, Value::from)
}

/// Which clusters to list.
#[derive(InputObject, Default)]
pub struct ClusterFilterInput {
    /// Any of these statuses.
    #[graphql(default)]
    pub status: Vec<ClusterStatus>,
    /// Names starting with this (taken literally, whatever the case).
    pub name_prefix: Option<String>,
}

/// How to order clusters.
#[derive(InputObject)]
pub struct ClusterOrder {
    /// The key to order by; clusters with equal keys follow in id (creation) order.
    pub field: ClusterSort,
    /// ASC unless given; ties follow the same direction.
    #[graphql(default)]
    pub direction: Direction,
}

/// Which servers to list.
#[derive(InputObject, Default)]
pub struct ServerFilterInput {
    pub cluster_id: Option<ID>,
    pub node_pool_id: Option<ID>,
    #[graphql(default)]
    pub role: Vec<ServerRole>,
    #[graphql(default)]
    pub status: Vec<ServerStatus>,
}

#[derive(Default)]
pub struct FleetQuery;

#[Object]
impl FleetQuery {
    /// The clusters of an organization (default: the active one), in `orderBy` (default:
    /// oldest first). Equal keys are ordered by id, so cursors stay exact; a cursor only
    /// works with the order it was made in.
    #[allow(clippy::too_many_arguments)]
    #[graphql(complexity = "(first.or(last).unwrap_or(20).max(0) as usize) * child_complexity + 1")]
    async fn clusters(
        &self,
        ctx: &Context<'_>,
        organization_id: Option<ID>,
        filter: Option<ClusterFilterInput>,
        order_by: Option<ClusterOrder>,
        after: Option<String>,
        before: Option<String>,
        first: Option<i32>,
        last: Option<i32>,
    ) -> Result<OrderedConnection<PageItem<Cluster>>> {
        let (state, viewer) = (state(ctx), viewer(ctx).clone());
        let org = viewer.pick_org(
            opt_id(&organization_id, NodeKind::Organization, "organizationId")?,
            "organizationId",
        )?;
        let ordering = match order_by {
            Some(o) => cluster_service::ordering(Some(o.field), o.direction),
            None => cluster_service::ordering(None, Direction::Asc),
        };
        let page = PageArgs {
            after,
            before,
            first,
            last,
        }
        .parse_ordered(state.config.graphql.max_page_size, &ordering)?;
        let filter = filter.unwrap_or_default();
        let filter = ClusterFilter {
            statuses: filter.status,
            name_prefix: filter.name_prefix,
        };
        let items = cluster_service::list(state, &viewer, org, &filter, &ordering, &page).await?;
        let counting = state.clone();
        let fields = ConnectionFields::new(move || {
            let (state, viewer, filter) = (counting.clone(), viewer.clone(), filter.clone());
            async move { cluster_service::count(&state, &viewer, org, &filter).await }
        });
        Ok(ordered_connection_of(
            items,
            fields,
            &ordering,
            |clusters| PageItem::page(clusters.into_iter().map(Cluster).collect()),
        ))
    }

    /// One cluster; null when it does not exist or is not visible to you.
    async fn cluster(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Cluster>> {
        let id = id_of(&id, NodeKind::Cluster, "id")?;
        Ok(cluster_service::find(&state(ctx).db, viewer(ctx), id)
            .await?
            .map(Cluster))
    }

    /// The servers of an organization, filtered, oldest first.
    #[allow(clippy::too_many_arguments)]
    #[graphql(complexity = "(first.or(last).unwrap_or(20).max(0) as usize) * child_complexity + 1")]
    async fn servers(
        &self,
        ctx: &Context<'_>,
        organization_id: Option<ID>,
        filter: Option<ServerFilterInput>,
        after: Option<String>,
        before: Option<String>,
        first: Option<i32>,
        last: Option<i32>,
    ) -> Result<IdConnection<Server>> {
        let (state, viewer) = (state(ctx), viewer(ctx).clone());
        let org = viewer.pick_org(
            opt_id(&organization_id, NodeKind::Organization, "organizationId")?,
            "organizationId",
        )?;
        let page = PageArgs {
            after,
            before,
            first,
            last,
        }
        .parse(state.config.graphql.max_page_size)?;
        let f = filter.unwrap_or_default();
        let filter = ServerFilter {
            cluster_id: opt_id(&f.cluster_id, NodeKind::Cluster, "filter.clusterId")?,
            node_pool_id: opt_id(&f.node_pool_id, NodeKind::NodePool, "filter.nodePoolId")?,
            roles: f.role,
            statuses: f.status,
        };
        let items = server_service::list(state, &viewer, org, &filter, &page).await?;
        let counting = state.clone();
        let fields = ConnectionFields::new(move || {
            let (state, viewer, filter) = (counting.clone(), viewer.clone(), filter.clone());
            async move { server_service::count(&state, &viewer, org, &filter).await }
        });
        Ok(connection(items, fields, |s| s.id, |s| Server(s.into())))
    }
}

/// Input of `createCluster`.
#[derive(InputObject)]
pub struct CreateClusterInput {
    pub organization_id: Option<ID>,
    /// 1 to 63 of a-z, 0-9 and '-'.
    pub name: String,
    /// Such as v1.31.4+k3s1; a current default when omitted.
    #[graphql(name = "k3sVersion")]
    pub k3s_version: Option<String>,
    pub region: Option<String>,
    #[graphql(default)]
    pub metadata: Vec<KeyValueInput>,
    /// A domain of the same organization, for the cluster's DNS records.
    pub domain_id: Option<ID>,
}

/// Input of `updateCluster`: omitted fields stay; `metadata` replaces the whole set.
#[derive(InputObject)]
pub struct UpdateClusterInput {
    pub id: ID,
    pub name: Option<String>,
    #[graphql(name = "k3sVersion")]
    pub k3s_version: Option<String>,
    pub region: MaybeUndefined<String>,
    pub metadata: Option<Vec<KeyValueInput>>,
    /// A domain of the same organization; null clears it. Refused (CONFLICT) while the
    /// cluster's control-plane record sits in its current domain.
    pub domain_id: MaybeUndefined<ID>,
}

/// Input naming one object.
#[derive(InputObject)]
pub struct IdInput {
    pub id: ID,
}

/// Input of `setClusterKubeconfig`.
#[derive(InputObject)]
pub struct SetKubeconfigInput {
    pub id: ID,
    pub kubeconfig: String,
}

/// A payload holding a cluster.
#[derive(SimpleObject)]
pub struct ClusterPayload {
    pub cluster: Cluster,
}

/// Input of `createNodePool`.
#[derive(InputObject)]
pub struct CreateNodePoolInput {
    pub cluster_id: ID,
    pub name: String,
    pub role: NodePoolRole,
    #[graphql(default)]
    pub desired_size: i32,
    #[graphql(default)]
    pub labels: Vec<KeyValueInput>,
    #[graphql(default)]
    pub annotations: Vec<KeyValueInput>,
    #[graphql(default)]
    pub taints: Vec<TaintInput>,
}

/// Input of `updateNodePool`: each given set replaces the old one whole.
#[derive(InputObject)]
pub struct UpdateNodePoolInput {
    pub id: ID,
    pub desired_size: Option<i32>,
    pub labels: Option<Vec<KeyValueInput>>,
    pub annotations: Option<Vec<KeyValueInput>>,
    pub taints: Option<Vec<TaintInput>>,
}

/// A payload holding a node pool.
#[derive(SimpleObject)]
pub struct NodePoolPayload {
    pub node_pool: NodePool,
}

/// Input of `registerServer` (and `updateServer`, where everything but `id` is optional).
#[derive(InputObject)]
pub struct ServerInput {
    /// `updateServer` only.
    pub id: Option<ID>,
    /// `registerServer` only; default: the active organization.
    pub organization_id: Option<ID>,
    pub hostname: Option<String>,
    pub public_ip: MaybeUndefined<String>,
    pub private_ip: MaybeUndefined<String>,
    pub role: Option<ServerRole>,
    pub cluster_id: MaybeUndefined<ID>,
    pub node_pool_id: MaybeUndefined<ID>,
    pub ssh_user: Option<String>,
    pub ssh_port: Option<i32>,
    pub ssh_key_id: MaybeUndefined<ID>,
}

/// A payload holding a server.
#[derive(SimpleObject)]
pub struct ServerPayload {
    pub server: Server,
}

fn maybe<T, U>(v: MaybeUndefined<T>, f: impl FnOnce(T) -> Result<U>) -> Result<Option<Option<U>>> {
    Ok(match v {
        MaybeUndefined::Undefined => None,
        MaybeUndefined::Null => Some(None),
        MaybeUndefined::Value(v) => Some(Some(f(v)?)),
    })
}

fn server_fields(input: ServerInput) -> Result<ServerFields> {
    let ssh_user = input.ssh_user.map(|u| {
        let u = u.trim().to_owned();
        let ok = !u.is_empty()
            && u.len() <= 32
            && u.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if ok {
            Ok(u)
        } else {
            Err(Error::bad_input("input.sshUser", "not a valid user name"))
        }
    });
    let ssh_port = input.ssh_port.map(|p| {
        if (1..=65535).contains(&p) {
            Ok(p)
        } else {
            Err(Error::bad_input("input.sshPort", "port must be 1 to 65535"))
        }
    });
    Ok(ServerFields {
        hostname: input
            .hostname
            .map(|h| validate::hostname(&h, "input.hostname"))
            .transpose()?,
        public_ip: maybe(input.public_ip, |v| validate::ip(&v, "input.publicIp"))?,
        private_ip: maybe(input.private_ip, |v| validate::ip(&v, "input.privateIp"))?,
        role: input.role,
        cluster_id: maybe(input.cluster_id, |v| {
            id_of(&v, NodeKind::Cluster, "input.clusterId")
        })?,
        node_pool_id: maybe(input.node_pool_id, |v| {
            id_of(&v, NodeKind::NodePool, "input.nodePoolId")
        })?,
        ssh_user: ssh_user.transpose()?,
        ssh_port: ssh_port.transpose()?,
        ssh_key_id: maybe(input.ssh_key_id, |v| {
            id_of(&v, NodeKind::SshKey, "input.sshKeyId")
        })?,
    })
}

#[derive(Default)]
pub struct FleetMutation;

#[Object]
impl FleetMutation {
    /// Creates a cluster (members and above); it starts PENDING.
    async fn create_cluster(
        &self,
        ctx: &Context<'_>,
        input: CreateClusterInput,
    ) -> Result<ClusterPayload> {
        let viewer = viewer(ctx);
        let org = viewer.pick_org(
            opt_id(
                &input.organization_id,
                NodeKind::Organization,
                "input.organizationId",
            )?,
            "input.organizationId",
        )?;
        let new = NewCluster {
            name: validate::resource_name(&input.name, "input.name")?,
            k3s_version: input
                .k3s_version
                .map(|v| validate::k3s_version(&v, "input.k3sVersion"))
                .transpose()?,
            region: input
                .region
                .map(|r| r.trim().to_owned())
                .filter(|r| !r.is_empty()),
            metadata: metadata(input.metadata)?,
            domain_id: opt_id(&input.domain_id, NodeKind::Domain, "input.domainId")?,
        };
        let cluster = cluster_service::create(state(ctx), viewer, org, new).await?;
        Ok(ClusterPayload {
            cluster: Cluster(cluster),
        })
    }

    /// Changes a cluster (members and above).
    async fn update_cluster(
        &self,
        ctx: &Context<'_>,
        input: UpdateClusterInput,
    ) -> Result<ClusterPayload> {
        let id = id_of(&input.id, NodeKind::Cluster, "input.id")?;
        let change = ClusterChange {
            name: input
                .name
                .map(|n| validate::resource_name(&n, "input.name"))
                .transpose()?,
            k3s_version: input
                .k3s_version
                .map(|v| validate::k3s_version(&v, "input.k3sVersion"))
                .transpose()?,
            region: maybe(input.region, |r| Ok(r.trim().to_owned()))?,
            metadata: input.metadata.map(metadata).transpose()?,
            domain_id: maybe(input.domain_id, |v| {
                id_of(&v, NodeKind::Domain, "input.domainId")
            })?,
        };
        let cluster = cluster_service::update(state(ctx), viewer(ctx), id, change).await?;
        Ok(ClusterPayload {
            cluster: Cluster(cluster),
        })
    }

    /// Deletes a cluster record and what it owns (admins; refused while a run is active).
    async fn delete_cluster(&self, ctx: &Context<'_>, input: IdInput) -> Result<ClusterPayload> {
        let id = id_of(&input.id, NodeKind::Cluster, "input.id")?;
        let cluster = cluster_service::delete(state(ctx), viewer(ctx), id).await?;
        Ok(ClusterPayload {
            cluster: Cluster(cluster),
        })
    }

    /// Stores a cluster's kubeconfig, sealed (admins).
    async fn set_cluster_kubeconfig(
        &self,
        ctx: &Context<'_>,
        input: SetKubeconfigInput,
    ) -> Result<ClusterPayload> {
        let id = id_of(&input.id, NodeKind::Cluster, "input.id")?;
        if input.kubeconfig.trim().is_empty() {
            return Err(Error::bad_input(
                "input.kubeconfig",
                "kubeconfig must not be empty",
            ));
        }
        let cluster = cluster_service::set_kubeconfig(
            state(ctx),
            viewer(ctx),
            id,
            SecretString::from(input.kubeconfig),
        )
        .await?;
        Ok(ClusterPayload {
            cluster: Cluster(cluster),
        })
    }

    /// Adds a node pool to a cluster (members and above).
    async fn create_node_pool(
        &self,
        ctx: &Context<'_>,
        input: CreateNodePoolInput,
    ) -> Result<NodePoolPayload> {
        let cluster = id_of(&input.cluster_id, NodeKind::Cluster, "input.clusterId")?;
        let new = NewPool {
            name: validate::resource_name(&input.name, "input.name")?,
            role: input.role,
            desired_size: pool_service::desired_size(input.desired_size, "input.desiredSize")?,
            sets: pool_sets(
                Some(input.labels),
                Some(input.annotations),
                Some(input.taints),
            )?,
        };
        let pool = pool_service::create(state(ctx), viewer(ctx), cluster, new).await?;
        Ok(NodePoolPayload {
            node_pool: NodePool(pool.into()),
        })
    }

    /// Changes a node pool's size and sets (members and above).
    async fn update_node_pool(
        &self,
        ctx: &Context<'_>,
        input: UpdateNodePoolInput,
    ) -> Result<NodePoolPayload> {
        let id = id_of(&input.id, NodeKind::NodePool, "input.id")?;
        let size = input
            .desired_size
            .map(|n| pool_service::desired_size(n, "input.desiredSize"))
            .transpose()?;
        let sets = pool_sets(input.labels, input.annotations, input.taints)?;
        let pool = pool_service::update(state(ctx), viewer(ctx), id, size, sets).await?;
        Ok(NodePoolPayload {
            node_pool: NodePool(pool.into()),
        })
    }

    /// Deletes a node pool (admins); its servers stay, unassigned.
    async fn delete_node_pool(&self, ctx: &Context<'_>, input: IdInput) -> Result<NodePoolPayload> {
        let id = id_of(&input.id, NodeKind::NodePool, "input.id")?;
        let pool = pool_service::delete(state(ctx), viewer(ctx), id).await?;
        Ok(NodePoolPayload {
            node_pool: NodePool(pool.into()),
        })
    }

    /// Registers a server (members and above). `hostname` and `role` are required.
    async fn register_server(
        &self,
        ctx: &Context<'_>,
        input: ServerInput,
    ) -> Result<ServerPayload> {
        let viewer = viewer(ctx);
        let org = viewer.pick_org(
            opt_id(
                &input.organization_id,
                NodeKind::Organization,
                "input.organizationId",
            )?,
            "input.organizationId",
        )?;
        if input.hostname.is_none() {
            return Err(Error::bad_input("input.hostname", "hostname is required"));
        }
        if input.role.is_none() {
            return Err(Error::bad_input("input.role", "role is required"));
        }
        let server =
            server_service::register(state(ctx), viewer, org, server_fields(input)?).await?;
        Ok(ServerPayload {
            server: Server(server.into()),
        })
    }

    /// Changes a server (members and above).
    async fn update_server(&self, ctx: &Context<'_>, input: ServerInput) -> Result<ServerPayload> {
        let raw = input
            .id
            .clone()
            .ok_or_else(|| Error::bad_input("input.id", "id is required"))?;
        let id = id_of(&raw, NodeKind::Server, "input.id")?;
        let server =
            server_service::update(state(ctx), viewer(ctx), id, server_fields(input)?).await?;
        Ok(ServerPayload {
            server: Server(server.into()),
        })
    }

    /// Removes a server record (admins).
    async fn remove_server(&self, ctx: &Context<'_>, input: IdInput) -> Result<ServerPayload> {
        let id = id_of(&input.id, NodeKind::Server, "input.id")?;
        let server = server_service::remove(state(ctx), viewer(ctx), id).await?;
        Ok(ServerPayload {
            server: Server(server.into()),
        })
    }

    /// Forgets a server's pinned SSH host key (admins; audited).
    async fn reset_server_host_key(
        &self,
        ctx: &Context<'_>,
        input: IdInput,
    ) -> Result<ServerPayload> {
        let id = id_of(&input.id, NodeKind::Server, "input.id")?;
        let server = server_service::reset_host_key(state(ctx), viewer(ctx), id).await?;
        Ok(ServerPayload {
            server: Server(server.into()),
        })
    }
}

fn metadata(items: Vec<KeyValueInput>) -> Result<Vec<(String, String)>> {
    items
        .into_iter()
        .enumerate()
        .map(|(i, kv)| {
            let key = kv.key.trim().to_owned();
            if key.is_empty() || key.len() > 253 {
                return Err(Error::bad_input(
                    format!("input.metadata.{i}.key"),
                    "keys must be 1 to 253 characters",
                ));
            }
            Ok((key, kv.value))
        })
        .collect()
}
