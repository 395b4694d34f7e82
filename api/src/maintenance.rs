//! Periodic upkeep of this process: signing-key rotation and sweeps of expired refresh
//! tokens, API keys and organization keys. Every instance runs it; each step is idempotent,
//! so several instances doing it at once is harmless. (The workflow engine's scheduler will
//! take these over as single-runner jobs.)

use std::time::Duration;

use chrono::Utc;
use entity::{api_keys, organization_keys, refresh_tokens};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use crate::state::AppState;

/// How often upkeep runs.
pub const PERIOD: Duration = Duration::from_secs(3600);

/// Runs upkeep now and then every [`PERIOD`], forever (the task ends with the runtime).
pub async fn run_until_stopped(state: AppState) {
    let mut tick = tokio::time::interval(PERIOD);
    loop {
        tick.tick().await;
        if let Err(e) = state
            .keyring
            .rotate_if_older_than(state.config.auth.signing_key_rotation)
            .await
        {
            tracing::error!(error = ?e, "signing key rotation failed");
        }
        match sweep_expired(&state).await {
            Ok(n) if n > 0 => tracing::info!(deleted = n, "swept expired credentials"),
            Ok(_) => {}
            Err(e) => tracing::error!(error = ?e, "sweeping expired credentials failed"),
        }
    }
}

/// Deletes expired refresh tokens, API keys and organization keys; returns how many.
pub async fn sweep_expired(state: &AppState) -> anyhow::Result<u64> {
    let now = Utc::now();
    let tokens = refresh_tokens::Entity::delete_many()
        .filter(refresh_tokens::Column::ExpiresAt.lt(now))
        .exec(&state.db)
        .await?;
    let keys = api_keys::Entity::delete_many()
        .filter(api_keys::Column::ExpiresAt.lt(now))
        .exec(&state.db)
        .await?;
    let org_keys = organization_keys::Entity::delete_many()
        .filter(organization_keys::Column::ExpiresAt.lt(now))
        .exec(&state.db)
        .await?;
    Ok(tokens.rows_affected + keys.rows_affected + org_keys.rows_affected)
}
