//! The review's low findings: keys minted by keys, test workflows that write anywhere or
//! sleep for ever, and DNS records orphaned by a deleted cluster.

use entity::{dns_records, enums::DnsDesiredState};
use sea_orm::{ActiveModelTrait, EntityTrait, Set};
use serde_json::json;

use crate::{
    helpers::{error_code, spawn_app},
    ssh_keys::uuid_of,
    workflows::{start_ok, wait_for_status},
};

#[tokio::test]
async fn an_organization_key_cannot_create_organization_keys() {
    let app = spawn_app().await;
    let org = app.create_org("minting").await;
    let made = app
        .gql_ok(
            "mutation($o: ID!) { createOrganizationKey(input: {organizationId: $o, name: \"ops\", role: OWNER}) { organizationKey { key } secret } }",
            json!({ "o": org }),
        )
        .await;
    let key = &made["createOrganizationKey"];
    let bearer = format!(
        "{}_{}",
        key["organizationKey"]["key"].as_str().unwrap(),
        key["secret"].as_str().unwrap()
    );
    let minted = app
        .gql_as(
            Some(&bearer),
            "mutation($o: ID!) { createOrganizationKey(input: {organizationId: $o, name: \"child\", role: ADMIN}) { secret } }",
            json!({ "o": org }),
        )
        .await;
    assert_eq!(error_code(&minted), "FORBIDDEN", "{minted}");
    // Nor can a user API key mint keys that would outlive it.
    let api_key = app
        .gql_ok(
            "mutation { createApiKey(input: {name: \"leaky\"}) { secret } }",
            json!({}),
        )
        .await["createApiKey"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    for mutation in [
        "mutation($o: ID!) { createOrganizationKey(input: {organizationId: $o, name: \"via-key\", role: MEMBER}) { secret } }",
        "mutation { createApiKey(input: {name: \"successor\"}) { secret } }",
    ] {
        let refused = app
            .gql_as(Some(&api_key), mutation, json!({ "o": org }))
            .await;
        assert_eq!(error_code(&refused), "FORBIDDEN", "{refused}");
    }
}

#[tokio::test]
async fn test_workflows_write_only_inside_the_temporary_directory_and_sleep_a_bounded_time() {
    let app = spawn_app().await;
    let org = app.create_org("tests").await;
    let outside = format!("/var/tmp-autoglue-{}.log", uuid::Uuid::now_v7().simple());
    let run = start_ok(
        &app,
        &app.token,
        &org,
        "test.side_effect",
        json!({ "file": outside, "ms": 1 }),
    )
    .await;
    let failed = wait_for_status(&app, &app.token, &run, "FAILED").await;
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .contains("temporary directory"),
        "{failed}"
    );
    assert!(!std::path::Path::new(&outside).exists());

    let run = start_ok(
        &app,
        &app.token,
        &org,
        "test.sleep",
        json!({ "ms": 86_400_000u64 }),
    )
    .await;
    let failed = wait_for_status(&app, &app.token, &run, "FAILED").await;
    assert!(
        failed["error"].as_str().unwrap().contains("at most"),
        "{failed}"
    );
}

#[tokio::test]
async fn deleting_a_cluster_leaves_its_published_records_for_the_reconcile_to_remove() {
    let app = spawn_app().await;
    let org = app.create_org("dangling").await;
    let domain = app
        .gql_ok(
            "mutation($o: ID!) { createDomain(input: {organizationId: $o, zoneName: \"dangling.example\"}) { domain { id } } }",
            json!({ "o": org }),
        )
        .await["createDomain"]["domain"]["id"]
        .clone();
    let cluster = app
        .gql_ok(
            "mutation($o: ID!, $d: ID!) { createCluster(input: {organizationId: $o, name: \"web\", domainId: $d}) { cluster { id } } }",
            json!({ "o": org, "d": domain }),
        )
        .await["createCluster"]["cluster"]["id"]
        .clone();
    let record = |name: &'static str, purpose: &'static str| {
        let app = &app;
        let (domain, cluster) = (domain.clone(), cluster.clone());
        async move {
            app.gql_ok(
                "mutation($input: CreateDnsRecordInput!) { createDnsRecord(input: $input) { dnsRecord { id } } }",
                json!({ "input": { "domainId": domain, "clusterId": cluster, "name": name,
                    "type": "A", "values": ["192.0.2.10"], "purpose": purpose } }),
            )
            .await["createDnsRecord"]["dnsRecord"]["id"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let published = record("api.web", "CONTROL_PLANE").await;
    let fresh = record("apps.web", "CUSTOM").await;
    // The reconcile published the first one.
    let row = dns_records::Entity::find_by_id(uuid_of(&published))
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    let mut row: dns_records::ActiveModel = row.into();
    row.last_synced_at = Set(Some(chrono::Utc::now()));
    row.update(&app.state.db).await.unwrap();

    app.gql_ok(
        "mutation($id: ID!) { deleteCluster(input: {id: $id}) { cluster { id } } }",
        json!({ "id": cluster }),
    )
    .await;
    let kept = dns_records::Entity::find_by_id(uuid_of(&published))
        .one(&app.state.db)
        .await
        .unwrap()
        .expect("a published record outlives its cluster");
    assert_eq!(kept.desired_state, DnsDesiredState::Absent);
    assert_eq!(kept.cluster_id, None);
    let gone = dns_records::Entity::find_by_id(uuid_of(&fresh))
        .one(&app.state.db)
        .await
        .unwrap();
    assert!(
        gone.is_none(),
        "a record never synced goes with its cluster"
    );
}
