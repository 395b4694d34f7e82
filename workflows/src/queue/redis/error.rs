//! Errors of the Redis queue.

/// What can go wrong talking to the queue.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// Redis refused a command or could not be reached.
    #[error("redis: {0}")]
    Redis(#[from] ::redis::RedisError),
    /// Arguments or metadata could not be encoded.
    #[error("encoding: {0}")]
    Json(#[from] serde_json::Error),
    /// A script answered something this code does not understand.
    #[error("unexpected reply from the queue: {0}")]
    Protocol(String),
    /// Invalid settings or arguments.
    #[error("invalid queue configuration: {0}")]
    Config(String),
}
