//! Periodic upkeep of this process: re-reading the signing keys and rotating them when due
//! (idempotent, so every instance may do it). Sweeps of expired credentials and old runs are
//! the scheduled `housekeeping` workflow's (one run per period across all instances).

use std::time::Duration;

use crate::state::AppState;

/// How often rotation is checked.
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

/// Rotation when due (it reloads the keys too).
async fn run_hourly(state: &AppState) {
    let rotation = state.config.auth.signing_key_rotation;
    if let Err(e) = state.keyring.rotate_if_older_than(rotation).await {
        tracing::error!(error = ?e, "signing key rotation failed");
    }
}
