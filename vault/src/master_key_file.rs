//! Master key files: base64 text plus an optional newline, created with mode 0600.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, Write},
    path::Path,
};

use zeroize::Zeroizing;

use crate::{Error, MasterKey, Result};

impl MasterKey {
    /// Reads a key file written by [`create_master_key_file`] (or by hand: base64 or hex,
    /// surrounding whitespace ignored). Permissions are not checked; content that is not a
    /// 32-byte key is [`Error::InvalidKey`], with a message that does not quote it.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let content = Zeroizing::new(fs::read(path).map_err(|e| Error::io(path, e))?);
        let text = std::str::from_utf8(&content).map_err(|_| {
            Error::InvalidKey("key file is not text (expected base64 or hex)".into())
        })?;
        MasterKey::from_base64(text)
    }
}

/// Generates a master key and writes it to `path` as base64 and a newline, mode 0600 on Unix.
///
/// Refuses to replace an existing file ([`Error::AlreadyExists`]): losing a master key loses
/// every secret it protects. The parent directory must exist ([`Error::Io`] otherwise). On a
/// failed write the partial file is removed, so the call can simply be retried.
pub fn create_master_key_file(path: impl AsRef<Path>) -> Result<MasterKey> {
    let path = path.as_ref();
    let mut file = create_private(path).map_err(|e| match e.kind() {
        io::ErrorKind::AlreadyExists => Error::AlreadyExists(path.to_owned()),
        _ => Error::io(path, e),
    })?;
    let key = MasterKey::generate();
    if let Err(e) = write_key(&mut file, &key) {
        drop(file);
        // Best effort: a leftover empty or partial file would block the retry.
        let _ = fs::remove_file(path);
        return Err(Error::io(path, e));
    }
    Ok(key)
}

/// Opens a new file readable by its owner only. The mode is set at creation, not after, so
/// there is no moment when others could open it.
fn create_private(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

fn write_key(file: &mut File, key: &MasterKey) -> io::Result<()> {
    let text = Zeroizing::new(key.to_base64());
    file.write_all(text.as_bytes())?;
    file.write_all(b"\n")?;
    // On disk before the caller starts wrapping keys with it.
    file.sync_all()
}
