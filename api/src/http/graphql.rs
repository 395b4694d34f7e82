//! GraphQL over HTTP (`POST` and `GET /graphql`) and over WebSocket (`GET /graphql` with an
//! upgrade, graphql-transport-ws or the older graphql-ws); the GraphiQL page is
//! [`super::graphiql`]'s.

use async_graphql::{
    Data,
    http::ALL_WEBSOCKET_PROTOCOLS,
    parser::{parse_query, types::OperationType},
};
use async_graphql_axum::{GraphQLProtocol, GraphQLRequest, GraphQLWebSocket};
use axum::{
    extract::{FromRequest, FromRequestParts, Request, State, WebSocketUpgrade},
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
        return websocket(state, req).await;
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

async fn websocket(state: HttpState, req: Request) -> Response {
    let (mut parts, _body) = req.into_parts();
    let protocol = match GraphQLProtocol::from_request_parts(&mut parts, &()).await {
        Ok(p) => p,
        Err(status) => return status.into_response(),
    };
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(u) => u,
        Err(e) => return e.into_response(),
    };
    let schema = state.schema.clone();
    let app = state.app.clone();
    let from_headers = Credentials::from_headers(&parts.headers);
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| {
            GraphQLWebSocket::new(socket, schema, protocol)
                .on_connection_init(move |payload| async move {
                    // Browsers cannot set headers on a WebSocket: credentials come in the
                    // `connection_init` payload, with the same names as the headers.
                    let creds = credentials_from_payload(&payload).unwrap_or(from_headers);
                    let viewer = authenticate(&app, &creds)
                        .await
                        .map_err(|e| async_graphql::Error::new(e.to_string()))?;
                    let mut data = Data::default();
                    data.insert(viewer);
                    data.insert(loaders(app.reads.clone()));
                    Ok(data)
                })
                .serve()
        })
}

fn credentials_from_payload(payload: &serde_json::Value) -> Option<Credentials> {
    let obj = payload.as_object()?;
    let get = |name: &str| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.as_str())
            .map(str::to_owned)
    };
    let mut headers = axum::http::HeaderMap::new();
    for name in ["authorization", "x-org-key", "x-org-secret", "x-org-id"] {
        if let Some(value) = get(name).and_then(|v| v.parse().ok()) {
            headers.insert(name, value);
        }
    }
    if headers.is_empty() {
        return None;
    }
    Some(Credentials::from_headers(&headers))
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
