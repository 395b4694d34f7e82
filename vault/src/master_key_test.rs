//! Master key parsing, fingerprint, wrapping, instance key and rotation.

use base64::{
    Engine,
    engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE},
};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{DataKey, Error, MasterKey, SealContext, rewrap};

pub(crate) fn base64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

fn raw(key: &MasterKey) -> [u8; 32] {
    base64_decode(&key.to_base64()).try_into().unwrap()
}

#[test]
fn wrapped_key_unwraps_to_the_same_key() {
    let master = MasterKey::generate();
    let org = Uuid::now_v7();
    let key = DataKey::generate();
    let wrapped = master.wrap(org, &key);
    assert_eq!(wrapped.len(), 1 + 24 + 32 + 16);
    let unwrapped = master.unwrap(org, &wrapped).unwrap();
    assert_eq!(unwrapped.bytes().as_array(), key.bytes().as_array());
}

#[test]
fn wrapped_key_under_another_org_fails() {
    let master = MasterKey::generate();
    let wrapped = master.wrap(Uuid::now_v7(), &DataKey::generate());
    assert!(matches!(
        master.unwrap(Uuid::now_v7(), &wrapped),
        Err(Error::Decrypt)
    ));
}

#[test]
fn wrapped_key_under_another_master_fails() {
    let org = Uuid::now_v7();
    let wrapped = MasterKey::generate().wrap(org, &DataKey::generate());
    assert!(matches!(
        MasterKey::generate().unwrap(org, &wrapped),
        Err(Error::Decrypt)
    ));
}

#[test]
fn base64_round_trips_with_the_same_id() {
    let key = MasterKey::generate();
    let text = key.to_base64();
    assert_eq!(text.len(), 44);
    let parsed = MasterKey::from_base64(&text).unwrap();
    assert_eq!(raw(&parsed), raw(&key));
    assert_eq!(parsed.id(), key.id());
}

#[test]
fn parses_hex_and_base64_variants() {
    let key = MasterKey::generate();
    let bytes = raw(&key);
    let forms = [
        hex::encode(bytes),
        hex::encode_upper(bytes),
        STANDARD_NO_PAD.encode(bytes),
        URL_SAFE.encode(bytes),
        format!("  {}\r\n", STANDARD.encode(bytes)),
    ];
    for form in forms {
        let parsed = MasterKey::from_base64(&form).unwrap_or_else(|e| panic!("{form:?}: {e}"));
        assert_eq!(raw(&parsed), bytes, "{form:?}");
    }
}

#[test]
fn invalid_text_is_refused_without_echoing_it() {
    let cases = [
        "not a key at all!".to_owned(),
        STANDARD.encode([7u8; 16]),
        STANDARD.encode([7u8; 33]),
        format!("{}zz", &hex::encode([9u8; 32])[..62]),
        "A".repeat(500),
        String::new(),
    ];
    for text in cases {
        match MasterKey::from_base64(&text) {
            Err(Error::InvalidKey(message)) => {
                assert!(
                    text.is_empty() || !message.contains(text.trim()),
                    "message {message:?} echoes the input"
                );
            }
            other => panic!("{text:?} gave {other:?}"),
        }
    }
}

#[test]
fn id_is_a_stable_domain_separated_fingerprint() {
    let key = MasterKey::generate();
    let id = key.id();
    assert_eq!(id.len(), 16);
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(key.id(), id);
    assert_ne!(MasterKey::generate().id(), id);
    let plain_hash = hex::encode(Sha256::digest(raw(&key)));
    assert!(!plain_hash.starts_with(&id), "id is the bare key hash");
    assert!(
        !hex::encode(raw(&key)).contains(&id),
        "id is part of the key"
    );
}

#[test]
fn debug_shows_the_id_and_no_key_bytes() {
    let key = MasterKey::generate();
    let debug = format!("{key:?} {key:#?}");
    let bytes = raw(&key);
    assert!(debug.contains(&key.id()));
    assert!(!debug.contains(&key.to_base64()));
    assert!(!debug.contains(&STANDARD_NO_PAD.encode(bytes)));
    assert!(!debug.contains(&hex::encode(bytes)));
    assert!(!debug.contains(&hex::encode_upper(bytes)));
    assert!(!debug.contains(&format!("{bytes:?}")));
}

#[test]
fn instance_key_is_derived_deterministically_and_is_not_the_master_key() {
    let master = MasterKey::generate();
    let (a, b) = (master.instance_key(), master.instance_key());
    assert_eq!(a.bytes().as_array(), b.bytes().as_array());
    assert_ne!(a.bytes().as_array(), &raw(&master));
    assert_ne!(
        a.bytes().as_array(),
        MasterKey::generate().instance_key().bytes().as_array()
    );
    // A value sealed under one derivation opens under a later one (as after a restart).
    let ctx = SealContext::new("signing_keys", "private_key_sealed", Uuid::now_v7());
    let sealed = a.seal(&ctx, b"seed");
    let reloaded = MasterKey::from_base64(&master.to_base64()).unwrap();
    assert_eq!(
        &reloaded.instance_key().open(&ctx, &sealed).unwrap()[..],
        b"seed"
    );
}

#[test]
fn rewrap_moves_a_key_to_the_new_master() {
    let (old, new) = (MasterKey::generate(), MasterKey::generate());
    let org = Uuid::now_v7();
    let key = DataKey::generate();
    let rewrapped = rewrap(&old, &new, org, &old.wrap(org, &key)).unwrap();
    let unwrapped = new.unwrap(org, &rewrapped).unwrap();
    assert_eq!(unwrapped.bytes().as_array(), key.bytes().as_array());
    assert!(matches!(old.unwrap(org, &rewrapped), Err(Error::Decrypt)));
}

#[test]
fn rewrap_with_the_wrong_old_master_fails() {
    let org = Uuid::now_v7();
    let wrapped = MasterKey::generate().wrap(org, &DataKey::generate());
    let result = rewrap(
        &MasterKey::generate(),
        &MasterKey::generate(),
        org,
        &wrapped,
    );
    assert!(matches!(result, Err(Error::Decrypt)));
}

pub(crate) fn base64_decode(text: &str) -> Vec<u8> {
    STANDARD.decode(text).unwrap()
}
