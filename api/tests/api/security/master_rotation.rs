//! Rotating the master key while a server runs: the server creates organizations throughout,
//! and afterwards every key is under the new master key, the old server refuses to wrap new
//! ones, and a second run of the rotation finishes.

use std::sync::atomic::{AtomicBool, Ordering};

use entity::organization_data_keys;
use sea_orm::{Database, EntityTrait};
use serde_json::json;
use vault::MasterKey;

use crate::{
    helpers::{TestDb, error_code},
    secrets::{Server, autoglue_on, create_master, refused},
};

const CREATE: &str =
    "mutation($n: String!) { createOrganization(input: {name: $n}) { organization { id } } }";

#[tokio::test]
async fn a_rotation_while_a_server_creates_organizations_leaves_every_key_under_the_new_key() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.key"), dir.path().join("b.key"));
    for file in [&a, &b] {
        assert!(create_master(file).status.success());
    }
    let with = |file: &std::path::Path| {
        autoglue_on(
            &db.url,
            ("AUTOGLUE_MASTER_KEY_FILE", file.to_str().unwrap()),
        )
    };
    let server = Server::start(with(&a)).await;
    let token = server.admin_token().await;
    server.create_org(&token, "before").await;

    let rotated = AtomicBool::new(false);
    let creating = async {
        let mut outcomes = Vec::new();
        for i in 0..40 {
            let resp = server
                .gql(Some(&token), CREATE, json!({ "n": format!("during-{i}") }))
                .await;
            outcomes.push(resp);
            if rotated.load(Ordering::Acquire) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        outcomes
    };
    let rotating = async {
        let mut rotate = with(&a);
        rotate
            .args(["encrypt", "rotate-master", "--new-key-file"])
            .arg(&b);
        let out = tokio::task::spawn_blocking(move || rotate.output().unwrap())
            .await
            .unwrap();
        rotated.store(true, Ordering::Release);
        out
    };
    let (outcomes, out) = tokio::join!(creating, rotating);
    assert!(out.status.success(), "{out:?}");

    // Each creation during the rotation either happened or was refused with a clear code.
    let mut created = 1;
    for resp in &outcomes {
        match resp.get("errors") {
            None => created += 1,
            Some(_) => assert_eq!(error_code(resp), "SERVICE_UNAVAILABLE", "{resp}"),
        }
    }
    // After it, the server on the old key refuses to wrap a new organization's key.
    let after = server
        .gql(Some(&token), CREATE, json!({ "n": "after" }))
        .await;
    assert_eq!(error_code(&after), "SERVICE_UNAVAILABLE", "{after}");
    drop(server);

    // Every key that exists opens with the new master key, and no organization is half made.
    let new = MasterKey::from_file(&b).unwrap();
    let conn = Database::connect(&db.url).await.unwrap();
    let rows = organization_data_keys::Entity::find()
        .all(&conn)
        .await
        .unwrap();
    assert_eq!(rows.len(), created, "{outcomes:?}");
    for row in &rows {
        assert_eq!(row.master_key_id, new.id());
        new.unwrap(row.organization_id, &row.wrapped_key)
            .expect("every organization key opens with the new master key");
    }
    let orgs = entity::organizations::Entity::find()
        .all(&conn)
        .await
        .unwrap();
    assert_eq!(orgs.len(), created);
    conn.close().await.unwrap();

    // A second run finds everything under the new key already and finishes.
    let mut again = with(&a);
    again
        .args(["encrypt", "rotate-master", "--new-key-file"])
        .arg(&b);
    let out = again.output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("were under it already"), "{stdout}");

    // The new key starts a server; the old one is refused, with the recorded id named.
    let server = Server::start(with(&b)).await;
    server.admin_token().await;
    server.stop();
    let line = refused(with(&a));
    assert!(line.contains("master key"), "{line}");
}
