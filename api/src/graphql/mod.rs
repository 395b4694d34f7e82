//! The GraphQL schema: roots merged from one module per domain noun.
//!
//! Resolvers are thin: read arguments, take the [`crate::viewer::Viewer`], call one service
//! function, convert the result. Conventions every module follows: mutations take one
//! `input` argument and return a payload object; lists that can grow are Relay connections
//! with `totalCount`; objects implement `Node` with opaque global IDs.

mod api_keys;
mod audit;
mod credentials;
mod dns;
mod email_domains;
pub mod errors;
mod fleet;
mod jobs;
mod load_balancers;
pub mod loaders;
mod members;
mod node;
mod organizations;
mod plain;
pub mod relay;
pub mod rendered;
mod rows;
mod sessions;
mod ssh_keys;
mod users;
mod workflows;

use async_graphql::{Context, MergedObject, MergedSubscription, Schema, SchemaBuilder};

use crate::state::AppState;

/// The complete schema type.
pub type AppSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

/// All queries.
#[derive(MergedObject, Default)]
#[graphql(name = "Query")]
pub struct QueryRoot(
    node::NodeQuery,
    users::UserQuery,
    organizations::OrganizationQuery,
    fleet::FleetQuery,
    ssh_keys::SshKeyQuery,
    credentials::CredentialQuery,
    dns::DnsQuery,
    load_balancers::LoadBalancerQuery,
    workflows::WorkflowQuery,
    jobs::JobQuery,
);

/// All mutations.
#[derive(MergedObject, Default)]
#[graphql(name = "Mutation")]
pub struct MutationRoot(
    sessions::SessionMutation,
    users::UserMutation,
    organizations::OrganizationMutation,
    email_domains::EmailDomainMutation,
    members::MemberMutation,
    api_keys::ApiKeyMutation,
    fleet::FleetMutation,
    ssh_keys::SshKeyMutation,
    credentials::CredentialMutation,
    dns::DnsMutation,
    load_balancers::LoadBalancerMutation,
    workflows::WorkflowMutation,
    jobs::JobMutation,
);

/// All subscriptions.
#[derive(MergedSubscription, Default)]
#[graphql(name = "Subscription")]
pub struct SubscriptionRoot(
    organizations::OrganizationSubscription,
    workflows::WorkflowSubscription,
);

fn builder() -> SchemaBuilder<QueryRoot, MutationRoot, SubscriptionRoot> {
    Schema::build(
        QueryRoot::default(),
        MutationRoot::default(),
        SubscriptionRoot::default(),
    )
}

/// The schema with the process state attached and the configured limits, ready to execute.
pub fn build_schema(state: AppState) -> AppSchema {
    let limits = state.config.graphql.clone();
    let mut schema = builder()
        .limit_depth(limits.max_depth)
        .limit_complexity(limits.max_complexity);
    if !limits.introspection {
        schema = schema.disable_introspection();
    }
    schema.data(state).finish()
}

/// The schema as served: [`build_schema`] inside [`errors::Served`].
pub fn served(state: AppState) -> errors::Served {
    let max_aliases = state.config.graphql.max_aliases;
    errors::Served::new(build_schema(state), max_aliases)
}

/// The schema in SDL, as checked in at `schema.graphql`.
pub fn sdl() -> String {
    builder().finish().sdl()
}

/// The process state inside a resolver.
pub(crate) fn state<'a>(ctx: &'a Context<'_>) -> &'a AppState {
    ctx.data_unchecked::<AppState>()
}
