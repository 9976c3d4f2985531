//! Access tokens: signing and verification with one pinned algorithm.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::config::{JwtKeys, JwtSettings};
use crate::domain::Role;

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    pub sub: String,
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agency_id: Option<String>,
    #[serde(default)]
    pub admin: bool,
    pub iss: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub nbf: i64,
    pub jti: String,
    /// The user's session epoch when it was issued (`repo::users::SessionEpochs::sum`:
    /// their own plus their agency's); tokens from before it existed count as issued under 0.
    #[serde(default)]
    pub epoch: i64,
}

/// The parsed key pair (or secret) and its algorithm.
pub struct TokenKeys {
    algorithm: Algorithm,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl TokenKeys {
    pub fn new(keys: &JwtKeys) -> Result<TokenKeys, String> {
        match keys {
            JwtKeys::Secret(secret) => Ok(TokenKeys {
                algorithm: Algorithm::HS256,
                encoding: EncodingKey::from_secret(secret),
                decoding: DecodingKey::from_secret(secret),
            }),
            JwtKeys::KeyPair {
                algorithm,
                private_pem,
                public_pem,
            } => {
                let bad = |which: &str, e: jsonwebtoken::errors::Error| {
                    format!("invalid {which} key for {algorithm:?}: {e}")
                };
                let (encoding, decoding) = match algorithm {
                    Algorithm::EdDSA => (
                        EncodingKey::from_ed_pem(private_pem).map_err(|e| bad("private", e))?,
                        DecodingKey::from_ed_pem(public_pem).map_err(|e| bad("public", e))?,
                    ),
                    Algorithm::RS256 => (
                        EncodingKey::from_rsa_pem(private_pem).map_err(|e| bad("private", e))?,
                        DecodingKey::from_rsa_pem(public_pem).map_err(|e| bad("public", e))?,
                    ),
                    other => return Err(format!("unsupported algorithm {other:?}")),
                };
                let keys = TokenKeys {
                    algorithm: *algorithm,
                    encoding,
                    decoding,
                };
                // A private key that does not match the public one would only show at the first
                // login; prove the pair now.
                let probe = Claims {
                    sub: "probe".into(),
                    role: Role::Client,
                    agency_id: None,
                    admin: false,
                    iss: "probe".into(),
                    aud: "probe".into(),
                    exp: i64::MAX / 2,
                    iat: 0,
                    nbf: 0,
                    jti: "probe".into(),
                    epoch: 0,
                };
                let token =
                    jsonwebtoken::encode(&Header::new(keys.algorithm), &probe, &keys.encoding)
                        .map_err(|e| bad("private", e))?;
                let mut validation = Validation::new(keys.algorithm);
                validation.set_audience(&["probe"]);
                jsonwebtoken::decode::<Claims>(&token, &keys.decoding, &validation)
                    .map_err(|_| "the private and public keys do not belong together".to_owned())?;
                Ok(keys)
            }
        }
    }
}

/// The subject of a token about to be issued.
pub struct Subject<'a> {
    pub user_id: &'a str,
    pub role: Role,
    pub agency_id: Option<&'a str>,
    pub admin: bool,
    /// Their session epoch (`repo::users::SessionEpochs::sum`), read under the lock
    /// that issuing a session takes.
    pub session_epoch: i64,
}

pub struct Tokens {
    keys: TokenKeys,
    validation: Validation,
    issuer: String,
    audience: String,
    access_ttl_secs: i64,
    verified: quick_cache::sync::Cache<String, Verified>,
}

/// How many verified tokens are remembered: about 10 MB at most (an RS256 token is ~750 bytes).
const VERIFIED_CAPACITY: usize = 10_000;

/// What a token that passed every check said: its subject, and until when it holds.
#[derive(Debug, Clone)]
pub struct Verified {
    pub sub: String,
    /// The last second (Unix time) it is accepted at: its `exp` plus the leeway.
    pub valid_until: i64,
    /// The user's session epoch it was issued under.
    pub session_epoch: i64,
}

impl Verified {
    /// jsonwebtoken's own rule: expired once `exp < now - leeway`.
    pub fn expired(&self) -> bool {
        chrono::Utc::now().timestamp() > self.valid_until
    }
}

impl Tokens {
    pub fn new(settings: &JwtSettings) -> Result<Tokens, String> {
        let keys = TokenKeys::new(&settings.keys)?;
        let mut validation = Validation::new(keys.algorithm);
        validation.set_issuer(&[&settings.issuer]);
        validation.set_audience(&[&settings.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.leeway = 30;
        Ok(Tokens {
            keys,
            validation,
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
            access_ttl_secs: settings.access_ttl.as_secs() as i64,
            verified: quick_cache::sync::Cache::new(VERIFIED_CAPACITY),
        })
    }

    pub fn access_ttl_secs(&self) -> i64 {
        self.access_ttl_secs
    }

    pub fn issue(&self, subject: &Subject<'_>) -> Result<String, jsonwebtoken::errors::Error> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: subject.user_id.to_owned(),
            role: subject.role,
            agency_id: subject.agency_id.map(str::to_owned),
            admin: subject.admin,
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            exp: now + self.access_ttl_secs,
            iat: now,
            nbf: now,
            jti: uuid::Uuid::now_v7().to_string(),
            epoch: subject.session_epoch,
        };
        jsonwebtoken::encode(
            &Header::new(self.keys.algorithm),
            &claims,
            &self.keys.encoding,
        )
    }

    /// The subject (user id) of a valid token. Verifies signature, algorithm, `exp`, `nbf`,
    /// `iss` and `aud`; `None` for any failure (the caller answers the same 401 whatever the
    /// reason, leaking nothing).
    ///
    /// A client sends the same token with every request until it expires, so a token that
    /// passed is remembered by its exact text and only its expiry is checked again: `nbf`
    /// cannot turn false later while the clock does not step back. Checking it all again cost
    /// 1.7–5.4 µs of a card's server CPU. Only tokens that passed are remembered, and an
    /// expired one is forgotten at its next use.
    pub fn verify(&self, token: &str) -> Option<Verified> {
        if let Some(known) = self.verified.get(token) {
            if !known.expired() {
                return Some(known);
            }
            self.verified.remove(token);
            return None;
        }
        let claims = jsonwebtoken::decode::<Claims>(token, &self.keys.decoding, &self.validation)
            .ok()?
            .claims;
        let verified = Verified {
            session_epoch: claims.epoch,
            sub: claims.sub,
            valid_until: claims.exp.saturating_add(self.validation.leeway as i64),
        };
        self.verified.insert(token.to_owned(), verified.clone());
        Some(verified)
    }
}
