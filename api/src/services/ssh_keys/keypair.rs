//! SSH key material: generating key pairs, reading imported OpenSSH private keys, and
//! deriving what may be shown (OpenSSH public key, `SHA256:` fingerprint, size).
//!
//! Pure and synchronous: no database, no sealing. RSA generation takes seconds, so callers
//! run [`generate`] and [`import`] on a blocking thread. Private keys leave this module only
//! as OpenSSH PEM in a zeroizing string; error messages never quote the key.

use entity::enums::SshKeyAlgorithm;
use ssh_key::{
    Algorithm, HashAlg, LineEnding, PrivateKey,
    private::{KeypairData, RsaKeypair},
};
use vault::Zeroizing;

use crate::{Error, Result};

/// RSA sizes offered for generation.
pub const RSA_SIZES: [u32; 3] = [2048, 3072, 4096];
/// RSA size when none is asked for.
pub const DEFAULT_RSA_BITS: u32 = 4096;
/// Smallest RSA key accepted on import (OpenSSH's own minimum for new keys).
const MIN_IMPORTED_RSA_BITS: usize = 2048;
/// Largest RSA key accepted on import: beyond it, checking the key is a denial of service.
const MAX_IMPORTED_RSA_BITS: usize = 16384;
/// Longest comment accepted.
const MAX_COMMENT_CHARS: usize = 200;

/// What to generate, already validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySpec {
    Ed25519,
    Rsa { bits: u32 },
}

impl KeySpec {
    /// Resolves the requested algorithm and size: RSA takes 2048, 3072 or 4096 bits
    /// ([`DEFAULT_RSA_BITS`] when omitted); Ed25519 has a fixed size and takes none.
    pub fn parse(algorithm: SshKeyAlgorithm, bits: Option<i32>, field: &str) -> Result<Self> {
        match (algorithm, bits) {
            (SshKeyAlgorithm::Ed25519, None) => Ok(KeySpec::Ed25519),
            (SshKeyAlgorithm::Ed25519, Some(_)) => Err(Error::bad_input(
                field,
                "Ed25519 keys have a fixed size; omit bits",
            )),
            (SshKeyAlgorithm::Rsa, None) => Ok(KeySpec::Rsa {
                bits: DEFAULT_RSA_BITS,
            }),
            (SshKeyAlgorithm::Rsa, Some(n)) => u32::try_from(n)
                .ok()
                .filter(|bits| RSA_SIZES.contains(bits))
                .map(|bits| KeySpec::Rsa { bits })
                .ok_or_else(|| Error::bad_input(field, "RSA keys are 2048, 3072 or 4096 bits")),
        }
    }
}

/// A comment for the public key: trimmed, at most 200 characters, one line. Empty is none.
pub fn parse_comment(raw: &str, field: &str) -> Result<Option<String>> {
    let comment = raw.trim();
    if comment.chars().count() > MAX_COMMENT_CHARS {
        return Err(Error::bad_input(
            field,
            format!("comment must be at most {MAX_COMMENT_CHARS} characters"),
        ));
    }
    if comment.chars().any(char::is_control) {
        return Err(Error::bad_input(
            field,
            "comment must not contain control characters",
        ));
    }
    Ok(Some(comment.to_owned()).filter(|c| !c.is_empty()))
}

/// A key pair with its public facts.
pub struct KeyMaterial {
    pub algorithm: SshKeyAlgorithm,
    /// Modulus size of RSA keys; none for Ed25519.
    pub bits: Option<i32>,
    pub comment: Option<String>,
    /// `ssh-ed25519 AAAA… comment`.
    pub public_key: String,
    /// `SHA256:` and the unpadded base64 of the digest, as `ssh-keygen -l` prints it.
    pub fingerprint: String,
    /// The private key in OpenSSH PEM (`-----BEGIN OPENSSH PRIVATE KEY-----`), unencrypted.
    pub private_pem: Zeroizing<String>,
}

impl std::fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyMaterial")
            .field("algorithm", &self.algorithm)
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

/// Generates a new key pair (slow for RSA: call on a blocking thread).
pub fn generate(spec: KeySpec, comment: Option<String>) -> Result<KeyMaterial> {
    let mut rng = rand::rngs::OsRng;
    let key = match spec {
        KeySpec::Ed25519 => PrivateKey::random(&mut rng, Algorithm::Ed25519),
        KeySpec::Rsa { bits } => RsaKeypair::random(&mut rng, bits as usize)
            .and_then(|pair| PrivateKey::new(KeypairData::from(pair), "")),
    }
    .map_err(|e| anyhow::anyhow!("generating an SSH key: {e}"))?;
    describe(key, comment)
}

/// Reads an unencrypted OpenSSH private key (Ed25519 or RSA of 2048 bits or more). The
/// comment given replaces the key's own; without one, the key's own is kept. Errors name
/// `field` and never quote the key.
pub fn import(pem: &str, comment: Option<String>, field: &str) -> Result<KeyMaterial> {
    let key = PrivateKey::from_openssh(pem.trim()).map_err(|_| {
        Error::bad_input(
            field,
            "not an OpenSSH private key (expected -----BEGIN OPENSSH PRIVATE KEY-----)",
        )
    })?;
    if key.is_encrypted() {
        return Err(Error::bad_input(
            field,
            "the key is protected by a passphrase; remove it first (ssh-keygen -p -N '' -f FILE)",
        ));
    }
    check_importable(key.key_data(), field)?;
    // The key's own comment is kept when it is one we would accept, else dropped.
    let comment = comment.or_else(|| parse_comment(key.comment(), field).ok().flatten());
    describe(key, comment)
}

/// Accepts Ed25519 and sound RSA keys of a usable size.
fn check_importable(data: &KeypairData, field: &str) -> Result<()> {
    if data.is_ed25519() {
        return Ok(());
    }
    let Some(pair) = data.rsa() else {
        return Err(Error::bad_input(
            field,
            "only Ed25519 and RSA keys are supported",
        ));
    };
    let bits = rsa_bits(pair);
    if !(MIN_IMPORTED_RSA_BITS..=MAX_IMPORTED_RSA_BITS).contains(&bits) {
        return Err(Error::bad_input(
            field,
            format!(
                "RSA keys must have {MIN_IMPORTED_RSA_BITS} to {MAX_IMPORTED_RSA_BITS} bits, this one has {bits}"
            ),
        ));
    }
    // The OpenSSH format does not tie the private exponent to the modulus: check it does.
    // (ssh-key 0.6's own conversion to `rsa` passes `p` twice, so build the key here.)
    let int = |m: &ssh_key::Mpint| m.as_positive_bytes().map(rsa::BigUint::from_bytes_be);
    let parts = (
        int(&pair.public.n),
        int(&pair.public.e),
        int(&pair.private.d),
        int(&pair.private.p),
        int(&pair.private.q),
    );
    let invalid = || Error::bad_input(field, "the RSA key is not valid");
    let (Some(n), Some(e), Some(d), Some(p), Some(q)) = parts else {
        return Err(invalid());
    };
    rsa::RsaPrivateKey::from_components(n, e, d, vec![p, q]).map_err(|_| invalid())?;
    Ok(())
}

/// Sets the comment and derives the public facts of `key`.
fn describe(mut key: PrivateKey, comment: Option<String>) -> Result<KeyMaterial> {
    key.set_comment(comment.clone().unwrap_or_default());
    let (algorithm, bits) = match key.key_data() {
        data if data.is_ed25519() => (SshKeyAlgorithm::Ed25519, None),
        data => {
            let pair = data
                .rsa()
                .ok_or_else(|| anyhow::anyhow!("unexpected SSH key algorithm"))?;
            (SshKeyAlgorithm::Rsa, Some(rsa_bits(pair) as i32))
        }
    };
    let public_key = key
        .public_key()
        .to_openssh()
        .map_err(|e| anyhow::anyhow!("encoding an SSH public key: {e}"))?;
    let private_pem = key
        .to_openssh(LineEnding::LF)
        .map_err(|e| anyhow::anyhow!("encoding an SSH private key: {e}"))?;
    Ok(KeyMaterial {
        algorithm,
        bits,
        comment,
        public_key,
        fingerprint: key.fingerprint(HashAlg::Sha256).to_string(),
        private_pem,
    })
}

/// Size of an RSA key: the bit length of its modulus.
fn rsa_bits(pair: &RsaKeypair) -> usize {
    let modulus = pair.public.n.as_positive_bytes().unwrap_or_default();
    match modulus.iter().position(|&b| b != 0) {
        Some(first) => (modulus.len() - first) * 8 - modulus[first].leading_zeros() as usize,
        None => 0,
    }
}

#[cfg(test)]
#[path = "keypair_test.rs"]
mod tests;
