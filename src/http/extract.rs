//! Request extractors: validated JSON bodies, pagination, and conditional-request headers.

use std::borrow::Cow;
use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;

use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde::de::DeserializeOwned;
use url::form_urlencoded;
use utoipa::{IntoParams, ToSchema};
use validator::Validate;

use crate::errors::{ApiError, FieldError};

/// A JSON body, deserialized with the path of any failure and then validated. Syntax errors,
/// wrong content types and oversized bodies are caught earlier by actix's JSON extractor
/// (configured in [`super::fallback::json_config`]); here come unknown fields (400) and
/// members of the wrong type, missing or breaking a rule (422), each with a JSON Pointer.
pub struct ValidJson<T>(pub T);

impl<T: DeserializeOwned + Validate + 'static> FromRequest for ValidJson<T> {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, actix_web::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        let body = web::Json::<serde_json::Value>::from_request(req, payload);
        Box::pin(async move {
            let value = body.await?.into_inner();
            if let Some(at) = nul_in(&value) {
                return Err(ApiError::validation(vec![FieldError::new(
                    at,
                    "invalid_value",
                    "Text may not hold a NUL character (\\u0000).",
                )])
                .into());
            }
            // serde also reads a struct from an array of its members in order (`[null, null]`):
            // every body of this API is an object.
            if !value.is_object() {
                return Err(ApiError::validation(vec![FieldError::new(
                    "",
                    "invalid_value",
                    "The body must be a JSON object.",
                )])
                .into());
            }
            let parsed: T = serde_path_to_error::deserialize(value).map_err(body_error)?;
            parsed
                .validate()
                .map_err(|e| ApiError::validation(validation_errors(&e)))?;
            Ok(ValidJson(parsed))
        })
    }
}

/// One reference token of a JSON Pointer, escaped as RFC 6901 says (`~` as `~0`, `/` as `~1`).
pub fn pointer_token(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

/// The JSON Pointer of the first string or member name holding a NUL character, which
/// PostgreSQL refuses to store (a 500 if it got that far) and no field of this API needs.
/// Passwords are only hashed, never stored: one set with a NUL before still logs in.
fn nul_in(value: &serde_json::Value) -> Option<String> {
    use serde_json::Value;
    match value {
        Value::String(s) => s.contains('\0').then(String::new),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| nul_in(item).map(|at| format!("/{i}{at}"))),
        Value::Object(members) => members.iter().find_map(|(name, member)| {
            if name.ends_with("password") {
                None
            } else if name.contains('\0') {
                Some(format!("/{}", pointer_token(name)))
            } else {
                nul_in(member).map(|at| format!("/{}{at}", pointer_token(name)))
            }
        }),
        Value::Null | Value::Bool(_) | Value::Number(_) => None,
    }
}

/// `a.b[0]` as the JSON Pointer `/a/b/0`.
fn pointer(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    path.iter()
        .filter_map(|segment| match segment {
            Segment::Seq { index } => Some(index.to_string()),
            Segment::Map { key } => Some(key.clone()),
            Segment::Enum { variant } => Some(variant.clone()),
            Segment::Unknown => None,
        })
        .map(|s| format!("/{}", pointer_token(&s)))
        .collect()
}

/// The name between the first pair of backticks of a serde message (`unknown field `x``).
fn quoted_name(message: &str) -> Option<&str> {
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    Some(&message[start..start + len])
}

fn body_error(e: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let base = pointer(e.path());
    let message = e.inner().to_string();
    if message.starts_with("unknown field") {
        let name = quoted_name(&message).unwrap_or_default();
        let at = if base.ends_with(&format!("/{name}")) {
            base.clone()
        } else {
            format!("{base}/{name}")
        };
        let detail = format!(
            "Unknown field `{name}`: the request names a member this operation does not take."
        );
        return ApiError::BadRequest {
            code: "unknown_field",
            detail: detail.clone(),
            errors: vec![FieldError::new(at, "unknown_field", detail)],
        };
    }
    if message.starts_with("missing field") {
        let name = quoted_name(&message).unwrap_or_default();
        return ApiError::validation(vec![FieldError::new(
            format!("{base}/{name}"),
            "required",
            "This member is required.",
        )]);
    }
    ApiError::validation(vec![FieldError::new(base, "invalid_value", message)])
}

/// The rules `e` names, one error per field and rule, sorted by pointer, nested members
/// (`#[validate(nested)]`) included under their path. Never the values: validator's own
/// `Display` prints them, a password included.
pub fn validation_errors(e: &validator::ValidationErrors) -> Vec<FieldError> {
    let mut out = Vec::new();
    collect_errors(e, "", &mut out);
    out.sort_by(|a, b| a.pointer.cmp(&b.pointer));
    out
}

fn collect_errors(e: &validator::ValidationErrors, at: &str, out: &mut Vec<FieldError>) {
    use validator::ValidationErrorsKind as Kind;
    for (field, kind) in e.errors() {
        let pointer = format!("{at}/{field}");
        match kind {
            Kind::Field(errors) => {
                out.extend(errors.iter().map(|error| {
                    FieldError::new(&pointer, error.code.to_string(), describe(error))
                }))
            }
            Kind::Struct(inner) => collect_errors(inner, &pointer, out),
            Kind::List(items) => {
                for (index, inner) in items {
                    collect_errors(inner, &format!("{pointer}/{index}"), out);
                }
            }
        }
    }
}

/// What a broken rule asks for, in words.
fn describe(error: &validator::ValidationError) -> String {
    error
        .message
        .as_ref()
        .map(|m| m.to_string())
        .unwrap_or_else(|| match error.code.as_ref() {
            "email" => "must be a valid e-mail address".to_owned(),
            // `length` bounds a text's characters or a list's items.
            "length" => match error.params.get("value") {
                Some(serde_json::Value::Array(_)) => describe_bounds("items", error),
                _ => describe_bounds("characters", error),
            },
            "range" => describe_bounds("value", error),
            other => format!("breaks the `{other}` rule"),
        })
}

fn describe_bounds(what: &str, error: &validator::ValidationError) -> String {
    let bound = |name: &str| error.params.get(name).map(|v| v.to_string());
    match (bound("min"), bound("max")) {
        (Some(min), Some(max)) => format!("{what} must be between {min} and {max}"),
        (Some(min), None) => format!("{what} must be at least {min}"),
        (None, Some(max)) => format!("{what} must be at most {max}"),
        (None, None) => format!("{what} is out of range"),
    }
}

/// The query string, read alike on every route: repeated parameters fill lists
/// (`?status=a&status=b`), which `web::Query` cannot do; a parameter with an empty value
/// (`?limit=`) or repeated though it is no list is refused. Failures are 400 `invalid_query`.
pub struct Query<T>(pub T);

impl<T> Query<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for Query<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: DeserializeOwned> FromRequest for Query<T> {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let given = req.query_string();
        let pairs: Vec<(Cow<str>, Cow<str>)> = form_urlencoded::parse(given.as_bytes())
            .take(MAX_QUERY_PAIRS + 1)
            .collect();
        // Bounds the work below (and what a request could make `not_a_list` do) whatever the
        // URL's length: no route reads nearly as many.
        if pairs.len() > MAX_QUERY_PAIRS {
            let detail = format!("at most {MAX_QUERY_PAIRS} query parameters");
            return std::future::ready(Err(super::fallback::invalid_query(detail)));
        }
        // serde_html_form reads an empty number as absent and an empty text as text: neither
        // is what was meant, so neither is guessed.
        if let Some((name, _)) = pairs.iter().find(|(_, value)| value.is_empty()) {
            let detail = format!("`{name}` has no value (leave it out instead)");
            return std::future::ready(Err(super::fallback::invalid_query(detail)));
        }
        std::future::ready(serde_html_form::from_str(given).map(Query).map_err(|e| {
            let message = e.to_string();
            let repeated = (message == REPEATED)
                .then(|| not_a_list::<T>(&pairs))
                .flatten();
            super::fallback::invalid_query(match repeated {
                Some(name) => format!("`{name}` is given more than once (only lists repeat)"),
                None => message,
            })
        }))
    }
}

/// The most query parameters a request may send (list members counted one by one).
pub const MAX_QUERY_PAIRS: usize = 100;

/// serde_html_form's nameless error for a repeated parameter that is no list.
const REPEATED: &str = "unsupported value";

/// The first repeated parameter that is no list: the first that, alone repeated (every other
/// name given once), still fails as a repeat (error path only; one parse per repeated name).
fn not_a_list<T: DeserializeOwned>(pairs: &[(Cow<str>, Cow<str>)]) -> Option<String> {
    let mut seen = HashSet::new();
    let mut repeated: Vec<&str> = Vec::new();
    for (name, _) in pairs {
        if !seen.insert(name.as_ref()) && !repeated.contains(&name.as_ref()) {
            repeated.push(name);
        }
    }
    repeated
        .into_iter()
        .find(|suspect| {
            let mut given = HashSet::new();
            let alone = pairs
                .iter()
                .filter(|(name, _)| name == suspect || given.insert(name.as_ref()));
            let query = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(alone)
                .finish();
            serde_html_form::from_str::<T>(&query).is_err_and(|e| e.to_string() == REPEATED)
        })
        .map(str::to_owned)
}

pub const DEFAULT_PAGE_SIZE: i64 = 25;
pub const MAX_PAGE_SIZE: i64 = 100;

/// One page of a list, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T: ToSchema> {
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    #[schema(example = "MDE5M2E2ZjItMmM0ZS03YjUxLTlkMGEtM2YxZTJhNGI1YzZk")]
    pub next_cursor: Option<String>,
}

/// A row id as this API writes it (lower-case, hyphenated), the only form a cursor holds: the
/// keyset compares text, where `{…}` or capitals would sort the page elsewhere.
pub fn is_row_id(key: &str) -> bool {
    uuid::Uuid::try_parse(key).is_ok_and(|id| id.hyphenated().to_string() == key)
}

/// A page request: `limit` (1–100, default 25) and the opaque `cursor` of the previous page.
pub struct PageRequest {
    pub limit: i64,
    /// The key of the last row already seen.
    pub after: Option<String>,
}

impl PageRequest {
    /// For lists keyed by row id: a cursor must hold a UUID.
    pub fn new(limit: Option<i64>, cursor: Option<&str>) -> Result<PageRequest, ApiError> {
        let page = Self::keyed(limit, cursor)?;
        if page.after.as_deref().is_some_and(|key| !is_row_id(key)) {
            return Err(invalid_cursor());
        }
        Ok(page)
    }

    /// For lists with keys of their own (a sequence number, a time and an id), which parse the
    /// key themselves and answer [`invalid_cursor`] when it is not theirs.
    pub fn keyed(limit: Option<i64>, cursor: Option<&str>) -> Result<PageRequest, ApiError> {
        let limit = limit.unwrap_or(DEFAULT_PAGE_SIZE);
        if !(1..=MAX_PAGE_SIZE).contains(&limit) {
            return Err(ApiError::BadRequest {
                code: "invalid_query",
                detail: format!("`limit` must be between 1 and {MAX_PAGE_SIZE}."),
                errors: vec![FieldError::new(
                    "/limit",
                    "range",
                    format!("must be between 1 and {MAX_PAGE_SIZE}"),
                )],
            });
        }
        let after = cursor.map(decode_cursor).transpose()?;
        Ok(PageRequest { limit, after })
    }

    /// Rows to fetch: one more than the page, to learn whether another page follows.
    pub fn fetch(&self) -> i64 {
        self.limit + 1
    }

    /// Cuts the extra row off and turns the rest into a page, with a cursor when more follow.
    pub fn page<R, T: ToSchema>(
        &self,
        mut rows: Vec<R>,
        key: impl Fn(&R) -> &str,
        view: impl Fn(R) -> T,
    ) -> Page<T> {
        let next_cursor = self.cut(&mut rows, key);
        Page {
            items: rows.into_iter().map(view).collect(),
            next_cursor,
        }
    }

    /// [`PageRequest::page`] of views read from rows that can fail to read (stored JSON).
    pub fn try_page<R, T>(
        &self,
        mut rows: Vec<R>,
        key: impl Fn(&R) -> &str,
    ) -> Result<Page<T>, ApiError>
    where
        T: ToSchema + TryFrom<R, Error = ApiError>,
    {
        let next_cursor = self.cut(&mut rows, key);
        Ok(Page {
            items: rows
                .into_iter()
                .map(T::try_from)
                .collect::<Result<_, _>>()?,
            next_cursor,
        })
    }

    /// Drops the extra row fetched past the page; the cursor to the next page if there was one.
    fn cut<R>(&self, rows: &mut Vec<R>, key: impl Fn(&R) -> &str) -> Option<String> {
        let more = rows.len() as i64 > self.limit;
        rows.truncate(self.limit as usize);
        more.then(|| rows.last().map(|r| URL_SAFE_NO_PAD.encode(key(r))))
            .flatten()
    }
}

/// The 400 for a cursor this API did not hand out.
pub fn invalid_cursor() -> ApiError {
    ApiError::BadRequest {
        code: "invalid_cursor",
        detail: "`cursor` is not one this API handed out.".into(),
        errors: vec![FieldError::new(
            "/cursor",
            "invalid_cursor",
            "not a cursor from `next_cursor`",
        )],
    }
}

fn decode_cursor(cursor: &str) -> Result<String, ApiError> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(invalid_cursor)
}

/// 200 with the page, and a `Link: <…>; rel="next"` header naming the next page's URL.
pub fn page_response<T: ToSchema + Serialize>(req: &HttpRequest, page: Page<T>) -> HttpResponse {
    let mut response = HttpResponse::Ok();
    if let Some(cursor) = &page.next_cursor {
        let mut pairs: Vec<(String, String)> =
            serde_urlencoded::from_str::<Vec<(String, String)>>(req.query_string())
                .unwrap_or_default();
        pairs.retain(|(k, _)| k != "cursor");
        pairs.push(("cursor".into(), cursor.clone()));
        let query = serde_urlencoded::to_string(&pairs).unwrap_or_default();
        response.insert_header((
            header::LINK,
            format!("<{}?{}>; rel=\"next\"", req.path(), query),
        ));
    }
    response.json(page)
}

/// The strong ETag of a versioned resource.
pub fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

/// Whether the request's `If-None-Match` names the strong entity tag `tag` (`"…"`), or is `*`.
/// The comparison is weak, as RFC 9110 has it for `If-None-Match`: `W/"7"` names `"7"`.
pub fn none_match(req: &HttpRequest, tag: &str) -> bool {
    req.headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim() == "*"
                || v.split(',')
                    .any(|t| t.trim().trim_start_matches("W/") == tag)
        })
}

/// 200 with the body and its ETag, or 304 when `If-None-Match` already names this version.
pub fn versioned_response<T: Serialize>(req: &HttpRequest, version: i64, body: &T) -> HttpResponse {
    let tag = etag(version);
    if none_match(req, &tag) {
        return HttpResponse::NotModified()
            .insert_header((header::ETAG, tag))
            .finish();
    }
    HttpResponse::Ok()
        .insert_header((header::ETAG, tag))
        .json(body)
}

/// The `If-Match` header of a request (as sent, and its entity tags), checked against the
/// current version inside the transaction that changes the resource; `*` asks for nothing, as
/// no header does. Also the header's entry in the spec, so the rule the extractor enforces and
/// the one the spec states are written once.
#[derive(Debug, Clone, Default, IntoParams)]
#[into_params(parameter_in = Header)]
pub struct IfMatch {
    /// The `ETag` last seen (`*`, or entity tags separated by commas); 412 if it is no longer
    /// current, 400 `invalid_header` if it is no tag.
    #[param(
        rename = "If-Match",
        value_type = Option<String>,
        nullable = false,
        pattern = r#"^(\*|(W/)?"[!#-+\--~]*"( *, *(W/)?"[!#-+\--~]*")*)$"#
    )]
    sent: Option<(String, Vec<header::EntityTag>)>,
}

impl IfMatch {
    pub fn is_set(&self) -> bool {
        self.sent.is_some()
    }

    /// A conditional write that found the row changed since this request read it at `read`
    /// (PostgreSQL: SQLite's one writer never gets here). A caller who sent `If-Match` lost to
    /// a newer version: 412, as if that change had come first. Anyone else may simply retry:
    /// 409 `concurrent_update`.
    pub fn lost_race(&self, read: i64, what: &str) -> ApiError {
        if self.is_set() {
            ApiError::PreconditionFailed {
                expected: etag(read),
            }
        } else {
            ApiError::Conflict {
                code: "concurrent_update",
                detail: format!(
                    "The {what} changed while this request ran; nothing was written. Read it again and retry."
                ),
            }
        }
    }

    /// Absent or `*` passes; anything else must name the current version with a strong ETag,
    /// or the answer is 412.
    pub fn check(&self, current: i64) -> Result<(), ApiError> {
        let Some((sent, tags)) = &self.sent else {
            return Ok(());
        };
        let current = header::EntityTag::new_strong(current.to_string());
        if tags.iter().any(|tag| tag.strong_eq(&current)) {
            Ok(())
        } else {
            Err(ApiError::PreconditionFailed {
                expected: sent.clone(),
            })
        }
    }
}

impl FromRequest for IfMatch {
    type Error = ApiError;
    type Future = std::future::Ready<Result<IfMatch, ApiError>>;

    /// 400 `invalid_header` unless the header is `*` or a list of entity tags (`"3"`, `W/"3"`):
    /// a value that can never match is the client's mistake, not a stale version. Each item
    /// must be a tag (actix's typed header drops the ones that are not); a tag holding a comma,
    /// which this API never issues, is refused with them.
    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let parsed = match req.headers().get(header::IF_MATCH) {
            None => Ok(IfMatch::default()),
            Some(sent) => match sent.to_str().map(str::trim) {
                Ok("*") => Ok(IfMatch::default()),
                Ok(sent) => sent
                    .split(',')
                    .map(str::trim)
                    .filter(|item| !item.is_empty())
                    .map(str::parse::<header::EntityTag>)
                    .collect::<Result<Vec<_>, _>>()
                    .ok()
                    .filter(|tags| !tags.is_empty())
                    .map(|tags| IfMatch {
                        sent: Some((sent.to_owned(), tags)),
                    })
                    .ok_or_else(bad_if_match),
                Err(_) => Err(bad_if_match()),
            },
        };
        std::future::ready(parsed)
    }
}

fn bad_if_match() -> ApiError {
    const RULE: &str = "`*` or a list of entity tags, such as `\"3\"`";
    ApiError::BadRequest {
        code: "invalid_header",
        detail: format!("`If-Match` must be {RULE}."),
        errors: vec![FieldError::new("/If-Match", "invalid_header", RULE)],
    }
}
