//! Batch loading for nested fleet lists: a page of clusters with their pools, the pools'
//! servers and labels costs one statement per kind of child, whatever the page size.
//!
//! A loader is made per request (its cache must not outlive the viewer's rights). Children
//! are loaded by their parent's id only: the parent was already authorized, and children
//! always belong to their parent's organization. Objects a parent references by id (a
//! cluster's domain) are loaded by id and organization, so a stray reference cannot reach
//! into another organization.
//!
//! Rows are decoded by [`super::rows`] and handed out as `Arc`s: the loader clones each
//! value once per waiting field, which for `Vec<Model>` meant copying every string of every
//! row again.

use std::{
    any::{Any, TypeId},
    collections::{HashMap, HashSet},
    hash::Hash,
    sync::{
        Arc, Mutex, Weak,
        atomic::{AtomicU64, Ordering},
    },
};

use async_graphql::dataloader::Loader;
use entity::{
    cluster_metadata, dns_records, domains,
    enums::{DnsDesiredState, DnsRecordPurpose},
    load_balancers, node_pool_annotations, node_pool_labels, node_pool_taints, node_pools, servers,
    workflow_steps,
};
use futures_util::future::{BoxFuture, FutureExt, Shared};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter,
    sea_query::{Expr, ExprTrait as _, PgFunc, SimpleExpr},
};
use uuid::Uuid;

use super::rows::{self, Columns};
use crate::db::Reads;

/// Loads the children of fleet objects in batches.
pub struct FleetLoader {
    db: Reads,
}

/// Most keys in one statement (SQLite binds at most 32,766 parameters).
const MAX_KEYS: usize = 1_000;

impl FleetLoader {
    /// `column` is one of `ids`. On PostgreSQL `column = ANY($1)` with the ids as one `uuid[]`
    /// parameter: one statement text whatever the number of ids, so it is planned once per
    /// connection, and estimated so that the plan goes through the column's index. An `IN`
    /// list of 150 parameters was planned again on every execution (0.8 ms) and, estimated
    /// at 5 % of the table, read the whole `servers` table (2.6 ms against 0.7 ms through the
    /// index; `bench/README.md`). SQLite, without arrays, takes the `IN` list.
    fn one_of(&self, column: impl ColumnTrait, ids: Vec<Uuid>) -> SimpleExpr {
        match self.db.get_database_backend() {
            DbBackend::Postgres => Expr::col(column).eq(PgFunc::any(Expr::val(ids))),
            _ => column.is_in(ids),
        }
    }
}

/// The per-request loader.
///
/// A batch gathers keys for as long as the request's resolvers keep adding them: the first
/// key of a kind opens a batch, and the batch yields to the request's task until a yield
/// passes with no new key, so every sibling field that can run has asked by then. Only
/// then is it loaded (one statement per kind, per [`MAX_KEYS`]). No timer is involved, so
/// a busy machine cannot split a batch: async-graphql's `DataLoader` waits a fixed delay
/// from the first key, and under load (the fleet benchmark) a page of 150 node pools went
/// out as five to six statements for their servers alone.
pub struct Loaders {
    loader: Arc<FleetLoader>,
    open: Arc<Mutex<HashMap<TypeId, Box<dyn Any + Send>>>>,
}

type Batch<K, V> = Shared<BoxFuture<'static, Result<Arc<HashMap<K, V>>, LoadError>>>;

/// The batch of one kind of key that is still gathering keys.
struct Open<K, V> {
    keys: Arc<Mutex<Vec<K>>>,
    batch: Batch<K, V>,
}

/// A loader for one request.
pub fn loaders(db: Reads) -> Loaders {
    Loaders {
        loader: Arc::new(FleetLoader { db }),
        open: Arc::default(),
    }
}

impl Loaders {
    /// The value for `key`, loaded in a batch with the keys its siblings ask for.
    pub async fn load_one<K, V>(&self, key: K) -> Result<Option<V>, LoadError>
    where
        K: Send + Sync + Clone + Eq + Hash + 'static,
        V: Send + Sync + Clone + 'static,
        FleetLoader: Loader<K, Value = V, Error = LoadError>,
    {
        let batch = self.batch(std::iter::once(key.clone()));
        Ok(batch.await?.get(&key).cloned())
    }

    /// The values for `keys`, in their order, loaded in one batch (with the keys siblings
    /// ask for meanwhile): one future for a whole list's children, not one per parent.
    pub async fn load_many<K, V>(&self, keys: Vec<K>) -> Result<Vec<Option<V>>, LoadError>
    where
        K: Send + Sync + Clone + Eq + Hash + 'static,
        V: Send + Sync + Clone + 'static,
        FleetLoader: Loader<K, Value = V, Error = LoadError>,
    {
        let batch = self.batch(keys.iter().cloned());
        let values = batch.await?;
        Ok(keys.iter().map(|k| values.get(k).cloned()).collect())
    }

    /// The open batch of `K`s with `keys` added, or a new one of them.
    fn batch<K, V>(&self, keys: impl Iterator<Item = K>) -> Batch<K, V>
    where
        K: Send + Sync + Clone + Eq + Hash + 'static,
        V: Send + Sync + Clone + 'static,
        FleetLoader: Loader<K, Value = V, Error = LoadError>,
    {
        let mut open = self.open.lock().expect("loader lock");
        let slot = open
            .entry(TypeId::of::<K>())
            .or_insert_with(|| Box::new(None::<Open<K, V>>))
            .downcast_mut::<Option<Open<K, V>>>()
            .expect("one value type per key type");
        match slot {
            Some(batch) => {
                batch.keys.lock().expect("loader lock").extend(keys);
                batch.batch.clone()
            }
            None => {
                let keys = Arc::new(Mutex::new(keys.collect()));
                let batch = gather_and_load::<K, V>(
                    self.loader.clone(),
                    Arc::downgrade(&self.open),
                    keys.clone(),
                )
                .boxed()
                .shared();
                *slot = Some(Open {
                    keys,
                    batch: batch.clone(),
                });
                batch
            }
        }
    }
}

async fn gather_and_load<K, V>(
    loader: Arc<FleetLoader>,
    open: Weak<Mutex<HashMap<TypeId, Box<dyn Any + Send>>>>,
    keys: Arc<Mutex<Vec<K>>>,
) -> Result<Arc<HashMap<K, V>>, LoadError>
where
    K: Send + Sync + Clone + Eq + Hash + 'static,
    V: Send + Sync + Clone + 'static,
    FleetLoader: Loader<K, Value = V, Error = LoadError>,
{
    let mut seen = 0;
    loop {
        let now = keys.lock().expect("loader lock").len();
        if now == seen {
            break;
        }
        seen = now;
        tokio::task::yield_now().await;
    }
    // Close the batch: a key asked for from here on opens the next one.
    if let Some(open) = open.upgrade()
        && let Some(slot) = open
            .lock()
            .expect("loader lock")
            .get_mut(&TypeId::of::<K>())
        && let Some(slot) = slot.downcast_mut::<Option<Open<K, V>>>()
    {
        *slot = None;
    }
    let mut keys = std::mem::take(&mut *keys.lock().expect("loader lock"));
    let mut unique = HashSet::with_capacity(keys.len());
    keys.retain(|k| unique.insert(k.clone()));
    let mut values = HashMap::with_capacity(keys.len());
    for chunk in keys.chunks(MAX_KEYS) {
        values.extend(loader.load(chunk).await?);
    }
    Ok(Arc::new(values))
}

/// Errors are shared between the fields that waited on one batch.
pub type LoadError = Arc<sea_orm::DbErr>;

/// The children of one parent, shared between the fields that asked for them.
pub type Children<M> = Vec<Arc<M>>;

/// A child row's id.
trait Id {
    fn id(&self) -> Uuid;
}

macro_rules! id {
    ($($module:ident),+) => {
        $(impl Id for $module::Model {
            fn id(&self) -> Uuid {
                self.id
            }
        })+
    };
}

id!(
    cluster_metadata,
    dns_records,
    domains,
    load_balancers,
    node_pool_annotations,
    node_pool_labels,
    node_pool_taints,
    node_pools,
    servers,
    workflow_steps
);

/// `rows` under the key of each, every key's children in id order (creation order: ids are
/// UUIDv7). The statements do not sort: PostgreSQL spent a third of the page's servers
/// statement sorting 750 rows that group into lists of five.
fn group<K: Hash + Eq + Copy, M: Id>(
    keys: &[K],
    rows: Vec<M>,
    key_of: impl Fn(&M) -> K,
) -> HashMap<K, Children<M>> {
    let mut map: HashMap<K, Children<M>> = keys.iter().map(|k| (*k, Vec::new())).collect();
    for row in rows {
        map.entry(key_of(&row)).or_default().push(Arc::new(row));
    }
    for children in map.values_mut() {
        children.sort_unstable_by_key(|m| m.id());
    }
    map
}

/// The children `key` names, reading only `columns` of each (their id and parent column
/// too, which grouping them needs): models whose other fields hold blanks
/// ([`rows::some`]), for a rendered list that writes only fields of those columns. Kept
/// under keys of their own, so a resolver, which loads by the plain key, never sees one.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Narrow<K> {
    pub key: K,
    pub columns: Columns,
}

static NARROWED: AtomicU64 = AtomicU64::new(0);

/// How many statements this process has run for [`Narrow`] keys reading fewer than all of
/// their table's columns (tests check that the narrow path is taken).
pub fn narrowed_reads() -> u64 {
    NARROWED.load(Ordering::Relaxed)
}

/// Loads `columns` of the children `keys` name (their parents' ids in `column`), grouped
/// under the key `key_of` gives each row.
async fn load_children<K, E>(
    loader: &FleetLoader,
    keys: &[K],
    column: E::Column,
    key_of: impl Fn(&E::Model) -> K,
    columns: Columns,
) -> Result<HashMap<K, Children<E::Model>>, LoadError>
where
    K: Hash + Eq + Copy + Parent,
    E: EntityTrait,
    E::Model: rows::Decode + Id,
{
    let ids: Vec<Uuid> = keys.iter().map(|k| k.parent()).collect();
    let select = E::find().filter(loader.one_of(column, ids));
    let rows = rows::some(&loader.db, select, columns)
        .await
        .map_err(Arc::new)?;
    Ok(group(keys, rows, key_of))
}

macro_rules! children {
    ($key:ident, $entity:ident, $column:ident, |$row:ident| $parent:expr, $doc:literal) => {
        #[doc = $doc]
        #[derive(Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $key(pub Uuid);

        impl Loader<$key> for FleetLoader {
            type Value = Children<$entity::Model>;
            type Error = LoadError;

            async fn load(&self, keys: &[$key]) -> Result<HashMap<$key, Self::Value>, Self::Error> {
                load_children::<_, $entity::Entity>(
                    self,
                    keys,
                    $entity::Column::$column,
                    |$row: &$entity::Model| $key($parent),
                    Columns::ALL,
                )
                .await
            }
        }

        impl Loader<Narrow<$key>> for FleetLoader {
            type Value = Children<$entity::Model>;
            type Error = LoadError;

            async fn load(
                &self,
                keys: &[Narrow<$key>],
            ) -> Result<HashMap<Narrow<$key>, Self::Value>, Self::Error> {
                let grouping = Columns::at(&[
                    $entity::Column::Id as usize,
                    $entity::Column::$column as usize,
                ]);
                let columns = keys.iter().fold(grouping, |c, k| c.and(k.columns));
                if !rows::reads_all::<$entity::Entity>(columns) {
                    NARROWED.fetch_add(1, Ordering::Relaxed);
                }
                let plain: Vec<$key> = keys.iter().map(|k| k.key).collect();
                let lists = load_children::<_, $entity::Entity>(
                    self,
                    &plain,
                    $entity::Column::$column,
                    |$row: &$entity::Model| $key($parent),
                    columns,
                )
                .await?;
                // Two selections may ask for one parent's children with other columns:
                // each of their keys gets the list (read with the union of the columns).
                Ok(keys
                    .iter()
                    .map(|k| (*k, lists.get(&k.key).cloned().unwrap_or_default()))
                    .collect())
            }
        }

        impl Parent for $key {
            fn parent(&self) -> Uuid {
                self.0
            }
        }
    };
}

/// The id of the parent whose children a key names.
trait Parent {
    fn parent(&self) -> Uuid;
}

children!(
    PoolsOfCluster,
    node_pools,
    ClusterId,
    |r| r.cluster_id,
    "The node pools of a cluster."
);
children!(
    MetadataOfCluster,
    cluster_metadata,
    ClusterId,
    |r| r.cluster_id,
    "The metadata of a cluster."
);
children!(
    LabelsOfPool,
    node_pool_labels,
    NodePoolId,
    |r| r.node_pool_id,
    "The labels of a node pool."
);
children!(
    AnnotationsOfPool,
    node_pool_annotations,
    NodePoolId,
    |r| r.node_pool_id,
    "The annotations of a node pool."
);
children!(
    TaintsOfPool,
    node_pool_taints,
    NodePoolId,
    |r| r.node_pool_id,
    "The taints of a node pool."
);
children!(
    ServersOfCluster,
    servers,
    ClusterId,
    |r| r.cluster_id.unwrap_or_default(),
    "The servers of a cluster."
);
children!(
    ServersOfPool,
    servers,
    NodePoolId,
    |r| r.node_pool_id.unwrap_or_default(),
    "The servers of a node pool."
);

/// The steps of a workflow run (in id order; callers sort by position).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct StepsOfRun(pub Uuid);

impl Loader<StepsOfRun> for FleetLoader {
    type Value = Children<workflow_steps::Model>;
    type Error = LoadError;

    async fn load(
        &self,
        keys: &[StepsOfRun],
    ) -> Result<HashMap<StepsOfRun, Self::Value>, Self::Error> {
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let rows = workflow_steps::Entity::find()
            .filter(self.one_of(workflow_steps::Column::RunId, ids))
            .all(&self.db)
            .await
            .map_err(Arc::new)?;
        Ok(group(keys, rows, |r| StepsOfRun(r.run_id)))
    }
}

/// The load balancers of a cluster.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct LoadBalancersOfCluster(pub Uuid);

impl Loader<LoadBalancersOfCluster> for FleetLoader {
    type Value = Children<load_balancers::Model>;
    type Error = LoadError;

    async fn load(
        &self,
        keys: &[LoadBalancersOfCluster],
    ) -> Result<HashMap<LoadBalancersOfCluster, Self::Value>, Self::Error> {
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let rows = load_balancers::Entity::find()
            .filter(self.one_of(load_balancers::Column::ClusterId, ids))
            .all(&self.db)
            .await
            .map_err(Arc::new)?;
        Ok(group(keys, rows, |r| {
            LoadBalancersOfCluster(r.cluster_id.unwrap_or_default())
        }))
    }
}

/// The control-plane DNS record of a cluster: its `PRESENT` record with that purpose (at
/// most one, by a unique index), as a list of zero or one.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ControlPlaneRecordOfCluster(pub Uuid);

impl Loader<ControlPlaneRecordOfCluster> for FleetLoader {
    type Value = Children<dns_records::Model>;
    type Error = LoadError;

    async fn load(
        &self,
        keys: &[ControlPlaneRecordOfCluster],
    ) -> Result<HashMap<ControlPlaneRecordOfCluster, Self::Value>, Self::Error> {
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let rows = dns_records::Entity::find()
            .filter(self.one_of(dns_records::Column::ClusterId, ids))
            .filter(dns_records::Column::Purpose.eq(DnsRecordPurpose::ControlPlane))
            .filter(dns_records::Column::DesiredState.eq(DnsDesiredState::Present))
            .all(&self.db)
            .await
            .map_err(Arc::new)?;
        Ok(group(keys, rows, |r| {
            ControlPlaneRecordOfCluster(r.cluster_id.unwrap_or_default())
        }))
    }
}

/// A domain by its id, only if it belongs to `org` (a list of zero or one).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct DomainInOrg {
    pub org: Uuid,
    pub id: Uuid,
}

impl Loader<DomainInOrg> for FleetLoader {
    type Value = Children<domains::Model>;
    type Error = LoadError;

    async fn load(
        &self,
        keys: &[DomainInOrg],
    ) -> Result<HashMap<DomainInOrg, Self::Value>, Self::Error> {
        let ids: Vec<Uuid> = keys.iter().map(|k| k.id).collect();
        let orgs: Vec<Uuid> = keys.iter().map(|k| k.org).collect();
        let rows = domains::Entity::find()
            .filter(self.one_of(domains::Column::Id, ids))
            .filter(self.one_of(domains::Column::OrganizationId, orgs))
            .all(&self.db)
            .await
            .map_err(Arc::new)?;
        // Keys the rows did not answer stay empty: a domain of another organization is absent.
        Ok(group(keys, rows, |r| DomainInOrg {
            org: r.organization_id,
            id: r.id,
        }))
    }
}
