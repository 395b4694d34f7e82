//! The byte layout shared by sealed values and wrapped keys, and their associated data.
//!
//! Layout: `version (1) | nonce (24) | ciphertext + tag (16)`. The associated data is
//! `version | purpose | fields…`, each of purpose and fields prefixed by its length as a
//! big-endian `u64`, so no two different field lists encode to the same bytes.

use chacha20poly1305::{
    KeyInit, XChaCha20Poly1305, XNonce,
    aead::{Aead, Payload},
};
use rand::{RngCore, rngs::OsRng};
use zeroize::Zeroizing;

use crate::{Error, Result, key_bytes::KeyBytes};

/// The only format written and read so far. A new one gets a new number, and [`open`] keeps
/// reading the old ones.
pub(crate) const VERSION: u8 = 1;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;

/// What a ciphertext is for, bound into its associated data so a wrapped key can never be
/// taken for a sealed value or the reverse, whatever key material ends up shared.
#[derive(Clone, Copy)]
pub(crate) enum Purpose {
    /// A secret value sealed with a data key; fields: table, column, row id.
    Seal,
    /// A data key wrapped by the master key; field: organization id.
    Wrap,
}

impl Purpose {
    fn label(self) -> &'static [u8] {
        match self {
            Purpose::Seal => b"seal",
            Purpose::Wrap => b"wrap",
        }
    }
}

/// Encrypts `plaintext` under `key` with a fresh random nonce.
pub(crate) fn seal(
    key: &KeyBytes,
    purpose: Purpose,
    fields: &[&[u8]],
    plaintext: &[u8],
) -> Vec<u8> {
    let mut nonce = XNonce::default();
    OsRng.fill_bytes(&mut nonce);
    let aad = associated_data(VERSION, purpose, fields);
    let ciphertext = cipher(key)
        .encrypt(
            &nonce,
            Payload {
                msg: plaintext,
                aad: &aad,
            },
        )
        // XChaCha20-Poly1305 only refuses messages of 256 GiB and more.
        .expect("plaintext too large to seal");
    let mut sealed = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
    sealed.push(VERSION);
    sealed.extend_from_slice(&nonce);
    sealed.extend_from_slice(&ciphertext);
    sealed
}

/// Decrypts what [`seal`] produced with the same key, purpose and fields.
pub(crate) fn open(
    key: &KeyBytes,
    purpose: Purpose,
    fields: &[&[u8]],
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    let (&version, rest) = sealed.split_first().ok_or(Error::Decrypt)?;
    if version != VERSION {
        return Err(Error::UnsupportedVersion(version));
    }
    if rest.len() < NONCE_LEN + TAG_LEN {
        return Err(Error::Decrypt);
    }
    let (nonce, ciphertext) = rest
        .split_first_chunk::<NONCE_LEN>()
        .ok_or(Error::Decrypt)?;
    let aad = associated_data(version, purpose, fields);
    cipher(key)
        .decrypt(
            &XNonce::from(*nonce),
            Payload {
                msg: ciphertext,
                aad: &aad,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| Error::Decrypt)
}

// The cipher keeps a copy of the key and zeroizes it on drop (chacha20poly1305's `zeroize`
// feature, on by default), so building one per call leaves nothing behind.
fn cipher(key: &KeyBytes) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new(key.as_array().into())
}

/// `version | len(purpose) purpose | len(field) field …`, lengths as big-endian `u64`.
pub(crate) fn associated_data(version: u8, purpose: Purpose, fields: &[&[u8]]) -> Vec<u8> {
    let mut aad = vec![version];
    for part in std::iter::once(purpose.label()).chain(fields.iter().copied()) {
        aad.extend_from_slice(&(part.len() as u64).to_be_bytes());
        aad.extend_from_slice(part);
    }
    aad
}
