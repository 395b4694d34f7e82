//! sea-orm entities of Autoglue: one module per table (the module name is the table name), the
//! column enums in [`enums`], and a [`prelude`] that re-exports every `Entity` under its table's
//! name.
//!
//! Every table has a UUIDv7 `id` and a `created_at` (most also an `updated_at`), all set in Rust by
//! the shared `ActiveModelBehavior` (see `ActiveModel::new()`). The schema itself is defined by the
//! hand-written migrations of the `migration` crate; these entities must match it.

mod behavior;
pub use behavior::now;
mod write_txn;
pub use write_txn::WriteTxn;
pub mod enums;
pub mod prelude;

pub mod api_keys;
pub mod audit_log;
pub mod cluster_metadata;
pub mod clusters;
pub mod credentials;
pub mod dns_records;
pub mod domains;
pub mod load_balancers;
pub mod memberships;
pub mod node_pool_annotations;
pub mod node_pool_labels;
pub mod node_pool_taints;
pub mod node_pools;
pub mod organization_data_keys;
pub mod organization_keys;
pub mod organizations;
pub mod refresh_tokens;
pub mod servers;
pub mod signing_keys;
pub mod ssh_keys;
pub mod user_emails;
pub mod user_identities;
pub mod users;
pub mod workflow_logs;
pub mod workflow_runs;
pub mod workflow_steps;
