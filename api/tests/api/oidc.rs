//! OIDC sign-in end to end against a real OpenID provider (`scripts/oidc`, npm
//! `oidc-provider`) on loopback: the full redirect flow, as a browser would follow it.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
};

use reqwest::{StatusCode, header::LOCATION, redirect::Policy};
use serde_json::json;

use crate::helpers::{TestApp, free_port, spawn_app_with};

const CLIENT_ID: &str = "autoglue-test";
const CLIENT_SECRET: &str = "autoglue-test-secret";

/// The provider process; killed on drop.
pub struct Provider {
    child: Child,
    issuer: String,
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_provider(redirect_uri: &str) -> Provider {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/oidc/provider.mjs");
    let mut child = Command::new("node")
        .arg(script)
        .env("OIDC_PORT", "0")
        .env("OIDC_CLIENT_ID", CLIENT_ID)
        .env("OIDC_CLIENT_SECRET", CLIENT_SECRET)
        .env("OIDC_REDIRECT_URI", redirect_uri)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("node runs scripts/oidc/provider.mjs (run `npm ci --prefix scripts/oidc`)");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let issuer = line
        .trim()
        .strip_prefix("READY ")
        .unwrap_or_else(|| panic!("provider said {line:?}"))
        .to_owned();
    Provider { child, issuer }
}

/// A server configured for the provider, and the provider.
pub async fn app_with_provider() -> (TestApp, Provider) {
    app_with_provider_and(|_| {}).await
}

/// [`app_with_provider`] after `customize` adjusted the server's configuration.
pub async fn app_with_provider_and(
    customize: impl FnOnce(&mut autoglue::config::Config),
) -> (TestApp, Provider) {
    let port = free_port();
    let provider = start_provider(&format!("http://127.0.0.1:{port}/auth/oidc/callback"));
    let issuer = provider.issuer.clone();
    let app = spawn_app_with(|c| {
        c.http.listen = format!("127.0.0.1:{port}").parse().unwrap();
        c.auth.oidc = Some(autoglue::config::OidcSettings {
            issuer: issuer.parse().unwrap(),
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.to_owned().into(),
        });
        customize(c);
    })
    .await;
    (app, provider)
}

pub fn location(resp: &reqwest::Response) -> String {
    assert!(
        resp.status().is_redirection(),
        "expected a redirect, got {}",
        resp.status()
    );
    resp.headers()[LOCATION].to_str().unwrap().to_owned()
}

/// Signs `login` in through the provider like a browser; returns the final Location.
async fn browser_sign_in(app: &TestApp, login: &str) -> String {
    browser_sign_in_from(app, "/auth/oidc/login?redirect=/welcome", login).await
}

/// Signs `login` in like a browser that starts at `start` (a path of the server, or a full
/// URL the server handed out); returns the final Location.
pub async fn browser_sign_in_from(app: &TestApp, start: &str, login: &str) -> String {
    browser_sign_in_with(app, &browser(), start, login).await
}

/// A browser: cookies kept, redirects shown rather than followed.
pub fn browser() -> reqwest::Client {
    crate::helpers::http_client()
        .cookie_store(true)
        .redirect(Policy::none())
        .build()
        .unwrap()
}

/// [`browser_sign_in_from`] in `browser`, with the cookies it has.
pub async fn browser_sign_in_with(
    app: &TestApp,
    browser: &reqwest::Client,
    start: &str,
    login: &str,
) -> String {
    let start_url = if start.starts_with("http") {
        start.to_owned()
    } else {
        app.url(start)
    };
    let start = browser.get(start_url).send().await.unwrap();
    let authorize = location(&start);
    let interaction = location(&browser.get(&authorize).send().await.unwrap());
    let base = interaction
        .split("/interaction/")
        .next()
        .unwrap()
        .to_owned();
    let uid = interaction.rsplit('/').next().unwrap();
    let form = [("login", login), ("password", "secret")];
    let posted = browser
        .post(format!("{base}/interaction/{uid}/login"))
        .form(&form)
        .send()
        .await
        .unwrap();
    let resume = location(&posted);
    let callback = location(&browser.get(&resume).send().await.unwrap());
    assert!(
        callback.starts_with(&app.url("/auth/oidc/callback")),
        "{callback}"
    );
    location(&browser.get(&callback).send().await.unwrap())
}

pub fn fragment_value(location: &str, key: &str) -> Option<String> {
    let fragment = location.split_once('#')?.1;
    fragment
        .split('&')
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")).map(str::to_owned))
}

#[tokio::test]
async fn oidc_sign_in_creates_links_and_joins() {
    let (app, _provider) = app_with_provider().await;
    // An organization claims the provider's email domain.
    let org = app.create_org("claimers").await;
    app.gql_ok(
        "mutation($id: ID!) { updateOrganization(input: {id: $id, emailDomain: \"Example.TEST\"}) { organization { emailDomain } } }",
        json!({ "id": org }),
    )
    .await;
    // A claim counts once proved; an instance admin's approval proves it here.
    app.gql_ok(
        "mutation($id: ID!) { approveEmailDomain(input: {organizationId: $id, emailDomain: \"example.test\"}) { organization { emailDomainStatus } } }",
        json!({ "id": org }),
    )
    .await;

    let landed = browser_sign_in(&app, "carol").await;
    assert!(landed.starts_with("/welcome#"), "{landed}");
    let token = fragment_value(&landed, "access_token").expect("access token in the fragment");
    assert!(
        fragment_value(&landed, "refresh_token")
            .unwrap()
            .starts_with("agr_")
    );
    let me = app
        .gql_ok_as(
            &token,
            "{ me { id username email memberships { role organization { name } } } }",
            json!({}),
        )
        .await;
    assert_eq!(me["me"]["username"], "carol");
    assert_eq!(me["me"]["email"], "carol@example.test");
    assert_eq!(
        me["me"]["memberships"][0]["organization"]["name"],
        "claimers"
    );
    assert_eq!(me["me"]["memberships"][0]["role"], "MEMBER");

    // The same subject again is the same user.
    let again = browser_sign_in(&app, "carol").await;
    let token = fragment_value(&again, "access_token").unwrap();
    let me_again = app.gql_ok_as(&token, "{ me { id } }", json!({})).await;
    assert_eq!(me_again["me"]["id"], me["me"]["id"]);

    // An unverified address neither links nor joins.
    let landed = browser_sign_in(&app, "dave-unverified").await;
    let token = fragment_value(&landed, "access_token").unwrap();
    let dave = app
        .gql_ok_as(
            &token,
            "{ me { username email memberships { role } } }",
            json!({}),
        )
        .await;
    assert_eq!(dave["me"]["email"], serde_json::Value::Null);
    assert_eq!(dave["me"]["memberships"], json!([]));
}

#[tokio::test]
async fn a_forged_state_is_refused() {
    let (app, _provider) = app_with_provider().await;
    let browser = crate::helpers::http_client()
        .cookie_store(true)
        .redirect(Policy::none())
        .build()
        .unwrap();
    let start = browser
        .get(app.url("/auth/oidc/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), StatusCode::SEE_OTHER);
    let forged = browser
        .get(app.url("/auth/oidc/callback?code=stolen&state=forged"))
        .send()
        .await
        .unwrap();
    let landed = location(&forged);
    assert_eq!(
        fragment_value(&landed, "error").as_deref(),
        Some("sign_in_failed")
    );
    assert!(fragment_value(&landed, "access_token").is_none());
    // Without the login cookie at all.
    let bare = crate::helpers::http_client()
        .redirect(Policy::none())
        .build()
        .unwrap();
    let resp = bare
        .get(app.url("/auth/oidc/callback?code=x&state=y"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        fragment_value(&location(&resp), "error").as_deref(),
        Some("invalid_request")
    );
}
