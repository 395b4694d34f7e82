//! The 32 secret bytes behind [`crate::MasterKey`] and [`crate::DataKey`].
//!
//! Boxed so that moving a key moves a pointer, not another copy of the secret left behind on
//! the stack; zeroized on drop so freed memory does not keep it.

use rand::{RngCore, rngs::OsRng};
use zeroize::Zeroize;

/// Length of every key in the hierarchy (XChaCha20-Poly1305 keys are 256 bits).
pub(crate) const KEY_LEN: usize = 32;

pub(crate) struct KeyBytes(Box<[u8; KEY_LEN]>);

impl KeyBytes {
    /// All zeros, to be filled in place (no temporary copy of the secret).
    pub(crate) fn zeroed() -> Self {
        KeyBytes(Box::new([0; KEY_LEN]))
    }

    /// Fresh bytes from the operating system's generator.
    pub(crate) fn random() -> Self {
        let mut key = Self::zeroed();
        OsRng.fill_bytes(key.as_mut());
        key
    }

    /// A copy of `bytes`, if it is exactly [`KEY_LEN`] long.
    pub(crate) fn from_slice(bytes: &[u8]) -> Option<Self> {
        let mut key = Self::zeroed();
        (bytes.len() == KEY_LEN).then(|| {
            key.as_mut().copy_from_slice(bytes);
            key
        })
    }

    pub(crate) fn as_array(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    pub(crate) fn as_mut(&mut self) -> &mut [u8; KEY_LEN] {
        &mut self.0
    }
}

impl Drop for KeyBytes {
    fn drop(&mut self) {
        self.0.as_mut_slice().zeroize();
    }
}
