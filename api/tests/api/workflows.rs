//! Workflow runs over GraphQL against real workers: start (idempotent), read steps and logs,
//! list and page, cancel, retry, who may do what, live progress by subscription, and the
//! job console. On SQLite the queue is apalis on the test database; on PostgreSQL it is Redis.

use std::time::Duration;

use autoglue::graphql::relay::{GlobalId, NodeKind};
use chrono::Utc;
use entity::{enums::WorkflowStatus, workflow_runs};
use sea_orm::{ActiveModelBehavior, ActiveModelTrait, Set};
use serde_json::{Value, json};
use uuid::Uuid;
use workflows::{RunTask, StartRun};

use crate::helpers::{Subscription, TestApp, error_code, spawn_app, spawn_app_with};

const START: &str = "mutation($input: StartWorkflowRunInput!) { startWorkflowRun(input: $input) {
    created workflowRun { id kind status idempotencyKey input organization { id } } } }";

const RUN: &str = "query($id: ID!) { workflowRun(id: $id) { id kind status error attempt output
    cancelRequestedAt finishedAt startedAt organization { name } cluster { name }
    steps { id position name status attempt output error startedAt finishedAt }
    logs(first: 50) { totalCount edges { node { id level message stepName stepPosition createdAt } } } } }";

const CANCEL: &str =
    "mutation($id: ID!) { cancelWorkflowRun(input: {id: $id}) { workflowRun { id status } } }";
const RETRY: &str =
    "mutation($id: ID!) { retryWorkflowRun(input: {id: $id}) { workflowRun { id status } } }";

const ADD_MEMBER: &str = "mutation($org: ID!, $u: String!, $r: MemberRole!) {
    addMember(input: {organizationId: $org, username: $u, role: $r}) { membership { id } } }";

/// Starts a run as `token`; returns the whole response.
async fn start_as(app: &TestApp, token: &str, input: Value) -> Value {
    app.gql_as(Some(token), START, json!({ "input": input }))
        .await
}

/// Starts a run as `token`, which must succeed; returns its global ID.
pub async fn start_ok(app: &TestApp, token: &str, org: &str, kind: &str, input: Value) -> String {
    let resp = start_as(
        app,
        token,
        json!({ "organizationId": org, "kind": kind, "input": input }),
    )
    .await;
    resp["data"]["startWorkflowRun"]["workflowRun"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("start failed: {resp:#}"))
        .to_owned()
}

/// Reads a run as the admin until `done` holds (bounded); returns it.
async fn wait_until(
    app: &TestApp,
    token: &str,
    id: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let started = std::time::Instant::now();
    loop {
        let data = app.gql_ok_as(token, RUN, json!({ "id": id })).await;
        let run = data["workflowRun"].clone();
        if done(&run) {
            return run;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "run never got {what}: {run:#}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn wait_for_status(app: &TestApp, token: &str, id: &str, status: &str) -> Value {
    wait_until(app, token, id, status, |r| r["status"] == status).await
}

fn uuid_of(id: &str) -> Uuid {
    GlobalId::decode(id, "id").unwrap().id
}

#[tokio::test]
async fn a_started_run_is_idempotent_and_succeeds_with_its_steps_and_logs() {
    let app = spawn_app().await;
    let org = app.create_org("acme").await;
    let input = json!({ "organizationId": org, "kind": "test.sleep", "input": { "ms": 50 },
        "idempotencyKey": "deploy-1" });
    let first = start_as(&app, &app.token, input.clone()).await;
    let first = &first["data"]["startWorkflowRun"];
    assert_eq!(first["created"], true, "{first:#}");
    assert_eq!(first["workflowRun"]["kind"], "test.sleep");
    assert_eq!(first["workflowRun"]["idempotencyKey"], "deploy-1");
    assert_eq!(first["workflowRun"]["organization"]["id"], org);
    let id = first["workflowRun"]["id"].as_str().unwrap().to_owned();
    // The same key answers the same run, however often it is sent.
    let again = start_as(&app, &app.token, input).await;
    assert_eq!(again["data"]["startWorkflowRun"]["created"], false);
    assert_eq!(again["data"]["startWorkflowRun"]["workflowRun"]["id"], id);

    let run = wait_for_status(&app, &app.token, &id, "SUCCEEDED").await;
    assert_eq!(run["organization"]["name"], "acme");
    assert_eq!(run["output"], json!(50));
    assert!(run["startedAt"].is_string() && run["finishedAt"].is_string());
    let steps = run["steps"].as_array().unwrap();
    let names: Vec<_> = steps
        .iter()
        .map(|s| {
            (
                s["position"].as_i64().unwrap(),
                s["name"].as_str().unwrap(),
                s["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(names, [(0, "sleep", "SUCCEEDED"), (1, "done", "SUCCEEDED")]);
    assert_eq!(steps[0]["attempt"], 1);
    assert_eq!(steps[0]["output"], json!(50));
    let logs = &run["logs"];
    assert_eq!(logs["totalCount"], 2, "{logs:#}");
    let lines: Vec<_> = logs["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["node"]["message"].as_str().unwrap(),
                e["node"]["stepName"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(lines, [("sleeping 50 ms", "sleep"), ("woke up", "sleep")]);
    assert_eq!(logs["edges"][0]["node"]["level"], "info");

    // Runs, their steps and log lines are nodes.
    let step = steps[1]["id"].as_str().unwrap();
    let log = logs["edges"][1]["node"]["id"].as_str().unwrap();
    let nodes = app
        .gql_ok(
            "query($r: ID!, $s: ID!, $l: ID!) { r: node(id: $r) { ... on WorkflowRun { status } }
              s: node(id: $s) { ... on WorkflowStep { name } } l: node(id: $l) { ... on WorkflowLog { message } } }",
            json!({ "r": id, "s": step, "l": log }),
        )
        .await;
    assert_eq!(nodes["r"]["status"], "SUCCEEDED");
    assert_eq!(nodes["s"]["name"], "done");
    assert_eq!(nodes["l"]["message"], "woke up");
}

#[tokio::test]
async fn starting_refuses_unknown_and_instance_only_kinds_and_bad_input() {
    let app = spawn_app().await;
    let org = app.create_org("acme").await;
    let other = app.create_org("other").await;
    let cluster = app
        .gql_ok(
            "mutation($o: ID!) { createCluster(input: {organizationId: $o, name: \"c\"}) { cluster { id } } }",
            json!({ "o": other }),
        )
        .await["createCluster"]["cluster"]["id"]
        .clone();
    for (input, field) in [
        (
            json!({ "organizationId": org, "kind": "nope" }),
            "input.kind",
        ),
        (
            json!({ "organizationId": org, "kind": "housekeeping" }),
            "input.kind",
        ),
        (
            json!({ "organizationId": org, "kind": "test.sleep", "idempotencyKey": "" }),
            "input.idempotencyKey",
        ),
        (
            json!({ "organizationId": org, "kind": "test.sleep", "clusterId": cluster }),
            "input.clusterId",
        ),
        (
            json!({ "organizationId": org, "kind": "test.sleep", "clusterId": org }),
            "input.clusterId",
        ),
    ] {
        let resp = start_as(&app, &app.token, input.clone()).await;
        assert_eq!(error_code(&resp), "BAD_USER_INPUT", "{input}: {resp:#}");
        assert_eq!(resp["errors"][0]["extensions"]["field"], field, "{resp:#}");
    }
    // The input may be written inline too.
    app.gql_ok(
        "mutation($o: ID!) { startWorkflowRun(input: {organizationId: $o, kind: \"test.sleep\", input: {ms: 1}}) { created } }",
        json!({ "o": other }),
    )
    .await;
    // Nothing was started by the refusals.
    let count = app
        .gql_ok(
            "query($o: ID!) { workflowRuns(organizationId: $o) { totalCount } }",
            json!({ "o": org }),
        )
        .await;
    assert_eq!(count["workflowRuns"]["totalCount"], 0);
}

const LIST: &str = "query($o: ID, $f: WorkflowRunFilter, $first: Int, $after: String, $last: Int, $before: String) {
    workflowRuns(organizationId: $o, filter: $f, first: $first, after: $after, last: $last, before: $before) {
      totalCount pageInfo { hasNextPage hasPreviousPage endCursor startCursor }
      edges { cursor node { id kind status cluster { name } steps { name } } } } }";

fn ids(list: &Value) -> Vec<String> {
    list["workflowRuns"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn runs_list_newest_first_with_filters_and_pages() {
    let app = spawn_app().await;
    let org = app.create_org("acme").await;
    let cluster = app
        .gql_ok(
            "mutation($o: ID!) { createCluster(input: {organizationId: $o, name: \"prod\"}) { cluster { id } } }",
            json!({ "o": org }),
        )
        .await["createCluster"]["cluster"]["id"]
        .clone();
    let mut started = Vec::new();
    for _ in 0..3 {
        started.push(start_ok(&app, &app.token, &org, "test.three_steps", json!({})).await);
    }
    let on_cluster = start_as(
        &app,
        &app.token,
        json!({ "organizationId": org, "kind": "test.sleep", "input": { "ms": 1 }, "clusterId": cluster }),
    )
    .await["data"]["startWorkflowRun"]["workflowRun"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    started.push(on_cluster.clone());
    for id in &started {
        wait_for_status(&app, &app.token, id, "SUCCEEDED").await;
    }
    let newest_first: Vec<String> = started.iter().rev().cloned().collect();

    let all = app.gql_ok(LIST, json!({ "o": org })).await;
    assert_eq!(all["workflowRuns"]["totalCount"], 4);
    assert_eq!(ids(&all), newest_first);
    assert_eq!(
        all["workflowRuns"]["edges"][1]["node"]["steps"],
        json!([{ "name": "one" }, { "name": "two" }, { "name": "three" }])
    );

    // Forward in pages of two, then back from the end.
    let page1 = app.gql_ok(LIST, json!({ "o": org, "first": 2 })).await;
    assert_eq!(ids(&page1), newest_first[..2]);
    assert_eq!(page1["workflowRuns"]["pageInfo"]["hasNextPage"], true);
    let after = page1["workflowRuns"]["pageInfo"]["endCursor"].clone();
    let page2 = app
        .gql_ok(LIST, json!({ "o": org, "first": 2, "after": after }))
        .await;
    assert_eq!(ids(&page2), newest_first[2..]);
    assert_eq!(page2["workflowRuns"]["pageInfo"]["hasNextPage"], false);
    let before = page2["workflowRuns"]["pageInfo"]["startCursor"].clone();
    let back = app
        .gql_ok(LIST, json!({ "o": org, "last": 1, "before": before }))
        .await;
    assert_eq!(ids(&back), newest_first[1..2]);

    // Filters: kind, status, cluster.
    let by_kind = app
        .gql_ok(
            LIST,
            json!({ "o": org, "f": { "kind": "test.three_steps" } }),
        )
        .await;
    assert_eq!(by_kind["workflowRuns"]["totalCount"], 3);
    let by_status = app
        .gql_ok(
            LIST,
            json!({ "o": org, "f": { "status": ["FAILED", "RUNNING"] } }),
        )
        .await;
    assert_eq!(by_status["workflowRuns"]["totalCount"], 0);
    let by_cluster = app
        .gql_ok(LIST, json!({ "o": org, "f": { "clusterId": cluster } }))
        .await;
    assert_eq!(ids(&by_cluster), [on_cluster]);
    assert_eq!(
        by_cluster["workflowRuns"]["edges"][0]["node"]["cluster"]["name"],
        "prod"
    );
    let bad = app
        .gql(LIST, json!({ "o": org, "after": "not-a-cursor" }))
        .await;
    assert_eq!(error_code(&bad), "BAD_USER_INPUT");

    // The steps of a page of runs load in one batch: one run or four, the same statements.
    let (one, _) = statements_for(&app, &org, 1).await;
    let (four, data) = statements_for(&app, &org, 4).await;
    assert_eq!(
        data["workflowRuns"]["edges"][3]["node"]["steps"][2]["name"],
        "three"
    );
    assert_eq!(one, four, "the statement count does not grow with the page");
}

/// The fewest statements of three reads of `n` runs with their steps (the counter also sees
/// the app's background work, which may add a statement now and then).
async fn statements_for(app: &TestApp, org: &str, n: usize) -> (u64, Value) {
    use std::sync::atomic::Ordering;
    const NESTED: &str = "query($o: ID!, $n: Int!) { workflowRuns(organizationId: $o, first: $n) {
        edges { node { id steps { name status } } } } }";
    let mut best = (u64::MAX, Value::Null);
    for _ in 0..3 {
        let before = app.state.statements.load(Ordering::SeqCst);
        let data = app.gql_ok(NESTED, json!({ "o": org, "n": n })).await;
        let used = app.state.statements.load(Ordering::SeqCst) - before;
        if used < best.0 {
            best = (used, data);
        }
    }
    best
}

#[tokio::test]
async fn cancelling_a_running_run_stops_it_and_a_failed_run_retries_from_its_failed_step() {
    let app = spawn_app().await;
    let org = app.create_org("acme").await;

    let long = start_ok(&app, &app.token, &org, "test.sleep", json!({ "ms": 60000 })).await;
    wait_until(&app, &app.token, &long, "its sleep step running", |r| {
        r["status"] == "RUNNING" && r["steps"][0]["status"] == "RUNNING"
    })
    .await;
    let cancelled = app.gql_ok(CANCEL, json!({ "id": long })).await;
    assert_eq!(cancelled["cancelWorkflowRun"]["workflowRun"]["id"], long);
    // The run's row ends first, its remaining steps a statement later.
    let run = wait_until(&app, &app.token, &long, "cancelled with its steps", |r| {
        r["status"] == "CANCELLED" && r["steps"][1]["status"] != "QUEUED"
    })
    .await;
    assert!(run["cancelRequestedAt"].is_string() && run["finishedAt"].is_string());
    let statuses: Vec<_> = run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["CANCELLED", "CANCELLED"]);
    assert!(run["steps"][0]["startedAt"].is_string());
    assert!(
        run["steps"][1]["startedAt"].is_null(),
        "the second step never ran"
    );
    // A finished run cannot be cancelled again.
    let again = app.gql(CANCEL, json!({ "id": long })).await;
    assert_eq!(error_code(&again), "CONFLICT", "{again:#}");

    // A permanent failure on the second step; the retry resumes there, not at the start.
    let flaky = start_ok(
        &app,
        &app.token,
        &org,
        "test.flaky",
        json!({ "fail_times": 1, "permanent": true }),
    )
    .await;
    let failed = wait_for_status(&app, &app.token, &flaky, "FAILED").await;
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .contains("planned failure 1 of 1"),
        "{failed:#}"
    );
    assert_eq!(failed["steps"][0]["status"], "SUCCEEDED");
    assert_eq!(failed["steps"][1]["status"], "FAILED");
    let retried = app.gql_ok(RETRY, json!({ "id": flaky })).await;
    assert_eq!(retried["retryWorkflowRun"]["workflowRun"]["id"], flaky);
    let done = wait_for_status(&app, &app.token, &flaky, "SUCCEEDED").await;
    assert_eq!(
        done["steps"][0]["attempt"], 1,
        "the first step is not repeated"
    );
    assert_eq!(done["steps"][1]["status"], "SUCCEEDED");
    // The retried step starts a fresh attempt count; its failures live in its checkpoint.
    assert_eq!(done["output"], json!(1), "{done:#}");
    assert!(done["error"].is_null());
    // Only failed or cancelled runs can be retried.
    let again = app.gql(RETRY, json!({ "id": flaky })).await;
    assert_eq!(error_code(&again), "CONFLICT");

    // Both actions are in the organization's audit log.
    let audit = app
        .gql_ok(
            "query($o: ID!) { organization(id: $o) { auditLog(last: 10) { edges { node { action } } } } }",
            json!({ "o": org }),
        )
        .await;
    let actions = audit.to_string();
    for action in [
        "workflow_run.start",
        "workflow_run.cancel",
        "workflow_run.retry",
    ] {
        assert!(actions.contains(action), "{action} missing: {actions}");
    }
}

#[tokio::test]
async fn roles_gate_runs_and_other_organizations_and_instance_runs_stay_hidden() {
    let app = spawn_app().await;
    let (alice, bob, carol, dave) = (
        app.user("alice").await,
        app.user("bob").await,
        app.user("carol").await,
        app.user("dave").await,
    );
    let org = app.create_org_as(&alice, "alpha").await;
    app.create_org_as(&dave, "delta").await;
    for (user, role) in [("bob", "MEMBER"), ("carol", "VIEWER")] {
        app.gql_ok_as(
            &alice,
            ADD_MEMBER,
            json!({ "org": org, "u": user, "r": role }),
        )
        .await;
    }
    let run = start_ok(&app, &alice, &org, "test.sleep", json!({ "ms": 60000 })).await;

    for token in [&bob, &carol] {
        let started = start_as(
            &app,
            token,
            json!({ "organizationId": org, "kind": "test.sleep" }),
        )
        .await;
        assert_eq!(error_code(&started), "FORBIDDEN", "{started:#}");
        for doc in [CANCEL, RETRY] {
            let resp = app.gql_as(Some(token), doc, json!({ "id": run })).await;
            assert_eq!(error_code(&resp), "FORBIDDEN", "{resp:#}");
        }
        // Reading is fine.
        let list = app.gql_ok_as(token, LIST, json!({ "o": org })).await;
        assert_eq!(ids(&list), std::slice::from_ref(&run));
    }

    // Another organization's owner (and the instance admin, not a member) sees nothing.
    for token in [&dave, &app.token] {
        let read = app
            .gql_ok_as(
                token,
                "query($id: ID!) { workflowRun(id: $id) { id } node(id: $id) { id } }",
                json!({ "id": run }),
            )
            .await;
        assert_eq!(read, json!({ "workflowRun": null, "node": null }));
        for doc in [CANCEL, RETRY] {
            let resp = app.gql_as(Some(token), doc, json!({ "id": run })).await;
            assert_eq!(error_code(&resp), "NOT_FOUND", "{resp:#}");
        }
        let list = app.gql_as(Some(token), LIST, json!({ "o": org })).await;
        assert_eq!(error_code(&list), "NOT_FOUND");
        let started = start_as(
            &app,
            token,
            json!({ "organizationId": org, "kind": "test.sleep" }),
        )
        .await;
        assert_eq!(error_code(&started), "NOT_FOUND");
    }

    // Instance-wide runs: instance admins only.
    let (instance_run, _) = app
        .state
        .engine
        .start(StartRun {
            kind: "test.three_steps".into(),
            input: json!({}),
            ..Default::default()
        })
        .await
        .unwrap();
    let instance_id = GlobalId::encode(NodeKind::WorkflowRun, instance_run.id).to_string();
    let read = app
        .gql_ok_as(
            &alice,
            "query($id: ID!) { workflowRun(id: $id) { id } node(id: $id) { id } }",
            json!({ "id": instance_id }),
        )
        .await;
    assert_eq!(read, json!({ "workflowRun": null, "node": null }));
    let listed = app
        .gql_as(
            Some(&alice),
            "{ workflowRuns(instanceWide: true) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&listed), "FORBIDDEN");
    let cancel = app
        .gql_as(Some(&alice), CANCEL, json!({ "id": instance_id }))
        .await;
    assert_eq!(error_code(&cancel), "NOT_FOUND");
    let admin = app
        .gql_ok(
            "query($id: ID!) { workflowRun(id: $id) { id organization { id } }
              workflowRuns(instanceWide: true, filter: {kind: \"test.three_steps\"}) { edges { node { id } } } }",
            json!({ "id": instance_id }),
        )
        .await;
    assert_eq!(admin["workflowRun"]["id"], instance_id);
    assert!(admin["workflowRun"]["organization"].is_null());
    assert_eq!(admin["workflowRuns"]["edges"][0]["node"]["id"], instance_id);
    let both = app
        .gql(
            "query($o: ID!) { workflowRuns(organizationId: $o, instanceWide: true) { totalCount } }",
            json!({ "o": org }),
        )
        .await;
    assert_eq!(error_code(&both), "BAD_USER_INPUT");

    // The owner may cancel.
    app.gql_ok_as(&alice, CANCEL, json!({ "id": run })).await;
    wait_for_status(&app, &alice, &run, "CANCELLED").await;
}

const RUN_UPDATED: &str = "subscription { workflowRunUpdated(id: THE_RUN) {
    type status run { id status } step { name status } log { message stepName } } }";

/// The next `next` payload of a subscription, or None when nothing came within `wait`.
async fn next_event(sub: &mut Subscription, field: &str, wait: Duration) -> Option<Value> {
    let msg = sub.next_message_within(wait).await?;
    assert_eq!(msg["type"], "next", "{msg}");
    assert!(msg["payload"].get("errors").is_none(), "{msg}");
    Some(msg["payload"]["data"][field].clone())
}

/// One line per event: `RUN RUNNING`, `STEP SUCCEEDED sleep`, `LOG woke up`.
fn describe(event: &Value) -> String {
    match event["type"].as_str().unwrap() {
        "RUN" => format!("RUN {}", event["status"].as_str().unwrap()),
        "STEP" => format!(
            "STEP {} {}",
            event["status"].as_str().unwrap(),
            event["step"]["name"].as_str().unwrap()
        ),
        _ => format!("LOG {}", event["log"]["message"].as_str().unwrap()),
    }
}

#[tokio::test]
async fn a_subscriber_sees_a_runs_steps_and_logs_live_in_order() {
    // One worker: the run under watch waits behind another until the subscription is up.
    let app = spawn_app_with(|c| c.workflows.workers = 1).await;
    let org = app.create_org("acme").await;
    let blocker = start_ok(&app, &app.token, &org, "test.sleep", json!({ "ms": 3000 })).await;
    wait_for_status(&app, &app.token, &blocker, "RUNNING").await;
    let run = start_ok(&app, &app.token, &org, "test.sleep", json!({ "ms": 100 })).await;

    let mut sub = app
        .subscribe(&RUN_UPDATED.replace("THE_RUN", &format!("{run:?}")))
        .await;
    let mut seen = Vec::new();
    while let Some(event) =
        next_event(&mut sub, "workflowRunUpdated", Duration::from_secs(20)).await
    {
        assert_eq!(event["run"]["id"], run);
        seen.push(describe(&event));
        if seen.last().unwrap() == "RUN SUCCEEDED" {
            break;
        }
    }
    assert_eq!(
        seen,
        [
            "RUN QUEUED",
            "RUN RUNNING",
            "STEP RUNNING sleep",
            "LOG sleeping 100 ms",
            "LOG woke up",
            "STEP SUCCEEDED sleep",
            "STEP RUNNING done",
            "STEP SUCCEEDED done",
            "RUN SUCCEEDED",
        ]
    );

    // Nobody outside the organization may watch it.
    let stranger = app.user("stranger").await;
    let mut denied = app
        .subscribe_as(
            Some(&stranger),
            &RUN_UPDATED.replace("THE_RUN", &format!("{run:?}")),
        )
        .await;
    let msg = denied
        .next_message_within(Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(
        msg["payload"]["errors"][0]["extensions"]["code"], "NOT_FOUND",
        "{msg}"
    );
}

const RUNS_UPDATED: &str =
    "subscription { workflowRunsUpdated(organizationId: ORG) { type status run { id } } }";

/// Starts runs in `org` until `sub` delivers an event (the subscription is live then), and
/// drains until those runs succeeded; returns the ids started.
async fn until_live(app: &TestApp, token: &str, org: &str, sub: &mut Subscription) -> Vec<String> {
    let mut started = Vec::new();
    for _ in 0..40 {
        started.push(start_ok(app, token, org, "test.three_steps", json!({})).await);
        if next_event(sub, "workflowRunsUpdated", Duration::from_millis(500))
            .await
            .is_some()
        {
            break;
        }
    }
    let last = started.last().unwrap().clone();
    loop {
        let event = next_event(sub, "workflowRunsUpdated", Duration::from_secs(20))
            .await
            .expect("the runs finish");
        if event["run"]["id"] == last && event["type"] == "RUN" && event["status"] == "SUCCEEDED" {
            return started;
        }
    }
}

#[tokio::test]
async fn organization_subscribers_see_only_their_runs_and_stop_when_removed() {
    let app = spawn_app().await;
    let (alice, bob, carol) = (
        app.user("alice").await,
        app.user("bob").await,
        app.user("carol").await,
    );
    let a = app.create_org_as(&alice, "alpha").await;
    let b = app.create_org_as(&bob, "beta").await;
    let membership = app
        .gql_ok_as(
            &alice,
            ADD_MEMBER,
            json!({ "org": a, "u": "carol", "r": "VIEWER" }),
        )
        .await["addMember"]["membership"]["id"]
        .clone();
    let query = RUNS_UPDATED.replace("ORG", &format!("{a:?}"));
    let mut alice_sub = app.subscribe_as(Some(&alice), &query).await;
    let mut carol_sub = app.subscribe_as(Some(&carol), &query).await;
    let mut mine = until_live(&app, &alice, &a, &mut alice_sub).await;
    // Carol's subscription is live too once it delivered the last of those runs' events.
    loop {
        let event = next_event(
            &mut carol_sub,
            "workflowRunsUpdated",
            Duration::from_secs(20),
        )
        .await
        .expect("carol receives alpha's runs");
        if event["run"]["id"] == *mine.last().unwrap()
            && event["status"] == "SUCCEEDED"
            && event["type"] == "RUN"
        {
            break;
        }
    }

    // Beta's run happens while both watch alpha; then carol is removed; then alpha runs again.
    let theirs = start_ok(&app, &bob, &b, "test.three_steps", json!({})).await;
    wait_for_status(&app, &bob, &theirs, "SUCCEEDED").await;
    app.gql_ok_as(
        &alice,
        "mutation($id: ID!) { removeMember(input: {id: $id}) { membership { id } } }",
        json!({ "id": membership }),
    )
    .await;
    let last = start_ok(&app, &alice, &a, "test.three_steps", json!({})).await;
    mine.push(last.clone());
    loop {
        let event = next_event(
            &mut alice_sub,
            "workflowRunsUpdated",
            Duration::from_secs(20),
        )
        .await
        .expect("alice receives her runs");
        let id = event["run"]["id"].as_str().unwrap().to_owned();
        assert!(
            mine.contains(&id),
            "alice received {id}, not alpha's: {event}"
        );
        if id == last && event["type"] == "RUN" && event["status"] == "SUCCEEDED" {
            break;
        }
    }
    assert!(
        next_event(
            &mut carol_sub,
            "workflowRunsUpdated",
            Duration::from_millis(500)
        )
        .await
        .is_none(),
        "a removed member stops receiving"
    );

    // Watching an organization one is not in is refused.
    let mut denied = app
        .subscribe_as(
            Some(&alice),
            &RUNS_UPDATED.replace("ORG", &format!("{b:?}")),
        )
        .await;
    let msg = denied
        .next_message_within(Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(
        msg["payload"]["errors"][0]["extensions"]["code"], "NOT_FOUND",
        "{msg}"
    );
}

const QUEUES: &str =
    "{ jobQueues { name pending running scheduled failed dead done cancelled workers } }";
const JOBS: &str = "query($s: JobStatus!, $k: String, $first: Int, $after: String) {
    jobs(queue: \"workflow_runs\", status: $s, kind: $k, first: $first, after: $after) {
      endCursor hasNextPage jobs { id queue kind status attempts maxAttempts lastError runAt createdAt args } } }";
const RETRY_JOB: &str = "mutation($id: String!) { retryJob(input: {queue: \"workflow_runs\", id: $id}) { job { id status } } }";
const CANCEL_JOB: &str = "mutation($id: String!) { cancelJob(input: {queue: \"workflow_runs\", id: $id}) { job { id status args } } }";

async fn run_queue(app: &TestApp) -> Value {
    let data = app.gql_ok(QUEUES, json!({})).await;
    data["jobQueues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == "workflow_runs")
        .cloned()
        .unwrap_or_else(|| panic!("no run queue in {data:#}"))
}

async fn jobs(app: &TestApp, status: &str) -> Vec<Value> {
    app.gql_ok(JOBS, json!({ "s": status })).await["jobs"]["jobs"]
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn the_job_console_shows_retries_and_cancels_jobs_for_instance_admins_only() {
    let app = spawn_app().await;
    let queue = app.state.queue.queue();
    let later = Utc::now() + chrono::Duration::hours(1);
    // Two jobs due in an hour for runs that do not exist (a worker ignores them as stale).
    let stale = [
        RunTask {
            run_id: Uuid::now_v7(),
            ticket: Uuid::now_v7(),
        },
        RunTask {
            run_id: Uuid::now_v7(),
            ticket: Uuid::now_v7(),
        },
    ];
    for task in stale {
        queue.enqueue(task, 0, Some(later)).await.unwrap();
    }
    // And one for a queued run that waits on it: cancelling the job cancels the run.
    let mut row = workflow_runs::ActiveModel::new();
    let ticket = Uuid::now_v7();
    let org = app.create_org("acme").await;
    row.organization_id = Set(Some(uuid_of(&org)));
    row.kind = Set("test.sleep".into());
    row.status = Set(WorkflowStatus::Queued);
    row.input = Set(json!({ "ms": 1 }));
    row.attempt = Set(0);
    row.ticket = Set(Some(ticket));
    let waiting = row.insert(&app.state.db).await.unwrap();
    queue
        .enqueue(
            RunTask {
                run_id: waiting.id,
                ticket,
            },
            0,
            Some(later),
        )
        .await
        .unwrap();

    let counts = run_queue(&app).await;
    assert_eq!(counts["scheduled"], 3, "{counts:#}");
    let scheduled = jobs(&app, "SCHEDULED").await;
    assert_eq!(scheduled.len(), 3, "{scheduled:#?}");
    for job in &scheduled {
        assert_eq!(job["queue"], "workflow_runs");
        assert_eq!(job["kind"], "workflow_run");
        assert_eq!(job["status"], "SCHEDULED");
        assert!(
            job["runAt"].is_string() && job["createdAt"].is_string(),
            "{job}"
        );
    }
    let id_of = |run: Uuid| {
        scheduled
            .iter()
            .find(|j| j["args"]["run_id"] == json!(run))
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (to_retry, to_cancel, of_run) = (
        id_of(stale[0].run_id),
        id_of(stale[1].run_id),
        id_of(waiting.id),
    );

    // Pages of one.
    let page = app
        .gql_ok(JOBS, json!({ "s": "SCHEDULED", "first": 1 }))
        .await;
    assert_eq!(page["jobs"]["hasNextPage"], true);
    let next = app
        .gql_ok(
            JOBS,
            json!({ "s": "SCHEDULED", "first": 1, "after": page["jobs"]["endCursor"] }),
        )
        .await;
    assert_ne!(page["jobs"]["jobs"][0]["id"], next["jobs"]["jobs"][0]["id"]);
    let none = app
        .gql_ok(JOBS, json!({ "s": "SCHEDULED", "k": "something_else" }))
        .await;
    assert_eq!(none["jobs"]["jobs"], json!([]));
    let bad = app
        .gql(JOBS, json!({ "s": "SCHEDULED", "after": "x" }))
        .await;
    assert_eq!(error_code(&bad), "BAD_USER_INPUT");
    assert_eq!(bad["errors"][0]["extensions"]["field"], "after");

    // Cancel one: it is listed as cancelled, with only its id kept (as for done jobs).
    let cancelled = app.gql_ok(CANCEL_JOB, json!({ "id": to_cancel })).await;
    assert_eq!(cancelled["cancelJob"]["job"]["status"], "CANCELLED");
    assert_eq!(
        error_code(&app.gql(RETRY_JOB, json!({ "id": to_cancel })).await),
        "NOT_FOUND"
    );
    assert_eq!(
        error_code(&app.gql(CANCEL_JOB, json!({ "id": to_cancel })).await),
        "NOT_FOUND"
    );
    assert_eq!(
        error_code(&app.gql(CANCEL_JOB, json!({ "id": "no-such-job" })).await),
        "NOT_FOUND"
    );

    // Cancelling the job a queued run waits on cancels the run.
    app.gql_ok(CANCEL_JOB, json!({ "id": of_run })).await;
    let run = wait_for_status(
        &app,
        &app.token,
        GlobalId::encode(NodeKind::WorkflowRun, waiting.id).as_ref(),
        "CANCELLED",
    )
    .await;
    assert_eq!(run["steps"], json!([]));

    // Retry the other: it runs now (and does nothing, its run does not exist).
    let retried = app.gql_ok(RETRY_JOB, json!({ "id": to_retry })).await;
    assert_eq!(retried["retryJob"]["job"]["id"], to_retry);
    let started = std::time::Instant::now();
    loop {
        let c = run_queue(&app).await;
        if c["scheduled"] == 0 && c["pending"] == 0 && c["running"] == 0 {
            assert_eq!(c["cancelled"], 2, "{c:#}");
            assert!(c["done"].as_u64().unwrap() >= 1, "{c:#}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the retried job never ran: {c:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let cancelled = jobs(&app, "CANCELLED").await;
    assert_eq!(cancelled.len(), 2, "{cancelled:#?}");

    // Organization owners, and everyone else who is not an instance admin: FORBIDDEN.
    let owner = app.user("owner").await;
    app.create_org_as(&owner, "owned").await;
    for (doc, vars) in [
        (QUEUES, json!({})),
        (JOBS, json!({ "s": "PENDING" })),
        (RETRY_JOB, json!({ "id": to_retry })),
        (CANCEL_JOB, json!({ "id": to_retry })),
    ] {
        let resp = app.gql_as(Some(&owner), doc, vars).await;
        assert_eq!(error_code(&resp), "FORBIDDEN", "{doc}: {resp:#}");
    }
}

/// A real redis-server that listens only with TLS (no plain port), with a certificate
/// authority and a server certificate for 127.0.0.1 made by the test (openssl). The test's
/// process trusts the authority through `SSL_CERT_FILE`, as a deployment would.
struct TlsRedis {
    url: String,
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl TlsRedis {
    fn start() -> TlsRedis {
        let dir = tempfile::tempdir().unwrap();
        let at = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
        let openssl = |args: &[&str]| {
            let out = std::process::Command::new("openssl")
                .args(args)
                .output()
                .expect("openssl runs");
            assert!(out.status.success(), "openssl {args:?}: {out:?}");
        };
        std::fs::write(at("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=autoglue test CA",
            "-keyout",
            &at("ca.key"),
            "-out",
            &at("ca.pem"),
        ]);
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            &at("server.key"),
            "-out",
            &at("server.csr"),
        ]);
        openssl(&[
            "x509",
            "-req",
            "-in",
            &at("server.csr"),
            "-CA",
            &at("ca.pem"),
            "-CAkey",
            &at("ca.key"),
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            &at("san.ext"),
            "-out",
            &at("server.pem"),
        ]);
        let port = crate::helpers::free_port().to_string();
        let child = std::process::Command::new("redis-server")
            .args(["--port", "0", "--tls-port", &port, "--bind", "127.0.0.1"])
            .args([
                "--tls-cert-file",
                &at("server.pem"),
                "--tls-key-file",
                &at("server.key"),
            ])
            .args([
                "--tls-ca-cert-file",
                &at("ca.pem"),
                "--tls-auth-clients",
                "no",
            ])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server starts");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap())).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server with TLS never listened"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // SAFETY: set before the server (and any thread reading the environment) starts;
        // each test runs in a process of its own.
        unsafe { std::env::set_var("SSL_CERT_FILE", at("ca.pem")) };
        TlsRedis {
            url: format!("rediss://127.0.0.1:{port}"),
            child,
            _dir: dir,
        }
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn runs_and_events_go_through_redis_over_tls() {
    let tls = TlsRedis::start();
    let app = spawn_app_with(|c| {
        c.redis_url = Some(tls.url.parse().unwrap());
        c.redis_prefix = crate::helpers::unique_redis_prefix();
    })
    .await;
    let org = app.create_org("tls").await;
    // The bus (subscriptions) and the queue (workers) both reach Redis only over TLS: the
    // server has no plain port.
    let token = app.token.clone();
    let mut sub = app
        .subscribe(&RUNS_UPDATED.replace("ORG", &format!("{org:?}")))
        .await;
    let started = until_live(&app, &token, &org, &mut sub).await;
    let run = wait_for_status(&app, &token, started.last().unwrap(), "SUCCEEDED").await;
    assert_eq!(run["steps"].as_array().unwrap().len(), 3, "{run:#}");
}
