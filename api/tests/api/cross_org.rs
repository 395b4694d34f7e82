//! The cross-organization walk. Driven by introspection, so it covers every query field and
//! mutation that takes an ID as the schema grows, without listing them by hand: a member of
//! organization A (its owner, and separately the instance admin) calls each with every ID
//! of organization B, and nothing of B is returned or changed.

use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};

const TYPE_REF: &str = "kind name ofType { kind name ofType { kind name ofType { kind name } } }";

fn introspection() -> String {
    format!(
        "{{ __schema {{ queryType {{ name }} mutationType {{ name }} types {{ name kind
            fields {{ name args {{ name type {{ {TYPE_REF} }} }} type {{ {TYPE_REF} }} }}
            inputFields {{ name type {{ {TYPE_REF} }} }}
            enumValues {{ name }} }} }} }}"
    )
}

/// (named type, kind, non-null) of a type reference.
fn named(t: &Value) -> (String, String, bool) {
    let non_null = t["kind"] == "NON_NULL";
    let mut t = t;
    while t["name"].is_null() {
        t = &t["ofType"];
    }
    (
        t["name"].as_str().unwrap().to_owned(),
        t["kind"].as_str().unwrap().to_owned(),
        non_null,
    )
}

struct Schema {
    types: Vec<Value>,
}

impl Schema {
    fn get(&self, name: &str) -> &Value {
        self.types.iter().find(|t| t["name"] == name).unwrap()
    }

    /// A GraphQL literal for a value of `type_ref`, with `id` wherever an ID goes.
    fn literal(&self, type_ref: &Value, id: &str, depth: usize) -> Option<String> {
        let (name, kind, non_null) = named(type_ref);
        let is_list = {
            let mut t = type_ref;
            if t["kind"] == "NON_NULL" {
                t = &t["ofType"];
            }
            t["kind"] == "LIST"
        };
        let scalar = match (kind.as_str(), name.as_str()) {
            (_, "ID") => Some(format!("{id:?}")),
            (_, "String") => Some("\"alice\"".into()),
            (_, "Int") => Some("1".into()),
            (_, "Boolean") => Some("true".into()),
            (_, "DateTime") => Some("\"2099-01-01T00:00:00Z\"".into()),
            ("ENUM", _) => Some(
                self.get(&name)["enumValues"][0]["name"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            ),
            ("INPUT_OBJECT", _) if depth < 3 => {
                let fields: Vec<String> = self.get(&name)["inputFields"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(|f| {
                        Some(format!(
                            "{}: {}",
                            f["name"].as_str()?,
                            self.literal(&f["type"], id, depth + 1)?
                        ))
                    })
                    .collect();
                Some(format!("{{{}}}", fields.join(", ")))
            }
            _ => None,
        };
        match scalar {
            Some(v) if is_list => Some(format!("[{v}]")),
            Some(v) => Some(v),
            None if non_null => None,
            None => Some("null".into()),
        }
    }

    /// Whether values of `type_ref` contain an ID somewhere (arguments worth walking).
    fn takes_id(&self, type_ref: &Value, depth: usize) -> bool {
        let (name, kind, _) = named(type_ref);
        name == "ID"
            || (kind == "INPUT_OBJECT"
                && depth < 3
                && self.get(&name)["inputFields"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|f| self.takes_id(&f["type"], depth + 1)))
    }

    fn selection(&self, type_ref: &Value) -> &'static str {
        let (_, kind, _) = named(type_ref);
        if matches!(kind.as_str(), "OBJECT" | "INTERFACE" | "UNION") {
            "{ __typename }"
        } else {
            ""
        }
    }

    /// One document per (field, B id) for the root type `root`.
    fn calls(&self, root: &str, keyword: &str, ids: &[String]) -> Vec<String> {
        let mut docs = Vec::new();
        for field in self.get(root)["fields"].as_array().unwrap() {
            let args = field["args"].as_array().unwrap();
            if !args.iter().any(|a| self.takes_id(&a["type"], 0)) {
                continue;
            }
            for id in ids {
                let rendered: Option<Vec<String>> = args
                    .iter()
                    .map(|a| {
                        Some(format!(
                            "{}: {}",
                            a["name"].as_str()?,
                            self.literal(&a["type"], id, 0)?
                        ))
                    })
                    .collect();
                let Some(rendered) = rendered else { continue };
                docs.push(format!(
                    "{keyword} {{ {}({}) {} }}",
                    field["name"].as_str().unwrap(),
                    rendered.join(", "),
                    self.selection(&field["type"])
                ));
            }
        }
        docs
    }
}

const SNAPSHOT: &str = "query($id: ID!) { organization(id: $id) { name description
    members { id role user { username } } keys { id name role revokedAt }
    auditLog(last: 1) { totalCount } } me { apiKeys { id name revokedAt } } }";

/// Organization B with one of everything, and every ID of it that a caller might try.
async fn organization_b(app: &TestApp, bob: &str) -> (String, Vec<String>, Vec<String>) {
    let b = app.create_org_as(bob, "beta-hidden").await;
    let key = app
        .gql_ok_as(bob, "mutation($o: ID!) { createOrganizationKey(input: {organizationId: $o, name: \"beta-key\", role: ADMIN}) { secret organizationKey { id } } }", json!({ "o": b }))
        .await;
    let api = app
        .gql_ok_as(
            bob,
            "mutation { createApiKey(input: {name: \"beta-api\"}) { secret apiKey { id } } }",
            json!({}),
        )
        .await;
    let view = app
        .gql_ok_as(bob, "query($id: ID!) { me { id } organization(id: $id) { members { id } auditLog { edges { node { id } } } } }", json!({ "id": b }))
        .await;
    let mut ids = vec![
        b.clone(),
        key["createOrganizationKey"]["organizationKey"]["id"]
            .as_str()
            .unwrap()
            .to_owned(),
        api["createApiKey"]["apiKey"]["id"]
            .as_str()
            .unwrap()
            .to_owned(),
        view["me"]["id"].as_str().unwrap().to_owned(),
        view["organization"]["members"][0]["id"]
            .as_str()
            .unwrap()
            .to_owned(),
    ];
    let fleet = app
        .gql_ok_as(bob, "mutation($o: ID!) { createCluster(input: {organizationId: $o, name: \"beta-c\"}) { cluster { id } }
            generateSshKey(input: {organizationId: $o, name: \"beta-ssh\"}) { sshKey { id } }
            createCredential(input: {organizationId: $o, name: \"beta-cred\", kind: HETZNER_API_TOKEN, secret: {token: \"beta-token-123456\"}}) { credential { id } } }", json!({ "o": b }))
        .await;
    let cluster = fleet["createCluster"]["cluster"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let pool = app
        .gql_ok_as(bob, "mutation($c: ID!) { createNodePool(input: {clusterId: $c, name: \"beta-p\", role: WORKER}) { nodePool { id } } }", json!({ "c": cluster }))
        .await;
    let server = app
        .gql_ok_as(bob, "mutation($o: ID!, $c: ID!) { registerServer(input: {organizationId: $o, hostname: \"beta-host\", role: WORKER, clusterId: $c}) { server { id } } }", json!({ "o": b, "c": cluster }))
        .await;
    ids.extend([
        cluster,
        pool["createNodePool"]["nodePool"]["id"]
            .as_str()
            .unwrap()
            .to_owned(),
        server["registerServer"]["server"]["id"]
            .as_str()
            .unwrap()
            .to_owned(),
        fleet["generateSshKey"]["sshKey"]["id"]
            .as_str()
            .unwrap()
            .to_owned(),
        fleet["createCredential"]["credential"]["id"]
            .as_str()
            .unwrap()
            .to_owned(),
    ]);
    let dns = app
        .gql_ok_as(bob, "mutation($o: ID!, $c: ID!) { createDomain(input: {organizationId: $o, zoneName: \"beta.example\"}) { domain { id } }
            createLoadBalancer(input: {organizationId: $o, clusterId: $c, name: \"beta-lb\", kind: PUBLIC, purpose: APPS}) { loadBalancer { id } } }", json!({ "o": b, "c": ids[5] }))
        .await;
    let domain = dns["createDomain"]["domain"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let record = app
        .gql_ok_as(bob, "mutation($d: ID!) { createDnsRecord(input: {domainId: $d, name: \"www\", type: A, values: [\"192.0.2.1\"]}) { dnsRecord { id } } }", json!({ "d": domain }))
        .await;
    ids.extend([
        domain,
        record["createDnsRecord"]["dnsRecord"]["id"]
            .as_str()
            .unwrap()
            .to_owned(),
        dns["createLoadBalancer"]["loadBalancer"]["id"]
            .as_str()
            .unwrap()
            .to_owned(),
    ]);
    let run = app
        .gql_ok_as(bob, "mutation($o: ID!, $c: ID!) { startWorkflowRun(input: {organizationId: $o, clusterId: $c, kind: \"test.three_steps\", idempotencyKey: \"beta-run-key\"}) { workflowRun { id steps { id } } } }", json!({ "o": b, "c": ids[5] }))
        .await;
    let run = &run["startWorkflowRun"]["workflowRun"];
    ids.extend([
        run["id"].as_str().unwrap().to_owned(),
        run["steps"][0]["id"].as_str().unwrap().to_owned(),
    ]);
    ids.extend(
        view["organization"]["auditLog"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"]["id"].as_str().unwrap().to_owned()),
    );
    let secrets = vec![
        "beta-hidden".to_owned(),
        "beta-token-123456".to_owned(),
        "beta-host".to_owned(),
        "beta-run-key".to_owned(),
        key["createOrganizationKey"]["secret"]
            .as_str()
            .unwrap()
            .to_owned(),
        api["createApiKey"]["secret"].as_str().unwrap().to_owned(),
    ];
    (b, ids, secrets)
}

#[tokio::test]
async fn nothing_of_another_organization_is_read_or_changed() {
    let app = spawn_app().await;
    let (alice, bob) = (app.user("alice").await, app.user("bob").await);
    app.create_org_as(&alice, "alpha").await;
    let (b, ids, secrets) = organization_b(&app, &bob).await;
    let before = app.gql_ok_as(&bob, SNAPSHOT, json!({ "id": b })).await;

    let schema = Schema {
        types: app.gql_ok(&introspection(), json!({})).await["__schema"]["types"]
            .as_array()
            .unwrap()
            .clone(),
    };
    let mut calls = schema.calls("Query", "query", &ids);
    calls.extend(schema.calls("Mutation", "mutation", &ids));
    assert!(
        calls.len() >= 20,
        "the walk covers the schema: {} calls",
        calls.len()
    );

    // Users are instance-wide: an instance admin may read bob's account, nobody else may.
    let bob_id = ids[3].clone();
    for caller in [&alice, &app.token] {
        for doc in &calls {
            if *caller == app.token && doc.contains(&format!("{bob_id:?}")) {
                continue;
            }
            let resp = app.gql_as(Some(caller), doc, json!({})).await;
            let text = resp.to_string();
            for secret in &secrets {
                assert!(
                    !text.contains(secret.as_str()),
                    "{doc} leaked {secret}: {text}"
                );
            }
            if doc.starts_with("mutation") {
                assert!(resp.get("errors").is_some(), "{doc} succeeded: {text}");
            } else if let Some(data) = resp.get("data").filter(|d| !d.is_null()) {
                assert!(
                    data.as_object().unwrap().values().all(Value::is_null),
                    "{doc} returned {text}"
                );
            }
        }
    }
    let after = app.gql_ok_as(&bob, SNAPSHOT, json!({ "id": b })).await;
    assert_eq!(
        before["organization"]["members"],
        after["organization"]["members"]
    );
    assert_eq!(
        before["organization"]["keys"],
        after["organization"]["keys"]
    );
    assert_eq!(before["me"], after["me"]);
    assert_eq!(
        before["organization"]["name"],
        after["organization"]["name"]
    );
}
