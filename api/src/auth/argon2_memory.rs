//! argon2id hashing and verification on memory kept per thread.
//!
//! The argon2 crate allocates its 19 MiB of blocks per call. The allocator returns freed
//! pages to the system only after a delay, so a burst of runs, even two at a time, left
//! hundreds of MiB resident. The gate's threads ([`super::argon2_gate`]) each keep one
//! block buffer instead and reuse it for every run.

use std::cell::RefCell;

use argon2::{
    Algorithm, Argon2, Block, Params, PasswordHash, Version,
    password_hash::{self, Output, ParamsString, SaltString, rand_core::OsRng},
};

thread_local! {
    static BLOCKS: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// The most memory a stored hash may ask for (64 MiB): a hash from elsewhere must not make
/// a thread keep gigabytes.
const MAX_BLOCKS: usize = 64 * 1024;

fn with_blocks<T>(count: usize, f: impl FnOnce(&mut [Block]) -> T) -> T {
    BLOCKS.with(|blocks| {
        let mut blocks = blocks.borrow_mut();
        if blocks.len() < count {
            blocks.resize(count, Block::default());
        }
        f(&mut blocks[..count])
    })
}

fn compute(hasher: &Argon2, pwd: &[u8], salt: &[u8], len: usize) -> password_hash::Result<Output> {
    let count = hasher.params().block_count();
    if count > MAX_BLOCKS {
        return Err(password_hash::Error::ParamValueInvalid(
            password_hash::errors::InvalidValue::TooLong,
        ));
    }
    Output::init_with(len, |out| {
        with_blocks(count, |blocks| {
            hasher.hash_password_into_with_memory(pwd, salt, out, blocks)
        })
        .map_err(password_hash::Error::from)
    })
}

/// A PHC string of `pwd` hashed with `params` (argon2id, version 0x13) and a random salt.
pub fn hash(params: Params, pwd: &[u8]) -> password_hash::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    let mut buf = [0u8; 64];
    let salt_bytes = salt.as_salt().decode_b64(&mut buf)?;
    let hasher = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let output = compute(&hasher, pwd, salt_bytes, Params::DEFAULT_OUTPUT_LEN)?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params)?,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    };
    Ok(phc.to_string())
}

/// Whether `pwd` matches the PHC string `phc` (compared in constant time).
pub fn verify(phc: &str, pwd: &[u8]) -> bool {
    let check = || -> password_hash::Result<bool> {
        let parsed = PasswordHash::new(phc)?;
        let algorithm = Algorithm::try_from(parsed.algorithm)?;
        let version = parsed
            .version
            .map(Version::try_from)
            .transpose()?
            .unwrap_or_default();
        let params = Params::try_from(&parsed)?;
        let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
            return Ok(false);
        };
        let mut buf = [0u8; 64];
        let salt_bytes = salt.decode_b64(&mut buf)?;
        let hasher = Argon2::new(algorithm, version, params);
        Ok(compute(&hasher, pwd, salt_bytes, expected.len())? == expected)
    };
    check().unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use argon2::{PasswordHasher, PasswordVerifier};

    use super::*;

    fn params() -> Params {
        Params::new(1024, 1, 1, None).unwrap()
    }

    #[test]
    fn agrees_with_the_argon2_crate_both_ways() {
        let ours = hash(params(), b"correct horse").unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"correct horse", &parsed)
                .is_ok()
        );
        let salt = SaltString::generate(&mut OsRng);
        let theirs = Argon2::new(Algorithm::Argon2id, Version::V0x13, params())
            .hash_password(b"correct horse", &salt)
            .unwrap()
            .to_string();
        assert!(verify(&theirs, b"correct horse"));
        assert!(!verify(&theirs, b"wrong horse"));
        assert!(!verify("not a hash", b"x"));
    }
}
