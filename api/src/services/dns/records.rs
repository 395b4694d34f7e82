//! DNS records of a domain: what Autoglue wants at the provider (`desired_state`) and what
//! the last sync saw there (`observed_state`). The reconcile workflow does the syncing.
//!
//! Invariants: one record per (domain, name, type); a CNAME stands alone at its name; values
//! always match their type ([`super::values`]); a control-plane record names its cluster,
//! sits in that cluster's domain and has a plain (not wildcard) name, since the cluster's
//! API name is derived from it. Deleting a record that was ever synced only marks it
//! `ABSENT`, so the reconcile workflow removes it at the provider and then the row; a record
//! never synced has nothing to remove, and its row goes at once.

use anyhow::Context;
use chrono::Utc;
use entity::WriteTxn as _;
use entity::{
    dns_records, domains,
    enums::{
        DnsDesiredState, DnsObservedState, DnsRecordPurpose, DnsRecordType, DomainStatus,
        MemberRole,
    },
};
use sea_orm::{
    ActiveModelBehavior, ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait,
    QueryFilter, QueryOrder, Select, Set, sea_query::Expr,
};
use serde_json::json;
use uuid::Uuid;

use super::values;
use crate::{
    Error, Result,
    error::OnUniqueViolation,
    services::{
        audit::{self, Audit},
        clusters,
    },
    state::AppState,
    viewer::Viewer,
};

/// The marker on every record Autoglue creates.
pub const OWNER: &str = "autoglue";

/// The records `viewer` may see.
pub fn visible(viewer: &Viewer) -> Select<dns_records::Entity> {
    dns_records::Entity::find().filter(viewer.visible_orgs(dns_records::Column::OrganizationId))
}

/// The records of a domain, oldest first (viewers and above).
pub async fn of_domain<C: ConnectionTrait>(
    db: &C,
    viewer: &Viewer,
    domain: Uuid,
) -> Result<Vec<dns_records::Model>> {
    Ok(visible(viewer)
        .filter(dns_records::Column::DomainId.eq(domain))
        .order_by_asc(dns_records::Column::Id)
        .all(db)
        .await
        .context("loading a domain's records")?)
}

/// One record, if visible.
pub async fn find<C: ConnectionTrait>(
    db: &C,
    viewer: &Viewer,
    id: Uuid,
) -> Result<Option<dns_records::Model>> {
    Ok(visible(viewer)
        .filter(dns_records::Column::Id.eq(id))
        .one(db)
        .await
        .context("loading a DNS record")?)
}

async fn get_for<C: ConnectionTrait>(
    db: &C,
    viewer: &Viewer,
    id: Uuid,
    min: MemberRole,
) -> Result<dns_records::Model> {
    let record = find(db, viewer, id)
        .await?
        .ok_or(Error::NotFound("DNS record"))?;
    viewer.require_role(record.organization_id, min)?;
    Ok(record)
}

/// A record to create; name and TTL validated, values checked by [`create`] against the type.
pub struct NewRecord {
    pub name: String,
    pub record_type: DnsRecordType,
    pub ttl: i32,
    pub values: Vec<String>,
    pub cluster_id: Option<Uuid>,
    pub purpose: DnsRecordPurpose,
}

/// Refuses a CNAME next to any other record at the same name, and the reverse.
async fn check_cname_alone<C: ConnectionTrait>(
    db: &C,
    domain: Uuid,
    name: &str,
    record_type: DnsRecordType,
) -> Result<()> {
    let others = dns_records::Entity::find()
        .filter(dns_records::Column::DomainId.eq(domain))
        .filter(dns_records::Column::Name.eq(name))
        .filter(dns_records::Column::DesiredState.eq(DnsDesiredState::Present))
        .all(db)
        .await
        .context("loading records of the same name")?;
    let clash = others.iter().any(|r| {
        r.record_type != record_type
            && (record_type == DnsRecordType::Cname || r.record_type == DnsRecordType::Cname)
    });
    if clash {
        return Err(Error::Conflict {
            field: Some("input.type".into()),
            message: "a CNAME record cannot share its name with a record of another type".into(),
        });
    }
    Ok(())
}

/// Checks a control-plane record: it names a cluster whose domain is `domain`, by a plain
/// name (its fully qualified name becomes the cluster's API endpoint).
fn check_control_plane(
    domain: &domains::Model,
    cluster: Option<&entity::clusters::Model>,
    name: &str,
) -> Result<()> {
    let Some(cluster) = cluster else {
        return Err(Error::bad_input(
            "input.clusterId",
            "a control-plane record needs the cluster it serves",
        ));
    };
    if cluster.domain_id != Some(domain.id) {
        return Err(Error::bad_input(
            "input.domainId",
            "a control-plane record must be in its cluster's domain",
        ));
    }
    if name.starts_with('*') {
        return Err(Error::bad_input(
            "input.name",
            "a control-plane record needs a plain name, not a wildcard",
        ));
    }
    Ok(())
}

/// Creates a record in `domain` (members and above), `PRESENT` and not yet synced.
pub async fn create(
    state: &AppState,
    viewer: &Viewer,
    domain: Uuid,
    new: NewRecord,
) -> Result<dns_records::Model> {
    let values = values::record_values(new.record_type, &new.values, "input.values")?;
    let txn = state.db.begin_write().await?;
    let domain = super::get_for(&txn, viewer, domain, MemberRole::Member).await?;
    if domain.status == DomainStatus::Deleting {
        return Err(Error::Conflict {
            field: Some("input.domainId".into()),
            message: "the domain is being deleted".into(),
        });
    }
    let cluster = match new.cluster_id {
        Some(id) => Some(
            clusters::find(&txn, viewer, id)
                .await?
                .filter(|c| c.organization_id == domain.organization_id)
                .ok_or_else(|| {
                    Error::bad_input(
                        "input.clusterId",
                        "no such cluster in the domain's organization",
                    )
                })?,
        ),
        None => None,
    };
    if new.purpose == DnsRecordPurpose::ControlPlane {
        check_control_plane(&domain, cluster.as_ref(), &new.name)?;
    }
    check_cname_alone(&txn, domain.id, &new.name, new.record_type).await?;
    let mut row = dns_records::ActiveModel::new();
    row.organization_id = Set(domain.organization_id);
    row.domain_id = Set(domain.id);
    row.cluster_id = Set(new.cluster_id);
    row.purpose = Set(new.purpose);
    row.name = Set(new.name);
    row.record_type = Set(new.record_type);
    row.ttl = Set(new.ttl);
    row.values = Set(json!(values));
    row.desired_state = Set(DnsDesiredState::Present);
    row.observed_state = Set(DnsObservedState::Pending);
    row.owner = Set(OWNER.into());
    let record = row.insert(&txn).await.on_unique_violation(
        "input.name",
        "the domain already has a record of this name and type, or the cluster a control-plane record",
    )?;
    let entry = Audit::new("dns_record.create")
        .org(domain.organization_id)
        .target("dns_record", record.id);
    audit::record(&txn, viewer, entry).await?;
    txn.commit().await?;
    Ok(record)
}

/// Changes to a record; `None` leaves a field as it is.
#[derive(Default)]
pub struct RecordChange {
    pub ttl: Option<i32>,
    pub values: Option<Vec<String>>,
}

/// Updates a record (members and above); it is `PENDING` again until the next sync.
pub async fn update(
    state: &AppState,
    viewer: &Viewer,
    id: Uuid,
    change: RecordChange,
) -> Result<dns_records::Model> {
    let txn = state.db.begin_write().await?;
    let record = get_for(&txn, viewer, id, MemberRole::Member).await?;
    if record.desired_state == DnsDesiredState::Absent {
        return Err(Error::Conflict {
            field: Some("input.id".into()),
            message: "the record is being removed from the provider".into(),
        });
    }
    let values = change
        .values
        .map(|v| values::record_values(record.record_type, &v, "input.values"))
        .transpose()?;
    let org = record.organization_id;
    let mut row: dns_records::ActiveModel = record.into();
    if let Some(ttl) = change.ttl {
        row.ttl = Set(ttl);
    }
    if let Some(values) = values {
        row.values = Set(json!(values));
    }
    row.observed_state = Set(DnsObservedState::Pending);
    let record = row.update(&txn).await?;
    let entry = Audit::new("dns_record.update")
        .org(org)
        .target("dns_record", id);
    audit::record(&txn, viewer, entry).await?;
    txn.commit().await?;
    Ok(record)
}

/// Lets go of the records `which` selects before their cluster or domain goes, so that
/// none is left published at the provider with nobody to remove it (a dangling record is a
/// subdomain takeover waiting to happen). Records never synced exist nowhere else and are
/// deleted; the others are marked `ABSENT` (and, with `detach_cluster`, freed from their
/// cluster) for the reconcile to remove at the provider, then as rows. Returns how many
/// were kept for the reconcile.
pub async fn release<C: ConnectionTrait>(
    db: &C,
    which: Condition,
    detach_cluster: bool,
) -> Result<u64> {
    let never_synced = Condition::all()
        .add(dns_records::Column::ObservedState.eq(DnsObservedState::Pending))
        .add(dns_records::Column::LastSyncedAt.is_null());
    dns_records::Entity::delete_many()
        .filter(which.clone())
        .filter(never_synced.clone())
        .exec(db)
        .await
        .context("deleting records never synced")?;
    let mut kept = dns_records::Entity::update_many()
        .col_expr(
            dns_records::Column::DesiredState,
            Expr::value(DnsDesiredState::Absent),
        )
        .col_expr(dns_records::Column::UpdatedAt, Expr::value(Utc::now()));
    if detach_cluster {
        kept = kept.col_expr(dns_records::Column::ClusterId, Expr::value(None::<Uuid>));
    }
    let kept = kept
        .filter(which)
        .filter(never_synced.not())
        .exec(db)
        .await
        .context("marking records for removal")?;
    Ok(kept.rows_affected)
}

/// Deletes a record (admins and above). A record ever synced is only marked `ABSENT`: the
/// reconcile workflow removes it at the provider, then its row. A record never synced
/// (`PENDING`, no `last_synced_at`) exists nowhere else, so its row is deleted now.
pub async fn delete(state: &AppState, viewer: &Viewer, id: Uuid) -> Result<dns_records::Model> {
    let txn = state.db.begin_write().await?;
    let record = get_for(&txn, viewer, id, MemberRole::Admin).await?;
    let org = record.organization_id;
    let never_synced =
        record.observed_state == DnsObservedState::Pending && record.last_synced_at.is_none();
    let record = if never_synced {
        dns_records::Entity::delete_by_id(id).exec(&txn).await?;
        record
    } else {
        let mut row: dns_records::ActiveModel = record.into();
        row.desired_state = Set(DnsDesiredState::Absent);
        row.update(&txn).await?
    };
    let entry = Audit::new("dns_record.delete")
        .org(org)
        .target("dns_record", id);
    audit::record(&txn, viewer, entry).await?;
    txn.commit().await?;
    Ok(record)
}
