//! The audit log: who did what, in which organization, when, and how it ended.
//!
//! Every mutation that changes state or reveals a secret writes one row. Rows outlive the
//! organization they mention (its id is kept, the link set to null on delete).

use anyhow::Context;
use entity::{
    audit_log,
    enums::{ActorKind, AuditOutcome, MemberRole},
};
use sea_orm::{ActiveModelBehavior, ActiveModelTrait, ConnectionTrait, Set};
use serde_json::Value;
use uuid::Uuid;

use crate::{Error, Result, viewer::Viewer};

/// One audit entry to write.
pub struct Audit {
    action: &'static str,
    organization_id: Option<Uuid>,
    target: Option<(&'static str, Uuid)>,
    outcome: AuditOutcome,
    details: Option<Value>,
}

impl Audit {
    /// A successful `action` such as `organization.create`.
    pub fn new(action: &'static str) -> Self {
        Audit {
            action,
            organization_id: None,
            target: None,
            outcome: AuditOutcome::Success,
            details: None,
        }
    }

    /// In organization `id`.
    pub fn org(mut self, id: Uuid) -> Self {
        self.organization_id = Some(id);
        self
    }

    /// On the `kind` object `id`.
    pub fn target(mut self, kind: &'static str, id: Uuid) -> Self {
        self.target = Some((kind, id));
        self
    }

    /// Extra facts (never secrets).
    pub fn details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// How it ended, when not a success.
    pub fn outcome(mut self, outcome: AuditOutcome) -> Self {
        self.outcome = outcome;
        self
    }
}

/// Writes `entry` as done by `viewer`.
pub async fn record<C: ConnectionTrait>(db: &C, viewer: &Viewer, entry: Audit) -> Result<()> {
    let (kind, id, label) = match viewer {
        Viewer::Anonymous => (ActorKind::System, None, "anonymous".to_owned()),
        Viewer::User(u) => match u.api_key_id {
            Some(key) => (
                ActorKind::ApiKey,
                Some(u.id),
                format!("{} (API key {key})", u.username),
            ),
            None => (ActorKind::User, Some(u.id), u.username.clone()),
        },
        Viewer::OrgKey(k) => (
            ActorKind::OrgKey,
            Some(k.key_id),
            format!("organization key {}", k.key_id),
        ),
    };
    let mut row = audit_log::ActiveModel::new();
    row.organization_id = Set(entry.organization_id);
    row.actor_kind = Set(kind);
    row.actor_id = Set(id);
    row.actor_label = Set(label);
    row.action = Set(entry.action.to_owned());
    row.target_type = Set(entry.target.map(|(k, _)| k.to_owned()));
    row.target_id = Set(entry.target.map(|(_, id)| id));
    row.outcome = Set(entry.outcome);
    row.details = Set(entry.details);
    row.insert(db).await.context("writing the audit log")?;
    Ok(())
}

/// Checks that `viewer` holds `min` or above in `org`, as [`Viewer::require_role`] does; a
/// member below it is refused with `FORBIDDEN` and the refusal is written first, as `entry`
/// with the outcome `DENIED`. For actions whose every attempt is audited (reading a secret):
/// a refused one is as telling as one carried out. Callers that cannot see the organization
/// get `NOT_FOUND` and leave no entry (the object stays invisible to them).
pub async fn require_role<C: ConnectionTrait>(
    db: &C,
    viewer: &Viewer,
    org: Uuid,
    min: MemberRole,
    entry: Audit,
) -> Result<()> {
    match viewer.require_role(org, min) {
        Ok(_) => Ok(()),
        Err(refused @ Error::Forbidden(_)) => {
            record(db, viewer, entry.outcome(AuditOutcome::Denied)).await?;
            Err(refused)
        }
        Err(other) => Err(other),
    }
}
