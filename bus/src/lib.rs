//! The event bus: domain events published by the services and the workflow engine, read by
//! GraphQL subscriptions.
//!
//! One [`EventBus`] over two transports: an in-process broadcast (the embedded default, one
//! process) and Redis pub/sub (production, many processes). Either way:
//! - [`EventBus::publish`] is synchronous and never waits: a request or a step never stalls
//!   on the bus. Over Redis a background task sends events from a bounded queue; when the
//!   queue is full the event is dropped, counted ([`EventBus::dropped`]) and logged.
//! - Each process fans events out to its subscribers through one bounded broadcast channel:
//!   a subscriber that falls behind skips what it missed instead of growing memory.
//! - Over Redis, local subscribers receive events only through Redis, so an event published
//!   in any process reaches every subscriber of every process exactly once. Pub/sub keeps
//!   nothing: a process that is disconnected misses what is published meanwhile (subscribers
//!   reload state, events only say that something changed).
//!
//! Authorization is the subscriber's business: it checks every event against its viewer,
//! helped by [`Event::organization_id`].

use std::{sync::Arc, time::Duration};

use futures_util::{Stream, StreamExt};
use tokio::sync::broadcast;
use tokio_stream::wrappers::{BroadcastStream, errors::BroadcastStreamRecvError};

mod event;
mod pubsub;

pub use event::Event;
pub use pubsub::RedisSettings;

/// What can go wrong talking to the bus's backend.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Redis URL is not one the client accepts (the URL itself is never repeated: it
    /// may hold a password).
    // The Redis error's own text already ends with its cause: shown, not chained as a
    // source, so one-line reports do not say it twice.
    #[error("invalid Redis URL: {0}")]
    InvalidUrl(redis::RedisError),
    /// Redis refused the connection or a command.
    #[error("Redis does not answer: {0}")]
    Unavailable(redis::RedisError),
    /// Redis took longer than the configured timeout.
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
    /// The pub/sub connection is down and being re-established: events do not arrive.
    #[error("the Redis pub/sub connection is down, reconnecting")]
    Disconnected,
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Publish/subscribe of [`Event`]s; cheap to clone, all clones share one bus. Dropping the
/// last clone stops the Redis tasks and ends the subscribers' streams.
#[derive(Clone)]
pub struct EventBus {
    /// Fan-out to this process's subscribers.
    local: broadcast::Sender<Event>,
    transport: Transport,
}

#[derive(Clone)]
enum Transport {
    InProcess,
    Redis(Arc<pubsub::RedisLink>),
}

impl EventBus {
    /// Events a slow subscriber may lag behind before it starts skipping.
    pub const BUFFER: usize = 1024;

    /// A bus that reaches subscribers of this process only.
    pub fn in_process() -> Self {
        Self::in_process_with_buffer(Self::BUFFER)
    }

    /// Like [`Self::in_process`], with `buffer` events of lag allowed per subscriber.
    pub fn in_process_with_buffer(buffer: usize) -> Self {
        EventBus {
            local: broadcast::channel(buffer.max(1)).0,
            transport: Transport::InProcess,
        }
    }

    /// A bus over Redis pub/sub. Returns once Redis answered and this process is subscribed,
    /// so no event published after it returns is missed; fails when Redis does not answer
    /// within the settings' timeout. Later outages are survived by reconnecting.
    pub async fn redis(settings: RedisSettings) -> Result<Self> {
        let local = broadcast::channel(settings.buffer.max(1)).0;
        let link = pubsub::RedisLink::connect(&settings, local.clone()).await?;
        Ok(EventBus {
            local,
            transport: Transport::Redis(Arc::new(link)),
        })
    }

    /// Publishes `event` to every subscriber; nobody listening is not an error.
    pub fn publish(&self, event: Event) {
        match &self.transport {
            Transport::InProcess => {
                let _ = self.local.send(event);
            }
            Transport::Redis(link) => link.publish(event),
        }
    }

    /// Events published from now on (in any process, over Redis). A subscriber that falls
    /// more than the buffer behind skips the oldest events it missed.
    pub fn subscribe(&self) -> impl Stream<Item = Event> + Send + use<> {
        BroadcastStream::new(self.local.subscribe()).filter_map(|item| async move {
            match item {
                Ok(event) => Some(event),
                Err(BroadcastStreamRecvError::Lagged(skipped)) => {
                    tracing::debug!(skipped, "a slow subscriber skipped events");
                    None
                }
            }
        })
    }

    /// Whether the bus works: always with the in-process transport; over Redis, the
    /// subscriber connection is up and Redis answers a PING. For `/readyz`.
    pub async fn ping(&self) -> Result<()> {
        match &self.transport {
            Transport::InProcess => Ok(()),
            Transport::Redis(link) => link.ping().await,
        }
    }

    /// Events dropped so far by [`Self::publish`] because the queue to Redis was full or
    /// Redis refused them (always 0 in process).
    pub fn dropped(&self) -> u64 {
        match &self.transport {
            Transport::InProcess => 0,
            Transport::Redis(link) => link.dropped(),
        }
    }

    /// `"in-process"` or `"redis"`, for logs.
    pub fn transport_name(&self) -> &'static str {
        match &self.transport {
            Transport::InProcess => "in-process",
            Transport::Redis(_) => "redis",
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use uuid::Uuid;

    use super::*;

    fn created() -> Event {
        Event::OrganizationCreated {
            organization_id: Uuid::now_v7(),
        }
    }

    async fn next(stream: &mut (impl Stream<Item = Event> + Unpin)) -> Option<Event> {
        tokio::time::timeout(Duration::from_secs(1), stream.next())
            .await
            .ok()
            .flatten()
    }

    #[tokio::test]
    async fn every_subscriber_gets_every_event_in_order() {
        let bus = EventBus::in_process();
        let mut a = Box::pin(bus.subscribe());
        let mut b = Box::pin(bus.clone().subscribe());
        let (e1, e2) = (created(), created());
        bus.publish(e1.clone());
        bus.clone().publish(e2.clone());
        for s in [&mut a, &mut b] {
            assert_eq!(next(s).await, Some(e1.clone()));
            assert_eq!(next(s).await, Some(e2.clone()));
        }
        assert!(bus.ping().await.is_ok());
        assert_eq!(bus.transport_name(), "in-process");
    }

    #[tokio::test]
    async fn subscribers_see_only_later_events() {
        let bus = EventBus::in_process();
        bus.publish(created());
        let mut late = Box::pin(bus.subscribe());
        let e = created();
        bus.publish(e.clone());
        assert_eq!(next(&mut late).await, Some(e));
    }

    #[tokio::test]
    async fn a_lagging_subscriber_skips_to_the_newest_events() {
        let bus = EventBus::in_process_with_buffer(4);
        let mut slow = Box::pin(bus.subscribe());
        let events: Vec<Event> = (0..10).map(|_| created()).collect();
        for e in &events {
            bus.publish(e.clone());
        }
        // Only the last 4 were kept for it; the 6 oldest are skipped, not queued.
        for e in &events[6..] {
            assert_eq!(next(&mut slow).await.as_ref(), Some(e));
        }
        let e = created();
        bus.publish(e.clone());
        assert_eq!(next(&mut slow).await, Some(e), "it goes on after lagging");
    }

    #[tokio::test]
    async fn dropping_the_bus_ends_the_streams() {
        let bus = EventBus::in_process();
        let mut s = Box::pin(bus.subscribe());
        drop(bus);
        assert_eq!(
            tokio::time::timeout(Duration::from_secs(1), s.next())
                .await
                .unwrap(),
            None
        );
    }
}
