//! An email someone typed into `signUp` proves nothing: the first OIDC sign-in with that
//! address does not land in their account. Linking an identity to an existing account takes
//! its owner, signed in, asking for it.

use serde_json::json;

use crate::{
    helpers::{PASSWORD, error_code},
    oidc::{app_with_provider_and, browser_sign_in_from, fragment_value},
};

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
    let started = app
        .gql_ok_as(
            &erin,
            "mutation { startOidcLink(input: {redirect: \"/settings\"}) { url } }",
            json!({}),
        )
        .await;
    let url = started["startOidcLink"]["url"].as_str().unwrap();
    assert!(url.starts_with("/auth/oidc/login?"), "{url}");
    let landed = browser_sign_in_from(&app, url, "erin").await;
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

    // The victim's identity cannot be linked to the squatter's account.
    let squatter = app.login("squatter", PASSWORD).await;
    let started = app
        .gql_ok_as(
            &squatter,
            "mutation { startOidcLink(input: {}) { url } }",
            json!({}),
        )
        .await;
    let landed = browser_sign_in_from(
        &app,
        started["startOidcLink"]["url"].as_str().unwrap(),
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
