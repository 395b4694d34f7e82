//! Opening the database pool for either backend.

use std::time::Duration;

use anyhow::Context;
use sea_orm::{ConnectOptions, Database, DatabaseConnection};

use crate::config::DatabaseSettings;

/// Connects to the configured database. Errors name the URL with its password masked.
pub async fn connect(settings: &DatabaseSettings) -> anyhow::Result<DatabaseConnection> {
    let mut options = ConnectOptions::new(settings.url.expose());
    options
        .max_connections(settings.max_connections)
        .min_connections(0)
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(10))
        .sqlx_logging(false);
    Database::connect(options)
        .await
        .with_context(|| format!("cannot open database {}", settings.url.redacted()))
}
