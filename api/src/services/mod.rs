//! The domain rules. Every function takes the [`crate::viewer::Viewer`] and filters by it in
//! SQL; resolvers only translate to and from GraphQL.

pub mod organizations;
pub mod pagination;
