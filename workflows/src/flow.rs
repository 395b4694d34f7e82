//! Workflow definitions: a named sequence of typed steps, each with its own timeout and retry
//! policy.
//!
//! ```ignore
//! let flow = Workflow::builder::<Provision>("cluster_provision")
//!     .step("bastion", |ctx, input: Provision| async move { /* … */ Ok(bastion) })
//!     .timeout(Duration::from_secs(600))
//!     .retry(RetryPolicy::default().max_attempts(5))
//!     .step("control_plane", |ctx, bastion: Bastion| async move { /* … */ Ok(cp) })
//!     .build();
//! ```
//!
//! The first step takes the run's input; every later step takes the output of the step before
//! it. Outputs are stored as JSON on the step row, so a run resumed by another worker hands the
//! recorded output to the next step instead of recomputing it. The builder is typed: a step
//! whose input type differs from the previous output does not compile.

use std::{marker::PhantomData, sync::Arc, time::Duration};

use futures_util::{FutureExt, future::BoxFuture};
use rand::Rng;
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;

use crate::step::{StepCtx, StepError};

/// The type-erased body of a step: JSON in, JSON out.
pub(crate) type StepFn =
    Arc<dyn Fn(StepCtx, Value) -> BoxFuture<'static, Result<Value, StepError>> + Send + Sync>;

/// How often, and how far apart, a failing step is tried again.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first one included (1 = no retry).
    pub max_attempts: u32,
    /// Delay before the second attempt.
    pub initial_delay: Duration,
    /// Each further delay is the previous one times this.
    pub multiplier: f64,
    /// Delays never exceed this (before jitter).
    pub max_delay: Duration,
    /// Each delay is moved at random by up to this fraction of itself, so runs that failed
    /// together do not retry together.
    pub jitter: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            initial_delay: Duration::from_secs(2),
            multiplier: 2.0,
            max_delay: Duration::from_secs(300),
            jitter: 0.2,
        }
    }
}

impl RetryPolicy {
    /// A policy that never retries.
    pub fn never() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..Default::default()
        }
    }

    /// Sets the number of attempts (at least 1).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// Sets the first delay.
    pub fn initial_delay(mut self, delay: Duration) -> Self {
        self.initial_delay = delay;
        self
    }

    /// Sets the cap on delays.
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    /// Sets the jitter fraction (0 = exact delays).
    pub fn jitter(mut self, jitter: f64) -> Self {
        self.jitter = jitter.clamp(0.0, 1.0);
        self
    }

    /// The delay after failed attempt number `attempt` (1-based): exponential, capped,
    /// jittered.
    pub fn delay_after(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(32) as i32;
        let base = self.initial_delay.as_secs_f64() * self.multiplier.powi(exponent);
        let capped = base.min(self.max_delay.as_secs_f64());
        let spread = capped * self.jitter;
        let jittered = if spread > 0.0 {
            capped + rand::thread_rng().gen_range(-spread..=spread)
        } else {
            capped
        };
        Duration::from_secs_f64(jittered.max(0.0))
    }
}

/// One step of a [`Workflow`].
#[derive(Clone)]
pub struct StepDef {
    /// Shown in runs and logs; unique within its workflow.
    pub name: String,
    /// The longest one attempt may take; a timed-out attempt counts as a retryable failure.
    pub timeout: Duration,
    /// Retries of this step.
    pub retry: RetryPolicy,
    pub(crate) run: StepFn,
}

impl std::fmt::Debug for StepDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StepDef")
            .field("name", &self.name)
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

/// A named sequence of steps. Register it with the engine's [`crate::Registry`].
#[derive(Debug, Clone)]
pub struct Workflow {
    kind: String,
    steps: Vec<StepDef>,
}

impl Workflow {
    /// Starts a definition whose runs take an input of type `I`.
    pub fn builder<I>(kind: &str) -> FlowBuilder<I> {
        FlowBuilder {
            kind: kind.to_owned(),
            steps: Vec::new(),
            _types: PhantomData,
        }
    }

    /// The workflow's name, stored as the run's `kind`.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// Its steps, in order.
    pub fn steps(&self) -> &[StepDef] {
        &self.steps
    }
}

/// Builds a [`Workflow`]; `Cur` is the type the next step receives.
pub struct FlowBuilder<Cur> {
    kind: String,
    steps: Vec<StepDef>,
    _types: PhantomData<fn() -> Cur>,
}

/// Steps time out after this unless told otherwise.
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(15 * 60);

impl<Cur: DeserializeOwned + Send + 'static> FlowBuilder<Cur> {
    /// Appends a step taking the previous output (or the run's input) and producing `O`.
    pub fn step<O, F, Fut>(mut self, name: &str, f: F) -> FlowBuilder<O>
    where
        O: Serialize + Send + 'static,
        F: Fn(StepCtx, Cur) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, StepError>> + Send + 'static,
    {
        let f = Arc::new(f);
        let run: StepFn = Arc::new(move |ctx, input: Value| {
            let f = f.clone();
            async move {
                let input: Cur = serde_json::from_value(input).map_err(|e| {
                    StepError::permanent(format!("the step's input does not decode: {e}"))
                })?;
                let output = f(ctx, input).await?;
                serde_json::to_value(output).map_err(|e| {
                    StepError::permanent(format!("the step's output does not encode: {e}"))
                })
            }
            .boxed()
        });
        self.steps.push(StepDef {
            name: name.to_owned(),
            timeout: DEFAULT_STEP_TIMEOUT,
            retry: RetryPolicy::default(),
            run,
        });
        FlowBuilder {
            kind: self.kind,
            steps: self.steps,
            _types: PhantomData,
        }
    }
}

impl<Cur> FlowBuilder<Cur> {
    /// Sets the timeout of the step added last.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        if let Some(step) = self.steps.last_mut() {
            step.timeout = timeout;
        }
        self
    }

    /// Sets the retry policy of the step added last.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        if let Some(step) = self.steps.last_mut() {
            step.retry = retry;
        }
        self
    }

    /// The finished definition.
    ///
    /// # Panics
    /// When two steps share a name or there is no step: a programming error.
    pub fn build(self) -> Workflow {
        assert!(!self.steps.is_empty(), "workflow {} has no step", self.kind);
        let mut names: Vec<&str> = self.steps.iter().map(|s| s.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(
            names.len(),
            self.steps.len(),
            "workflow {} has two steps with one name",
            self.kind
        );
        Workflow {
            kind: self.kind,
            steps: self.steps,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_exponentially_up_to_the_cap() {
        let policy = RetryPolicy::default()
            .initial_delay(Duration::from_secs(1))
            .max_delay(Duration::from_secs(10))
            .jitter(0.0);
        let delays: Vec<u64> = (1..=6).map(|a| policy.delay_after(a).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 10, 10]);
    }

    #[test]
    fn jitter_stays_within_its_fraction() {
        let policy = RetryPolicy::default()
            .initial_delay(Duration::from_secs(10))
            .jitter(0.2);
        let delays: Vec<f64> = (0..200)
            .map(|_| policy.delay_after(1).as_secs_f64())
            .collect();
        assert!(delays.iter().all(|d| (8.0..=12.0).contains(d)));
        assert!(
            delays.iter().any(|d| (d - 10.0).abs() > 0.01),
            "jitter moved no delay"
        );
    }

    #[test]
    #[should_panic(expected = "two steps with one name")]
    fn duplicate_step_names_are_refused() {
        Workflow::builder::<()>("dup")
            .step("a", |_, ()| async { Ok(()) })
            .step("a", |_, ()| async { Ok(()) })
            .build();
    }
}
