//! The one error type of the api crate, and the codes clients see.
//!
//! Services and resolvers return [`Result`]. async-graphql keeps the original error as the
//! `source` of its `ServerError`; [`crate::graphql::errors`] reads it back and sets
//! `extensions.code` (and `extensions.field` for input errors) in exactly one place.
//! Internal causes are logged there with their whole chain; the client only reads
//! "internal server error".

use sea_orm::{DbErr, SqlErr};

mod unavailable;

/// What went wrong, in terms a caller can act on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request carries no valid identity. Client sees `UNAUTHENTICATED`.
    #[error("authentication required")]
    Unauthenticated,
    /// The caller is known but may not do this. Client sees `FORBIDDEN` and the reason.
    #[error("{0}")]
    Forbidden(String),
    /// The object does not exist, or belongs to an organization the caller cannot see.
    /// Client sees `NOT_FOUND` with the kind of object, never whether it exists elsewhere.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// An argument is invalid. Client sees `BAD_USER_INPUT`, the message, and
    /// `extensions.field` with the argument path (for example `input.name`).
    #[error("{message}")]
    BadInput { field: String, message: String },
    /// The change would break a uniqueness rule or the object's current state allows it not.
    /// Client sees `CONFLICT`, the message, and `extensions.field` when one field is at fault.
    #[error("{message}")]
    Conflict {
        field: Option<String>,
        message: String,
    },
    /// Too many attempts, or too much at once, from this caller. Client sees `RATE_LIMITED`
    /// and the reason.
    #[error("{0}")]
    RateLimited(&'static str),
    /// A backend the request needs (the job queue) failed. Client sees `SERVICE_UNAVAILABLE`
    /// and this message; the cause is logged where it was caught, never sent.
    #[error("{0}")]
    Unavailable(&'static str),
    /// Anything else. Client sees `INTERNAL_SERVER_ERROR` and a plain message; the chain is
    /// logged on the server. When the cause is the database being unreachable (down,
    /// restarting), the client sees `SERVICE_UNAVAILABLE` and "the database is unavailable".
    #[error("{}", internal_message(.0))]
    Internal(#[from] anyhow::Error),
}

fn internal_message(cause: &anyhow::Error) -> &'static str {
    if unavailable::database_unreachable(cause) {
        unavailable::MESSAGE
    } else {
        "internal server error"
    }
}

/// Result with the api crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The `extensions.code` for this error (Apollo's common codes).
    pub fn code(&self) -> &'static str {
        match self {
            Error::Unauthenticated => "UNAUTHENTICATED",
            Error::Forbidden(_) => "FORBIDDEN",
            Error::NotFound(_) => "NOT_FOUND",
            Error::BadInput { .. } => "BAD_USER_INPUT",
            Error::Conflict { .. } => "CONFLICT",
            Error::RateLimited(_) => "RATE_LIMITED",
            Error::Unavailable(_) => "SERVICE_UNAVAILABLE",
            Error::Internal(cause) if unavailable::database_unreachable(cause) => {
                "SERVICE_UNAVAILABLE"
            }
            Error::Internal(_) => "INTERNAL_SERVER_ERROR",
        }
    }

    /// The offending input field, if one is known.
    pub fn field(&self) -> Option<&str> {
        match self {
            Error::BadInput { field, .. } => Some(field),
            Error::Conflict { field, .. } => field.as_deref(),
            _ => None,
        }
    }

    /// An invalid argument at `field` (a path such as `input.name`).
    pub fn bad_input(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::BadInput {
            field: field.into(),
            message: message.into(),
        }
    }

    /// A uniqueness conflict on `field`.
    pub fn conflict(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Conflict {
            field: Some(field.into()),
            message: message.into(),
        }
    }
}

impl From<DbErr> for Error {
    fn from(e: DbErr) -> Self {
        Error::Internal(anyhow::Error::new(e).context("database error"))
    }
}

/// Turns a unique-constraint violation into [`Error::Conflict`], other errors into `Internal`.
///
/// Services call it on the write that may collide, naming the field the user chose, so a
/// duplicate name answers `CONFLICT` instead of a database error (RW's `on_constraint`).
pub trait OnUniqueViolation<T> {
    /// Maps a unique violation to a conflict on `field` with `message`.
    fn on_unique_violation(self, field: &str, message: impl Into<String>) -> Result<T>;
}

impl<T> OnUniqueViolation<T> for Result<T, DbErr> {
    fn on_unique_violation(self, field: &str, message: impl Into<String>) -> Result<T> {
        self.map_err(|e| match e.sql_err() {
            Some(SqlErr::UniqueConstraintViolation(_)) => Error::conflict(field, message),
            _ => e.into(),
        })
    }
}

/// Turns a foreign-key violation into the error `in_use` makes, other errors into
/// `Internal`: for deletes a reference made a moment after the check still refuses.
pub trait OnForeignKeyViolation<T> {
    /// Maps a foreign-key violation to `in_use()`.
    fn on_foreign_key_violation(self, in_use: impl FnOnce() -> Error) -> Result<T>;
}

impl<T> OnForeignKeyViolation<T> for Result<T, DbErr> {
    fn on_foreign_key_violation(self, in_use: impl FnOnce() -> Error) -> Result<T> {
        self.map_err(|e| match e.sql_err() {
            Some(SqlErr::ForeignKeyConstraintViolation(_)) => in_use(),
            _ => e.into(),
        })
    }
}
