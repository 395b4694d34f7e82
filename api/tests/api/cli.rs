//! The binary itself: configuration errors, the embedded default, migrations, schema.

use std::{io::Read, process::Stdio};

use serde_json::json;

use crate::helpers::{TestDb, autoglue, free_port, one_error_line, wait_until_serving};

#[test]
fn bad_configuration_stops_with_one_line_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let toml = dir.path().join("autoglue.toml");
    std::fs::write(&toml, "listen = \"127.0.0.1:0\"\ndatbase_url = \"x\"\n").unwrap();
    /// Environment, arguments, and what the error line must name.
    type Case<'a> = (Vec<(&'a str, &'a str)>, Vec<&'a str>, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec![("AUTOGLUE_LISTEN", "nowhere")],
            vec![],
            "AUTOGLUE_LISTEN",
        ),
        (
            vec![("DATABASE_URL", "mysql://u:hunter2@h/db")],
            vec![],
            "DATABASE_URL",
        ),
        (vec![("DATABASE_URL", "::::")], vec![], "DATABASE_URL"),
        (
            vec![("AUTOGLUE_LISTN", "127.0.0.1:1")],
            vec![],
            "AUTOGLUE_LISTN",
        ),
        (
            vec![("AUTOGLUE_LOG_FORMAT", "xml")],
            vec![],
            "AUTOGLUE_LOG_FORMAT",
        ),
        (
            vec![],
            vec!["--config", toml.to_str().unwrap()],
            "datbase_url",
        ),
        (
            vec![],
            vec!["--config", "/nonexistent/autoglue.toml"],
            "/nonexistent/autoglue.toml",
        ),
    ];
    for (env, args, named) in cases {
        let out = autoglue()
            .current_dir(dir.path())
            .envs(env.clone())
            .args(&args)
            .arg("serve")
            .output()
            .unwrap();
        let line = one_error_line(&out);
        assert!(line.contains(named), "{env:?} {args:?}: {line}");
        assert!(!line.contains("hunter2"), "secret leaked: {line}");
    }
    assert!(
        !dir.path().join("autoglue.db").exists(),
        "nothing is created on a bad config"
    );
}

#[test]
fn a_port_in_use_stops_startup() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let out = autoglue()
        .current_dir(dir.path())
        .env("AUTOGLUE_LISTEN", &addr)
        .output()
        .unwrap();
    let line = one_error_line(&out);
    assert!(line.contains(&format!("cannot listen on {addr}")), "{line}");
}

#[tokio::test]
async fn the_embedded_default_serves_with_no_service_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = autoglue()
        .current_dir(dir.path())
        .env("AUTOGLUE_LISTEN", format!("127.0.0.1:{port}"))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let http = crate::helpers::http_client().build().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    wait_until_serving(&mut child, &base).await;
    let resp: serde_json::Value = http
        .post(format!("{base}/graphql"))
        .json(&json!({ "query": "{ organizations { totalCount } }" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        resp,
        json!({ "data": { "organizations": { "totalCount": 0 } } })
    );
    let graphiql = http.get(format!("{base}/graphiql")).send().await.unwrap();
    assert!(graphiql.text().await.unwrap().contains("graphiql"));
    assert!(
        dir.path().join("autoglue.db").exists(),
        "SQLite file in the working directory"
    );

    let kill = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "graceful shutdown exits 0, got {status}");
    let mut logs = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    assert!(logs.contains("listening"), "{logs}");
    assert!(logs.contains("stopped"), "{logs}");
}

fn migrate(db: &TestDb, args: &[&str]) -> String {
    let out = autoglue()
        .env("DATABASE_URL", &db.url)
        .arg("migrate")
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "migrate {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

fn count(status: &str, word: &str) -> usize {
    status.lines().filter(|l| l.starts_with(word)).count()
}

#[tokio::test]
async fn migrate_up_down_and_up_again() {
    let db = TestDb::new().await;
    migrate(&db, &["up"]);
    let status = migrate(&db, &["status"]);
    let total = count(&status, "applied");
    assert!(total >= 4, "{status}");
    assert_eq!(count(&status, "pending"), 0, "{status}");

    migrate(&db, &["down"]);
    let status = migrate(&db, &["status"]);
    assert_eq!(count(&status, "pending"), 1, "{status}");

    migrate(&db, &["down", "--all"]);
    let status = migrate(&db, &["status"]);
    assert_eq!(count(&status, "pending"), total, "{status}");

    migrate(&db, &[]);
    let status = migrate(&db, &["status"]);
    assert_eq!(count(&status, "applied"), total, "{status}");
}

#[test]
fn schema_graphql_is_current() {
    let out = autoglue().arg("schema").output().unwrap();
    assert!(out.status.success());
    let live = String::from_utf8(out.stdout).unwrap();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../schema.graphql");
    let checked_in = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        live == checked_in,
        "schema.graphql is stale: run `cargo run -q -- schema > schema.graphql`"
    );
    assert!(live.contains("createOrganization"));
}

#[test]
fn version_prints_the_crate_version() {
    let out = autoglue().arg("version").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        text.trim(),
        format!("autoglue {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn settings_named_in_docs_and_compose_exist() {
    let out = autoglue().arg("--help").output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    for file in ["README.md", "docker-compose.yml", "Dockerfile"] {
        let text = std::fs::read_to_string(format!("{root}/{file}")).unwrap();
        let mut rest = text.as_str();
        let mut seen = 0;
        while let Some(at) = rest.find("AUTOGLUE_") {
            let name: String = rest[at..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            rest = &rest[at + name.len()..];
            if name.ends_with('_') || name.starts_with("AUTOGLUE_GIT") {
                continue; // a prefix in prose, or a build argument
            }
            assert!(
                help.contains(&format!("[env: {name}")),
                "{file} names {name}, which no setting reads"
            );
            seen += 1;
        }
        assert!(seen > 0 || file == "Dockerfile", "{file} names no setting");
    }
}
