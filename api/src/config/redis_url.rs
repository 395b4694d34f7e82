//! [`RedisUrl`]: a validated Redis URL that never shows its password.

use std::{fmt, str::FromStr};

use secrecy::{ExposeSecret, SecretString};

/// `redis://[user:password@]host[:port][/db]`, or `rediss://` for TLS (the server's
/// certificate checked against the system's roots, or those of `SSL_CERT_FILE`), checked at
/// start-up. The URL may hold a
/// password, so it is kept secret: `Debug` and [`RedisUrl::redacted`] mask it.
#[derive(Clone)]
pub struct RedisUrl(SecretString);

impl RedisUrl {
    /// The URL itself, for the client only.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// The URL with any password replaced by `***`, fit for logs and errors.
    pub fn redacted(&self) -> String {
        match url::Url::parse(self.expose()) {
            Ok(mut u) if u.password().is_some() => {
                let _ = u.set_password(Some("***"));
                u.to_string()
            }
            Ok(u) => u.to_string(),
            Err(_) => "<unparseable>".into(),
        }
    }
}

impl FromStr for RedisUrl {
    type Err = String;

    /// Accepts `redis://` and `rediss://` URLs with a host. Errors never repeat the value: it may hold a
    /// password.
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let parsed =
            url::Url::parse(s).map_err(|e| format!("not a URL ({e}); expected redis://…"))?;
        match parsed.scheme() {
            "redis" | "rediss" if parsed.host_str().is_some_and(|h| !h.is_empty()) => {
                Ok(RedisUrl(SecretString::from(s.to_owned())))
            }
            scheme @ ("redis" | "rediss") => Err(format!("a {scheme}:// URL needs a host")),
            other => Err(format!(
                "unsupported scheme {other:?}; expected redis://… or rediss://… (TLS)"
            )),
        }
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RedisUrl").field(&self.redacted()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_urls_are_checked() {
        let u: RedisUrl = "redis://127.0.0.1:6379/2".parse().unwrap();
        assert_eq!(u.expose(), "redis://127.0.0.1:6379/2");
        assert!("http://127.0.0.1".parse::<RedisUrl>().is_err());
        let tls: RedisUrl = "rediss://cache:6380".parse().unwrap();
        assert_eq!(tls.expose(), "rediss://cache:6380");
        assert!("redis://".parse::<RedisUrl>().is_err());
        assert!("rediss://".parse::<RedisUrl>().is_err());
    }

    #[test]
    fn passwords_never_show() {
        let u: RedisUrl = "redis://:hunter2@cache:6379".parse().unwrap();
        assert!(!u.redacted().contains("hunter2"), "{}", u.redacted());
        assert!(u.redacted().contains("cache:6379"));
        assert!(!format!("{u:?}").contains("hunter2"));
        let e = "memcache://bob:hunter2@cache"
            .parse::<RedisUrl>()
            .err()
            .unwrap();
        assert!(!e.contains("hunter2") && e.contains("memcache"), "{e}");
        let e = "redis://bob:hunter2@[oops"
            .parse::<RedisUrl>()
            .err()
            .unwrap();
        assert!(!e.contains("hunter2"), "{e}");
    }
}
