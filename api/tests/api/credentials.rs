//! Credentials: every kind's secret validated field by field, secrets absent from every
//! response but the admin-only audited reveal, rotation through update, deletion refused
//! while a domain uses the credential, and other organizations' credentials reading as absent.

use entity::{domains, enums::DomainStatus};
use sea_orm::{ActiveModelBehavior, ActiveModelTrait, EntityTrait, Set};
use serde_json::{Value, json};

use crate::{
    helpers::{TestApp, error_code, spawn_app},
    ssh_keys::uuid_of,
};

const FIELDS: &str =
    "id name kind provider scope scopeValue region description secretFields createdAt updatedAt";
const AWS_SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const ROTATED_SECRET: &str = "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY";
const TOKEN: &str = "cf-token-0123456789abcdefghij";
const PASSWORD: &str = "pa55 word with spaces!";
const CLIENT_SECRET: &str = "oauth-client-secret-value";

fn create_doc() -> String {
    format!(
        "mutation($input: CreateCredentialInput!) {{ createCredential(input: $input) {{ credential {{ {FIELDS} }} }} }}"
    )
}

fn update_doc() -> String {
    format!(
        "mutation($input: UpdateCredentialInput!) {{ updateCredential(input: $input) {{ credential {{ {FIELDS} }} }} }}"
    )
}

const REVEAL: &str =
    "mutation($id: ID!) { revealCredential(input: {id: $id}) { secret credential { name } } }";
const DELETE: &str =
    "mutation($id: ID!) { deleteCredential(input: {id: $id}) { credential { id name } } }";
const LIST: &str =
    "query($org: ID, $kind: CredentialKind) { credentials(organizationId: $org, kind: $kind) {
    totalCount edges { node { id name kind provider secretFields } } } }";
const NODE: &str =
    "query($id: ID!) { node(id: $id) { id ... on Credential { name secretFields } } }";
const ADD: &str = "mutation($org: ID!, $u: String!, $r: MemberRole!) {
    addMember(input: {organizationId: $org, username: $u, role: $r}) { membership { id } } }";
const AUDIT: &str = "query($id: ID!) { organization(id: $id) { auditLog(last: 50) { edges { node { action outcome actor } } } } }";

fn aws_key() -> Value {
    json!({ "accessKeyId": "AKIAIOSFODNN7EXAMPLE", "secretAccessKey": AWS_SECRET })
}

/// Every secret value the tests write; none may appear outside a reveal.
const SECRETS: [&str; 5] = [AWS_SECRET, ROTATED_SECRET, TOKEN, PASSWORD, CLIENT_SECRET];

fn assert_no_secret(resp: &Value) {
    let text = resp.to_string();
    for secret in SECRETS {
        assert!(!text.contains(secret), "leaked {secret}: {text}");
    }
}

async fn create(app: &TestApp, token: &str, input: Value) -> Value {
    let resp = app
        .gql_as(Some(token), &create_doc(), json!({ "input": input }))
        .await;
    assert_no_secret(&resp);
    assert!(resp.get("errors").is_none(), "{resp:#}");
    resp["data"]["createCredential"]["credential"].clone()
}

/// `(code, field)` of a failed call, after checking it echoed no secret.
async fn refused(app: &TestApp, token: &str, doc: &str, input: Value) -> (String, Value) {
    let resp = app
        .gql_as(Some(token), doc, json!({ "input": input }))
        .await;
    assert_no_secret(&resp);
    (
        error_code(&resp).to_owned(),
        resp["errors"][0]["extensions"]["field"].clone(),
    )
}

#[tokio::test]
async fn every_kind_is_validated_and_stored_without_showing_its_secret() {
    let app = spawn_app().await;
    let org = app.create_org("alpha").await;
    let admin = app.token.clone();

    let kinds = [
        (
            "aws",
            "AWS_ACCESS_KEY",
            aws_key(),
            "AWS",
            vec!["accessKeyId", "secretAccessKey"],
        ),
        (
            "cf",
            "CLOUDFLARE_API_TOKEN",
            json!({ "token": TOKEN }),
            "CLOUDFLARE",
            vec!["token"],
        ),
        (
            "hz",
            "HETZNER_API_TOKEN",
            json!({ "token": TOKEN }),
            "HETZNER",
            vec!["token"],
        ),
        (
            "do",
            "DIGITALOCEAN_API_TOKEN",
            json!({ "token": TOKEN }),
            "DIGITALOCEAN",
            vec!["token"],
        ),
        (
            "basic",
            "BASIC_AUTH",
            json!({ "username": "ops", "password": PASSWORD }),
            "GENERIC",
            vec!["username", "password"],
        ),
        (
            "oauth",
            "OAUTH2_CLIENT",
            json!({ "clientId": "autoglue", "clientSecret": CLIENT_SECRET,
                "tokenUrl": "https://auth.example.com/token", "scopes": ["dns"] }),
            "GENERIC",
            vec!["clientId", "clientSecret", "tokenUrl", "scopes"],
        ),
    ];
    for (name, kind, secret, provider, fields) in kinds {
        let input = json!({ "organizationId": org, "name": name, "kind": kind, "secret": secret });
        let credential = create(&app, &admin, input).await;
        assert_eq!(credential["provider"], provider, "{kind}");
        assert_eq!(credential["scope"], "ACCOUNT");
        assert_eq!(credential["secretFields"], json!(fields), "{kind}");
    }
    let all = app.gql_ok(LIST, json!({ "org": org })).await;
    assert_eq!(all["credentials"]["totalCount"], 6);
    assert_no_secret(&all);
    let tokens = app
        .gql_ok(LIST, json!({ "org": org, "kind": "HETZNER_API_TOKEN" }))
        .await;
    assert_eq!(tokens["credentials"]["totalCount"], 1);
    assert_eq!(tokens["credentials"]["edges"][0]["node"]["name"], "hz");

    // Scopes: AWS keys may be limited to a service or a resource, nothing else may.
    let route53 = create(
        &app,
        &admin,
        json!({ "organizationId": org, "name": "dns", "kind": "AWS_ACCESS_KEY", "scope": "SERVICE",
            "scopeValue": "route53", "region": "eu-west-1", "secret": aws_key() }),
    )
    .await;
    assert_eq!(route53["scopeValue"], "route53");
    assert_eq!(route53["region"], "eu-west-1");
    let bucket = create(
        &app,
        &admin,
        json!({ "organizationId": org, "name": "backups", "kind": "AWS_ACCESS_KEY", "scope": "RESOURCE",
            "scopeValue": "arn:aws:s3:::alpha-backups", "secret": aws_key() }),
    )
    .await;
    assert_eq!(bucket["scope"], "RESOURCE");

    let bad = |name: &str, kind: &str, extra: Value, secret: Value| {
        let mut input =
            json!({ "organizationId": org, "name": name, "kind": kind, "secret": secret });
        input
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        input
    };
    let cases = [
        (
            bad(
                "x",
                "AWS_ACCESS_KEY",
                json!({}),
                json!({ "accessKeyId": "AKIAIOSFODNN7EXAMPLE", "secretAccessKey": PASSWORD }),
            ),
            "input.secret.secretAccessKey",
        ),
        (
            bad(
                "x",
                "AWS_ACCESS_KEY",
                json!({}),
                json!({ "accessKeyId": AWS_SECRET, "secretAccessKey": AWS_SECRET }),
            ),
            "input.secret.accessKeyId",
        ),
        (
            bad(
                "x",
                "AWS_ACCESS_KEY",
                json!({}),
                json!({ "accessKeyId": "AKIAIOSFODNN7EXAMPLE", "secretAccessKey": AWS_SECRET, "token": TOKEN }),
            ),
            "input.secret.token",
        ),
        (
            bad(
                "x",
                "CLOUDFLARE_API_TOKEN",
                json!({}),
                json!({ "token": PASSWORD }),
            ),
            "input.secret.token",
        ),
        (
            bad("x", "CLOUDFLARE_API_TOKEN", json!({}), json!(TOKEN)),
            "input.secret",
        ),
        (
            bad(
                "x",
                "BASIC_AUTH",
                json!({}),
                json!({ "password": PASSWORD }),
            ),
            "input.secret.username",
        ),
        (
            bad(
                "x",
                "OAUTH2_CLIENT",
                json!({}),
                json!({ "clientId": "c", "clientSecret": CLIENT_SECRET, "tokenUrl": "http://auth.example.com/token" }),
            ),
            "input.secret.tokenUrl",
        ),
        (
            bad(
                "x",
                "CLOUDFLARE_API_TOKEN",
                json!({ "scope": "SERVICE", "scopeValue": "dns" }),
                json!({ "token": TOKEN }),
            ),
            "input.scope",
        ),
        (
            bad(
                "x",
                "AWS_ACCESS_KEY",
                json!({ "scope": "RESOURCE", "scopeValue": "bucket" }),
                aws_key(),
            ),
            "input.scopeValue",
        ),
        (
            bad(
                "x",
                "AWS_ACCESS_KEY",
                json!({ "scope": "SERVICE", "scopeValue": "mainframe" }),
                aws_key(),
            ),
            "input.scopeValue",
        ),
        (
            bad(
                "x",
                "AWS_ACCESS_KEY",
                json!({ "region": "moon-base" }),
                aws_key(),
            ),
            "input.region",
        ),
    ];
    for (input, field) in cases {
        let (code, got) = refused(&app, &admin, &create_doc(), input.clone()).await;
        assert_eq!(code, "BAD_USER_INPUT", "{input}");
        assert_eq!(got, field, "{input}");
    }
    let (code, field) = refused(
        &app,
        &admin,
        &create_doc(),
        bad(
            "aws",
            "CLOUDFLARE_API_TOKEN",
            json!({}),
            json!({ "token": TOKEN }),
        ),
    )
    .await;
    assert_eq!((code.as_str(), &field), ("CONFLICT", &json!("input.name")));
}

#[tokio::test]
async fn only_admins_reveal_or_change_and_updates_rotate() {
    let app = spawn_app().await;
    let (alice, bob) = (app.user("alice").await, app.user("bob").await);
    let org = app.create_org_as(&alice, "alpha").await;
    app.gql_ok_as(
        &alice,
        ADD,
        json!({ "org": org, "u": "bob", "r": "MEMBER" }),
    )
    .await;
    let aws = create(
        &app,
        &alice,
        json!({ "name": "aws", "kind": "AWS_ACCESS_KEY", "description": "prod", "secret": aws_key() }),
    )
    .await;
    create(
        &app,
        &alice,
        json!({ "name": "cf", "kind": "CLOUDFLARE_API_TOKEN", "secret": { "token": TOKEN } }),
    )
    .await;

    // A member sees the metadata and nothing more.
    let seen = app.gql_ok_as(&bob, LIST, json!({ "org": org })).await;
    assert_eq!(seen["credentials"]["totalCount"], 2);
    assert_no_secret(&seen);
    for (doc, input) in [
        (REVEAL, json!({ "id": aws["id"] })),
        (DELETE, json!({ "id": aws["id"] })),
        (
            update_doc().as_str(),
            json!({ "input": { "id": aws["id"], "name": "mine" } }),
        ),
        (
            create_doc().as_str(),
            json!({ "input": { "name": "mine", "kind": "HETZNER_API_TOKEN", "secret": { "token": TOKEN } } }),
        ),
    ] {
        let resp = app.gql_as(Some(&bob), doc, input).await;
        assert_eq!(error_code(&resp), "FORBIDDEN", "{doc}");
        assert_no_secret(&resp);
    }

    let revealed = app
        .gql_ok_as(&alice, REVEAL, json!({ "id": aws["id"] }))
        .await;
    assert_eq!(revealed["revealCredential"]["secret"], aws_key());

    // A bad rotation changes nothing; a good one replaces the whole secret.
    let bad = json!({ "id": aws["id"], "secret": { "accessKeyId": "AKIAIOSFODNN7EXAMPLE", "secretAccessKey": "short" } });
    let (code, field) = refused(&app, &alice, &update_doc(), bad).await;
    assert_eq!(
        (code.as_str(), &field),
        ("BAD_USER_INPUT", &json!("input.secret.secretAccessKey"))
    );
    let rotated = json!({ "accessKeyId": "AKIAI44QH8DHBEXAMPLE", "secretAccessKey": ROTATED_SECRET, "region": "us-east-1" });
    let resp = app
        .gql_as(
            Some(&alice),
            &update_doc(),
            json!({ "input": { "id": aws["id"], "name": "aws-prod", "description": null, "secret": rotated } }),
        )
        .await;
    assert_no_secret(&resp);
    let updated = &resp["data"]["updateCredential"]["credential"];
    assert_eq!(updated["name"], "aws-prod");
    assert_eq!(updated["description"], Value::Null);
    assert_eq!(updated["kind"], "AWS_ACCESS_KEY");
    assert_eq!(
        updated["secretFields"],
        json!(["accessKeyId", "secretAccessKey", "region"])
    );
    let revealed = app
        .gql_ok_as(&alice, REVEAL, json!({ "id": aws["id"] }))
        .await;
    assert_eq!(revealed["revealCredential"]["secret"], rotated);

    let (code, field) = refused(
        &app,
        &alice,
        &update_doc(),
        json!({ "id": aws["id"], "name": "cf" }),
    )
    .await;
    assert_eq!((code.as_str(), &field), ("CONFLICT", &json!("input.name")));

    let log = app.gql_ok_as(&alice, AUDIT, json!({ "id": org })).await;
    let entries = log["organization"]["auditLog"]["edges"].as_array().unwrap();
    let actions: Vec<&str> = entries
        .iter()
        .filter(|e| e["node"]["outcome"] == "SUCCESS")
        .map(|e| e["node"]["action"].as_str().unwrap())
        .collect();
    // The member's refused reveal is on record, with who tried.
    let denied: Vec<(&str, &str)> = entries
        .iter()
        .filter(|e| e["node"]["outcome"] == "DENIED")
        .map(|e| {
            let node = &e["node"];
            (
                node["action"].as_str().unwrap(),
                node["actor"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(denied, [("credential.reveal", "bob")]);
    assert_eq!(
        actions
            .iter()
            .filter(|a| **a == "credential.reveal")
            .count(),
        2,
        "{actions:?}"
    );
    assert!(actions.contains(&"credential.update"), "{actions:?}");
    assert_no_secret(&log);
}

#[tokio::test]
async fn a_credential_in_use_is_not_deleted() {
    let app = spawn_app().await;
    let org = app.create_org("alpha").await;
    let cf = create(
        &app,
        &app.token,
        json!({ "name": "cf", "kind": "CLOUDFLARE_API_TOKEN", "secret": { "token": TOKEN } }),
    )
    .await;
    let mut domain = domains::ActiveModel::new();
    domain.organization_id = Set(uuid_of(&org));
    domain.zone_name = Set("alpha.example".into());
    domain.credential_id = Set(Some(uuid_of(cf["id"].as_str().unwrap())));
    domain.status = Set(DomainStatus::Pending);
    let domain = domain.insert(&app.state.db).await.unwrap();

    let refused = app.gql(DELETE, json!({ "id": cf["id"] })).await;
    assert_eq!(error_code(&refused), "CONFLICT");
    domains::Entity::delete_by_id(domain.id)
        .exec(&app.state.db)
        .await
        .unwrap();
    let deleted = app.gql_ok(DELETE, json!({ "id": cf["id"] })).await;
    assert_eq!(deleted["deleteCredential"]["credential"]["name"], "cf");
    let gone = app.gql_ok(NODE, json!({ "id": cf["id"] })).await;
    assert_eq!(gone["node"], Value::Null);
}

#[tokio::test]
async fn credentials_of_other_organizations_do_not_exist() {
    let app = spawn_app().await;
    let (alice, bob) = (app.user("alice").await, app.user("bob").await);
    app.create_org_as(&alice, "alpha").await;
    let beta = app.create_org_as(&bob, "beta").await;
    let cf = create(
        &app,
        &bob,
        json!({ "name": "beta-cf", "kind": "CLOUDFLARE_API_TOKEN", "secret": { "token": TOKEN } }),
    )
    .await;
    let mine = app.gql_ok_as(&bob, NODE, json!({ "id": cf["id"] })).await;
    assert_eq!(mine["node"]["secretFields"], json!(["token"]));

    for caller in [&alice, &app.token] {
        let node = app.gql_ok_as(caller, NODE, json!({ "id": cf["id"] })).await;
        assert_eq!(node["node"], Value::Null);
        for (doc, vars) in [
            (LIST, json!({ "org": beta })),
            (REVEAL, json!({ "id": cf["id"] })),
            (DELETE, json!({ "id": cf["id"] })),
            (
                update_doc().as_str(),
                json!({ "input": { "id": cf["id"], "secret": { "token": TOKEN } } }),
            ),
            (
                create_doc().as_str(),
                json!({ "input": { "organizationId": beta, "name": "x", "kind": "HETZNER_API_TOKEN", "secret": { "token": TOKEN } } }),
            ),
        ] {
            let resp = app.gql_as(Some(caller), doc, vars).await;
            assert_eq!(error_code(&resp), "NOT_FOUND", "{doc}: {resp}");
            assert!(!resp.to_string().contains("beta-cf"), "{resp}");
            assert_no_secret(&resp);
        }
    }
    let revealed = app.gql_ok_as(&bob, REVEAL, json!({ "id": cf["id"] })).await;
    assert_eq!(revealed["revealCredential"]["secret"]["token"], TOKEN);
}
