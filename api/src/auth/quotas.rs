//! Per-caller quotas that keep one identity from pinning the server: WebSockets open at once
//! per user or organization key (per address for anonymous ones), expensive creations per minute, and a bounded number of
//! key generations (RSA 4096 takes seconds of a core) at once.
//!
//! They count on this instance only: enough to stop one caller from exhausting one
//! process, which is what they protect.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::{Error, Result, config::LimitSettings, viewer::Viewer};

/// The quotas of one process.
pub struct Quotas {
    limits: LimitSettings,
    /// Open WebSockets per user, organization key, or (anonymous) address.
    sockets: Mutex<HashMap<String, usize>>,
    creations: Mutex<HashMap<Uuid, VecDeque<Instant>>>,
    keygen: Semaphore,
}

/// A WebSocket's place in its identity's count; given back on drop.
pub struct SocketSlot {
    quotas: Arc<Quotas>,
    holder: String,
}

impl Drop for SocketSlot {
    fn drop(&mut self) {
        let mut map = self.quotas.sockets.lock().unwrap();
        if let Some(n) = map.get_mut(&self.holder) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.holder);
            }
        }
    }
}

/// Whose quota a request counts against: the user, or the organization key.
pub fn identity(viewer: &Viewer) -> Option<Uuid> {
    match viewer {
        Viewer::Anonymous => None,
        Viewer::User(u) => Some(u.id),
        Viewer::OrgKey(k) => Some(k.key_id),
    }
}

impl Quotas {
    /// Quotas sized by `limits`.
    pub fn new(limits: LimitSettings) -> Quotas {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Quotas {
            limits,
            sockets: Mutex::default(),
            creations: Mutex::default(),
            keygen: Semaphore::new(cores),
        }
    }

    /// A place for one more WebSocket of `viewer` (anonymous ones count by `address`), or
    /// `RATE_LIMITED` when it has the most allowed open already.
    pub fn open_socket(self: &Arc<Self>, viewer: &Viewer, address: &str) -> Result<SocketSlot> {
        let holder = match identity(viewer) {
            Some(id) => format!("id:{id}"),
            None => format!("ip:{address}"),
        };
        let mut map = self.sockets.lock().unwrap();
        let n = map.entry(holder.clone()).or_default();
        if *n >= self.limits.sockets_per_identity {
            return Err(Error::RateLimited(
                "too many WebSockets open for this identity; close one first",
            ));
        }
        *n += 1;
        Ok(SocketSlot {
            quotas: self.clone(),
            holder,
        })
    }

    /// Counts one expensive creation (an organization, a key) by `viewer`; `RATE_LIMITED`
    /// past [`LimitSettings::creations_per_minute`].
    pub fn take_creation(&self, viewer: &Viewer) -> Result<()> {
        let Some(who) = identity(viewer) else {
            return Ok(()); // anonymous callers are refused by the service itself
        };
        let window = Duration::from_secs(60);
        let mut map = self.creations.lock().unwrap();
        if map.len() >= 10_000 {
            map.retain(|_, times| times.back().is_some_and(|t| t.elapsed() < window));
        }
        let times = map.entry(who).or_default();
        while times.front().is_some_and(|t| t.elapsed() >= window) {
            times.pop_front();
        }
        if times.len() >= self.limits.creations_per_minute as usize {
            return Err(Error::RateLimited(
                "too many organizations or keys created in the last minute; try again later",
            ));
        }
        times.push_back(Instant::now());
        Ok(())
    }

    /// Runs CPU-heavy key generation on the blocking pool, at most one per core at once;
    /// a caller that waits more than 10 s for a place is answered `RATE_LIMITED`.
    pub async fn generate<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T> {
        let permit = tokio::time::timeout(Duration::from_secs(10), self.keygen.acquire())
            .await
            .map_err(|_| Error::RateLimited("the server is busy generating keys; try again"))?
            .map_err(|_| anyhow::anyhow!("the key generation gate is closed"))?;
        let done = tokio::task::spawn_blocking(work).await;
        drop(permit);
        Ok(done.map_err(|e| anyhow::anyhow!("key generation task: {e}"))?)
    }
}
