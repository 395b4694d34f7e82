//! Proving an organization's email domain claim: the TXT record to publish, its check, and
//! an instance admin's approval.

use async_graphql::{Context, ID, InputObject, Object, SimpleObject};

use super::{
    organizations::{Organization, UpdateOrganizationPayload},
    relay::{GlobalId, NodeKind},
    state,
};
use crate::{
    Result,
    services::{email_domains as service, organizations::parse_email_domain},
    viewer::viewer,
};

/// The DNS record that proves a domain claim.
#[derive(SimpleObject)]
pub struct EmailDomainChallenge {
    /// Where to publish it, e.g. `_autoglue-challenge.example.com`.
    pub record_name: String,
    /// The record's type: always `TXT`.
    pub record_type: String,
    /// The record's value.
    pub value: String,
}

impl EmailDomainChallenge {
    pub fn new(domain: &str, token: &str) -> Self {
        EmailDomainChallenge {
            record_name: service::challenge::record_name(domain),
            record_type: "TXT".into(),
            value: service::challenge::record_value(token),
        }
    }
}

/// Input of `verifyEmailDomain`.
#[derive(InputObject)]
pub struct EmailDomainInput {
    pub organization_id: ID,
}

/// Input of `approveEmailDomain`.
#[derive(InputObject)]
pub struct ApproveEmailDomainInput {
    pub organization_id: ID,
    /// The claimed domain being approved: refused when the organization now claims another.
    pub email_domain: String,
}

#[derive(Default)]
pub struct EmailDomainMutation;

#[Object]
impl EmailDomainMutation {
    /// Checks the claim's TXT record (owners): `VERIFIED` when it holds the challenge's
    /// value; `CONFLICT` naming the record when it is not there yet.
    async fn verify_email_domain(
        &self,
        ctx: &Context<'_>,
        input: EmailDomainInput,
    ) -> Result<UpdateOrganizationPayload> {
        let id = GlobalId::expect(
            &input.organization_id,
            NodeKind::Organization,
            "input.organizationId",
        )?;
        let org = service::verify(state(ctx), viewer(ctx), id).await?;
        Ok(UpdateOrganizationPayload {
            organization: Organization(org),
        })
    }

    /// Verifies a claim without its DNS record (instance admins).
    async fn approve_email_domain(
        &self,
        ctx: &Context<'_>,
        input: ApproveEmailDomainInput,
    ) -> Result<UpdateOrganizationPayload> {
        let id = GlobalId::expect(
            &input.organization_id,
            NodeKind::Organization,
            "input.organizationId",
        )?;
        let domain = parse_email_domain(&input.email_domain, "input.emailDomain")?;
        let org = service::approve(state(ctx), viewer(ctx), id, &domain).await?;
        Ok(UpdateOrganizationPayload {
            organization: Organization(org),
        })
    }
}
