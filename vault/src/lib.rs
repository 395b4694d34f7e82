//! Secrets at rest: the master key, per-organization data keys, and sealed values.
//!
//! This crate is pure cryptography and files. It owns the key hierarchy and the byte formats;
//! it leaves storage to the caller (the api crate keeps wrapped keys in
//! `organization_data_keys` and sealed values next to the rows they protect).
//!
//! # Key hierarchy
//!
//! ```text
//! MasterKey (32 bytes, env or 0600 file)
//!  ├─ wraps ─> DataKey per organization   (random; stored wrapped, AAD = org id)
//!  │            └─ seals ─> secret values  (AAD = table, column, row id)
//!  └─ derives ─> instance DataKey          (SHA-256 of a label and the master key)
//!               └─ seals ─> instance-wide secrets (JWT signing keys), same AAD rule
//! ```
//!
//! The master key itself never seals a value: it only wraps data keys and derives the
//! instance key, so rotating it re-wraps organization keys ([`rewrap`]) and re-seals the few
//! instance-wide secrets, never every secret in the database.
//!
//! # Formats
//!
//! Sealed values and wrapped keys share one layout:
//!
//! ```text
//! version (1 byte, = 1) | nonce (24 random bytes) | XChaCha20-Poly1305 ciphertext + 16-byte tag
//! ```
//!
//! The associated data (authenticated, not stored) is the version byte, a purpose label
//! (`"seal"` or `"wrap"`) and the bound fields, each prefixed by its length as a big-endian
//! `u64`: table, column and row id (16 bytes) for a sealed value; organization id for a
//! wrapped key. Length prefixes keep the encoding unambiguous: `("ab", "c")` and `("a", "bc")`
//! give different associated data.
//!
//! # Invariants
//!
//! - A ciphertext opens only with the key that sealed it *and* at the place it was sealed
//!   for: copied to another row, column, table or organization, it fails with
//!   [`Error::Decrypt`], as it does when tampered with.
//! - Nonces are random (192 bits), so one key may seal any number of values without
//!   tracking counters.
//! - Key bytes live in heap boxes zeroized on drop, never appear in `Debug` output or error
//!   messages; a master key is identified by [`MasterKey::id`], a one-way fingerprint.

mod data_key;
mod error;
mod key_bytes;
mod master_key;
mod master_key_file;
mod seal_context;
mod sealed;

pub use data_key::DataKey;
pub use error::{Error, Result};
pub use master_key::{MasterKey, rewrap};
pub use master_key_file::create_master_key_file;
pub use seal_context::SealContext;
/// Opened plaintexts are returned in this wrapper, which zeroizes them on drop.
pub use zeroize::Zeroizing;

#[cfg(test)]
mod data_key_test;
#[cfg(test)]
mod master_key_file_test;
#[cfg(test)]
mod master_key_test;
