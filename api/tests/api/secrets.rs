//! Secrets at rest and in transit: the master key (wrong key, create, rotate), signing-key
//! rotation, and that no secret ever reaches the logs. Most tests run the real binary.

use std::{
    fs::File,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use entity::{organization_data_keys, signing_keys};
use sea_orm::{Database, EntityTrait};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use vault::MasterKey;

use crate::helpers::{
    ADMIN, PASSWORD, TestApp, TestDb, autoglue, error_code, free_port, http_client, one_error_line,
    redis_url, spawn_app, unique_redis_prefix, wait_until_serving,
};

const LOGIN: &str = "mutation($u: String!, $p: String!) { login(input: {username: $u, password: $p}) { accessToken refreshToken } }";

/// The binary on `db` with the master key `key` (a variable and its value) and the test admin.
pub fn autoglue_on(db: &str, key: (&str, &str)) -> Command {
    let mut cmd = autoglue();
    cmd.env("DATABASE_URL", db)
        .env(key.0, key.1)
        .env("AUTOGLUE_ADMIN_USERNAME", ADMIN)
        .env("AUTOGLUE_ADMIN_PASSWORD", PASSWORD);
    if db.starts_with("postgres") {
        // PostgreSQL runs its job queue on Redis.
        cmd.env("REDIS_URL", redis_url())
            .env("AUTOGLUE_REDIS_PREFIX", unique_redis_prefix());
    }
    cmd
}

/// Runs `serve` from `cmd`, which must fail at start-up; returns its one error line.
pub fn refused(mut cmd: Command) -> String {
    let mut child = cmd
        .env("AUTOGLUE_LISTEN", format!("127.0.0.1:{}", free_port()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(60) {
            child.kill().unwrap();
            panic!("the server started instead of refusing to");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    one_error_line(&child.wait_with_output().unwrap())
}

/// `autoglue serve` as a child process on a port of its own, stderr in a file.
pub struct Server {
    child: Option<Child>,
    base: String,
    http: reqwest::Client,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Server {
    pub async fn start(mut cmd: Command) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("stderr.log");
        let port = free_port();
        let mut child = cmd
            .env("AUTOGLUE_LISTEN", format!("127.0.0.1:{port}"))
            .stderr(File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        wait_until_serving(&mut child, &base).await;
        Server {
            child: Some(child),
            base,
            http: http_client().build().unwrap(),
            log,
            _dir: dir,
        }
    }

    pub async fn gql(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let mut req = self
            .http
            .post(format!("{}/graphql", self.base))
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        req.send().await.unwrap().json().await.unwrap()
    }

    async fn gql_ok(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let resp = self.gql(token, query, variables).await;
        assert!(resp.get("errors").is_none(), "unexpected errors: {resp:#}");
        resp["data"].clone()
    }

    /// Signs in; returns `{ accessToken refreshToken }`.
    async fn login(&self, username: &str, password: &str) -> Value {
        let vars = json!({ "u": username, "p": password });
        self.gql_ok(None, LOGIN, vars).await["login"].clone()
    }

    /// Signs in as the admin and returns the access token.
    pub async fn admin_token(&self) -> String {
        let login = self.login(ADMIN, PASSWORD).await;
        login["accessToken"].as_str().unwrap().to_owned()
    }

    async fn org_names(&self, token: &str) -> Vec<Value> {
        let q = "{ organizations { edges { node { name } } } }";
        let data = self.gql_ok(Some(token), q, json!({})).await;
        let edges = data["organizations"]["edges"].as_array().unwrap().clone();
        edges
            .into_iter()
            .map(|e| e["node"]["name"].clone())
            .collect()
    }

    pub async fn create_org(&self, token: &str, name: &str) -> String {
        let q = "mutation($n: String!) { createOrganization(input: {name: $n}) { organization { id } } }";
        let data = self.gql_ok(Some(token), q, json!({ "n": name })).await;
        let id = &data["createOrganization"]["organization"]["id"];
        id.as_str().unwrap().to_owned()
    }

    /// SIGTERM, a clean exit, and everything the server logged.
    pub fn stop(mut self) -> String {
        let mut child = self.child.take().unwrap();
        let kill = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
        let status = child.wait().unwrap();
        let log = std::fs::read_to_string(&self.log).unwrap();
        assert!(status.success(), "exit {status}; logs:\n{log}");
        log
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[tokio::test]
async fn a_wrong_master_key_stops_startup_with_one_line() {
    let db = TestDb::new().await;
    let (a, b) = (MasterKey::generate(), MasterKey::generate());
    let with = |key: &MasterKey| autoglue_on(&db.url, ("AUTOGLUE_MASTER_KEY", &key.to_base64()));
    let server = Server::start(with(&a)).await;
    let token = server.admin_token().await;
    server.create_org(&token, "acme").await;
    server.stop();

    let line = refused(with(&b));
    assert!(line.contains("master key"), "{line}");
    assert!(line.contains(&a.id()) && line.contains(&b.id()), "{line}");
    assert!(!line.contains(&b.to_base64()), "the key itself is printed");

    let server = Server::start(with(&a)).await;
    let token = server.admin_token().await;
    assert_eq!(server.org_names(&token).await, vec![json!("acme")]);
    server.stop();
}

pub fn create_master(file: &Path) -> Output {
    let mut cmd = autoglue();
    cmd.args(["encrypt", "create-master", "--file"]).arg(file);
    cmd.output().unwrap()
}

#[test]
fn create_master_refuses_to_overwrite_and_is_private() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("master.key");
    let out = create_master(&file);
    assert!(out.status.success(), "{out:?}");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
    let first = std::fs::read(&file).unwrap();
    let key = MasterKey::from_file(&file).unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains(&key.id()), "{stdout}");
    assert!(
        !stdout.contains(&key.to_base64()),
        "the key itself is printed"
    );

    let line = one_error_line(&create_master(&file));
    assert!(line.contains(&file.display().to_string()), "{line}");
    assert!(line.contains("refusing to overwrite"), "{line}");
    assert_eq!(
        std::fs::read(&file).unwrap(),
        first,
        "the first key changed"
    );
}

#[tokio::test]
async fn rotate_master_rewraps_everything() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.key"), dir.path().join("b.key"));
    for file in [&a, &b] {
        assert!(create_master(file).status.success());
    }
    let with = |file: &Path| {
        autoglue_on(
            &db.url,
            ("AUTOGLUE_MASTER_KEY_FILE", file.to_str().unwrap()),
        )
    };
    let server = Server::start(with(&a)).await;
    let token = server.admin_token().await;
    server.create_org(&token, "acme").await;
    server.stop();

    let mut rotate = with(&a);
    rotate
        .args(["encrypt", "rotate-master", "--new-key-file"])
        .arg(&b);
    let out = rotate.output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains("re-wrapped 1 organization keys and 1 signing keys"),
        "{stdout}"
    );

    // Every organization key now opens with B, and says so.
    let new = MasterKey::from_file(&b).unwrap();
    let conn = Database::connect(&db.url).await.unwrap();
    let rows = organization_data_keys::Entity::find()
        .all(&conn)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    for row in rows {
        assert_eq!(row.master_key_id, new.id());
        new.unwrap(row.organization_id, &row.wrapped_key)
            .expect("the organization key opens with the new master key");
    }
    conn.close().await.unwrap();

    // The signing key opened (the admin signs in) and the organization is there.
    let server = Server::start(with(&b)).await;
    let token = server.admin_token().await;
    assert_eq!(server.org_names(&token).await, vec![json!("acme")]);
    server.stop();

    let line = refused(with(&a));
    assert!(line.contains("master key"), "{line}");
}

/// `url` with a password: PostgreSQL's trust authentication never asks for it, so the server
/// connects all the same and the logs can be searched for it. SQLite URLs have none.
fn with_db_password(url: &str) -> (String, Option<String>) {
    let mut parsed = url::Url::parse(url).unwrap();
    if parsed.scheme() != "postgres" {
        return (url.to_owned(), None);
    }
    let password = format!("dbpw-{}", uuid::Uuid::now_v7().simple());
    parsed.set_password(Some(&password)).unwrap();
    (parsed.to_string(), Some(password))
}

/// Signs in, refreshes, makes and uses an API key and an organization key, fails a login
/// with `wrong`, changes the password to `new_password` and signs in with it. Returns every
/// secret the server saw on the way, named (the 64 hex of opaque keys, JWT signatures).
async fn use_every_credential(server: &Server, wrong: &str, new: &str) -> Vec<(String, String)> {
    let s = |v: &Value| v.as_str().unwrap().to_owned();
    let first = server.login(ADMIN, PASSWORD).await;
    let q = "mutation($t: String!) { refreshToken(input: {refreshToken: $t}) { accessToken refreshToken } }";
    let vars = json!({ "t": first["refreshToken"] });
    let second = server.gql_ok(None, q, vars).await["refreshToken"].clone();
    let access = s(&second["accessToken"]);
    let q = "mutation { createApiKey(input: {name: \"ci\"}) { secret } }";
    let api_key = s(&server.gql_ok(Some(&access), q, json!({})).await["createApiKey"]["secret"]);
    let me = server
        .gql_ok(Some(&api_key), "{ me { username } }", json!({}))
        .await;
    assert_eq!(me["me"]["username"], ADMIN);

    let org = server.create_org(&access, "acme").await;
    let q = "mutation($o: ID!) { createOrganizationKey(input: {organizationId: $o, name: \"deploy\", role: MEMBER}) { secret organizationKey { key } } }";
    let data = server.gql_ok(Some(&access), q, json!({ "o": org })).await;
    let org_secret = s(&data["createOrganizationKey"]["secret"]);
    let by_org_key: Value = (server.http.post(format!("{}/graphql", server.base)))
        .header(
            "X-Org-Key",
            s(&data["createOrganizationKey"]["organizationKey"]["key"]),
        )
        .header("X-Org-Secret", &org_secret)
        .json(&json!({ "query": "{ organizations { totalCount } }" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        by_org_key["data"]["organizations"]["totalCount"], 1,
        "{by_org_key}"
    );

    let failed = server
        .gql(None, LOGIN, json!({ "u": ADMIN, "p": wrong }))
        .await;
    assert_eq!(error_code(&failed), "UNAUTHENTICATED");
    let q = "mutation($c: String!, $n: String!) { changePassword(input: {currentPassword: $c, newPassword: $n}) { user { username } } }";
    server
        .gql_ok(Some(&access), q, json!({ "c": PASSWORD, "n": new }))
        .await;
    let third = server.login(ADMIN, new).await;

    let hex = |token: &str| token.rsplit('_').next().unwrap().to_owned();
    let mut secrets = vec![
        ("API key secret".into(), hex(&api_key)),
        ("organization key secret".into(), org_secret),
    ];
    for (i, tokens) in [first, second, third].iter().enumerate() {
        secrets.push((
            format!("refresh token {i}"),
            hex(&s(&tokens["refreshToken"])),
        ));
        let signature = s(&tokens["accessToken"])
            .rsplit('.')
            .next()
            .unwrap()
            .to_owned();
        secrets.push((format!("access token {i}"), signature));
    }
    secrets
}

#[tokio::test]
async fn secrets_never_reach_the_logs() {
    let db = TestDb::new().await;
    let (db_url, db_password) = with_db_password(&db.url);
    let master = MasterKey::generate().to_base64();
    let mut cmd = autoglue_on(&db_url, ("AUTOGLUE_MASTER_KEY", &master));
    cmd.env("AUTOGLUE_LOG", "trace");
    let server = Server::start(cmd).await;
    let wrong = format!("wrong-{}", uuid::Uuid::now_v7().simple());
    let new_password = format!("new-{}", uuid::Uuid::now_v7().simple());
    let mut secrets = use_every_credential(&server, &wrong, &new_password).await;
    let log = server.stop();

    assert!(
        log.contains("listening") && log.contains("/graphql"),
        "{log}"
    );
    assert!(log.contains("TRACE"), "trace logging was on:\n{log}");
    secrets.extend([
        ("admin password".into(), PASSWORD.to_owned()),
        ("wrong password".into(), wrong),
        ("new password".into(), new_password),
        ("master key".into(), master),
    ]);
    secrets.extend(db_password.map(|p| ("database password".into(), p)));
    for (what, secret) in secrets {
        if let Some(line) = log.lines().find(|l| l.contains(&secret)) {
            panic!("the {what} reached the logs: {line}");
        }
    }
}

/// The `kid` of an access token's header.
fn kid(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

/// The `exp` claim of an access token (read, not verified).
fn exp(token: &str) -> i64 {
    let payload = token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    claims["exp"].as_i64().unwrap()
}

/// Runs `autoglue keys rotate` on the database of `app`; returns the new `kid`.
fn rotate_signing_key(app: &TestApp) -> String {
    let mut cmd = autoglue();
    cmd.env("DATABASE_URL", app.state.config.database.url.expose());
    // PostgreSQL: the key is inline; SQLite: the binary finds it next to the database.
    if let Some(key) = &app.state.config.auth.master_key {
        cmd.env("AUTOGLUE_MASTER_KEY", key.expose_secret());
    }
    let out = cmd.args(["keys", "rotate"]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let kid = stdout.trim().strip_prefix("rotated: new signing key ");
    kid.unwrap_or_else(|| panic!("{stdout}")).to_owned()
}

/// The `kid`s of `/.well-known/jwks.json`, sorted.
async fn published_kids(app: &TestApp) -> Vec<String> {
    let resp = app
        .http
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    let jwks: Value = resp.json().await.unwrap();
    let keys = jwks["keys"].as_array().unwrap().iter();
    let mut kids: Vec<String> = keys
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect();
    kids.sort_unstable();
    kids
}

#[tokio::test]
async fn rotated_signing_keys_keep_old_tokens_valid() {
    let app = spawn_app().await;
    let old_kid = kid(&app.token);
    let new_kid = rotate_signing_key(&app);
    assert_ne!(new_kid, old_kid);

    let rows = signing_keys::Entity::find()
        .all(&app.state.db)
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    let old = rows.iter().find(|r| r.kid == old_kid).unwrap();
    let new = rows.iter().find(|r| r.kid == new_kid).unwrap();
    assert!(old.retired_at.is_some() && new.retired_at.is_none());
    let published_until = old.expires_at.expect("a retired key expires").timestamp();
    assert!(
        published_until >= exp(&app.token),
        "the old key goes before its token"
    );

    let me = "{ me { username } }";
    assert_eq!(app.gql_ok(me, json!({})).await["me"]["username"], ADMIN);
    // What the periodic re-read, or a token with an unknown kid, makes the server do.
    app.state.keyring.reload().await.unwrap();
    let mut expected = vec![old_kid, new_kid.clone()];
    expected.sort_unstable();
    assert_eq!(published_kids(&app).await, expected);
    assert_eq!(app.gql_ok(me, json!({})).await["me"]["username"], ADMIN);
    let fresh = app.login(ADMIN, PASSWORD).await;
    assert_eq!(
        kid(&fresh),
        new_kid,
        "new tokens are signed with the new key"
    );
    let data = app.gql_ok_as(&fresh, me, json!({})).await;
    assert_eq!(data["me"]["username"], ADMIN);
}
