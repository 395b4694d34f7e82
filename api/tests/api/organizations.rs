//! Organizations over GraphQL: create, read, node(id), pagination, errors.

use serde_json::{Value, json};

use crate::helpers::{error_code, spawn_app};

const CREATE: &str = "mutation($input: CreateOrganizationInput!) {
    createOrganization(input: $input) { organization { id name description createdAt viewerRole } } }";

#[tokio::test]
async fn create_then_read_by_id_and_by_node() {
    let app = spawn_app().await;
    let data = app
        .gql_ok(
            CREATE,
            json!({ "input": { "name": "  Acme  ", "description": "rockets" } }),
        )
        .await;
    let org = &data["createOrganization"]["organization"];
    assert_eq!(org["name"], "Acme", "names are trimmed");
    assert_eq!(org["description"], "rockets");
    assert_eq!(
        org["viewerRole"], "OWNER",
        "the creator is its owner at once"
    );
    let id = org["id"].as_str().unwrap();

    let data = app
        .gql_ok(
            "query($id: ID!) { organization(id: $id) { id name }
               node(id: $id) { __typename id ... on Organization { name } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(data["organization"]["name"], "Acme");
    assert_eq!(data["node"]["__typename"], "Organization");
    assert_eq!(data["node"]["id"], id);
    assert_eq!(data["node"]["name"], "Acme");
}

#[tokio::test]
async fn duplicate_names_conflict_and_write_nothing() {
    let app = spawn_app().await;
    app.create_org("acme").await;
    let resp = app
        .gql(CREATE, json!({ "input": { "name": "acme" } }))
        .await;
    assert_eq!(error_code(&resp), "CONFLICT");
    assert_eq!(resp["errors"][0]["extensions"]["field"], "input.name");
    assert_eq!(resp["data"], Value::Null);
    let data = app
        .gql_ok("{ organizations { totalCount } }", json!({}))
        .await;
    assert_eq!(data["organizations"]["totalCount"], 1);
}

#[tokio::test]
async fn invalid_input_is_rejected_with_its_field() {
    let app = spawn_app().await;
    for name in ["", "   ", &"x".repeat(101)] {
        let resp = app.gql(CREATE, json!({ "input": { "name": name } })).await;
        assert_eq!(error_code(&resp), "BAD_USER_INPUT", "{name:?}");
        assert_eq!(resp["errors"][0]["extensions"]["field"], "input.name");
    }
    let data = app
        .gql_ok("{ organizations { totalCount } }", json!({}))
        .await;
    assert_eq!(data["organizations"]["totalCount"], 0);
}

#[tokio::test]
async fn unknown_and_malformed_ids() {
    let app = spawn_app().await;
    let id = app.create_org("acme").await;
    // A well-formed ID of an organization that does not exist reads as null.
    let other = {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(format!("Organization:{}", uuid::Uuid::now_v7()))
    };
    let data = app
        .gql_ok(
            "query($id: ID!) { organization(id: $id) { id } node(id: $id) { id } }",
            json!({ "id": other }),
        )
        .await;
    assert_eq!(data, json!({ "organization": null, "node": null }));

    let resp = app
        .gql(r#"{ organization(id: "garbage") { id } }"#, json!({}))
        .await;
    assert_eq!(error_code(&resp), "BAD_USER_INPUT");
    assert_eq!(resp["errors"][0]["extensions"]["field"], "id");
    assert!(id.len() > 20);
}

const PAGE: &str = "query($first: Int, $last: Int, $after: String, $before: String) {
    organizations(first: $first, last: $last, after: $after, before: $before) {
        totalCount
        edges { cursor node { name } }
        pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }";

fn names(data: &Value) -> Vec<String> {
    data["organizations"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn organizations_page_forward_and_backward() {
    let app = spawn_app().await;
    for i in 1..=5 {
        app.create_org(&format!("org-{i}")).await;
    }
    let first = app.gql_ok(PAGE, json!({ "first": 2 })).await;
    assert_eq!(names(&first), ["org-1", "org-2"]);
    assert_eq!(first["organizations"]["totalCount"], 5);
    assert_eq!(first["organizations"]["pageInfo"]["hasNextPage"], true);
    assert_eq!(first["organizations"]["pageInfo"]["hasPreviousPage"], false);

    let cursor = first["organizations"]["pageInfo"]["endCursor"].clone();
    let second = app
        .gql_ok(PAGE, json!({ "first": 2, "after": cursor }))
        .await;
    assert_eq!(names(&second), ["org-3", "org-4"]);
    assert_eq!(second["organizations"]["pageInfo"]["hasPreviousPage"], true);

    let cursor = second["organizations"]["pageInfo"]["endCursor"].clone();
    let third = app
        .gql_ok(PAGE, json!({ "first": 2, "after": cursor }))
        .await;
    assert_eq!(names(&third), ["org-5"]);
    assert_eq!(third["organizations"]["pageInfo"]["hasNextPage"], false);

    let last = app.gql_ok(PAGE, json!({ "last": 2 })).await;
    assert_eq!(names(&last), ["org-4", "org-5"]);
    assert_eq!(last["organizations"]["pageInfo"]["hasPreviousPage"], true);
    let cursor = last["organizations"]["pageInfo"]["startCursor"].clone();
    let before = app
        .gql_ok(PAGE, json!({ "last": 2, "before": cursor }))
        .await;
    assert_eq!(names(&before), ["org-2", "org-3"]);
    assert_eq!(before["organizations"]["pageInfo"]["hasNextPage"], true);
}

#[tokio::test]
async fn page_arguments_are_checked() {
    let app = spawn_app().await;
    let cases = [
        (json!({ "first": -1 }), "first"),
        (json!({ "first": 101 }), "first"),
        (json!({ "first": 1, "last": 1 }), "last"),
        (json!({ "after": "not a cursor" }), "after"),
    ];
    for (vars, field) in cases {
        let resp = app.gql(PAGE, vars.clone()).await;
        assert_eq!(error_code(&resp), "BAD_USER_INPUT", "{vars}");
        assert_eq!(resp["errors"][0]["extensions"]["field"], field, "{vars}");
    }
}
