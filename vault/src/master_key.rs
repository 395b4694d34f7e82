//! The master key: parsing, fingerprint, wrapping data keys, deriving the instance key.

use std::fmt;

use base64::{
    Engine, alphabet,
    engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig, general_purpose::STANDARD},
};
use sha2::{Digest, Sha256};
use uuid::Uuid;
use zeroize::{ZeroizeOnDrop, Zeroizing};

use crate::{
    DataKey, Error, Result,
    key_bytes::{KEY_LEN, KeyBytes},
    sealed::{self, Purpose},
};

/// Domain-separation labels for the two values derived from the master key. Changing one
/// changes every id or the instance key: never do it without a migration.
const ID_LABEL: &str = "autoglue/vault/v1/master-key-id";
const INSTANCE_KEY_LABEL: &str = "autoglue/vault/v1/instance-key";

/// Longest text accepted as a key: generous for whitespace-free base64 of 32 bytes (44) or
/// hex (64), small enough that a wrong file is refused before it is decoded.
const MAX_KEY_TEXT: usize = 128;

/// Base64 as people paste it: padding optional; the URL-safe alphabet is tried second.
const LENIENT: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
const STANDARD_LENIENT: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT);
const URL_SAFE_LENIENT: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT);

/// The root of the key hierarchy: 32 bytes that wrap every organization's [`DataKey`] and
/// derive the instance key. Never seals a value itself.
///
/// Zeroized on drop; `Debug` shows only [`MasterKey::id`].
pub struct MasterKey(KeyBytes);

impl MasterKey {
    /// A new random key.
    pub fn generate() -> Self {
        MasterKey(KeyBytes::random())
    }

    /// Parses a key from text: standard base64 (what [`MasterKey::to_base64`] writes; padding
    /// optional, URL-safe alphabet accepted) or 64 hex characters. Surrounding whitespace is
    /// ignored. Errors say what is wrong, never what the text was.
    pub fn from_base64(text: &str) -> Result<Self> {
        decode_key_text(text.trim()).map(MasterKey)
    }

    /// The key as standard base64 with padding (44 characters). This is the secret itself:
    /// write it only where the master key belongs.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0.as_array())
    }

    /// A fingerprint naming this key: the first 16 hex characters (64 bits) of
    /// `SHA-256(len(label) | label | key)` with a label of its own, so it equals no other
    /// hash of the key (in particular not the instance key). Stored next to wrapped keys, so
    /// that starting with the wrong master key is detected by comparing ids.
    pub fn id(&self) -> String {
        hex::encode(&labelled_hasher(ID_LABEL, &self.0).finalize()[..8])
    }

    /// Encrypts `key` for the organization `org_id`. The id is bound as associated data, so
    /// the result unwraps for that organization only.
    pub fn wrap(&self, org_id: Uuid, key: &DataKey) -> Vec<u8> {
        let key = key.bytes().as_array();
        sealed::seal(&self.0, Purpose::Wrap, &[org_id.as_bytes()], key)
    }

    /// Decrypts a key made by [`MasterKey::wrap`] with this master key and the same `org_id`.
    /// Fails with [`Error::Decrypt`] under another master key or organization.
    pub fn unwrap(&self, org_id: Uuid, wrapped: &[u8]) -> Result<DataKey> {
        let plain = sealed::open(&self.0, Purpose::Wrap, &[org_id.as_bytes()], wrapped)?;
        KeyBytes::from_slice(&plain)
            .map(DataKey::from_bytes)
            .ok_or_else(|| {
                Error::InvalidKey(format!(
                    "wrapped key is {} bytes, expected {KEY_LEN}",
                    plain.len()
                ))
            })
    }

    /// The key for instance-wide secrets (JWT signing keys), used with [`DataKey::seal`] and
    /// [`DataKey::open`] like an organization key.
    ///
    /// Construction: `SHA-256(len(label) | label | master key)`, label
    /// `"autoglue/vault/v1/instance-key"`, length as big-endian `u64`. The master key is
    /// uniformly random, so one hash with a fixed label is a sound key derivation (what
    /// HKDF-Expand reduces to for a single 32-byte output), and the master key never seals
    /// data directly. Deterministic: the same master key always gives the same instance key.
    pub fn instance_key(&self) -> DataKey {
        let mut key = KeyBytes::zeroed();
        // Hash straight into the zeroized box: no copy of the derived key on the stack.
        labelled_hasher(INSTANCE_KEY_LABEL, &self.0).finalize_into(key.as_mut().into());
        DataKey::from_bytes(key)
    }
}

/// Moves a wrapped organization key from `old` to `new` (master key rotation). The data key
/// itself is unchanged, so nothing it sealed needs re-sealing.
pub fn rewrap(old: &MasterKey, new: &MasterKey, org_id: Uuid, wrapped: &[u8]) -> Result<Vec<u8>> {
    let key = old.unwrap(org_id, wrapped)?;
    Ok(new.wrap(org_id, &key))
}

impl ZeroizeOnDrop for MasterKey {}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey").field("id", &self.id()).finish()
    }
}

/// `SHA-256(len(label) | label | key)`: the length prefix keeps labels from running into the
/// key, so no two labels can hash the same input.
fn labelled_hasher(label: &str, key: &KeyBytes) -> Sha256 {
    Sha256::new()
        .chain_update((label.len() as u64).to_be_bytes())
        .chain_update(label)
        .chain_update(key.as_array())
}

/// Hex first: 64 hex characters are also valid base64, of the wrong length (48 bytes).
/// Decoding goes into zeroized buffers, and decoder errors are dropped, not shown: they
/// quote the offending character.
fn decode_key_text(text: &str) -> Result<KeyBytes> {
    let mut key = KeyBytes::zeroed();
    if text.len() == 2 * KEY_LEN && hex::decode_to_slice(text, key.as_mut()).is_ok() {
        return Ok(key);
    }
    if text.len() > MAX_KEY_TEXT {
        return Err(Error::InvalidKey(format!(
            "{} characters is too long; expected 32 bytes as base64 (44 characters) or hex (64)",
            text.len()
        )));
    }
    let mut buf = Zeroizing::new([0u8; MAX_KEY_TEXT]);
    let len = STANDARD_LENIENT
        .decode_slice(text, &mut buf[..])
        .or_else(|_| URL_SAFE_LENIENT.decode_slice(text, &mut buf[..]))
        .map_err(|_| {
            Error::InvalidKey("expected 32 bytes as base64 or 64 hex characters".into())
        })?;
    if len != KEY_LEN {
        return Err(Error::InvalidKey(format!(
            "decodes to {len} bytes, expected {KEY_LEN}"
        )));
    }
    key.as_mut().copy_from_slice(&buf[..KEY_LEN]);
    Ok(key)
}
