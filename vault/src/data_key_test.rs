//! Sealing and opening values: round trips, and every way a ciphertext must refuse to open.

use uuid::Uuid;

use crate::{
    DataKey, Error, SealContext,
    sealed::{self, Purpose, VERSION},
};

const SECRET: &[u8] = b"-----BEGIN OPENSSH PRIVATE KEY-----";

fn ctx(row_id: Uuid) -> SealContext<'static> {
    SealContext::new("ssh_keys", "private_key_sealed", row_id)
}

#[test]
fn sealed_value_opens_with_the_same_key_and_context() {
    let key = DataKey::generate();
    let row = Uuid::now_v7();
    let sealed = key.seal(&ctx(row), SECRET);
    assert_eq!(sealed.len(), 1 + 24 + SECRET.len() + 16);
    assert_eq!(sealed[0], VERSION);
    assert!(
        !sealed.windows(SECRET.len()).any(|w| w == SECRET),
        "plaintext visible"
    );
    assert_eq!(&key.open(&ctx(row), &sealed).unwrap()[..], SECRET);
}

#[test]
fn empty_value_round_trips() {
    let key = DataKey::generate();
    let row = Uuid::now_v7();
    let sealed = key.seal(&ctx(row), b"");
    assert!(key.open(&ctx(row), &sealed).unwrap().is_empty());
}

#[test]
fn sealing_twice_uses_fresh_nonces() {
    let key = DataKey::generate();
    let row = Uuid::now_v7();
    assert_ne!(key.seal(&ctx(row), SECRET), key.seal(&ctx(row), SECRET));
}

#[test]
fn value_moved_to_another_row_column_or_table_fails() {
    let key = DataKey::generate();
    let row = Uuid::now_v7();
    let sealed = key.seal(&ctx(row), SECRET);
    let elsewhere = [
        SealContext::new("ssh_keys", "private_key_sealed", Uuid::now_v7()),
        SealContext::new("ssh_keys", "public_key", row),
        SealContext::new("credentials", "private_key_sealed", row),
    ];
    for other in elsewhere {
        assert!(
            matches!(key.open(&other, &sealed), Err(Error::Decrypt)),
            "opened at {other:?}"
        );
    }
}

#[test]
fn table_and_column_boundaries_are_unambiguous() {
    let key = DataKey::generate();
    let row = Uuid::now_v7();
    let sealed = key.seal(&SealContext::new("ab", "c", row), SECRET);
    let shifted = SealContext::new("a", "bc", row);
    assert!(matches!(key.open(&shifted, &sealed), Err(Error::Decrypt)));
    assert_ne!(
        sealed::associated_data(VERSION, Purpose::Seal, &[b"ab", b"c"]),
        sealed::associated_data(VERSION, Purpose::Seal, &[b"a", b"bc"]),
    );
}

#[test]
fn another_data_key_fails() {
    let row = Uuid::now_v7();
    let sealed = DataKey::generate().seal(&ctx(row), SECRET);
    assert!(matches!(
        DataKey::generate().open(&ctx(row), &sealed),
        Err(Error::Decrypt)
    ));
}

#[test]
fn any_modified_byte_fails() {
    let key = DataKey::generate();
    let row = Uuid::now_v7();
    let sealed = key.seal(&ctx(row), SECRET);
    // Nonce, ciphertext and tag: all authenticated.
    for i in 1..sealed.len() {
        let mut tampered = sealed.clone();
        tampered[i] ^= 0x01;
        assert!(
            matches!(key.open(&ctx(row), &tampered), Err(Error::Decrypt)),
            "byte {i} flipped still opens"
        );
    }
    let mut other_version = sealed.clone();
    other_version[0] = 2;
    assert!(matches!(
        key.open(&ctx(row), &other_version),
        Err(Error::UnsupportedVersion(2))
    ));
}

#[test]
fn truncated_or_extended_values_fail() {
    let key = DataKey::generate();
    let row = Uuid::now_v7();
    let sealed = key.seal(&ctx(row), SECRET);
    for len in 0..sealed.len() {
        assert!(
            matches!(key.open(&ctx(row), &sealed[..len]), Err(Error::Decrypt)),
            "opened truncated to {len} bytes"
        );
    }
    let mut extended = sealed.clone();
    extended.push(0);
    assert!(matches!(
        key.open(&ctx(row), &extended),
        Err(Error::Decrypt)
    ));
}

#[test]
fn wrapped_key_format_is_not_taken_for_a_sealed_value() {
    // Same key and fields, different purpose: the label in the associated data tells them apart.
    let key = DataKey::generate();
    let fields: [&[u8]; 1] = [b"x"];
    let wrapped = sealed::seal(key.bytes(), Purpose::Wrap, &fields, SECRET);
    assert!(matches!(
        sealed::open(key.bytes(), Purpose::Seal, &fields, &wrapped),
        Err(Error::Decrypt)
    ));
}

#[test]
fn debug_shows_no_key_bytes() {
    let key = DataKey::generate();
    let debug = format!("{key:?} {key:#?}");
    let bytes = key.bytes().as_array();
    assert!(!debug.contains(&hex::encode(bytes)));
    assert!(!debug.contains(&hex::encode_upper(bytes)));
    assert!(!debug.contains(&super::master_key_test::base64(bytes)));
    assert!(!debug.contains(&format!("{bytes:?}")));
    assert!(debug.starts_with("DataKey"));
}
