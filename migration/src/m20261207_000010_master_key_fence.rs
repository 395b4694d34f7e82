//! `instance_settings`: facts about the whole instance, one row each. Its first row,
//! `master_key_id`, names the master key that wraps the stored keys now.
//!
//! Every transaction that wraps a new key under the master key (an organization's data key,
//! a token signing key) holds this row shared and checks the id; `encrypt rotate-master`
//! holds it exclusively while it re-wraps and then changes it. So a server still running
//! on the old key cannot wrap a new key under it during or after a rotation: it waits for
//! the rotation, sees the new id, and refuses (where before it wrapped under the old key and
//! left the database half under each).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(InstanceSettings::Table)
                    .col(string_len(InstanceSettings::Name, 64).primary_key())
                    .col(text_null(InstanceSettings::Value))
                    .to_owned(),
            )
            .await?;
        // The id is recorded by the first server to start with a master key.
        manager
            .exec_stmt(
                Query::insert()
                    .into_table(InstanceSettings::Table)
                    .columns([InstanceSettings::Name])
                    .values_panic(["master_key_id".into()])
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(InstanceSettings::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum InstanceSettings {
    Table,
    Name,
    Value,
}
