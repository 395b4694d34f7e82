//! The registry of credential kinds: for each, the provider it belongs to and the shape of
//! its secret, validated field by field from client JSON.
//!
//! Errors name the offending field (`input.secret.accessKeyId`) and say what is expected,
//! never what was sent: a secret typed into the wrong field must not come back in an error
//! or a log line. Adding a kind means one struct, one arm in [`Secret::parse`] and one in
//! [`provider`].

use entity::enums::CredentialKind;
use serde::Serialize;
use serde_json::{Map, Value};
use vault::Zeroizing;

use super::scope::aws_region;
use crate::{Error, Result};

/// Who issued a credential, derived from its kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    Aws,
    Cloudflare,
    Hetzner,
    Digitalocean,
    /// Not tied to a provider (basic auth, OAuth 2 clients).
    Generic,
}

/// The provider of credentials of `kind`.
pub fn provider(kind: CredentialKind) -> Provider {
    match kind {
        CredentialKind::AwsAccessKey => Provider::Aws,
        CredentialKind::CloudflareApiToken => Provider::Cloudflare,
        CredentialKind::HetznerApiToken => Provider::Hetzner,
        CredentialKind::DigitaloceanApiToken => Provider::Digitalocean,
        CredentialKind::BasicAuth | CredentialKind::Oauth2Client => Provider::Generic,
    }
}

/// The fields a secret of `kind` may hold, in the order they are documented.
pub fn fields_of(kind: CredentialKind) -> &'static [&'static str] {
    match kind {
        CredentialKind::AwsAccessKey => {
            &["accessKeyId", "secretAccessKey", "sessionToken", "region"]
        }
        CredentialKind::CloudflareApiToken
        | CredentialKind::HetznerApiToken
        | CredentialKind::DigitaloceanApiToken => &["token"],
        CredentialKind::BasicAuth => &["username", "password"],
        CredentialKind::Oauth2Client => &["clientId", "clientSecret", "tokenUrl", "scopes"],
    }
}

/// AWS access key: long-term (`AKIA…`) or temporary (`ASIA…`, with a session token).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AwsAccessKey {
    access_key_id: String,
    secret_access_key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    session_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    region: Option<String>,
}

/// A provider API token (Cloudflare, Hetzner, DigitalOcean).
#[derive(Serialize)]
pub struct ApiToken {
    token: String,
}

/// A user name and password.
#[derive(Serialize)]
pub struct BasicAuth {
    username: String,
    password: String,
}

/// An OAuth 2 client for the client-credentials grant.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Oauth2Client {
    client_id: String,
    client_secret: String,
    token_url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    scopes: Option<Vec<String>>,
}

/// A validated secret of one kind, as it is sealed.
#[derive(Serialize)]
#[serde(untagged)]
pub enum Secret {
    AwsAccessKey(AwsAccessKey),
    ApiToken(ApiToken),
    BasicAuth(BasicAuth),
    Oauth2Client(Oauth2Client),
}

impl Secret {
    /// Validates `value` as the secret of a `kind` credential; errors name fields under
    /// `path` (such as `input.secret`).
    pub fn parse(kind: CredentialKind, value: &Value, path: &str) -> Result<Secret> {
        let f = Fields::new(value, path, kind)?;
        Ok(match kind {
            CredentialKind::AwsAccessKey => Secret::AwsAccessKey(aws_access_key(&f)?),
            CredentialKind::CloudflareApiToken
            | CredentialKind::HetznerApiToken
            | CredentialKind::DigitaloceanApiToken => Secret::ApiToken(ApiToken {
                token: check(&f, "token", f.required("token")?, |v| printable(v, 8, 4096))?,
            }),
            CredentialKind::BasicAuth => Secret::BasicAuth(BasicAuth {
                username: check(&f, "username", f.required("username")?, |v| {
                    one_line(v, 256)
                })?,
                password: check(&f, "password", f.required("password")?, |v| {
                    one_line(v, 4096)
                })?,
            }),
            CredentialKind::Oauth2Client => Secret::Oauth2Client(oauth2_client(&f)?),
        })
    }

    /// The secret as sealed: JSON bytes, zeroized when dropped.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        // Serializing plain strings into a Vec cannot fail.
        Zeroizing::new(serde_json::to_vec(self).expect("a secret serializes"))
    }
}

fn aws_access_key(f: &Fields<'_>) -> Result<AwsAccessKey> {
    let access_key_id = check(f, "accessKeyId", f.required("accessKeyId")?, |v| {
        let ok = v.len() == 20
            && (v.starts_with("AKIA") || v.starts_with("ASIA"))
            && v.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
        ok.then(|| v.to_owned())
            .ok_or_else(|| "must be AKIA or ASIA followed by 16 uppercase letters or digits".into())
    })?;
    let secret_access_key = check(f, "secretAccessKey", f.required("secretAccessKey")?, |v| {
        let ok = v.len() == 40
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'/' || b == b'+');
        ok.then(|| v.to_owned())
            .ok_or_else(|| "must be 40 characters of letters, digits, '/' and '+'".into())
    })?;
    let session_token = f
        .optional("sessionToken")?
        .map(|v| check(f, "sessionToken", v, |v| printable(v, 16, 8192)))
        .transpose()?;
    if access_key_id.starts_with("ASIA") && session_token.is_none() {
        return Err(Error::bad_input(
            f.path("sessionToken"),
            "temporary keys (ASIA…) need their session token",
        ));
    }
    let region = f
        .optional("region")?
        .map(|v| aws_region(v, &f.path("region")))
        .transpose()?;
    Ok(AwsAccessKey {
        access_key_id,
        secret_access_key,
        session_token,
        region,
    })
}

fn oauth2_client(f: &Fields<'_>) -> Result<Oauth2Client> {
    let client_id = check(f, "clientId", f.required("clientId")?, |v| {
        printable(v, 1, 512)
    })?;
    let client_secret = check(f, "clientSecret", f.required("clientSecret")?, |v| {
        one_line(v, 4096)
    })?;
    let token_url = check(f, "tokenUrl", f.required("tokenUrl")?, https_url)?;
    let scopes = f.string_list("scopes")?;
    if let Some(scopes) = &scopes {
        for (i, scope) in scopes.iter().enumerate() {
            printable(scope, 1, 256)
                .map_err(|m| Error::bad_input(format!("{}[{i}]", f.path("scopes")), m))?;
        }
    }
    Ok(Oauth2Client {
        client_id,
        client_secret,
        token_url,
        scopes,
    })
}

/// Runs `rule` on field `name`, turning its complaint into `BAD_USER_INPUT` there.
fn check(
    f: &Fields<'_>,
    name: &str,
    value: &str,
    rule: impl Fn(&str) -> Result<String, String>,
) -> Result<String> {
    rule(value).map_err(|m| Error::bad_input(f.path(name), m))
}

/// `min..=max` visible ASCII characters, no spaces (tokens, ids).
fn printable(v: &str, min: usize, max: usize) -> Result<String, String> {
    if v.len() < min || v.len() > max || !v.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "must be {min} to {max} visible ASCII characters without spaces"
        ));
    }
    Ok(v.to_owned())
}

/// Non-empty text of at most `max` characters on one line.
fn one_line(v: &str, max: usize) -> Result<String, String> {
    if v.is_empty() || v.chars().count() > max || v.chars().any(char::is_control) {
        return Err(format!("must be 1 to {max} characters on one line"));
    }
    Ok(v.to_owned())
}

/// An `https://` URL with a host and no user info.
fn https_url(v: &str) -> Result<String, String> {
    let url = url::Url::parse(v).map_err(|_| "must be a URL".to_owned())?;
    if url.scheme() != "https" || url.host_str().is_none_or(str::is_empty) {
        return Err("must be an https:// URL".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not contain a user name or password".into());
    }
    Ok(url.to_string())
}

/// The members of a secret object, checked against the fields its kind knows.
struct Fields<'a> {
    object: &'a Map<String, Value>,
    path: &'a str,
}

impl<'a> Fields<'a> {
    fn new(value: &'a Value, path: &'a str, kind: CredentialKind) -> Result<Self> {
        let known = fields_of(kind);
        let expected = || known.join(", ");
        let Value::Object(object) = value else {
            return Err(Error::bad_input(
                path,
                format!("must be an object with the fields {}", expected()),
            ));
        };
        if let Some(unknown) = object.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(Error::bad_input(
                format!("{path}.{unknown}"),
                format!("unknown field for this kind; expected {}", expected()),
            ));
        }
        Ok(Fields { object, path })
    }

    fn path(&self, name: &str) -> String {
        format!("{}.{name}", self.path)
    }

    /// A string that must be present.
    fn required(&self, name: &str) -> Result<&'a str> {
        self.optional(name)?
            .ok_or_else(|| Error::bad_input(self.path(name), "is required"))
    }

    /// A string that may be absent or null.
    fn optional(&self, name: &str) -> Result<Option<&'a str>> {
        match self.object.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(Error::bad_input(self.path(name), "must be a string")),
        }
    }

    /// A list of strings that may be absent or null.
    fn string_list(&self, name: &str) -> Result<Option<Vec<String>>> {
        let items = match self.object.get(name) {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Array(items)) => items,
            Some(_) => {
                return Err(Error::bad_input(
                    self.path(name),
                    "must be a list of strings",
                ));
            }
        };
        items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(s) => Ok(s.clone()),
                _ => Err(Error::bad_input(
                    format!("{}[{i}]", self.path(name)),
                    "must be a string",
                )),
            })
            .collect::<Result<_>>()
            .map(Some)
    }
}

#[cfg(test)]
#[path = "secret_test.rs"]
mod tests;
