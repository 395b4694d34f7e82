//! What a credential may be used for (its scope) and where (its region).
//!
//! Every kind may cover a whole account. AWS keys may instead be limited to one service
//! (an ARN service namespace such as `route53`) or one resource (its ARN); other providers'
//! tokens carry their limits at the provider, so they take the account scope only.

use entity::enums::{CredentialKind, CredentialScope};

use crate::{Error, Result};

/// AWS services a key may be limited to (ARN service namespaces).
pub const AWS_SERVICES: &[&str] = &[
    "acm",
    "autoscaling",
    "cloudformation",
    "cloudfront",
    "dynamodb",
    "ec2",
    "ecr",
    "eks",
    "elasticloadbalancing",
    "iam",
    "kms",
    "lambda",
    "rds",
    "route53",
    "s3",
    "secretsmanager",
    "ses",
    "sns",
    "sqs",
    "ssm",
    "sts",
];

/// A validated scope and its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub kind: CredentialScope,
    /// The service (for `SERVICE`) or the ARN (for `RESOURCE`); none for `ACCOUNT`.
    pub value: Option<String>,
}

/// Checks `scope` (`ACCOUNT` when omitted) and its value for a `kind` credential. Errors
/// name `input.scope` or `input.scopeValue`.
pub fn parse_scope(
    kind: CredentialKind,
    scope: Option<CredentialScope>,
    value: Option<&str>,
) -> Result<Scope> {
    let scope = scope.unwrap_or(CredentialScope::Account);
    let value = value.map(str::trim).filter(|v| !v.is_empty());
    let field = "input.scopeValue";
    let value = match (scope, value) {
        (CredentialScope::Account, None) => None,
        (CredentialScope::Account, Some(_)) => {
            return Err(Error::bad_input(field, "an ACCOUNT scope takes no value"));
        }
        _ if kind != CredentialKind::AwsAccessKey => {
            return Err(Error::bad_input(
                "input.scope",
                "only AWS keys can be limited to a service or a resource",
            ));
        }
        (_, None) => {
            return Err(Error::bad_input(
                field,
                "name the service (SERVICE) or the resource ARN (RESOURCE)",
            ));
        }
        (CredentialScope::Service, Some(service)) => Some(aws_service(service, field)?),
        (CredentialScope::Resource, Some(arn)) => Some(aws_arn(arn, field)?),
    };
    Ok(Scope { kind: scope, value })
}

/// Checks the region of a `kind` credential: an AWS region (`eu-west-1`) for AWS, a
/// provider location name (`fsn1`, `nyc3`) otherwise. Empty is none.
pub fn parse_region(kind: CredentialKind, raw: &str, field: &str) -> Result<Option<String>> {
    let region = raw.trim();
    if region.is_empty() {
        return Ok(None);
    }
    if kind == CredentialKind::AwsAccessKey {
        return aws_region(region, field).map(Some);
    }
    let ok = region.len() <= 64
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !ok {
        return Err(Error::bad_input(
            field,
            "a region is up to 64 lowercase letters, digits or '-'",
        ));
    }
    Ok(Some(region.to_owned()))
}

/// An AWS region such as `us-east-1` or `us-gov-west-1`.
pub fn aws_region(raw: &str, field: &str) -> Result<String> {
    if !is_aws_region(raw) {
        return Err(Error::bad_input(
            field,
            "not an AWS region (such as us-east-1)",
        ));
    }
    Ok(raw.to_owned())
}

fn is_aws_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    let [area, names @ .., number] = parts.as_slice() else {
        return false;
    };
    area.len() == 2
        && area.bytes().all(|b| b.is_ascii_lowercase())
        && !names.is_empty()
        && names
            .iter()
            .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_lowercase()))
        && !number.is_empty()
        && number.len() <= 2
        && number.bytes().all(|b| b.is_ascii_digit())
}

fn aws_service(raw: &str, field: &str) -> Result<String> {
    let service = raw.to_lowercase();
    if !AWS_SERVICES.contains(&service.as_str()) {
        return Err(Error::bad_input(
            field,
            format!(
                "not a supported AWS service; one of {}",
                AWS_SERVICES.join(", ")
            ),
        ));
    }
    Ok(service)
}

/// `arn:<partition>:<service>:<region>:<account>:<resource>`; region and account may be
/// empty (`arn:aws:s3:::bucket`), the resource may contain `:` and `/`.
fn aws_arn(raw: &str, field: &str) -> Result<String> {
    let parts: Vec<&str> = raw.splitn(6, ':').collect();
    let ok = match parts.as_slice() {
        ["arn", partition, service, region, account, resource] => {
            matches!(*partition, "aws" | "aws-cn" | "aws-us-gov")
                && !service.is_empty()
                && service
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && (region.is_empty() || is_aws_region(region))
                && (account.is_empty()
                    || (account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit())))
                && !resource.is_empty()
                && raw.len() <= 2048
                && raw.bytes().all(|b| b.is_ascii_graphic())
        }
        _ => false,
    };
    if !ok {
        return Err(Error::bad_input(
            field,
            "not an AWS ARN (arn:aws:service:region:account:resource)",
        ));
    }
    Ok(raw.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const AWS: CredentialKind = CredentialKind::AwsAccessKey;

    #[test]
    fn aws_keys_take_a_service_or_an_arn() {
        let scope = parse_scope(AWS, Some(CredentialScope::Service), Some(" Route53 ")).unwrap();
        assert_eq!(scope.value.as_deref(), Some("route53"));
        for arn in [
            "arn:aws:s3:::my-bucket",
            "arn:aws:route53:::hostedzone/Z123ABC",
            "arn:aws-us-gov:ec2:us-gov-west-1:123456789012:instance/i-0abc",
            "arn:aws:iam::123456789012:role/path:with:colons",
        ] {
            let scope = parse_scope(AWS, Some(CredentialScope::Resource), Some(arn)).unwrap();
            assert_eq!(scope.value.as_deref(), Some(arn));
        }
        for (scope, value, field) in [
            (
                CredentialScope::Service,
                Some("teleport"),
                "input.scopeValue",
            ),
            (CredentialScope::Service, None, "input.scopeValue"),
            (
                CredentialScope::Resource,
                Some("arn:aws:s3"),
                "input.scopeValue",
            ),
            (
                CredentialScope::Resource,
                Some("arn:gcp:s3:::b"),
                "input.scopeValue",
            ),
            (
                CredentialScope::Resource,
                Some("arn:aws:ec2:mars:1:x"),
                "input.scopeValue",
            ),
            (CredentialScope::Account, Some("s3"), "input.scopeValue"),
        ] {
            let err = parse_scope(AWS, Some(scope), value).unwrap_err();
            assert_eq!(err.field(), Some(field), "{scope:?} {value:?}");
        }
        assert_eq!(
            parse_scope(AWS, None, None).unwrap().kind,
            CredentialScope::Account
        );
    }

    #[test]
    fn other_kinds_cover_the_account() {
        let err = parse_scope(
            CredentialKind::CloudflareApiToken,
            Some(CredentialScope::Service),
            Some("dns"),
        )
        .unwrap_err();
        assert_eq!(err.field(), Some("input.scope"));
    }

    #[test]
    fn regions_follow_the_provider() {
        for ok in [
            "us-east-1",
            "eu-central-2",
            "us-gov-west-1",
            "ap-southeast-4",
        ] {
            assert_eq!(parse_region(AWS, ok, "r").unwrap().as_deref(), Some(ok));
        }
        for bad in ["useast1", "US-EAST-1", "us-east", "fsn1", "us--1"] {
            assert!(parse_region(AWS, bad, "r").is_err(), "{bad}");
        }
        let hetzner = CredentialKind::HetznerApiToken;
        assert_eq!(
            parse_region(hetzner, "fsn1", "r").unwrap().as_deref(),
            Some("fsn1")
        );
        assert_eq!(parse_region(hetzner, "  ", "r").unwrap(), None);
        assert!(parse_region(hetzner, "Falkenstein 1", "r").is_err());
    }
}
