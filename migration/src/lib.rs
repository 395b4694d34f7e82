//! Schema migrations of Autoglue, one file per change, written by hand with the sea-query schema
//! builders (never derived from the entities: an applied migration must not change when an entity
//! does). Every migration runs on PostgreSQL and SQLite.

pub use sea_orm_migration::prelude::*;

mod common;
mod m20261121_000001_identity;
mod m20261121_000002_fleet;
mod m20261121_000003_workflows;
mod m20261121_000004_audit;
mod m20261121_000005_cluster_links;
mod m20261121_000006_workflow_engine;
mod m20261122_000007_step_tasks;
mod m20261204_000008_step_fillfactor;
mod m20261207_000009_email_domain_claims;
mod m20261207_000010_master_key_fence;

/// Runs the migrations in order.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261121_000001_identity::Migration),
            Box::new(m20261121_000002_fleet::Migration),
            Box::new(m20261121_000003_workflows::Migration),
            Box::new(m20261121_000004_audit::Migration),
            Box::new(m20261121_000005_cluster_links::Migration),
            Box::new(m20261121_000006_workflow_engine::Migration),
            Box::new(m20261122_000007_step_tasks::Migration),
            Box::new(m20261204_000008_step_fillfactor::Migration),
            Box::new(m20261207_000009_email_domain_claims::Migration),
            Box::new(m20261207_000010_master_key_fence::Migration),
        ]
    }
}
