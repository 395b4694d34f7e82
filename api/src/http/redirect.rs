//! Where a browser may be sent after signing in: a path of this server, nothing else.
//!
//! The OIDC callback puts the session's tokens into the fragment of this redirect, so a
//! redirect that leaves the server hands the tokens to whoever it points at. Browsers are
//! lenient when they read `Location`: they drop tabs and newlines, treat `\` as `/`, and
//! read `//host` as another host. So a redirect is accepted only when it is a plain
//! absolute path, the same after percent-decoding, that stays on this origin when a browser
//! resolves it; everything else becomes `/`.

/// The redirect to use for `raw`: `raw` itself when it is a safe path of this server, else
/// `/`.
pub fn safe_redirect(raw: Option<&str>) -> String {
    match raw {
        Some(path) if is_local_path(path) => path.to_owned(),
        _ => "/".into(),
    }
}

fn is_local_path(path: &str) -> bool {
    if path.len() > 2048 || !plain_path(path) {
        return false;
    }
    // Percent-decoding must not make it any less plain: `/%2F%2Fevil.com` or `/%09/evil.com`
    // reads as another host to some decoders.
    // Encoded more than three times over: not a path a web app of ours links to.
    let mut decoded = path.to_owned();
    let mut settled = false;
    for _ in 0..4 {
        match percent_decode(&decoded) {
            Some(next) if next == decoded => {
                settled = true;
                break;
            }
            Some(next) if still_local(&next) => decoded = next,
            _ => return false,
        }
    }
    settled && stays_on_origin(path)
}

/// A decoded path may hold spaces and other text, but nothing a browser drops and no
/// second slash or backslash at its start.
fn still_local(decoded: &str) -> bool {
    decoded.starts_with('/')
        && !decoded.starts_with("//")
        && !decoded.starts_with("/\\")
        && !decoded.chars().any(|c| c.is_control())
}

/// One leading `/`, then ASCII with no control characters, whitespace, `\` or `#` (the
/// callback adds its own fragment).
fn plain_path(path: &str) -> bool {
    let bytes = path.as_bytes();
    bytes.first() == Some(&b'/')
        && bytes.get(1) != Some(&b'/')
        && bytes
            .iter()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'\\' | b'#'))
}

/// `None` for a `%` not followed by two hex digits.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    // Not UTF-8 after decoding: not a path a web app of ours links to.
    String::from_utf8(out).ok()
}

/// Resolved the way a browser resolves `Location` against this server, it stays here.
fn stays_on_origin(path: &str) -> bool {
    let base = url::Url::parse("http://autoglue.invalid/").expect("a valid base");
    base.join(path)
        .is_ok_and(|u| u.origin() == base.origin() && u.username().is_empty())
}

#[cfg(test)]
mod tests {
    use super::safe_redirect;

    #[test]
    fn paths_of_this_server_pass() {
        for good in [
            "/",
            "/welcome",
            "/clusters/42?tab=nodes&x=1",
            "/a/b/c.d-e_f~g",
            "/search?q=a%20b",
        ] {
            assert_eq!(safe_redirect(Some(good)), good, "{good}");
        }
    }

    #[test]
    fn anything_that_can_leave_the_server_becomes_the_root() {
        for bad in [
            "/\t/evil.com",
            "/\r/evil.com",
            "/\n/evil.com",
            "/\0/evil.com",
            "/\t\n/evil.com",
            "/%09/evil.com",
            "/%0a/evil.com",
            "/%0D%0A/evil.com",
            "/%00/evil.com",
            "/\\evil.com",
            "/%5Cevil.com",
            "/%2F%2Fevil.com",
            "/%2Fevil.com",
            "/%252F%252Fevil.com",
            "/%25252525252F%25252525252Fevil.com",
            "//evil.com",
            "///evil.com",
            "https:evil.com",
            "https://evil.com",
            "evil.com",
            "/ evil",
            "/caf\u{e9}",
            "/%zz",
            "/page#access_token=stolen",
            "",
        ] {
            assert_eq!(safe_redirect(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(safe_redirect(None), "/");
    }
}
