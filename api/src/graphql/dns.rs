//! DNS in GraphQL: domains (zones) and their records.

use async_graphql::{Context, ID, InputObject, MaybeUndefined, Object, SimpleObject};
use chrono::{DateTime, Utc};
use entity::{
    dns_records, domains,
    enums::{DnsDesiredState, DnsObservedState, DnsRecordPurpose, DnsRecordType, DomainStatus},
};

use super::{
    fleet::{IdInput, load},
    loaders::DomainInOrg,
    relay::{ConnectionFields, GlobalId, IdConnection, NodeKind, PageArgs, connection},
    state,
};
use crate::{
    Error, Result,
    services::dns::{
        self as domain_service, DomainChange, NewDomain,
        records::{self as record_service, NewRecord, RecordChange},
        values,
    },
    viewer::viewer,
};

/// A DNS zone Autoglue manages at the provider.
#[derive(Clone)]
pub struct Domain(pub domains::Model);

#[Object]
impl Domain {
    /// Global ID.
    pub async fn id(&self) -> ID {
        GlobalId::encode(NodeKind::Domain, self.0.id)
    }
    /// The zone apex, such as example.com.
    async fn zone_name(&self) -> &str {
        &self.0.zone_name
    }
    /// The zone's id at the DNS provider, once known.
    async fn provider_zone_id(&self) -> Option<&str> {
        self.0.provider_zone_id.as_deref()
    }
    async fn status(&self) -> DomainStatus {
        self.0.status
    }
    async fn last_error(&self) -> Option<&str> {
        self.0.last_error.as_deref()
    }
    async fn last_synced_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_synced_at
    }
    /// The global ID of the credential that manages the zone.
    async fn credential_id(&self) -> Option<ID> {
        self.0
            .credential_id
            .map(|id| GlobalId::encode(NodeKind::Credential, id))
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    /// The zone's records, oldest first, including those marked ABSENT and not yet removed.
    async fn records(&self, ctx: &Context<'_>) -> Result<Vec<DnsRecord>> {
        let rows = record_service::of_domain(&state(ctx).db, viewer(ctx), self.0.id).await?;
        Ok(rows.into_iter().map(DnsRecord).collect())
    }
}

/// A record of a domain: what Autoglue wants at the provider and what it last saw there.
#[derive(Clone)]
pub struct DnsRecord(pub dns_records::Model);

fn strings(json: &serde_json::Value) -> Vec<String> {
    serde_json::from_value(json.clone()).unwrap_or_default()
}

#[Object]
impl DnsRecord {
    /// Global ID.
    pub async fn id(&self) -> ID {
        GlobalId::encode(NodeKind::DnsRecord, self.0.id)
    }
    /// Relative to the zone; @ is the apex.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// The fully qualified name, without a trailing dot.
    async fn fqdn(&self, ctx: &Context<'_>) -> Result<String> {
        let key = DomainInOrg {
            org: self.0.organization_id,
            id: self.0.domain_id,
        };
        let domain = load(ctx, key)
            .await?
            .into_iter()
            .next()
            .ok_or(Error::NotFound("domain"))?;
        Ok(values::fqdn(&self.0.name, &domain.zone_name))
    }
    #[graphql(name = "type")]
    async fn record_type(&self) -> DnsRecordType {
        self.0.record_type
    }
    async fn ttl(&self) -> i32 {
        self.0.ttl
    }
    async fn values(&self) -> Vec<String> {
        strings(&self.0.values)
    }
    async fn desired_state(&self) -> DnsDesiredState {
        self.0.desired_state
    }
    async fn observed_state(&self) -> DnsObservedState {
        self.0.observed_state
    }
    /// The values the last sync found at the provider.
    async fn observed_values(&self) -> Option<Vec<String>> {
        self.0.observed_values.as_ref().map(strings)
    }
    /// Ownership marker; Autoglue only touches records it owns.
    async fn owner(&self) -> &str {
        &self.0.owner
    }
    async fn last_synced_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_synced_at
    }
    async fn last_error(&self) -> Option<&str> {
        self.0.last_error.as_deref()
    }
    async fn purpose(&self) -> DnsRecordPurpose {
        self.0.purpose
    }
    /// The global ID of the cluster the record serves.
    async fn cluster_id(&self) -> Option<ID> {
        self.0
            .cluster_id
            .map(|id| GlobalId::encode(NodeKind::Cluster, id))
    }
    /// The global ID of its domain.
    async fn domain_id(&self) -> ID {
        GlobalId::encode(NodeKind::Domain, self.0.domain_id)
    }
}

#[derive(Default)]
pub struct DnsQuery;

#[Object]
impl DnsQuery {
    /// The domains of an organization (default: the active one), oldest first.
    #[graphql(complexity = "(first.or(last).unwrap_or(20).max(0) as usize) * child_complexity + 1")]
    async fn domains(
        &self,
        ctx: &Context<'_>,
        organization_id: Option<ID>,
        after: Option<String>,
        before: Option<String>,
        first: Option<i32>,
        last: Option<i32>,
    ) -> Result<IdConnection<Domain>> {
        let (state, viewer) = (state(ctx), viewer(ctx).clone());
        let org = organization_id
            .map(|id| GlobalId::expect(&id, NodeKind::Organization, "organizationId"))
            .transpose()?;
        let org = viewer.pick_org(org, "organizationId")?;
        let page = PageArgs {
            after,
            before,
            first,
            last,
        }
        .parse(state.config.graphql.max_page_size)?;
        let items = domain_service::list(state, &viewer, org, &page).await?;
        let counting = state.clone();
        let fields = ConnectionFields::new(move || {
            let (state, viewer) = (counting.clone(), viewer.clone());
            async move { domain_service::count(&state, &viewer, org).await }
        });
        Ok(connection(items, fields, |d| d.id, Domain))
    }

    /// One domain; null when it does not exist or is not visible to you.
    async fn domain(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Domain>> {
        let id = GlobalId::expect(&id, NodeKind::Domain, "id")?;
        Ok(domain_service::find(&state(ctx).db, viewer(ctx), id)
            .await?
            .map(Domain))
    }
}

/// Input of `createDomain`.
#[derive(InputObject)]
pub struct CreateDomainInput {
    /// Default: the active organization.
    pub organization_id: Option<ID>,
    /// The zone apex, such as example.com (a trailing dot is dropped).
    pub zone_name: String,
    pub provider_zone_id: Option<String>,
    /// An AWS key of the organization that covers Route 53.
    pub credential_id: Option<ID>,
}

/// Input of `updateDomain`: omitted fields stay, null clears.
#[derive(InputObject)]
pub struct UpdateDomainInput {
    pub id: ID,
    pub provider_zone_id: MaybeUndefined<String>,
    pub credential_id: MaybeUndefined<ID>,
}

/// A payload holding a domain.
#[derive(SimpleObject)]
pub struct DomainPayload {
    pub domain: Domain,
}

/// Input of `createDnsRecord`.
#[derive(InputObject)]
pub struct CreateDnsRecordInput {
    pub domain_id: ID,
    /// Relative to the zone: @ for the apex; a leading * label is allowed.
    pub name: String,
    #[graphql(name = "type")]
    pub record_type: DnsRecordType,
    /// Seconds, 1 to 86400.
    #[graphql(default = 300)]
    pub ttl: i32,
    /// In the type's format: an address for A/AAAA, a host for CNAME/NS, "priority host"
    /// for MX, "priority weight port target" for SRV, `flags tag "value"` for CAA.
    pub values: Vec<String>,
    pub cluster_id: Option<ID>,
    /// CONTROL_PLANE makes it the cluster's `controlPlaneRecord` (one per cluster): it needs
    /// `clusterId`, the cluster's domain as `domainId` and a plain (not wildcard) name.
    #[graphql(default_with = "DnsRecordPurpose::Custom")]
    pub purpose: DnsRecordPurpose,
}

/// Input of `updateDnsRecord`: omitted fields stay.
#[derive(InputObject)]
pub struct UpdateDnsRecordInput {
    pub id: ID,
    pub ttl: Option<i32>,
    pub values: Option<Vec<String>>,
}

/// A payload holding a DNS record.
#[derive(SimpleObject)]
pub struct DnsRecordPayload {
    pub dns_record: DnsRecord,
}

fn trimmed(raw: String) -> Option<String> {
    Some(raw.trim().to_owned()).filter(|s| !s.is_empty())
}

#[derive(Default)]
pub struct DnsMutation;

#[Object]
impl DnsMutation {
    /// Adds a domain (members and above); it starts PENDING.
    async fn create_domain(
        &self,
        ctx: &Context<'_>,
        input: CreateDomainInput,
    ) -> Result<DomainPayload> {
        let viewer = viewer(ctx);
        let org = input
            .organization_id
            .map(|id| GlobalId::expect(&id, NodeKind::Organization, "input.organizationId"))
            .transpose()?;
        let org = viewer.pick_org(org, "input.organizationId")?;
        let new = NewDomain {
            zone_name: values::zone_name(&input.zone_name, "input.zoneName")?,
            provider_zone_id: input.provider_zone_id.and_then(trimmed),
            credential_id: input
                .credential_id
                .map(|id| GlobalId::expect(&id, NodeKind::Credential, "input.credentialId"))
                .transpose()?,
        };
        let domain = domain_service::create(state(ctx), viewer, org, new).await?;
        Ok(DomainPayload {
            domain: Domain(domain),
        })
    }

    /// Changes a domain's provider zone id or credential (members and above).
    async fn update_domain(
        &self,
        ctx: &Context<'_>,
        input: UpdateDomainInput,
    ) -> Result<DomainPayload> {
        let id = GlobalId::expect(&input.id, NodeKind::Domain, "input.id")?;
        let change = DomainChange {
            provider_zone_id: match input.provider_zone_id {
                MaybeUndefined::Undefined => None,
                MaybeUndefined::Null => Some(None),
                MaybeUndefined::Value(v) => Some(trimmed(v)),
            },
            credential_id: match input.credential_id {
                MaybeUndefined::Undefined => None,
                MaybeUndefined::Null => Some(None),
                MaybeUndefined::Value(v) => Some(Some(GlobalId::expect(
                    &v,
                    NodeKind::Credential,
                    "input.credentialId",
                )?)),
            },
        };
        let domain = domain_service::update(state(ctx), viewer(ctx), id, change).await?;
        Ok(DomainPayload {
            domain: Domain(domain),
        })
    }

    /// Deletes a domain and its records (admins); clusters using it stay, without a zone.
    /// Nothing is removed at the DNS provider.
    async fn delete_domain(&self, ctx: &Context<'_>, input: IdInput) -> Result<DomainPayload> {
        let id = GlobalId::expect(&input.id, NodeKind::Domain, "input.id")?;
        let domain = domain_service::delete(state(ctx), viewer(ctx), id).await?;
        Ok(DomainPayload {
            domain: Domain(domain),
        })
    }

    /// Adds a record to a domain (members and above): PRESENT, observed PENDING until synced.
    async fn create_dns_record(
        &self,
        ctx: &Context<'_>,
        input: CreateDnsRecordInput,
    ) -> Result<DnsRecordPayload> {
        let domain = GlobalId::expect(&input.domain_id, NodeKind::Domain, "input.domainId")?;
        let new = NewRecord {
            name: values::record_name(&input.name, "input.name")?,
            record_type: input.record_type,
            ttl: values::ttl(input.ttl, "input.ttl")?,
            values: input.values,
            cluster_id: input
                .cluster_id
                .map(|id| GlobalId::expect(&id, NodeKind::Cluster, "input.clusterId"))
                .transpose()?,
            purpose: input.purpose,
        };
        let record = record_service::create(state(ctx), viewer(ctx), domain, new).await?;
        Ok(DnsRecordPayload {
            dns_record: DnsRecord(record),
        })
    }

    /// Changes a record's TTL or values (members and above); it is PENDING until synced.
    async fn update_dns_record(
        &self,
        ctx: &Context<'_>,
        input: UpdateDnsRecordInput,
    ) -> Result<DnsRecordPayload> {
        let id = GlobalId::expect(&input.id, NodeKind::DnsRecord, "input.id")?;
        let change = RecordChange {
            ttl: input.ttl.map(|t| values::ttl(t, "input.ttl")).transpose()?,
            values: input.values,
        };
        let record = record_service::update(state(ctx), viewer(ctx), id, change).await?;
        Ok(DnsRecordPayload {
            dns_record: DnsRecord(record),
        })
    }

    /// Deletes a record (admins). A record ever synced is marked ABSENT and returned so:
    /// the reconcile workflow removes it at the provider, then its row. A record never
    /// synced is deleted at once and returned as it was.
    async fn delete_dns_record(
        &self,
        ctx: &Context<'_>,
        input: IdInput,
    ) -> Result<DnsRecordPayload> {
        let id = GlobalId::expect(&input.id, NodeKind::DnsRecord, "input.id")?;
        let record = record_service::delete(state(ctx), viewer(ctx), id).await?;
        Ok(DnsRecordPayload {
            dns_record: DnsRecord(record),
        })
    }
}
