//! The DNS side of a domain claim: the TXT record that proves it, and its lookup.
//!
//! An owner proves a domain by publishing `autoglue-domain-verification=<token>` at
//! `_autoglue-challenge.<domain>`; the check asks the configured DNS server
//! (`AUTOGLUE_DNS_RESOLVER`) or the system's resolvers, without a cache, so a record just
//! published counts at once.

use std::net::SocketAddr;

use anyhow::Context;
use hickory_resolver::{
    Resolver,
    config::{ConnectionConfig, NameServerConfig, ResolverConfig},
    net::runtime::TokioRuntimeProvider,
    proto::rr::RData,
};

/// The name the TXT record goes under.
pub fn record_name(domain: &str) -> String {
    format!("_autoglue-challenge.{domain}")
}

/// The TXT record's value for `token`.
pub fn record_value(token: &str) -> String {
    format!("autoglue-domain-verification={token}")
}

/// Whether a TXT record at [`record_name`] holds [`record_value`]. `Err` only when no DNS
/// server answered; a missing record or name is `Ok(false)`.
pub async fn is_published(
    server: Option<SocketAddr>,
    domain: &str,
    token: &str,
) -> anyhow::Result<bool> {
    let mut builder = match server {
        Some(addr) => {
            let mut udp = ConnectionConfig::udp();
            udp.port = addr.port();
            let mut tcp = ConnectionConfig::tcp();
            tcp.port = addr.port();
            let server = NameServerConfig::new(addr.ip(), true, vec![udp, tcp]);
            Resolver::builder_with_config(
                ResolverConfig::from_name_servers(vec![server]),
                TokioRuntimeProvider::default(),
            )
        }
        None => Resolver::builder_tokio().context("reading the system's DNS configuration")?,
    };
    builder.options_mut().cache_size = 0;
    let resolver = builder.build().context("building the DNS resolver")?;
    let wanted = record_value(token);
    let name = format!("{}.", record_name(domain));
    let found = match resolver.txt_lookup(name.as_str()).await {
        Ok(found) => found,
        Err(e) if e.is_no_records_found() || e.is_nx_domain() => return Ok(false),
        Err(e) => return Err(e).with_context(|| format!("looking up TXT {name}")),
    };
    Ok(found.answers().iter().any(|record| match &record.data {
        RData::TXT(txt) => {
            let text: Vec<u8> = txt
                .txt_data
                .iter()
                .flat_map(|part| part.iter().copied())
                .collect();
            text == wanted.as_bytes()
        }
        _ => false,
    }))
}
