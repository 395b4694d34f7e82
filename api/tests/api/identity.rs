//! Sign-in, tokens, refresh rotation, API keys, organization keys.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{ADMIN, PASSWORD, error_code, spawn_app, spawn_app_with};

const LOGIN: &str = "mutation($u: String!, $p: String!) {
    login(input: {username: $u, password: $p}) { accessToken refreshToken expiresAt user { username isAdmin } } }";
const REFRESH: &str = "mutation($t: String!) { refreshToken(input: {refreshToken: $t}) { accessToken refreshToken } }";
const ME: &str = "{ me { username isAdmin memberships { role organization { name } } } }";

#[tokio::test]
async fn the_bootstrapped_admin_signs_in_and_reads_me() {
    let app = spawn_app().await;
    let data = app.gql_ok_as(&app.token, ME, json!({})).await;
    assert_eq!(data["me"]["username"], ADMIN);
    assert_eq!(data["me"]["isAdmin"], true);

    let anonymous = app.gql_as(None, ME, json!({})).await;
    assert_eq!(error_code(&anonymous), "UNAUTHENTICATED");
}

#[tokio::test]
async fn wrong_credentials_read_the_same_and_are_rate_limited() {
    let app = spawn_app().await;
    let wrong = app
        .gql_as(None, LOGIN, json!({ "u": ADMIN, "p": "not the password" }))
        .await;
    let unknown = app
        .gql_as(
            None,
            LOGIN,
            json!({ "u": "nobody", "p": "not the password" }),
        )
        .await;
    assert_eq!(error_code(&wrong), "UNAUTHENTICATED");
    assert_eq!(
        wrong["errors"][0]["message"],
        unknown["errors"][0]["message"]
    );

    for _ in 0..5 {
        app.gql_as(
            None,
            LOGIN,
            json!({ "u": "victim", "p": "guess guess guess" }),
        )
        .await;
    }
    let limited = app
        .gql_as(
            None,
            LOGIN,
            json!({ "u": "victim", "p": "guess guess guess" }),
        )
        .await;
    assert_eq!(error_code(&limited), "RATE_LIMITED");
    // Other usernames are not affected.
    let ok = app
        .gql_as(None, LOGIN, json!({ "u": ADMIN, "p": PASSWORD }))
        .await;
    assert!(ok["data"]["login"]["accessToken"].is_string(), "{ok}");
}

#[tokio::test]
async fn tampered_and_garbage_tokens_are_refused() {
    let app = spawn_app().await;
    let mut tampered = app.token.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    for token in [tampered.as_str(), "garbage", "agu_0123456789ab_00"] {
        let resp = app
            .http
            .post(app.url("/graphql"))
            .bearer_auth(token)
            .json(&json!({ "query": "{ me { username } }" }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401, "{token}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(error_code(&body), "UNAUTHENTICATED");
    }
}

#[tokio::test]
async fn access_tokens_expire() {
    let app = spawn_app_with(|c| c.auth.access_token_ttl = Duration::from_secs(1)).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let resp = app.gql(ME, json!({})).await;
    assert_eq!(error_code(&resp), "UNAUTHENTICATED");
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_family() {
    let app = spawn_app().await;
    let login = app
        .gql_as(None, LOGIN, json!({ "u": ADMIN, "p": PASSWORD }))
        .await;
    let first = login["data"]["login"]["refreshToken"]
        .as_str()
        .unwrap()
        .to_owned();

    let next = app.gql_as(None, REFRESH, json!({ "t": first })).await;
    let second = next["data"]["refreshToken"]["refreshToken"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(first, second);
    let access = next["data"]["refreshToken"]["accessToken"]
        .as_str()
        .unwrap();
    assert_eq!(
        app.gql_ok_as(access, ME, json!({})).await["me"]["username"],
        ADMIN
    );

    // The spent token again: refused, and the family with it.
    let reused = app.gql_as(None, REFRESH, json!({ "t": first })).await;
    assert_eq!(error_code(&reused), "UNAUTHENTICATED");
    let after = app.gql_as(None, REFRESH, json!({ "t": second })).await;
    assert_eq!(
        error_code(&after),
        "UNAUTHENTICATED",
        "the whole family is revoked"
    );
}

#[tokio::test]
async fn logout_ends_the_session() {
    let app = spawn_app().await;
    let login = app
        .gql_as(None, LOGIN, json!({ "u": ADMIN, "p": PASSWORD }))
        .await;
    let refresh = login["data"]["login"]["refreshToken"].as_str().unwrap();
    let out = app
        .gql_as(
            None,
            "mutation($t: String!) { logout(input: {refreshToken: $t}) { ok } }",
            json!({ "t": refresh }),
        )
        .await;
    assert_eq!(out["data"]["logout"]["ok"], true);
    let resp = app.gql_as(None, REFRESH, json!({ "t": refresh })).await;
    assert_eq!(error_code(&resp), "UNAUTHENTICATED");
}

#[tokio::test]
async fn jwks_alone_verifies_tokens() {
    let app = spawn_app().await;
    let jwks: jsonwebtoken::jwk::JwkSet = app
        .http
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let header = jsonwebtoken::decode_header(&app.token).unwrap();
    let kid = header.kid.expect("tokens carry a kid");
    let jwk = jwks.find(&kid).expect("the signing key is published");
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
    validation.set_issuer(&["autoglue"]);
    let claims = jsonwebtoken::decode::<Value>(&app.token, &key, &validation)
        .unwrap()
        .claims;
    assert!(claims["sub"].is_string());
    assert!(claims["exp"].as_i64().unwrap() > claims["iat"].as_i64().unwrap());
}

const CREATE_KEY: &str = "mutation($name: String!, $exp: DateTime) {
    createApiKey(input: {name: $name, expiresAt: $exp}) { secret apiKey { id prefix name } } }";

#[tokio::test]
async fn api_keys_authenticate_until_revoked() {
    let app = spawn_app().await;
    let data = app.gql_ok(CREATE_KEY, json!({ "name": "ci" })).await;
    let secret = data["createApiKey"]["secret"].as_str().unwrap().to_owned();
    let id = data["createApiKey"]["apiKey"]["id"].clone();
    assert!(secret.starts_with(data["createApiKey"]["apiKey"]["prefix"].as_str().unwrap()));

    for _ in 0..2 {
        // The second call is served from the verified-key cache.
        let me = app
            .gql_ok_as(&secret, "{ me { username } }", json!({}))
            .await;
        assert_eq!(me["me"]["username"], ADMIN);
    }
    let listed = app
        .gql_ok(
            "{ me { apiKeys { name lastUsedAt secretless: prefix } } }",
            json!({}),
        )
        .await;
    assert_eq!(listed["me"]["apiKeys"][0]["name"], "ci");
    assert!(listed["me"]["apiKeys"][0]["lastUsedAt"].is_string());
    assert!(
        !listed.to_string().contains(&secret[20..]),
        "the secret is never listed"
    );

    app.gql_ok(
        "mutation($id: ID!) { revokeApiKey(input: {id: $id}) { apiKey { revokedAt } } }",
        json!({ "id": id }),
    )
    .await;
    let resp = app
        .gql_as(Some(&secret), "{ me { username } }", json!({}))
        .await;
    assert_eq!(
        error_code(&resp),
        "UNAUTHENTICATED",
        "a revoked key fails at once"
    );
}

#[tokio::test]
async fn expired_api_keys_fail() {
    let app = spawn_app().await;
    let past = app
        .gql(
            CREATE_KEY,
            json!({ "name": "old", "exp": "2020-01-01T00:00:00Z" }),
        )
        .await;
    assert_eq!(error_code(&past), "BAD_USER_INPUT");
    let soon = (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339();
    let data = app
        .gql_ok(CREATE_KEY, json!({ "name": "brief", "exp": soon }))
        .await;
    let secret = data["createApiKey"]["secret"].as_str().unwrap().to_owned();
    assert!(
        app.gql_as(Some(&secret), "{ me { username } }", json!({}))
            .await["data"]["me"]
            .is_object()
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let resp = app
        .gql_as(Some(&secret), "{ me { username } }", json!({}))
        .await;
    assert_eq!(error_code(&resp), "UNAUTHENTICATED");
}

#[tokio::test]
async fn organization_keys_act_as_their_organization() {
    let app = spawn_app().await;
    let org = app.create_org("acme").await;
    app.create_org("other").await;
    let data = app
        .gql_ok(
            "mutation($org: ID!) { createOrganizationKey(input: {organizationId: $org, name: \"deploy\", role: MEMBER}) {
                secret organizationKey { key role } } }",
            json!({ "org": org }),
        )
        .await;
    let key = data["createOrganizationKey"]["organizationKey"]["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let secret = data["createOrganizationKey"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();

    let query =
        json!({ "query": "{ organizations { totalCount edges { node { name viewerRole } } } }" });
    let by_headers: Value = app
        .http
        .post(app.url("/graphql"))
        .header("X-Org-Key", &key)
        .header("X-Org-Secret", &secret)
        .json(&query)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        by_headers["data"]["organizations"]["totalCount"], 1,
        "{by_headers}"
    );
    assert_eq!(
        by_headers["data"]["organizations"]["edges"][0]["node"]["name"],
        "acme"
    );
    assert_eq!(
        by_headers["data"]["organizations"]["edges"][0]["node"]["viewerRole"],
        "MEMBER"
    );

    let bearer = format!("{key}_{secret}");
    let as_bearer = app
        .gql_ok_as(&bearer, "{ organizations { totalCount } }", json!({}))
        .await;
    assert_eq!(as_bearer["organizations"]["totalCount"], 1);

    // A member-role key cannot make keys.
    let denied = app
        .gql_as(
            Some(&bearer),
            "mutation { createOrganizationKey(input: {name: \"x\", role: VIEWER}) { secret } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&denied), "FORBIDDEN");
}

#[tokio::test]
async fn upkeep_sweeps_expired_credentials_and_rotates_old_keys() {
    use entity::{api_keys, refresh_tokens, signing_keys};
    use sea_orm::{ActiveModelTrait, EntityTrait, IntoActiveModel, PaginatorTrait, Set};

    let app = spawn_app().await;
    let login = app
        .gql_as(None, LOGIN, json!({ "u": ADMIN, "p": PASSWORD }))
        .await;
    assert!(login["data"]["login"]["refreshToken"].is_string());
    app.gql_ok(CREATE_KEY, json!({ "name": "old" })).await;
    let db = &app.state.db;
    let past = chrono::Utc::now() - chrono::Duration::hours(1);
    for token in refresh_tokens::Entity::find().all(db).await.unwrap() {
        let mut token = token.into_active_model();
        token.expires_at = Set(past);
        token.update(db).await.unwrap();
    }
    let mut key = api_keys::Entity::find()
        .one(db)
        .await
        .unwrap()
        .unwrap()
        .into_active_model();
    key.expires_at = Set(Some(past));
    key.update(db).await.unwrap();

    let swept = workflows::housekeeping::sweep_expired(&app.state.db)
        .await
        .unwrap();
    assert!(swept >= 3, "two refresh tokens and one key, got {swept}");
    assert_eq!(refresh_tokens::Entity::find().count(db).await.unwrap(), 0);
    assert_eq!(api_keys::Entity::find().count(db).await.unwrap(), 0);

    // A signing key older than the rotation period is replaced; the old one stays published.
    app.state
        .keyring
        .rotate_if_older_than(Duration::ZERO)
        .await
        .unwrap();
    let keys = signing_keys::Entity::find().all(db).await.unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys.iter().filter(|k| k.retired_at.is_some()).count(), 1);
    let jwks: Value = app
        .http
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
    // Tokens of the old key still work; new ones carry the new kid.
    assert_eq!(app.gql_ok(ME, json!({})).await["me"]["username"], ADMIN);
    let fresh = app.login(ADMIN, PASSWORD).await;
    let old_kid = jsonwebtoken::decode_header(&app.token).unwrap().kid;
    assert_ne!(jsonwebtoken::decode_header(&fresh).unwrap().kid, old_kid);
}

const SIGN_UP: &str = "mutation { signUp(input: {username: \"newbie\", email: \"New@Example.com\", password: \"a long enough password\"}) { user { username email isAdmin } } }";

#[tokio::test]
async fn sign_up_is_closed_unless_configured() {
    let closed = spawn_app().await;
    assert_eq!(
        error_code(&closed.gql_as(None, SIGN_UP, json!({})).await),
        "FORBIDDEN"
    );

    let open = spawn_app_with(|c| c.auth.signup_enabled = true).await;
    let data = open.gql_as(None, SIGN_UP, json!({})).await;
    assert_eq!(
        data["data"]["signUp"]["user"]["email"], "new@example.com",
        "{data}"
    );
    assert_eq!(data["data"]["signUp"]["user"]["isAdmin"], false);
    let again = open.gql_as(None, SIGN_UP, json!({})).await;
    assert_eq!(error_code(&again), "CONFLICT");
    open.login("newbie", "a long enough password").await;
}

#[tokio::test]
async fn profiles_and_passwords_change() {
    let app = spawn_app().await;
    let token = app.user("erin").await;
    let data = app
        .gql_ok_as(
            &token,
            "mutation { updateProfile(input: {displayName: \" Erin E. \", avatarUrl: \"https://img.example/e.png\"}) { user { displayName avatarUrl } } }",
            json!({}),
        )
        .await;
    assert_eq!(data["updateProfile"]["user"]["displayName"], "Erin E.");
    let bad = app.gql_as(Some(&token), "mutation { updateProfile(input: {avatarUrl: \"javascript:alert(1)\"}) { user { id } } }", json!({})).await;
    assert_eq!(bad["errors"][0]["extensions"]["field"], "input.avatarUrl");

    let change = "mutation($c: String!, $n: String!) { changePassword(input: {currentPassword: $c, newPassword: $n}) { user { username } } }";
    let wrong = app
        .gql_as(
            Some(&token),
            change,
            json!({ "c": "not my password", "n": "another long password" }),
        )
        .await;
    assert_eq!(
        wrong["errors"][0]["extensions"]["field"],
        "input.currentPassword"
    );
    let short = app
        .gql_as(Some(&token), change, json!({ "c": PASSWORD, "n": "short" }))
        .await;
    assert_eq!(
        short["errors"][0]["extensions"]["field"],
        "input.newPassword"
    );
    app.gql_ok_as(
        &token,
        change,
        json!({ "c": PASSWORD, "n": "another long password" }),
    )
    .await;
    let old = app
        .gql_as(None, LOGIN, json!({ "u": "erin", "p": PASSWORD }))
        .await;
    assert_eq!(error_code(&old), "UNAUTHENTICATED");
    app.login("erin", "another long password").await;
}
