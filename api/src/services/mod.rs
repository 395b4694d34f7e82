//! The domain rules. Every function takes the [`crate::viewer::Viewer`] and filters by it in
//! SQL; resolvers only translate to and from GraphQL.

pub mod api_keys;
pub mod audit;
pub mod data_keys;
pub mod identities;
pub mod memberships;
pub mod organizations;
pub mod pagination;
pub mod sessions;
pub mod users;
