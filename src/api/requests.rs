//! Requests to the client (a question, a document, notes): with video calls
//! (`api::video_calls`), the ways the agency and the client work together besides messages.

use actix_web::{HttpRequest, HttpResponse, get, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use validator::Validate;

use crate::api::attachments::check_case_attachments;
use crate::api::case_access::{
    Viewer, create_on_case, find_visible, read_on_case, touch, wrong_state,
};
use crate::api::{Asked, Asking, timestamp};
use crate::app::AppState;
use crate::auth::Token;
use crate::db::{self, DbConnection};
use crate::domain::{Role, code_enum};
use crate::errors::ApiError;
use crate::events::{Audience, Event, Notifier};
use crate::http::extract::{
    IfMatch, Page, PageRequest, Query, ValidJson, etag, page_response, versioned_response,
};
use crate::http::idempotency::{Created, IdempotencyKey};
use crate::repo;
use crate::repo::audit::{Actor, Change};
use crate::repo::cases::CaseRow;
use crate::repo::requests::{RequestChanges, RequestRow};
use crate::workflow;

code_enum! {
    /// What the agency asks for.
    RequestKind {
        Question = "question",
        Document = "document",
        Note = "note",
    }
}

code_enum! {
    RequestStatus {
        Open = "open",
        Answered = "answered",
        Cancelled = "cancelled",
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Answer {
    pub text: Option<String>,
    #[schema(value_type = Vec<String>, format = "uuid")]
    pub attachment_ids: Vec<String>,
    #[schema(format = "uuid")]
    pub answered_by: String,
    #[serde(serialize_with = "crate::api::rfc3339")]
    pub answered_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0193a6f9-aaaa-7c2d-8e3f-405162738495",
    "case_id": "0193a6f4-2222-7c2d-8e3f-405162738495",
    "kind": "document",
    "prompt": "Please upload a recent photo of the subject.",
    "due_at": "2026-11-25T18:00:00Z",
    "status": "open",
    "created_by": "0193a6f2-2c4e-7b51-9d0a-3f1e2a4b5c6d",
    "created_at": "2026-11-22T10:00:00Z",
    "answer": null,
    "version": 1
}))]
pub struct RequestView {
    #[schema(format = "uuid")]
    pub id: String,
    #[schema(format = "uuid")]
    pub case_id: String,
    pub kind: RequestKind,
    pub prompt: String,
    #[serde(serialize_with = "crate::api::rfc3339_opt")]
    pub due_at: Option<DateTime<Utc>>,
    pub status: RequestStatus,
    #[schema(format = "uuid")]
    pub created_by: String,
    #[serde(serialize_with = "crate::api::rfc3339")]
    pub created_at: DateTime<Utc>,
    /// Set once answered.
    pub answer: Option<Answer>,
    pub version: i64,
}

impl From<RequestRow> for RequestView {
    fn from(r: RequestRow) -> Self {
        let answer = match (r.answered_by, r.answered_at) {
            (Some(answered_by), Some(at)) => Some(Answer {
                text: r.answer_text,
                attachment_ids: r
                    .answer_attachment_ids
                    .as_deref()
                    .and_then(|a| serde_json::from_str(a).ok())
                    .unwrap_or_default(),
                answered_by,
                answered_at: timestamp(at),
            }),
            _ => None,
        };
        RequestView {
            kind: RequestKind::from_code(&r.kind).unwrap_or(RequestKind::Question),
            status: RequestStatus::from_code(&r.status).unwrap_or(RequestStatus::Open),
            id: r.id,
            case_id: r.case_id,
            prompt: r.prompt,
            due_at: r.due_at.map(timestamp),
            created_by: r.created_by,
            created_at: timestamp(r.created_at),
            answer,
            version: r.version,
        }
    }
}

/// The case's open requests, for its card.
pub fn open_requests(conn: &mut DbConnection, case_id: &str) -> Result<Vec<RequestView>, ApiError> {
    Ok(
        repo::requests::in_status(conn, case_id, RequestStatus::Open.as_str(), 100)?
            .into_iter()
            .map(RequestView::from)
            .collect(),
    )
}

fn request_not_found() -> ApiError {
    ApiError::NotFound("No such request, or not one you can see.".into())
}

/// The case, visible, with requests open in its status, for `role` only; 404/403/409.
fn case_for(
    conn: &mut DbConnection,
    viewer: &Viewer,
    case_id: &str,
    role: Role,
    what: &str,
) -> Result<CaseRow, ApiError> {
    let case = find_visible(conn, viewer, case_id)?;
    check_open(viewer, &case, role, what)?;
    Ok(case)
}

/// 403 unless the caller has `role`, 409 while the case's status takes no requests.
fn check_open(viewer: &Viewer, case: &CaseRow, role: Role, what: &str) -> Result<(), ApiError> {
    if viewer.role != role {
        return Err(ApiError::Forbidden(format!("Your role may not {what}.")));
    }
    let status = case.status();
    if !workflow::state_of(status).requests_open {
        return Err(wrong_state(
            viewer,
            case,
            format!("Requests are not open while the case is `{status}`."),
        ));
    }
    Ok(())
}

/// Answers or cancels `current` while it is still open (409 `request_not_open` otherwise),
/// moves the case's version, lets the resolution clock run again if nothing else holds it, and
/// records the new status in the audit trail as `action`: the request as it now stands.
/// The case's row is locked first, then the request's: `complete` takes them in that order too
/// (it cancels the open requests), so the two never deadlock on PostgreSQL.
fn change_open(
    conn: &mut DbConnection,
    notifier: &Notifier,
    (viewer, actor): (&Viewer, &Actor),
    (case, current): (&CaseRow, &RequestRow),
    action: &str,
    changes: &RequestChanges,
    if_match: &IfMatch,
) -> Result<RequestRow, ApiError> {
    if current.status != RequestStatus::Open.as_str() {
        return Err(not_open(&current.status));
    }
    if let Err(error) = touch(conn, viewer, case, &IfMatch::default()) {
        return Err(lost_request(conn, current, if_match, error));
    }
    if !repo::requests::update_open(conn, &current.id, current.version, changes)? {
        let not_open = not_open(&current.status);
        return Err(lost_request(conn, current, if_match, not_open));
    }
    crate::sla::requests_changed(conn, notifier, case)?;
    let change = Change::on_case(case, "request", &current.id, action).field(
        "status",
        Some(current.status.clone()),
        changes.status.clone(),
    );
    repo::audit::append(conn, actor, vec![change])?;
    repo::requests::find(conn, &current.case_id, &current.id)?.ok_or_else(request_not_found)
}

fn not_open(status: &str) -> ApiError {
    ApiError::Conflict {
        code: "request_not_open",
        detail: format!("The request is `{status}`, not open."),
    }
}

/// A change to `current` that found the case or the request moved meanwhile (PostgreSQL): when
/// the request did, 412 for a caller who sent `If-Match`, else 409 `request_not_open` with its
/// status now; otherwise `error`, the case's own. Also `error` when the request cannot be read
/// again: a deadlock or a lock timeout has ended the transaction, and is its own answer.
fn lost_request(
    conn: &mut DbConnection,
    current: &RequestRow,
    if_match: &IfMatch,
    error: ApiError,
) -> ApiError {
    match repo::requests::find(conn, &current.case_id, &current.id) {
        Ok(Some(now)) if now.version != current.version => match if_match.is_set() {
            true => if_match.lost_race(current.version, "request"),
            false => not_open(&now.status),
        },
        Ok(_) | Err(_) => error,
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListRequestsQuery {
    /// Only requests in these statuses (repeat the parameter for several).
    #[serde(default)]
    #[param(style = Form, explode)]
    pub status: Vec<RequestStatus>,
    #[param(minimum = 1, maximum = 100, default = 25)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// List requests to the client
///
/// Newest first; filter by status. Roles: anyone who can see the case.
#[utoipa::path(
    tag = "requests",
    operation_id = "list_requests",
    params(("id" = Uuid, Path, description = "Case id"), ListRequestsQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "One page of requests", body = Page<RequestView>,
            headers(("Link" = String, description = "`<…>; rel=\"next\"` when another page follows"))),
        (status = 404, description = "No such case, or not one the caller can see"),
    )
)]
#[get("/v1/cases/{id}/requests")]
pub async fn list_requests(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: Token,
    id: web::Path<Uuid>,
    query: Query<ListRequestsQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = PageRequest::new(query.limit, query.cursor.as_deref())?;
    let statuses: Vec<&'static str> = query.status.iter().map(|s| s.as_str()).collect();
    let (rows, page) = read_on_case(&state, &req, token, *id, move |conn, _, case| {
        let after = page.after.as_deref();
        let rows = repo::requests::list(conn, &case.id, &statuses, after, page.fetch())?;
        Ok((rows, page))
    })
    .await?;
    let page = page.page(rows, |r| &r.id, RequestView::from);
    Ok(page_response(&req, page))
}

/// A request's URL, the `Location` of its creation.
fn request_url(case_id: &str, id: &str) -> String {
    format!("/v1/cases/{case_id}/requests/{id}")
}

/// Get a request to the client
///
/// Answers 304 when `If-None-Match` names its current version. Roles: anyone who can see the
/// case.
#[utoipa::path(
    tag = "requests",
    operation_id = "get_request",
    params(("id" = Uuid, Path, description = "Case id"), ("request_id" = Uuid, Path, description = "Request id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The request", body = RequestView, headers(("ETag" = String, description = "Its version"))),
        (status = 304, description = "Unchanged since the `If-None-Match` version", headers(("ETag" = String, description = "Its version"))),
        (status = 404, description = "No such case or request, or not one the caller can see"),
    )
)]
#[get("/v1/cases/{id}/requests/{request_id}")]
pub async fn get_request(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: Token,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (case_id, request_id) = path.into_inner();
    let request_id = request_id.to_string();
    let row = read_on_case(&state, &req, token, case_id, move |conn, _, case| {
        repo::requests::find(conn, &case.id, &request_id)?.ok_or_else(request_not_found)
    })
    .await?;
    Ok(versioned_response(
        &req,
        row.version,
        &RequestView::from(row),
    ))
}

#[derive(Debug, Deserialize, Serialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"kind": "document", "prompt": "Please upload a recent photo of the subject.", "due_at": "2026-11-25T18:00:00Z"}))]
pub struct CreateRequest {
    pub kind: RequestKind,
    #[serde(deserialize_with = "crate::api::trimmed")]
    #[validate(length(min = 1, max = 5000))]
    #[schema(min_length = 1, max_length = 5000)]
    pub prompt: String,
    /// Optional; must be in the future, before the year 10000 (UTC).
    #[serde(default, deserialize_with = "crate::api::instant_opt")]
    pub due_at: Option<DateTime<Utc>>,
}

/// Ask the client something
///
/// A question, a document or notes, with an optional due date, while the case is `approved`,
/// `in_progress` or `suspended` (409 otherwise). Open requests appear on the case card, whose
/// version (its `ETag`) moves on. Accepts `Idempotency-Key`, as buying a service does.
/// Roles: agency.
#[utoipa::path(
    tag = "requests",
    operation_id = "create_request",
    params(("id" = Uuid, Path, description = "Case id"), IdempotencyKey),
    request_body = CreateRequest,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Asked", body = RequestView,
            headers(("Location" = String, description = "The request's URL"), ("ETag" = String, description = "Its version"))),
        (status = 403, description = "Only the agency asks"),
        (status = 404, description = "No such case, or not one the caller can see"),
        (status = 409, description = "Requests are not open in the case's status (`wrong_state`), or the case changed meanwhile (`concurrent_update`)"),
    )
)]
#[post("/v1/cases/{id}/requests")]
pub async fn create_request(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: Token,
    id: web::Path<Uuid>,
    key: IdempotencyKey,
    body: ValidJson<CreateRequest>,
) -> Result<HttpResponse, ApiError> {
    let notifier = state.notifier.clone();
    create_on_case(
        &state,
        &req,
        key,
        body.0,
        Asking::new(token, &req),
        id.into_inner().to_string(),
        move |conn, viewer, actor, case, input| ask(conn, &notifier, viewer, actor, &case, input),
    )
    .await
}

/// The request itself, once the caller may see the case and is not replayed an earlier answer.
fn ask(
    conn: &mut DbConnection,
    notifier: &Notifier,
    viewer: &Viewer,
    actor: &Actor,
    case: &CaseRow,
    input: CreateRequest,
) -> Result<Created<RequestView>, ApiError> {
    check_open(viewer, case, Role::Agency, "ask the client")?;
    // Here, not with the body's other rules: a retry after the due date has passed replays
    // the request it made.
    if input.due_at.is_some_and(|d| d <= Utc::now()) {
        return Err(ApiError::invalid_field(
            "/due_at",
            "in_the_past",
            "the due date must be in the future",
        ));
    }
    let case_id = case.id.clone();
    let row = RequestRow {
        id: repo::new_id(),
        case_id: case_id.clone(),
        kind: input.kind.as_str().to_owned(),
        prompt: input.prompt,
        due_at: input.due_at.map(db::stored_time),
        status: RequestStatus::Open.as_str().to_owned(),
        created_by: actor.user_id.clone(),
        created_at: db::now(),
        answer_text: None,
        answer_attachment_ids: None,
        answered_by: None,
        answered_at: None,
        version: 1,
    };
    repo::requests::insert(conn, &row)?;
    touch(conn, viewer, case, &IfMatch::default())?;
    // The resolution clock waits while the client is asked something.
    crate::sla::requests_changed(conn, notifier, case)?;
    let change = Change::entity("request", &row.id, Some(&case_id), "create");
    repo::audit::append(
        conn,
        actor,
        change.fields(vec![
            ("kind", None, Some(row.kind.clone())),
            ("prompt", None, Some(row.prompt.clone())),
        ]),
    )?;
    notifier.notify(
        conn,
        case,
        Event::RequestOpened,
        &[Audience::Client],
        Some(&actor.user_id),
        Some(&row.prompt),
        None,
    )?;
    Ok(Created {
        location: Some(request_url(&case_id, &row.id)),
        version: Some(row.version),
        body: RequestView::from(row),
    })
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"text": "Here it is.", "attachment_ids": ["0193a6f6-7777-7c2d-8e3f-405162738495"]}))]
pub struct AnswerRequest {
    /// Text and/or attachments; at least one.
    #[serde(default, deserialize_with = "crate::api::trimmed_opt")]
    #[validate(length(min = 1, max = 10000))]
    #[schema(min_length = 1, max_length = 10000)]
    pub text: Option<String>,
    /// Attachments of this case (at most 20).
    #[serde(default)]
    #[validate(length(max = 20))]
    #[schema(max_items = 20)]
    pub attachment_ids: Vec<Uuid>,
}

/// Answer a request
///
/// The client answers an open request with text and/or attachments of the case (422 with
/// neither); an answered or cancelled request is 409. Honours `If-Match` on the request's
/// version. The case's version moves on. Roles: client.
#[utoipa::path(
    tag = "requests",
    operation_id = "answer_request",
    params(("id" = Uuid, Path, description = "Case id"), ("request_id" = Uuid, Path, description = "Request id"), IfMatch),
    request_body = AnswerRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Answered", body = RequestView, headers(("ETag" = String, description = "The new version"))),
        (status = 403, description = "Only the client answers"),
        (status = 404, description = "No such case or request, or not one the caller can see"),
        (status = 409, description = "The request is not open (`request_not_open`), the case's status closes requests (`wrong_state`), or the case changed meanwhile (`concurrent_update`)"),
        (status = 412, description = "`If-Match` is not the request's version"),
    )
)]
#[post("/v1/cases/{id}/requests/{request_id}/answer")]
pub async fn answer_request(
    req: HttpRequest,
    if_match: IfMatch,
    state: web::Data<AppState>,
    token: Token,
    path: web::Path<(Uuid, Uuid)>,
    body: ValidJson<AnswerRequest>,
) -> Result<HttpResponse, ApiError> {
    let asking = Asking::new(token, &req);
    let (case_id, request_id) = path.into_inner();
    let (case_id, request_id) = (case_id.to_string(), request_id.to_string());
    let input = body.0;
    if input.text.is_none() && input.attachment_ids.is_empty() {
        return Err(ApiError::invalid_field(
            "/text",
            "required",
            "send a text, attachments, or both",
        ));
    }
    let notifier = state.notifier.clone();
    let row = db::write(&state.pool, move |conn| {
        let Asked { viewer, actor, .. } = asking.resolve(conn)?;
        let case = case_for(conn, &viewer, &case_id, Role::Client, "answer requests")?;
        let current =
            repo::requests::find(conn, &case_id, &request_id)?.ok_or_else(request_not_found)?;
        if_match.check(current.version)?;
        let (ids, foreign) =
            check_case_attachments(conn, &viewer, &case_id, &input.attachment_ids)?;
        if !foreign.is_empty() {
            return Err(ApiError::validation(foreign));
        }
        let changes = RequestChanges {
            status: Some(RequestStatus::Answered.as_str().to_owned()),
            answer_text: Some(input.text.clone()),
            answer_attachment_ids: Some(Some(json!(ids).to_string())),
            answered_by: Some(Some(actor.user_id.clone())),
            answered_at: Some(Some(db::now())),
        };
        let answered = change_open(
            conn,
            &notifier,
            (&viewer, &actor),
            (&case, &current),
            "answer",
            &changes,
            &if_match,
        )?;
        notifier.notify(
            conn,
            &case,
            Event::RequestAnswered,
            &[Audience::Agency],
            Some(&actor.user_id),
            input.text.as_deref().or(Some(&current.prompt)),
            None,
        )?;
        Ok(answered)
    })
    .await?;
    Ok(HttpResponse::Ok()
        .insert_header(("ETag", etag(row.version)))
        .json(RequestView::from(row)))
}

/// Cancel a request
///
/// The agency withdraws an open request (409 if it is no longer open); the client is told
/// (`request_cancelled`). Honours `If-Match` on the request's version. The case's version moves
/// on. Roles: agency.
#[utoipa::path(
    tag = "requests",
    operation_id = "cancel_request",
    params(("id" = Uuid, Path, description = "Case id"), ("request_id" = Uuid, Path, description = "Request id"), IfMatch),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Cancelled", body = RequestView, headers(("ETag" = String, description = "The new version"))),
        (status = 403, description = "Only the agency cancels"),
        (status = 404, description = "No such case or request, or not one the caller can see"),
        (status = 409, description = "The request is not open (`request_not_open`), the case's status closes requests (`wrong_state`), or the case changed meanwhile (`concurrent_update`)"),
        (status = 412, description = "`If-Match` is not the request's version"),
    )
)]
#[post("/v1/cases/{id}/requests/{request_id}/cancel")]
pub async fn cancel_request(
    req: HttpRequest,
    if_match: IfMatch,
    state: web::Data<AppState>,
    token: Token,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let asking = Asking::new(token, &req);
    let (case_id, request_id) = path.into_inner();
    let (case_id, request_id) = (case_id.to_string(), request_id.to_string());
    let notifier = state.notifier.clone();
    let row = db::write(&state.pool, move |conn| {
        let Asked { viewer, actor, .. } = asking.resolve(conn)?;
        let case = case_for(conn, &viewer, &case_id, Role::Agency, "cancel requests")?;
        let current =
            repo::requests::find(conn, &case_id, &request_id)?.ok_or_else(request_not_found)?;
        if_match.check(current.version)?;
        let changes = RequestChanges {
            status: Some(RequestStatus::Cancelled.as_str().to_owned()),
            ..RequestChanges::default()
        };
        let cancelled = change_open(
            conn,
            &notifier,
            (&viewer, &actor),
            (&case, &current),
            "cancel",
            &changes,
            &if_match,
        )?;
        // The client was asked: the request they may still have open in the bell is gone.
        notifier.notify(
            conn,
            &case,
            Event::RequestCancelled,
            &[Audience::Client],
            Some(&actor.user_id),
            Some(&current.prompt),
            None,
        )?;
        Ok(cancelled)
    })
    .await?;
    Ok(HttpResponse::Ok()
        .insert_header(("ETag", etag(row.version)))
        .json(RequestView::from(row)))
}
