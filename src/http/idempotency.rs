//! `Idempotency-Key` for every create endpoint: the same key and body replay the first
//! response; the same key with another body is 422; a retry racing the first is 409.
//! Keys are per user and live 24 hours.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName};
use actix_web::{FromRequest, HttpRequest, HttpResponse};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use utoipa::IntoParams;

use crate::app::AppState;
use crate::db::{self, DbConnection};
use crate::errors::{ApiError, FieldError};
use crate::repo::idempotency::{self, StoredResponse};

pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
/// Set on a replayed response.
pub const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// What a key must be; the `#[param]` below states it as a pattern.
const KEY_RULE: &str = "1–255 printable ASCII characters, without spaces";

/// The request's `Idempotency-Key`, when it sent one. Also the header's entry in the spec, so
/// the rule the extractor enforces and the one the spec states are written once.
#[derive(Debug, Clone, IntoParams)]
#[into_params(parameter_in = Header)]
pub struct IdempotencyKey {
    /// 1–255 printable ASCII characters, without spaces; makes retries safe.
    #[param(
        rename = "Idempotency-Key",
        nullable = false,
        min_length = 1,
        max_length = 255,
        pattern = "^[!-~]+$"
    )]
    key: Option<String>,
}

impl FromRequest for IdempotencyKey {
    type Error = ApiError;
    type Future = std::future::Ready<Result<IdempotencyKey, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let key = match req.headers().get(&IDEMPOTENCY_KEY) {
            None => Ok(IdempotencyKey { key: None }),
            Some(value) => value
                .to_str()
                .ok()
                .filter(|v| !v.is_empty() && v.len() <= 255)
                .filter(|v| v.bytes().all(|b| b.is_ascii_graphic()))
                .map(|v| IdempotencyKey {
                    key: Some(v.to_owned()),
                })
                .ok_or_else(|| ApiError::BadRequest {
                    code: "invalid_header",
                    detail: format!("`Idempotency-Key` must be {KEY_RULE}."),
                    errors: vec![FieldError::new(
                        "/Idempotency-Key",
                        "invalid_header",
                        KEY_RULE,
                    )],
                }),
        };
        std::future::ready(key)
    }
}

/// What a create handler made: the resource's URL and version, where it has them, and body.
pub struct Created<T> {
    pub location: Option<String>,
    pub version: Option<i64>,
    pub body: T,
}

/// A create request's caller, looked up inside its write transaction: who they are (the key is
/// theirs) and the creation they may make.
pub struct Authorized<F> {
    pub user_id: String,
    pub create: F,
}

/// In one write transaction: `authorize` looks the caller up and refuses what they may not
/// create; then, unless the key names an earlier request of theirs (whose response is
/// replayed), their creation runs with `input`. The key's record commits with what it wrote.
/// One hand-off to a database thread per request, and a caller refused today is not replayed
/// yesterday's answer. The fingerprint covers method, path and `input` as serialized.
pub async fn create<I, T, A, F>(
    state: &AppState,
    req: &HttpRequest,
    key: IdempotencyKey,
    input: I,
    authorize: A,
) -> Result<HttpResponse, ApiError>
where
    I: Serialize + Send + 'static,
    T: Serialize + Send + 'static,
    A: FnOnce(&mut DbConnection) -> Result<Authorized<F>, ApiError> + Send + 'static,
    F: FnOnce(&mut DbConnection, I) -> Result<Created<T>, ApiError>,
{
    Ok(remember(state, req, key, input, authorize)
        .await?
        .into_response())
}

/// A creation's response, first made or replayed.
pub struct Answer {
    stored: StoredResponse,
    /// An earlier request's response: this one created nothing.
    pub replayed: bool,
}

impl Answer {
    /// The response's body (the first one, when replayed) read back as `T`.
    pub fn body<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        serde_json::from_str(&self.stored.body).map_err(ApiError::internal)
    }

    pub fn into_response(self) -> HttpResponse {
        let Answer { stored, replayed } = self;
        let status = u16::try_from(stored.status_code)
            .ok()
            .and_then(|s| StatusCode::from_u16(s).ok())
            .unwrap_or(StatusCode::CREATED);
        let mut response = HttpResponse::build(status);
        response.content_type("application/json");
        if let Some(location) = stored.location {
            response.insert_header((header::LOCATION, location));
        }
        if let Some(etag) = stored.etag {
            response.insert_header((header::ETAG, etag));
        }
        if replayed {
            response.insert_header((IDEMPOTENT_REPLAYED, "true"));
        }
        response.body(stored.body)
    }
}

/// `path` with each id written as this API writes it (lower case, hyphens), as the route reads
/// it: a retry that writes the same case's id in capitals is the same request.
fn canonical_path(path: &str) -> String {
    path.split('/')
        .map(|segment| match uuid::Uuid::parse_str(segment) {
            Ok(id) => id.to_string(),
            Err(_) => segment.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// [`create`], answering before the response is rendered, for a caller with something to undo
/// when nothing was created (an upload's blob).
pub async fn remember<I, T, A, F>(
    state: &AppState,
    req: &HttpRequest,
    key: IdempotencyKey,
    input: I,
    authorize: A,
) -> Result<Answer, ApiError>
where
    I: Serialize + Send + 'static,
    T: Serialize + Send + 'static,
    A: FnOnce(&mut DbConnection) -> Result<Authorized<F>, ApiError> + Send + 'static,
    F: FnOnce(&mut DbConnection, I) -> Result<Created<T>, ApiError>,
{
    // Only a request with a key is remembered, so only it is fingerprinted.
    let fingerprint = match &key.key {
        Some(_) => {
            let mut hasher = Sha256::new();
            hasher.update(req.method().as_str().as_bytes());
            hasher.update(canonical_path(req.path()).as_bytes());
            hasher.update(serde_json::to_vec(&input).map_err(ApiError::internal)?);
            format!("{:x}", hasher.finalize())
        }
        None => String::new(),
    };
    let sealer = state.sealer.clone();
    let (stored, replayed) = db::write(&state.pool, move |conn| {
        let Authorized { user_id, create } = authorize(conn)?;
        if let Some(key) = &key.key
            && let Some(stored) = idempotency::replay(conn, &sealer, &user_id, key, &fingerprint)?
        {
            return Ok((stored, true));
        }
        let created = create(conn, input)?;
        let stored = StoredResponse {
            user_id,
            key: key.key.clone().unwrap_or_default(),
            fingerprint,
            status_code: i32::from(StatusCode::CREATED.as_u16()),
            location: created.location,
            etag: created.version.map(crate::http::extract::etag),
            body: serde_json::to_string(&created.body).map_err(ApiError::internal)?,
            created_at: db::now(),
        };
        if key.key.is_some() {
            idempotency::save(conn, &sealer, &stored)?;
        }
        Ok((stored, false))
    })
    .await?;
    Ok(Answer { stored, replayed })
}
