//! The gateway's token-signing keys (gateway token mode): JWS keys (RFC 7515)
//! published as a JWK set (RFC 7517) at `jwks_uri`.
//!
//! Keys live in the store (`oauth:keys`, private halves always sealed with
//! the secrets key; a key stored in clear by an older version is sealed on
//! the next start), are created by the first instance that starts, and
//! are shared by every instance. Rotation adds a new current key and keeps
//! the previous one published for an overlap, so tokens it signed keep
//! verifying until they expire.

use crate::store::keys;
use std::sync::Arc;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::KeyPair as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::auth::jwks::{KeyFetchError, KeySource};
use crate::store::vault::Vault;
use crate::store::{Store, StoreError};
use crate::util::clock::Clock;

const KEY: &str = keys::SIGNING_KEYS;
/// What a private half sealed before the vault was bound to (`{V1_BINDING}{kid}`).
const V1_BINDING: &str = "signing-key:";
/// Keys kept published: the current one and the one before it.
const KEEP: usize = 2;

#[derive(Serialize, Deserialize, Clone)]
struct StoredKey {
    kid: String,
    alg: String,
    /// PKCS#8 DER sealed with the secrets key, base64 (`sealed` false only in
    /// records written before the key was required).
    private: String,
    sealed: bool,
    public: Value,
    created_at: u64,
}

/// `pub` for the fuzz targets (fuzz/fuzz_targets/store_records.rs).
#[derive(Serialize, Deserialize, Default)]
pub struct StoredKeys {
    /// Newest first; the first is the signing key.
    keys: Vec<StoredKey>,
}

struct Current {
    kid: String,
    alg: Algorithm,
    key: EncodingKey,
}

pub(crate) struct Keyring {
    store: Arc<dyn Store>,
    vault: Option<Arc<Vault>>,
    es256: bool,
    clock: Clock,
    current: ArcSwap<Current>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum KeyError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("signing key: {0}")]
    Key(String),
}

impl Keyring {
    /// Loads the keys, creating the first one if the store has none.
    pub(crate) async fn load_or_create(
        store: Arc<dyn Store>,
        vault: Option<Arc<Vault>>,
        es256: bool,
        clock: Clock,
    ) -> Result<Keyring, KeyError> {
        let mut stored = read(store.as_ref()).await?;
        if stored.keys.is_empty() {
            let fresh = StoredKeys {
                keys: vec![generate(es256, vault.as_deref(), clock.now_secs())?],
            };
            let bytes = serde_json::to_vec(&fresh).map_err(|e| KeyError::Key(e.to_string()))?;
            // Two instances starting together: the first write wins, both use it.
            store.put_if_absent(KEY, &bytes, None).await?;
            stored = read(store.as_ref()).await?;
        }
        if stored.keys.iter().any(|k| !k.sealed) {
            stored = seal_stored(store.as_ref(), vault.as_deref()).await?;
        }
        let current = decode(&stored.keys[0], vault.as_deref())?;
        Ok(Keyring {
            store,
            vault,
            es256,
            clock,
            current: ArcSwap::from_pointee(current),
        })
    }

    pub(crate) fn sign(&self, claims: &impl Serialize) -> Result<String, KeyError> {
        let c = self.current.load();
        let mut header = Header::new(c.alg);
        header.kid = Some(c.kid.clone());
        header.typ = Some("at+jwt".into()); // RFC 9068 §2.1
        jsonwebtoken::encode(&header, claims, &c.key).map_err(|e| KeyError::Key(e.to_string()))
    }

    /// Current and previous public keys, read from the store so a rotation
    /// made by another instance is seen here (and adopted for signing).
    pub(crate) async fn public_jwks(&self) -> Result<JwkSet, KeyError> {
        let stored = read(self.store.as_ref()).await?;
        if let Some(first) = stored.keys.first() {
            if first.kid != self.current.load().kid {
                self.current
                    .store(Arc::new(decode(first, self.vault.as_deref())?));
            }
        }
        let keys: Vec<Value> = stored.keys.iter().map(|k| k.public.clone()).collect();
        serde_json::from_value(json!({ "keys": keys })).map_err(|e| KeyError::Key(e.to_string()))
    }

    /// Makes a new key current; the previous one stays published.
    pub(crate) async fn rotate(&self) -> Result<String, KeyError> {
        let (before, mut stored) = read_stored(self.store.as_ref()).await?;
        let fresh = generate(self.es256, self.vault.as_deref(), self.clock.now_secs())?;
        let kid = fresh.kid.clone();
        stored.keys.insert(0, fresh);
        stored.keys.truncate(KEEP);
        let bytes = serde_json::to_vec(&stored).map_err(|e| KeyError::Key(e.to_string()))?;
        if !self
            .store
            .compare_and_swap(KEY, before.as_deref(), Some(&bytes), None)
            .await?
        {
            return Err(KeyError::Key(
                "another instance rotated at the same time; retry".into(),
            ));
        }
        self.current
            .store(Arc::new(decode(&stored.keys[0], self.vault.as_deref())?));
        Ok(kid)
    }
}

#[async_trait]
impl KeySource for Keyring {
    async fn fetch(&self) -> Result<JwkSet, KeyFetchError> {
        self.public_jwks()
            .await
            .map_err(|e| KeyFetchError::Keyring(e.to_string()))
    }
}

async fn read(store: &dyn Store) -> Result<StoredKeys, KeyError> {
    read_stored(store).await.map(|(_, keys)| keys)
}

/// The stored keyring: its raw bytes (for a compare-and-swap) and decoded.
async fn read_stored(store: &dyn Store) -> Result<(Option<Vec<u8>>, StoredKeys), KeyError> {
    let before = store.get(KEY).await?;
    let stored = before
        .as_deref()
        .map(serde_json::from_slice)
        .transpose()
        .map_err(|e| KeyError::Key(format!("stored keys are corrupt: {e}")))?
        .unwrap_or_default();
    Ok((before, stored))
}

/// Rewrites keys stored in clear (before a secrets key was required) sealed.
/// Another instance doing the same at once wins the swap; its result is read.
async fn seal_stored(store: &dyn Store, vault: Option<&Vault>) -> Result<StoredKeys, KeyError> {
    let b = vault
        .ok_or_else(|| KeyError::Key("a secrets key is required to store signing keys".into()))?;
    let (before, mut stored) = read_stored(store).await?;
    for k in stored.keys.iter_mut().filter(|k| !k.sealed) {
        let der = STANDARD
            .decode(&k.private)
            .map_err(|e| KeyError::Key(e.to_string()))?;
        k.private = b
            .seal_text(&keys::signing_key(&k.kid), &der)
            .map_err(|e| KeyError::Key(e.to_string()))?;
        k.sealed = true;
    }
    let bytes = serde_json::to_vec(&stored).map_err(|e| KeyError::Key(e.to_string()))?;
    if store
        .compare_and_swap(KEY, before.as_deref(), Some(&bytes), None)
        .await?
    {
        Ok(stored)
    } else {
        read(store).await
    }
}

fn generate(es256: bool, vault: Option<&Vault>, created_at: u64) -> Result<StoredKey, KeyError> {
    let err = |e: &dyn std::fmt::Display| KeyError::Key(e.to_string());
    let mut kid_bytes = [0u8; 12];
    aws_lc_rs::rand::fill(&mut kid_bytes).map_err(|e| err(&e))?;
    let kid = URL_SAFE_NO_PAD.encode(kid_bytes);
    let (alg, der, public) = if es256 {
        use aws_lc_rs::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING as P256};
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&P256, &aws_lc_rs::rand::SystemRandom::new())
            .map_err(|e| err(&e))?;
        let pair = EcdsaKeyPair::from_pkcs8(&P256, pkcs8.as_ref()).map_err(|e| err(&e))?;
        let point = pair.public_key().as_ref();
        let jwk = json!({"kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..65])});
        ("ES256", pkcs8.as_ref().to_vec(), jwk)
    } else {
        let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
            .map_err(|e| err(&e))?;
        let der = pair.as_der().map_err(|e| err(&e))?.as_ref().to_vec();
        let p = pair.public_key();
        let jwk = json!({"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
            "n": URL_SAFE_NO_PAD.encode(p.modulus().big_endian_without_leading_zero()),
            "e": URL_SAFE_NO_PAD.encode(p.exponent().big_endian_without_leading_zero())});
        ("RS256", der, jwk)
    };
    // Never stored in clear: `[oauth]` requires a secrets key to start.
    let b = vault
        .ok_or_else(|| KeyError::Key("a secrets key is required to store signing keys".into()))?;
    let private = b
        .seal_text(&keys::signing_key(&kid), &der)
        .map_err(|e| err(&e))?;
    let sealed = true;
    Ok(StoredKey {
        kid,
        alg: alg.into(),
        private,
        sealed,
        public,
        created_at,
    })
}

fn decode(k: &StoredKey, vault: Option<&Vault>) -> Result<Current, KeyError> {
    let err = |m: String| KeyError::Key(m);
    let der = if k.sealed {
        vault
            .ok_or_else(
                || err("the signing key is sealed but no secrets key is configured".into()),
            )?
            .open_text(
                &keys::signing_key(&k.kid),
                &format!("{V1_BINDING}{}", k.kid),
                &k.private,
            )
            .map_err(|e| err(e.to_string()))?
    } else {
        STANDARD
            .decode(&k.private)
            .map_err(|e| err(e.to_string()))?
    };
    let (alg, key) = match k.alg.as_str() {
        "ES256" => (Algorithm::ES256, EncodingKey::from_ec_der(&der)),
        _ => {
            let pem = format!(
                "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
                STANDARD.encode(&der)
            );
            (
                Algorithm::RS256,
                EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(|e| err(e.to_string()))?,
            )
        }
    };
    Ok(Current {
        kid: k.kid.clone(),
        alg,
        key,
    })
}
