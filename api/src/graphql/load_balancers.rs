//! Load balancers in GraphQL.

use async_graphql::{Context, ID, InputObject, MaybeUndefined, Object, SimpleObject};
use chrono::{DateTime, Utc};
use entity::{
    enums::{LoadBalancerKind, LoadBalancerPurpose},
    load_balancers,
};
use uuid::Uuid;

use super::{
    fleet::{Cluster, IdInput},
    relay::{ConnectionFields, GlobalId, IdConnection, NodeKind, PageArgs, connection},
    state,
};
use crate::{
    Result,
    services::{
        clusters as cluster_service,
        load_balancers::{
            self as lb_service, ListenerProtocol, LoadBalancerChange, NewLoadBalancer,
            addresses_of, listeners_of, parse_addresses, parse_listeners,
        },
        validate,
    },
    viewer::viewer,
};

/// A load balancer in front of a cluster.
#[derive(Clone)]
pub struct LoadBalancer(pub load_balancers::Model);

/// A port a load balancer listens on.
#[derive(SimpleObject)]
pub struct Listener {
    pub port: i32,
    pub protocol: ListenerProtocol,
    /// The port traffic is forwarded to.
    pub target_port: i32,
}

#[Object]
impl LoadBalancer {
    /// Global ID.
    pub async fn id(&self) -> ID {
        GlobalId::encode(NodeKind::LoadBalancer, self.0.id)
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn kind(&self) -> LoadBalancerKind {
        self.0.kind
    }
    async fn purpose(&self) -> LoadBalancerPurpose {
        self.0.purpose
    }
    async fn listeners(&self) -> Result<Vec<Listener>> {
        Ok(listeners_of(&self.0)?
            .into_iter()
            .map(|l| Listener {
                port: l.port.into(),
                protocol: l.protocol,
                target_port: l.target_port.into(),
            })
            .collect())
    }
    /// IP addresses or host names it answers on.
    async fn addresses(&self) -> Result<Vec<String>> {
        addresses_of(&self.0)
    }
    /// The global ID of its cluster.
    async fn cluster_id(&self) -> Option<ID> {
        self.0
            .cluster_id
            .map(|id| GlobalId::encode(NodeKind::Cluster, id))
    }
    async fn cluster(&self, ctx: &Context<'_>) -> Result<Option<Cluster>> {
        let Some(id) = self.0.cluster_id else {
            return Ok(None);
        };
        Ok(cluster_service::find(&state(ctx).db, viewer(ctx), id)
            .await?
            .map(Cluster))
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

fn opt_id(raw: Option<ID>, kind: NodeKind, field: &str) -> Result<Option<Uuid>> {
    raw.map(|id| GlobalId::expect(&id, kind, field)).transpose()
}

#[derive(Default)]
pub struct LoadBalancerQuery;

#[Object]
impl LoadBalancerQuery {
    /// The load balancers of an organization (default: the active one), optionally of one
    /// cluster, oldest first.
    #[allow(clippy::too_many_arguments)]
    #[graphql(complexity = "(first.or(last).unwrap_or(20).max(0) as usize) * child_complexity + 1")]
    async fn load_balancers(
        &self,
        ctx: &Context<'_>,
        organization_id: Option<ID>,
        cluster_id: Option<ID>,
        after: Option<String>,
        before: Option<String>,
        first: Option<i32>,
        last: Option<i32>,
    ) -> Result<IdConnection<LoadBalancer>> {
        let (state, viewer) = (state(ctx), viewer(ctx).clone());
        let org = opt_id(organization_id, NodeKind::Organization, "organizationId")?;
        let org = viewer.pick_org(org, "organizationId")?;
        let cluster = opt_id(cluster_id, NodeKind::Cluster, "clusterId")?;
        let page = PageArgs {
            after,
            before,
            first,
            last,
        }
        .parse(state.config.graphql.max_page_size)?;
        let items = lb_service::list(state, &viewer, org, cluster, &page).await?;
        let counting = state.clone();
        let fields = ConnectionFields::new(move || {
            let (state, viewer) = (counting.clone(), viewer.clone());
            async move { lb_service::count(&state, &viewer, org, cluster).await }
        });
        Ok(connection(items, fields, |l| l.id, LoadBalancer))
    }

    /// One load balancer; null when it does not exist or is not visible to you.
    async fn load_balancer(&self, ctx: &Context<'_>, id: ID) -> Result<Option<LoadBalancer>> {
        let id = GlobalId::expect(&id, NodeKind::LoadBalancer, "id")?;
        Ok(lb_service::find(&state(ctx).db, viewer(ctx), id)
            .await?
            .map(LoadBalancer))
    }
}

/// A listener to set.
#[derive(InputObject)]
pub struct ListenerInput {
    /// 1 to 65535; unique with the protocol.
    pub port: i32,
    pub protocol: ListenerProtocol,
    /// Default: the same as `port`.
    pub target_port: Option<i32>,
}

/// Input of `createLoadBalancer`.
#[derive(InputObject)]
pub struct CreateLoadBalancerInput {
    /// Default: the active organization.
    pub organization_id: Option<ID>,
    pub cluster_id: Option<ID>,
    /// 1 to 63 of a-z, 0-9 and '-'; unique in the organization.
    pub name: String,
    pub kind: LoadBalancerKind,
    /// With `clusterId`, APPS and CONTROL_PLANE make it the cluster's `appsLoadBalancer` or
    /// `controlPlaneLoadBalancer`: one of each per cluster (CONFLICT on `input.purpose`).
    pub purpose: LoadBalancerPurpose,
    #[graphql(default)]
    pub listeners: Vec<ListenerInput>,
    /// IP addresses or host names.
    #[graphql(default)]
    pub addresses: Vec<String>,
}

/// Input of `updateLoadBalancer`: omitted fields stay; lists replace the old ones whole.
#[derive(InputObject)]
pub struct UpdateLoadBalancerInput {
    pub id: ID,
    pub name: Option<String>,
    pub cluster_id: MaybeUndefined<ID>,
    pub kind: Option<LoadBalancerKind>,
    pub purpose: Option<LoadBalancerPurpose>,
    pub listeners: Option<Vec<ListenerInput>>,
    pub addresses: Option<Vec<String>>,
}

/// A payload holding a load balancer.
#[derive(SimpleObject)]
pub struct LoadBalancerPayload {
    pub load_balancer: LoadBalancer,
}

fn listeners(items: Vec<ListenerInput>) -> Result<Vec<lb_service::Listener>> {
    let raw: Vec<_> = items
        .into_iter()
        .map(|l| (l.port, l.protocol, l.target_port))
        .collect();
    parse_listeners(&raw, "input.listeners")
}

#[derive(Default)]
pub struct LoadBalancerMutation;

#[Object]
impl LoadBalancerMutation {
    /// Creates a load balancer record (members and above).
    async fn create_load_balancer(
        &self,
        ctx: &Context<'_>,
        input: CreateLoadBalancerInput,
    ) -> Result<LoadBalancerPayload> {
        let viewer = viewer(ctx);
        let org = opt_id(
            input.organization_id,
            NodeKind::Organization,
            "input.organizationId",
        )?;
        let org = viewer.pick_org(org, "input.organizationId")?;
        let new = NewLoadBalancer {
            name: validate::resource_name(&input.name, "input.name")?,
            cluster_id: opt_id(input.cluster_id, NodeKind::Cluster, "input.clusterId")?,
            kind: input.kind,
            purpose: input.purpose,
            listeners: listeners(input.listeners)?,
            addresses: parse_addresses(&input.addresses, "input.addresses")?,
        };
        let lb = lb_service::create(state(ctx), viewer, org, new).await?;
        Ok(LoadBalancerPayload {
            load_balancer: LoadBalancer(lb),
        })
    }

    /// Changes a load balancer (members and above).
    async fn update_load_balancer(
        &self,
        ctx: &Context<'_>,
        input: UpdateLoadBalancerInput,
    ) -> Result<LoadBalancerPayload> {
        let id = GlobalId::expect(&input.id, NodeKind::LoadBalancer, "input.id")?;
        let change = LoadBalancerChange {
            name: input
                .name
                .map(|n| validate::resource_name(&n, "input.name"))
                .transpose()?,
            cluster_id: match input.cluster_id {
                MaybeUndefined::Undefined => None,
                MaybeUndefined::Null => Some(None),
                MaybeUndefined::Value(v) => Some(Some(GlobalId::expect(
                    &v,
                    NodeKind::Cluster,
                    "input.clusterId",
                )?)),
            },
            kind: input.kind,
            purpose: input.purpose,
            listeners: input.listeners.map(listeners).transpose()?,
            addresses: input
                .addresses
                .map(|a| parse_addresses(&a, "input.addresses"))
                .transpose()?,
        };
        let lb = lb_service::update(state(ctx), viewer(ctx), id, change).await?;
        Ok(LoadBalancerPayload {
            load_balancer: LoadBalancer(lb),
        })
    }

    /// Deletes a load balancer record (admins).
    async fn delete_load_balancer(
        &self,
        ctx: &Context<'_>,
        input: IdInput,
    ) -> Result<LoadBalancerPayload> {
        let id = GlobalId::expect(&input.id, NodeKind::LoadBalancer, "input.id")?;
        let lb = lb_service::delete(state(ctx), viewer(ctx), id).await?;
        Ok(LoadBalancerPayload {
            load_balancer: LoadBalancer(lb),
        })
    }
}
