//! What a step sees while it runs: its run, its attempt, a log, checkpoints, cancellation.

use std::{collections::BTreeMap, fmt, sync::Arc};

use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;
use tokio::sync::{Mutex, watch};
use uuid::Uuid;

use crate::engine::Engine;

/// Why a step attempt did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepError {
    /// Shown on the step and the run; never put secrets here.
    pub message: String,
    /// A permanent error fails the step at once; others are retried per the step's policy.
    pub permanent: bool,
}

impl StepError {
    /// An error worth another attempt (a network failure, a busy peer).
    pub fn retryable(message: impl Into<String>) -> Self {
        StepError {
            message: message.into(),
            permanent: false,
        }
    }

    /// An error no retry can fix (bad input, a refused credential).
    pub fn permanent(message: impl Into<String>) -> Self {
        StepError {
            message: message.into(),
            permanent: true,
        }
    }
}

impl fmt::Display for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StepError {}

impl From<anyhow::Error> for StepError {
    fn from(e: anyhow::Error) -> Self {
        StepError::retryable(format!("{e:#}"))
    }
}

impl From<sea_orm::DbErr> for StepError {
    fn from(e: sea_orm::DbErr) -> Self {
        StepError::retryable(format!("database: {e}"))
    }
}

/// The context handed to a step attempt.
#[derive(Clone)]
pub struct StepCtx {
    pub(crate) engine: Engine,
    /// The run.
    pub run_id: Uuid,
    /// The step row.
    pub step_id: Uuid,
    /// Position of the step in its workflow (0-based).
    pub position: i32,
    /// This attempt's number (1 for the first).
    pub attempt: i32,
    /// The run's organization; `None` for instance-wide runs.
    pub organization_id: Option<Uuid>,
    /// The cluster the run works on, if any.
    pub cluster_id: Option<Uuid>,
    pub(crate) cancel: watch::Receiver<bool>,
    pub(crate) checkpoint: Arc<Mutex<BTreeMap<String, Value>>>,
}

impl StepCtx {
    /// Appends a line to the run's log (stored, and streamed to subscribers).
    pub async fn log(&self, level: &str, message: impl Into<String>) {
        let message = message.into();
        if let Err(e) = self
            .engine
            .append_log(
                self.run_id,
                self.organization_id,
                Some(self.step_id),
                level,
                message,
            )
            .await
        {
            tracing::warn!(run = %self.run_id, error = %e, "could not store a log line");
        }
    }

    /// Logs at level `info`.
    pub async fn info(&self, message: impl Into<String>) {
        self.log("info", message).await;
    }

    /// Logs at level `warn`.
    pub async fn warn(&self, message: impl Into<String>) {
        self.log("warn", message).await;
    }

    /// Whether cancellation of the run was requested. Long steps check it (or await
    /// [`StepCtx::cancelled`]) and stop early; a step that ignores it is dropped after the
    /// engine's grace period.
    pub fn is_cancelled(&self) -> bool {
        *self.cancel.borrow()
    }

    /// Completes once cancellation of the run is requested.
    pub async fn cancelled(&self) {
        let mut rx = self.cancel.clone();
        // An error means the engine dropped the sender: the attempt is over anyway.
        let _ = rx.wait_for(|c| *c).await;
    }

    /// The value recorded under `key` by an earlier attempt of this step, if any.
    pub async fn checkpoint<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        let map = self.checkpoint.lock().await;
        map.get(key)
            .and_then(|v| serde_json::from_value(v.clone()).ok())
    }

    /// Records `value` under `key` before the step finishes: a later attempt (after a crash, a
    /// timeout, a retry) sees it with [`StepCtx::checkpoint`].
    pub async fn save_checkpoint<T: Serialize>(
        &self,
        key: &str,
        value: &T,
    ) -> Result<(), StepError> {
        let value = serde_json::to_value(value)
            .map_err(|e| StepError::permanent(format!("checkpoint does not encode: {e}")))?;
        let mut map = self.checkpoint.lock().await;
        map.insert(key.to_owned(), value);
        let snapshot = Value::Object(map.clone().into_iter().collect());
        self.engine
            .store_checkpoint(self.step_id, snapshot)
            .await
            .map_err(StepError::from)
    }

    /// Does a side effect once across attempts: when an earlier attempt recorded `key`, its
    /// recorded result is returned without running `effect` again; otherwise `effect` runs and
    /// its result is recorded under `key` before this returns.
    ///
    /// Between the effect and the record there is still a window (a crash right after the
    /// effect); effects should also be idempotent at their peer where the peer allows it (an
    /// UPSERT of a DNS record, a "create if absent").
    pub async fn once<T, F, Fut>(&self, key: &str, effect: F) -> Result<T, StepError>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, StepError>>,
    {
        if let Some(done) = self.checkpoint::<T>(key).await {
            return Ok(done);
        }
        let result = effect().await?;
        self.save_checkpoint(key, &result).await?;
        Ok(result)
    }
}

impl fmt::Debug for StepCtx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StepCtx")
            .field("run_id", &self.run_id)
            .field("step_id", &self.step_id)
            .field("position", &self.position)
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}
