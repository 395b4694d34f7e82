//! Opaque bearer secrets: refresh tokens, user API keys and organization keys.
//!
//! Formats (hex, so `_` only ever separates parts):
//! - refresh token: `agr_<64 hex>`; stored as its SHA-256.
//! - user API key: `agu_<prefix 12 hex>_<secret 64 hex>`; the prefix finds the row, the
//!   secret is checked against an argon2id hash.
//! - organization key: key `ago_<prefix 12 hex>` and secret `<64 hex>`, sent either as the
//!   `X-Org-Key` / `X-Org-Secret` headers or as one bearer token `ago_<prefix>_<secret>`.

use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

/// Random bytes as lowercase hex.
fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    hex::encode(buf)
}

/// SHA-256 of `text` as hex: the stored form of refresh tokens, the cache key of API keys.
pub fn digest(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// A new refresh token.
pub fn new_refresh_token() -> SecretString {
    SecretString::from(format!("agr_{}", random_hex(32)))
}

/// The kinds of key a bearer string can be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    User,
    Organization,
}

impl KeyKind {
    fn tag(self) -> &'static str {
        match self {
            KeyKind::User => "agu",
            KeyKind::Organization => "ago",
        }
    }
}

/// A freshly made key: the public prefix and the whole secret string shown once.
pub struct NewKey {
    pub prefix: String,
    pub secret: SecretString,
}

/// Makes a key of `kind`. For user keys `secret` is the whole bearer token; for organization
/// keys it is the part sent as `X-Org-Secret` (the key is `ago_<prefix>`).
pub fn new_key(kind: KeyKind) -> NewKey {
    let prefix = random_hex(6);
    let secret = random_hex(32);
    let secret = match kind {
        KeyKind::User => format!("agu_{prefix}_{secret}"),
        KeyKind::Organization => secret,
    };
    NewKey {
        prefix,
        secret: SecretString::from(secret),
    }
}

/// A key presented by a caller, split into its parts.
pub struct PresentedKey {
    pub kind: KeyKind,
    pub prefix: String,
    /// What the stored hash was made from.
    pub secret: SecretString,
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Parses a bearer token that is a user or organization key; None for anything else.
pub fn parse_bearer_key(token: &str) -> Option<PresentedKey> {
    let mut parts = token.splitn(3, '_');
    let (tag, prefix, secret) = (parts.next()?, parts.next()?, parts.next()?);
    if !is_hex(prefix, 12) || !is_hex(secret, 64) {
        return None;
    }
    let kind = match tag {
        "agu" => KeyKind::User,
        "ago" => KeyKind::Organization,
        _ => return None,
    };
    let secret = match kind {
        KeyKind::User => token.to_owned(),
        KeyKind::Organization => secret.to_owned(),
    };
    Some(PresentedKey {
        kind,
        prefix: prefix.to_owned(),
        secret: SecretString::from(secret),
    })
}

/// Parses the `X-Org-Key` / `X-Org-Secret` pair.
pub fn parse_org_key_pair(key: &str, secret: &str) -> Option<PresentedKey> {
    let prefix = key.strip_prefix("ago_")?;
    if !is_hex(prefix, 12) || !is_hex(secret, 64) {
        return None;
    }
    Some(PresentedKey {
        kind: KeyKind::Organization,
        prefix: prefix.to_owned(),
        secret: SecretString::from(secret.to_owned()),
    })
}

/// The public name of an organization key.
pub fn org_key_name(prefix: &str) -> String {
    format!("{}_{prefix}", KeyKind::Organization.tag())
}

/// The cache key of a presented key: a digest of everything the caller sent.
pub fn cache_digest(key: &PresentedKey) -> String {
    digest(&format!(
        "{}:{}:{}",
        key.kind.tag(),
        key.prefix,
        key.secret.expose_secret()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_keys_parse_back() {
        let key = new_key(KeyKind::User);
        let parsed = parse_bearer_key(key.secret.expose_secret()).unwrap();
        assert_eq!(parsed.kind, KeyKind::User);
        assert_eq!(parsed.prefix, key.prefix);
        assert_eq!(parsed.secret.expose_secret(), key.secret.expose_secret());
    }

    #[test]
    fn org_keys_parse_from_headers_and_bearer() {
        let key = new_key(KeyKind::Organization);
        let name = org_key_name(&key.prefix);
        let pair = parse_org_key_pair(&name, key.secret.expose_secret()).unwrap();
        let bearer = parse_bearer_key(&format!("{name}_{}", key.secret.expose_secret())).unwrap();
        assert_eq!(cache_digest(&pair), cache_digest(&bearer));
        assert_eq!(bearer.kind, KeyKind::Organization);
    }

    #[test]
    fn garbage_is_not_a_key() {
        assert!(parse_bearer_key("eyJhbGciOi.x.y").is_none());
        assert!(parse_bearer_key("agu_zz_zz").is_none());
        assert!(parse_org_key_pair("ago_123", "abc").is_none());
        assert!(new_refresh_token().expose_secret().starts_with("agr_"));
    }
}
