use ssh_key::{PrivateKey, PublicKey};

use super::*;

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/ssh_keys/",
            $name
        ))
    };
}

const FIELD: &str = "input.privateKey";

#[test]
fn rsa_defaults_to_4096_bits_and_ed25519_takes_no_size() {
    let parse = |alg, bits| KeySpec::parse(alg, bits, "input.bits");
    assert_eq!(
        parse(SshKeyAlgorithm::Rsa, None).unwrap(),
        KeySpec::Rsa { bits: 4096 }
    );
    assert_eq!(
        parse(SshKeyAlgorithm::Rsa, Some(2048)).unwrap(),
        KeySpec::Rsa { bits: 2048 }
    );
    assert_eq!(
        parse(SshKeyAlgorithm::Ed25519, None).unwrap(),
        KeySpec::Ed25519
    );
    for bad in [1024, 4095, 8192, -1] {
        let err = parse(SshKeyAlgorithm::Rsa, Some(bad)).unwrap_err();
        assert_eq!(err.field(), Some("input.bits"));
    }
    assert!(parse(SshKeyAlgorithm::Ed25519, Some(256)).is_err());
}

#[test]
fn comments_are_one_short_line() {
    assert_eq!(
        parse_comment("  me@host ", "c").unwrap().as_deref(),
        Some("me@host")
    );
    assert_eq!(parse_comment("   ", "c").unwrap(), None);
    assert!(parse_comment("a\nb", "c").is_err());
    assert!(parse_comment(&"x".repeat(201), "c").is_err());
}

#[test]
fn generated_ed25519_keys_read_back() {
    let key = generate(KeySpec::Ed25519, Some("deploy@autoglue".into())).unwrap();
    assert_eq!(key.algorithm, SshKeyAlgorithm::Ed25519);
    assert_eq!(key.bits, None);
    assert!(key.public_key.starts_with("ssh-ed25519 AAAA"));
    assert!(key.public_key.ends_with(" deploy@autoglue"));
    let public = PublicKey::from_openssh(&key.public_key).unwrap();
    assert_eq!(
        public.fingerprint(HashAlg::Sha256).to_string(),
        key.fingerprint
    );
    assert!(key.fingerprint.starts_with("SHA256:") && !key.fingerprint.ends_with('='));
    let private = PrivateKey::from_openssh(key.private_pem.as_bytes()).unwrap();
    assert_eq!(private.public_key().key_data(), public.key_data());
}

#[test]
fn imported_keys_match_ssh_keygen() {
    let ed = import(fixture!("ed.key"), None, FIELD).unwrap();
    let expected = PublicKey::from_openssh(fixture!("ed.pub").trim()).unwrap();
    assert_eq!(ed.public_key, fixture!("ed.pub").trim());
    assert_eq!(ed.comment.as_deref(), Some("from-ssh-keygen"));
    assert_eq!(
        ed.fingerprint,
        "SHA256:Z3pwnzv932nBm00nFC76RVCbrS/Rf+psDKqnwAI8yk0"
    );
    assert_eq!(
        expected.fingerprint(HashAlg::Sha256).to_string(),
        ed.fingerprint
    );

    let rsa = import(fixture!("rsa.key"), Some("renamed".into()), FIELD).unwrap();
    assert_eq!(rsa.algorithm, SshKeyAlgorithm::Rsa);
    assert_eq!(rsa.bits, Some(2048));
    assert_eq!(
        rsa.fingerprint,
        "SHA256:HToQF6/AYrMpk+Za1soOVxXBbIhWRrOP8A9ua5mf22c"
    );
    assert!(rsa.public_key.ends_with(" renamed"));
    // The stored PEM carries the new comment too.
    let private = PrivateKey::from_openssh(rsa.private_pem.as_bytes()).unwrap();
    assert_eq!(private.comment(), "renamed");
}

#[test]
fn unusable_keys_are_refused_without_quoting_them() {
    let cases = [
        ("garbage", "not a key at all, secret-ish words"),
        ("encrypted", fixture!("enc.key")),
        ("ecdsa", fixture!("ec.key")),
        ("small", fixture!("small.key")),
    ];
    for (what, pem) in cases {
        let err = import(pem, None, FIELD).unwrap_err();
        assert_eq!(err.code(), "BAD_USER_INPUT", "{what}");
        assert_eq!(err.field(), Some(FIELD), "{what}");
        let message = err.to_string();
        assert!(!message.contains("secret-ish"), "{what}: {message}");
        assert!(
            !message.contains("b3BlbnNzaC1rZXktdjE"),
            "{what}: {message}"
        );
    }
    let encrypted = import(fixture!("enc.key"), None, FIELD).unwrap_err();
    assert!(encrypted.to_string().contains("passphrase"), "{encrypted}");
    let small = import(fixture!("small.key"), None, FIELD).unwrap_err();
    assert!(small.to_string().contains("1024"), "{small}");
}

#[test]
fn rsa_keys_whose_parts_disagree_are_refused() {
    let mut key = PrivateKey::from_openssh(fixture!("rsa.key")).unwrap();
    let KeypairData::Rsa(mut pair) = key.key_data().clone() else {
        panic!("not RSA")
    };
    // Another key's private exponent: the OpenSSH encoding itself does not notice.
    let other = generate(KeySpec::Rsa { bits: 2048 }, None).unwrap();
    let other = PrivateKey::from_openssh(other.private_pem.as_bytes()).unwrap();
    pair.private.d = other.key_data().rsa().unwrap().private.d.clone();
    key = PrivateKey::new(KeypairData::Rsa(pair), "tampered").unwrap();
    let pem = key.to_openssh(LineEnding::LF).unwrap();
    let err = import(&pem, None, FIELD).unwrap_err();
    assert_eq!(err.field(), Some(FIELD));
    assert!(err.to_string().contains("not valid"), "{err}");
}
