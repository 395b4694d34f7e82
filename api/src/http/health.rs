//! `/healthz` (the process answers), `/readyz` (its dependencies answer), `/version`.

use axum::{Json, extract::State, http::StatusCode};
use serde_json::{Value, json};

use super::HttpState;

/// Alive: the process serves HTTP.
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Ready: the database and the event bus answer (over Redis: PING, and the subscriber
/// connection is up). 503 naming the failing checks otherwise.
pub async fn readyz(State(state): State<HttpState>) -> (StatusCode, Json<Value>) {
    let (database, bus) = tokio::join!(state.app.db.ping(), state.app.bus.ping());
    if let Err(e) = &database {
        tracing::warn!(error = %e, "readiness: database does not answer");
    }
    if let Err(e) = &bus {
        tracing::warn!(error = %e, "readiness: event bus does not answer");
    }
    let word = |ok: bool| if ok { "ok" } else { "unavailable" };
    let ready = database.is_ok() && bus.is_ok();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let checks = json!({ "database": word(database.is_ok()), "bus": word(bus.is_ok()) });
    let body = json!({ "status": if ready { "ok" } else { "unavailable" }, "checks": checks });
    (status, Json(body))
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
