//! Autoglue's API server: configuration, HTTP, GraphQL and the domain services.
//!
//! `main.rs` only parses the command line; everything else lives here so integration tests
//! can build the very same [`startup::Application`] in-process.

pub mod auth;
pub mod bus;
pub mod cli;
pub mod config;
pub mod db;
pub mod error;
pub mod graphql;
pub mod http;
pub mod maintenance;
pub mod services;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod viewer;

pub use error::{Error, Result};

/// The version of this build.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
