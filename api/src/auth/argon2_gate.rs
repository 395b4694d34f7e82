//! The gate every argon2 run passes: at most a few at once (each holds 19 MiB and a core for
//! tens of milliseconds), a bounded queue behind them, and `RATE_LIMITED` past that.
//!
//! Without it, anonymous logins with made-up usernames each start a hash on the blocking
//! pool (up to 512 threads), about 9.5 GiB at once. The runs happen on threads of the gate's
//! own, one per slot: the allocator keeps a freed 19 MiB block for the thread that used it,
//! so runs spread over the blocking pool's changing threads left hundreds of MiB resident
//! even with two at a time. The gate is process-wide because what it protects, the
//! process's memory and cores, is: [`configure`] sizes it once at start-up.

use std::sync::{
    Arc, Mutex, OnceLock,
    atomic::{AtomicU64, AtomicUsize, Ordering},
    mpsc,
};

use tokio::sync::{Semaphore, oneshot};

use crate::{Error, Result};

type Job = Box<dyn FnOnce() + Send>;

struct Gate {
    slots: Semaphore,
    waiting: AtomicUsize,
    max_waiting: usize,
    jobs: mpsc::Sender<Job>,
}

impl Gate {
    fn new(slots: usize, max_waiting: usize) -> Gate {
        let slots = slots.max(1);
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..slots {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || {
                    loop {
                        let job = queue.lock().unwrap().recv();
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                })
                .expect("an argon2 thread starts");
        }
        Gate {
            slots: Semaphore::new(slots),
            waiting: AtomicUsize::new(0),
            max_waiting,
            jobs,
        }
    }
}

static GATE: OnceLock<Gate> = OnceLock::new();
static RUNS: AtomicU64 = AtomicU64::new(0);
static RUNNING: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// Sizes the gate: `slots` runs at once, `max_waiting` callers queued. The first call wins
/// (one process, one gate); later calls, as from a second server in the same test process,
/// keep it.
pub fn configure(slots: usize, max_waiting: usize) {
    if GATE.get().is_none() {
        let _ = GATE.set(Gate::new(slots, max_waiting));
    }
}

fn gate() -> &'static Gate {
    GATE.get_or_init(|| {
        Gate::new(
            std::thread::available_parallelism().map_or(2, |n| n.get()),
            64,
        )
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

/// Runs `work` (an argon2 hash or verification) on one of the gate's threads once a slot is
/// free.
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
    // The slot is held by the job itself, not by this caller: a caller that goes away
    // (a cancelled request) leaves the slot taken until the run is really over, so
    // abandoned runs cannot pile up behind the gate.
    let (tx, rx) = oneshot::channel();
    let sent = gate.jobs.send(Box::new(move || {
        let _permit = permit;
        RUNS.fetch_add(1, Ordering::Relaxed);
        let now = RUNNING.fetch_add(1, Ordering::AcqRel) + 1;
        PEAK.fetch_max(now, Ordering::AcqRel);
        let out = work();
        RUNNING.fetch_sub(1, Ordering::AcqRel);
        let _ = tx.send(out);
    }));
    if sent.is_err() {
        return Err(anyhow::anyhow!("the argon2 threads are gone").into());
    }
    Ok(rx
        .await
        .map_err(|_| anyhow::anyhow!("an argon2 thread died"))?)
}
