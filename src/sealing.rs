//! Encryption at rest for what the database must keep but whoever reads a copy of it must not
//! learn: webhooks' signing secrets, and the stored answers of idempotent creations (a
//! webhook's carries its secret, a case's its client's identity). AES-256-GCM with a random
//! nonce under `DOSSIER_SECRETS_KEY`. A sealed value names the key that sealed it, so older keys
//! can still open it after a rotation, and is bound to where it is stored (its context): copied
//! into another row, it does not open.

use std::fmt;

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};

/// What a sealed value starts with. Anything else was stored before a key was configured (or
/// in development without one) and is read as it is: webhook secrets start `whsec_`, stored
/// answers `{`.
const PREFIX: &str = "sealed:v1:";

/// A 256-bit key from configuration. Its `Debug` shows only its id.
#[derive(Clone)]
pub struct SecretsKey {
    bytes: [u8; 32],
}

impl SecretsKey {
    /// A key written as base64 (`openssl rand -base64 32`).
    pub fn from_base64(text: &str) -> Result<SecretsKey, String> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| "expected 32 random bytes in base64 (openssl rand -base64 32)")?;
        let bytes = <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
            format!(
                "expected 32 bytes in base64 (openssl rand -base64 32), got {}",
                bytes.len()
            )
        })?;
        Ok(SecretsKey { bytes })
    }

    /// Eight hex digits of the key's SHA-256: names it in sealed values and messages, and
    /// tells nothing that would help find it.
    pub fn id(&self) -> String {
        let mut id = format!("{:x}", Sha256::digest(self.bytes));
        id.truncate(8);
        id
    }
}

impl fmt::Debug for SecretsKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretsKey({})", self.id())
    }
}

/// The keys of `DOSSIER_SECRETS_KEY` and `DOSSIER_SECRETS_OLD_KEYS`.
#[derive(Debug, Clone, Default)]
pub struct SecretsSettings {
    /// Seals every new value; `None` (development only) stores them as they are.
    pub key: Option<SecretsKey>,
    /// Open what they sealed before a rotation; seal nothing.
    pub old_keys: Vec<SecretsKey>,
}

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error(
        "a value is sealed with key {0}, which DOSSIER_SECRETS_KEY and DOSSIER_SECRETS_OLD_KEYS do not hold"
    )]
    UnknownKey(String),
    #[error("a sealed value does not open: damaged, or moved from the row it was sealed for")]
    Damaged,
    #[error("sealing failed")]
    Failed,
}

struct Keyed {
    id: String,
    key: RandomizedNonceKey,
}

/// Seals and opens stored values with the configured keys.
pub struct Sealer {
    /// The current key, also first of `opening`.
    sealing: Option<String>,
    opening: Vec<Keyed>,
}

impl Sealer {
    pub fn new(settings: &SecretsSettings) -> Result<Sealer, String> {
        let opening = settings
            .key
            .iter()
            .chain(&settings.old_keys)
            .map(|k| {
                Ok(Keyed {
                    id: k.id(),
                    key: RandomizedNonceKey::new(&AES_256_GCM, &k.bytes)
                        .map_err(|_| "cannot use DOSSIER_SECRETS_KEY".to_owned())?,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Sealer {
            sealing: settings.key.as_ref().map(SecretsKey::id),
            opening,
        })
    }

    /// `plain` as it is to be stored at `context`: sealed with the current key, or as it is
    /// without one.
    pub fn seal(&self, context: &str, plain: &str) -> Result<String, SealError> {
        let Some(id) = &self.sealing else {
            return Ok(plain.to_owned());
        };
        let key = self.key(id)?;
        let mut sealed = plain.as_bytes().to_vec();
        let nonce = key
            .seal_in_place_append_tag(Aad::from(context.as_bytes()), &mut sealed)
            .map_err(|_| SealError::Failed)?;
        let mut bytes = nonce.as_ref().to_vec();
        bytes.extend_from_slice(&sealed);
        Ok(format!("{PREFIX}{id}:{}", URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// What `stored` at `context` holds: opened with the key it names, or as it is when it was
    /// stored unsealed.
    pub fn open(&self, context: &str, stored: &str) -> Result<String, SealError> {
        let Some(rest) = stored.strip_prefix(PREFIX) else {
            return Ok(stored.to_owned());
        };
        let (id, data) = rest.split_once(':').ok_or(SealError::Damaged)?;
        let key = self.key(id)?;
        let mut bytes = URL_SAFE_NO_PAD
            .decode(data)
            .map_err(|_| SealError::Damaged)?;
        if bytes.len() < NONCE_LEN {
            return Err(SealError::Damaged);
        }
        let mut sealed = bytes.split_off(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(&bytes).map_err(|_| SealError::Damaged)?;
        let plain = key
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut sealed)
            .map_err(|_| SealError::Damaged)?;
        String::from_utf8(plain.to_vec()).map_err(|_| SealError::Damaged)
    }

    /// `stored` as [`Sealer::seal`] would store it now, or `None` when it is so already: for
    /// values sealed with an old key, or stored before any key. Opened either way, so a value
    /// that does not open is an error even under the current key.
    pub fn reseal(&self, context: &str, stored: &str) -> Result<Option<String>, SealError> {
        let plain = self.open(context, stored)?;
        // Opened, so a prefixed value names its key; `None` on both sides: in the clear.
        let sealed_with = stored
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split_once(':'))
            .map(|(id, _)| id);
        if sealed_with == self.sealing.as_deref() {
            return Ok(None);
        }
        self.seal(context, &plain).map(Some)
    }

    fn key(&self, id: &str) -> Result<&RandomizedNonceKey, SealError> {
        self.opening
            .iter()
            .find(|k| k.id == id)
            .map(|k| &k.key)
            .ok_or_else(|| SealError::UnknownKey(id.to_owned()))
    }
}

/// Where a webhook's secrets are stored (both its current and its old one: a rotation moves
/// the one to the other as sealed).
pub fn webhook_context(webhook_id: &str) -> String {
    format!("webhooks/{webhook_id}")
}

/// Where a creation's answer is stored under its caller's `Idempotency-Key`.
pub fn idempotency_context(user_id: &str, key: &str) -> String {
    format!("idempotency_keys/{user_id}/{key}")
}
