//! The audit log over GraphQL.

use async_graphql::{ID, Object};
use chrono::{DateTime, Utc};
use entity::{
    audit_log,
    enums::{ActorKind, AuditOutcome},
};

use super::relay::{GlobalId, NodeKind};

/// One thing someone did.
#[derive(Clone)]
pub struct AuditEntry(pub audit_log::Model);

#[Object]
impl AuditEntry {
    /// Global ID.
    pub async fn id(&self) -> ID {
        GlobalId::encode(NodeKind::AuditEntry, self.0.id)
    }
    /// What kind of caller did it.
    async fn actor_kind(&self) -> ActorKind {
        self.0.actor_kind
    }
    /// Who did it, as shown at the time.
    async fn actor(&self) -> &str {
        &self.0.actor_label
    }
    /// What was done, e.g. `member.add`.
    async fn action(&self) -> &str {
        &self.0.action
    }
    /// The kind of object it was done to.
    async fn target_type(&self) -> Option<&str> {
        self.0.target_type.as_deref()
    }
    /// How it ended.
    async fn outcome(&self) -> AuditOutcome {
        self.0.outcome
    }
    /// Extra facts.
    async fn details(&self) -> Option<&serde_json::Value> {
        self.0.details.as_ref()
    }
    /// When.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}
