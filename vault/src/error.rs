//! The one error type of the vault crate.
//!
//! Messages never contain key material or the content of a rejected key: they end up in
//! logs and terminal output.

use std::path::PathBuf;

/// What went wrong, in terms a caller can act on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A key (master key text, key file content, unwrapped key) is malformed: not base64 or
    /// hex, or not 32 bytes. The message says which, never what the input was.
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// Authentication failed: the key is wrong, or the ciphertext was moved to another
    /// row/column/table/organization, truncated or modified. Deliberately one variant: the
    /// cipher cannot tell these apart, and guessing would mislead.
    #[error("cannot decrypt: wrong key or data moved/tampered")]
    Decrypt,
    /// The first byte names a format this build does not know (written by a newer version,
    /// or not a sealed value at all).
    #[error("unsupported sealed format version {0}")]
    UnsupportedVersion(u8),
    /// Reading or writing a key file failed. The cause is in the message too, because callers
    /// often print only the top error.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A master key file already exists where a new one was to be written; it is kept, since
    /// overwriting it would make every secret it protects unreadable.
    #[error("{} already exists; refusing to overwrite a master key", .0.display())]
    AlreadyExists(PathBuf),
}

/// Result with the vault crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A stable code for logs and error mapping.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidKey(_) => "INVALID_KEY",
            Error::Decrypt => "DECRYPT_FAILED",
            Error::UnsupportedVersion(_) => "UNSUPPORTED_VERSION",
            Error::Io { .. } => "IO",
            Error::AlreadyExists(_) => "ALREADY_EXISTS",
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
