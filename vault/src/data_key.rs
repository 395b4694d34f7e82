//! Data keys: the keys that actually seal secrets (one per organization, plus the instance
//! key derived from the master key).

use std::fmt;

use zeroize::{ZeroizeOnDrop, Zeroizing};

use crate::{
    Result, SealContext,
    key_bytes::KeyBytes,
    sealed::{self, Purpose},
};

/// A 32-byte XChaCha20-Poly1305 key that seals and opens secret values.
///
/// Made by [`DataKey::generate`] (a new organization), [`crate::MasterKey::unwrap`] (a stored
/// one) or [`crate::MasterKey::instance_key`]. Zeroized on drop; `Debug` shows no bytes. There
/// is deliberately no way to export it except wrapped by a master key.
pub struct DataKey(KeyBytes);

impl DataKey {
    /// A new random key.
    pub fn generate() -> Self {
        DataKey(KeyBytes::random())
    }

    pub(crate) fn from_bytes(bytes: KeyBytes) -> Self {
        DataKey(bytes)
    }

    pub(crate) fn bytes(&self) -> &KeyBytes {
        &self.0
    }

    /// Encrypts `plaintext` for the place `ctx` names.
    ///
    /// Returns `version (1) | nonce (24) | ciphertext + tag`, 41 bytes longer than
    /// `plaintext`. Sealing the same value twice gives different bytes (random nonce).
    pub fn seal(&self, ctx: &SealContext<'_>, plaintext: &[u8]) -> Vec<u8> {
        sealed::seal(&self.0, Purpose::Seal, &ctx.fields(), plaintext)
    }

    /// Decrypts a value sealed by [`DataKey::seal`] with this key and the same `ctx`.
    ///
    /// Fails with [`crate::Error::Decrypt`] on a wrong key, another table/column/row, or any
    /// modified byte; with [`crate::Error::UnsupportedVersion`] on an unknown format. The
    /// plaintext is zeroized when dropped.
    pub fn open(&self, ctx: &SealContext<'_>, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        sealed::open(&self.0, Purpose::Seal, &ctx.fields(), sealed)
    }
}

impl ZeroizeOnDrop for DataKey {}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataKey").finish_non_exhaustive()
    }
}
