//! Creating jobs: [`Enqueue`] options, the [`JobKind`] label, and the push script.

use std::{
    collections::HashMap,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use ::redis::{Value, aio::ConnectionManager};
use apalis_core::task::{
    Task,
    metadata::{Metadata, MetadataError, MetadataStore},
};

use super::{
    config::Keys,
    error::QueueError,
    scripts::{self, array, invocation, opt_i64, opt_string, protocol},
};

/// Metadata key under which a job's [`JobKind`] travels in apalis' task metadata.
pub const KIND_METADATA_KEY: &str = "autoglue.queue.kind";

/// Most jobs created by one push script call; larger pushes are pipelined in such chunks.
const PUSH_CHUNK: usize = 500;
/// Most push script calls sent in one round trip.
const PUSH_PIPELINE: usize = 4;

/// A job's kind: a free label the console filters and shows (e.g. `"cluster.provision"`).
///
/// Set it through apalis' task metadata, `TaskBuilder::new(args).metadata(&JobKind::new("x"))`,
/// or with [`Enqueue::kind`]; a handler reads it back with apalis'
/// `Meta<JobKind>` extractor.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct JobKind(pub String);

impl JobKind {
    /// The label `kind`.
    pub fn new(kind: impl Into<String>) -> Self {
        Self(kind.into())
    }
}

/// `JobKind` is missing from a task's metadata.
#[derive(Debug, thiserror::Error)]
#[error("the task has no kind")]
pub struct NoKind;

impl From<MetadataError> for NoKind {
    fn from(_: MetadataError) -> Self {
        NoKind
    }
}

impl Metadata for JobKind {
    type Error = NoKind;

    fn extract(store: &MetadataStore) -> Result<Self, NoKind> {
        store
            .get(KIND_METADATA_KEY)
            .map(|k| JobKind(k.to_owned()))
            .ok_or(NoKind)
    }

    fn inject(&self, store: &mut MetadataStore) -> Result<(), NoKind> {
        store.replace(KIND_METADATA_KEY, self.0.clone());
        Ok(())
    }
}

/// Options of one job for [`RedisQueue::enqueue`](super::RedisQueue::enqueue).
///
/// The same options can be given through apalis' `TaskBuilder` and `TaskSink::push_task`:
/// `max_attempts`, `idempotency_key`, `run_at_*`/`run_after` (whole seconds there) and the kind
/// as [`JobKind`] metadata; a `task_id` given there becomes the job id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Enqueue {
    run_at: Option<SystemTime>,
    kind: Option<String>,
    idempotency_key: Option<String>,
    max_attempts: Option<u32>,
}

impl Enqueue {
    /// Run as soon as possible, with the queue's default attempts.
    pub fn new() -> Self {
        Self::default()
    }

    /// Run at `at` (millisecond precision; a time in the past means now).
    pub fn at(mut self, at: SystemTime) -> Self {
        self.run_at = Some(at);
        self
    }

    /// Run `delay` from now.
    pub fn after(self, delay: Duration) -> Self {
        self.at(SystemTime::now() + delay)
    }

    /// Labels the job (see [`JobKind`]).
    pub fn kind(mut self, kind: impl Into<String>) -> Self {
        self.kind = Some(kind.into());
        self
    }

    /// At most one job exists per key: enqueueing again with the key returns the first job's
    /// id and creates nothing, while that job exists and for the queue's
    /// [`idempotency_retention`](super::QueueConfig::idempotency_retention) after it ends.
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    /// Attempts before the job goes to dead (instead of the queue's default).
    pub fn max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = Some(max_attempts.max(1));
        self
    }
}

/// The outcome of enqueueing one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enqueued {
    /// The job's id (for a duplicate idempotency key: the existing job's).
    pub id: String,
    /// Whether a job was created (false for a duplicate idempotency key).
    pub created: bool,
}

/// A job about to be pushed.
#[derive(Debug)]
pub(crate) struct NewJob {
    pub id: String,
    pub args: Vec<u8>,
    pub max_attempts: u32,
    pub kind: Option<String>,
    pub idempotency_key: Option<String>,
    /// 0 = now.
    pub run_at_ms: u64,
    pub meta: Option<String>,
    /// The caller chose the id: keep an existing job with it rather than overwrite it.
    pub check_id: bool,
}

impl NewJob {
    /// Appends the job's 8 arguments of `create_job` (`lua/create.lua`) to `inv`.
    pub(crate) fn args_of(&self, inv: &mut ::redis::ScriptInvocation<'_>) {
        inv.arg(&self.id)
            .arg(&self.args)
            .arg(self.max_attempts)
            .arg(self.kind.as_deref().unwrap_or(""))
            .arg(self.idempotency_key.as_deref().unwrap_or(""))
            .arg(self.run_at_ms)
            .arg(self.meta.as_deref().unwrap_or(""))
            .arg(if self.check_id { "1" } else { "0" });
    }
}

pub(crate) fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

fn epoch_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl NewJob {
    pub(crate) fn new(args: Vec<u8>, opts: Enqueue, default_max: u32) -> Self {
        Self {
            id: new_id(),
            args,
            max_attempts: opts.max_attempts.unwrap_or(default_max),
            kind: opts.kind.filter(|k| !k.is_empty()),
            idempotency_key: opts.idempotency_key.filter(|k| !k.is_empty()),
            run_at_ms: opts.run_at.map(epoch_ms).unwrap_or(0),
            meta: None,
            check_id: false,
        }
    }

    /// From an apalis task (the `TaskSink` path).
    pub(crate) fn from_task(
        task: Task<Vec<u8>>,
        default_max: u32,
        default_kind: Option<&str>,
    ) -> Result<Self, QueueError> {
        let (args, ctx) = task.take();
        let mut meta: HashMap<String, String> = ctx.metadata().as_map().clone();
        let kind = meta
            .remove(KIND_METADATA_KEY)
            .filter(|k| !k.is_empty())
            .or_else(|| default_kind.map(str::to_owned));
        let meta = if meta.is_empty() {
            None
        } else {
            Some(serde_json::to_string(&meta)?)
        };
        let chosen = ctx
            .task_id()
            .map(|id| id.to_string())
            .filter(|id| !id.is_empty());
        Ok(Self {
            check_id: chosen.is_some(),
            id: chosen.unwrap_or_else(new_id),
            args,
            max_attempts: ctx
                .max_attempts()
                .map(|m| m.clamp(1, u32::MAX as usize) as u32)
                .unwrap_or(default_max),
            kind,
            idempotency_key: ctx
                .idempotency_key()
                .filter(|k| !k.is_empty())
                .map(str::to_owned),
            // apalis' run_at is in whole seconds.
            run_at_ms: ctx.run_at().map(|s| s.saturating_mul(1000)).unwrap_or(0),
            meta,
        })
    }
}

/// Creates `jobs`: one script call per [`PUSH_CHUNK`] jobs, [`PUSH_PIPELINE`] calls per round
/// trip, so that no single request keeps Redis (or waits for a reply) long.
pub(crate) async fn push_jobs(
    conn: &mut ConnectionManager,
    keys: &Keys,
    jobs: Vec<NewJob>,
) -> Result<Vec<Enqueued>, QueueError> {
    let invocations: Vec<_> = jobs
        .chunks(PUSH_CHUNK)
        .map(|chunk| {
            let mut inv = invocation(&scripts::PUSH, keys);
            for job in chunk {
                job.args_of(&mut inv);
            }
            inv
        })
        .collect();
    let mut replies: Vec<Value> = Vec::with_capacity(invocations.len());
    for group in invocations.chunks(PUSH_PIPELINE) {
        if let [one] = group {
            replies.push(one.invoke_async(conn).await?);
            continue;
        }
        // A pipeline does not retry on NOSCRIPT: load the script first, in the same pipeline.
        let mut pipe = ::redis::pipe();
        pipe.load_script(&scripts::PUSH).ignore();
        for inv in group {
            pipe.invoke_script(inv);
        }
        let mut got: Vec<Value> = pipe.query_async(conn).await?;
        replies.append(&mut got);
    }
    let mut out = Vec::with_capacity(jobs.len());
    for reply in replies {
        let items = array(reply)?;
        for pair in items.chunks(2) {
            let [id, created] = pair else {
                return Err(protocol("push: pairs expected"));
            };
            out.push(Enqueued {
                id: opt_string(id).ok_or_else(|| protocol("push: job id"))?,
                created: opt_i64(created) == Some(1),
            });
        }
    }
    Ok(out)
}
