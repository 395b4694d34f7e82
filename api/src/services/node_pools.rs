//! Node pools of a cluster, with their labels, annotations and taints (edited as whole
//! sets, so a client sends what it wants and never has to diff).

use anyhow::Context;
use entity::WriteTxn as _;
use entity::{
    clusters,
    enums::{MemberRole, NodePoolRole, TaintEffect},
    node_pool_annotations, node_pool_labels, node_pool_taints, node_pools,
};
use sea_orm::{
    ActiveModelBehavior, ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
    Set,
};
use uuid::Uuid;

use crate::{
    Error, Result,
    error::OnUniqueViolation,
    services::{
        audit::{self, Audit},
        clusters as cluster_service,
    },
    state::AppState,
    viewer::Viewer,
};

/// Largest desired size accepted.
pub const MAX_SIZE: i32 = 1000;

/// A taint, validated.
#[derive(Debug, Clone)]
pub struct Taint {
    pub key: String,
    pub value: String,
    pub effect: TaintEffect,
}

/// Labels, annotations and taints; `None` leaves a set as it is.
#[derive(Debug, Default, Clone)]
pub struct PoolSets {
    pub labels: Option<Vec<(String, String)>>,
    pub annotations: Option<Vec<(String, String)>>,
    pub taints: Option<Vec<Taint>>,
}

/// A pool to create, validated.
pub struct NewPool {
    pub name: String,
    pub role: NodePoolRole,
    pub desired_size: i32,
    pub sets: PoolSets,
}

/// Checks a desired size.
pub fn desired_size(n: i32, field: &str) -> Result<i32> {
    if !(0..=MAX_SIZE).contains(&n) {
        return Err(Error::bad_input(
            field,
            format!("desired size must be 0 to {MAX_SIZE}"),
        ));
    }
    Ok(n)
}

/// One pool, if visible.
pub async fn find<C: ConnectionTrait>(
    db: &C,
    viewer: &Viewer,
    id: Uuid,
) -> Result<Option<node_pools::Model>> {
    Ok(node_pools::Entity::find_by_id(id)
        .filter(viewer.visible_orgs(node_pools::Column::OrganizationId))
        .one(db)
        .await
        .context("loading a node pool")?)
}

async fn get_for<C: ConnectionTrait>(
    db: &C,
    viewer: &Viewer,
    id: Uuid,
    min: MemberRole,
) -> Result<node_pools::Model> {
    let pool = find(db, viewer, id)
        .await?
        .ok_or(Error::NotFound("node pool"))?;
    viewer.require_role(pool.organization_id, min)?;
    Ok(pool)
}

/// Adds a pool to a cluster (members and above).
pub async fn create(
    state: &AppState,
    viewer: &Viewer,
    cluster_id: Uuid,
    new: NewPool,
) -> Result<node_pools::Model> {
    let txn = state.db.begin_write().await?;
    let cluster: clusters::Model = cluster_service::find(&txn, viewer, cluster_id)
        .await?
        .ok_or(Error::NotFound("cluster"))?;
    viewer.require_role(cluster.organization_id, MemberRole::Member)?;
    let mut row = node_pools::ActiveModel::new();
    row.organization_id = Set(cluster.organization_id);
    row.cluster_id = Set(cluster.id);
    row.name = Set(new.name);
    row.role = Set(new.role);
    row.desired_size = Set(new.desired_size);
    let pool = row.insert(&txn).await.on_unique_violation(
        "input.name",
        "the cluster already has a node pool with this name",
    )?;
    replace_sets(&txn, &pool, new.sets).await?;
    audit::record(
        &txn,
        viewer,
        Audit::new("node_pool.create")
            .org(pool.organization_id)
            .target("node_pool", pool.id),
    )
    .await?;
    txn.commit().await?;
    Ok(pool)
}

/// Changes a pool: its size and any of its sets (members and above).
pub async fn update(
    state: &AppState,
    viewer: &Viewer,
    id: Uuid,
    desired_size: Option<i32>,
    sets: PoolSets,
) -> Result<node_pools::Model> {
    let txn = state.db.begin_write().await?;
    let pool = get_for(&txn, viewer, id, MemberRole::Member).await?;
    let pool = match desired_size {
        Some(n) => {
            let mut row: node_pools::ActiveModel = pool.into();
            row.desired_size = Set(n);
            row.update(&txn).await?
        }
        None => pool,
    };
    replace_sets(&txn, &pool, sets).await?;
    audit::record(
        &txn,
        viewer,
        Audit::new("node_pool.update")
            .org(pool.organization_id)
            .target("node_pool", id),
    )
    .await?;
    txn.commit().await?;
    Ok(pool)
}

/// Deletes a pool (admins and above); its servers stay in the cluster, unassigned.
pub async fn delete(state: &AppState, viewer: &Viewer, id: Uuid) -> Result<node_pools::Model> {
    let txn = state.db.begin_write().await?;
    let pool = get_for(&txn, viewer, id, MemberRole::Admin).await?;
    node_pools::Entity::delete_by_id(id).exec(&txn).await?;
    audit::record(
        &txn,
        viewer,
        Audit::new("node_pool.delete")
            .org(pool.organization_id)
            .target("node_pool", id),
    )
    .await?;
    txn.commit().await?;
    Ok(pool)
}

async fn replace_sets<C: ConnectionTrait>(
    db: &C,
    pool: &node_pools::Model,
    sets: PoolSets,
) -> Result<()> {
    if let Some(labels) = sets.labels {
        node_pool_labels::Entity::delete_many()
            .filter(node_pool_labels::Column::NodePoolId.eq(pool.id))
            .exec(db)
            .await?;
        if !labels.is_empty() {
            let rows = labels.into_iter().map(|(k, v)| {
                let mut row = node_pool_labels::ActiveModel::new();
                (row.organization_id, row.node_pool_id, row.key, row.value) =
                    (Set(pool.organization_id), Set(pool.id), Set(k), Set(v));
                row
            });
            node_pool_labels::Entity::insert_many(rows)
                .exec(db)
                .await
                .on_unique_violation("input.labels", "label keys must be unique")?;
        }
    }
    if let Some(annotations) = sets.annotations {
        node_pool_annotations::Entity::delete_many()
            .filter(node_pool_annotations::Column::NodePoolId.eq(pool.id))
            .exec(db)
            .await?;
        if !annotations.is_empty() {
            let rows = annotations.into_iter().map(|(k, v)| {
                let mut row = node_pool_annotations::ActiveModel::new();
                (row.organization_id, row.node_pool_id, row.key, row.value) =
                    (Set(pool.organization_id), Set(pool.id), Set(k), Set(v));
                row
            });
            node_pool_annotations::Entity::insert_many(rows)
                .exec(db)
                .await
                .on_unique_violation("input.annotations", "annotation keys must be unique")?;
        }
    }
    if let Some(taints) = sets.taints {
        node_pool_taints::Entity::delete_many()
            .filter(node_pool_taints::Column::NodePoolId.eq(pool.id))
            .exec(db)
            .await?;
        if !taints.is_empty() {
            let rows = taints.into_iter().map(|t| {
                let mut row = node_pool_taints::ActiveModel::new();
                (row.organization_id, row.node_pool_id) = (Set(pool.organization_id), Set(pool.id));
                (row.key, row.value, row.effect) = (Set(t.key), Set(t.value), Set(t.effect));
                row
            });
            node_pool_taints::Entity::insert_many(rows)
                .exec(db)
                .await
                .on_unique_violation("input.taints", "a taint key may appear once per effect")?;
        }
    }
    Ok(())
}
