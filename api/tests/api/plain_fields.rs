//! Lists of servers, node pools and labels answer their plain fields without a resolver
//! each (`graphql::plain`): what they answer must be what the resolvers answer, with
//! aliases, fragments, `__typename` and the selection order kept.

use entity::servers;
use sea_orm::{ActiveModelTrait, EntityTrait, Set};
use serde_json::{Value, json};

use crate::helpers::spawn_app;

const SERVER_FIELDS: &str = "id hostname publicIp privateIp role status statusMessage sshUser \
    sshPort hostKey sshKeyId createdAt __typename cluster { name } nodePool { name } alias: hostname";
const CLUSTER_FIELDS: &str = "id name status statusMessage k3sVersion region apiEndpoint \
    createdAt updatedAt domainId __typename organization { name } metadata { key value }";
const POOL_FIELDS: &str =
    "id name role desiredSize __typename labels { key value __typename } cluster { name }";

#[tokio::test]
async fn plain_fields_answer_what_the_resolvers_answer() {
    let app = spawn_app().await;
    let org = app.create_org("acme").await;
    let cluster = app
        .create_cluster(
            &org,
            r#"name: "prod", region: "eu-1", metadata: [{key: "team", value: "core"}]"#,
        )
        .await;
    let pool = app
        .create_pool(
            &cluster,
            r#"name: "workers", role: WORKER, desiredSize: 2,
                labels: [{key: "tier", value: "web"}, {key: "example.com/zone", value: "a"}]"#,
        )
        .await;
    let key = app
        .gql_ok(
            "mutation($o: ID!) { generateSshKey(input: {organizationId: $o, name: \"ops\", algorithm: ED25519}) { sshKey { id } } }",
            json!({ "o": org }),
        )
        .await["generateSshKey"]["sshKey"]["id"]
        .clone();
    let server = app
        .gql_ok(
            "mutation($input: ServerInput!) { registerServer(input: $input) { server { id } } }",
            json!({ "input": { "organizationId": org, "hostname": "w1.acme.test", "role": "WORKER",
                "publicIp": "203.0.113.9", "privateIp": "10.0.0.9", "clusterId": cluster,
                "nodePoolId": pool, "sshUser": "ops", "sshPort": 2222, "sshKeyId": key } }),
        )
        .await["registerServer"]["server"]["id"]
        .clone();
    // The fields no mutation sets directly: set them in the database.
    let row = servers::Entity::find()
        .one(&app.state.db)
        .await
        .unwrap()
        .expect("the server");
    let mut row: servers::ActiveModel = row.into();
    row.host_key = Set(Some("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample".into()));
    row.status_message = Set(Some("waiting for SSH".into()));
    row.update(&app.state.db).await.unwrap();

    // Through the resolvers: `node(id)` returns the objects themselves.
    let by_node = app
        .gql_ok(
            &format!(
                "query($s: ID!, $p: ID!, $c: ID!) {{ s: node(id: $s) {{ ... on Server {{ {SERVER_FIELDS} }} }}
                    p: node(id: $p) {{ ... on NodePool {{ {POOL_FIELDS} }} }}
                    c: node(id: $c) {{ ... on Cluster {{ {CLUSTER_FIELDS} }} }} }}"
            ),
            json!({ "s": server, "p": pool, "c": cluster }),
        )
        .await;
    // Through the lists, with the fields spread over a named fragment, an inline fragment
    // on an interface, and a repeated relation whose selections merge.
    let query = format!(
        "query($c: ID!) {{ cluster(id: $c) {{ nodePools {{ ...P servers {{ ...S }} }} }} }}
         fragment P on NodePool {{ {POOL_FIELDS} }}
         fragment S on Server {{ {SERVER_FIELDS} ... on Node {{ id }} nodePool {{ id }} }}"
    );
    let raw = app
        .http
        .post(app.url("/graphql"))
        .bearer_auth(&app.token)
        .json(&json!({ "query": query, "variables": { "c": cluster } }))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let listed: Value = serde_json::from_str(&raw).unwrap();
    assert!(listed.get("errors").is_none(), "{listed:#}");
    let listed_pool = &listed["data"]["cluster"]["nodePools"][0];
    let listed_server = &listed_pool["servers"][0];

    let mut expected_server = by_node["s"].clone();
    expected_server["nodePool"]["id"] = pool.clone();
    assert_eq!(listed_server, &expected_server);
    assert_eq!(
        listed_server["hostKey"],
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample"
    );
    assert_eq!(listed_server["statusMessage"], "waiting for SSH");
    assert_eq!(listed_server["sshKeyId"], key);
    assert_eq!(listed_server["sshPort"], 2222);
    assert_eq!(listed_server["alias"], "w1.acme.test");
    assert_eq!(listed_server["__typename"], "Server");
    assert_eq!(listed_server["nodePool"]["name"], "workers");

    // A page of clusters: its nodes are plain too.
    let page = app
        .gql_ok(
            &format!("{{ clusters(first: 5) {{ edges {{ node {{ ...C }} }} }} }} fragment C on Cluster {{ {CLUSTER_FIELDS} }}"),
            json!({}),
        )
        .await;
    assert_eq!(page["clusters"]["edges"][0]["node"], by_node["c"]);
    assert_eq!(by_node["c"]["region"], "eu-1");
    assert_eq!(by_node["c"]["metadata"][0]["value"], "core");
    assert_eq!(by_node["c"]["organization"]["name"], "acme");

    let mut pool_only = listed_pool.clone();
    pool_only.as_object_mut().unwrap().remove("servers");
    assert_eq!(pool_only, by_node["p"]);
    assert_eq!(listed_pool["labels"].as_array().unwrap().len(), 2);
    assert_eq!(listed_pool["labels"][0]["__typename"], "KeyValue");

    // The response keeps the selection order, relations included.
    let server_text = &raw[raw.find("\"servers\":[").unwrap()..];
    let at = |key: &str| {
        server_text
            .find(&format!("\"{key}\":"))
            .unwrap_or_else(|| panic!("{key} in {server_text}"))
    };
    let order = [
        "publicIp",
        "statusMessage",
        "sshKeyId",
        "__typename",
        "cluster",
        "nodePool",
        "alias",
    ];
    for pair in order.windows(2) {
        assert!(at(pair[0]) < at(pair[1]), "{} before {}", pair[0], pair[1]);
    }
}
