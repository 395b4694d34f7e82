//! The gate every argon2 run passes: at most a few at once (each holds 19 MiB and a core for
//! tens of milliseconds), a bounded queue behind them, and `RATE_LIMITED` past that.
//!
//! Without it, anonymous logins with made-up usernames each start a hash on the blocking
//! pool (up to 512 threads), about 9.5 GiB at once. The gate is process-wide because what it
//! protects, the process's memory and cores, is: [`configure`] sizes it once at start-up.

use std::sync::{
    OnceLock,
    atomic::{AtomicU64, AtomicUsize, Ordering},
};

use tokio::sync::Semaphore;

use crate::{Error, Result};

struct Gate {
    slots: Semaphore,
    waiting: AtomicUsize,
    max_waiting: usize,
}

static GATE: OnceLock<Gate> = OnceLock::new();
static RUNS: AtomicU64 = AtomicU64::new(0);
static RUNNING: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// Sizes the gate: `slots` runs at once, `max_waiting` callers queued. The first call wins
/// (one process, one gate); later calls, as from a second server in the same test process,
/// keep it.
pub fn configure(slots: usize, max_waiting: usize) {
    let _ = GATE.set(Gate {
        slots: Semaphore::new(slots.max(1)),
        waiting: AtomicUsize::new(0),
        max_waiting,
    });
}

fn gate() -> &'static Gate {
    GATE.get_or_init(|| Gate {
        slots: Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get())),
        waiting: AtomicUsize::new(0),
        max_waiting: 64,
    })
}

/// argon2 runs of this process so far, and the most that ran at once.
pub fn stats() -> (u64, usize) {
    (RUNS.load(Ordering::Relaxed), PEAK.load(Ordering::Relaxed))
}

/// Counts a waiting caller for as long as it waits, cancelled or not.
struct Waiting(&'static AtomicUsize);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Runs `work` (an argon2 hash or verification) on the blocking pool once a slot is free.
pub async fn run<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    let gate = gate();
    let permit = match gate.slots.try_acquire() {
        Ok(permit) => permit,
        Err(_) => {
            if gate.waiting.fetch_add(1, Ordering::AcqRel) >= gate.max_waiting {
                gate.waiting.fetch_sub(1, Ordering::AcqRel);
                return Err(Error::RateLimited(
                    "the server is busy checking credentials; try again in a moment",
                ));
            }
            let _waiting = Waiting(&gate.waiting);
            gate.slots
                .acquire()
                .await
                .map_err(|_| anyhow::anyhow!("the argon2 gate is closed"))?
        }
    };
    RUNS.fetch_add(1, Ordering::Relaxed);
    let now = RUNNING.fetch_add(1, Ordering::AcqRel) + 1;
    PEAK.fetch_max(now, Ordering::AcqRel);
    let done = tokio::task::spawn_blocking(work).await;
    RUNNING.fetch_sub(1, Ordering::AcqRel);
    drop(permit);
    Ok(done.map_err(|e| anyhow::anyhow!("argon2 task: {e}"))?)
}
