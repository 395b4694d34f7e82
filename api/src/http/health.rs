//! `/healthz` (the process answers), `/readyz` (its dependencies answer), `/version`.

use axum::{Json, extract::State, http::StatusCode};
use serde_json::{Value, json};

use super::HttpState;

/// Alive: the process serves HTTP.
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Ready: the database answers. 503 with the failing check otherwise.
pub async fn readyz(State(state): State<HttpState>) -> (StatusCode, Json<Value>) {
    match state.app.db.ping().await {
        Ok(()) => (
            StatusCode::OK,
            Json(json!({ "status": "ok", "checks": { "database": "ok" } })),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "readiness: database does not answer");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "unavailable", "checks": { "database": "unavailable" } })),
            )
        }
    }
}

/// The build's version.
pub async fn version() -> Json<Value> {
    Json(json!({
        "name": "autoglue",
        "version": crate::VERSION,
        "commit": option_env!("AUTOGLUE_GIT_COMMIT"),
    }))
}

/// The public keys that verify access tokens (JSON Web Key Set).
pub async fn jwks(State(state): State<HttpState>) -> Json<Value> {
    Json(state.app.keyring.jwks())
}
