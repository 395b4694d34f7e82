//! Periodic upkeep of this process: signing-key rotation and sweeps of expired refresh
//! tokens, API keys and organization keys. Every instance runs it; each step is idempotent,
//! so several instances doing it at once is harmless. (The workflow engine's scheduler will
//! take these over as single-runner jobs.)

use std::time::Duration;

use chrono::Utc;
use entity::{api_keys, organization_keys, refresh_tokens};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use crate::state::AppState;

/// How often rotation and sweeps run.
pub const PERIOD: Duration = Duration::from_secs(3600);
/// How often the signing keys are re-read. It must stay well under the minute of grace a
/// retired key keeps past its tokens' lifetime, so that no instance signs with a key that
/// another instance rotated out of the JWKS.
pub const KEY_RELOAD: Duration = Duration::from_secs(30);

/// Runs upkeep periodically, forever (the task ends with the runtime). Start-up already
/// loaded or made the keys, so the first round waits one [`KEY_RELOAD`].
pub async fn run_until_stopped(state: AppState) {
    let start = tokio::time::Instant::now() + KEY_RELOAD;
    let mut tick = tokio::time::interval_at(start, KEY_RELOAD);
    let rounds_per_period = (PERIOD.as_secs() / KEY_RELOAD.as_secs()).max(1);
    for round in 0u64.. {
        tick.tick().await;
        if round % rounds_per_period == 0 {
            run_hourly(&state).await;
        } else if let Err(e) = state.keyring.reload().await {
            tracing::warn!(error = ?e, "reloading signing keys failed");
        }
    }
}

/// Rotation when due (it reloads the keys too) and the sweeps.
async fn run_hourly(state: &AppState) {
    let rotation = state.config.auth.signing_key_rotation;
    if let Err(e) = state.keyring.rotate_if_older_than(rotation).await {
        tracing::error!(error = ?e, "signing key rotation failed");
    }
    match sweep_expired(state).await {
        Ok(n) if n > 0 => tracing::info!(deleted = n, "swept expired credentials"),
        Ok(_) => {}
        Err(e) => tracing::error!(error = ?e, "sweeping expired credentials failed"),
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
