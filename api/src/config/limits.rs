//! Limits that keep one caller from exhausting the server: WebSocket sockets and operations,
//! and the CPU- and memory-heavy work some mutations do (argon2, RSA key generation).
//!
//! The defaults suit a server of a few cores; tests lower them to reach them quickly.

use std::time::Duration;

/// What one caller may hold or start at once.
#[derive(Debug, Clone)]
pub struct LimitSettings {
    /// Operations (queries, mutations, subscriptions) running at once on one WebSocket.
    pub socket_operations: usize,
    /// WebSockets open at once per user or organization key (anonymous ones: per address),
    /// on one instance.
    pub sockets_per_identity: usize,
    /// How long a WebSocket may stay open without `connection_init` (then closed with 4408).
    pub socket_init_timeout: Duration,
    /// How often an open WebSocket's credential is checked again while no operation starts
    /// (revoked keys, disabled users); an access token's expiry closes it at `exp` anyway.
    pub socket_recheck: Duration,
    /// argon2 runs (password and key hashing) at once; each holds 19 MiB. `0`: one per core.
    pub argon2_concurrency: usize,
    /// Callers that may wait for an argon2 slot; more are answered `RATE_LIMITED`.
    pub argon2_waiting: usize,
    /// Expensive creations (organizations, API keys, organization keys, generated SSH keys)
    /// one user may make per minute.
    pub creations_per_minute: u32,
}

impl Default for LimitSettings {
    fn default() -> Self {
        LimitSettings {
            socket_operations: 100,
            sockets_per_identity: 32,
            socket_init_timeout: Duration::from_secs(10),
            socket_recheck: Duration::from_secs(30),
            argon2_concurrency: 0,
            argon2_waiting: 64,
            creations_per_minute: 60,
        }
    }
}

impl LimitSettings {
    /// argon2 runs at once: the setting, or the number of cores.
    pub fn argon2_slots(&self) -> usize {
        match self.argon2_concurrency {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        }
    }
}
