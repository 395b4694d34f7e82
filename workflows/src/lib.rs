//! Autoglue's durable workflow engine: workflow definitions ([`flow`]), the engine that drives
//! runs step by step and records them ([`engine`]), the workers that take runs off the job
//! queue ([`runtime`]), and the queue backends.

pub mod console;
pub mod engine;
pub mod flow;
pub mod housekeeping;
pub mod queue;
mod recorder;
pub mod runtime;
pub mod step;
pub mod testing;

pub use engine::{Engine, EngineError, EngineSettings, Registry, RunQueue, RunTask, StartRun};
pub use flow::{RetryPolicy, StepDef, Workflow};
pub use step::{StepCtx, StepError};
