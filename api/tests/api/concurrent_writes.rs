//! Many writers at once, while workers take runs off the queue: every write transaction
//! succeeds. On SQLite a transaction that reads and then writes fails at once with
//! SQLITE_BUSY when another connection wrote in between, whatever the busy timeout, unless it
//! took the write lock when it began (`entity::WriteTxn`).

use futures_util::future::join_all;
use serde_json::json;

use crate::helpers::spawn_app;

const CREATE_CLUSTER: &str =
    "mutation($input: CreateClusterInput!) { createCluster(input: $input) { cluster { id } } }";
const CREATE_POOL: &str =
    "mutation($input: CreateNodePoolInput!) { createNodePool(input: $input) { nodePool { id } } }";
const START: &str = "mutation($input: StartWorkflowRunInput!) { startWorkflowRun(input: $input) { workflowRun { id } } }";

#[tokio::test]
async fn concurrent_read_then_write_transactions_all_commit_while_workers_poll() {
    let app = spawn_app().await;
    let org = app.create_org("acme").await;
    let cluster = app
        .gql_ok(
            CREATE_CLUSTER,
            json!({ "input": { "organizationId": org, "name": "busy" } }),
        )
        .await["createCluster"]["cluster"]["id"]
        .clone();

    const POOLS: usize = 40;
    const RUNS: usize = 10;
    let pools = (0..POOLS).map(|i| {
        app.gql(
            CREATE_POOL,
            json!({ "input": { "clusterId": cluster, "name": format!("pool-{i}"), "role": "WORKER", "desiredSize": 1 } }),
        )
    });
    let runs = (0..RUNS).map(|_| {
        app.gql(
            START,
            json!({ "input": { "organizationId": org, "kind": "test.sleep", "input": { "ms": 1 } } }),
        )
    });
    let (pools, runs) = tokio::join!(join_all(pools), join_all(runs));
    for resp in pools.iter().chain(runs.iter()) {
        assert!(resp.get("errors").is_none(), "a write failed: {resp:#}");
    }

    let data = app
        .gql_ok(
            "query($id: ID!) { cluster(id: $id) { nodePools { id } } }",
            json!({ "id": cluster }),
        )
        .await;
    assert_eq!(
        data["cluster"]["nodePools"].as_array().map(Vec::len),
        Some(POOLS)
    );
}
