//! The login limit holds under parallel guesses, argon2 runs are bounded whatever the
//! traffic, and logins over a WebSocket count against the socket's address.

use autoglue::auth::argon2_gate;
use futures_util::future::join_all;
use serde_json::json;

use crate::helpers::{PASSWORD, Socket, error_code, spawn_app, spawn_app_with};

const LOGIN: &str = "mutation($u: String!, $p: String!) {
    login(input: {username: $u, password: $p}) { accessToken } }";

#[tokio::test]
async fn fifty_parallel_wrong_logins_run_at_most_the_limits_worth_of_verifications() {
    let app = spawn_app().await;
    app.user("victim").await;
    let (runs_before, _) = argon2_gate::stats();
    let answers = join_all((0..50).map(|i| {
        let app = &app;
        async move {
            app.gql_as(
                None,
                LOGIN,
                json!({ "u": "victim", "p": format!("guess number {i}") }),
            )
            .await
        }
    }))
    .await;
    let (runs_after, _) = argon2_gate::stats();
    let codes: Vec<&str> = answers.iter().map(error_code).collect();
    let limited = codes.iter().filter(|c| **c == "RATE_LIMITED").count();
    let refused = codes.iter().filter(|c| **c == "UNAUTHENTICATED").count();
    assert_eq!(limited + refused, 50, "{codes:?}");
    assert!(refused <= 5, "{refused} guesses were checked: {codes:?}");
    assert!(
        runs_after - runs_before <= 5,
        "{} argon2 verifications for 50 guesses",
        runs_after - runs_before
    );
    // The right password is refused too now: the limit holds for the pair.
    let resp = app
        .gql_as(None, LOGIN, json!({ "u": "victim", "p": PASSWORD }))
        .await;
    assert_eq!(error_code(&resp), "RATE_LIMITED");
}

fn resident_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
}

#[tokio::test]
async fn memory_stays_bounded_under_five_hundred_parallel_logins() {
    let app = spawn_app_with(|c| {
        c.limits.argon2_concurrency = 2;
        c.limits.argon2_waiting = 16;
    })
    .await;
    // Start the peak from now: the server's start-up may have been above it.
    std::fs::write("/proc/self/clear_refs", "5").expect("resets the peak resident size");
    let before = resident_kib("VmRSS:");
    let answers = join_all((0..500).map(|i| {
        let app = &app;
        async move {
            // Unknown users, each its own: the per-user limit never applies.
            app.gql_as(
                None,
                LOGIN,
                json!({ "u": format!("nobody{i}"), "p": "whatever it is" }),
            )
            .await
        }
    }))
    .await;
    let peak = resident_kib("VmHWM:");
    for a in &answers {
        let code = error_code(a);
        assert!(code == "UNAUTHENTICATED" || code == "RATE_LIMITED", "{a}");
    }
    assert!(
        answers.iter().any(|a| error_code(a) == "RATE_LIMITED"),
        "the gate's queue never filled"
    );
    let (_, most_at_once) = argon2_gate::stats();
    assert!(most_at_once <= 2, "{most_at_once} argon2 runs at once");
    // 2 runs of 19 MiB at once on memory reused, plus 500 connections: far below
    // 500 × 19 MiB (the old code grew by gigabytes, and with the gate alone by 250 MiB).
    let grown_mib = peak.saturating_sub(before) / 1024;
    assert!(grown_mib < 150, "resident memory grew by {grown_mib} MiB");
}

#[tokio::test]
async fn logins_over_a_websocket_count_against_its_address() {
    let app = spawn_app().await;
    app.user("wsuser").await;
    let mut socket = Socket::open(app.addr, json!({})).await;
    for i in 0..5 {
        let resp = socket
            .run(
                &i.to_string(),
                LOGIN,
                json!({ "u": "wsuser", "p": "not the password" }),
            )
            .await;
        assert_eq!(error_code(&resp), "UNAUTHENTICATED", "{resp}");
    }
    let resp = socket
        .run("5", LOGIN, json!({ "u": "wsuser", "p": PASSWORD }))
        .await;
    assert_eq!(error_code(&resp), "RATE_LIMITED", "{resp}");
    // The same address over HTTP is the same bucket.
    let resp = app
        .gql_as(None, LOGIN, json!({ "u": "wsuser", "p": PASSWORD }))
        .await;
    assert_eq!(error_code(&resp), "RATE_LIMITED", "{resp}");
}
