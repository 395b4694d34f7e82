//! The middleware the queue puts around every handler call.

use std::{
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use apalis_core::{
    backend::codec::Codec,
    error::{BoxDynError, DeferredError, RetryAfterError},
    task::Task,
};
use futures_util::{FutureExt, future::BoxFuture};
use tower_layer::Layer;
use tower_service::Service;

use tokio::sync::Notify;

use super::persist::{HAND_ON, HandOn, Local, lock};

/// Around every handler call:
/// - notes the delay a handler asked for with apalis' `RetryAfterError` (or none, with
///   `DeferredError`) so the retry is scheduled then instead of after the backoff: apalis only
///   passes the error's text on to the backend;
/// - keeps the jobs the handler pushes to its own queue for its acknowledgement
///   ([`HAND_ON`]), and wakes the worker's fetch so that the acknowledgement goes out now.
#[derive(Clone)]
pub struct OutcomeLayer {
    pub(crate) local: Arc<Local>,
    pub(crate) wake: Arc<Notify>,
    /// The queue's key base.
    pub(crate) queue: Arc<str>,
}

impl std::fmt::Debug for OutcomeLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutcomeLayer").finish_non_exhaustive()
    }
}

impl<S> Layer<S> for OutcomeLayer {
    type Service = OutcomeService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        OutcomeService {
            inner,
            local: self.local.clone(),
            wake: self.wake.clone(),
            queue: self.queue.clone(),
        }
    }
}

/// The service of [`OutcomeLayer`].
#[derive(Clone)]
pub struct OutcomeService<S> {
    inner: S,
    local: Arc<Local>,
    wake: Arc<Notify>,
    queue: Arc<str>,
}

impl<S> std::fmt::Debug for OutcomeService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutcomeService").finish_non_exhaustive()
    }
}

impl<S, Args> Service<Task<Args>> for OutcomeService<S>
where
    S: Service<Task<Args>>,
    S::Error: Into<BoxDynError>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxDynError;
    type Future = BoxFuture<'static, Result<S::Response, BoxDynError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxDynError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, task: Task<Args>) -> Self::Future {
        let id = task.task_id().map(|id| id.to_string());
        let local = self.local.clone();
        let wake = self.wake.clone();
        let hand_on = HandOn {
            queue: self.queue.clone(),
            jobs: Default::default(),
        };
        let fut = HAND_ON.scope(hand_on, self.inner.call(task));
        async move {
            tokio::pin!(fut);
            let res = fut.as_mut().await.map_err(Into::into);
            let jobs = fut
                .take_value()
                .map(|h| h.jobs.into_inner())
                .unwrap_or_default();
            if !jobs.is_empty()
                && let Some(id) = &id
            {
                lock(&local.handed_on).insert(id.clone(), jobs);
                // A fetch waiting for jobs returns, so the worker sends the acknowledgement
                // (and with it these jobs) instead of waiting out the poll interval.
                wake.notify_waiters();
            }
            if let (Err(e), Some(id)) = (&res, id) {
                let delay = if let Some(r) = e.downcast_ref::<RetryAfterError>() {
                    Some(r.get_duration())
                } else if e.downcast_ref::<DeferredError>().is_some() {
                    Some(Duration::ZERO)
                } else {
                    None
                };
                if let Some(delay) = delay {
                    lock(&local.retry_after).insert(id, delay);
                }
            }
            res
        }
        .boxed()
    }
}

/// The "codec" of handler outputs: the queue keeps none (only success or the error).
#[derive(Debug, Clone, Copy, Default)]
pub struct DiscardOutput;

/// [`DiscardOutput`] cannot give an output back.
#[derive(Debug, thiserror::Error)]
#[error("the queue does not keep job outputs")]
pub struct OutputNotKept;

impl<T> Codec<T> for DiscardOutput {
    type Error = OutputNotKept;
    type Compact = ();

    fn encode(&self, _: &T) -> Result<(), OutputNotKept> {
        Ok(())
    }

    fn decode(&self, _: &()) -> Result<T, OutputNotKept> {
        Err(OutputNotKept)
    }
}
