//! GraphQL over HTTP (`POST` and `GET /graphql`); WebSocket upgrades go to
//! [`super::socket`], the GraphiQL page is [`super::graphiql`]'s.

use async_graphql::parser::{parse_query, types::OperationType};
use async_graphql_axum::GraphQLRequest;
use axum::{
    extract::{FromRequest, Request, State},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

use std::{
    net::SocketAddr,
    sync::atomic::{AtomicUsize, Ordering},
};

use async_graphql_axum::rejection::GraphQLRejection;
use axum::extract::ConnectInfo;

use super::HttpState;
use crate::graphql::{loaders::loaders, rendered};
use crate::{
    Error,
    auth::authenticate::{Credentials, authenticate},
    services::sessions::ClientInfo,
};

/// `POST /graphql`: queries and mutations.
pub async fn post(State(state): State<HttpState>, req: Request) -> Response {
    // Read the headers first: a request body is not `Sync`, so no borrow of the request
    // may live across an await.
    let (creds, client) = (Credentials::from_headers(req.headers()), client_info(&req));
    let viewer = match authenticate(&state.app, &creds).await {
        Ok(viewer) => viewer,
        Err(e) => return auth_error(e),
    };
    let req = match GraphQLRequest::<GraphQLRejection>::from_request(req, &()).await {
        Ok(r) => r.into_inner(),
        Err(e) => return e.into_response(),
    };
    let req = req
        .data(viewer)
        .data(client)
        .data(loaders(state.app.reads.clone()));
    json_response(state.schema.execute_rendered(req).await)
}

fn client_info(req: &Request) -> ClientInfo {
    let ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_default();
    let user_agent = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(200).collect());
    ClientInfo { ip, user_agent }
}

/// Credentials that do not authenticate answer before GraphQL runs, in GraphQL's error shape.
fn auth_error(e: Error) -> Response {
    let status = match e.code() {
        "UNAUTHENTICATED" => StatusCode::UNAUTHORIZED,
        "FORBIDDEN" => StatusCode::FORBIDDEN,
        "NOT_FOUND" => StatusCode::NOT_FOUND,
        "BAD_USER_INPUT" => StatusCode::BAD_REQUEST,
        "RATE_LIMITED" => StatusCode::TOO_MANY_REQUESTS,
        "SERVICE_UNAVAILABLE" => {
            tracing::warn!(error = ?e, "authentication failed: a backend is unavailable");
            StatusCode::SERVICE_UNAVAILABLE
        }
        _ => {
            tracing::error!(error = ?e, "authentication failed");
            StatusCode::INTERNAL_SERVER_ERROR
        }
    };
    let body = serde_json::json!({ "errors": [{
        "message": e.to_string(),
        "extensions": { "code": e.code() }
    }]});
    (status, axum::Json(body)).into_response()
}

/// `GET /graphql`: a WebSocket upgrade for subscriptions, else a query in the URL.
/// Mutations are refused over GET: a link or an image tag must not change anything.
pub async fn get(State(state): State<HttpState>, req: Request) -> Response {
    if req.headers().contains_key(header::UPGRADE) {
        let client = client_info(&req);
        return super::socket::upgrade(state, req, client).await;
    }
    let (creds, client) = (Credentials::from_headers(req.headers()), client_info(&req));
    let viewer = match authenticate(&state.app, &creds).await {
        Ok(viewer) => viewer,
        Err(e) => return auth_error(e),
    };
    let req = match GraphQLRequest::<GraphQLRejection>::from_request(req, &()).await {
        Ok(r) => r.into_inner(),
        Err(e) => return e.into_response(),
    };
    if is_mutation(&req) {
        let body = serde_json::json!({ "errors": [{
            "message": "mutations must be sent with POST",
            "extensions": { "code": "BAD_REQUEST" }
        }]});
        return (StatusCode::METHOD_NOT_ALLOWED, axum::Json(body)).into_response();
    }
    let req = req
        .data(viewer)
        .data(client)
        .data(loaders(state.app.reads.clone()));
    json_response(state.schema.execute_rendered(req).await)
}

fn is_mutation(req: &async_graphql::Request) -> bool {
    let Ok(doc) = parse_query(&req.query) else {
        return false; // let execution report the syntax error with its code
    };
    doc.operations.iter().any(|(name, op)| {
        let selected = match (&req.operation_name, name) {
            (Some(wanted), Some(name)) => wanted == name.as_str(),
            _ => true,
        };
        selected && op.node.ty == OperationType::Mutation
    })
}

/// The size of the last response, as the first guess for the next one's buffer.
static LAST_RESPONSE_LEN: AtomicUsize = AtomicUsize::new(4096);

/// A GraphQL response as JSON, as async-graphql-axum writes it (content type, cache
/// control, headers set by resolvers), with rendered lists copied in as they are
/// (`graphql::rendered`), into a buffer sized from the last response: growing
/// from a small buffer copied a 170 KB fleet page about ten times over.
fn json_response(resp: async_graphql::Response) -> Response {
    let hint = LAST_RESPONSE_LEN.load(Ordering::Relaxed).min(4 << 20);
    let mut body = Vec::with_capacity(hint + hint / 8);
    rendered::write_response(&mut body, &resp);
    LAST_RESPONSE_LEN.store(body.len(), Ordering::Relaxed);
    if body.capacity() > 2 * body.len() + 4096 {
        body.shrink_to_fit();
    }
    let mut out = Response::new(axum::body::Body::from(body));
    out.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/graphql-response+json"),
    );
    if resp.is_ok()
        && let Some(cache_control) = resp.cache_control.value()
        && let Ok(value) = HeaderValue::from_str(&cache_control)
    {
        out.headers_mut().insert(header::CACHE_CONTROL, value);
    }
    out.headers_mut().extend(resp.http_headers);
    out
}
