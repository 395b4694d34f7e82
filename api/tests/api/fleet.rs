//! The fleet: clusters, node pools, servers; validation, delete rules, statement counts.

use std::sync::atomic::Ordering;

use entity::{
    clusters,
    enums::{ClusterStatus, NodePoolRole, ServerRole, ServerStatus, WorkflowStatus},
    node_pool_labels, node_pools, servers, workflow_runs,
};
use sea_orm::{ActiveModelBehavior, ActiveModelTrait, EntityTrait, PaginatorTrait, Set};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, error_code, spawn_app};

const CREATE_CLUSTER: &str = "mutation($input: CreateClusterInput!) { createCluster(input: $input) { cluster { id name status k3sVersion } } }";
const CREATE_POOL: &str = "mutation($input: CreateNodePoolInput!) { createNodePool(input: $input) { nodePool { id name labels { key value } taints { key value effect } } } }";
const REGISTER: &str = "mutation($input: ServerInput!) { registerServer(input: $input) { server { id hostname role status sshPort } } }";

async fn cluster(app: &TestApp, org: &str, name: &str) -> String {
    let data = app
        .gql_ok(
            CREATE_CLUSTER,
            json!({ "input": { "organizationId": org, "name": name } }),
        )
        .await;
    data["createCluster"]["cluster"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_cluster_with_pools_and_servers_reads_back_nested() {
    let app = spawn_app().await;
    let org = app.create_org("acme").await;
    let c = cluster(&app, &org, "prod-eu1").await;
    let pool = app
        .gql_ok(
            CREATE_POOL,
            json!({ "input": { "clusterId": c, "name": "workers", "role": "WORKER", "desiredSize": 3,
                "labels": [{ "key": "node.kubernetes.io/pool", "value": "workers" }],
                "taints": [{ "key": "dedicated", "value": "gpu", "effect": "NO_SCHEDULE" }] } }),
        )
        .await;
    let pool_id = pool["createNodePool"]["nodePool"]["id"].clone();
    assert_eq!(
        pool["createNodePool"]["nodePool"]["taints"][0]["effect"],
        "NO_SCHEDULE"
    );
    app.gql_ok(REGISTER, json!({ "input": { "organizationId": org, "hostname": "bastion.acme.test", "role": "BASTION", "publicIp": "203.0.113.7", "clusterId": c } })).await;
    let worker = app
        .gql_ok(REGISTER, json!({ "input": { "organizationId": org, "hostname": "w1.acme.test", "role": "WORKER", "privateIp": "10.0.0.11", "clusterId": c, "nodePoolId": pool_id } }))
        .await;
    assert_eq!(worker["registerServer"]["server"]["sshPort"], 22);
    assert_eq!(worker["registerServer"]["server"]["status"], "PENDING");

    let data = app
        .gql_ok(
            "query($id: ID!) { cluster(id: $id) { name status bastion { hostname } provisioningReadiness { ready missing }
                nodePools { name desiredSize labels { key } servers { hostname } } servers { hostname } } }",
            json!({ "id": c }),
        )
        .await;
    let cl = &data["cluster"];
    assert_eq!(cl["status"], "PENDING");
    assert_eq!(cl["bastion"]["hostname"], "bastion.acme.test");
    assert_eq!(cl["nodePools"][0]["servers"][0]["hostname"], "w1.acme.test");
    assert_eq!(cl["servers"].as_array().unwrap().len(), 2);
    assert_eq!(cl["provisioningReadiness"]["ready"], false);
    let missing: Vec<&str> = cl["provisioningReadiness"]["missing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    assert!(
        missing.contains(&"a control-plane node pool") && !missing.contains(&"a bastion server"),
        "{missing:?}"
    );

    let filtered = app
        .gql_ok("query($c: ID!) { servers(filter: {clusterId: $c, role: [WORKER]}) { totalCount edges { node { hostname } } } }", json!({ "c": c }))
        .await;
    assert_eq!(filtered["servers"]["totalCount"], 1);
}

#[tokio::test]
async fn fleet_input_is_validated_with_field_paths() {
    let app = spawn_app().await;
    let org = app.create_org("acme").await;
    let resp = app
        .gql(
            CREATE_CLUSTER,
            json!({ "input": { "organizationId": org, "name": "Bad Name" } }),
        )
        .await;
    assert_eq!(resp["errors"][0]["extensions"]["field"], "input.name");
    let resp = app
        .gql(
            CREATE_CLUSTER,
            json!({ "input": { "organizationId": org, "name": "c", "k3sVersion": "latest" } }),
        )
        .await;
    assert_eq!(resp["errors"][0]["extensions"]["field"], "input.k3sVersion");
    let c = cluster(&app, &org, "c1").await;
    let resp = app
        .gql(
            CREATE_CLUSTER,
            json!({ "input": { "organizationId": org, "name": "c1" } }),
        )
        .await;
    assert_eq!(error_code(&resp), "CONFLICT");

    let bad_label = json!({ "input": { "clusterId": c, "name": "p", "role": "WORKER", "labels": [{ "key": "ok", "value": "x" }, { "key": "-bad", "value": "x" }] } });
    let resp = app.gql(CREATE_POOL, bad_label).await;
    assert_eq!(error_code(&resp), "BAD_USER_INPUT");
    assert_eq!(
        resp["errors"][0]["extensions"]["field"],
        "input.labels.1.key"
    );
    let dup = json!({ "input": { "clusterId": c, "name": "p", "role": "WORKER", "labels": [{ "key": "a", "value": "1" }, { "key": "a", "value": "2" }] } });
    let resp = app.gql(CREATE_POOL, dup).await;
    assert_eq!(error_code(&resp), "CONFLICT");
    assert_eq!(
        node_pools::Entity::find()
            .count(&app.state.db)
            .await
            .unwrap(),
        0,
        "nothing half written"
    );
    let bad_effect = json!({ "input": { "clusterId": c, "name": "p", "role": "WORKER", "taints": [{ "key": "a", "effect": "NoSchedule" }] } });
    assert!(app.gql(CREATE_POOL, bad_effect).await["errors"].is_array());

    let resp = app.gql(REGISTER, json!({ "input": { "organizationId": org, "hostname": "b1", "role": "BASTION", "clusterId": c } })).await;
    assert_eq!(resp["errors"][0]["extensions"]["field"], "input.publicIp");
    let resp = app.gql(REGISTER, json!({ "input": { "organizationId": org, "hostname": "w1", "role": "WORKER", "privateIp": "10.0.0.300" } })).await;
    assert_eq!(resp["errors"][0]["extensions"]["field"], "input.privateIp");
    app.gql_ok(REGISTER, json!({ "input": { "organizationId": org, "hostname": "b1", "role": "BASTION", "publicIp": "203.0.113.1", "clusterId": c } })).await;
    let resp = app.gql(REGISTER, json!({ "input": { "organizationId": org, "hostname": "b2", "role": "BASTION", "publicIp": "203.0.113.2", "clusterId": c } })).await;
    assert_eq!(error_code(&resp), "CONFLICT", "one bastion per cluster");
}

#[tokio::test]
async fn deleting_a_cluster_removes_what_it_owns_unless_a_run_is_active() {
    let app = spawn_app().await;
    let org = app.create_org("acme").await;
    let c = cluster(&app, &org, "c1").await;
    let pool = app.gql_ok(CREATE_POOL, json!({ "input": { "clusterId": c, "name": "p", "role": "WORKER", "labels": [{ "key": "a", "value": "b" }] } })).await;
    let pool_id = pool["createNodePool"]["nodePool"]["id"].clone();
    app.gql_ok(REGISTER, json!({ "input": { "organizationId": org, "hostname": "w1", "role": "WORKER", "clusterId": c, "nodePoolId": pool_id } })).await;
    let db = &app.state.db;
    let cluster_id = clusters::Entity::find().one(db).await.unwrap().unwrap().id;

    let mut run = workflow_runs::ActiveModel::new();
    run.organization_id = Set(Some(
        clusters::Entity::find()
            .one(db)
            .await
            .unwrap()
            .unwrap()
            .organization_id,
    ));
    (run.cluster_id, run.kind, run.status, run.input, run.attempt) = (
        Set(Some(cluster_id)),
        Set("cluster_action".into()),
        Set(WorkflowStatus::Running),
        Set(json!({})),
        Set(1),
    );
    let run = run.insert(db).await.unwrap();
    let delete = "mutation($id: ID!) { deleteCluster(input: {id: $id}) { cluster { name } } }";
    assert_eq!(
        error_code(&app.gql(delete, json!({ "id": c })).await),
        "CONFLICT"
    );

    workflow_runs::Entity::delete_by_id(run.id)
        .exec(db)
        .await
        .unwrap();
    app.gql_ok(delete, json!({ "id": c })).await;
    assert_eq!(node_pools::Entity::find().count(db).await.unwrap(), 0);
    assert_eq!(node_pool_labels::Entity::find().count(db).await.unwrap(), 0);
    assert_eq!(servers::Entity::find().count(db).await.unwrap(), 0);
}

#[tokio::test]
async fn kubeconfig_is_sealed_revealed_to_admins_and_audited() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let org = app.create_org("acme").await;
    app.gql_ok(
        "mutation($o: ID!) { addMember(input: {organizationId: $o, username: \"alice\", role: MEMBER}) { membership { id } } }",
        json!({ "o": org }),
    )
    .await;
    let c = cluster(&app, &org, "c1").await;
    app.gql_ok("mutation($id: ID!) { setClusterKubeconfig(input: {id: $id, kubeconfig: \"apiVersion: v1\\nkind: Config\"}) { cluster { id } } }", json!({ "id": c }))
        .await;
    let stored = clusters::Entity::find()
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    let sealed = stored.kubeconfig_sealed.unwrap();
    assert!(
        !String::from_utf8_lossy(&sealed).contains("kind: Config"),
        "stored sealed"
    );

    let read = app
        .gql_ok(
            "query($id: ID!) { cluster(id: $id) { kubeconfig } }",
            json!({ "id": c }),
        )
        .await;
    assert_eq!(
        read["cluster"]["kubeconfig"],
        "apiVersion: v1\nkind: Config"
    );
    let denied = app
        .gql_as(
            Some(&alice),
            "query($id: ID!) { cluster(id: $id) { kubeconfig } }",
            json!({ "id": c }),
        )
        .await;
    assert_eq!(error_code(&denied), "FORBIDDEN");
    let log = app.gql_ok("query($o: ID!) { organization(id: $o) { auditLog(last: 5) { edges { node { action outcome actor } } } } }", json!({ "o": org })).await;
    let reveals: Vec<(&str, &str)> = log["organization"]["auditLog"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["node"]["action"] == "cluster.reveal_kubeconfig")
        .map(|e| {
            (
                e["node"]["outcome"].as_str().unwrap(),
                e["node"]["actor"].as_str().unwrap(),
            )
        })
        .collect();
    // The admin's read and the member's refused attempt, both on record.
    assert_eq!(
        reveals,
        [("SUCCESS", "admin"), ("DENIED", "alice")],
        "{log}"
    );
}

/// Seeds `clusters` clusters × 3 pools × 5 servers (2 labels per pool) straight into the
/// database.
async fn seed(app: &TestApp, org: Uuid, clusters_n: usize) {
    let db = &app.state.db;
    let (mut cs, mut ps, mut ss, mut ls) = (vec![], vec![], vec![], vec![]);
    for i in 0..clusters_n {
        let mut c = clusters::ActiveModel::new();
        let cid = *c.id.as_ref();
        (c.organization_id, c.name, c.status, c.k3s_version) = (
            Set(org),
            Set(format!("c{i:03}")),
            Set(ClusterStatus::Ready),
            Set("v1.31.4+k3s1".into()),
        );
        (
            c.region,
            c.domain_id,
            c.api_endpoint,
            c.kubeconfig_sealed,
            c.status_message,
        ) = (Set(None), Set(None), Set(None), Set(None), Set(None));
        cs.push(c);
        for p in 0..3 {
            let mut pool = node_pools::ActiveModel::new();
            let pid = *pool.id.as_ref();
            (
                pool.organization_id,
                pool.cluster_id,
                pool.name,
                pool.role,
                pool.desired_size,
            ) = (
                Set(org),
                Set(cid),
                Set(format!("p{p}")),
                Set(NodePoolRole::Worker),
                Set(5),
            );
            ps.push(pool);
            for k in 0..2 {
                let mut l = node_pool_labels::ActiveModel::new();
                (l.organization_id, l.node_pool_id, l.key, l.value) =
                    (Set(org), Set(pid), Set(format!("k{k}")), Set("v".into()));
                ls.push(l);
            }
            for s in 0..5 {
                let mut sv = servers::ActiveModel::new();
                (sv.organization_id, sv.cluster_id, sv.node_pool_id) =
                    (Set(org), Set(Some(cid)), Set(Some(pid)));
                (sv.hostname, sv.role, sv.status) = (
                    Set(format!("c{i}-p{p}-s{s}")),
                    Set(ServerRole::Worker),
                    Set(ServerStatus::Ready),
                );
                (sv.public_ip, sv.private_ip, sv.ssh_user, sv.ssh_port) = (
                    Set(None),
                    Set(Some(format!("10.{i}.{p}.{s}"))),
                    Set("root".into()),
                    Set(22),
                );
                (sv.ssh_key_id, sv.host_key, sv.status_message) = (Set(None), Set(None), Set(None));
                ss.push(sv);
            }
        }
    }
    clusters::Entity::insert_many(cs).exec(db).await.unwrap();
    node_pools::Entity::insert_many(ps).exec(db).await.unwrap();
    for chunk in ss.chunks(200) {
        servers::Entity::insert_many(chunk.to_vec())
            .exec(db)
            .await
            .unwrap();
    }
    node_pool_labels::Entity::insert_many(ls)
        .exec(db)
        .await
        .unwrap();
}

const NESTED: &str = "query($n: Int!) { clusters(first: $n) { totalCount edges { node { name
    nodePools { name labels { key value } servers { hostname privateIp status } } } } } }";

/// The fewest statements of three runs: the counter sees every statement on the app's
/// connection, and the app's own background work (scheduled clean-ups) may add one now and
/// then; the best run shows the query's shape.
async fn statements_for(app: &TestApp, n: usize) -> (u64, Value) {
    let mut best = (u64::MAX, Value::Null);
    for _ in 0..3 {
        let before = app.state.statements.load(Ordering::SeqCst);
        let data = app.gql_ok(NESTED, json!({ "n": n })).await;
        let used = app.state.statements.load(Ordering::SeqCst) - before;
        if used < best.0 {
            best = (used, data);
        }
    }
    best
}

#[tokio::test]
async fn nested_fleet_queries_run_a_fixed_number_of_statements() {
    // Batches close when no sibling adds a key, not after a delay: the count holds however
    // loaded the machine is (the tests run many apps at once).
    let app = crate::helpers::spawn_app().await;
    let org_gid = app.create_org("bench").await;
    let org = clusters_org(&app, &org_gid).await;
    seed(&app, org, 50).await;

    let (small, data) = statements_for(&app, 5).await;
    assert_eq!(data["clusters"]["edges"].as_array().unwrap().len(), 5);
    let (large, data) = statements_for(&app, 50).await;
    let edges = data["clusters"]["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 50);
    assert_eq!(
        edges[49]["node"]["nodePools"][2]["servers"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
    assert_eq!(
        edges[0]["node"]["nodePools"][0]["labels"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        small, large,
        "the statement count does not grow with the page"
    );
    assert!(
        large <= 8,
        "page + count + pools + labels + servers (+ auth): {large} statements"
    );
}

/// The database id behind an organization's global ID.
async fn clusters_org(app: &TestApp, gid: &str) -> Uuid {
    use base64::Engine;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(gid)
        .unwrap();
    let text = String::from_utf8(raw).unwrap();
    let org = Uuid::parse_str(text.split_once(':').unwrap().1).unwrap();
    assert!(
        entity::organizations::Entity::find_by_id(org)
            .one(&app.state.db)
            .await
            .unwrap()
            .is_some()
    );
    org
}
