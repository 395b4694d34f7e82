//! [`SocketSession`]: what a WebSocket proved at `connection_init`, checked again for every
//! operation started on it.
//!
//! A socket lives for hours; the rights it had when it opened must not. Every operation
//! authenticates the socket's credential again (the key or user still valid, the token not
//! expired) and reads the caller's roles from the database, as an HTTP request does, so a
//! removed member, a revoked key or a disabled user loses access at their next operation.
//! When the credential fails, or the access token reaches its `exp`, the session asks its
//! socket to close with 4403 (the client reconnects with a fresh token). It also bounds the
//! operations running at once on the socket and holds the socket's place in its identity's
//! quota.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

use crate::{
    Error, Result,
    auth::{
        authenticate::{Credentials, authenticate_until},
        quotas::SocketSlot,
    },
    services::sessions::ClientInfo,
    state::AppState,
    viewer::Viewer,
};

/// The close code of a socket whose credential no longer holds (graphql-ws' "Forbidden").
pub const CLOSE_FORBIDDEN: u16 = 4403;

/// Why a socket is to be closed: a WebSocket close code and reason.
pub type CloseReason = (u16, String);

/// One authenticated WebSocket.
pub struct SocketSession {
    state: AppState,
    creds: Credentials,
    /// The address the socket came from; logins on the socket are limited by it.
    pub client: ClientInfo,
    /// When the credential stops being valid (an access token's `exp`, a key's expiry).
    pub expires_at: Option<DateTime<Utc>>,
    operations: Arc<Semaphore>,
    close: watch::Sender<Option<CloseReason>>,
    _slot: SocketSlot,
}

/// An operation allowed to run: the caller as of now, and its place among the socket's
/// operations, given back when the operation ends.
pub struct Operation {
    pub viewer: Viewer,
    _permit: OwnedSemaphorePermit,
}

impl SocketSession {
    /// Authenticates `creds` for a new socket and takes its place in the identity's quota.
    pub async fn open(
        state: &AppState,
        creds: Credentials,
        client: ClientInfo,
    ) -> Result<Arc<SocketSession>> {
        let (viewer, expires_at) = authenticate_until(state, &creds).await?;
        let slot = state.quotas.open_socket(&viewer, &client.ip)?;
        let limits = &state.config.limits;
        Ok(Arc::new(SocketSession {
            state: state.clone(),
            creds,
            client,
            expires_at,
            operations: Arc::new(Semaphore::new(limits.socket_operations)),
            close: watch::channel(None).0,
            _slot: slot,
        }))
    }

    /// Checks the credential again and takes a place for one more operation.
    pub async fn authorize(&self) -> Result<Operation> {
        let viewer = self.current_viewer().await?;
        let permit = self.operations.clone().try_acquire_owned().map_err(|_| {
            Error::RateLimited("too many operations running on this WebSocket; end some first")
        })?;
        Ok(Operation {
            viewer,
            _permit: permit,
        })
    }

    /// The caller as the database says now; a credential that no longer holds closes the
    /// socket. Other failures (the database down) fail this operation only.
    pub async fn current_viewer(&self) -> Result<Viewer> {
        if self.expires_at.is_some_and(|exp| exp <= Utc::now()) {
            self.close_forbidden("the credential expired");
            return Err(Error::Unauthenticated);
        }
        match authenticate_until(&self.state, &self.creds).await {
            Ok((viewer, _)) => Ok(viewer),
            Err(e) if matches!(e.code(), "UNAUTHENTICATED" | "NOT_FOUND") => {
                self.close_forbidden("the credential is no longer valid");
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    fn close_forbidden(&self, why: &str) {
        self.close.send_if_modified(|reason| match reason {
            Some(_) => false,
            None => {
                *reason = Some((CLOSE_FORBIDDEN, format!("Forbidden: {why}")));
                true
            }
        });
    }

    /// Completes when the socket is to be closed, with the reason.
    pub async fn closed(&self) -> CloseReason {
        let mut rx = self.close.subscribe();
        let reason = rx.wait_for(Option::is_some).await.map(|r| r.clone());
        match reason {
            Ok(Some(reason)) => reason,
            _ => std::future::pending().await,
        }
    }
}
