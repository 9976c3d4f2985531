//! What answers when no handler does: unknown routes (404), known paths with the wrong
//! method (405 + `Allow`), and actix's own extractor failures, all as problem documents.

use actix_web::dev::ResourceDef;
use actix_web::error::{JsonPayloadError, PathError};
use actix_web::http::Method;
use actix_web::{HttpRequest, web};

use crate::errors::{ApiError, FieldError};

/// The API's paths and the methods each answers, read from the OpenAPI document that the
/// route registration produced (so it cannot disagree with the routes). Each path keeps its
/// number of parameters: where two match (`…/messages/read`, `…/messages/{message_id}`), the
/// one with fewer names the resource.
pub struct RouteTable(Vec<(ResourceDef, usize, Vec<Method>)>);

impl RouteTable {
    pub fn from_spec(spec: &utoipa::openapi::OpenApi) -> RouteTable {
        let routes = spec
            .paths
            .paths
            .iter()
            .map(|(path, item)| {
                let methods = [
                    (Method::GET, item.get.is_some()),
                    // Answered by the GET route (`middleware::observe`).
                    (Method::HEAD, item.get.is_some()),
                    (Method::POST, item.post.is_some()),
                    (Method::PUT, item.put.is_some()),
                    (Method::PATCH, item.patch.is_some()),
                    (Method::DELETE, item.delete.is_some()),
                ]
                .into_iter()
                .filter_map(|(m, present)| present.then_some(m))
                .collect();
                let parameters = path.matches('{').count();
                (ResourceDef::new(path.as_str()), parameters, methods)
            })
            .collect();
        RouteTable(routes)
    }

    fn methods_for(&self, path: &str) -> Option<&[Method]> {
        self.0
            .iter()
            .filter(|(def, _, _)| def.is_match(path))
            .min_by_key(|(_, parameters, _)| *parameters)
            .map(|(_, _, methods)| methods.as_slice())
    }

    /// 405 when `req`'s path names a resource that does not answer its method: for a path a
    /// parameterised route also matched, whose parameter then failed to parse.
    fn refused_method(&self, req: &HttpRequest) -> Option<ApiError> {
        let allow = self.methods_for(req.path())?;
        (!allow.is_empty() && !allow.contains(req.method())).then(|| ApiError::MethodNotAllowed {
            allow: allow.to_vec(),
        })
    }
}

/// The default service: 405 for a known path, 404 otherwise.
pub async fn not_found(
    req: HttpRequest,
    routes: web::Data<RouteTable>,
) -> Result<&'static str, ApiError> {
    match routes.methods_for(req.path()) {
        Some(allow) if !allow.is_empty() => Err(ApiError::MethodNotAllowed {
            allow: allow.to_vec(),
        }),
        _ => Err(ApiError::NotFound("No resource lives at this path.".into())),
    }
}

pub fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .error_handler(move |err, _req| {
            let api = match &err {
                JsonPayloadError::ContentType => ApiError::UnsupportedMediaType(
                    "Send the body as `Content-Type: application/json`.".into(),
                ),
                JsonPayloadError::Overflow { .. }
                | JsonPayloadError::OverflowKnownLength { .. } => {
                    ApiError::PayloadTooLarge { limit }
                }
                JsonPayloadError::Deserialize(e) => ApiError::BadRequest {
                    code: "malformed_json",
                    detail: format!("The body is not valid JSON: {e}."),
                    errors: Vec::new(),
                },
                other => ApiError::bad_request(
                    "malformed_body",
                    format!("The body could not be read: {other}."),
                ),
            };
            api.into()
        })
}

/// 400 `invalid_query`, pointing at the parameter serde's message names.
pub fn invalid_query(detail: String) -> ApiError {
    let pointer = detail
        .split('`')
        .nth(1)
        .map(|name| format!("/{name}"))
        .unwrap_or_default();
    ApiError::BadRequest {
        code: "invalid_query",
        detail: format!("The query string is not valid: {detail}."),
        errors: vec![FieldError::new(pointer, "invalid_query", detail)],
    }
}

pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|err, req| {
        // `GET …/messages/read` reaches `GET …/messages/{message_id}` and fails its id: the
        // client meant the `read` resource, which answers `POST` only.
        let refused = req
            .app_data::<web::Data<RouteTable>>()
            .and_then(|routes| routes.refused_method(req));
        if let Some(refused) = refused {
            return refused.into();
        }
        let detail = match &err {
            PathError::Deserialize(e) => e.to_string(),
            other => other.to_string(),
        };
        ApiError::bad_request(
            "invalid_path_parameter",
            format!("A path parameter is not valid: {detail}."),
        )
        .into()
    })
}
