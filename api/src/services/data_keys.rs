//! Per-organization data keys: random keys wrapped by the master key, stored in
//! `organization_data_keys`, cached unwrapped in memory. Secrets of an organization are
//! sealed with its key (see the `vault` crate for formats and associated data).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use anyhow::Context;
use entity::organization_data_keys;
use sea_orm::{
    ActiveModelBehavior, ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection,
    EntityTrait, QueryFilter, QueryOrder, Set,
};
use sea_orm_migration::SchemaManager;
use uuid::Uuid;
use vault::{DataKey, MasterKey};

use crate::{Error, Result, services::master_fence};

/// The master key and the organization keys it unwrapped.
pub struct Keys {
    master: MasterKey,
    instance: Arc<DataKey>,
    cache: Mutex<HashMap<Uuid, Arc<DataKey>>>,
}

impl Keys {
    pub fn new(master: MasterKey) -> Self {
        let instance = Arc::new(master.instance_key());
        Keys {
            master,
            instance,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The key for instance-wide secrets (signing keys).
    pub fn instance_key(&self) -> Arc<DataKey> {
        self.instance.clone()
    }

    /// Makes and stores the first data key of a new organization (inside its transaction),
    /// unless the master key was rotated away from this instance's ([`master_fence`]).
    pub async fn create_for<C: ConnectionTrait>(&self, db: &C, org: Uuid) -> Result<()> {
        master_fence::hold(db, &self.master.id()).await?;
        let key = DataKey::generate();
        let mut row = organization_data_keys::ActiveModel::new();
        row.organization_id = Set(org);
        row.version = Set(1);
        row.wrapped_key = Set(self.master.wrap(org, &key));
        row.master_key_id = Set(self.master.id());
        row.insert(db)
            .await
            .context("storing an organization key")?;
        Ok(())
    }

    /// The current data key of `org`.
    pub async fn for_org<C: ConnectionTrait>(&self, db: &C, org: Uuid) -> Result<Arc<DataKey>> {
        if let Some(key) = self.cache.lock().unwrap().get(&org) {
            return Ok(key.clone());
        }
        let row = organization_data_keys::Entity::find()
            .filter(organization_data_keys::Column::OrganizationId.eq(org))
            .order_by_desc(organization_data_keys::Column::Version)
            .one(db)
            .await
            .context("loading an organization key")?
            .ok_or_else(|| anyhow::anyhow!("organization {org} has no data key"))?;
        let key = match self.master.unwrap(org, &row.wrapped_key) {
            Ok(key) => key,
            Err(_) if row.master_key_id != self.master.id() => {
                tracing::error!(%org, "an organization key is wrapped under another master key");
                return Err(Error::Unavailable(
                    "the master key was rotated: this server must restart with the new key",
                ));
            }
            Err(e) => {
                return Err(
                    anyhow::anyhow!("unwrapping the key of organization {org}: {e}").into(),
                );
            }
        };
        let key = Arc::new(key);
        self.cache.lock().unwrap().insert(org, key.clone());
        Ok(key)
    }
}

/// Refuses to start with a master key other than the one that wrapped the stored keys:
/// better one clear line at start-up than a failure at the first secret read.
pub async fn check_master_key(db: &DatabaseConnection, master: &MasterKey) -> anyhow::Result<()> {
    let schema = SchemaManager::new(db);
    if !schema.has_table("organization_data_keys").await? {
        return Ok(());
    }
    if schema.has_table("instance_settings").await?
        && let Some(recorded) = master_fence::recorded(db).await?
        && recorded != master.id()
    {
        anyhow::bail!(
            "the master key (id {}) is not the one this database's keys are wrapped with (id {recorded}); set AUTOGLUE_MASTER_KEY or AUTOGLUE_MASTER_KEY_FILE to the right key",
            master.id(),
        );
    }
    let others = organization_data_keys::Entity::find()
        .filter(organization_data_keys::Column::MasterKeyId.ne(master.id()))
        .all(db)
        .await
        .context("checking the master key")?;
    if let Some(row) = others.first() {
        let named: Vec<String> = others
            .iter()
            .take(5)
            .map(|r| {
                format!(
                    "organization {} (key id {})",
                    r.organization_id, r.master_key_id
                )
            })
            .collect();
        anyhow::bail!(
            "the master key (id {}) is not the one {} of this database's organization keys were wrapped with, e.g. id {}: {}; set AUTOGLUE_MASTER_KEY or AUTOGLUE_MASTER_KEY_FILE to the right key (a rotation that left keys under two master keys is finished by running `encrypt rotate-master` again)",
            master.id(),
            others.len(),
            row.master_key_id,
            named.join(", ")
        );
    }
    // A database with no organization yet still has a signing key to open.
    crate::auth::keyring::check_can_open(db, &master.instance_key()).await
}
