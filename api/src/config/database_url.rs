//! [`DatabaseUrl`]: a validated database URL that never shows its password.

use std::{fmt, str::FromStr};

use secrecy::{ExposeSecret, SecretString};

/// `postgres://…` or `sqlite:…`, checked at start-up. The URL may hold a password, so it is
/// kept secret: `Debug` and [`DatabaseUrl::redacted`] mask it.
#[derive(Clone)]
pub struct DatabaseUrl(SecretString);

/// Which database engine a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

impl DatabaseUrl {
    /// The embedded default: `autoglue.db` in the working directory, created when missing.
    pub fn embedded_default() -> Self {
        DatabaseUrl(SecretString::from("sqlite://autoglue.db?mode=rwc"))
    }

    /// The engine this URL names.
    pub fn backend(&self) -> Backend {
        if self.0.expose_secret().starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            Backend::Postgres
        }
    }

    /// Whether this is the embedded SQLite backend.
    pub fn is_sqlite(&self) -> bool {
        self.backend() == Backend::Sqlite
    }

    /// The file of an SQLite URL (`:memory:` for an in-memory database).
    pub fn sqlite_path(&self) -> Option<std::path::PathBuf> {
        let rest = self.expose().strip_prefix("sqlite:")?;
        let rest = rest.strip_prefix("//").unwrap_or(rest);
        let path = rest.split('?').next().unwrap_or(rest);
        Some(std::path::PathBuf::from(path))
    }

    /// The URL itself, for the driver only.
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

impl FromStr for DatabaseUrl {
    type Err = String;

    /// Accepts `postgres://`, `postgresql://` and `sqlite:` URLs. SQLite URLs without a
    /// `mode` get `mode=rwc`, so the file is created on first start as users expect.
    /// Errors never repeat the value: it may hold a password.
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Some(rest) = s.strip_prefix("sqlite:") {
            if rest.trim_start_matches('/').is_empty() {
                return Err("an sqlite: URL needs a file path, e.g. sqlite://autoglue.db".into());
            }
            let url = if rest.contains("mode=") {
                s.to_owned()
            } else if rest.contains('?') {
                format!("{s}&mode=rwc")
            } else {
                format!("{s}?mode=rwc")
            };
            return Ok(DatabaseUrl(SecretString::from(url)));
        }
        let parsed = url::Url::parse(s)
            .map_err(|e| format!("not a URL ({e}); expected postgres://… or sqlite:…"))?;
        match parsed.scheme() {
            "postgres" | "postgresql" if parsed.host_str().is_some() => {
                Ok(DatabaseUrl(SecretString::from(s.to_owned())))
            }
            "postgres" | "postgresql" => Err("a postgres:// URL needs a host".into()),
            other => Err(format!(
                "unsupported scheme {other:?}; expected postgres://… or sqlite:…"
            )),
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DatabaseUrl")
            .field(&self.redacted())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_get_create_mode() {
        let u: DatabaseUrl = "sqlite:data/a.db".parse().unwrap();
        assert_eq!(u.expose(), "sqlite:data/a.db?mode=rwc");
        let u: DatabaseUrl = "sqlite://a.db?mode=ro".parse().unwrap();
        assert_eq!(u.expose(), "sqlite://a.db?mode=ro");
        assert!(u.is_sqlite());
        assert_eq!(u.sqlite_path().unwrap(), std::path::PathBuf::from("a.db"));
        let u: DatabaseUrl = "sqlite:///tmp/x/a.db".parse().unwrap();
        assert_eq!(
            u.sqlite_path().unwrap(),
            std::path::PathBuf::from("/tmp/x/a.db")
        );
    }

    #[test]
    fn passwords_never_show() {
        let u: DatabaseUrl = "postgres://bob:hunter2@db:5432/ag".parse().unwrap();
        assert_eq!(u.backend(), Backend::Postgres);
        assert!(!u.redacted().contains("hunter2"));
        assert!(!format!("{u:?}").contains("hunter2"));
        let e = "mysql://bob:hunter2@db/x"
            .parse::<DatabaseUrl>()
            .err()
            .unwrap();
        assert!(!e.contains("hunter2") && e.contains("mysql"), "{e}");
        let e = "postgres://bob:hunter2@[oops/x"
            .parse::<DatabaseUrl>()
            .err()
            .unwrap();
        assert!(!e.contains("hunter2"), "{e}");
    }
}
