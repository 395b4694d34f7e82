//! GraphQL over WebSocket (`GET /graphql` with an upgrade): graphql-transport-ws and the
//! older graphql-ws, with the socket's rights checked again on every operation.
//!
//! async-graphql runs the protocol; this module owns the socket around it: messages are
//! capped at the HTTP body limit, a socket that does not send `connection_init` in time is
//! closed with 4408, and one whose credential fails or expires is closed with 4403
//! ([`SocketSession`]). The credential is re-checked on every operation (in
//! [`crate::graphql::errors::Served`]), at the token's `exp`, and every
//! [`crate::config::LimitSettings::socket_recheck`] while the socket is idle.

use std::{sync::Arc, time::Duration};

use async_graphql::{Data, http::ALL_WEBSOCKET_PROTOCOLS};
use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::{
    extract::{
        FromRequestParts, Request, WebSocketUpgrade,
        ws::{CloseFrame, Message, WebSocket},
    },
    response::{IntoResponse, Response},
};
use futures_channel::mpsc;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::watch;

use super::{BODY_LIMIT, HttpState};
use crate::{
    auth::{
        authenticate::Credentials,
        socket_session::{CLOSE_FORBIDDEN, CloseReason, SocketSession},
    },
    graphql::loaders::loaders,
    services::sessions::ClientInfo,
    state::AppState,
};

/// Upgrades `req` and serves GraphQL on the socket.
pub async fn upgrade(state: HttpState, req: Request, client: ClientInfo) -> Response {
    let (mut parts, _body) = req.into_parts();
    let protocol = match GraphQLProtocol::from_request_parts(&mut parts, &()).await {
        Ok(p) => p,
        Err(status) => return status.into_response(),
    };
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(u) => u,
        Err(e) => return e.into_response(),
    };
    let from_headers = Credentials::from_headers(&parts.headers);
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .max_message_size(BODY_LIMIT)
        .max_frame_size(BODY_LIMIT)
        .on_upgrade(move |socket| serve(socket, state, protocol, from_headers, client))
}

async fn serve(
    socket: WebSocket,
    http: HttpState,
    protocol: GraphQLProtocol,
    from_headers: Credentials,
    client: ClientInfo,
) {
    let (mut sink, stream) = socket.split();
    // async-graphql writes into this channel; this task forwards to the socket, so it can
    // still send a close frame of its own when the session ends.
    let (tx, mut rx) = mpsc::channel::<Message>(16);
    let (opened_tx, opened_rx) = watch::channel(None::<Arc<SocketSession>>);
    let app = http.app.clone();
    let graphql = GraphQLWebSocket::new_with_pair(tx, stream, http.schema.clone(), protocol)
        .on_connection_init(move |payload| async move {
            // Browsers cannot set headers on a WebSocket: credentials come in the
            // `connection_init` payload, with the same names as the headers.
            let creds = credentials_from_payload(&payload).unwrap_or(from_headers);
            let session = SocketSession::open(&app, creds, client.clone())
                .await
                .map_err(|e| async_graphql::Error::new(e.to_string()))?;
            let mut data = Data::default();
            data.insert(client);
            data.insert(session.clone());
            data.insert(loaders(app.reads.clone()));
            let _ = opened_tx.send(Some(session));
            Ok(data)
        })
        .serve();
    let closing = {
        let forward = async {
            while let Some(message) = rx.next().await {
                if sink.send(message).await.is_err() {
                    break;
                }
            }
        };
        tokio::select! {
            _ = futures_util::future::join(graphql, forward) => None,
            reason = watch_session(&http.app, opened_rx) => Some(reason),
        }
    };
    if let Some((code, reason)) = closing {
        tracing::info!(code, %reason, "closing a WebSocket");
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        let _ = sink.send(Message::Close(Some(frame))).await;
    }
}

/// Completes when the socket must close: no `connection_init` in time, the session closed
/// by a failed check, the token's expiry, or a failed periodic check.
async fn watch_session(
    app: &AppState,
    mut opened: watch::Receiver<Option<Arc<SocketSession>>>,
) -> CloseReason {
    let limits = &app.config.limits;
    let opened = tokio::time::timeout(limits.socket_init_timeout, async {
        opened.wait_for(Option::is_some).await.map(|s| s.clone())
    })
    .await;
    let session = match opened {
        Ok(Ok(Some(session))) => session,
        Err(_) => return (4408, "Connection initialisation timeout".into()),
        // Init failed: the protocol closes the socket itself.
        Ok(_) => return std::future::pending().await,
    };
    loop {
        let mut wait = limits.socket_recheck;
        if let Some(exp) = session.expires_at {
            let left = (exp - chrono::Utc::now())
                .to_std()
                .unwrap_or(Duration::ZERO);
            wait = wait.min(left);
        }
        tokio::select! {
            reason = session.closed() => return reason,
            _ = tokio::time::sleep(wait) => {
                if session.expires_at.is_some_and(|exp| exp <= chrono::Utc::now()) {
                    return (CLOSE_FORBIDDEN, "Forbidden: the credential expired".into());
                }
                // A failed check closes the session, which the next turn sees.
                let _ = session.current_viewer().await;
            }
        }
    }
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
