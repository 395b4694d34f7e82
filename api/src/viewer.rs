//! [`Viewer`]: who is calling. Every service function takes one.
//!
//! The authentication layer builds it per request (HTTP) or per connection (WebSocket) and
//! puts it into the GraphQL request data; resolvers read it with [`viewer`]. Until sign-in
//! lands every caller is anonymous, and services already receive it so authorization can be
//! added in SQL filters without changing their signatures.

use async_graphql::Context;

/// The identity behind a request.
#[derive(Debug, Clone, Default)]
pub enum Viewer {
    /// No credentials were presented.
    #[default]
    Anonymous,
}

/// The viewer of the current GraphQL request (anonymous if none was attached).
pub fn viewer<'a>(ctx: &'a Context<'_>) -> &'a Viewer {
    static ANONYMOUS: Viewer = Viewer::Anonymous;
    ctx.data_opt::<Viewer>().unwrap_or(&ANONYMOUS)
}
