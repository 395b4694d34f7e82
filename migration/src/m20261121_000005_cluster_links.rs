//! A cluster's links and orderings: at most one `apps` and one `control_plane` load balancer
//! per cluster, and indexes for listing an organization's clusters by creation or update time.
//!
//! No new columns. A cluster's domain is `clusters.domain_id` (since the fleet migration); its
//! control-plane DNS record is the `dns_records` row with its `cluster_id` and purpose
//! `control_plane` (one per cluster, `ux_dns_records_one_control_plane`); its apps and
//! control-plane load balancers are the `load_balancers` rows with its `cluster_id` and that
//! purpose, kept to one each by the index below. Columns such as
//! `clusters.control_plane_record_id` or `clusters.apps_load_balancer_id` would say the same
//! thing twice (and could disagree with the rows' own `cluster_id` and purpose), would make
//! clusters and those tables reference each other (a foreign-key cycle, as the fleet
//! migration notes for the bastion), and could not carry their foreign key on SQLite, which
//! cannot add a constraint to an existing table without rebuilding it. Deleting a record or
//! load balancer therefore unlinks it by construction.
//!
//! The unique index fails on a database that already holds two `apps` (or two
//! `control_plane`) load balancers for one cluster; none was released with such rows.

use crate::common::*;
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        create_partial_unique_index(
            manager,
            "CREATE UNIQUE INDEX ux_load_balancers_one_per_cluster_purpose \
             ON load_balancers (cluster_id, purpose) \
             WHERE purpose IN ('apps', 'control_plane')",
        )
        .await?;
        // Keyset pages by name use ux_clusters_organization_id_name; by status they sort on a
        // lifecycle rank (a CASE) no index serves, fine for an organization's few clusters.
        // These serve the two timestamps.
        for column in [Clusters::CreatedAt, Clusters::UpdatedAt] {
            manager
                .create_index(index(Clusters::Table, [Clusters::OrganizationId, column]))
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (table, name) in [
            ("clusters", "ix_clusters_organization_id_updated_at"),
            ("clusters", "ix_clusters_organization_id_created_at"),
            (
                "load_balancers",
                "ux_load_balancers_one_per_cluster_purpose",
            ),
        ] {
            manager
                .drop_index(Index::drop().name(name).table(Alias::new(table)).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Clusters {
    Table,
    OrganizationId,
    CreatedAt,
    UpdatedAt,
}
