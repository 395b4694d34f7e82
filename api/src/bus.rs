//! The event bus: domain events published by services, read by GraphQL subscriptions.
//!
//! In-process broadcast for now (the embedded default); Redis pub/sub for many processes
//! comes with the workflow engine. Each subscriber has a bounded buffer: one that falls
//! behind skips the events it missed instead of growing memory without limit.

use futures_util::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;
use uuid::Uuid;

/// Something that happened, small enough to serialize; subscribers load what they show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// An organization was created.
    OrganizationCreated { organization_id: Uuid },
}

/// Publish/subscribe of [`Event`]s.
#[derive(Clone)]
pub struct EventBus {
    sender: broadcast::Sender<Event>,
}

impl EventBus {
    /// Events a slow subscriber may lag behind before it starts skipping.
    pub const BUFFER: usize = 1024;

    /// A bus that reaches subscribers of this process only.
    pub fn in_process() -> Self {
        EventBus {
            sender: broadcast::channel(Self::BUFFER).0,
        }
    }

    /// Publishes `event` to current subscribers; nobody listening is not an error.
    pub fn publish(&self, event: Event) {
        let _ = self.sender.send(event);
    }

    /// Events published from now on.
    pub fn subscribe(&self) -> impl Stream<Item = Event> + Send + use<> {
        BroadcastStream::new(self.sender.subscribe()).filter_map(|e| async move { e.ok() })
    }
}
