//! The domain rules. Every function takes the [`crate::viewer::Viewer`] and filters by it in
//! SQL; resolvers only translate to and from GraphQL.

pub mod api_keys;
pub mod audit;
pub mod clusters;
pub mod credentials;
pub mod data_keys;
pub mod dns;
pub mod email_domains;
pub mod identities;
pub mod jobs;
pub mod load_balancers;
pub mod master_fence;
pub mod master_rotation;
pub mod memberships;
pub mod node_pools;
pub mod organizations;
pub mod pagination;
pub mod servers;
pub mod sessions;
pub mod ssh_keys;
pub mod users;
pub mod validate;
pub mod workflow_runs;
