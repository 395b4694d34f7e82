//! A PostgreSQL and a Redis of the test's own (initdb and pg_ctl, redis-server, each on a
//! port of its own) stopped under a running server and started again: meanwhile requests
//! answer `SERVICE_UNAVAILABLE` at once and `/readyz` names the dependency; it is ready
//! again within 2 s of the return.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use crate::helpers::{error_code, free_port, redis_url, spawn_app_with, unique_redis_prefix};

/// A PostgreSQL cluster in a temporary folder, run as the `postgres` user; stopped on drop.
struct OwnPostgres {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    _dir: tempfile::TempDir,
}

fn run_as_postgres(program: &Path, args: &[&str]) {
    let out = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(program)
        .args(args)
        .output()
        .expect("runuser runs");
    assert!(out.status.success(), "{program:?} {args:?}: {out:?}");
}

impl OwnPostgres {
    fn start() -> OwnPostgres {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("the PostgreSQL server is installed")
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|p| p.join("initdb").exists())
            .max()
            .expect("initdb is installed");
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("chown")
            .args(["-R", "postgres:"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(status.success());
        let data = dir.path().join("data");
        let data_arg = data.to_str().unwrap().to_owned();
        run_as_postgres(
            &bin.join("initdb"),
            &[
                "-D",
                &data_arg,
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        );
        let pg = OwnPostgres {
            bin,
            data,
            port: free_port(),
            _dir: dir,
        };
        pg.up();
        pg
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn up(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.data.display()
        );
        let log = self.data.join("server.log");
        run_as_postgres(
            &self.bin.join("pg_ctl"),
            &[
                "-D",
                self.data.to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-o",
                &options,
                "-w",
                "start",
            ],
        );
    }

    fn down(&self) {
        run_as_postgres(
            &self.bin.join("pg_ctl"),
            &[
                "-D",
                self.data.to_str().unwrap(),
                "-m",
                "fast",
                "-w",
                "stop",
            ],
        );
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", self.data.to_str().unwrap(), "-m", "immediate", "stop"])
            .output();
    }
}

async fn readyz(app: &crate::helpers::TestApp) -> (u16, Value) {
    let resp = app.http.get(app.url("/readyz")).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

#[tokio::test]
async fn requests_answer_service_unavailable_while_postgres_is_down_and_ready_soon_after() {
    let pg = OwnPostgres::start();
    let url = pg.url();
    let app = spawn_app_with(|c| {
        c.database.url = url.parse().unwrap();
        c.auth.master_key = Some(vault::MasterKey::generate().to_base64().into());
        c.redis_url = Some(redis_url().parse().unwrap());
        c.redis_prefix = unique_redis_prefix();
    })
    .await;
    let me = app.gql("{ me { username } }", json!({})).await;
    assert_eq!(me["data"]["me"]["username"], "admin", "{me}");

    pg.down();
    let asked = Instant::now();
    let me = app.gql("{ me { username } }", json!({})).await;
    assert_eq!(error_code(&me), "SERVICE_UNAVAILABLE", "{me}");
    assert!(
        me["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("database is unavailable"),
        "{me}"
    );
    assert!(
        asked.elapsed() < Duration::from_secs(15),
        "took {:?}",
        asked.elapsed()
    );
    let (status, body) = readyz(&app).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["checks"]["database"], "unavailable", "{body}");

    pg.up();
    let back = Instant::now();
    loop {
        let (status, body) = readyz(&app).await;
        if status == 200 {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(2),
            "still not ready 2 s after the database returned: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let me = app.gql("{ me { username } }", json!({})).await;
    assert_eq!(me["data"]["me"]["username"], "admin", "{me}");
}

/// A redis-server of the test's own on `port`, without persistence; killed on drop.
struct OwnRedis {
    port: u16,
    child: Option<std::process::Child>,
}

impl OwnRedis {
    fn start(port: u16) -> OwnRedis {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--port", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server starts");
        OwnRedis {
            port,
            child: Some(child),
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

#[tokio::test]
async fn readiness_names_a_lost_redis_and_returns_within_two_seconds_of_it() {
    let port = free_port();
    let mut redis = OwnRedis::start(port);
    crate::helpers::wait_for_port(port).await;
    let app = spawn_app_with(|c| {
        c.redis_url = Some(format!("redis://127.0.0.1:{port}").parse().unwrap());
        c.redis_prefix = unique_redis_prefix();
    })
    .await;
    let (status, body) = readyz(&app).await;
    assert_eq!(status, 200, "{body}");

    redis.kill();
    let lost = Instant::now();
    loop {
        let (status, body) = readyz(&app).await;
        if status == 503 {
            assert_eq!(body["checks"]["bus"], "unavailable", "{body}");
            break;
        }
        assert!(
            lost.elapsed() < Duration::from_secs(20),
            "still ready: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Away for longer than the reconnection backoff used to grow to.
    tokio::time::sleep(Duration::from_secs(6)).await;

    let _back = OwnRedis::start(redis.port);
    crate::helpers::wait_for_port(port).await;
    let back = Instant::now();
    loop {
        let (status, body) = readyz(&app).await;
        if status == 200 {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(2),
            "still not ready 2 s after Redis returned: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
