//! An email someone typed into `signUp` proves nothing: the first OIDC sign-in with that
//! address does not land in their account. Linking an identity to an existing account takes
//! its owner, signed in, asking for it.

use serde_json::json;

use crate::{
    helpers::{PASSWORD, error_code},
    oidc::{
        app_with_provider_and, browser, browser_sign_in_from, browser_sign_in_with, fragment_value,
        location,
    },
};

/// Where the server sends a fresh browser that opens `start`.
async fn browser_sign_in_start(app: &crate::helpers::TestApp, start: &str) -> String {
    browser_sign_in_start_with(&browser(), app, start).await
}

/// Where the server sends `browser` when it opens `start`.
async fn browser_sign_in_start_with(
    browser: &reqwest::Client,
    app: &crate::helpers::TestApp,
    start: &str,
) -> String {
    location(&browser.get(app.url(start)).send().await.unwrap())
}

const SIGN_UP: &str = "mutation($u: String!, $e: String!, $p: String!) {
    signUp(input: {username: $u, email: $e, password: $p}) { user { id } } }";
const ME: &str = "{ me { id username email } }";

#[tokio::test]
async fn a_squatted_email_does_not_hand_over_the_account_and_its_owner_can_link() {
    let (app, _provider) = app_with_provider_and(|c| c.auth.signup_enabled = true).await;
    // Someone registers the victim's address before the victim ever signs in.
    let squat = app
        .gql_as(
            None,
            SIGN_UP,
            json!({ "u": "squatter", "e": "victim@example.test", "p": PASSWORD }),
        )
        .await;
    let squatter_id = squat["data"]["signUp"]["user"]["id"].clone();
    assert!(squatter_id.is_string(), "{squat}");

    let landed = browser_sign_in_from(&app, "/auth/oidc/login?redirect=/", "victim").await;
    let token = fragment_value(&landed, "access_token").expect("signed in");
    let victim = app.gql_ok_as(&token, ME, json!({})).await;
    assert_ne!(
        victim["me"]["id"], squatter_id,
        "the victim landed in the squatter's account"
    );
    assert_eq!(victim["me"]["email"], "victim@example.test");
    // The squatter's account lost the address it never proved.
    let squatter = app.login("squatter", PASSWORD).await;
    let squatter = app.gql_ok_as(&squatter, ME, json!({})).await;
    assert_eq!(squatter["me"]["email"], serde_json::Value::Null);

    // A local account whose owner links their identity, signed in.
    let erin_signup = app
        .gql_as(
            None,
            SIGN_UP,
            json!({ "u": "erin", "e": "erin@example.test", "p": PASSWORD }),
        )
        .await;
    let erin_id = erin_signup["data"]["signUp"]["user"]["id"].clone();
    let erin = app.login("erin", PASSWORD).await;
    // Erin's browser asks for the link (over HTTP, as the web app does) and follows it.
    let erins_browser = browser();
    let started: serde_json::Value = erins_browser
        .post(app.url("/graphql"))
        .bearer_auth(&erin)
        .json(&json!({ "query": "mutation { startOidcLink(input: {redirect: \"/settings\"}) { url } }" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = started["data"]["startOidcLink"]["url"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(url.starts_with("/auth/oidc/login?"), "{url}");
    // Another browser with the same link (stolen, or planted on a victim) is refused.
    let elsewhere = browser_sign_in_start(&app, &url).await;
    assert_eq!(
        fragment_value(&elsewhere, "error").as_deref(),
        Some("link_refused")
    );
    let landed = browser_sign_in_with(&app, &erins_browser, &url, "erin").await;
    assert!(landed.starts_with("/settings#access_token="), "{landed}");
    let token = fragment_value(&landed, "access_token").unwrap();
    let linked = app.gql_ok_as(&token, ME, json!({})).await;
    assert_eq!(linked["me"]["id"], erin_id);
    // From then on the identity signs in to erin's account, with the address now proved.
    let again = browser_sign_in_from(&app, "/auth/oidc/login", "erin").await;
    let token = fragment_value(&again, "access_token").unwrap();
    let me = app.gql_ok_as(&token, ME, json!({})).await;
    assert_eq!(me["me"]["id"], erin_id);
    assert_eq!(me["me"]["email"], "erin@example.test");

    // Once used, the link is spent in that browser too.
    let again = browser_sign_in_start_with(&erins_browser, &app, &url).await;
    assert_eq!(
        fragment_value(&again, "error").as_deref(),
        Some("link_refused")
    );
    // The victim's identity cannot be linked to the squatter's account.
    let squatter = app.login("squatter", PASSWORD).await;
    let squatters_browser = browser();
    let started: serde_json::Value = squatters_browser
        .post(app.url("/graphql"))
        .bearer_auth(&squatter)
        .json(&json!({ "query": "mutation { startOidcLink(input: {}) { url } }" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let landed = browser_sign_in_with(
        &app,
        &squatters_browser,
        started["data"]["startOidcLink"]["url"].as_str().unwrap(),
        "victim",
    )
    .await;
    assert_eq!(
        fragment_value(&landed, "error").as_deref(),
        Some("sign_in_failed")
    );
    // And an API key cannot start a link.
    let key = app
        .gql_ok_as(
            &erin,
            "mutation { createApiKey(input: {name: \"k\"}) { secret } }",
            json!({}),
        )
        .await;
    let refused = app
        .gql_as(
            key["createApiKey"]["secret"].as_str(),
            "mutation { startOidcLink(input: {}) { url } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&refused), "FORBIDDEN", "{refused}");
}
