//! A WebSocket is held to the limits an HTTP request is: its messages to the body limit, its
//! start to a `connection_init` in time, its operations and its identity's sockets to a
//! number.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{Said, Socket, error_code, spawn_app_with};

const ORGS_CREATED: &str = "subscription { organizationCreated { id } }";

#[tokio::test]
async fn a_message_over_the_body_limit_closes_the_socket() {
    let app = spawn_app_with(|_| {}).await;
    let mut socket = Socket::open_with_token(app.addr, &app.token).await;
    let padding = "x".repeat(3 * 1024 * 1024);
    socket
        .start(
            "1",
            &format!("{{ me {{ username }} }} # {padding}"),
            json!({}),
        )
        .await;
    match socket.next_within(Duration::from_secs(10)).await {
        Said::Closed(_) => {}
        other => panic!("a 3 MiB message was taken: {other:?}"),
    }
}

#[tokio::test]
async fn a_socket_without_connection_init_is_closed_with_4408() {
    let app = spawn_app_with(|c| c.limits.socket_init_timeout = Duration::from_secs(1)).await;
    let mut socket = Socket::connect(app.addr).await;
    let started = std::time::Instant::now();
    assert_eq!(
        socket.closed_within(Duration::from_secs(5)).await,
        Some(4408)
    );
    assert!(started.elapsed() >= Duration::from_millis(900));
}

#[tokio::test]
async fn operations_per_socket_are_bounded() {
    let app = spawn_app_with(|c| c.limits.socket_operations = 3).await;
    let mut socket = Socket::open_with_token(app.addr, &app.token).await;
    for id in ["1", "2", "3"] {
        socket.start(id, ORGS_CREATED, json!({})).await;
    }
    // Each authorizes before it takes its place: give them the time.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let refused = socket.run("4", "{ me { username } }", json!({})).await;
    assert_eq!(error_code(&refused), "RATE_LIMITED", "{refused}");
    // Ending one frees its place.
    socket
        .send_json(json!({ "id": "1", "type": "complete" }))
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let me = socket.run("5", "{ me { username } }", json!({})).await;
    assert_eq!(me["data"]["me"]["username"], "admin", "{me}");
}

#[tokio::test]
async fn sockets_per_identity_are_bounded() {
    let app = spawn_app_with(|c| c.limits.sockets_per_identity = 2).await;
    let first = Socket::open_with_token(app.addr, &app.token).await;
    let _second = Socket::open_with_token(app.addr, &app.token).await;
    let mut third = Socket::connect(app.addr).await;
    third
        .send_json(json!({ "type": "connection_init",
            "payload": { "Authorization": format!("Bearer {}", app.token) } }))
        .await;
    match third.next_within(Duration::from_secs(5)).await {
        Said::Closed(_) => {}
        other => panic!("a third socket was accepted: {other:?}"),
    }
    // Another user is not affected, and closing a socket frees its place.
    let bob = app.user("bob").await;
    let _bobs = Socket::open_with_token(app.addr, &bob).await;
    drop(first);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _again = Socket::open_with_token(app.addr, &app.token).await;
    // Anonymous sockets count per address.
    let _a = Socket::open(app.addr, json!({})).await;
    let _b = Socket::open(app.addr, json!({})).await;
    let mut c = Socket::connect(app.addr).await;
    c.send_json(json!({ "type": "connection_init", "payload": {} }))
        .await;
    match c.next_within(Duration::from_secs(5)).await {
        Said::Closed(_) => {}
        other => panic!("a third anonymous socket was accepted: {other:?}"),
    }
}
