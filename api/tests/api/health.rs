//! Health, readiness, version and request ids.

use serde_json::Value;

use crate::helpers::spawn_app;

#[tokio::test]
async fn health_ready_and_version_answer() {
    let app = spawn_app().await;
    let health = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);

    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["checks"]["database"], "ok");

    let version: Value = app
        .http
        .get(app.url("/version"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(version["version"], env!("CARGO_PKG_VERSION"));
}

#[tokio::test]
async fn readiness_fails_when_the_database_is_gone() {
    let app = spawn_app().await;
    app.state.db.clone().close().await.unwrap();
    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["checks"]["database"], "unavailable");
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let app = spawn_app().await;
    let resp = app.http.get(app.url("/healthz")).send().await.unwrap();
    let id = resp.headers().get("x-request-id").expect("x-request-id");
    assert!(uuid::Uuid::parse_str(id.to_str().unwrap()).is_ok());
    let resp = app
        .http
        .get(app.url("/healthz"))
        .header("x-request-id", "caller-chosen")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "caller-chosen");
}
