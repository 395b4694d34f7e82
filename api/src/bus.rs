//! The event bus, from the `bus` crate: domain events published by services and the
//! workflow engine, read by GraphQL subscriptions.
//!
//! In process by default; over Redis pub/sub when `REDIS_URL` is set, so that an event
//! published on any instance reaches subscribers on every instance. Subscribers authorize
//! each event again for their viewer ([`Event::organization_id`] helps).

pub use bus::{Event, EventBus, RedisSettings};
