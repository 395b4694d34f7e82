//! In-process memory for authentication: verified API keys (so argon2 does not run on every
//! request) and failed logins (so passwords cannot be guessed quickly).
//!
//! Both are bounded: entries expire, and a map that grows past its cap is cleared rather
//! than allowed to grow (the cost of clearing is one argon2 run per key, or a reset window).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use uuid::Uuid;

const MAX_ENTRIES: usize = 10_000;

/// Digest of a presented key → id of the key row it verified against.
///
/// Only the proof of the secret is cached: the row is still read on every request, so a
/// revoked or expired key fails at once on every instance.
#[derive(Clone, Default)]
pub struct VerifiedKeys {
    inner: Arc<Mutex<HashMap<String, (Uuid, Instant)>>>,
}

impl VerifiedKeys {
    const TTL: Duration = Duration::from_secs(300);

    /// The key id a digest verified against recently.
    pub fn get(&self, digest: &str) -> Option<Uuid> {
        let map = self.inner.lock().unwrap();
        map.get(digest)
            .filter(|(_, at)| at.elapsed() < Self::TTL)
            .map(|(id, _)| *id)
    }

    /// Remembers a successful verification.
    pub fn insert(&self, digest: String, key_id: Uuid) {
        let mut map = self.inner.lock().unwrap();
        if map.len() >= MAX_ENTRIES {
            map.clear();
        }
        map.insert(digest, (key_id, Instant::now()));
    }
}

/// Failed logins per (username, address) in a sliding window.
#[derive(Clone, Default)]
pub struct LoginLimiter {
    inner: Arc<Mutex<HashMap<String, Vec<Instant>>>>,
}

impl LoginLimiter {
    /// Failures allowed in [`Self::WINDOW`] before further attempts are refused.
    pub const MAX_FAILURES: usize = 5;
    pub const WINDOW: Duration = Duration::from_secs(300);

    fn key(username: &str, ip: &str) -> String {
        format!("{}\u{0}{ip}", username.to_lowercase())
    }

    /// Whether another attempt is allowed now.
    pub fn allows(&self, username: &str, ip: &str) -> bool {
        let mut map = self.inner.lock().unwrap();
        let Some(failures) = map.get_mut(&Self::key(username, ip)) else {
            return true;
        };
        failures.retain(|t| t.elapsed() < Self::WINDOW);
        failures.len() < Self::MAX_FAILURES
    }

    /// Records a failed attempt.
    pub fn record_failure(&self, username: &str, ip: &str) {
        let mut map = self.inner.lock().unwrap();
        if map.len() >= MAX_ENTRIES {
            map.retain(|_, v| v.iter().any(|t| t.elapsed() < Self::WINDOW));
        }
        map.entry(Self::key(username, ip))
            .or_default()
            .push(Instant::now());
    }

    /// Forgets failures after a success.
    pub fn reset(&self, username: &str, ip: &str) {
        self.inner.lock().unwrap().remove(&Self::key(username, ip));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_refuses_after_max_failures_per_user_and_address() {
        let l = LoginLimiter::default();
        for _ in 0..LoginLimiter::MAX_FAILURES {
            assert!(l.allows("Bob", "1.2.3.4"));
            l.record_failure("bob", "1.2.3.4");
        }
        assert!(!l.allows("bob", "1.2.3.4"));
        assert!(l.allows("bob", "5.6.7.8"), "another address is not blocked");
        l.reset("bob", "1.2.3.4");
        assert!(l.allows("bob", "1.2.3.4"));
    }

    #[test]
    fn verified_keys_remember_ids() {
        let c = VerifiedKeys::default();
        let id = Uuid::now_v7();
        c.insert("d".into(), id);
        assert_eq!(c.get("d"), Some(id));
        assert_eq!(c.get("e"), None);
    }
}
