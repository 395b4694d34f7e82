//! Tenancy: members see their organizations only, roles gate actions, the last owner stays.

use serde_json::{Value, json};

use crate::helpers::{error_code, spawn_app};

const ORG: &str = "query($id: ID!) { organization(id: $id) { name viewerRole members { id role user { username } } } node(id: $id) { id } }";
const ADD: &str = "mutation($org: ID!, $u: String!, $r: MemberRole!) {
    addMember(input: {organizationId: $org, username: $u, role: $r}) { membership { id role } } }";

#[tokio::test]
async fn members_see_only_their_organizations() {
    let app = spawn_app().await;
    let (alice, bob) = (app.user("alice").await, app.user("bob").await);
    let a = app.create_org_as(&alice, "alpha").await;
    let b = app.create_org_as(&bob, "beta").await;

    let mine = app
        .gql_ok_as(
            &alice,
            "{ organizations { totalCount edges { node { name viewerRole } } } }",
            json!({}),
        )
        .await;
    assert_eq!(mine["organizations"]["totalCount"], 1);
    assert_eq!(
        mine["organizations"]["edges"][0]["node"]["viewerRole"],
        "OWNER"
    );

    let theirs = app.gql_ok_as(&alice, ORG, json!({ "id": b })).await;
    assert_eq!(theirs, json!({ "organization": null, "node": null }));

    // Acting on another organization reads as not found, not forbidden.
    let resp = app
        .gql_as(
            Some(&alice),
            ADD,
            json!({ "org": b, "u": "alice", "r": "OWNER" }),
        )
        .await;
    assert_eq!(error_code(&resp), "NOT_FOUND");

    // X-Org-ID of an organization you are not in is refused before anything runs.
    let resp = app
        .http
        .post(app.url("/graphql"))
        .bearer_auth(&alice)
        .header("X-Org-ID", &b)
        .json(&json!({ "query": "{ me { username } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert!(a.len() > 10);
}

#[tokio::test]
async fn roles_gate_membership_changes_and_an_owner_remains() {
    let app = spawn_app().await;
    let (alice, bob) = (app.user("alice").await, app.user("bob").await);
    let org = app.create_org_as(&alice, "alpha").await;

    let added = app
        .gql_ok_as(
            &alice,
            ADD,
            json!({ "org": org, "u": "bob", "r": "VIEWER" }),
        )
        .await;
    let bob_membership = added["addMember"]["membership"]["id"].clone();
    let seen = app.gql_ok_as(&bob, ORG, json!({ "id": org })).await;
    assert_eq!(seen["organization"]["viewerRole"], "VIEWER");

    // A viewer cannot add members; an admin cannot make owners.
    let resp = app
        .gql_as(
            Some(&bob),
            ADD,
            json!({ "org": org, "u": "admin", "r": "VIEWER" }),
        )
        .await;
    assert_eq!(error_code(&resp), "FORBIDDEN");
    app.gql_ok_as(
        &alice,
        "mutation($id: ID!) { changeMemberRole(input: {id: $id, role: ADMIN}) { membership { role } } }",
        json!({ "id": bob_membership }),
    )
    .await;
    let resp = app
        .gql_as(
            Some(&bob),
            ADD,
            json!({ "org": org, "u": "admin", "r": "OWNER" }),
        )
        .await;
    assert_eq!(error_code(&resp), "FORBIDDEN");

    // The last owner can neither leave nor step down.
    let members = app.gql_ok_as(&alice, ORG, json!({ "id": org })).await;
    let owner: &Value = members["organization"]["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "OWNER")
        .unwrap();
    let resp = app
        .gql_as(
            Some(&alice),
            "mutation($id: ID!) { removeMember(input: {id: $id}) { membership { id } } }",
            json!({ "id": owner["id"] }),
        )
        .await;
    assert_eq!(error_code(&resp), "CONFLICT");
    let resp = app
        .gql_as(
            Some(&alice),
            "mutation($id: ID!) { changeMemberRole(input: {id: $id, role: MEMBER}) { membership { id } } }",
            json!({ "id": owner["id"] }),
        )
        .await;
    assert_eq!(error_code(&resp), "CONFLICT");

    // Removing bob takes his access at once.
    app.gql_ok_as(
        &alice,
        "mutation($id: ID!) { removeMember(input: {id: $id}) { membership { id } } }",
        json!({ "id": bob_membership }),
    )
    .await;
    let gone = app.gql_ok_as(&bob, ORG, json!({ "id": org })).await;
    assert_eq!(gone["organization"], Value::Null);
}

#[tokio::test]
async fn anonymous_callers_create_nothing_and_see_nothing() {
    let app = spawn_app().await;
    app.create_org("acme").await;
    let resp = app
        .gql_as(
            None,
            "mutation { createOrganization(input: {name: \"x\"}) { organization { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&resp), "UNAUTHENTICATED");
    let data = app
        .gql_as(None, "{ organizations { totalCount } }", json!({}))
        .await;
    assert_eq!(data["data"]["organizations"]["totalCount"], 0);
}

#[tokio::test]
async fn only_instance_admins_create_users_and_the_audit_log_records() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let resp = app
        .gql_as(
            Some(&alice),
            "mutation { createUser(input: {username: \"mallory\", password: \"correct horse battery\"}) { user { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&resp), "FORBIDDEN");

    let org = app.create_org_as(&alice, "alpha").await;
    app.gql_ok_as(
        &alice,
        ADD,
        json!({ "org": org, "u": "admin", "r": "MEMBER" }),
    )
    .await;
    let log = app
        .gql_ok_as(
            &alice,
            "query($id: ID!) { organization(id: $id) { auditLog { totalCount edges { node { action actor outcome } } } } }",
            json!({ "id": org }),
        )
        .await;
    let actions: Vec<&str> = log["organization"]["auditLog"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["organization.create", "member.add"]);
    assert_eq!(
        log["organization"]["auditLog"]["edges"][0]["node"]["actor"],
        "alice"
    );

    // A plain member may not read it; an instance admin gets no access by that flag alone.
    let admin_view = app
        .gql(
            "query($id: ID!) { organization(id: $id) { auditLog { totalCount } } }",
            json!({ "id": org }),
        )
        .await;
    assert_eq!(error_code(&admin_view), "FORBIDDEN");
}

#[tokio::test]
async fn deleting_an_organization_removes_everything_it_owns() {
    use entity::{audit_log, clusters, memberships, organization_data_keys};
    use sea_orm::{EntityTrait, PaginatorTrait};

    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let org = app.create_org_as(&alice, "doomed").await;
    app.gql_ok_as(
        &alice,
        ADD,
        json!({ "org": org, "u": "admin", "r": "ADMIN" }),
    )
    .await;
    app.gql_ok_as(&alice, "mutation($o: ID!) { createCluster(input: {organizationId: $o, name: \"c1\"}) { cluster { id } } }", json!({ "o": org }))
        .await;
    let delete =
        "mutation($id: ID!) { deleteOrganization(input: {id: $id}) { organization { name } } }";
    assert_eq!(
        error_code(&app.gql(delete, json!({ "id": org })).await),
        "FORBIDDEN",
        "admins may not"
    );
    let done = app.gql_ok_as(&alice, delete, json!({ "id": org })).await;
    assert_eq!(done["deleteOrganization"]["organization"]["name"], "doomed");

    let db = &app.state.db;
    assert_eq!(clusters::Entity::find().count(db).await.unwrap(), 0);
    assert_eq!(memberships::Entity::find().count(db).await.unwrap(), 0);
    assert_eq!(
        organization_data_keys::Entity::find()
            .count(db)
            .await
            .unwrap(),
        0
    );
    let kept = audit_log::Entity::find().all(db).await.unwrap();
    assert!(
        kept.iter()
            .any(|e| e.action == "organization.delete" && e.organization_id.is_none()),
        "the audit trail outlives it"
    );
}
