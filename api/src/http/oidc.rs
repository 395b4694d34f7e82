//! `/auth/oidc/login` and `/auth/oidc/callback`: the browser side of OIDC sign-in.
//!
//! On success the callback redirects to the web app's page with the session's tokens in the
//! URL fragment (`#access_token=…&refresh_token=…&expires_at=…`): fragments are never sent
//! to servers, so the tokens do not land in proxy or server logs. Failures redirect with
//! `#error=…`.

use axum::{
    extract::{Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
};
use secrecy::ExposeSecret;
use serde::Deserialize;

use super::{HttpState, redirect::safe_redirect};
use crate::{
    auth::oidc::{COOKIE, LINK_COOKIE, cookie},
    services::{
        identities,
        sessions::{self, ClientInfo},
    },
};

#[derive(Deserialize)]
pub struct LoginQuery {
    /// Where the web app wants to land afterwards: a path on this server.
    redirect: Option<String>,
    /// A link ticket (`startOidcLink`): the identity signed in links to that user.
    link: Option<String>,
}

/// Starts a sign-in at the provider.
pub async fn login(
    State(state): State<HttpState>,
    headers: HeaderMap,
    Query(q): Query<LoginQuery>,
) -> Response {
    let Some(oidc) = state.app.oidc.as_ref() else {
        return (StatusCode::NOT_FOUND, "OIDC sign-in is not configured").into_response();
    };
    // A link ticket works only in the browser that asked for it, once.
    let nonce = read_cookie(&headers, LINK_COOKIE);
    let link_user = match q.link.as_deref() {
        Some(ticket) => match oidc.open_link_ticket(ticket, nonce.as_deref()) {
            Some(user) => Some(user),
            None => return Redirect::to("/#error=link_refused").into_response(),
        },
        None => None,
    };
    match oidc
        .start(safe_redirect(q.redirect.as_deref()), link_user)
        .await
    {
        Ok((url, sealed)) => {
            let secure = url.starts_with("https://");
            let mut resp = (
                [(header::SET_COOKIE, cookie(COOKIE, &sealed, 600, secure))],
                Redirect::to(&url),
            )
                .into_response();
            if link_user.is_some()
                && let Ok(spent) = cookie(LINK_COOKIE, "", 0, secure).parse()
            {
                resp.headers_mut().append(header::SET_COOKIE, spent);
            }
            resp
        }
        Err(e) => {
            tracing::error!(error = ?e, "cannot start OIDC sign-in");
            (
                StatusCode::BAD_GATEWAY,
                "the identity provider cannot be reached",
            )
                .into_response()
        }
    }
}

#[derive(Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

fn read_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| {
            c.trim()
                .strip_prefix(&format!("{name}="))
                .map(str::to_owned)
        })
}

/// Finishes a sign-in: verifies everything, signs the user in, hands the tokens over.
pub async fn callback(
    State(state): State<HttpState>,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let Some(oidc) = state.app.oidc.as_ref() else {
        return (StatusCode::NOT_FOUND, "OIDC sign-in is not configured").into_response();
    };
    let clear = [(header::SET_COOKIE, cookie(COOKIE, "", 0, false))];
    let fail =
        |reason: &str| (clear.clone(), Redirect::to(&format!("/#error={reason}"))).into_response();
    if let Some(error) = q.error {
        tracing::info!(%error, "the provider refused the sign-in");
        return fail("provider_refused");
    }
    let (Some(code), Some(st), Some(sealed)) = (q.code, q.state, read_cookie(&headers, COOKIE))
    else {
        return fail("invalid_request");
    };
    let finished = match oidc.finish(&sealed, code, &st).await {
        Ok(found) => found,
        Err(e) => {
            tracing::warn!(error = %e, "OIDC sign-in failed");
            return fail("sign_in_failed");
        }
    };
    let redirect = finished.redirect;
    let signed_in = match finished.link_user {
        Some(user) => identities::link(&state.app, user, &finished.claims).await,
        None => identities::sign_in(&state.app, &finished.claims).await,
    };
    let user = match signed_in {
        Ok(user) => user,
        Err(e) => {
            tracing::warn!(error = ?e, "OIDC sign-in refused");
            return fail("sign_in_failed");
        }
    };
    let client = ClientInfo {
        ip: String::new(),
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    };
    match sessions::start_session(&state.app, &client, user, uuid::Uuid::now_v7()).await {
        Ok(s) => {
            let fragment = format!(
                "access_token={}&refresh_token={}&expires_at={}",
                s.access_token,
                s.refresh_token.expose_secret(),
                s.expires_at.timestamp()
            );
            // Checked again: the cookie may come from a build that checked less.
            let redirect = safe_redirect(Some(&redirect));
            (clear, Redirect::to(&format!("{redirect}#{fragment}"))).into_response()
        }
        Err(e) => {
            tracing::error!(error = ?e, "cannot start a session");
            fail("sign_in_failed")
        }
    }
}
