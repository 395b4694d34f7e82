//! [`AppState`]: what every request and service needs, cheap to clone.

use std::sync::Arc;

use sea_orm::DatabaseConnection;

use crate::{
    auth::{
        keyring::KeyRing,
        limits::{LoginLimiter, VerifiedKeys},
        oidc::Oidc,
    },
    bus::EventBus,
    config::Config,
    services::data_keys::Keys,
};

/// Shared state of one process, built once by [`crate::startup::Application::build`].
#[derive(Clone)]
pub struct AppState {
    /// The connection pool.
    pub db: DatabaseConnection,
    /// The hot paths' reads, on connections kept between statements ([`crate::db::Reads`]).
    pub reads: crate::db::Reads,
    /// The configuration the process started with.
    pub config: Arc<Config>,
    /// Where domain events are published for subscriptions.
    pub bus: EventBus,
    /// The workflow engine: starts, cancels and retries runs (and drives them on workers).
    pub engine: workflows::Engine,
    /// The job queue runs travel on (Redis or apalis on SQLite), for the job console.
    pub queue: workflows::runtime::QueueBackend,
    /// The master key and the organizations' data keys.
    pub keys: Arc<Keys>,
    /// JWT signing and verification keys.
    pub keyring: KeyRing,
    /// Failed logins per user and address.
    pub login_limiter: LoginLimiter,
    /// Recently verified API and organization keys.
    pub verified_keys: VerifiedKeys,
    /// What one caller may hold or create at once (sockets, creations, key generation).
    pub quotas: Arc<crate::auth::quotas::Quotas>,
    /// SQL statements run so far on [`Self::db`] (for metrics and the statement-count test).
    pub statements: Arc<std::sync::atomic::AtomicU64>,
    /// The OpenID Connect provider, when configured.
    pub oidc: Option<Arc<Oidc>>,
}
