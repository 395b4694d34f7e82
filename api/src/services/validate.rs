//! Parsers for the names and keys the fleet uses, shared by clusters, pools and servers.
//! Each returns `BAD_USER_INPUT` on the field path it is given.

use std::net::IpAddr;

use crate::{Error, Result};

fn dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A resource name (clusters, node pools): an RFC 1123 label, 1 to 63 of `a-z 0-9 -`.
pub fn resource_name(raw: &str, field: &str) -> Result<String> {
    let name = raw.trim();
    if !dns_label(name) {
        return Err(Error::bad_input(
            field,
            "name must be 1 to 63 lowercase letters, digits or '-', starting and ending with a letter or digit",
        ));
    }
    Ok(name.to_owned())
}

/// A host name: dot-separated RFC 1123 labels, at most 253 characters; stored lowercase.
pub fn hostname(raw: &str, field: &str) -> Result<String> {
    let host = raw.trim().to_lowercase();
    if host.is_empty() || host.len() > 253 || !host.split('.').all(dns_label) {
        return Err(Error::bad_input(field, "not a valid host name"));
    }
    Ok(host)
}

/// An IPv4 or IPv6 address, normalized.
pub fn ip(raw: &str, field: &str) -> Result<String> {
    raw.trim()
        .parse::<IpAddr>()
        .map(|ip| ip.to_string())
        .map_err(|_| Error::bad_input(field, "not an IP address"))
}

fn k8s_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// A Kubernetes label, annotation or taint key: `[prefix/]name`, the prefix a DNS
/// subdomain of at most 253 characters, the name at most 63 of `A-Z a-z 0-9 - _ .`
/// starting and ending with an alphanumeric.
pub fn k8s_key(raw: &str, field: &str) -> Result<String> {
    let (prefix, name) = match raw.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, raw),
    };
    let prefix_ok = prefix.is_none_or(|p| p.len() <= 253 && p.split('.').all(dns_label));
    if !prefix_ok || !k8s_name_part(name) {
        return Err(Error::bad_input(
            field,
            format!(
                "{raw:?} is not a valid Kubernetes key ([prefix/]name, name up to 63 of A-Z a-z 0-9 - _ .)"
            ),
        ));
    }
    Ok(raw.to_owned())
}

/// A label (or taint) value: empty, or up to 63 of `A-Z a-z 0-9 - _ .` starting and ending
/// with an alphanumeric.
pub fn label_value(raw: &str, field: &str) -> Result<String> {
    if raw.is_empty() || k8s_name_part(raw) {
        return Ok(raw.to_owned());
    }
    Err(Error::bad_input(
        field,
        format!("{raw:?} is not a valid label value"),
    ))
}

/// A K3s version such as `v1.31.4+k3s1`.
pub fn k3s_version(raw: &str, field: &str) -> Result<String> {
    let v = raw.trim();
    let core = v.strip_prefix('v').unwrap_or("");
    let (numbers, build) = core
        .split_once('+')
        .map_or((core, None), |(n, b)| (n, Some(b)));
    let numbers_ok = numbers.split('.').count() == 3
        && numbers
            .split('.')
            .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    let build_ok = build.is_none_or(|b| {
        b.strip_prefix("k3s")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()))
    });
    if !numbers_ok || !build_ok {
        return Err(Error::bad_input(
            field,
            "not a K3s version such as v1.31.4+k3s1",
        ));
    }
    Ok(v.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_keys_and_values() {
        for ok in ["app", "app.kubernetes.io/name", "a_b.c-d", "example.com/A1"] {
            assert!(k8s_key(ok, "k").is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-app",
            "app-",
            "a/b/c",
            "Bad_Prefix.com/x",
            &"x".repeat(64),
            "sp ace",
        ] {
            assert_eq!(
                k8s_key(bad, "input.labels.0.key").unwrap_err().field(),
                Some("input.labels.0.key"),
                "{bad}"
            );
        }
        assert!(label_value("", "v").is_ok());
        assert!(label_value("v1.2-rc_3", "v").is_ok());
        assert!(label_value("-x", "v").is_err());
    }

    #[test]
    fn names_hosts_addresses_versions() {
        assert_eq!(resource_name(" prod-eu1 ", "n").unwrap(), "prod-eu1");
        assert!(resource_name("Prod", "n").is_err());
        assert_eq!(
            hostname("Node-1.Example.com", "h").unwrap(),
            "node-1.example.com"
        );
        assert!(hostname("bad_host", "h").is_err());
        assert_eq!(ip(" 10.0.0.1 ", "i").unwrap(), "10.0.0.1");
        assert_eq!(ip("2001:DB8::1", "i").unwrap(), "2001:db8::1");
        assert!(ip("10.0.0.256", "i").is_err());
        assert!(k3s_version("v1.31.4+k3s1", "v").is_ok());
        assert!(k3s_version("v1.31.4", "v").is_ok());
        assert!(k3s_version("1.31", "v").is_err());
        assert!(k3s_version("v1.31.4+rke2", "v").is_err());
    }
}
