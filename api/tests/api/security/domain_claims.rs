//! An email domain claim is proved before it makes anyone a member: by a DNS TXT record,
//! checked against a real DNS server (dnsmasq on loopback), or by an instance admin.
//! Public mail domains cannot be claimed, and a pending claim blocks nobody.

use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

use crate::{
    helpers::{error_code, wait_for_port},
    oidc::{app_with_provider_and, browser_sign_in_from, fragment_value},
};

const CLAIM: &str = "mutation($id: ID!, $d: String!) { updateOrganization(input: {id: $id, emailDomain: $d}) {
    organization { emailDomain emailDomainStatus emailDomainChallenge { recordName recordType value } } } }";
const VERIFY: &str = "mutation($id: ID!) { verifyEmailDomain(input: {organizationId: $id}) { organization { emailDomainStatus } } }";
const APPROVE: &str = "mutation($id: ID!, $d: String!) { approveEmailDomain(input: {organizationId: $id, emailDomain: $d}) { organization { emailDomainStatus } } }";

/// dnsmasq answering one TXT record on 127.0.0.1:`port`; killed on drop.
struct Dns(Child);

impl Drop for Dns {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn dnsmasq(port: u16, name: &str, value: &str) -> Dns {
    let child = Command::new("dnsmasq")
        .args([
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--bind-interfaces",
            "--listen-address=127.0.0.1",
            "--pid-file=",
            "--user=root",
        ])
        .arg(format!("--port={port}"))
        .arg(format!("--txt-record={name},{value}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("dnsmasq runs (apt-get install dnsmasq-base)");
    wait_for_port(port).await;
    Dns(child)
}

fn free_udp_and_tcp_port() -> u16 {
    loop {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

async fn member_orgs(app: &crate::helpers::TestApp, login: &str) -> Value {
    let landed = browser_sign_in_from(app, "/auth/oidc/login", login).await;
    let token = fragment_value(&landed, "access_token").expect("signed in");
    app.gql_ok_as(
        &token,
        "{ me { memberships { organization { name } } } }",
        json!({}),
    )
    .await["me"]["memberships"]
        .clone()
}

#[tokio::test]
async fn a_domain_claim_joins_nobody_until_proved_by_its_txt_record_or_an_admin() {
    let port = free_udp_and_tcp_port();
    let (app, _provider) = app_with_provider_and(|c| {
        c.auth.dns_resolver = Some(format!("127.0.0.1:{port}").parse().unwrap());
    })
    .await;
    let org = app.create_org("claimers").await;
    let rival = app.create_org("rival").await;

    let public = app.gql(CLAIM, json!({ "id": org, "d": "gmail.com" })).await;
    assert_eq!(error_code(&public), "BAD_USER_INPUT", "{public}");

    let claimed = app
        .gql_ok(CLAIM, json!({ "id": org, "d": "example.test" }))
        .await;
    let claimed = &claimed["updateOrganization"]["organization"];
    assert_eq!(claimed["emailDomainStatus"], "PENDING");
    let challenge = &claimed["emailDomainChallenge"];
    assert_eq!(challenge["recordName"], "_autoglue-challenge.example.test");
    assert_eq!(challenge["recordType"], "TXT");
    let value = challenge["value"].as_str().unwrap().to_owned();
    // A pending claim blocks nobody: the rival may claim the same domain.
    let second = app
        .gql_ok(CLAIM, json!({ "id": rival, "d": "example.test" }))
        .await;
    assert_eq!(
        second["updateOrganization"]["organization"]["emailDomainStatus"],
        "PENDING"
    );
    // Unproved, it joins nobody.
    assert_eq!(member_orgs(&app, "carol").await, json!([]));

    // The record is there, with another value: not proved.
    {
        let _dns = dnsmasq(
            port,
            "_autoglue-challenge.example.test",
            "autoglue-domain-verification=wrong",
        )
        .await;
        let refused = app.gql(VERIFY, json!({ "id": org })).await;
        assert_eq!(error_code(&refused), "CONFLICT", "{refused}");
    }
    // With the challenge's value: verified, and sign-ins from the domain join.
    {
        let _dns = dnsmasq(port, "_autoglue-challenge.example.test", &value).await;
        let verified = app.gql_ok(VERIFY, json!({ "id": org })).await;
        assert_eq!(
            verified["verifyEmailDomain"]["organization"]["emailDomainStatus"],
            "VERIFIED"
        );
    }
    assert_eq!(
        member_orgs(&app, "dan").await,
        json!([{ "organization": { "name": "claimers" } }])
    );
    // The rival cannot have it verified too, even by an admin.
    let taken = app
        .gql(APPROVE, json!({ "id": rival, "d": "example.test" }))
        .await;
    assert_eq!(error_code(&taken), "CONFLICT", "{taken}");
    // An admin's approval proves another claim; an owner cannot approve their own.
    let third = app.create_org("third").await;
    app.gql_ok(CLAIM, json!({ "id": third, "d": "third.test" }))
        .await;
    let bob = app.user("bob").await;
    let bobs = app.create_org_as(&bob, "bobs").await;
    app.gql_ok_as(&bob, CLAIM, json!({ "id": bobs, "d": "bob.test" }))
        .await;
    let refused = app
        .gql_as(Some(&bob), APPROVE, json!({ "id": bobs, "d": "bob.test" }))
        .await;
    assert_eq!(error_code(&refused), "FORBIDDEN", "{refused}");
    // An approval names the domain the admin saw: a claim switched meanwhile is not approved.
    let switched = app
        .gql(APPROVE, json!({ "id": third, "d": "old-third.test" }))
        .await;
    assert_eq!(error_code(&switched), "BAD_USER_INPUT", "{switched}");
    let approved = app
        .gql_ok(APPROVE, json!({ "id": third, "d": "third.test" }))
        .await;
    assert_eq!(
        approved["approveEmailDomain"]["organization"]["emailDomainStatus"],
        "VERIFIED"
    );
}
