//! GraphiQL in a real browser: Debian's chromium driven by playwright-core
//! (`scripts/browser/graphiql_live.mjs`, installed by `scripts/test`). The page loads with
//! nothing from outside this server, and a subscription typed into it shows a run's steps
//! updating live, on both backends.

use serde_json::Value;

use crate::helpers::spawn_app;

#[tokio::test]
async fn graphiql_shows_a_runs_steps_updating_live() {
    let app = spawn_app().await;
    let org = app.create_org("live").await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../scripts/browser/graphiql_live.mjs"
    );
    let args = [app.url(""), app.token.clone(), org];
    // Off the runtime's thread: the app under test serves from it meanwhile.
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node")
            .arg(script)
            .args(args)
            .output()
    })
    .await
    .unwrap()
    .expect("node runs the browser tests (scripts/test installs Node.js' packages and chromium)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "browser driver: {e}\nstdout: {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(report["failed"], serde_json::json!([]), "{report:#}");
    // Over GraphiQL's WebSocket: the run as it was, then its events, ending with its success.
    let events: Vec<Value> = report["frames"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| serde_json::from_str::<Value>(f.as_str()?).ok())
        .filter(|f| f["type"] == "next")
        .map(|f| f["payload"]["data"]["workflowRunUpdated"].clone())
        .collect();
    let last = events.last().expect("events over the WebSocket");
    assert_eq!(
        (&last["type"], &last["status"]),
        (&"RUN".into(), &"SUCCEEDED".into())
    );
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "STEP" && e["status"] == "SUCCEEDED"),
        "{events:#?}"
    );
    assert!(events[0]["run"]["status"] != "SUCCEEDED", "{events:#?}");
    // And on screen: the response pane changed as they came, to the finished run.
    let shown: Vec<&str> = report["shown"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(shown.len() >= 2, "{shown:#?}");
    assert!(
        !shown[0].contains("\"status\": \"SUCCEEDED\""),
        "{shown:#?}"
    );
    let finished: Value = serde_json::from_str(shown.last().unwrap()).unwrap();
    let run = &finished["data"]["workflowRunUpdated"]["run"];
    assert_eq!(run["status"], "SUCCEEDED");
    assert_eq!(run["steps"][0]["name"], "sleep");
    assert_eq!(run["steps"][1]["status"], "SUCCEEDED");
}
