//! `autoglue encrypt rotate-master`: every organization key re-wrapped and every signing key
//! re-sealed under a new master key, in one transaction that holds the master key fence
//! ([`super::master_fence`]) exclusively, so no server wraps a key under the old master key
//! meanwhile.
//!
//! A key already under the new master key is skipped, so a rotation interrupted or left
//! half done (by a server that wrapped keys under the old key before the fence existed)
//! finishes when run again. A key that opens under neither key stops the rotation, which
//! names it.

use anyhow::{Context, bail};
use entity::{WriteTxn as _, organization_data_keys, signing_keys};
use sea_orm::{ActiveModelTrait, DatabaseConnection, EntityTrait, Set};
use vault::{MasterKey, SealContext};

use super::master_fence;

/// What a rotation did.
#[derive(Debug, Default)]
pub struct Rotated {
    pub org_keys: usize,
    pub signing_keys: usize,
    /// Keys found already under the new master key.
    pub skipped: usize,
}

/// Re-wraps everything under `new`, all or nothing.
pub async fn rotate_master(
    conn: &DatabaseConnection,
    old: &MasterKey,
    new: &MasterKey,
) -> anyhow::Result<Rotated> {
    let txn = conn.begin_write().await?;
    master_fence::take(&txn).await?;
    let mut done = Rotated::default();
    let mut stuck = Vec::new();
    for row in organization_data_keys::Entity::find().all(&txn).await? {
        let org = row.organization_id;
        let wrapped = match vault::rewrap(old, new, org, &row.wrapped_key) {
            Ok(wrapped) => wrapped,
            Err(_) if new.unwrap(org, &row.wrapped_key).is_ok() => {
                done.skipped += 1;
                if row.master_key_id != new.id() {
                    let mut row: organization_data_keys::ActiveModel = row.into();
                    row.master_key_id = Set(new.id());
                    row.update(&txn).await?;
                }
                continue;
            }
            Err(_) => {
                stuck.push(format!("organization {org} (key id {})", row.master_key_id));
                continue;
            }
        };
        let mut row: organization_data_keys::ActiveModel = row.into();
        row.wrapped_key = Set(wrapped);
        row.master_key_id = Set(new.id());
        row.update(&txn).await?;
        done.org_keys += 1;
    }
    let (old_instance, new_instance) = (old.instance_key(), new.instance_key());
    for row in signing_keys::Entity::find().all(&txn).await? {
        let ctx = SealContext::new("signing_keys", "private_key_sealed", row.id);
        let secret = match old_instance.open(&ctx, &row.private_key_sealed) {
            Ok(secret) => secret,
            Err(_) if new_instance.open(&ctx, &row.private_key_sealed).is_ok() => {
                done.skipped += 1;
                continue;
            }
            Err(_) => {
                stuck.push(format!("signing key {}", row.kid));
                continue;
            }
        };
        let sealed = new_instance.seal(&ctx, &secret);
        let mut row: signing_keys::ActiveModel = row.into();
        row.private_key_sealed = Set(sealed);
        row.update(&txn).await?;
        done.signing_keys += 1;
    }
    if !stuck.is_empty() {
        bail!(
            "{} keys open under neither the current nor the new master key, nothing was changed: {}",
            stuck.len(),
            stuck.join(", ")
        );
    }
    master_fence::set(&txn, &new.id()).await?;
    txn.commit().await.context("committing the rotation")?;
    Ok(done)
}
