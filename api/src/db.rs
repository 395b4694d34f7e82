//! Opening the database pool for either backend.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::Context;
use sea_orm::{ConnectOptions, Database, DatabaseConnection};

use crate::config::DatabaseSettings;

/// Counts every statement run on `conn` (and its clones made afterwards).
pub fn count_statements(conn: &mut DatabaseConnection) -> Arc<AtomicU64> {
    let counter = Arc::new(AtomicU64::new(0));
    let counting = counter.clone();
    conn.set_metric_callback(move |_| {
        counting.fetch_add(1, Ordering::Relaxed);
    });
    counter
}

/// Connects to the configured database. Errors name the URL with its password masked.
pub async fn connect(settings: &DatabaseSettings) -> anyhow::Result<DatabaseConnection> {
    let mut options = ConnectOptions::new(settings.url.expose());
    options
        .max_connections(settings.max_connections)
        .min_connections(0)
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(10))
        // sqlx pings every connection it hands out by default: a round trip per statement
        // (a sixth of the server's CPU on the fleet read). Connections idle for a second or
        // more are still checked, so one the server dropped is replaced, not used.
        .test_before_acquire_if_idle_for(Duration::from_secs(1))
        .sqlx_logging(false);
    Database::connect(options)
        .await
        .with_context(|| format!("cannot open database {}", settings.url.redacted()))
}
