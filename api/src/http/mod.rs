//! The HTTP surface: routes and the middleware stack around them.

mod graphiql;
mod graphql;
mod health;
mod oidc;
mod redirect;
mod socket;

use axum::{
    Router,
    http::{HeaderName, Request},
    routing::get,
};
use tower::ServiceBuilder;
use tower_http::{
    limit::RequestBodyLimitLayer,
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    trace::TraceLayer,
};

use crate::{graphql::served, state::AppState};

/// Largest request body accepted (GraphQL documents and variables).
pub(crate) const BODY_LIMIT: usize = 2 * 1024 * 1024;

/// State of the HTTP handlers: the schema (which holds the [`AppState`]) and the state.
#[derive(Clone)]
pub struct HttpState {
    pub schema: crate::graphql::errors::Served,
    pub app: AppState,
}

/// All routes with request ids, tracing and a body limit.
/// The router of a worker-only process (`--role worker`): health and version, no API.
pub fn health_router(app: AppState) -> Router {
    let state = HttpState {
        schema: served(app.clone()),
        app,
    };
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/version", get(health::version))
        .with_state(state)
}

pub fn router(app: AppState) -> Router {
    let state = HttpState {
        schema: served(app.clone()),
        app,
    };
    let request_id = HeaderName::from_static("x-request-id");
    let middleware = ServiceBuilder::new()
        .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                let id = req
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
            }),
        )
        .layer(PropagateRequestIdLayer::new(request_id))
        .layer(RequestBodyLimitLayer::new(BODY_LIMIT));
    Router::new()
        .route("/graphql", get(graphql::get).post(graphql::post))
        .route("/graphiql", get(graphiql::page))
        .route("/graphiql/assets/{name}", get(graphiql::asset))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/version", get(health::version))
        .route("/.well-known/jwks.json", get(health::jwks))
        .route("/auth/oidc/login", get(oidc::login))
        .route("/auth/oidc/callback", get(oidc::callback))
        .layer(middleware)
        .with_state(state)
}
