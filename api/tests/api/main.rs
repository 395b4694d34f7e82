//! Integration tests of the `autoglue` binary and its HTTP/GraphQL/WebSocket surface.
//!
//! One test binary, a module per feature. Each test gets a fresh database on the backend
//! chosen by `AG_TEST_BACKEND` (`sqlite`, the default, or `postgres`); `scripts/test` runs
//! the whole suite once per backend.

mod bus;
mod cli;
mod cluster_links;
mod cluster_order;
mod concurrent_writes;
mod credentials;
mod cross_org;
mod dependency_restarts;
mod dns;
mod fleet;
mod graphiql;
mod health;
mod helpers;
mod identity;
mod oidc;
mod organizations;
mod plain_fields;
mod reads;
mod rendered;
mod secrets;
mod security;
mod ssh_keys;
mod tenancy;
mod transport;
mod worker_crash;
mod workflows;
