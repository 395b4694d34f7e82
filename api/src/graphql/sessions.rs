//! Sign-in over GraphQL: `login`, `refreshToken`, `logout`.

use async_graphql::{Context, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};

use super::{state, users::User};
use crate::{
    Result,
    services::{
        identities,
        sessions::{self as service, ClientInfo, Session},
    },
    viewer::viewer,
};

/// Tokens of a session. Send `accessToken` as `Authorization: Bearer …` until `expiresAt`,
/// then trade `refreshToken` for new ones with `refreshToken`.
#[derive(SimpleObject)]
pub struct AuthPayload {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_at: DateTime<Utc>,
    pub user: User,
}

impl From<Session> for AuthPayload {
    fn from(s: Session) -> Self {
        AuthPayload {
            access_token: s.access_token,
            refresh_token: s.refresh_token.expose_secret().to_owned(),
            expires_at: s.expires_at,
            user: User(s.user),
        }
    }
}

/// Input of `login`.
#[derive(InputObject)]
pub struct LoginInput {
    pub username: String,
    pub password: String,
}

/// Input of `refreshToken` and `logout`.
#[derive(InputObject)]
pub struct RefreshTokenInput {
    pub refresh_token: String,
}

/// Result of `logout`.
#[derive(SimpleObject)]
pub struct LogoutPayload {
    /// Always true: the session is over whether or not the token was still valid.
    pub ok: bool,
}

fn client<'a>(ctx: &'a Context<'_>) -> std::borrow::Cow<'a, ClientInfo> {
    match ctx.data_opt::<ClientInfo>() {
        Some(c) => std::borrow::Cow::Borrowed(c),
        None => std::borrow::Cow::Owned(ClientInfo::default()),
    }
}

/// Input of `startOidcLink`.
#[derive(InputObject)]
pub struct StartOidcLinkInput {
    /// The page of this server to land on afterwards (default `/`).
    pub redirect: Option<String>,
}

/// Result of `startOidcLink`.
#[derive(SimpleObject)]
pub struct StartOidcLinkPayload {
    /// The path of this server to send the browser to, within two minutes. It works only in
    /// the browser that made this request over HTTP (the response sets a cookie for it), once.
    pub url: String,
}

#[derive(Default)]
pub struct SessionMutation;

#[Object]
impl SessionMutation {
    /// Signs in with a username and password.
    async fn login(&self, ctx: &Context<'_>, input: LoginInput) -> Result<AuthPayload> {
        let session = service::login(
            state(ctx),
            &client(ctx),
            &input.username,
            SecretString::from(input.password),
        )
        .await?;
        Ok(session.into())
    }

    /// Trades a refresh token for new tokens; the old refresh token is spent.
    async fn refresh_token(
        &self,
        ctx: &Context<'_>,
        input: RefreshTokenInput,
    ) -> Result<AuthPayload> {
        let session = service::refresh(
            state(ctx),
            &client(ctx),
            SecretString::from(input.refresh_token),
        )
        .await?;
        Ok(session.into())
    }

    /// Starts linking an identity of the OIDC provider to your account (signed in with an
    /// access token): send the browser to `url`; after the provider it signs in to this
    /// account from then on.
    async fn start_oidc_link(
        &self,
        ctx: &Context<'_>,
        input: StartOidcLinkInput,
    ) -> Result<StartOidcLinkPayload> {
        let (url, cookie) =
            identities::start_link(state(ctx), viewer(ctx), input.redirect.as_deref())?;
        // Binds the link to this browser: call it over HTTP from the page that follows `url`.
        ctx.append_http_header("set-cookie", cookie);
        Ok(StartOidcLinkPayload { url })
    }

    /// Ends the session the refresh token belongs to.
    async fn logout(&self, ctx: &Context<'_>, input: RefreshTokenInput) -> Result<LogoutPayload> {
        service::logout(
            state(ctx),
            viewer(ctx),
            SecretString::from(input.refresh_token),
        )
        .await?;
        Ok(LogoutPayload { ok: true })
    }
}
