//! [`AppState`]: what every request and service needs, cheap to clone.

use std::sync::Arc;

use sea_orm::DatabaseConnection;

use crate::{bus::EventBus, config::Config};

/// Shared state of one process, built once by [`crate::startup::Application::build`].
#[derive(Clone)]
pub struct AppState {
    /// The connection pool.
    pub db: DatabaseConnection,
    /// The configuration the process started with.
    pub config: Arc<Config>,
    /// Where domain events are published for subscriptions.
    pub bus: EventBus,
}
