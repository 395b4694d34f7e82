//! GraphQL transports and the wire shape of errors: POST, GET, WebSocket, GraphiQL.

use serde_json::{Value, json};

use crate::helpers::{error_code, spawn_app};

#[tokio::test]
async fn queries_work_over_get_but_mutations_do_not() {
    let app = spawn_app().await;
    let resp: Value = app
        .http
        .get(app.url("/graphql"))
        .query(&[("query", "{ organizations { totalCount } }")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(resp["data"]["organizations"]["totalCount"], 0);

    let resp = app
        .http
        .get(app.url("/graphql"))
        .query(&[(
            "query",
            r#"mutation { createOrganization(input: {name: "x"}) { organization { id } } }"#,
        )])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(error_code(&body), "BAD_REQUEST");
    let data = app
        .gql_ok("{ organizations { totalCount } }", json!({}))
        .await;
    assert_eq!(
        data["organizations"]["totalCount"], 0,
        "nothing was created"
    );
}

#[tokio::test]
async fn every_error_has_a_code() {
    let app = spawn_app().await;
    let resp = app.gql("{ organizations { nope } }", json!({})).await;
    assert_eq!(error_code(&resp), "GRAPHQL_VALIDATION_FAILED");
    let resp = app.gql("{ organizations { ", json!({})).await;
    assert_eq!(error_code(&resp), "GRAPHQL_PARSE_FAILED");
    let resp = app
        .gql(
            "query($n: Int) { organizations(first: $n) { totalCount } }",
            json!({ "n": "ten" }),
        )
        .await;
    assert!(
        resp["errors"][0]["extensions"]["code"].is_string(),
        "{resp}"
    );
}

#[tokio::test]
async fn subscriptions_stream_over_graphql_transport_ws() {
    let app = spawn_app().await;
    let mut sub = app
        .subscribe("subscription { organizationCreated { id name } }")
        .await;
    // The subscription is live once the server has processed `subscribe`; create until an
    // event arrives (bounded), then check it is one of ours.
    let mut created = Vec::new();
    let mut event = None;
    for i in 0..40 {
        let name = format!("live-{i}");
        app.create_org(&name).await;
        created.push(name);
        if let Some(msg) = sub.next_message().await {
            event = Some(msg);
            break;
        }
    }
    let event = event.expect("an organizationCreated event within 40 tries");
    assert_eq!(event["type"], "next", "{event}");
    assert_eq!(event["id"], "1");
    let name = event["payload"]["data"]["organizationCreated"]["name"]
        .as_str()
        .unwrap();
    assert!(
        created.iter().any(|c| c == name),
        "{name} not among {created:?}"
    );
}

#[tokio::test]
async fn graphiql_is_served_with_its_assets_from_the_binary() {
    let app = spawn_app().await;
    let resp = app.http.get(app.url("/graphiql")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let html = resp.text().await.unwrap();
    assert!(html.contains("new URL('/graphql'"), "{html}");
    // Every script and stylesheet comes from this server: the page works offline.
    let sources: Vec<&str> = html
        .split(['"', '\''])
        .filter(|s| s.ends_with(".js") || s.ends_with(".css"))
        .collect();
    assert_eq!(sources.len(), 4, "{sources:?}");
    for source in sources {
        assert!(source.starts_with("/graphiql/assets/"), "{source}");
        let asset = app
            .http
            .get(app.url(source))
            .header("accept-encoding", "gzip, deflate, br")
            .send()
            .await
            .unwrap();
        assert_eq!(asset.status(), 200, "{source}");
        let kind = asset.headers()["content-type"].to_str().unwrap().to_owned();
        let expected = if source.ends_with(".js") {
            "text/javascript"
        } else {
            "text/css"
        };
        assert!(kind.starts_with(expected), "{source}: {kind}");
        assert_eq!(asset.headers()["content-encoding"], "gzip");
        let body = asset.bytes().await.unwrap();
        assert_eq!(&body[..2], &[0x1f, 0x8b], "{source}");
        assert!(body.len() > 4_000, "{source}: {} bytes", body.len());
    }
    // A client that does not take gzip is told so; an unknown asset does not exist.
    let refused = app
        .http
        .get(app.url("/graphiql/assets/react.production.min.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 406);
    let missing = app
        .http
        .get(app.url("/graphiql/assets/nope.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn limits_refuse_deep_complex_and_aliased_queries() {
    let app = crate::helpers::spawn_app_with(|c| {
        c.graphql.max_depth = 6;
        c.graphql.max_complexity = 500;
        c.graphql.max_aliases = 3;
    })
    .await;
    let deep = "{ clusters { edges { node { nodePools { servers { cluster { name } } } } } } }";
    assert_eq!(
        error_code(&app.gql(deep, json!({})).await),
        "QUERY_TOO_DEEP"
    );
    let complex = "{ clusters(first: 100) { edges { node { name status k3sVersion region apiEndpoint createdAt } } } }";
    assert_eq!(
        error_code(&app.gql(complex, json!({})).await),
        "QUERY_TOO_COMPLEX"
    );
    let aliased = "{ a: me { username } b: me { username } c: me { username } d: me { username } }";
    let resp = app.gql(aliased, json!({}));
    let resp = resp.await;
    assert_eq!(error_code(&resp), "TOO_MANY_ALIASES");
    assert!(
        resp["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("4 aliases")
    );
    let fine = "{ a: me { username } b: me { username } }";
    assert!(app.gql(fine, json!({})).await["data"]["a"]["username"].is_string());
}

#[tokio::test]
async fn introspection_can_be_turned_off() {
    let app = crate::helpers::spawn_app_with(|c| c.graphql.introspection = false).await;
    let resp = app.gql("{ __schema { types { name } } }", json!({})).await;
    assert!(
        resp["data"]["__schema"].is_null(),
        "no schema is revealed: {resp}"
    );
    assert!(app.gql("{ me { username } }", json!({})).await["data"]["me"].is_object());
}
