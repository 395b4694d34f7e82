//! The OIDC login's `redirect` is a path of this server or nothing: never a way to hand the
//! session's tokens to another host.

use crate::oidc::{app_with_provider, browser_sign_in_from, fragment_value};

/// Each `redirect` (as sent in the query, percent-encoded) lands on `/` with the tokens, not
/// on the path a browser would read as another host.
#[tokio::test]
async fn a_redirect_that_could_leave_the_server_lands_on_the_root() {
    let (app, _provider) = app_with_provider().await;
    for (i, encoded) in [
        "%2F%09%2Fevil.com",     // "/<TAB>/evil.com": browsers drop the tab
        "%2F%0A%2Fevil.com",     // "/<LF>/evil.com"
        "%2F%0D%2Fevil.com",     // "/<CR>/evil.com"
        "%2F%00%2Fevil.com",     // "/<NUL>/evil.com"
        "%2F%2509%2Fevil.com",   // "/%09/evil.com"
        "%2F%250a%2Fevil.com",   // "/%0a/evil.com"
        "%2F%5Cevil.com",        // "/\evil.com": browsers read \ as /
        "%2F%252F%252Fevil.com", // "/%2F%2Fevil.com"
        "https%3Aevil.com",      // "https:evil.com"
        "%2F%2Fevil.com",        // "//evil.com"
    ]
    .into_iter()
    .enumerate()
    {
        let login = format!("redir{i}");
        let landed = browser_sign_in_from(
            &app,
            &format!("/auth/oidc/login?redirect={encoded}"),
            &login,
        )
        .await;
        assert!(landed.starts_with("/#access_token="), "{encoded}: {landed}");
        assert!(!landed.contains("evil"), "{encoded}: {landed}");
    }
    // Good paths are kept, with their query.
    let landed = browser_sign_in_from(
        &app,
        "/auth/oidc/login?redirect=%2Fclusters%2F42%3Ftab%3Dnodes",
        "redirgood",
    )
    .await;
    assert!(
        landed.starts_with("/clusters/42?tab=nodes#access_token="),
        "{landed}"
    );
    assert!(fragment_value(&landed, "refresh_token").is_some());
}
