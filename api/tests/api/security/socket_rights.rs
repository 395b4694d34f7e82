//! A WebSocket keeps no rights of its own: every operation on it checks the credential again
//! and reads roles as they are now; a revoked or expired credential closes it with 4403.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{Socket, error_code, spawn_app, spawn_app_with};

const ADD_MEMBER: &str = "mutation($o: ID!, $u: String!, $r: MemberRole!) {
    addMember(input: {organizationId: $o, username: $u, role: $r}) { membership { id } } }";
const CREATE_ORG_KEY: &str = "mutation($o: ID!, $n: String!) {
    createOrganizationKey(input: {organizationId: $o, name: $n, role: MEMBER}) { secret } }";

#[tokio::test]
async fn a_removed_admins_next_mutation_on_an_open_socket_is_refused() {
    let app = spawn_app().await;
    let org = app.create_org("sockets").await;
    let bob = app.user("bob").await;
    app.user("mallory").await;
    let added = app
        .gql_ok(ADD_MEMBER, json!({ "o": org, "u": "bob", "r": "ADMIN" }))
        .await;
    let membership = added["addMember"]["membership"]["id"].clone();

    let mut socket = Socket::open_with_token(app.addr, &bob).await;
    let made = socket
        .run("1", CREATE_ORG_KEY, json!({ "o": org, "n": "before" }))
        .await;
    assert!(made["errors"].is_null(), "{made}");

    app.gql_ok(
        "mutation($id: ID!) { removeMember(input: {id: $id}) { membership { id } } }",
        json!({ "id": membership }),
    )
    .await;

    // Neither re-adding a friend nor minting a lasting key works any more.
    let again = socket
        .run(
            "2",
            ADD_MEMBER,
            json!({ "o": org, "u": "mallory", "r": "ADMIN" }),
        )
        .await;
    assert_eq!(error_code(&again), "NOT_FOUND", "{again}");
    let key = socket
        .run("3", CREATE_ORG_KEY, json!({ "o": org, "n": "after" }))
        .await;
    assert_eq!(error_code(&key), "NOT_FOUND", "{key}");
    let members = app
        .gql_ok(
            "query($o: ID!) { node(id: $o) { ... on Organization { members { user { username } } } } }",
            json!({ "o": org }),
        )
        .await;
    let names: Vec<_> = members["node"]["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["user"]["username"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["admin"], "{members}");
}

#[tokio::test]
async fn a_revoked_api_keys_next_operation_is_refused_and_its_socket_closed() {
    let app = spawn_app().await;
    let made = app
        .gql_ok(
            "mutation { createApiKey(input: {name: \"ws\"}) { apiKey { id } secret } }",
            json!({}),
        )
        .await;
    let secret = made["createApiKey"]["secret"].as_str().unwrap().to_owned();
    let mut socket = Socket::open_with_token(app.addr, &secret).await;
    let me = socket.run("1", "{ me { username } }", json!({})).await;
    assert_eq!(me["data"]["me"]["username"], "admin", "{me}");

    app.gql_ok(
        "mutation($id: ID!) { revokeApiKey(input: {id: $id}) { apiKey { id } } }",
        json!({ "id": made["createApiKey"]["apiKey"]["id"] }),
    )
    .await;
    let refused = socket.run("2", "{ me { username } }", json!({})).await;
    assert_eq!(error_code(&refused), "UNAUTHENTICATED", "{refused}");
    assert_eq!(
        socket.closed_within(Duration::from_secs(5)).await,
        Some(4403)
    );
}

#[tokio::test]
async fn a_revoked_organization_keys_next_operation_is_refused_and_its_socket_closed() {
    let app = spawn_app().await;
    let org = app.create_org("keyed").await;
    let made = app
        .gql_ok(
            "mutation($o: ID!) { createOrganizationKey(input: {organizationId: $o, name: \"ws\", role: ADMIN}) { organizationKey { id key } secret } }",
            json!({ "o": org }),
        )
        .await;
    let key = &made["createOrganizationKey"];
    let mut socket = Socket::open(
        app.addr,
        json!({ "X-Org-Key": key["organizationKey"]["key"], "X-Org-Secret": key["secret"] }),
    )
    .await;
    let seen = socket
        .run("1", "{ organizations(first: 5) { totalCount } }", json!({}))
        .await;
    assert_eq!(seen["data"]["organizations"]["totalCount"], 1, "{seen}");

    app.gql_ok(
        "mutation($id: ID!) { revokeOrganizationKey(input: {id: $id}) { organizationKey { id } } }",
        json!({ "id": key["organizationKey"]["id"] }),
    )
    .await;
    let refused = socket
        .run("2", "{ organizations(first: 5) { totalCount } }", json!({}))
        .await;
    assert_eq!(error_code(&refused), "UNAUTHENTICATED", "{refused}");
    assert_eq!(
        socket.closed_within(Duration::from_secs(5)).await,
        Some(4403)
    );
}

#[tokio::test]
async fn a_socket_opened_with_an_expiring_token_is_closed_at_its_expiry() {
    let app = spawn_app_with(|c| c.auth.access_token_ttl = Duration::from_secs(3)).await;
    let started = std::time::Instant::now();
    let token = app.login("admin", crate::helpers::PASSWORD).await;
    let mut socket = Socket::open_with_token(app.addr, &token).await;
    let me = socket.run("1", "{ me { username } }", json!({})).await;
    assert_eq!(me["data"]["me"]["username"], "admin", "{me}");
    assert_eq!(
        socket.closed_within(Duration::from_secs(10)).await,
        Some(4403)
    );
    let lived = started.elapsed();
    assert!(
        lived >= Duration::from_secs(2) && lived < Duration::from_secs(6),
        "closed after {lived:?}"
    );
}
