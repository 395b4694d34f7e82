//! Job queue backends for apalis 1.0.
//!
//! - [`redis`]: our Redis storage ([`redis::RedisQueue`]) with bounded per-call work, per-job
//!   leases and a console API ([`redis::QueueAdmin`]).

pub mod redis;
