//! Domains, DNS records and load balancers: credential checks, record validation per type,
//! CNAME exclusivity, delete semantics, cascades, listener validation.

use entity::{dns_records, enums::DnsDesiredState};
use sea_orm::{ActiveModelTrait, EntityTrait, Set};
use serde_json::{Value, json};

use crate::{
    helpers::{TestApp, error_code, spawn_app},
    ssh_keys::uuid_of,
};

const CREATE_CREDENTIAL: &str = "mutation($input: CreateCredentialInput!) { createCredential(input: $input) { credential { id } } }";
const CREATE_DOMAIN: &str = "mutation($input: CreateDomainInput!) { createDomain(input: $input) { domain { id zoneName providerZoneId status credentialId } } }";
const CREATE_RECORD: &str = "mutation($input: CreateDnsRecordInput!) { createDnsRecord(input: $input) { dnsRecord { id name fqdn type ttl values desiredState observedState owner purpose } } }";
const DELETE_RECORD: &str =
    "mutation($id: ID!) { deleteDnsRecord(input: {id: $id}) { dnsRecord { id desiredState } } }";
const CREATE_LB: &str = "mutation($input: CreateLoadBalancerInput!) { createLoadBalancer(input: $input) { loadBalancer { id name kind purpose listeners { port protocol targetPort } addresses } } }";

async fn aws_credential(app: &TestApp, org: &str, name: &str, scope: Value) -> String {
    let mut input = json!({ "organizationId": org, "name": name, "kind": "AWS_ACCESS_KEY",
        "secret": { "accessKeyId": "AKIAIOSFODNN7EXAMPLE", "secretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY" } });
    input
        .as_object_mut()
        .unwrap()
        .extend(scope.as_object().unwrap().clone());
    let data = app
        .gql_ok(CREATE_CREDENTIAL, json!({ "input": input }))
        .await;
    data["createCredential"]["credential"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn domain(app: &TestApp, org: &str, zone: &str) -> String {
    let data = app
        .gql_ok(
            CREATE_DOMAIN,
            json!({ "input": { "organizationId": org, "zoneName": zone } }),
        )
        .await;
    data["createDomain"]["domain"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn record(app: &TestApp, input: Value) -> Value {
    app.gql(CREATE_RECORD, json!({ "input": input })).await
}

fn field(resp: &Value) -> &str {
    resp["errors"][0]["extensions"]["field"]
        .as_str()
        .unwrap_or_else(|| panic!("no field in {resp:#}"))
}

#[tokio::test]
async fn a_domain_with_a_route53_credential_reads_back() {
    let app = spawn_app().await;
    let org = app.create_org("acme").await;
    let cred = aws_credential(
        &app,
        &org,
        "r53",
        json!({ "scope": "SERVICE", "scopeValue": "route53" }),
    )
    .await;
    let data = app
        .gql_ok(
            CREATE_DOMAIN,
            json!({ "input": { "organizationId": org, "zoneName": "Acme.Example.", "providerZoneId": "Z123", "credentialId": cred } }),
        )
        .await;
    let d = &data["createDomain"]["domain"];
    assert_eq!(d["zoneName"], "acme.example");
    assert_eq!(d["status"], "PENDING");
    assert_eq!(d["credentialId"], cred.as_str());
    let read = app
        .gql_ok(
            "query($o: ID) { domains(organizationId: $o) { totalCount edges { node { zoneName providerZoneId } } } }",
            json!({ "o": org }),
        )
        .await;
    assert_eq!(read["domains"]["totalCount"], 1);
    assert_eq!(
        read["domains"]["edges"][0]["node"]["providerZoneId"],
        "Z123"
    );
    let node = app
        .gql_ok(
            "query($id: ID!) { node(id: $id) { ... on Domain { zoneName } } }",
            json!({ "id": d["id"] }),
        )
        .await;
    assert_eq!(node["node"]["zoneName"], "acme.example");

    let dup = app
        .gql(
            CREATE_DOMAIN,
            json!({ "input": { "organizationId": org, "zoneName": "acme.example" } }),
        )
        .await;
    assert_eq!(error_code(&dup), "CONFLICT");
    assert_eq!(field(&dup), "input.zoneName");
}

#[tokio::test]
async fn credentials_that_cannot_manage_route53_are_refused() {
    let app = spawn_app().await;
    let org = app.create_org("acme").await;
    let s3 = aws_credential(
        &app,
        &org,
        "s3",
        json!({ "scope": "SERVICE", "scopeValue": "s3" }),
    )
    .await;
    let token = app
        .gql_ok(
            CREATE_CREDENTIAL,
            json!({ "input": { "organizationId": org, "name": "hz", "kind": "HETZNER_API_TOKEN", "secret": { "token": "hetzner-token-123456" } } }),
        )
        .await["createCredential"]["credential"]["id"]
        .clone();
    for cred in [json!(s3), token] {
        let resp = app
            .gql(
                CREATE_DOMAIN,
                json!({ "input": { "organizationId": org, "zoneName": "acme.example", "credentialId": cred } }),
            )
            .await;
        assert_eq!(error_code(&resp), "BAD_USER_INPUT", "{resp:#}");
        assert_eq!(field(&resp), "input.credentialId");
    }
    let account = aws_credential(&app, &org, "acct", json!({ "scope": "ACCOUNT" })).await;
    let ok = app
        .gql(
            CREATE_DOMAIN,
            json!({ "input": { "organizationId": org, "zoneName": "acme.example", "credentialId": account } }),
        )
        .await;
    assert!(ok.get("errors").is_none(), "{ok:#}");
}

#[tokio::test]
async fn records_are_validated_per_type() {
    let app = spawn_app().await;
    let org = app.create_org("acme").await;
    let d = domain(&app, &org, "acme.example").await;

    let bad_a = record(
        &app,
        json!({ "domainId": d, "name": "www", "type": "A", "values": ["10.0.0.1", "10.0.0.300"] }),
    )
    .await;
    assert_eq!(error_code(&bad_a), "BAD_USER_INPUT");
    assert_eq!(field(&bad_a), "input.values.1");
    let two_cnames = record(&app, json!({ "domainId": d, "name": "alias", "type": "CNAME", "values": ["a.example.com", "b.example.com"] })).await;
    assert_eq!(field(&two_cnames), "input.values");
    let ttl0 = record(
        &app,
        json!({ "domainId": d, "name": "www", "type": "A", "ttl": 0, "values": ["10.0.0.1"] }),
    )
    .await;
    assert_eq!(error_code(&ttl0), "BAD_USER_INPUT");
    assert_eq!(field(&ttl0), "input.ttl");
    let bad_name = record(
        &app,
        json!({ "domainId": d, "name": "a.*", "type": "A", "values": ["10.0.0.1"] }),
    )
    .await;
    assert_eq!(field(&bad_name), "input.name");
    let bad_caa = record(
        &app,
        json!({ "domainId": d, "name": "@", "type": "CAA", "values": ["0 issuer \"x.org\""] }),
    )
    .await;
    assert_eq!(field(&bad_caa), "input.values.0");

    let www = record(
        &app,
        json!({ "domainId": d, "name": "www", "type": "A", "values": ["10.0.0.1"] }),
    )
    .await;
    let r = &www["data"]["createDnsRecord"]["dnsRecord"];
    assert_eq!(r["fqdn"], "www.acme.example", "{www:#}");
    assert_eq!(r["ttl"], 300);
    assert_eq!(r["desiredState"], "PRESENT");
    assert_eq!(r["observedState"], "PENDING");
    assert_eq!(r["owner"], "autoglue");
    let apex = record(
        &app,
        json!({ "domainId": d, "name": "@", "type": "MX", "values": ["10 mail.acme.example"] }),
    )
    .await;
    assert_eq!(
        apex["data"]["createDnsRecord"]["dnsRecord"]["fqdn"],
        "acme.example"
    );

    let cname = record(
        &app,
        json!({ "domainId": d, "name": "www", "type": "CNAME", "values": ["lb.acme.example"] }),
    )
    .await;
    assert_eq!(error_code(&cname), "CONFLICT", "{cname:#}");
    let again = record(
        &app,
        json!({ "domainId": d, "name": "www", "type": "A", "values": ["10.0.0.2"] }),
    )
    .await;
    assert_eq!(error_code(&again), "CONFLICT");
    assert_eq!(field(&again), "input.name");

    let updated = app
        .gql(
            "mutation($id: ID!) { updateDnsRecord(input: {id: $id, values: [\"::1\"]}) { dnsRecord { values } } }",
            json!({ "id": r["id"] }),
        )
        .await;
    assert_eq!(field(&updated), "input.values.0");
}

#[tokio::test]
async fn deleting_a_synced_record_marks_it_absent_and_an_unsynced_one_goes() {
    let app = spawn_app().await;
    let org = app.create_org("acme").await;
    let d = domain(&app, &org, "acme.example").await;
    let mut ids = Vec::new();
    for name in ["fresh", "synced"] {
        let resp = record(
            &app,
            json!({ "domainId": d, "name": name, "type": "TXT", "values": ["hello"] }),
        )
        .await;
        ids.push(
            resp["data"]["createDnsRecord"]["dnsRecord"]["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let synced = dns_records::Entity::find_by_id(uuid_of(&ids[1]))
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    let mut synced: dns_records::ActiveModel = synced.into();
    synced.last_synced_at = Set(Some(chrono::Utc::now()));
    synced.update(&app.state.db).await.unwrap();

    app.gql_ok(DELETE_RECORD, json!({ "id": ids[0] })).await;
    let gone = dns_records::Entity::find_by_id(uuid_of(&ids[0]))
        .one(&app.state.db)
        .await
        .unwrap();
    assert!(gone.is_none());
    let marked = app.gql_ok(DELETE_RECORD, json!({ "id": ids[1] })).await;
    assert_eq!(
        marked["deleteDnsRecord"]["dnsRecord"]["desiredState"],
        "ABSENT"
    );
    let kept = dns_records::Entity::find_by_id(uuid_of(&ids[1]))
        .one(&app.state.db)
        .await
        .unwrap();
    assert!(kept.is_some());

    // The synced record may still be published: the domain waits, DELETING, for the
    // reconcile to remove it at the provider; its record never synced goes now.
    let deleting = app
        .gql_ok(
            "mutation($id: ID!) { deleteDomain(input: {id: $id}) { domain { zoneName status } } }",
            json!({ "id": d }),
        )
        .await;
    assert_eq!(deleting["deleteDomain"]["domain"]["status"], "DELETING");
    let left = dns_records::Entity::find()
        .all(&app.state.db)
        .await
        .unwrap();
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].id, uuid_of(&ids[1]));
    assert_eq!(left[0].desired_state, DnsDesiredState::Absent);
    let refused = record(
        &app,
        json!({ "domainId": d, "name": "late", "type": "A", "values": ["192.0.2.9"] }),
    )
    .await;
    assert_eq!(error_code(&refused), "CONFLICT", "{refused}");
}

#[tokio::test]
async fn load_balancer_listeners_are_validated_and_names_unique() {
    let app = spawn_app().await;
    let org = app.create_org("acme").await;
    let input = |name: &str, listeners: Value| {
        json!({ "input": { "organizationId": org, "name": name, "kind": "PUBLIC", "purpose": "APPS",
            "listeners": listeners, "addresses": ["203.0.113.10", "lb.acme.example"] } })
    };
    let ok = app
        .gql_ok(
            CREATE_LB,
            input(
                "apps",
                json!([{ "port": 443, "protocol": "HTTPS", "targetPort": 30443 }, { "port": 443, "protocol": "UDP" }]),
            ),
        )
        .await;
    let lb = &ok["createLoadBalancer"]["loadBalancer"];
    assert_eq!(lb["listeners"][0]["targetPort"], 30443);
    assert_eq!(lb["listeners"][1]["targetPort"], 443);
    assert_eq!(lb["addresses"][1], "lb.acme.example");

    let port0 = app
        .gql(
            CREATE_LB,
            input("b", json!([{ "port": 0, "protocol": "TCP" }])),
        )
        .await;
    assert_eq!(field(&port0), "input.listeners.0.port");
    let dup = app
        .gql(
            CREATE_LB,
            input(
                "c",
                json!([{ "port": 80, "protocol": "TCP" }, { "port": 80, "protocol": "TCP" }]),
            ),
        )
        .await;
    assert_eq!(field(&dup), "input.listeners.1");
    let target = app
        .gql(
            CREATE_LB,
            input(
                "d",
                json!([{ "port": 80, "protocol": "HTTP", "targetPort": 70000 }]),
            ),
        )
        .await;
    assert_eq!(field(&target), "input.listeners.0.targetPort");
    let same_name = app
        .gql(
            CREATE_LB,
            input("apps", json!([{ "port": 80, "protocol": "TCP" }])),
        )
        .await;
    assert_eq!(error_code(&same_name), "CONFLICT");
    assert_eq!(field(&same_name), "input.name");

    let list = app
        .gql_ok(
            "query($o: ID) { loadBalancers(organizationId: $o) { totalCount edges { node { name } } } }",
            json!({ "o": org }),
        )
        .await;
    assert_eq!(list["loadBalancers"]["totalCount"], 1);
}
