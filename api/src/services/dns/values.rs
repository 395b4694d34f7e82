//! Parsers for DNS zone names, record names, TTLs and record values. Each returns
//! `BAD_USER_INPUT` on the field path it is given; values are checked against their type.

use std::net::{Ipv4Addr, Ipv6Addr};

use entity::enums::DnsRecordType;

use crate::{Error, Result, services::validate};

/// The TTL of a record created without one.
pub const DEFAULT_TTL: i32 = 300;

/// Total length of a TXT record's values; longer strings are the provider's business.
const MAX_TXT_TOTAL: usize = 2048;

/// A zone apex such as `example.com`: a host name, lowercase, without the trailing dot.
pub fn zone_name(raw: &str, field: &str) -> Result<String> {
    let trimmed = raw.trim();
    validate::hostname(trimmed.strip_suffix('.').unwrap_or(trimmed), field)
}

/// Labels of record names may carry `_` (`_acme-challenge`, `_sip._tcp`).
fn record_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A record name relative to its zone: `@` for the apex, else labels, `*` allowed first.
pub fn record_name(raw: &str, field: &str) -> Result<String> {
    let name = raw.trim().to_lowercase();
    if name == "@" {
        return Ok(name);
    }
    let ok = name.len() <= 253
        && name
            .split('.')
            .enumerate()
            .all(|(i, label)| (i == 0 && label == "*") || record_label(label));
    if !ok {
        return Err(Error::bad_input(
            field,
            "name must be @ or dot-separated labels of a-z 0-9 - _ (a leading * is allowed)",
        ));
    }
    Ok(name)
}

/// A TTL in seconds, 1 to 86400.
pub fn ttl(value: i32, field: &str) -> Result<i32> {
    if !(1..=86_400).contains(&value) {
        return Err(Error::bad_input(field, "TTL must be 1 to 86400 seconds"));
    }
    Ok(value)
}

/// The fully qualified name of `name` in `zone`.
pub fn fqdn(name: &str, zone: &str) -> String {
    if name == "@" {
        zone.to_owned()
    } else {
        format!("{name}.{zone}")
    }
}

/// The values of a `kind` record, each checked; errors name `{field}.{index}`.
pub fn record_values(kind: DnsRecordType, raw: &[String], field: &str) -> Result<Vec<String>> {
    if raw.is_empty() {
        return Err(Error::bad_input(field, "a record needs at least one value"));
    }
    if kind == DnsRecordType::Cname && raw.len() != 1 {
        return Err(Error::bad_input(
            field,
            "a CNAME record has exactly one value",
        ));
    }
    if kind == DnsRecordType::Txt && raw.iter().map(String::len).sum::<usize>() > MAX_TXT_TOTAL {
        return Err(Error::bad_input(
            field,
            format!("TXT values may hold at most {MAX_TXT_TOTAL} characters in all"),
        ));
    }
    raw.iter()
        .enumerate()
        .map(|(i, v)| record_value(kind, v, &format!("{field}.{i}")))
        .collect()
}

fn record_value(kind: DnsRecordType, raw: &str, field: &str) -> Result<String> {
    let value = raw.trim();
    let bad = |msg: &str| Error::bad_input(field, msg);
    match kind {
        DnsRecordType::A => value
            .parse::<Ipv4Addr>()
            .map(|ip| ip.to_string())
            .map_err(|_| bad("not an IPv4 address")),
        DnsRecordType::Aaaa => value
            .parse::<Ipv6Addr>()
            .map(|ip| ip.to_string())
            .map_err(|_| bad("not an IPv6 address")),
        DnsRecordType::Cname | DnsRecordType::Ns => target(value, field),
        DnsRecordType::Txt if value.is_empty() => Err(bad("a TXT value must not be empty")),
        DnsRecordType::Txt => Ok(raw.to_owned()),
        DnsRecordType::Mx => match value.split_whitespace().collect::<Vec<_>>()[..] {
            [priority, host] => Ok(format!(
                "{} {}",
                number(priority, field)?,
                target(host, field)?
            )),
            _ => Err(bad("an MX value is \"priority host\"")),
        },
        DnsRecordType::Srv => match value.split_whitespace().collect::<Vec<_>>()[..] {
            [priority, weight, port, host] => Ok(format!(
                "{} {} {} {}",
                number(priority, field)?,
                number(weight, field)?,
                number(port, field)?,
                target(host, field)?
            )),
            _ => Err(bad("an SRV value is \"priority weight port target\"")),
        },
        DnsRecordType::Caa => caa(value, field),
    }
}

/// A host name a record points at; a trailing dot is accepted and dropped.
fn target(raw: &str, field: &str) -> Result<String> {
    validate::hostname(raw.strip_suffix('.').unwrap_or(raw), field)
}

fn number(raw: &str, field: &str) -> Result<u16> {
    raw.parse()
        .map_err(|_| Error::bad_input(field, format!("{raw:?} is not a number from 0 to 65535")))
}

/// `flags tag "value"`, the tag one of `issue`, `issuewild`, `iodef`.
fn caa(value: &str, field: &str) -> Result<String> {
    let invalid = || {
        Error::bad_input(
            field,
            "a CAA value is: flags issue|issuewild|iodef \"value\"",
        )
    };
    let (flags, rest) = value.split_once(' ').ok_or_else(invalid)?;
    let (tag, quoted) = rest.trim_start().split_once(' ').ok_or_else(invalid)?;
    let flags: u8 = flags.parse().map_err(|_| invalid())?;
    let inner = quoted
        .trim()
        .strip_prefix('"')
        .and_then(|q| q.strip_suffix('"'))
        .filter(|q| !q.contains('"'))
        .ok_or_else(invalid)?;
    if !matches!(tag, "issue" | "issuewild" | "iodef") {
        return Err(invalid());
    }
    Ok(format!("{flags} {tag} \"{inner}\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(kind: DnsRecordType, raw: &[&str]) -> Result<Vec<String>> {
        let raw: Vec<String> = raw.iter().map(|s| (*s).to_owned()).collect();
        record_values(kind, &raw, "input.values")
    }

    #[test]
    fn names_and_zones() {
        assert_eq!(zone_name("Example.COM.", "z").unwrap(), "example.com");
        assert!(zone_name("bad_zone.com", "z").is_err());
        assert_eq!(record_name("@", "n").unwrap(), "@");
        assert_eq!(record_name("*.Apps", "n").unwrap(), "*.apps");
        assert_eq!(
            record_name("_acme-challenge", "n").unwrap(),
            "_acme-challenge"
        );
        assert!(record_name("apps.*", "n").is_err());
        assert!(record_name("a..b", "n").is_err());
        assert_eq!(fqdn("@", "example.com"), "example.com");
        assert_eq!(fqdn("www", "example.com"), "www.example.com");
        assert!(ttl(0, "t").is_err() && ttl(86_401, "t").is_err() && ttl(1, "t").is_ok());
    }

    #[test]
    fn values_by_type() {
        assert!(values(DnsRecordType::A, &["10.0.0.1"]).is_ok());
        let err = values(DnsRecordType::A, &["10.0.0.1", "10.0.0.256"]).unwrap_err();
        assert_eq!(err.field(), Some("input.values.1"));
        assert!(values(DnsRecordType::A, &[]).is_err());
        assert!(values(DnsRecordType::Aaaa, &["2001:db8::1"]).is_ok());
        assert!(values(DnsRecordType::Aaaa, &["10.0.0.1"]).is_err());
        assert!(values(DnsRecordType::Cname, &["a.example.com", "b.example.com"]).is_err());
        assert_eq!(
            values(DnsRecordType::Cname, &["LB.Example.com."]).unwrap(),
            ["lb.example.com"]
        );
        assert!(values(DnsRecordType::Txt, &[&"x".repeat(2049)]).is_err());
        assert!(values(DnsRecordType::Mx, &["10 mail.example.com"]).is_ok());
        assert!(values(DnsRecordType::Mx, &["mail.example.com"]).is_err());
        assert!(values(DnsRecordType::Ns, &["ns1.example.com"]).is_ok());
        assert!(values(DnsRecordType::Srv, &["10 5 5060 sip.example.com"]).is_ok());
        assert!(values(DnsRecordType::Srv, &["10 5 99999 sip.example.com"]).is_err());
        assert!(values(DnsRecordType::Caa, &["0 issue \"letsencrypt.org\""]).is_ok());
        assert!(values(DnsRecordType::Caa, &["0 issuer \"letsencrypt.org\""]).is_err());
        assert!(values(DnsRecordType::Caa, &["0 issue letsencrypt.org"]).is_err());
    }
}
