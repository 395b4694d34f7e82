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

use super::persist::{Local, lock};

/// Notes the delay a handler asked for with apalis' `RetryAfterError` (or none, with
/// `DeferredError`) so the retry is scheduled then instead of after the backoff: apalis only
/// passes the error's text on to the backend.
#[derive(Clone)]
pub struct OutcomeLayer {
    pub(crate) local: Arc<Local>,
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
        }
    }
}

/// The service of [`OutcomeLayer`].
#[derive(Clone)]
pub struct OutcomeService<S> {
    inner: S,
    local: Arc<Local>,
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
        let fut = self.inner.call(task);
        async move {
            let res = fut.await.map_err(Into::into);
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
