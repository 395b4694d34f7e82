//! Settings of a queue and the names of its Redis keys.

use std::time::Duration;

use rand::Rng;

use super::error::QueueError;

/// The namespace every queue lives under unless told otherwise.
pub const DEFAULT_NAMESPACE: &str = "autoglue:q";

/// Exponential backoff with "equal jitter" between failed attempts.
///
/// Attempt `n` (1-based) that failed waits `d / 2 + random(0..=d / 2)` before the next one,
/// where `d = min(cap, base * 2^(n - 1))`: never less than half the nominal delay (so retries
/// of a broken dependency really do back off), never more than `cap`, and spread out so jobs
/// that failed together do not come back together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Nominal delay after the first failed attempt.
    pub base: Duration,
    /// Longest delay between two attempts.
    pub cap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(300),
        }
    }
}

impl Backoff {
    /// Nominal (un-jittered) delay after failed attempt `attempt` (1-based).
    pub fn nominal(&self, attempt: u64) -> Duration {
        let shift = attempt.saturating_sub(1).min(32) as u32;
        let base_ms = self.base.as_millis().min(u64::MAX as u128) as u64;
        let ms = base_ms.saturating_mul(1u64 << shift);
        Duration::from_millis(ms).min(self.cap)
    }

    /// Delay after failed attempt `attempt` (1-based), jittered.
    pub fn delay(&self, attempt: u64) -> Duration {
        let nominal = self.nominal(attempt).as_millis() as u64;
        let half = nominal / 2;
        let jitter = if nominal - half == 0 {
            0
        } else {
            rand::thread_rng().gen_range(0..=nominal - half)
        };
        Duration::from_millis(half + jitter)
    }
}

/// Settings of one queue, for its workers, producers and console alike.
///
/// Build with [`QueueConfig::new`] and the chained setters; the defaults are the ones listed
/// on each field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueConfig {
    /// Prefix of every key (default [`DEFAULT_NAMESPACE`]). Keys are
    /// `{namespace}:{{{queue}}}:…`: the braces make all of a queue's keys one Redis Cluster
    /// hash slot, as its scripts require.
    pub namespace: String,
    /// The queue's name (no braces, no whitespace).
    pub queue: String,
    /// How long a leased job stays owned without renewal (default 30 s). A worker that dies
    /// loses its jobs to other workers at most this long (plus one poll) after its last renewal.
    pub lease: Duration,
    /// How often a worker renews its leases and reclaims expired ones (default a third of the
    /// lease, so two renewals can fail before a live worker loses a job).
    pub heartbeat: Option<Duration>,
    /// How long an idle worker waits before looking for work again (default 25 ms). Producers
    /// in the same process wake their workers at once.
    pub poll_interval: Duration,
    /// Most jobs leased by one fetch (default 50). Set it near the worker's concurrency: jobs
    /// leased but not started wait in the worker's buffer (their leases are renewed).
    pub batch_size: usize,
    /// Whether a worker fetches its next batch while it takes the one before, so that its
    /// free slots do not wait for a fetch's round trip (default true). A worker then leases
    /// up to twice [`batch_size`](Self::batch_size) jobs at once (their leases are renewed; a
    /// graceful stop gives back those not started).
    pub prefetch: bool,
    /// Most scheduled or retrying jobs moved to ready by one fetch, per set (default 500, at
    /// most 1000).
    pub promote_batch: usize,
    /// Most expired leases reclaimed by one fetch (default 100) or heartbeat (10× that).
    pub reclaim_batch: usize,
    /// Attempts of a job that does not set its own (default 5). A lease that expires counts as
    /// an attempt, so a job that kills its worker every time ends in dead.
    pub max_attempts: u32,
    /// The kind of a job pushed without one (apalis-workflow's next stages carry none).
    pub default_kind: Option<String>,
    /// Delay between failed attempts.
    pub backoff: Backoff,
    /// How many ids of done jobs to keep for the console (default 0: only the count).
    pub keep_done: usize,
    /// How many dead jobs to keep, oldest dropped first (default 10 000).
    pub keep_dead: usize,
    /// How many ids of cancelled jobs to keep (default 1 000).
    pub keep_cancelled: usize,
    /// How long an idempotency key keeps pointing at its job once the job is done or
    /// cancelled (default 24 h); while the job exists the key never expires.
    pub idempotency_retention: Duration,
    /// After how long without a heartbeat a worker leaves the console's worker list
    /// (default 10 min).
    pub worker_ttl: Duration,
}

impl QueueConfig {
    /// Defaults for queue `queue` in the default namespace.
    pub fn new(queue: impl Into<String>) -> Self {
        Self {
            namespace: DEFAULT_NAMESPACE.to_owned(),
            queue: queue.into(),
            lease: Duration::from_secs(30),
            heartbeat: None,
            poll_interval: Duration::from_millis(25),
            batch_size: 50,
            prefetch: true,
            promote_batch: 500,
            reclaim_batch: 100,
            max_attempts: 5,
            default_kind: None,
            backoff: Backoff::default(),
            keep_done: 0,
            keep_dead: 10_000,
            keep_cancelled: 1_000,
            idempotency_retention: Duration::from_secs(24 * 3600),
            worker_ttl: Duration::from_secs(600),
        }
    }

    /// Sets [`namespace`](Self::namespace).
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// Sets [`lease`](Self::lease).
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// Sets [`heartbeat`](Self::heartbeat).
    pub fn heartbeat(mut self, heartbeat: Duration) -> Self {
        self.heartbeat = Some(heartbeat);
        self
    }

    /// Sets [`poll_interval`](Self::poll_interval).
    pub fn poll_interval(mut self, poll_interval: Duration) -> Self {
        self.poll_interval = poll_interval;
        self
    }

    /// Sets [`prefetch`](Self::prefetch).
    pub fn prefetch(mut self, prefetch: bool) -> Self {
        self.prefetch = prefetch;
        self
    }

    /// Sets [`batch_size`](Self::batch_size).
    pub fn batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size;
        self
    }

    /// Sets [`max_attempts`](Self::max_attempts).
    pub fn max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = max_attempts;
        self
    }

    /// Sets [`default_kind`](Self::default_kind).
    pub fn default_kind(mut self, kind: impl Into<String>) -> Self {
        self.default_kind = Some(kind.into());
        self
    }

    /// Sets [`backoff`](Self::backoff).
    pub fn backoff(mut self, base: Duration, cap: Duration) -> Self {
        self.backoff = Backoff { base, cap };
        self
    }

    /// Sets [`keep_done`](Self::keep_done).
    pub fn keep_done(mut self, keep_done: usize) -> Self {
        self.keep_done = keep_done;
        self
    }

    /// Sets [`keep_dead`](Self::keep_dead).
    pub fn keep_dead(mut self, keep_dead: usize) -> Self {
        self.keep_dead = keep_dead;
        self
    }

    /// Sets [`keep_cancelled`](Self::keep_cancelled).
    pub fn keep_cancelled(mut self, keep_cancelled: usize) -> Self {
        self.keep_cancelled = keep_cancelled;
        self
    }

    /// Sets [`idempotency_retention`](Self::idempotency_retention).
    pub fn idempotency_retention(mut self, retention: Duration) -> Self {
        self.idempotency_retention = retention;
        self
    }

    /// The heartbeat in force: the one set, or a third of the lease.
    pub fn heartbeat_interval(&self) -> Duration {
        self.heartbeat
            .unwrap_or(self.lease / 3)
            .max(Duration::from_millis(10))
    }

    /// Checks the settings; every constructor of a queue calls it.
    pub fn validate(&self) -> Result<(), QueueError> {
        let bad = |what: &str| Err(QueueError::Config(what.to_owned()));
        if !valid_name(&self.queue) {
            return bad("the queue name must be non-empty, without braces or whitespace");
        }
        if self.namespace.is_empty() || self.namespace.contains(['{', '}']) {
            return bad("the namespace must be non-empty, without braces");
        }
        if self.lease < Duration::from_millis(100) {
            return bad("the lease must be at least 100 ms");
        }
        if self.heartbeat_interval() >= self.lease {
            return bad("the heartbeat must be shorter than the lease");
        }
        if self.batch_size == 0 || self.batch_size > 1000 {
            return bad("the batch size must be between 1 and 1000");
        }
        if self.promote_batch == 0 || self.promote_batch > 1000 {
            return bad("the promote batch must be between 1 and 1000");
        }
        if self.reclaim_batch == 0 || self.reclaim_batch > 1000 {
            return bad("the reclaim batch must be between 1 and 1000");
        }
        if self.max_attempts == 0 {
            return bad("max attempts must be at least 1");
        }
        Ok(())
    }

    pub(crate) fn keys(&self) -> Keys {
        Keys::new(&self.namespace, &self.queue)
    }
}

pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(['{', '}']) && !name.chars().any(char::is_whitespace)
}

/// The Redis keys of one queue (see the module docs for what each holds).
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    pub base: String,
    /// In the order every script expects them (see `lua/common.lua`).
    pub all: [String; 10],
}

impl Keys {
    pub fn new(namespace: &str, queue: &str) -> Self {
        let base = format!("{namespace}:{{{queue}}}");
        let all = [
            "ready",
            "delayed",
            "retry",
            "leases",
            "holders",
            "dead",
            "stats",
            "done",
            "cancelled",
            "workers",
        ]
        .map(|k| format!("{base}:{k}"));
        Self { base, all }
    }

    /// The set of queue names of a namespace (for [`QueueAdmin::queues`](super::QueueAdmin)).
    pub fn registry(namespace: &str) -> String {
        format!("{namespace}:queues")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_exponential_capped_and_never_below_half() {
        let b = Backoff {
            base: Duration::from_millis(100),
            cap: Duration::from_millis(1000),
        };
        assert_eq!(b.nominal(1), Duration::from_millis(100));
        assert_eq!(b.nominal(2), Duration::from_millis(200));
        assert_eq!(b.nominal(4), Duration::from_millis(800));
        assert_eq!(b.nominal(5), Duration::from_millis(1000));
        assert_eq!(b.nominal(500), Duration::from_millis(1000));
        for attempt in 1..8 {
            for _ in 0..50 {
                let d = b.delay(attempt);
                assert!(d >= b.nominal(attempt) / 2, "{d:?} for attempt {attempt}");
                assert!(d <= b.nominal(attempt), "{d:?} for attempt {attempt}");
            }
        }
    }

    #[test]
    fn config_checks_names_and_bounds() {
        assert!(QueueConfig::new("deploys").validate().is_ok());
        assert!(QueueConfig::new("a{b}").validate().is_err());
        assert!(QueueConfig::new("").validate().is_err());
        assert!(QueueConfig::new("q").batch_size(0).validate().is_err());
        assert!(
            QueueConfig::new("q")
                .lease(Duration::from_secs(1))
                .heartbeat(Duration::from_secs(2))
                .validate()
                .is_err()
        );
        let keys = QueueConfig::new("deploys").keys();
        assert_eq!(keys.base, "autoglue:q:{deploys}");
        assert_eq!(keys.all[0], "autoglue:q:{deploys}:ready");
    }
}
