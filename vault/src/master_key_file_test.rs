//! Creating and reading master key files.

use std::fs;

use crate::{Error, MasterKey, create_master_key_file};

#[test]
fn created_file_reads_back_as_the_same_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.key");
    let key = create_master_key_file(&path).unwrap();
    let content = fs::read_to_string(&path).unwrap();
    assert_eq!(content, format!("{}\n", key.to_base64()));
    assert_eq!(MasterKey::from_file(&path).unwrap().id(), key.id());
}

#[cfg(unix)]
#[test]
fn created_file_is_private_to_its_owner() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.key");
    create_master_key_file(&path).unwrap();
    let mode = fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
}

#[test]
fn second_create_refuses_and_keeps_the_first_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.key");
    let first = create_master_key_file(&path).unwrap();
    match create_master_key_file(&path) {
        Err(Error::AlreadyExists(p)) => assert_eq!(p, path),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    assert_eq!(MasterKey::from_file(&path).unwrap().id(), first.id());
}

#[test]
fn missing_parent_directory_is_an_io_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent").join("master.key");
    match create_master_key_file(&path) {
        Err(Error::Io { path: p, source }) => {
            assert_eq!(p, path);
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("expected Io, got {other:?}"),
    }
}

#[test]
fn missing_file_is_an_io_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.key");
    let err = MasterKey::from_file(&path).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("nope.key"), "{err}");
}

#[test]
fn hand_written_hex_file_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.key");
    let key = MasterKey::generate();
    let hex = hex::encode(super::master_key_test::base64_decode(&key.to_base64()));
    fs::write(&path, format!("{hex}\n")).unwrap();
    assert_eq!(MasterKey::from_file(&path).unwrap().id(), key.id());
}

#[test]
fn invalid_content_is_refused_without_echoing_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.key");
    let content = "password=hunter2-correct-horse\n";
    fs::write(&path, content).unwrap();
    match MasterKey::from_file(&path) {
        Err(e @ Error::InvalidKey(_)) => {
            let message = e.to_string();
            assert!(!message.contains("hunter2"), "{message}");
        }
        other => panic!("expected InvalidKey, got {other:?}"),
    }
    fs::write(&path, [0xff, 0xfe, 0x00, 0x41]).unwrap();
    assert!(matches!(
        MasterKey::from_file(&path),
        Err(Error::InvalidKey(_))
    ));
}
