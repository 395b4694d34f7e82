//! One user cannot pin the CPU with expensive creations: organizations, API keys,
//! organization keys and generated SSH keys share a per-user quota per minute.

use serde_json::json;

use crate::helpers::{error_code, spawn_app_with};

#[tokio::test]
async fn expensive_creations_are_limited_per_user() {
    let app = spawn_app_with(|c| c.limits.creations_per_minute = 4).await;
    let org = app.create_org("quota").await; // 1
    app.gql_ok(
        "mutation { createApiKey(input: {name: \"one\"}) { secret } }",
        json!({}),
    )
    .await; // 2
    app.gql_ok(
        "mutation($o: ID!) { generateSshKey(input: {organizationId: $o, name: \"k\", algorithm: ED25519}) { sshKey { id } } }",
        json!({ "o": org }),
    )
    .await; // 3
    app.gql_ok(
        "mutation($o: ID!) { createOrganizationKey(input: {organizationId: $o, name: \"ok\", role: MEMBER}) { secret } }",
        json!({ "o": org }),
    )
    .await; // 4
    for refused in [
        app.gql(
            "mutation { createOrganization(input: {name: \"five\"}) { organization { id } } }",
            json!({}),
        )
        .await,
        app.gql(
            "mutation { createApiKey(input: {name: \"two\"}) { secret } }",
            json!({}),
        )
        .await,
        app.gql(
            "mutation($o: ID!) { generateSshKey(input: {organizationId: $o, name: \"k2\", algorithm: RSA}) { sshKey { id } } }",
            json!({ "o": org }),
        )
        .await,
    ] {
        assert_eq!(error_code(&refused), "RATE_LIMITED", "{refused}");
    }
    // Another user has a quota of their own.
    let bob = app.user("bob").await;
    app.gql_ok_as(
        &bob,
        "mutation { createOrganization(input: {name: \"bobs\"}) { organization { id } } }",
        json!({}),
    )
    .await;
}
