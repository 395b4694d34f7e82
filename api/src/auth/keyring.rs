//! JWT signing keys: Ed25519 (EdDSA), stored in `signing_keys` with the private half sealed
//! by the instance key, identified by `kid`.
//!
//! One key signs at a time (the newest unretired one). Rotation retires it and makes a new
//! one; a retired key stays in the JWKS until every token it signed has expired, so another
//! process can verify tokens through `/.well-known/jwks.json` alone. Each process caches the
//! keys and reloads them when it meets a `kid` it does not know (another instance rotated).

use entity::WriteTxn as _;
use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use anyhow::Context;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use ed25519_dalek::{SigningKey, pkcs8::EncodePrivateKey};
use entity::{enums::SigningKeyAlgorithm, signing_keys};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use sea_orm::{
    ActiveModelBehavior, ActiveModelTrait, ColumnTrait, Condition, DatabaseConnection, EntityTrait,
    QueryFilter, QueryOrder, Set,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;
use vault::{DataKey, SealContext};

use crate::{Error, Result};

/// The `iss` of every access token.
pub const ISSUER: &str = "autoglue";

/// What an access token says.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    /// The user's id.
    pub sub: Uuid,
    pub iat: i64,
    pub exp: i64,
    /// Unique id of this token.
    pub jti: Uuid,
}

struct Keys {
    signing: Option<(String, EncodingKey)>,
    verifying: HashMap<String, DecodingKey>,
    jwks: Value,
    loaded_at: Instant,
}

/// The signing keys of this process, shared by every request.
#[derive(Clone)]
pub struct KeyRing {
    keys: Arc<RwLock<Keys>>,
    db: DatabaseConnection,
    instance_key: Arc<DataKey>,
    /// The id of the master key `instance_key` derives from, for the rotation fence.
    master_id: String,
    access_ttl: Duration,
}

fn seal_context(id: Uuid) -> SealContext<'static> {
    SealContext::new("signing_keys", "private_key_sealed", id)
}

impl KeyRing {
    /// Loads the keys, creating the first one when there is none.
    pub async fn load(
        db: DatabaseConnection,
        instance_key: Arc<DataKey>,
        master_id: String,
        access_ttl: Duration,
    ) -> anyhow::Result<KeyRing> {
        let ring = KeyRing {
            keys: Arc::new(RwLock::new(Keys {
                signing: None,
                verifying: HashMap::new(),
                jwks: json!({ "keys": [] }),
                loaded_at: Instant::now(),
            })),
            db,
            instance_key,
            master_id,
            access_ttl,
        };
        ring.reload().await?;
        if ring.keys.read().unwrap().signing.is_none() {
            rotate(&ring.db, &ring.instance_key, &ring.master_id, access_ttl).await?;
            ring.reload().await?;
        }
        Ok(ring)
    }

    /// Reads the published keys again from the database.
    pub async fn reload(&self) -> anyhow::Result<()> {
        let now = Utc::now();
        let rows = signing_keys::Entity::find()
            .filter(
                Condition::any()
                    .add(signing_keys::Column::ExpiresAt.is_null())
                    .add(signing_keys::Column::ExpiresAt.gt(now)),
            )
            .order_by_desc(signing_keys::Column::Id)
            .all(&self.db)
            .await
            .context("loading signing keys")?;
        let mut signing = None;
        let mut verifying = HashMap::new();
        let mut jwks = Vec::new();
        for row in rows {
            let decoding = DecodingKey::from_ed_components(&row.public_key)
                .with_context(|| format!("signing key {} has a bad public key", row.kid))?;
            verifying.insert(row.kid.clone(), decoding);
            jwks.push(json!({
                "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig",
                "kid": row.kid, "x": row.public_key,
            }));
            if signing.is_none() && row.retired_at.is_none() {
                let seed = self
                    .instance_key
                    .open(&seal_context(row.id), &row.private_key_sealed)
                    .map_err(|e| anyhow::anyhow!("cannot open signing key {}: {e}; is this the master key the database was created with?", row.kid))?;
                let seed: [u8; 32] = seed[..].try_into().context("signing key seed length")?;
                let der = SigningKey::from_bytes(&seed)
                    .to_pkcs8_der()
                    .map_err(|e| anyhow::anyhow!("encoding signing key: {e}"))?;
                signing = Some((row.kid.clone(), EncodingKey::from_ed_der(der.as_bytes())));
            }
        }
        *self.keys.write().unwrap() = Keys {
            signing,
            verifying,
            jwks: json!({ "keys": jwks }),
            loaded_at: Instant::now(),
        };
        Ok(())
    }

    /// Signs an access token for `user_id`; returns it with its expiry.
    pub fn issue(&self, user_id: Uuid) -> Result<(String, DateTime<Utc>)> {
        let now = Utc::now();
        let expires = now + self.access_ttl;
        let claims = Claims {
            iss: ISSUER.into(),
            sub: user_id,
            iat: now.timestamp(),
            exp: expires.timestamp(),
            jti: Uuid::now_v7(),
        };
        let keys = self.keys.read().unwrap();
        let (kid, key) = keys
            .signing
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("no signing key loaded"))?;
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, key).context("signing a token")?;
        Ok((token, expires))
    }

    /// Verifies an access token: signature, `kid`, issuer and expiry.
    pub async fn verify(&self, token: &str) -> Result<Claims> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| Error::Unauthenticated)?;
        let kid = header.kid.ok_or(Error::Unauthenticated)?;
        if header.alg != Algorithm::EdDSA {
            return Err(Error::Unauthenticated);
        }
        if let Some(claims) = self.verify_with_known(&kid, token)? {
            return Ok(claims);
        }
        // Another instance may have rotated: reload, at most every few seconds.
        let stale = self.keys.read().unwrap().loaded_at.elapsed() > Duration::from_secs(5);
        if stale {
            self.reload().await?;
            if let Some(claims) = self.verify_with_known(&kid, token)? {
                return Ok(claims);
            }
        }
        Err(Error::Unauthenticated)
    }

    fn verify_with_known(&self, kid: &str, token: &str) -> Result<Option<Claims>> {
        let keys = self.keys.read().unwrap();
        let Some(key) = keys.verifying.get(kid) else {
            return Ok(None);
        };
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[ISSUER]);
        validation.leeway = 2;
        match jsonwebtoken::decode::<Claims>(token, key, &validation) {
            Ok(data) => Ok(Some(data.claims)),
            Err(_) => Err(Error::Unauthenticated),
        }
    }

    /// The public keys as a JSON Web Key Set.
    pub fn jwks(&self) -> Value {
        self.keys.read().unwrap().jwks.clone()
    }

    /// Rotates when the signing key is older than `max_age`; reloads either way.
    pub async fn rotate_if_older_than(&self, max_age: Duration) -> anyhow::Result<()> {
        let newest = signing_keys::Entity::find()
            .filter(signing_keys::Column::RetiredAt.is_null())
            .order_by_desc(signing_keys::Column::Id)
            .one(&self.db)
            .await?;
        let max_age = chrono::Duration::from_std(max_age).context("rotation period")?;
        let due = newest.is_none_or(|k| Utc::now() - k.created_at > max_age);
        if due {
            let kid = rotate(
                &self.db,
                &self.instance_key,
                &self.master_id,
                self.access_ttl,
            )
            .await?;
            tracing::info!(%kid, "rotated the token signing key");
        }
        self.reload().await
    }
}

/// Fails unless `instance_key` opens the newest signing key (none stored is fine).
pub async fn check_can_open(db: &DatabaseConnection, instance_key: &DataKey) -> anyhow::Result<()> {
    let newest = signing_keys::Entity::find()
        .order_by_desc(signing_keys::Column::Id)
        .one(db)
        .await
        .context("checking the signing keys")?;
    if let Some(key) = newest
        && instance_key
            .open(&seal_context(key.id), &key.private_key_sealed)
            .is_err()
    {
        anyhow::bail!(
            "the master key cannot open this database's signing keys; set AUTOGLUE_MASTER_KEY or AUTOGLUE_MASTER_KEY_FILE to the key the database was created with"
        );
    }
    Ok(())
}

/// Makes a new signing key and retires the others; they stay published until the tokens
/// they signed (at most `access_ttl` old) have expired. Returns the new `kid`.
/// `master_id` names the master key `instance_key` derives from: the new key is sealed only
/// while it is still the instance's master key ([`crate::services::master_fence`]).
pub async fn rotate(
    db: &DatabaseConnection,
    instance_key: &DataKey,
    master_id: &str,
    access_ttl: Duration,
) -> anyhow::Result<String> {
    let txn = db.begin_write().await?;
    crate::services::master_fence::hold(&txn, master_id)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let now = Utc::now();
    let retiring = signing_keys::Entity::find()
        .filter(signing_keys::Column::RetiredAt.is_null())
        .all(&txn)
        .await?;
    for key in retiring {
        let mut key: signing_keys::ActiveModel = key.into();
        key.retired_at = Set(Some(now));
        key.expires_at = Set(Some(now + access_ttl + Duration::from_secs(60)));
        key.update(&txn).await?;
    }
    let signing = SigningKey::generate(&mut rand::rngs::OsRng);
    let mut row = signing_keys::ActiveModel::new();
    let id = *row.id.as_ref();
    let kid = format!("ag-{}", &id.simple().to_string()[..16]);
    row.kid = Set(kid.clone());
    row.algorithm = Set(SigningKeyAlgorithm::EdDsa);
    row.public_key = Set(URL_SAFE_NO_PAD.encode(signing.verifying_key().as_bytes()));
    row.private_key_sealed = Set(instance_key.seal(&seal_context(id), signing.as_bytes()));
    row.insert(&txn).await?;
    txn.commit().await?;
    Ok(kid)
}
