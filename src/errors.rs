//! The one error type of the API and its rendering as RFC 9457 problem documents.
//!
//! Handlers return [`ApiError`]; actix's own failures (bad JSON, query, path, unknown routes) are
//! mapped onto it by the handlers in [`crate::http::fallback`], so every failure has the same
//! shape and a stable `code`. The request id and `instance` are filled in by the middleware,
//! which also logs the cause of every 5xx (the body never carries it).

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::ticket_workflow::TicketAllowedAction;
use crate::workflow::AllowedAction;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// One failed rule, pointing at the offending member with a JSON Pointer (RFC 6901).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"pointer": "/email", "code": "email", "detail": "must be a valid e-mail address"}))]
pub struct FieldError {
    /// JSON Pointer into the request body, or `/<name>` for a query or path parameter.
    pub pointer: String,
    /// Stable snake_case machine code.
    pub code: String,
    pub detail: String,
}

impl FieldError {
    pub fn new(
        pointer: impl Into<String>,
        code: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        FieldError {
            pointer: pointer.into(),
            code: code.into(),
            detail: detail.into(),
        }
    }
}

/// An RFC 9457 problem document (`application/problem+json`).
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "type": "urn:dossier:problem:validation_failed",
    "title": "Unprocessable Content",
    "status": 422,
    "detail": "The request breaks 1 rule.",
    "instance": "/v1/users",
    "code": "validation_failed",
    "request_id": "0193a6f2-2c4e-7b51-9d0a-3f1e2a4b5c6d",
    "errors": [{"pointer": "/email", "code": "email", "detail": "must be a valid e-mail address"}]
}))]
pub struct Problem {
    /// URI naming the problem type: `urn:dossier:problem:<code>`.
    #[serde(rename = "type")]
    pub problem_type: String,
    /// The HTTP reason phrase of `status`.
    pub title: String,
    pub status: u16,
    /// A human-readable explanation of this occurrence.
    pub detail: String,
    /// The request path this problem occurred on.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub instance: Option<String>,
    /// Stable snake_case machine code; the same as the last segment of `type`.
    pub code: String,
    /// The `X-Request-Id` of the request, to quote when reporting it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub request_id: Option<String>,
    /// The rules the request broke, for `validation_failed` and the other 400/422 problems.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// For `wrong_state` (409): what the caller may do in the case's or ticket's current status.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub allowed_actions: Option<AllowedActions>,
}

/// What a `wrong_state` problem offers instead: the case's actions or the ticket's.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum AllowedActions {
    Case(Vec<AllowedAction>),
    Ticket(Vec<TicketAllowedAction>),
}

// `anyOf`, not the `oneOf` a derived untagged enum would get: an empty list is both.
impl utoipa::PartialSchema for AllowedActions {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::Ref;
        use utoipa::openapi::schema::{AnyOfBuilder, ArrayBuilder};
        AnyOfBuilder::new()
            .item(ArrayBuilder::new().items(Ref::from_schema_name("AllowedAction")))
            .item(ArrayBuilder::new().items(Ref::from_schema_name("TicketAllowedAction")))
            .description(Some(
                "What the caller may do in the case's or the ticket's current status.",
            ))
            .into()
    }
}

impl ToSchema for AllowedActions {}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request cannot be understood (syntax, unknown field, bad parameter).
    #[error("{detail}")]
    BadRequest {
        code: &'static str,
        detail: String,
        errors: Vec<FieldError>,
    },
    /// 401: no valid credentials. `code` tells why (`missing_token`, `invalid_token`, …).
    #[error("{detail}")]
    Unauthorized { code: &'static str, detail: String },
    /// 403: the caller's role may never do this.
    #[error("{0}")]
    Forbidden(String),
    /// 404: not found, or not visible to the caller (never a 403, to leak nothing).
    #[error("{0}")]
    NotFound(String),
    /// 405 with `Allow`.
    #[error("method not allowed")]
    MethodNotAllowed { allow: Vec<Method> },
    /// 409: the resource's state forbids this now.
    #[error("{detail}")]
    Conflict { code: &'static str, detail: String },
    /// 409 `wrong_state`: the case's or ticket's status does not allow this; lists what it
    /// allows.
    #[error("{detail}")]
    WrongState {
        detail: String,
        allowed_actions: AllowedActions,
    },
    /// 412: `If-Match` names a version that is no longer current.
    #[error("the resource has changed since version {expected}")]
    PreconditionFailed { expected: String },
    /// 413.
    #[error("the body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// 415.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 422: well-formed, but breaks a rule.
    #[error("{detail}")]
    Unprocessable {
        code: &'static str,
        detail: String,
        errors: Vec<FieldError>,
    },
    /// 429 with `Retry-After` (seconds).
    #[error("too many requests; retry after {retry_after} s")]
    TooManyRequests { retry_after: u64 },
    /// 503: the database cannot be reached.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// 503 with `Retry-After`: a lock was held, or a statement ran, longer than configured
    /// (`DOSSIER_DB_LOCK_TIMEOUT_MS`, `DOSSIER_DB_STATEMENT_TIMEOUT_MS`); nothing was written.
    #[error("the database did not answer in time: {0}")]
    Busy(String),
    /// Any other status, for failures raised outside the API's code (actix, Swagger UI).
    #[error("{detail}")]
    Http {
        status: StatusCode,
        code: &'static str,
        detail: String,
    },
    /// 500: a bug or an unexpected failure. The cause is logged, never shown.
    #[error("internal error: {0}")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// A status's name as RFC 9110 gives it: the `http` crate still has RFC 7231's for 413 and 422.
fn title_of(status: StatusCode) -> &'static str {
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => "Content Too Large",
        StatusCode::UNPROCESSABLE_ENTITY => "Unprocessable Content",
        _ => status.canonical_reason().unwrap_or("Error"),
    }
}

impl ApiError {
    pub fn validation(errors: Vec<FieldError>) -> ApiError {
        let detail = match errors.len() {
            1 => "The request breaks 1 rule.".to_owned(),
            n => format!("The request breaks {n} rules."),
        };
        ApiError::Unprocessable {
            code: "validation_failed",
            detail,
            errors,
        }
    }

    /// One rule broken by one member of the body.
    pub fn invalid_field(pointer: &str, code: &'static str, detail: impl Into<String>) -> ApiError {
        let detail = detail.into();
        ApiError::Unprocessable {
            code,
            detail: detail.clone(),
            errors: vec![FieldError::new(pointer, code, detail)],
        }
    }

    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError::BadRequest {
            code,
            detail: detail.into(),
            errors: Vec::new(),
        }
    }

    /// A 404 told in the words of what was asked for (a file, a room) rather than of the case
    /// it hangs on; any other failure (an outage, a lost race) stays what it is.
    pub fn not_found_as(self, detail: impl FnOnce() -> ApiError) -> ApiError {
        match self {
            ApiError::NotFound(_) => detail(),
            other => other,
        }
    }

    pub fn internal(cause: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> ApiError {
        ApiError::Internal(cause.into())
    }

    /// Whether the write that failed with this may have committed all the same: the
    /// database's connection was lost (a COMMIT's answer with it), or something failed that
    /// no rule foresaw. Every other error is a refusal: nothing was written.
    pub fn may_have_committed(&self) -> bool {
        matches!(self, ApiError::Unavailable(_) | ApiError::Internal(_))
    }

    /// The closest variant for a failure that came with only a status code.
    pub fn from_status(status: StatusCode, detail: String) -> ApiError {
        let detail = if detail.is_empty() {
            title_of(status).to_owned()
        } else {
            detail
        };
        match status.as_u16() {
            401 => ApiError::Unauthorized {
                code: "invalid_token",
                detail,
            },
            403 => ApiError::Forbidden(detail),
            404 => ApiError::NotFound(detail),
            405 => ApiError::MethodNotAllowed { allow: Vec::new() },
            409 => ApiError::Conflict {
                code: "conflict",
                detail,
            },
            415 => ApiError::UnsupportedMediaType(detail),
            422 => ApiError::Unprocessable {
                code: "validation_failed",
                detail,
                errors: Vec::new(),
            },
            413 => ApiError::Http {
                status,
                code: "payload_too_large",
                detail,
            },
            429 => ApiError::Http {
                status,
                code: "too_many_requests",
                detail,
            },
            500.. => ApiError::internal(detail),
            _ => ApiError::Http {
                status,
                code: "bad_request",
                detail,
            },
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest { code, .. }
            | ApiError::Unauthorized { code, .. }
            | ApiError::Conflict { code, .. }
            | ApiError::Unprocessable { code, .. }
            | ApiError::Http { code, .. } => code,
            ApiError::WrongState { .. } => "wrong_state",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::PreconditionFailed { .. } => "precondition_failed",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::TooManyRequests { .. } => "too_many_requests",
            ApiError::Unavailable(_) => "service_unavailable",
            ApiError::Busy(_) => "database_busy",
            ApiError::Internal(_) => "internal_error",
        }
    }

    fn public_detail(&self) -> String {
        match self {
            ApiError::Internal(_) => {
                "An unexpected error occurred; quote the request id when reporting it.".into()
            }
            ApiError::Unavailable(_) => {
                "The service cannot reach its database; try again shortly.".into()
            }
            ApiError::Busy(_) => "The database did not answer in time (another request held \
                                  what this one needed, or the work took too long); nothing \
                                  was written. Try again shortly."
                .into(),
            ApiError::MethodNotAllowed { allow } => {
                format!(
                    "This resource answers {}.",
                    allow
                        .iter()
                        .map(Method::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
            other => other.to_string(),
        }
    }

    /// The problem document, with the request's path and id when the caller knows them.
    pub fn to_response(&self, instance: Option<&str>, request_id: Option<&str>) -> HttpResponse {
        let status = self.status_code();
        let errors = match self {
            ApiError::BadRequest { errors, .. } | ApiError::Unprocessable { errors, .. } => {
                errors.clone()
            }
            _ => Vec::new(),
        };
        let problem = Problem {
            problem_type: format!("urn:dossier:problem:{}", self.code()),
            title: title_of(status).to_owned(),
            status: status.as_u16(),
            detail: self.public_detail(),
            instance: instance.map(str::to_owned),
            code: self.code().to_owned(),
            request_id: request_id.map(str::to_owned),
            errors,
            allowed_actions: match self {
                ApiError::WrongState {
                    allowed_actions, ..
                } => Some(allowed_actions.clone()),
                _ => None,
            },
        };
        let mut response = HttpResponse::build(status);
        response.content_type(PROBLEM_JSON);
        match self {
            ApiError::Unauthorized { code, .. } => {
                // RFC 6750: the error names a refused access token; a missing one, a wrong
                // password or a refresh token is no such token.
                let challenge = match *code {
                    "invalid_token" => "Bearer realm=\"dossier\", error=\"invalid_token\"",
                    _ => "Bearer realm=\"dossier\"",
                };
                response.insert_header((header::WWW_AUTHENTICATE, challenge));
            }
            ApiError::MethodNotAllowed { allow } => {
                let allow = allow
                    .iter()
                    .map(Method::as_str)
                    .collect::<Vec<_>>()
                    .join(", ");
                if let Ok(value) = HeaderValue::from_str(&allow) {
                    response.insert_header((header::ALLOW, value));
                }
            }
            ApiError::TooManyRequests { retry_after } => {
                response.insert_header((header::RETRY_AFTER, retry_after.to_string()));
            }
            ApiError::Busy(_) => {
                response.insert_header((header::RETRY_AFTER, "1"));
            }
            _ => {}
        }
        response.json(problem)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict { .. } | ApiError::WrongState { .. } => StatusCode::CONFLICT,
            ApiError::PreconditionFailed { .. } => StatusCode::PRECONDITION_FAILED,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) | ApiError::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Http { status, .. } => *status,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        self.to_response(None, None)
    }
}

impl From<diesel::result::Error> for ApiError {
    fn from(e: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        match e {
            Error::DatabaseError(
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                info,
            ) => ApiError::Unavailable(info.message().to_owned()),
            // PostgreSQL undid the transaction for another one's sake (40001, or 40P01, which
            // diesel only reports by its text): nothing was written, and a retry may pass.
            Error::DatabaseError(kind, info)
                if matches!(kind, DatabaseErrorKind::SerializationFailure)
                    || info.message() == "deadlock detected" =>
            {
                log::warn!("transaction undone: {}", info.message());
                ApiError::Conflict {
                    code: "concurrent_update",
                    detail: "Another request changed the same data at the same moment; \
                             nothing was written. Retry the request."
                        .into(),
                }
            }
            // PostgreSQL's lock_timeout and statement_timeout (57014, 55P03: diesel reports
            // them only by their text), SQLite's busy_timeout.
            Error::DatabaseError(_, info)
                if [
                    "canceling statement due to lock timeout",
                    "canceling statement due to statement timeout",
                    "database is locked",
                ]
                .contains(&info.message()) =>
            {
                ApiError::Busy(info.message().to_owned())
            }
            Error::NotFound => ApiError::NotFound("The resource does not exist.".into()),
            other => ApiError::internal(other),
        }
    }
}

impl From<crate::sealing::SealError> for ApiError {
    // A stored value no configured key opens: the configuration (or the data) is at fault, not
    // the request; the log gets the key's id.
    fn from(e: crate::sealing::SealError) -> Self {
        ApiError::internal(e)
    }
}

impl From<r2d2::Error> for ApiError {
    // The pool only fails when no connection could be opened in time: the database is down.
    fn from(e: r2d2::Error) -> Self {
        ApiError::Unavailable(e.to_string())
    }
}

impl From<actix_web::error::BlockingError> for ApiError {
    fn from(e: actix_web::error::BlockingError) -> Self {
        ApiError::internal(e.to_string())
    }
}
