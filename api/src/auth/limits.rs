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

/// Failed logins per (username, address) in a sliding window, and the attempts being
/// checked right now: an attempt is reserved before its password is verified, so parallel
/// guesses cannot all pass the check before the first failure is recorded.
#[derive(Clone, Default)]
pub struct LoginLimiter {
    inner: Arc<Mutex<HashMap<String, Attempts>>>,
}

#[derive(Default)]
struct Attempts {
    failures: Vec<Instant>,
    /// Reserved attempts not yet decided.
    pending: usize,
}

/// A reserved login attempt; dropped undecided (the request was cancelled), it frees its
/// place.
pub struct Attempt {
    limiter: LoginLimiter,
    key: String,
    decided: bool,
}

impl LoginLimiter {
    /// Failures allowed in [`Self::WINDOW`] before further attempts are refused.
    pub const MAX_FAILURES: usize = 5;
    pub const WINDOW: Duration = Duration::from_secs(300);

    fn key(username: &str, ip: &str) -> String {
        format!("{}\u{0}{ip}", username.to_lowercase())
    }

    /// Reserves an attempt, unless the failures recorded and the attempts in flight already
    /// reach the limit.
    pub fn reserve(&self, username: &str, ip: &str) -> Option<Attempt> {
        let key = Self::key(username, ip);
        let mut map = self.inner.lock().unwrap();
        if map.len() >= MAX_ENTRIES {
            map.retain(|_, a| {
                a.pending > 0 || a.failures.iter().any(|t| t.elapsed() < Self::WINDOW)
            });
        }
        let attempts = map.entry(key.clone()).or_default();
        attempts.failures.retain(|t| t.elapsed() < Self::WINDOW);
        if attempts.failures.len() + attempts.pending >= Self::MAX_FAILURES {
            return None;
        }
        attempts.pending += 1;
        Some(Attempt {
            limiter: self.clone(),
            key,
            decided: false,
        })
    }

    fn decide(&self, key: &str, failed: bool) {
        let mut map = self.inner.lock().unwrap();
        let Some(attempts) = map.get_mut(key) else {
            return;
        };
        attempts.pending = attempts.pending.saturating_sub(1);
        if failed {
            attempts.failures.push(Instant::now());
        } else if attempts.pending == 0 {
            map.remove(key);
        } else {
            attempts.failures.clear();
        }
    }
}

impl Attempt {
    /// The password was wrong: it counts against the limit.
    pub fn failed(mut self) {
        self.decided = true;
        self.limiter.decide(&self.key, true);
    }

    /// The password was right: earlier failures are forgotten.
    pub fn succeeded(mut self) {
        self.decided = true;
        self.limiter.decide(&self.key, false);
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if !self.decided {
            let mut map = self.limiter.inner.lock().unwrap();
            if let Some(attempts) = map.get_mut(&self.key) {
                attempts.pending = attempts.pending.saturating_sub(1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_refuses_after_max_failures_per_user_and_address() {
        let l = LoginLimiter::default();
        for _ in 0..LoginLimiter::MAX_FAILURES {
            l.reserve("Bob", "1.2.3.4").expect("allowed").failed();
        }
        assert!(l.reserve("bob", "1.2.3.4").is_none());
        assert!(
            l.reserve("bob", "5.6.7.8").is_some(),
            "another address is not blocked"
        );
    }

    #[test]
    fn attempts_in_flight_count_against_the_limit() {
        let l = LoginLimiter::default();
        let held: Vec<_> = (0..LoginLimiter::MAX_FAILURES)
            .map(|_| l.reserve("eve", "9.9.9.9").expect("allowed"))
            .collect();
        assert!(
            l.reserve("eve", "9.9.9.9").is_none(),
            "all places are taken"
        );
        let mut held = held.into_iter();
        held.next().unwrap().succeeded();
        drop(held.next()); // cancelled: its place is free again
        assert!(l.reserve("eve", "9.9.9.9").is_some());
        for a in held {
            a.failed();
        }
        // A success forgets the failures.
        let l2 = LoginLimiter::default();
        for _ in 0..LoginLimiter::MAX_FAILURES - 1 {
            l2.reserve("amy", "1.1.1.1").unwrap().failed();
        }
        l2.reserve("amy", "1.1.1.1").unwrap().succeeded();
        for _ in 0..LoginLimiter::MAX_FAILURES {
            l2.reserve("amy", "1.1.1.1")
                .expect("failures were forgotten")
                .failed();
        }
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
