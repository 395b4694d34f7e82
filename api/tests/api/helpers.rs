//! `spawn_app()` and friends: a real server on a random port over a fresh database.

use std::{net::SocketAddr, path::PathBuf, sync::Once, time::Duration};

use autoglue::{
    config::{Config, DatabaseUrl},
    startup::Application,
    state::AppState,
};
use futures_util::{SinkExt, StreamExt};
use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};

/// Which database the suite runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// `AG_TEST_BACKEND`: `sqlite` (default) or `postgres`.
pub fn backend() -> Backend {
    match std::env::var("AG_TEST_BACKEND").as_deref() {
        Ok("postgres") => Backend::Postgres,
        Ok("sqlite") | Err(_) => Backend::Sqlite,
        Ok(other) => panic!("AG_TEST_BACKEND={other}: expected sqlite or postgres"),
    }
}

/// `AG_TEST_REDIS_URL`: the Redis shared by every test [default: redis://127.0.0.1:6379].
pub fn redis_url() -> String {
    std::env::var("AG_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A Redis prefix of one test's own, so tests sharing a Redis do not hear each other.
pub fn unique_redis_prefix() -> String {
    let run = std::env::var("AG_TEST_RUN_ID").unwrap_or_else(|_| "local".into());
    format!("ag_test_{run}_{}", uuid::Uuid::now_v7().simple())
}

fn postgres_admin_url() -> String {
    std::env::var("AG_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// An HTTP client for tests. reqwest is built with rustls and no crypto provider of its own
/// (the server installs ring's at start); tests that run no server in-process need it too.
pub fn http_client() -> reqwest::ClientBuilder {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
}

fn init_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter("info,autoglue=debug")
                .with_test_writer()
                .try_init();
        }
    });
}

/// A database of its own for one test: a temporary SQLite file, or a PostgreSQL database
/// named `ag_test_<run>_<random>` that is dropped when the test ends (and by `scripts/test`
/// at the end of the run, should a test die before).
pub struct TestDb {
    pub url: String,
    _dir: tempfile::TempDir,
    postgres_name: Option<String>,
}

impl TestDb {
    pub async fn new() -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        match backend() {
            Backend::Sqlite => TestDb {
                url: format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display()),
                _dir: dir,
                postgres_name: None,
            },
            Backend::Postgres => {
                let run = std::env::var("AG_TEST_RUN_ID").unwrap_or_else(|_| "local".into());
                let name = format!("ag_test_{run}_{}", uuid::Uuid::now_v7().simple());
                let admin = postgres_admin_url();
                let conn = Database::connect(&admin)
                    .await
                    .unwrap_or_else(|e| panic!("PostgreSQL at {admin} does not answer: {e}"));
                conn.execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
                    .await
                    .expect("create test database");
                let mut url = url::Url::parse(&admin).unwrap();
                url.set_path(&name);
                TestDb {
                    url: url.to_string(),
                    _dir: dir,
                    postgres_name: Some(name),
                }
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(name) = self.postgres_name.take() else {
            return;
        };
        // Drop runs inside the test's runtime: do the async work on a thread of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(conn) = Database::connect(&postgres_admin_url()).await {
                    let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                    let _ = conn.execute_unprepared(&sql).await;
                }
            });
        })
        .join();
    }
}

/// The bootstrapped instance admin of every test server.
pub const ADMIN: &str = "admin";
/// The password of every test user.
pub const PASSWORD: &str = "correct horse battery staple";

/// A running server and a client for it.
pub struct TestApp {
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    pub state: AppState,
    /// Access token of the instance admin, sent by [`TestApp::gql`].
    pub token: String,
    // Dropped last: the server must stop before its database goes away.
    shutdown: Option<oneshot::Sender<()>>,
    _db: TestDb,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A test configuration on `db`: port 0, everything else default.
pub fn test_config(db: &TestDb) -> Config {
    let mut config = Config::default();
    config.http.listen = "127.0.0.1:0".parse().unwrap();
    config.database.url = db.url.parse::<DatabaseUrl>().unwrap();
    config.database.max_connections = 5;
    config.auth.admin = Some(autoglue::config::AdminBootstrap {
        username: ADMIN.into(),
        password: PASSWORD.to_owned().into(),
    });
    if backend() == Backend::Postgres {
        // SQLite keeps its master key next to the database by default; PostgreSQL needs one.
        config.auth.master_key = Some(vault::MasterKey::generate().to_base64().into());
        // Production's pairing: PostgreSQL with Redis for the job queue and the event bus,
        // under a prefix of this test's own.
        config.redis_url = Some(redis_url().parse().unwrap());
        config.redis_prefix = unique_redis_prefix();
    }
    config.workflows.test_workflows = true;
    config.workflows.workers = 4;
    config.workflows.cancel_poll = std::time::Duration::from_millis(100);
    config
}

/// Starts a server on a fresh database with the default test configuration.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts a server after `customize` adjusted the configuration.
pub async fn spawn_app_with(customize: impl FnOnce(&mut Config)) -> TestApp {
    init_logs();
    let db = TestDb::new().await;
    let mut config = test_config(&db);
    customize(&mut config);
    let app = Application::build(config).await.expect("server starts");
    let addr = app.local_addr();
    let state = app.state().clone();
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(app.run_until_stopped(async {
        let _ = rx.await;
    }));
    let mut app = TestApp {
        addr,
        http: http_client().build().unwrap(),
        state,
        token: String::new(),
        shutdown: Some(tx),
        _db: db,
    };
    app.token = app.login(ADMIN, PASSWORD).await;
    app
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Posts a GraphQL request as the instance admin and returns the whole JSON response.
    pub async fn gql(&self, query: &str, variables: Value) -> Value {
        self.gql_as(Some(&self.token), query, variables).await
    }

    /// Posts a GraphQL request with `token` as bearer (none: anonymous).
    pub async fn gql_as(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let mut req = self
            .http
            .post(self.url("/graphql"))
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        req.send()
            .await
            .expect("request sent")
            .json()
            .await
            .expect("JSON response")
    }

    /// Like [`Self::gql_as`], asserting success and returning `data`.
    pub async fn gql_ok_as(&self, token: &str, query: &str, variables: Value) -> Value {
        let resp = self.gql_as(Some(token), query, variables).await;
        assert!(resp.get("errors").is_none(), "unexpected errors: {resp:#}");
        resp["data"].clone()
    }

    /// Signs in and returns the access token.
    pub async fn login(&self, username: &str, password: &str) -> String {
        let resp = self
            .gql_as(
                None,
                "mutation($u: String!, $p: String!) { login(input: {username: $u, password: $p}) { accessToken } }",
                json!({ "u": username, "p": password }),
            )
            .await;
        resp["data"]["login"]["accessToken"]
            .as_str()
            .unwrap_or_else(|| panic!("login of {username} failed: {resp}"))
            .to_owned()
    }

    /// Creates a user (as the admin) and returns their access token.
    pub async fn user(&self, username: &str) -> String {
        self.gql_ok(
            "mutation($u: String!, $p: String!) { createUser(input: {username: $u, password: $p}) { user { id } } }",
            json!({ "u": username, "p": PASSWORD }),
        )
        .await;
        self.login(username, PASSWORD).await
    }

    /// Creates an organization as the holder of `token`; returns its global ID.
    pub async fn create_org_as(&self, token: &str, name: &str) -> String {
        let data = self
            .gql_ok_as(
                token,
                "mutation($name: String!) { createOrganization(input: {name: $name}) { organization { id } } }",
                json!({ "name": name }),
            )
            .await;
        data["createOrganization"]["organization"]["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Posts a GraphQL request that must succeed and returns its `data`.
    pub async fn gql_ok(&self, query: &str, variables: Value) -> Value {
        let resp = self.gql(query, variables).await;
        assert!(resp.get("errors").is_none(), "unexpected errors: {resp:#}");
        resp["data"].clone()
    }

    /// Creates a cluster in organization `org` from the fields of `CreateClusterInput` given
    /// in GraphQL syntax after `organizationId` (e.g. `name: "prod"`); returns its global ID.
    pub async fn create_cluster(&self, org: &str, fields: &str) -> Value {
        self.gql_ok(
            &format!("mutation($o: ID!) {{ createCluster(input: {{organizationId: $o, {fields}}}) {{ cluster {{ id }} }} }}"),
            json!({ "o": org }),
        )
        .await["createCluster"]["cluster"]["id"]
            .clone()
    }

    /// Creates a node pool in cluster `cluster` from the fields of `CreateNodePoolInput` given
    /// in GraphQL syntax after `clusterId`; returns its global ID.
    pub async fn create_pool(&self, cluster: &Value, fields: &str) -> Value {
        self.gql_ok(
            &format!("mutation($c: ID!) {{ createNodePool(input: {{clusterId: $c, {fields}}}) {{ nodePool {{ id }} }} }}"),
            json!({ "c": cluster }),
        )
        .await["createNodePool"]["nodePool"]["id"]
            .clone()
    }

    /// Creates an organization and returns its global ID.
    pub async fn create_org(&self, name: &str) -> String {
        let data = self
            .gql_ok(
                "mutation($name: String!) { createOrganization(input: {name: $name}) { organization { id } } }",
                json!({ "name": name }),
            )
            .await;
        data["createOrganization"]["organization"]["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Opens a graphql-transport-ws connection as the admin and starts `query` on it.
    pub async fn subscribe(&self, query: &str) -> Subscription {
        self.subscribe_as(Some(&self.token), query).await
    }

    /// Opens a graphql-transport-ws connection with `token` (none: anonymous).
    pub async fn subscribe_as(&self, token: Option<&str>, query: &str) -> Subscription {
        subscribe_at(self.addr, token, query).await
    }
}

/// Opens a graphql-transport-ws connection to the server at `addr` with `token` (none:
/// anonymous) and starts `query` on it.
pub async fn subscribe_at(addr: SocketAddr, token: Option<&str>, query: &str) -> Subscription {
    let mut req = format!("ws://{addr}/graphql")
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let (mut ws, resp) = tokio_tungstenite::connect_async(req)
        .await
        .expect("websocket opens");
    assert_eq!(
        resp.headers().get("sec-websocket-protocol").unwrap(),
        "graphql-transport-ws"
    );
    let send = |v: Value| Message::text(v.to_string());
    let payload = match token {
        Some(token) => json!({ "Authorization": format!("Bearer {token}") }),
        None => json!({}),
    };
    ws.send(send(
        json!({ "type": "connection_init", "payload": payload }),
    ))
    .await
    .unwrap();
    let mut sub = Subscription { ws };
    // Authentication runs first: give a loaded machine more than one event's wait.
    let ack = sub
        .next_message_within(Duration::from_secs(10))
        .await
        .expect("connection_ack");
    assert_eq!(ack["type"], "connection_ack", "{ack}");
    sub.ws
        .send(send(
            json!({ "id": "1", "type": "subscribe", "payload": { "query": query } }),
        ))
        .await
        .unwrap();
    sub
}

/// A live subscription over graphql-transport-ws.
pub struct Subscription {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl Subscription {
    /// The next protocol message (pings answered), or None after `Self::WAIT`.
    pub async fn next_message(&mut self) -> Option<Value> {
        self.next_message_within(Self::WAIT).await
    }

    /// The next protocol message (pings answered), or None after `wait`.
    pub async fn next_message_within(&mut self, wait: Duration) -> Option<Value> {
        loop {
            let msg = tokio::time::timeout(wait, self.ws.next())
                .await
                .ok()??
                .ok()?;
            match msg {
                Message::Text(t) => {
                    let v: Value = serde_json::from_str(t.as_str()).unwrap();
                    if v["type"] == "ping" {
                        self.ws
                            .send(Message::text(r#"{"type":"pong"}"#))
                            .await
                            .ok()?;
                        continue;
                    }
                    return Some(v);
                }
                Message::Close(_) => return None,
                _ => continue,
            }
        }
    }

    const WAIT: Duration = Duration::from_millis(500);
}

/// `errors[0].extensions.code` of a response.
pub fn error_code(resp: &Value) -> &str {
    resp["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code in {resp:#}"))
}

/// The `autoglue` binary built with these tests.
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_autoglue"))
}

/// A command for the binary with a clean environment (no AUTOGLUE_* from the caller).
pub fn autoglue() -> std::process::Command {
    let mut cmd = std::process::Command::new(binary());
    cmd.env_clear();
    for key in ["PATH", "HOME", "TMPDIR"] {
        if let Some(v) = std::env::var_os(key) {
            cmd.env(key, v);
        }
    }
    cmd
}

/// The one `error: …` line a failed run of the binary printed on stderr.
pub fn one_error_line(out: &std::process::Output) -> String {
    assert!(!out.status.success(), "expected a failure, got {out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.trim_end().lines().collect();
    assert_eq!(lines.len(), 1, "expected one line, got: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    lines[0].to_owned()
}

/// Waits until the binary started as `child` answers `GET {base}/healthz`; fails the test
/// when it exits first or takes more than a minute.
pub async fn wait_until_serving(child: &mut std::process::Child, base: &str) {
    let http = http_client().build().unwrap();
    let started = std::time::Instant::now();
    while http.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "server did not start"
        );
        if let Some(status) = child.try_wait().unwrap() {
            panic!("server exited early: {status}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A raw graphql-transport-ws socket, for tests that drive several operations on one
/// connection and watch how it closes.
pub struct Socket {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

/// What a socket said next.
#[derive(Debug)]
pub enum Said {
    Message(Value),
    Closed(Option<u16>),
    Silent,
}

impl Socket {
    /// Opens a socket to `addr` without sending anything.
    pub async fn connect(addr: SocketAddr) -> Socket {
        let mut req = format!("ws://{addr}/graphql")
            .into_client_request()
            .unwrap();
        req.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            "graphql-transport-ws".parse().unwrap(),
        );
        let (ws, _) = tokio_tungstenite::connect_async(req)
            .await
            .expect("websocket opens");
        Socket { ws }
    }

    /// Opens a socket and initialises it with `payload`, asserting the ack.
    pub async fn open(addr: SocketAddr, payload: Value) -> Socket {
        let mut socket = Socket::connect(addr).await;
        socket
            .send_json(json!({ "type": "connection_init", "payload": payload }))
            .await;
        match socket.next_within(Duration::from_secs(10)).await {
            Said::Message(ack) if ack["type"] == "connection_ack" => socket,
            other => panic!("expected connection_ack, got {other:?}"),
        }
    }

    /// Opens a socket as the holder of bearer `token`.
    pub async fn open_with_token(addr: SocketAddr, token: &str) -> Socket {
        Socket::open(addr, json!({ "Authorization": format!("Bearer {token}") })).await
    }

    pub async fn send_json(&mut self, v: Value) {
        self.ws.send(Message::text(v.to_string())).await.unwrap();
    }

    /// Starts operation `id`.
    pub async fn start(&mut self, id: &str, query: &str, variables: Value) {
        self.send_json(json!({ "id": id, "type": "subscribe",
            "payload": { "query": query, "variables": variables } }))
            .await;
    }

    /// Runs a query or mutation as operation `id` and returns its `payload` (the response).
    pub async fn run(&mut self, id: &str, query: &str, variables: Value) -> Value {
        self.start(id, query, variables).await;
        loop {
            match self.next_within(Duration::from_secs(10)).await {
                Said::Message(m) if m["id"] == id && m["type"] == "next" => {
                    return m["payload"].clone();
                }
                Said::Message(m) if m["id"] == id && m["type"] == "error" => {
                    return json!({ "errors": m["payload"] });
                }
                Said::Message(_) => continue,
                other => panic!("operation {id} got no answer: {other:?}"),
            }
        }
    }

    /// The next message (pings answered), the close, or silence for `wait`.
    pub async fn next_within(&mut self, wait: Duration) -> Said {
        loop {
            let msg = match tokio::time::timeout(wait, self.ws.next()).await {
                Err(_) => return Said::Silent,
                Ok(None) | Ok(Some(Err(_))) => return Said::Closed(None),
                Ok(Some(Ok(msg))) => msg,
            };
            match msg {
                Message::Text(t) => {
                    let v: Value = serde_json::from_str(t.as_str()).unwrap();
                    if v["type"] == "ping" {
                        let _ = self.ws.send(Message::text(r#"{"type":"pong"}"#)).await;
                        continue;
                    }
                    return Said::Message(v);
                }
                Message::Close(frame) => return Said::Closed(frame.map(|f| u16::from(f.code))),
                _ => continue,
            }
        }
    }

    /// Waits up to `wait` for the socket to close, skipping other messages; its close code.
    pub async fn closed_within(&mut self, wait: Duration) -> Option<u16> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_within(left).await {
                Said::Closed(code) => return code,
                Said::Silent => panic!("the socket stayed open for {wait:?}"),
                Said::Message(_) => continue,
            }
        }
    }
}

/// Waits (at most 10 s) until something accepts TCP connections on 127.0.0.1:`port`.
pub async fn wait_for_port(port: u16) {
    let started = std::time::Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "nothing listens on port {port}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
