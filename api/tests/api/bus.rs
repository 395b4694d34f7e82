//! The event bus over Redis: two real `autoglue serve` processes on one database and one
//! Redis, readiness, and start-up without Redis.
//!
//! On the SQLite backend the two processes share one database file (SQLite locks it between
//! processes); on PostgreSQL they share one test database.

use std::{
    fs::File,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Stdio},
    time::Duration,
};

use serde_json::{Value, json};

use crate::helpers::{
    ADMIN, Backend, PASSWORD, Subscription, TestDb, autoglue, backend, free_port, http_client,
    one_error_line, redis_url, spawn_app_with, subscribe_at, unique_redis_prefix,
    wait_until_serving,
};

/// One `autoglue serve` process; killed when dropped, its log printed if the test failed.
struct Server {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
    http: reqwest::Client,
}

impl Server {
    /// Starts the binary on `db` with Redis under `prefix`; returns once it serves.
    async fn start(db: &TestDb, dir: &Path, name: &str, env: &[(&str, &str)]) -> Server {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let log = dir.join(format!("{name}.log"));
        let mut child = autoglue()
            .current_dir(dir)
            .env("AUTOGLUE_LISTEN", addr.to_string())
            .env("DATABASE_URL", &db.url)
            .env("REDIS_URL", redis_url())
            .env("AUTOGLUE_ADMIN_USERNAME", ADMIN)
            .env("AUTOGLUE_ADMIN_PASSWORD", PASSWORD)
            .envs(env.iter().copied())
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .unwrap();
        wait_until_serving(&mut child, &format!("http://{addr}")).await;
        Server {
            child,
            addr,
            log,
            http: http_client().build().unwrap(),
        }
    }

    /// A GraphQL request that must succeed; returns `data`.
    async fn gql(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let mut req = self
            .http
            .post(format!("http://{}/graphql", self.addr))
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        let resp: Value = req.send().await.unwrap().json().await.unwrap();
        assert!(resp.get("errors").is_none(), "unexpected errors: {resp:#}");
        resp["data"].clone()
    }

    async fn login(&self, username: &str) -> String {
        let data = self
            .gql(
                None,
                "mutation($u: String!, $p: String!) { login(input: {username: $u, password: $p}) { accessToken } }",
                json!({ "u": username, "p": PASSWORD }),
            )
            .await;
        data["login"]["accessToken"].as_str().unwrap().to_owned()
    }

    async fn create_org(&self, token: &str, name: &str) {
        self.gql(
            Some(token),
            "mutation($name: String!) { createOrganization(input: {name: $name}) { organization { id } } }",
            json!({ "name": name }),
        )
        .await;
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            eprintln!("--- {} ---\n{log}", self.log.display());
        }
    }
}

/// The organization name of a `next` message of an `organizationCreated` subscription.
fn created_name(msg: &Value) -> String {
    assert_eq!(msg["type"], "next", "{msg}");
    msg["payload"]["data"]["organizationCreated"]["name"]
        .as_str()
        .unwrap_or_else(|| panic!("no organization in {msg}"))
        .to_owned()
}

/// Names delivered on `sub` until `last` arrives (included); fails after 10 s of silence.
async fn names_until(sub: &mut Subscription, last: &str) -> Vec<String> {
    let mut names = Vec::new();
    while names.last().map(String::as_str) != Some(last) {
        let msg = sub.next_message_within(Duration::from_secs(10)).await;
        let msg = msg.unwrap_or_else(|| panic!("{last} never arrived; got {names:?}"));
        names.push(created_name(&msg));
    }
    names
}

const CREATED: &str = "subscription { organizationCreated { id name } }";

#[tokio::test]
async fn an_event_caused_on_one_process_reaches_subscribers_on_the_other() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique_redis_prefix();
    // SQLite keeps the master key in a file next to the database: the first process makes
    // it, the second reads it. PostgreSQL needs one given to both.
    let master = vault::MasterKey::generate().to_base64();
    let mut env = vec![("AUTOGLUE_REDIS_PREFIX", prefix.as_str())];
    if backend() == Backend::Postgres {
        env.push(("AUTOGLUE_MASTER_KEY", master.as_str()));
    }
    // A migrates and bootstraps the admin and signing key; B starts on what A made.
    let a = Server::start(&db, dir.path(), "a", &env).await;
    let b = Server::start(&db, dir.path(), "b", &env).await;

    let admin = a.login(ADMIN).await;
    a.gql(
        Some(&admin),
        "mutation($u: String!, $p: String!) { createUser(input: {username: $u, password: $p}) { user { id } } }",
        json!({ "u": "alice", "p": PASSWORD }),
    )
    .await;
    let alice = b.login("alice").await;
    let mut alice_on_b = subscribe_at(b.addr, Some(&alice), CREATED).await;
    let mut admin_on_a = subscribe_at(a.addr, Some(&admin), CREATED).await;

    // The subscription is live once B has processed `subscribe`: create on A until one
    // arrives on B (bounded).
    let mut probes = Vec::new();
    let live = loop {
        assert!(probes.len() < 40, "nothing reached B after {probes:?}");
        let name = format!("probe-{}", probes.len());
        a.create_org(&alice, &name).await;
        probes.push(name);
        if let Some(msg) = alice_on_b.next_message().await {
            break created_name(&msg);
        }
    };
    assert!(probes.contains(&live), "{live} is not one of {probes:?}");

    // Then, in order on A: an organization alice may not see, and one of hers.
    let admins = format!("admins-{}", uuid::Uuid::now_v7().simple());
    a.create_org(&admin, &admins).await;
    a.create_org(&alice, "alices-last").await;
    let seen = names_until(&mut alice_on_b, "alices-last").await;
    assert!(
        !seen.contains(&admins),
        "alice was shown {admins}: {seen:?}"
    );
    assert!(
        seen.iter()
            .all(|n| probes.contains(n) || n == "alices-last")
    );
    let extra = alice_on_b
        .next_message_within(Duration::from_millis(500))
        .await;
    assert!(extra.is_none(), "delivered once only, then {extra:?}");

    // A's own subscribers hear A's events through Redis too, once each.
    let seen_on_a = names_until(&mut admin_on_a, &admins).await;
    assert_eq!(seen_on_a.iter().filter(|n| **n == admins).count(), 1);
    let extra = admin_on_a
        .next_message_within(Duration::from_millis(500))
        .await;
    assert!(
        extra.is_none_or(|m| created_name(&m) != admins),
        "{admins} delivered twice"
    );
}

#[tokio::test]
async fn readiness_checks_the_redis_bus() {
    let app = spawn_app_with(|c| {
        c.redis_url = Some(redis_url().parse().unwrap());
        c.redis_prefix = unique_redis_prefix();
    })
    .await;
    assert_eq!(app.state.bus.transport_name(), "redis");
    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["checks"]["bus"], "ok", "{body}");
    assert_eq!(body["checks"]["database"], "ok", "{body}");
}

#[test]
fn start_up_stops_with_one_line_when_redis_does_not_answer() {
    let dir = tempfile::tempdir().unwrap();
    let nobody = format!("redis://:hunter2@127.0.0.1:{}", free_port());
    let out = autoglue()
        .current_dir(dir.path())
        .env("AUTOGLUE_LISTEN", "127.0.0.1:0")
        .env("REDIS_URL", &nobody)
        .arg("serve")
        .output()
        .unwrap();
    let line = one_error_line(&out);
    assert!(
        line.contains("event bus") && line.contains("Redis"),
        "{line}"
    );
    assert!(line.contains("127.0.0.1"), "names where: {line}");
    assert!(!line.contains("hunter2"), "secret leaked: {line}");
    assert!(
        !dir.path().join("autoglue.db").exists(),
        "nothing is created without the bus"
    );
}

/// `type` and `status` of a `next` message of a `workflowRunUpdated` subscription.
fn run_event(msg: &Value) -> (String, String) {
    assert_eq!(msg["type"], "next", "{msg}");
    let event = &msg["payload"]["data"]["workflowRunUpdated"];
    (
        event["type"].as_str().unwrap_or_default().to_owned(),
        event["status"].as_str().unwrap_or_default().to_owned(),
    )
}

#[tokio::test]
async fn run_progress_published_by_a_worker_process_reaches_a_subscriber_of_an_api_process() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique_redis_prefix();
    let master = vault::MasterKey::generate().to_base64();
    let mut env = vec![
        ("AUTOGLUE_REDIS_PREFIX", prefix.as_str()),
        ("AUTOGLUE_TEST_WORKFLOWS", "true"),
    ];
    if backend() == Backend::Postgres {
        env.push(("AUTOGLUE_MASTER_KEY", master.as_str()));
    }
    let mut api_env = env.clone();
    api_env.push(("AUTOGLUE_ROLE", "api"));
    let mut worker_env = env.clone();
    worker_env.push(("AUTOGLUE_ROLE", "worker"));
    // The API process migrates and bootstraps; only the worker process drives runs.
    let api = Server::start(&db, dir.path(), "api", &api_env).await;
    let worker = Server::start(&db, dir.path(), "worker", &worker_env).await;
    // The worker serves no API.
    let status = worker
        .http
        .post(format!("http://{}/graphql", worker.addr))
        .json(&json!({ "query": "{ me { id } }" }))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, reqwest::StatusCode::NOT_FOUND);

    let token = api.login(ADMIN).await;
    api.create_org(&token, "acme").await;
    let orgs = api
        .gql(
            Some(&token),
            "{ organizations { nodes { id } } }",
            json!({}),
        )
        .await;
    let org = orgs["organizations"]["nodes"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let started = api
        .gql(
            Some(&token),
            "mutation($org: ID!) { startWorkflowRun(input: {organizationId: $org, kind: \"test.sleep\", input: {ms: 300}, idempotencyKey: \"cross\"}) { created workflowRun { id status } } }",
            json!({ "org": org }),
        )
        .await;
    let run = started["startWorkflowRun"]["workflowRun"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut sub = subscribe_at(
        api.addr,
        Some(&token),
        &format!("subscription {{ workflowRunUpdated(id: \"{run}\") {{ type status }} }}"),
    )
    .await;
    let mut seen = Vec::new();
    while seen.last() != Some(&("RUN".to_owned(), "SUCCEEDED".to_owned())) {
        let msg = sub
            .next_message_within(Duration::from_secs(30))
            .await
            .unwrap_or_else(|| panic!("the run never succeeded; got {seen:?}"));
        seen.push(run_event(&msg));
    }
    // Step and log events came from the worker process too.
    assert!(
        seen.contains(&("STEP".to_owned(), "RUNNING".to_owned())),
        "{seen:?}"
    );
    assert!(
        seen.contains(&("STEP".to_owned(), "SUCCEEDED".to_owned())),
        "{seen:?}"
    );
    assert!(seen.iter().any(|(t, _)| t == "LOG"), "{seen:?}");
    drop(worker);
}
