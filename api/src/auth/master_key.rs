//! Finding the master key at start-up.

use anyhow::Context;
use secrecy::ExposeSecret;
use vault::MasterKey;

use crate::config::{AuthSettings, DatabaseUrl};

/// The master key from `AUTOGLUE_MASTER_KEY`, else `AUTOGLUE_MASTER_KEY_FILE`, else, on the
/// embedded SQLite default, the file next to the database (made on first start, and said
/// so). PostgreSQL deployments must name one: a key made silently on one of many instances
/// would lock the others out.
pub fn load(auth: &AuthSettings, database: &DatabaseUrl) -> anyhow::Result<MasterKey> {
    if let Some(key) = &auth.master_key {
        return MasterKey::from_base64(key.expose_secret())
            .map_err(|e| anyhow::anyhow!("invalid AUTOGLUE_MASTER_KEY: {e}"));
    }
    if let Some(path) = &auth.master_key_file {
        return MasterKey::from_file(path)
            .map_err(|e| anyhow::anyhow!("invalid AUTOGLUE_MASTER_KEY_FILE: {e}"));
    }
    let Some(db_path) = database.sqlite_path() else {
        anyhow::bail!(
            "a master key is required with PostgreSQL: set AUTOGLUE_MASTER_KEY_FILE (make one with `autoglue encrypt create-master --file FILE`) or AUTOGLUE_MASTER_KEY"
        );
    };
    if db_path.as_os_str() == ":memory:" {
        return Ok(MasterKey::generate());
    }
    let path = db_path.with_extension("master.key");
    if path.exists() {
        return MasterKey::from_file(&path)
            .map_err(|e| anyhow::anyhow!("invalid master key file {}: {e}", path.display()));
    }
    let key = vault::create_master_key_file(&path)
        .with_context(|| format!("creating the master key file {}", path.display()))?;
    tracing::warn!(
        path = %path.display(),
        "created a new master key next to the database; back it up with the database, secrets cannot be read without it"
    );
    Ok(key)
}
