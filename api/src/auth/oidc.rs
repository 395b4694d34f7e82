//! Sign-in through an OpenID Connect provider: authorization code flow with PKCE.
//!
//! `/auth/oidc/login` makes a state, a nonce and a PKCE verifier, keeps them in a cookie
//! sealed with the instance key (so any instance can finish the flow, and the browser can
//! neither read nor forge it), and redirects to the provider. `/auth/oidc/callback` checks
//! the state, exchanges the code (oauth2 crate), verifies the ID token against the
//! provider's JWKS (signature, issuer, audience, expiry, nonce) and returns its claims.

use std::sync::Arc;

use anyhow::{Context, anyhow, bail};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::Utc;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, jwk::JwkSet};
use oauth2::{
    AuthUrl, AuthorizationCode, Client, ClientId, ClientSecret, CsrfToken, EndpointNotSet,
    EndpointSet, ExtraTokenFields, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
    StandardRevocableToken, StandardTokenResponse, TokenUrl,
    basic::{
        BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
        BasicTokenType,
    },
};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use uuid::Uuid;
use vault::{DataKey, SealContext};

use crate::config::OidcSettings;

/// Name of the cookie holding the sealed login state.
pub const COOKIE: &str = "ag_oidc";
/// How long a login may take at the provider.
const LOGIN_TTL_SECS: i64 = 600;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct IdTokenField {
    id_token: String,
}
impl ExtraTokenFields for IdTokenField {}

type OidcClient = Client<
    BasicErrorResponse,
    StandardTokenResponse<IdTokenField, BasicTokenType>,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

#[derive(Debug, Clone, Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
}

/// What the login cookie carries between the two redirects.
#[derive(Serialize, Deserialize)]
struct LoginState {
    state: String,
    nonce: String,
    verifier: String,
    redirect: String,
    exp: i64,
    /// The signed-in user who asked to link this sign-in's identity to their account.
    #[serde(default)]
    link_user: Option<Uuid>,
}

/// What a link ticket carries: who asked to link, until when, and the nonce of the cookie
/// the asking browser got with it (so only that browser can use it).
#[derive(Serialize, Deserialize)]
struct LinkTicket {
    user: Uuid,
    exp: i64,
    nonce: String,
}

/// A cookie of the sign-in pages (`Path=/auth/oidc`, HttpOnly, SameSite=Lax).
pub fn cookie(name: &str, value: &str, max_age: i64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{name}={value}; Path=/auth/oidc; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}")
}

/// Name of the cookie that binds a link ticket to the browser that asked for it.
pub const LINK_COOKIE: &str = "ag_oidc_link";

/// How long a link ticket may wait before its sign-in starts.
pub const LINK_TTL_SECS: i64 = 120;

fn link_context() -> SealContext<'static> {
    SealContext::new("oidc", "link_ticket", Uuid::nil())
}

/// Where a finished sign-in goes: the user's claims, the page, and the account to link to.
pub struct Finished {
    pub claims: IdClaims,
    pub redirect: String,
    pub link_user: Option<Uuid>,
}

/// The verified claims of an ID token that sign-in uses.
#[derive(Debug, Clone, Deserialize)]
pub struct IdClaims {
    pub iss: String,
    pub sub: String,
    pub nonce: Option<String>,
    pub email: Option<String>,
    #[serde(default)]
    pub email_verified: bool,
    pub name: Option<String>,
    pub preferred_username: Option<String>,
    pub picture: Option<String>,
}

/// The configured provider; discovery is fetched on first use and kept.
pub struct Oidc {
    settings: OidcSettings,
    redirect_uri: String,
    http: reqwest::Client,
    discovery: Mutex<Option<Discovery>>,
    key: Arc<DataKey>,
}

fn seal_context() -> SealContext<'static> {
    SealContext::new("oidc", "login_state", Uuid::nil())
}

impl Oidc {
    /// A provider client whose callback is `<public_url>/auth/oidc/callback`.
    pub fn new(
        settings: OidcSettings,
        public_url: &str,
        key: Arc<DataKey>,
    ) -> anyhow::Result<Oidc> {
        let http = reqwest::Client::builder()
            // The token endpoint must answer, not redirect (the oauth2 crate's advice).
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .context("building the OIDC HTTP client")?;
        Ok(Oidc {
            settings,
            redirect_uri: format!("{public_url}/auth/oidc/callback"),
            http,
            discovery: Mutex::new(None),
            key,
        })
    }

    async fn discovery(&self) -> anyhow::Result<Discovery> {
        let mut cached = self.discovery.lock().await;
        if let Some(d) = cached.as_ref() {
            return Ok(d.clone());
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.settings.issuer.as_str().trim_end_matches('/')
        );
        let found: Discovery = self
            .http
            .get(&url)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await
            .with_context(|| format!("reading {url}"))?;
        if found.issuer.trim_end_matches('/') != self.settings.issuer.as_str().trim_end_matches('/')
        {
            bail!(
                "the provider names issuer {} instead of {}",
                found.issuer,
                self.settings.issuer
            );
        }
        *cached = Some(found.clone());
        Ok(found)
    }

    fn client(&self, d: &Discovery) -> anyhow::Result<OidcClient> {
        Ok(Client::new(ClientId::new(self.settings.client_id.clone()))
            .set_client_secret(ClientSecret::new(
                self.settings.client_secret.expose_secret().to_owned(),
            ))
            .set_auth_uri(AuthUrl::new(d.authorization_endpoint.clone())?)
            .set_token_uri(TokenUrl::new(d.token_endpoint.clone())?)
            .set_redirect_uri(RedirectUrl::new(self.redirect_uri.clone())?))
    }

    /// A ticket for `user` to start a sign-in whose identity links to their account
    /// (`/auth/oidc/login?link=…`), and the nonce to set as the [`LINK_COOKIE`] of the
    /// browser that asked; sealed, valid for two minutes.
    pub fn link_ticket(&self, user: Uuid) -> (String, String) {
        let nonce = CsrfToken::new_random().secret().clone();
        let ticket = LinkTicket {
            user,
            exp: Utc::now().timestamp() + LINK_TTL_SECS,
            nonce: nonce.clone(),
        };
        let plain = serde_json::to_vec(&ticket).expect("a ticket encodes");
        let sealed = URL_SAFE_NO_PAD.encode(self.key.seal(&link_context(), &plain));
        (sealed, nonce)
    }

    /// The user a ticket from [`Self::link_ticket`] names, if it opens, has not expired and
    /// comes with its browser's cookie `nonce`.
    pub fn open_link_ticket(&self, ticket: &str, nonce: Option<&str>) -> Option<Uuid> {
        let sealed = URL_SAFE_NO_PAD.decode(ticket).ok()?;
        let plain = self.key.open(&link_context(), &sealed).ok()?;
        let ticket: LinkTicket = serde_json::from_slice(&plain).ok()?;
        let same_browser = nonce.is_some_and(|n| {
            use subtle_eq::ct_eq;
            ct_eq(n.as_bytes(), ticket.nonce.as_bytes())
        });
        (same_browser && ticket.exp >= Utc::now().timestamp()).then_some(ticket.user)
    }

    /// The provider URL to send the browser to, and the sealed cookie value to set.
    pub async fn start(
        &self,
        redirect: String,
        link_user: Option<Uuid>,
    ) -> anyhow::Result<(String, String)> {
        let d = self.discovery().await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let nonce = CsrfToken::new_random().secret().clone();
        let (url, state) = self
            .client(&d)?
            .authorize_url(CsrfToken::new_random)
            .add_scopes(["openid", "email", "profile"].map(|s| Scope::new(s.into())))
            .add_extra_param("nonce", nonce.clone())
            .set_pkce_challenge(challenge)
            .url();
        let login = LoginState {
            state: state.secret().clone(),
            nonce,
            verifier: verifier.secret().clone(),
            redirect,
            exp: Utc::now().timestamp() + LOGIN_TTL_SECS,
            link_user,
        };
        let sealed = self.key.seal(&seal_context(), &serde_json::to_vec(&login)?);
        Ok((url.to_string(), URL_SAFE_NO_PAD.encode(sealed)))
    }

    /// Finishes the flow: checks `state` against the cookie, exchanges `code`, verifies the
    /// ID token. Returns its claims, where the web app wanted to go, and who asked to link.
    pub async fn finish(
        &self,
        cookie: &str,
        code: String,
        state: &str,
    ) -> anyhow::Result<Finished> {
        let sealed = URL_SAFE_NO_PAD
            .decode(cookie)
            .context("malformed login cookie")?;
        let plain = self
            .key
            .open(&seal_context(), &sealed)
            .map_err(|_| anyhow!("login cookie does not open"))?;
        let login: LoginState = serde_json::from_slice(&plain).context("login cookie")?;
        if login.exp < Utc::now().timestamp() {
            bail!("the login took too long; start again");
        }
        if login.state != state {
            bail!("state does not match the login cookie");
        }
        let d = self.discovery().await?;
        let token = self
            .client(&d)?
            .exchange_code(AuthorizationCode::new(code))
            .set_pkce_verifier(PkceCodeVerifier::new(login.verifier))
            .request_async(&self.http)
            .await
            .map_err(|e| anyhow!("exchanging the code: {e}"))?;
        let id_token = &token.extra_fields().id_token;
        let claims = self.verify_id_token(&d, id_token).await?;
        if claims.nonce.as_deref() != Some(login.nonce.as_str()) {
            bail!("ID token nonce does not match");
        }
        Ok(Finished {
            claims,
            redirect: login.redirect,
            link_user: login.link_user,
        })
    }

    async fn verify_id_token(&self, d: &Discovery, token: &str) -> anyhow::Result<IdClaims> {
        let header = jsonwebtoken::decode_header(token).context("ID token header")?;
        if !matches!(
            header.alg,
            Algorithm::RS256 | Algorithm::ES256 | Algorithm::EdDSA | Algorithm::PS256
        ) {
            bail!("ID token algorithm {:?} is not accepted", header.alg);
        }
        let jwks: JwkSet = self
            .http
            .get(&d.jwks_uri)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await
            .context("reading the provider's JWKS")?;
        let jwk = match &header.kid {
            Some(kid) => jwks.find(kid),
            None => jwks.keys.first(),
        }
        .ok_or_else(|| anyhow!("the provider's JWKS has no key {:?}", header.kid))?;
        let key = DecodingKey::from_jwk(jwk).context("provider key")?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[d.issuer.as_str()]);
        validation.set_audience(&[self.settings.client_id.as_str()]);
        validation.leeway = 30;
        let data =
            jsonwebtoken::decode::<IdClaims>(token, &key, &validation).context("ID token")?;
        Ok(data.claims)
    }
}

mod subtle_eq {
    /// Equality that takes as long whatever the first difference.
    pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}
