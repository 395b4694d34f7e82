//! GraphQL over HTTP (`POST` and `GET /graphql`), over WebSocket (`GET /graphql` with an
//! upgrade, graphql-transport-ws or the older graphql-ws), and the GraphiQL page.

use async_graphql::{
    Data,
    http::{ALL_WEBSOCKET_PROTOCOLS, GraphiQLSource},
    parser::{parse_query, types::OperationType},
};
use async_graphql_axum::{GraphQLProtocol, GraphQLRequest, GraphQLResponse, GraphQLWebSocket};
use axum::{
    extract::{FromRequest, FromRequestParts, Request, State, WebSocketUpgrade},
    http::{StatusCode, header},
    response::{Html, IntoResponse, Response},
};

use super::HttpState;
use crate::viewer::Viewer;

/// `POST /graphql`: queries and mutations.
pub async fn post(State(state): State<HttpState>, req: GraphQLRequest) -> GraphQLResponse {
    let req = req.into_inner().data(Viewer::Anonymous);
    state.schema.execute(req).await.into()
}

/// `GET /graphql`: a WebSocket upgrade for subscriptions, else a query in the URL.
/// Mutations are refused over GET: a link or an image tag must not change anything.
pub async fn get(State(state): State<HttpState>, req: Request) -> Response {
    if req.headers().contains_key(header::UPGRADE) {
        return websocket(state, req).await;
    }
    let req = match GraphQLRequest::<async_graphql_axum::rejection::GraphQLRejection>::from_request(
        req,
        &(),
    )
    .await
    {
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
    let resp: GraphQLResponse = state
        .schema
        .execute(req.data(Viewer::Anonymous))
        .await
        .into();
    resp.into_response()
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
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| {
            GraphQLWebSocket::new(socket, schema, protocol)
                .on_connection_init(|_payload| async move {
                    let mut data = Data::default();
                    data.insert(Viewer::Anonymous);
                    Ok(data)
                })
                .serve()
        })
}

/// `GET /graphiql`: the GraphiQL explorer, subscriptions over the same `/graphql` endpoint.
pub async fn graphiql() -> Html<String> {
    Html(
        GraphiQLSource::build()
            .endpoint("/graphql")
            .subscription_endpoint("/graphql")
            .title("Autoglue GraphiQL")
            .finish(),
    )
}
