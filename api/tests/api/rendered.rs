//! Lists written as JSON text over HTTP (`graphql::rendered`) answer exactly what the
//! `Value` path answers: the same keys, values and order, fragments and aliases included,
//! and documents that repeat a key (whose results must merge) still merge.

use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};

const SERVER: &str = "id hostname publicIp privateIp role status statusMessage sshUser sshPort \
    hostKey sshKeyId createdAt __typename name: hostname";

/// A cluster with one pool of two labelled servers; returns the cluster's id.
async fn seed(app: &TestApp) -> Value {
    let org = app.create_org("acme").await;
    let cluster = app.create_cluster(&org, r#"name: "prod""#).await;
    let pool = app
        .create_pool(
            &cluster,
            r#"name: "workers", role: WORKER, desiredSize: 2,
                labels: [{key: "tier", value: "web"}, {key: "example.com/zone", value: "a"}]"#,
        )
        .await;
    for (host, public) in [
        ("w1.acme.test", Some("203.0.113.9")),
        ("w2.acme.test", None),
    ] {
        app.gql_ok(
            "mutation($input: ServerInput!) { registerServer(input: $input) { server { id } } }",
            json!({ "input": { "organizationId": org, "hostname": host, "role": "WORKER",
                "publicIp": public, "privateIp": "10.0.0.9", "clusterId": cluster,
                "nodePoolId": pool, "sshPort": 2222 } }),
        )
        .await;
    }
    cluster
}

/// The id of `cluster`'s organization.
async fn org_of(app: &TestApp, cluster: &Value) -> Value {
    app.gql_ok(
        "query($c: ID!) { cluster(id: $c) { organization { id } } }",
        json!({ "c": cluster }),
    )
    .await["cluster"]["organization"]["id"]
        .clone()
}

async fn text(app: &TestApp, query: &str, variables: Value) -> String {
    app.http
        .post(app.url("/graphql"))
        .bearer_auth(&app.token)
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The text of the JSON array under the first `"key":` in `text`.
fn array_at<'a>(text: &'a str, key: &str) -> &'a str {
    let start = text.find(&format!("\"{key}\":[")).unwrap() + key.len() + 3;
    let (mut depth, mut in_string, mut escaped) = (0, false, false);
    for (i, c) in text[start..].char_indices() {
        match (in_string, escaped, c) {
            (true, true, _) => escaped = false,
            (true, false, '\\') => escaped = true,
            (true, false, '"') => in_string = false,
            (false, _, '"') => in_string = true,
            (false, _, '[' | '{') => depth += 1,
            (false, _, ']' | '}') => {
                depth -= 1;
                if depth == 0 {
                    return &text[start..=start + i];
                }
            }
            _ => {}
        }
    }
    panic!("no array under {key} in {text}");
}

#[tokio::test]
async fn rendered_lists_answer_what_the_value_path_answers() {
    let app = spawn_app().await;
    let cluster = seed(&app).await;
    let body = format!(
        "cluster(id: $c) {{ servers {{ ...S }} nodePools {{ id labels {{ key ... on KeyValue {{ value key }} __typename }}
            servers {{ {SERVER} ... on Node {{ id }} ...S }} }} }} }}
         fragment S on Server {{ hostname id ... on Server {{ role }} }}"
    );
    // Rendered: no selection set repeats a key (a field again inside a list's own
    // selection, through fragments, merges as the same field).
    use autoglue::graphql::rendered::{nested_lists, rendered_lists};
    let (before, nested_before) = (rendered_lists(), nested_lists());
    let rendered = text(
        &app,
        &format!("query($c: ID!) {{ {body}"),
        json!({ "c": cluster }),
    )
    .await;
    // The cluster's servers and its pools, with the pools' servers and labels loaded for
    // the whole list of pools and written into it.
    assert!(rendered_lists() >= before + 2);
    assert!(nested_lists() >= nested_before + 2);
    // The same, through `Value`s: an object selected twice under one key makes the document
    // unrenderable.
    let values = text(
        &app,
        &format!("query($c: ID!) {{ t: me {{ id }} t: me {{ id }} {body}"),
        json!({ "c": cluster }),
    )
    .await;
    let (rendered_json, values_json): (Value, Value) = (
        serde_json::from_str(&rendered).unwrap(),
        serde_json::from_str(&values).unwrap(),
    );
    assert!(rendered_json.get("errors").is_none(), "{rendered_json:#}");
    assert_eq!(
        rendered_json["data"]["cluster"],
        values_json["data"]["cluster"]
    );
    // The same text, so the same key order too (inside the pools: async-graphql orders an
    // object it resolves itself, like the cluster, by which field finished first).
    assert_eq!(
        array_at(&rendered, "nodePools"),
        array_at(&values, "nodePools")
    );
    let pool = &rendered_json["data"]["cluster"]["nodePools"][0];
    assert_eq!(
        pool["labels"][0],
        json!({ "key": "tier", "value": "web", "__typename": "KeyValue" })
    );
    let server = &pool["servers"][0];
    assert_eq!(server["hostname"], "w1.acme.test");
    assert_eq!(server["name"], "w1.acme.test");
    assert_eq!(server["publicIp"], "203.0.113.9");
    assert_eq!(pool["servers"][1]["publicIp"], Value::Null);
    assert_eq!(server["sshPort"], 2222);
    assert_eq!(server["role"], "WORKER");
    assert_eq!(server["__typename"], "Server");
    assert!(server["id"].as_str().is_some_and(|id| !id.is_empty()));
    assert_eq!(
        rendered_json["data"]["cluster"]["servers"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // Every field once (`id` and `hostname` are selected again through fragments).
    assert_eq!(server.as_object().unwrap().len(), 14, "{server:#}");
}

#[tokio::test]
async fn repeated_lists_and_directives_keep_their_meaning() {
    let app = spawn_app().await;
    let cluster = seed(&app).await;
    // A list selected twice under one key: its two selections merge per item.
    let merged = app
        .gql_ok(
            "query($c: ID!) { cluster(id: $c) { servers { hostname } servers { sshPort } } }",
            json!({ "c": cluster }),
        )
        .await;
    assert_eq!(
        merged["cluster"]["servers"][1],
        json!({ "hostname": "w2.acme.test", "sshPort": 2222 })
    );
    // Skipped and included fragments and fields.
    let directed = app
        .gql_ok(
            "query($c: ID!, $no: Boolean!) { cluster(id: $c) { servers {
                hostname ... on Server @include(if: $no) { sshPort } role @skip(if: true) privateIp @include(if: true) } } }",
            json!({ "c": cluster, "no": false }),
        )
        .await;
    assert_eq!(
        directed["cluster"]["servers"][0],
        json!({ "hostname": "w1.acme.test", "privateIp": "10.0.0.9" })
    );
    // An empty list stays a list.
    let empty = app
        .gql_ok(
            "query($c: ID!) { cluster(id: $c) { nodePools { annotations { key } } } }",
            json!({ "c": cluster }),
        )
        .await;
    assert_eq!(empty["cluster"]["nodePools"][0]["annotations"], json!([]));
}

#[tokio::test]
async fn a_page_of_clusters_renders_its_relations_as_the_value_path_does() {
    use autoglue::graphql::rendered::{nested_lists, rendered_pages};
    let app = spawn_app().await;
    let cluster = seed(&app).await;
    let org = org_of(&app, &cluster).await;
    // A second cluster with metadata and no pool or server: its lists are empty.
    app.create_cluster(
        org.as_str().unwrap(),
        r#"name: "empty", metadata: [{key: "team", value: "core"}, {key: "cost", value: "low"}]"#,
    )
    .await;
    let page = "clusters(organizationId: $o, first: 10) { totalCount edges { cursor node {
        id name __typename ... on Cluster { status k3sVersion } metadata { key value }
        nodePools { id name role desiredSize labels { key value } annotations { key }
            servers { id hostname privateIp publicIp role status sshPort } }
        servers { hostname } } } }";
    let (before, pages_before) = (nested_lists(), rendered_pages());
    let rendered = text(
        &app,
        &format!("query($o: ID!) {{ {page} }}"),
        json!({ "o": org }),
    )
    .await;
    // Per page: the clusters' metadata, pools and servers; the pools' labels, annotations
    // and servers.
    assert!(nested_lists() >= before + 6, "{rendered}");
    // The page's clusters rendered together, by the first edge's node.
    assert!(rendered_pages() > pages_before);
    // The `Value` path: a document that repeats an object's key renders nothing.
    let values = text(
        &app,
        &format!("query($o: ID!) {{ t: me {{ id }} t: me {{ id }} {page} }}"),
        json!({ "o": org }),
    )
    .await;
    assert_eq!(array_at(&rendered, "edges"), array_at(&values, "edges"));
    let rendered: Value = serde_json::from_str(&rendered).unwrap();
    assert!(rendered.get("errors").is_none(), "{rendered:#}");
    let edges = rendered["data"]["clusters"]["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 2);
    let (prod, empty) = (&edges[0]["node"], &edges[1]["node"]);
    assert_eq!(prod["name"], "prod");
    assert_eq!(prod["nodePools"][0]["labels"].as_array().unwrap().len(), 2);
    assert_eq!(prod["nodePools"][0]["annotations"], json!([]));
    assert_eq!(
        prod["nodePools"][0]["servers"][1]["hostname"],
        "w2.acme.test"
    );
    assert_eq!(prod["servers"].as_array().unwrap().len(), 2);
    assert_eq!(prod["metadata"], json!([]));
    assert_eq!(empty["nodePools"], json!([]));
    assert_eq!(empty["servers"], json!([]));
    let metadata = empty["metadata"].as_array().unwrap();
    assert_eq!(metadata.len(), 2);
    assert!(metadata.contains(&json!({ "key": "team", "value": "core" })));

    // The page's nodes selected twice, differently (`nodes` and the edges' `node`): each
    // selection renders the page for itself.
    let both = app
        .gql_ok(
            "query($o: ID!) { clusters(organizationId: $o, first: 10) {
                nodes { name servers { hostname } } edges { node { id name } } } }",
            json!({ "o": org }),
        )
        .await;
    let nodes = both["clusters"]["nodes"].as_array().unwrap();
    let edges = both["clusters"]["edges"].as_array().unwrap();
    assert_eq!(nodes.len(), 2);
    assert_eq!(
        nodes[0],
        json!({ "name": "prod", "servers": [
        { "hostname": "w1.acme.test" }, { "hostname": "w2.acme.test" }] })
    );
    assert_eq!(nodes[1], json!({ "name": "empty", "servers": [] }));
    assert_eq!(edges[0]["node"].as_object().unwrap().len(), 2);
    assert_eq!(edges[1]["node"]["name"], "empty");

    // The same relation under both selections with other fields: its narrow reads for the
    // same parents may share a batch, and each selection still gets every child.
    let twice = app
        .gql_ok(
            "query($o: ID!) { clusters(organizationId: $o, first: 10) {
                nodes { servers { hostname } } edges { node { servers { status } } } } }",
            json!({ "o": org }),
        )
        .await;
    assert_eq!(
        twice["clusters"]["nodes"][0]["servers"],
        json!([{ "hostname": "w1.acme.test" }, { "hostname": "w2.acme.test" }])
    );
    let statuses = &twice["clusters"]["edges"][0]["node"]["servers"];
    assert_eq!(statuses.as_array().unwrap().len(), 2, "{twice}");
    assert!(statuses[0]["status"].is_string(), "{twice}");
}

/// Relation lists written as JSON text read only the columns their selected fields write
/// (`loaders::Narrow`): each field alone answers what the `Value` path (all columns) answers,
/// with every column of the rows set, so a field whose column was left out would show.
#[tokio::test]
async fn narrowed_reads_answer_every_field_as_the_value_path_does() {
    use autoglue::graphql::loaders::narrowed_reads;
    use entity::{servers, ssh_keys};
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};

    let app = spawn_app().await;
    let cluster = seed(&app).await;
    let org = org_of(&app, &cluster).await;
    app.gql_ok(
        "mutation($o: ID!) { generateSshKey(input: {organizationId: $o, name: \"ops\", algorithm: ED25519}) { sshKey { id } } }",
        json!({ "o": org }),
    )
    .await;
    app.gql_ok(
        "mutation($c: ID!) { updateCluster(input: {id: $c, metadata: [{key: \"team\", value: \"core\"}]}) { cluster { id } } }",
        json!({ "c": cluster }),
    )
    .await;
    let key = ssh_keys::Entity::find()
        .one(&app.state.db)
        .await
        .unwrap()
        .expect("the key");
    // The columns no mutation sets directly.
    servers::Entity::update_many()
        .col_expr(servers::Column::SshKeyId, Expr::value(key.id))
        .col_expr(
            servers::Column::HostKey,
            Expr::value("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample"),
        )
        .col_expr(
            servers::Column::StatusMessage,
            Expr::value("waiting for SSH"),
        )
        .filter(servers::Column::Hostname.ne(""))
        .exec(&app.state.db)
        .await
        .unwrap();

    let server_fields = [
        "id",
        "hostname",
        "publicIp",
        "privateIp",
        "role",
        "status",
        "statusMessage",
        "sshUser",
        "sshPort",
        "hostKey",
        "sshKeyId",
        "createdAt",
        "__typename",
    ];
    let mut selections: Vec<String> = server_fields
        .iter()
        .map(|f| format!("servers {{ {f} }} nodePools {{ servers {{ {f} }} }}"))
        .collect();
    for f in ["id", "name", "role", "desiredSize"] {
        selections.push(format!("nodePools {{ {f} labels {{ key }} }}"));
    }
    for f in ["key", "value"] {
        selections.push(format!(
            "metadata {{ {f} }} nodePools {{ labels {{ {f} }} annotations {{ {f} }} }}"
        ));
    }
    for selection in selections {
        let body = format!("cluster(id: $c) {{ {selection} }} }}");
        let before = narrowed_reads();
        let rendered = text(
            &app,
            &format!("query($c: ID!) {{ {body}"),
            json!({ "c": cluster }),
        )
        .await;
        assert!(narrowed_reads() > before, "not narrowed: {selection}");
        let values = text(
            &app,
            &format!("query($c: ID!) {{ t: me {{ id }} t: me {{ id }} {body}"),
            json!({ "c": cluster }),
        )
        .await;
        let (rendered, values): (Value, Value) = (
            serde_json::from_str(&rendered).unwrap(),
            serde_json::from_str(&values).unwrap(),
        );
        assert!(rendered.get("errors").is_none(), "{rendered:#}");
        assert_eq!(
            rendered["data"]["cluster"], values["data"]["cluster"],
            "{selection}"
        );
    }
    // A field that maps to no column reads them all: nothing narrowed, the same answer.
    let before = narrowed_reads();
    let page = text(
        &app,
        "query($c: ID!) { cluster(id: $c) { servers { hostname cluster { name } } } }",
        json!({ "c": cluster }),
    )
    .await;
    assert_eq!(narrowed_reads(), before);
    assert!(page.contains("\"w1.acme.test\""), "{page}");
}
