//! SSH keys: generation and import read back with the ssh-key crate, uniqueness, the
//! admin-only audited reveal, deletion refused while a server uses the key, and other
//! organizations' keys reading as absent.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use entity::{
    enums::{ServerRole, ServerStatus},
    servers,
};
use sea_orm::{ActiveModelBehavior, ActiveModelTrait, EntityTrait, Set};
use serde_json::{Value, json};
use ssh_key::{HashAlg, PrivateKey, PublicKey};
use uuid::Uuid;

use crate::helpers::{TestApp, error_code, spawn_app};

const FIELDS: &str = "id name algorithm bits comment publicKey fingerprint serverCount createdAt";
const ED_KEY: &str = include_str!("../fixtures/ssh_keys/ed.key");
const ED_PUB: &str = include_str!("../fixtures/ssh_keys/ed.pub");
const ENCRYPTED_KEY: &str = include_str!("../fixtures/ssh_keys/enc.key");

fn generate_doc() -> String {
    format!(
        "mutation($input: GenerateSshKeyInput!) {{ generateSshKey(input: $input) {{ sshKey {{ {FIELDS} }} }} }}"
    )
}

fn import_doc() -> String {
    format!(
        "mutation($input: ImportSshKeyInput!) {{ importSshKey(input: $input) {{ sshKey {{ {FIELDS} }} }} }}"
    )
}

const REVEAL: &str =
    "mutation($id: ID!) { revealSshPrivateKey(input: {id: $id}) { privateKey sshKey { id } } }";
const DELETE: &str = "mutation($id: ID!) { deleteSshKey(input: {id: $id}) { sshKey { id name } } }";
const LIST: &str = "query($org: ID, $first: Int, $after: String) { sshKeys(organizationId: $org, first: $first, after: $after) {
    totalCount pageInfo { hasNextPage endCursor } edges { node { id name serverCount } } } }";
const NODE: &str =
    "query($id: ID!) { node(id: $id) { id ... on SshKey { name fingerprint serverCount } } }";
const ADD: &str = "mutation($org: ID!, $u: String!, $r: MemberRole!) {
    addMember(input: {organizationId: $org, username: $u, role: $r}) { membership { id } } }";
const AUDIT: &str = "query($id: ID!) { organization(id: $id) { auditLog(last: 50) { edges { node { action outcome actor } } } } }";

/// The database id inside a global ID.
pub fn uuid_of(global: &str) -> Uuid {
    let text = String::from_utf8(URL_SAFE_NO_PAD.decode(global).unwrap()).unwrap();
    text.split_once(':').unwrap().1.parse().unwrap()
}

async fn generate(app: &TestApp, token: &str, input: Value) -> Value {
    let data = app
        .gql_ok_as(token, &generate_doc(), json!({ "input": input }))
        .await;
    data["generateSshKey"]["sshKey"].clone()
}

/// The public key of `key` (a GraphQL `SshKey`) parses back and has its fingerprint.
fn assert_public_key_matches(key: &Value) {
    let public = PublicKey::from_openssh(key["publicKey"].as_str().unwrap()).unwrap();
    assert_eq!(
        public.fingerprint(HashAlg::Sha256).to_string(),
        key["fingerprint"]
    );
}

/// The organization's audit entries: the action alone when it succeeded, else the action,
/// its outcome and who tried.
async fn audit_actions(app: &TestApp, token: &str, org: &str) -> Vec<String> {
    let log = app.gql_ok_as(token, AUDIT, json!({ "id": org })).await;
    log["organization"]["auditLog"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let node = &e["node"];
            let action = node["action"].as_str().unwrap();
            match node["outcome"].as_str().unwrap() {
                "SUCCESS" => action.to_owned(),
                outcome => format!("{action} {outcome} {}", node["actor"].as_str().unwrap()),
            }
        })
        .collect()
}

#[tokio::test]
async fn generated_and_imported_keys_read_back() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let org = app.create_org_as(&alice, "alpha").await;

    let ed = generate(
        &app,
        &alice,
        json!({ "organizationId": org, "name": "deploy", "comment": "deploy@alpha" }),
    )
    .await;
    assert_eq!(ed["algorithm"], "ED25519");
    assert_eq!(ed["bits"], Value::Null);
    assert!(
        ed["publicKey"]
            .as_str()
            .unwrap()
            .starts_with("ssh-ed25519 AAAA")
    );
    assert!(ed["publicKey"].as_str().unwrap().ends_with(" deploy@alpha"));
    assert!(ed["fingerprint"].as_str().unwrap().starts_with("SHA256:"));
    assert_eq!(ed["serverCount"], 0);
    assert_public_key_matches(&ed);

    // RSA without a size is 4096 bits (the organization is picked as the only one).
    let rsa = generate(
        &app,
        &alice,
        json!({ "name": "legacy", "algorithm": "RSA" }),
    )
    .await;
    assert_eq!(rsa["bits"], 4096);
    assert!(
        rsa["publicKey"]
            .as_str()
            .unwrap()
            .starts_with("ssh-rsa AAAA")
    );
    assert_public_key_matches(&rsa);

    let imported = app
        .gql_ok_as(
            &alice,
            &import_doc(),
            json!({ "input": { "organizationId": org, "name": "laptop", "privateKey": ED_KEY } }),
        )
        .await;
    let imported = &imported["importSshKey"]["sshKey"];
    assert_eq!(imported["publicKey"], ED_PUB.trim());
    assert_eq!(imported["comment"], "from-ssh-keygen");
    assert_eq!(
        imported["fingerprint"],
        "SHA256:Z3pwnzv932nBm00nFC76RVCbrS/Rf+psDKqnwAI8yk0"
    );

    // The revealed key is the imported one.
    let revealed = app
        .gql_ok_as(&alice, REVEAL, json!({ "id": imported["id"] }))
        .await;
    let pem = revealed["revealSshPrivateKey"]["privateKey"]
        .as_str()
        .unwrap();
    let private = PrivateKey::from_openssh(pem).unwrap();
    assert_eq!(
        private.public_key().key_data(),
        PublicKey::from_openssh(ED_PUB.trim()).unwrap().key_data()
    );

    // Listed and fetched by ID, never with a private key.
    let page = app
        .gql_ok_as(&alice, LIST, json!({ "org": org, "first": 2 }))
        .await;
    assert_eq!(page["sshKeys"]["totalCount"], 3);
    assert_eq!(page["sshKeys"]["pageInfo"]["hasNextPage"], true);
    let names: Vec<&str> = page["sshKeys"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["deploy", "legacy"]);
    let rest = app
        .gql_ok_as(
            &alice,
            LIST,
            json!({ "org": org, "after": page["sshKeys"]["pageInfo"]["endCursor"] }),
        )
        .await;
    assert_eq!(rest["sshKeys"]["edges"][0]["node"]["name"], "laptop");
    let node = app.gql_ok_as(&alice, NODE, json!({ "id": ed["id"] })).await;
    assert_eq!(node["node"]["name"], "deploy");
    assert!(!page.to_string().contains("PRIVATE KEY"));
    assert!(!node.to_string().contains("PRIVATE KEY"));
}

#[tokio::test]
async fn names_and_fingerprints_are_unique_and_bad_keys_are_refused() {
    let app = spawn_app().await;
    let org = app.create_org("alpha").await;
    let import = |name: &str, key: &str| json!({ "input": { "organizationId": org, "name": name, "privateKey": key } });
    app.gql_ok(&import_doc(), import("laptop", ED_KEY)).await;

    let same_key = app.gql(&import_doc(), import("again", ED_KEY)).await;
    assert_eq!(error_code(&same_key), "CONFLICT");
    assert_eq!(
        same_key["errors"][0]["extensions"]["field"],
        "input.privateKey"
    );
    let same_name = app
        .gql(
            &generate_doc(),
            json!({ "input": { "organizationId": org, "name": "laptop" } }),
        )
        .await;
    assert_eq!(error_code(&same_name), "CONFLICT");
    assert_eq!(same_name["errors"][0]["extensions"]["field"], "input.name");

    for key in [
        ENCRYPTED_KEY,
        "-----BEGIN OPENSSH PRIVATE KEY-----\nnot really\n",
    ] {
        let resp = app.gql(&import_doc(), import("bad", key)).await;
        assert_eq!(error_code(&resp), "BAD_USER_INPUT");
        assert_eq!(resp["errors"][0]["extensions"]["field"], "input.privateKey");
        assert!(!resp.to_string().contains("not really"), "{resp}");
    }
    let encrypted = app.gql(&import_doc(), import("bad", ENCRYPTED_KEY)).await;
    assert!(
        encrypted["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("passphrase")
    );

    let bad_size = app
        .gql(
            &generate_doc(),
            json!({ "input": { "name": "x", "algorithm": "RSA", "bits": 1024 } }),
        )
        .await;
    assert_eq!(bad_size["errors"][0]["extensions"]["field"], "input.bits");
}

#[tokio::test]
async fn only_admins_change_or_reveal_keys_and_reveals_are_audited() {
    let app = spawn_app().await;
    let (alice, bob, carol) = (
        app.user("alice").await,
        app.user("bob").await,
        app.user("carol").await,
    );
    let org = app.create_org_as(&alice, "alpha").await;
    for (user, role) in [("bob", "MEMBER"), ("carol", "ADMIN")] {
        app.gql_ok_as(&alice, ADD, json!({ "org": org, "u": user, "r": role }))
            .await;
    }
    let key = generate(
        &app,
        &alice,
        json!({ "organizationId": org, "name": "deploy" }),
    )
    .await;

    // A member reads the public part and nothing more.
    let listed = app.gql_ok_as(&bob, LIST, json!({ "org": org })).await;
    assert_eq!(listed["sshKeys"]["totalCount"], 1);
    for (doc, vars) in [
        (REVEAL, json!({ "id": key["id"] })),
        (DELETE, json!({ "id": key["id"] })),
        (
            generate_doc().as_str(),
            json!({ "input": { "organizationId": org, "name": "mine" } }),
        ),
    ] {
        let resp = app.gql_as(Some(&bob), doc, vars).await;
        assert_eq!(error_code(&resp), "FORBIDDEN", "{doc}");
        assert!(!resp.to_string().contains("PRIVATE KEY"));
    }

    let revealed = app
        .gql_ok_as(&carol, REVEAL, json!({ "id": key["id"] }))
        .await;
    let pem = revealed["revealSshPrivateKey"]["privateKey"]
        .as_str()
        .unwrap();
    assert!(pem.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"));
    let actions = audit_actions(&app, &alice, &org).await;
    assert!(
        actions.contains(&"ssh_key.generate".to_owned()),
        "{actions:?}"
    );
    assert_eq!(
        actions.iter().filter(|a| *a == "ssh_key.reveal").count(),
        1,
        "{actions:?}"
    );
    // The member's refused attempt is on record too (and nothing else of theirs).
    assert_eq!(
        actions
            .iter()
            .filter(|a| a.starts_with("ssh_key.reveal DENIED"))
            .collect::<Vec<_>>(),
        ["ssh_key.reveal DENIED bob"],
        "{actions:?}"
    );
}

/// Inserts a server of `org` that logs in with `key` (both global IDs).
async fn server_using(app: &TestApp, org: &str, key: &str) -> Uuid {
    let mut server = servers::ActiveModel::new();
    server.organization_id = Set(uuid_of(org));
    server.hostname = Set("w1.alpha.test".into());
    server.role = Set(ServerRole::Worker);
    server.status = Set(ServerStatus::Pending);
    server.ssh_user = Set("root".into());
    server.ssh_port = Set(22);
    server.ssh_key_id = Set(Some(uuid_of(key)));
    server.insert(&app.state.db).await.unwrap().id
}

#[tokio::test]
async fn a_key_in_use_is_not_deleted() {
    let app = spawn_app().await;
    let org = app.create_org("alpha").await;
    let key = generate(
        &app,
        &app.token,
        json!({ "organizationId": org, "name": "deploy" }),
    )
    .await;
    let server = server_using(&app, &org, key["id"].as_str().unwrap()).await;

    let node = app.gql_ok(NODE, json!({ "id": key["id"] })).await;
    assert_eq!(node["node"]["serverCount"], 1);
    let listed = app.gql_ok(LIST, json!({ "org": org })).await;
    assert_eq!(listed["sshKeys"]["edges"][0]["node"]["serverCount"], 1);

    let refused = app.gql(DELETE, json!({ "id": key["id"] })).await;
    assert_eq!(error_code(&refused), "CONFLICT");
    assert_eq!(refused["errors"][0]["extensions"]["field"], "input.id");

    servers::Entity::delete_by_id(server)
        .exec(&app.state.db)
        .await
        .unwrap();
    let deleted = app.gql_ok(DELETE, json!({ "id": key["id"] })).await;
    assert_eq!(deleted["deleteSshKey"]["sshKey"]["name"], "deploy");
    let gone = app.gql_ok(NODE, json!({ "id": key["id"] })).await;
    assert_eq!(gone["node"], Value::Null);
    let actions = audit_actions(&app, &app.token, &org).await;
    assert!(
        actions.contains(&"ssh_key.delete".to_owned()),
        "{actions:?}"
    );
}

#[tokio::test]
async fn keys_of_other_organizations_do_not_exist() {
    let app = spawn_app().await;
    let (alice, bob) = (app.user("alice").await, app.user("bob").await);
    app.create_org_as(&alice, "alpha").await;
    let beta = app.create_org_as(&bob, "beta").await;
    let key = generate(
        &app,
        &bob,
        json!({ "organizationId": beta, "name": "deploy" }),
    )
    .await;

    for caller in [&alice, &app.token] {
        let node = app
            .gql_ok_as(caller, NODE, json!({ "id": key["id"] }))
            .await;
        assert_eq!(node["node"], Value::Null);
        for (doc, vars) in [
            (LIST, json!({ "org": beta })),
            (REVEAL, json!({ "id": key["id"] })),
            (DELETE, json!({ "id": key["id"] })),
            (
                generate_doc().as_str(),
                json!({ "input": { "organizationId": beta, "name": "x" } }),
            ),
            (
                import_doc().as_str(),
                json!({ "input": { "organizationId": beta, "name": "x", "privateKey": ED_KEY } }),
            ),
        ] {
            let resp = app.gql_as(Some(caller), doc, vars).await;
            assert_eq!(error_code(&resp), "NOT_FOUND", "{doc}: {resp}");
            assert!(!resp.to_string().contains("deploy"), "{resp}");
        }
    }
    let still = app.gql_ok_as(&bob, LIST, json!({ "org": beta })).await;
    assert_eq!(still["sshKeys"]["totalCount"], 1);
}
