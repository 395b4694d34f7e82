//! Authentication: who is calling, proven by a password, a JWT, an API key or an
//! organization key.
//!
//! This module owns the cryptographic mechanics (hashing, token formats, signing keys);
//! the rules about users, sessions and keys live in `services`. Nothing here logs a secret.

pub mod argon2_gate;
mod argon2_memory;
pub mod authenticate;
pub mod keyring;
pub mod limits;
pub mod master_key;
pub mod oidc;
pub mod passwords;
pub mod quotas;
pub mod secrets;
pub mod socket_session;
