//! One middleware for what every request needs: a request id, problem documents with request
//! context for every failure, the access log line and the metrics.

use std::time::Instant;

use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, web};

use super::RequestId;
use crate::app::AppState;
use crate::errors::{ApiError, PROBLEM_JSON};

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// An incoming id is kept when it is short and printable (it goes into logs); otherwise a new
/// one is made.
fn request_id(req: &ServiceRequest) -> String {
    req.headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string())
}

pub async fn observe(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let started = Instant::now();
    let method = method_label(req.method());
    // HEAD is GET without the body (RFC 9110): the GET route answers it, and its body is
    // dropped unread below (a stream's with its subscription, a file's before it is fetched).
    let head = req.method() == Method::HEAD;
    if head {
        req.head_mut().method = Method::GET;
    }
    let id = request_id(&req);
    req.extensions_mut().insert(RequestId(id.clone()));
    let state = req.app_data::<web::Data<AppState>>().cloned();

    // Handler and extractor failures arrive as responses carrying their error; an `Err` here
    // could only come from a service that never saw the request, and actix renders it.
    let res = match nul_in_uri(&req) {
        Some(refused) => req.error_response(refused),
        None => next.call(req).await?.map_into_boxed_body(),
    };
    let res = match head {
        true => res.map_body(|_, body| BoxBody::new(HeadersOnly(body.size()))),
        false => res,
    };
    let path = res.request().path().to_owned();
    let mut res = as_problem(res, &path, &id);
    if res.request().headers().contains_key(header::AUTHORIZATION) {
        keep_private(res.headers_mut());
    }
    if let Ok(value) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(REQUEST_ID, value);
    }

    let route = res
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let status = res.status().as_u16();
    let elapsed = started.elapsed().as_secs_f64();
    if let Some(state) = state {
        state.metrics.observe(method, &route, status, elapsed);
    }
    log::info!(target: "access", "{id} {method} {route} {status} {:.2}ms", elapsed * 1000.0);
    Ok(res)
}

/// The body of an answer to HEAD: the GET body's size for `Content-Length`, and no bytes.
struct HeadersOnly(BodySize);

impl MessageBody for HeadersOnly {
    type Error = std::convert::Infallible;

    fn size(&self) -> BodySize {
        self.0
    }

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<actix_web::web::Bytes, Self::Error>>> {
        std::task::Poll::Ready(None)
    }
}

/// An answer to a caller's token is theirs alone: no shared cache keeps it, and a browser keeps
/// it apart from another token's (`Vary`), so a second account in the same browser never gets
/// the first one's card through a 304. Only an answer with an `ETag` (a versioned resource, a
/// file) is kept at all, to be revalidated at every use; the rest (lists, exports) are never
/// stored. An answer that set its own rule (a token, a stream) keeps it.
fn keep_private(headers: &mut header::HeaderMap) {
    if !headers.contains_key(header::CACHE_CONTROL) {
        let rule = if headers.contains_key(header::ETAG) {
            "private, no-cache"
        } else {
            "no-store"
        };
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(rule));
    }
    headers.append(header::VARY, HeaderValue::from_static("authorization"));
}

/// The method as the metrics and the access log name it: a client may send any token as a
/// method, and each one kept as a label would be a series for the process's life.
fn method_label(method: &Method) -> &'static str {
    static KNOWN: [Method; 9] = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::OPTIONS,
        Method::CONNECT,
        Method::TRACE,
    ];
    KNOWN
        .iter()
        .find(|known| *known == method)
        .map_or("other", |known| known.as_str())
}

/// A NUL character (`%00`) in the path or the query: no parameter of this API holds one, and
/// PostgreSQL refuses to compare text holding it (a 500 if it got that far).
fn nul_in_uri(req: &ServiceRequest) -> Option<ApiError> {
    const NUL: &str = "%00";
    if req.path().contains(NUL) {
        return Some(ApiError::bad_request(
            "invalid_path_parameter",
            "A path parameter holds a NUL character (`%00`).",
        ));
    }
    req.query_string().contains(NUL).then(|| {
        crate::http::fallback::invalid_query("a parameter holds a NUL character (%00)".into())
    })
}

/// Every failure leaves as a problem document carrying the request's path and id, whatever
/// produced it (a handler, an extractor, actix itself, the Swagger UI service).
fn as_problem(res: ServiceResponse<BoxBody>, path: &str, id: &str) -> ServiceResponse<BoxBody> {
    let status = res.status();
    if !status.is_client_error() && !status.is_server_error() {
        return res;
    }
    let rendered = match res.response().error() {
        Some(err) => match err.as_error::<ApiError>() {
            Some(api) => {
                if let ApiError::Internal(_) | ApiError::Unavailable(_) | ApiError::Busy(_) = api {
                    log::error!("{id} failed: {api}{}", cause_chain(api));
                }
                api.to_response(Some(path), Some(id))
            }
            None => {
                log::warn!("{id} failed outside the API's error type: {err}");
                ApiError::from_status(status, err.to_string()).to_response(Some(path), Some(id))
            }
        },
        None => {
            let is_problem = res
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with(PROBLEM_JSON));
            if is_problem {
                return res;
            }
            ApiError::from_status(status, String::new()).to_response(Some(path), Some(id))
        }
    };
    res.into_response(rendered)
}

fn cause_chain(err: &dyn std::error::Error) -> String {
    let mut out = String::new();
    let mut source = err.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}
