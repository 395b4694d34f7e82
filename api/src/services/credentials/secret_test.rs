use serde_json::json;

use super::*;

const AWS: CredentialKind = CredentialKind::AwsAccessKey;
const PATH: &str = "input.secret";
const AWS_SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

fn field_of(kind: CredentialKind, value: Value) -> String {
    let err = match Secret::parse(kind, &value, PATH) {
        Ok(_) => panic!("{value} was accepted"),
        Err(e) => e,
    };
    assert_eq!(err.code(), "BAD_USER_INPUT");
    // What was sent never comes back.
    let message = err.to_string();
    for secret in ["hunter2", AWS_SECRET, "AKIAWRONG"] {
        assert!(!message.contains(secret), "{message}");
    }
    err.field().unwrap().to_owned()
}

fn sealed_json(secret: &Secret) -> Value {
    serde_json::from_slice(&secret.to_bytes()).unwrap()
}

#[test]
fn aws_keys_are_checked_field_by_field() {
    let ok = json!({ "accessKeyId": "AKIAIOSFODNN7EXAMPLE", "secretAccessKey": AWS_SECRET });
    let secret = Secret::parse(AWS, &ok, PATH).unwrap();
    assert_eq!(sealed_json(&secret), ok);

    let with = |patch: Value| {
        let mut v = ok.clone();
        v.as_object_mut()
            .unwrap()
            .extend(patch.as_object().unwrap().clone());
        v
    };
    let cases = [
        (with(json!({ "accessKeyId": "AKIAWRONG" })), "accessKeyId"),
        (
            with(json!({ "accessKeyId": "akiaiosfodnn7example" })),
            "accessKeyId",
        ),
        (
            with(json!({ "secretAccessKey": "hunter2" })),
            "secretAccessKey",
        ),
        (with(json!({ "secretAccessKey": 42 })), "secretAccessKey"),
        (with(json!({ "region": "moon-1" })), "region"),
        (
            with(json!({ "accessKeyId": "ASIAIOSFODNN7EXAMPLE" })),
            "sessionToken",
        ),
        (with(json!({ "password": "hunter2" })), "password"),
        (json!({ "secretAccessKey": AWS_SECRET }), "accessKeyId"),
    ];
    for (value, field) in cases {
        assert_eq!(field_of(AWS, value), format!("input.secret.{field}"));
    }
    assert_eq!(field_of(AWS, json!("hunter2")), "input.secret");

    let temporary = with(json!({
        "accessKeyId": "ASIAIOSFODNN7EXAMPLE",
        "sessionToken": "FwoGZXIvYXdzEBYaDexample",
        "region": "eu-west-1",
    }));
    assert!(Secret::parse(AWS, &temporary, PATH).is_ok());
}

#[test]
fn tokens_basic_auth_and_oauth_clients() {
    for kind in [
        CredentialKind::CloudflareApiToken,
        CredentialKind::HetznerApiToken,
        CredentialKind::DigitaloceanApiToken,
    ] {
        let token = json!({ "token": "dop_v1_0123456789abcdef" });
        assert_eq!(
            sealed_json(&Secret::parse(kind, &token, PATH).unwrap()),
            token
        );
        assert_eq!(
            field_of(kind, json!({ "token": "hunter2" })),
            "input.secret.token"
        );
        assert_eq!(
            field_of(kind, json!({ "token": "has spaces hunter2" })),
            "input.secret.token"
        );
        assert_eq!(field_of(kind, json!({})), "input.secret.token");
    }

    let basic = CredentialKind::BasicAuth;
    assert!(Secret::parse(basic, &json!({ "username": "u", "password": "p w!" }), PATH).is_ok());
    assert_eq!(
        field_of(basic, json!({ "username": "u", "password": "" })),
        "input.secret.password"
    );

    let oauth = CredentialKind::Oauth2Client;
    let client = json!({
        "clientId": "autoglue",
        "clientSecret": "hunter2",
        "tokenUrl": "https://auth.example.com/oauth/token",
        "scopes": ["dns:write", "zones:read"],
    });
    assert_eq!(
        sealed_json(&Secret::parse(oauth, &client, PATH).unwrap()),
        client
    );
    let mut plain = client.clone();
    plain["tokenUrl"] = json!("http://auth.example.com/token");
    assert_eq!(field_of(oauth, plain), "input.secret.tokenUrl");
    let mut bad_scope = client.clone();
    bad_scope["scopes"] = json!(["ok", "two words"]);
    assert_eq!(field_of(oauth, bad_scope), "input.secret.scopes[1]");
}

#[test]
fn every_kind_has_a_provider_and_fields() {
    use sea_orm::Iterable;
    for kind in CredentialKind::iter() {
        assert!(!fields_of(kind).is_empty());
        let _ = provider(kind);
    }
    assert_eq!(provider(AWS), Provider::Aws);
    assert_eq!(provider(CredentialKind::BasicAuth), Provider::Generic);
}
