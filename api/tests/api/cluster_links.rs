//! A cluster's links: its domain (same organization only), its control-plane DNS record and
//! the API name derived from it, its apps and control-plane load balancers; deleting what a
//! link points at leaves the cluster with an empty link; nested reads stay batched.

use std::sync::atomic::Ordering;

use entity::dns_records;
use sea_orm::{ActiveModelTrait, EntityTrait, Set};
use serde_json::{Value, json};

use crate::{
    helpers::{TestApp, error_code, spawn_app},
    ssh_keys::uuid_of,
};

const CREATE_CLUSTER: &str = "mutation($input: CreateClusterInput!) { createCluster(input: $input) { cluster { id domainId domain { zoneName } } } }";
const UPDATE_CLUSTER: &str = "mutation($input: UpdateClusterInput!) { updateCluster(input: $input) { cluster { id domainId domain { zoneName } } } }";
const CREATE_DOMAIN: &str =
    "mutation($input: CreateDomainInput!) { createDomain(input: $input) { domain { id } } }";
const CREATE_RECORD: &str = "mutation($input: CreateDnsRecordInput!) { createDnsRecord(input: $input) { dnsRecord { id fqdn } } }";
const CREATE_LB: &str = "mutation($input: CreateLoadBalancerInput!) { createLoadBalancer(input: $input) { loadBalancer { id } } }";
const UPDATE_LB: &str = "mutation($input: UpdateLoadBalancerInput!) { updateLoadBalancer(input: $input) { loadBalancer { id } } }";
const LINKS: &str = "query($id: ID!) { cluster(id: $id) { domainId domain { zoneName }
    controlPlaneRecord { name fqdn } controlPlaneFqdn
    appsLoadBalancer { name } controlPlaneLoadBalancer { name } loadBalancers { name }
    provisioningReadiness { missing } } }";

fn id(data: &Value, mutation: &str, object: &str) -> String {
    data[mutation][object]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no {mutation}.{object}.id in {data:#}"))
        .to_owned()
}

async fn domain_as(app: &TestApp, token: &str, org: &str, zone: &str) -> String {
    let data = app
        .gql_ok_as(
            token,
            CREATE_DOMAIN,
            json!({ "input": { "organizationId": org, "zoneName": zone } }),
        )
        .await;
    id(&data, "createDomain", "domain")
}

async fn cluster_as(app: &TestApp, token: &str, input: Value) -> Value {
    app.gql_as(Some(token), CREATE_CLUSTER, json!({ "input": input }))
        .await
}

async fn links(app: &TestApp, cluster: &str) -> Value {
    app.gql_ok(LINKS, json!({ "id": cluster })).await["cluster"].clone()
}

fn field(resp: &Value) -> &str {
    resp["errors"][0]["extensions"]["field"]
        .as_str()
        .unwrap_or_else(|| panic!("no field in {resp:#}"))
}

#[tokio::test]
async fn a_cluster_takes_a_domain_of_its_own_organization_only() {
    let app = spawn_app().await;
    let (alice, bob) = (app.user("alice").await, app.user("bob").await);
    let a = app.create_org_as(&alice, "alpha").await;
    let b = app.create_org_as(&bob, "beta").await;
    let a2 = app.create_org_as(&alice, "alpha-two").await;
    let mine = domain_as(&app, &alice, &a, "alpha.example").await;
    let bobs = domain_as(&app, &bob, &b, "beta.example").await;
    let other_org = domain_as(&app, &alice, &a2, "two.example").await;

    let created = cluster_as(
        &app,
        &alice,
        json!({ "organizationId": a, "name": "c1", "domainId": mine }),
    )
    .await;
    let c = &created["data"]["createCluster"]["cluster"];
    assert_eq!(c["domainId"], mine.as_str(), "{created:#}");
    assert_eq!(c["domain"]["zoneName"], "alpha.example");
    let c1 = c["id"].as_str().unwrap().to_owned();

    // Another organization's domain does not exist here, whether or not alice sees it.
    for foreign in [&bobs, &other_org] {
        let resp = cluster_as(
            &app,
            &alice,
            json!({ "organizationId": a, "name": "c2", "domainId": foreign }),
        )
        .await;
        assert_eq!(error_code(&resp), "NOT_FOUND", "{resp:#}");
        let resp = app
            .gql_as(
                Some(&alice),
                UPDATE_CLUSTER,
                json!({ "input": { "id": c1, "domainId": foreign } }),
            )
            .await;
        assert_eq!(error_code(&resp), "NOT_FOUND", "{resp:#}");
    }
    let wrong_kind = cluster_as(
        &app,
        &alice,
        json!({ "organizationId": a, "name": "c2", "domainId": c1 }),
    )
    .await;
    assert_eq!(error_code(&wrong_kind), "BAD_USER_INPUT");
    assert_eq!(field(&wrong_kind), "input.domainId");

    // Omitted leaves it, null clears it, a value sets it.
    let kept = app
        .gql_ok_as(
            &alice,
            UPDATE_CLUSTER,
            json!({ "input": { "id": c1, "name": "c1-renamed" } }),
        )
        .await;
    assert_eq!(kept["updateCluster"]["cluster"]["domainId"], mine.as_str());
    let cleared = app
        .gql_ok_as(
            &alice,
            UPDATE_CLUSTER,
            json!({ "input": { "id": c1, "domainId": null } }),
        )
        .await;
    assert!(cleared["updateCluster"]["cluster"]["domain"].is_null());
    let set = app
        .gql_ok_as(
            &alice,
            UPDATE_CLUSTER,
            json!({ "input": { "id": c1, "domainId": mine } }),
        )
        .await;
    assert_eq!(
        set["updateCluster"]["cluster"]["domain"]["zoneName"],
        "alpha.example"
    );
}

#[tokio::test]
async fn the_api_name_comes_from_the_control_plane_record_in_the_cluster_domain() {
    let app = spawn_app().await;
    let token = app.token.clone();
    let org = app.create_org("acme").await;
    let zone = domain_as(&app, &token, &org, "Acme.Example.").await;
    let elsewhere = domain_as(&app, &token, &org, "other.example").await;
    let c = cluster_as(
        &app,
        &token,
        json!({ "organizationId": org, "name": "prod", "domainId": zone }),
    )
    .await;
    let c = id(&c["data"], "createCluster", "cluster");
    let before = links(&app, &c).await;
    assert!(before["controlPlaneRecord"].is_null() && before["controlPlaneFqdn"].is_null());
    assert!(
        before["provisioningReadiness"]["missing"]
            .to_string()
            .contains("a control-plane DNS record"),
        "{before:#}"
    );

    let record = |input: Value| {
        let app = &app;
        async move { app.gql(CREATE_RECORD, json!({ "input": input })).await }
    };
    let cp = json!({ "domainId": zone, "clusterId": c, "purpose": "CONTROL_PLANE", "name": "k8s.prod", "type": "A", "values": ["203.0.113.10"] });
    let mut in_other = cp.clone();
    in_other["domainId"] = json!(elsewhere);
    let resp = record(in_other).await;
    assert_eq!(error_code(&resp), "BAD_USER_INPUT");
    assert_eq!(field(&resp), "input.domainId");
    let mut no_cluster = cp.clone();
    no_cluster.as_object_mut().unwrap().remove("clusterId");
    assert_eq!(field(&record(no_cluster).await), "input.clusterId");
    let mut wildcard = cp.clone();
    wildcard["name"] = json!("*.prod");
    assert_eq!(field(&record(wildcard).await), "input.name");

    let made = record(cp.clone()).await;
    let record_id = id(&made["data"], "createDnsRecord", "dnsRecord");
    let after = links(&app, &c).await;
    assert_eq!(after["controlPlaneFqdn"], "k8s.prod.acme.example");
    assert_eq!(after["controlPlaneRecord"]["name"], "k8s.prod");
    assert_eq!(after["controlPlaneRecord"]["fqdn"], "k8s.prod.acme.example");
    assert!(
        !after["provisioningReadiness"]["missing"]
            .to_string()
            .contains("DNS record"),
        "{after:#}"
    );
    let second = record(json!({ "domainId": zone, "clusterId": c, "purpose": "CONTROL_PLANE", "name": "api", "type": "A", "values": ["203.0.113.11"] })).await;
    assert_eq!(error_code(&second), "CONFLICT", "one per cluster");

    // The record's name only means something in its zone: the domain stays while it is there.
    for to in [json!(elsewhere), Value::Null] {
        let resp = app
            .gql(
                UPDATE_CLUSTER,
                json!({ "input": { "id": c, "domainId": to } }),
            )
            .await;
        assert_eq!(error_code(&resp), "CONFLICT", "{resp:#}");
        assert_eq!(field(&resp), "input.domainId");
    }

    // A record once synced is only marked ABSENT on delete: it no longer names the cluster.
    let mut synced: dns_records::ActiveModel = dns_records::Entity::find_by_id(uuid_of(&record_id))
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap()
        .into();
    synced.last_synced_at = Set(Some(chrono::Utc::now()));
    synced.update(&app.state.db).await.unwrap();
    app.gql_ok(
        "mutation($id: ID!) { deleteDnsRecord(input: {id: $id}) { dnsRecord { desiredState } } }",
        json!({ "id": record_id }),
    )
    .await;
    let gone = links(&app, &c).await;
    assert!(gone["controlPlaneRecord"].is_null() && gone["controlPlaneFqdn"].is_null());
    // Its row waits for the reconcile workflow; drop it as that would, then use the apex.
    dns_records::Entity::delete_by_id(uuid_of(&record_id))
        .exec(&app.state.db)
        .await
        .unwrap();
    app.gql_ok(
        UPDATE_CLUSTER,
        json!({ "input": { "id": c, "domainId": elsewhere } }),
    )
    .await;
    let mut apex = cp.clone();
    (apex["domainId"], apex["name"]) = (json!(elsewhere), json!("@"));
    assert!(record(apex).await.get("errors").is_none());
    assert_eq!(links(&app, &c).await["controlPlaneFqdn"], "other.example");

    // Deleting the domain takes its records and leaves the cluster without either.
    app.gql_ok(
        "mutation($id: ID!) { deleteDomain(input: {id: $id}) { domain { id } } }",
        json!({ "id": elsewhere }),
    )
    .await;
    let orphan = links(&app, &c).await;
    assert!(
        orphan["domainId"].is_null() && orphan["domain"].is_null(),
        "{orphan:#}"
    );
    assert!(orphan["controlPlaneRecord"].is_null() && orphan["controlPlaneFqdn"].is_null());
}

#[tokio::test]
async fn apps_and_control_plane_load_balancers_are_one_each_by_purpose() {
    let app = spawn_app().await;
    let org = app.create_org("acme").await;
    let token = app.token.clone();
    let mut clusters = Vec::new();
    for name in ["c1", "c2"] {
        let data = cluster_as(&app, &token, json!({ "organizationId": org, "name": name })).await;
        clusters.push(id(&data["data"], "createCluster", "cluster"));
    }
    let (c1, c2) = (&clusters[0], &clusters[1]);
    let lb = |name: &str, cluster: &str, purpose: &str| json!({ "input": { "organizationId": org, "clusterId": cluster, "name": name, "kind": "PUBLIC", "purpose": purpose } });
    let apps = id(
        &app.gql_ok(CREATE_LB, lb("apps", c1, "APPS")).await,
        "createLoadBalancer",
        "loadBalancer",
    );
    let cp = id(
        &app.gql_ok(CREATE_LB, lb("api", c1, "CONTROL_PLANE")).await,
        "createLoadBalancer",
        "loadBalancer",
    );
    let other = id(
        &app.gql_ok(CREATE_LB, lb("extra", c1, "OTHER")).await,
        "createLoadBalancer",
        "loadBalancer",
    );
    let read = links(&app, c1).await;
    assert_eq!(read["appsLoadBalancer"]["name"], "apps");
    assert_eq!(read["controlPlaneLoadBalancer"]["name"], "api");
    assert_eq!(read["loadBalancers"].as_array().unwrap().len(), 3);

    let second = app.gql(CREATE_LB, lb("apps2", c1, "APPS")).await;
    assert_eq!(error_code(&second), "CONFLICT");
    assert_eq!(field(&second), "input.purpose");
    app.gql_ok(CREATE_LB, lb("apps2", c2, "APPS")).await;
    let repurpose = app
        .gql(
            UPDATE_LB,
            json!({ "input": { "id": other, "purpose": "CONTROL_PLANE" } }),
        )
        .await;
    assert_eq!(error_code(&repurpose), "CONFLICT");
    let onto_c2 = app
        .gql(
            UPDATE_LB,
            json!({ "input": { "id": apps, "clusterId": c2 } }),
        )
        .await;
    assert_eq!(error_code(&onto_c2), "CONFLICT", "c2 has its apps2");
    // Renaming keeps its place; a detached load balancer links nothing.
    app.gql_ok(
        UPDATE_LB,
        json!({ "input": { "id": apps, "name": "apps-eu" } }),
    )
    .await;
    assert_eq!(links(&app, c1).await["appsLoadBalancer"]["name"], "apps-eu");
    app.gql_ok(
        UPDATE_LB,
        json!({ "input": { "id": apps, "clusterId": null } }),
    )
    .await;
    assert!(links(&app, c1).await["appsLoadBalancer"].is_null());
    app.gql_ok(
        UPDATE_LB,
        json!({ "input": { "id": other, "purpose": "APPS" } }),
    )
    .await;
    assert_eq!(links(&app, c1).await["appsLoadBalancer"]["name"], "extra");

    app.gql_ok(
        "mutation($id: ID!) { deleteLoadBalancer(input: {id: $id}) { loadBalancer { id } } }",
        json!({ "id": cp }),
    )
    .await;
    let after = links(&app, c1).await;
    assert!(after["controlPlaneLoadBalancer"].is_null(), "{after:#}");
    assert_eq!(after["loadBalancers"].as_array().unwrap().len(), 1);
}

const NESTED_LINKS: &str =
    "query($n: Int!) { clusters(first: $n, orderBy: {field: NAME}) { edges { node { name
    domain { zoneName } controlPlaneFqdn controlPlaneRecord { fqdn }
    appsLoadBalancer { name } controlPlaneLoadBalancer { name } } } } }";

#[tokio::test]
async fn linked_objects_of_a_page_load_in_a_fixed_number_of_statements() {
    let app = spawn_app().await;
    let token = app.token.clone();
    let org = app.create_org("acme").await;
    for i in 0..6 {
        let zone = domain_as(&app, &token, &org, &format!("z{i}.example")).await;
        let data = cluster_as(
            &app,
            &token,
            json!({ "organizationId": org, "name": format!("c{i}"), "domainId": zone }),
        )
        .await;
        let c = id(&data["data"], "createCluster", "cluster");
        app.gql_ok(CREATE_RECORD, json!({ "input": { "domainId": zone, "clusterId": c, "purpose": "CONTROL_PLANE", "name": "api", "type": "A", "values": ["192.0.2.1"] } })).await;
        app.gql_ok(CREATE_LB, json!({ "input": { "organizationId": org, "clusterId": c, "name": format!("lb{i}"), "kind": "PUBLIC", "purpose": "APPS" } })).await;
    }
    let mut counts = Vec::new();
    for n in [2, 6] {
        let mut best = u64::MAX;
        for _ in 0..3 {
            let before = app.state.statements.load(Ordering::SeqCst);
            let data = app.gql_ok(NESTED_LINKS, json!({ "n": n })).await;
            best = best.min(app.state.statements.load(Ordering::SeqCst) - before);
            let edges = data["clusters"]["edges"].as_array().unwrap();
            assert_eq!(edges.len(), n);
            let last = &edges[n - 1]["node"];
            assert_eq!(last["controlPlaneFqdn"], format!("api.z{}.example", n - 1));
            assert_eq!(last["controlPlaneRecord"]["fqdn"], last["controlPlaneFqdn"]);
            assert_eq!(last["appsLoadBalancer"]["name"], format!("lb{}", n - 1));
            assert!(last["controlPlaneLoadBalancer"].is_null());
        }
        counts.push(best);
    }
    assert_eq!(
        counts[0], counts[1],
        "the statement count does not grow with the page"
    );
    assert!(
        counts[1] <= 7,
        "auth (2) + page + domains + records + load balancers + the records' domains: {} statements",
        counts[1]
    );
}
