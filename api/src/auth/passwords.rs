//! Password hashing with argon2id at OWASP's recommended cost (19 MiB, 2 passes, 1 lane).
//!
//! Hashing is slow on purpose, so it runs on the gate's threads ([`super::argon2_gate`],
//! which bounds how many run at once), never on an async worker, on memory each of those
//! threads keeps ([`super::argon2_memory`]).

use argon2::{
    Algorithm, Argon2, Params, PasswordHasher, Version,
    password_hash::{SaltString, rand_core::OsRng},
};
use secrecy::{ExposeSecret, SecretString};

use crate::{Error, Result};

/// Shortest password accepted.
pub const MIN_LENGTH: usize = 12;
/// Longest password accepted (argon2 takes any length; this bounds the work per request).
pub const MAX_LENGTH: usize = 256;

fn params() -> Params {
    Params::new(19 * 1024, 2, 1, None).expect("valid argon2 parameters")
}

fn argon2() -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params())
}

/// Checks the password policy; `field` names the argument in the error.
pub fn check_policy(password: &SecretString, field: &str) -> Result<()> {
    let n = password.expose_secret().chars().count();
    if n < MIN_LENGTH {
        return Err(Error::bad_input(
            field,
            format!("password must have at least {MIN_LENGTH} characters"),
        ));
    }
    if n > MAX_LENGTH {
        return Err(Error::bad_input(
            field,
            format!("password must have at most {MAX_LENGTH} characters"),
        ));
    }
    Ok(())
}

/// Hashes `secret` (a password or an API key secret) into a PHC string.
pub async fn hash(secret: SecretString) -> Result<String> {
    super::argon2_gate::run(move || {
        super::argon2_memory::hash(params(), secret.expose_secret().as_bytes())
            .map_err(|e| anyhow::anyhow!("argon2: {e}"))
    })
    .await?
    .map_err(Error::Internal)
}

/// Whether `secret` matches the PHC string `hash`.
pub async fn verify(secret: SecretString, hash: String) -> Result<bool> {
    super::argon2_gate::run(move || {
        super::argon2_memory::verify(&hash, secret.expose_secret().as_bytes())
    })
    .await
}

/// A hash of a random password, verified against when the user does not exist, so a wrong
/// username costs as much time as a wrong password. Made once per process, outside the
/// gate (a busy gate must not leave an empty hash here for good).
pub async fn dummy_hash() -> Result<&'static str> {
    static DUMMY: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    let hash = DUMMY
        .get_or_try_init(|| async {
            tokio::task::spawn_blocking(|| {
                let salt = SaltString::generate(&mut OsRng);
                argon2()
                    .hash_password(uuid::Uuid::new_v4().as_bytes(), &salt)
                    .map(|h| h.to_string())
                    .map_err(|e| anyhow::anyhow!("argon2: {e}"))
            })
            .await
            .map_err(|e| anyhow::anyhow!("the dummy hash task: {e}"))?
        })
        .await?;
    Ok(hash.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_only_their_password() {
        let h = hash(SecretString::from("correct horse battery"))
            .await
            .unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(
            verify(SecretString::from("correct horse battery"), h.clone())
                .await
                .unwrap()
        );
        assert!(
            !verify(SecretString::from("wrong horse battery"), h)
                .await
                .unwrap()
        );
        assert!(
            !verify(SecretString::from("x"), "not a hash".into())
                .await
                .unwrap()
        );
    }

    #[test]
    fn policy_bounds_length() {
        assert!(check_policy(&SecretString::from("short"), "p").is_err());
        assert!(check_policy(&SecretString::from("long enough pw"), "p").is_ok());
        assert!(check_policy(&SecretString::from("x".repeat(257)), "p").is_err());
    }
}
