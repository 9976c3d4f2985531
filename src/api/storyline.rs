//! The storyline: what happened in the investigation, in order, on a map. Agents write drafts,
//! the agency moderates, the client reads what is published. Frozen once the case is completed.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, web};
use chrono::{DateTime, Datelike, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use validator::Validate;

use crate::api::attachments::{check_case_attachments, share_with_client};
use crate::api::case_access::{
    Viewer, create_on_case, find_visible, read_on_case, share_locked, wrong_state,
};
use crate::api::{Asked, Asking, nullable, timestamp};
use crate::app::AppState;
use crate::auth::Token;
use crate::db::{self, DbConnection};
use crate::domain::{Locale, Role, code_enum};
use crate::errors::{ApiError, FieldError};
use crate::http::extract::{
    IfMatch, Page, PageRequest, Query, ValidJson, etag, invalid_cursor, is_row_id, page_response,
    versioned_response,
};
use crate::http::idempotency::{Created, IdempotencyKey};
use crate::i18n::{self, AcceptLanguage, SystemTitle};
use crate::repo;
use crate::repo::audit::{Actor, Change};
use crate::repo::cases::CaseRow;
use crate::repo::storyline::{EventChanges, EventFilter, EventRow};
use crate::workflow;

pub const GEO_JSON: &str = "application/geo+json";
/// The most positioned events one map answer carries.
const MAP_LIMIT: i64 = 5000;

code_enum! {
    /// What a storyline event records.
    EventKind {
        Note = "note",
        Sighting = "sighting",
        Photo = "photo",
        Document = "document",
        /// A status change with its reason (written by the system; agency staff may add one).
        Status = "status",
        /// Written by the system only (e.g. the submitted required data).
        System = "system",
    }
}

code_enum! {
    /// Drafts are seen by the agency and its agents only.
    EventStatus {
        Draft = "draft",
        Published = "published",
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Position {
    /// WGS 84 decimal degrees, −90…90.
    pub latitude: f64,
    /// WGS 84 decimal degrees, −180…180.
    pub longitude: f64,
    pub place_name: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0193a6f7-8888-7c2d-8e3f-405162738495",
    "case_id": "0193a6f4-2222-7c2d-8e3f-405162738495",
    "occurred_at": "2026-11-21T14:05:00Z",
    "kind": "sighting",
    "title": "Subject enters the golf club",
    "body": "Arrived by taxi, alone.",
    "position": {"latitude": 45.4642, "longitude": 9.19, "place_name": "Golf Club Milano"},
    "attachment_ids": [],
    "author_id": "0193a6f2-3333-7b51-9d0a-3f1e2a4b5c6d",
    "status": "published",
    "version": 2,
    "created_at": "2026-11-21T14:20:00Z",
    "updated_at": "2026-11-21T15:00:00Z"
}))]
pub struct EventView {
    #[schema(format = "uuid")]
    pub id: String,
    #[schema(format = "uuid")]
    pub case_id: String,
    #[serde(serialize_with = "crate::api::rfc3339")]
    pub occurred_at: DateTime<Utc>,
    pub kind: EventKind,
    /// As written; a title the system wrote (`status` and `system` events) in the reader's
    /// language.
    pub title: String,
    pub body: Option<String>,
    pub position: Option<Position>,
    #[schema(value_type = Vec<String>, format = "uuid")]
    pub attachment_ids: Vec<String>,
    #[schema(format = "uuid")]
    pub author_id: String,
    pub status: EventStatus,
    /// The event's own version; its `ETag` for PATCH.
    pub version: i64,
    #[serde(serialize_with = "crate::api::rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::api::rfc3339")]
    pub updated_at: DateTime<Utc>,
}

impl EventView {
    /// The event as a reader in `locale` is shown it: a title the system wrote in their
    /// language.
    pub fn of(r: EventRow, locale: Locale) -> Self {
        let title = match r.title_code.as_deref().and_then(SystemTitle::from_code) {
            Some(written) => written.render(locale),
            None => r.title,
        };
        let position = match (r.latitude, r.longitude) {
            (Some(latitude), Some(longitude)) => Some(Position {
                latitude,
                longitude,
                place_name: r.place_name,
            }),
            _ => None,
        };
        EventView {
            kind: EventKind::from_code(&r.kind).unwrap_or(EventKind::Note),
            status: EventStatus::from_code(&r.status).unwrap_or(EventStatus::Draft),
            attachment_ids: serde_json::from_str(&r.attachment_ids).unwrap_or_default(),
            id: r.id,
            case_id: r.case_id,
            occurred_at: timestamp(r.occurred_at),
            title,
            body: r.body,
            position,
            author_id: r.author_id,
            version: r.version,
            created_at: timestamp(r.created_at),
            updated_at: timestamp(r.updated_at),
        }
    }
}

/// The event as an RFC 7946 Feature (`[longitude, latitude]`), when it has a position.
fn feature(row: EventRow, locale: Locale) -> Option<Value> {
    let (latitude, longitude) = (row.latitude?, row.longitude?);
    let view = EventView::of(row, locale);
    Some(json!({
        "type": "Feature",
        "id": view.id,
        "geometry": {"type": "Point", "coordinates": [longitude, latitude]},
        "properties": {
            "occurred_at": view.occurred_at,
            "kind": view.kind,
            "title": view.title,
            "body": view.body,
            "place_name": view.position.and_then(|p| p.place_name),
            "status": view.status,
            "author_id": view.author_id,
            "attachment_ids": view.attachment_ids,
        }
    }))
}

/// Writes a system event (transitions with a reason, the required-data snapshot); its title is
/// rendered in each reader's language, its English text kept (and audited).
pub fn record(
    conn: &mut DbConnection,
    actor: &Actor,
    case_id: &str,
    kind: EventKind,
    title: SystemTitle,
    body: Option<String>,
) -> Result<(), ApiError> {
    let now = db::now();
    let row = EventRow {
        id: repo::new_id(),
        case_id: case_id.to_owned(),
        occurred_at: now,
        kind: kind.as_str().to_owned(),
        title: title.render(Locale::En),
        title_code: Some(title.code().to_owned()),
        body,
        latitude: None,
        longitude: None,
        place_name: None,
        attachment_ids: "[]".into(),
        author_id: actor.user_id.clone(),
        status: EventStatus::Published.as_str().to_owned(),
        version: 1,
        created_at: now,
        updated_at: now,
    };
    repo::storyline::insert(conn, &row)?;
    repo::audit::append(
        conn,
        actor,
        vec![
            Change::entity("storyline_event", &row.id, Some(case_id), "create").field(
                "title",
                None,
                Some(row.title.clone()),
            ),
        ],
    )?;
    Ok(())
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Json,
    Geojson,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StorylineQuery {
    /// `geojson` for a FeatureCollection of the positioned events (same as
    /// `Accept: application/geo+json`).
    #[param(inline)]
    pub format: Option<Format>,
    #[param(minimum = 1, maximum = 100, default = 25)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

fn wants_geojson(req: &HttpRequest, format: Option<Format>) -> bool {
    match format {
        Some(Format::Geojson) => true,
        Some(Format::Json) => false,
        None => req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains(GEO_JSON)),
    }
}

/// `(occurred_at, id)` from a storyline cursor key (`<micros>_<uuid>`).
fn parse_key(key: &str) -> Result<(NaiveDateTime, String), ApiError> {
    let (micros, id) = key.split_once('_').ok_or_else(invalid_cursor)?;
    let micros: i64 = micros.parse().map_err(|_| invalid_cursor())?;
    if !is_row_id(id) {
        return Err(invalid_cursor());
    }
    let at = DateTime::from_timestamp_micros(micros)
        .ok_or_else(invalid_cursor)?
        .naive_utc();
    // Only the years an `occurred_at` can have: PostgreSQL refuses a timestamp before 4713 BC.
    if !(0..=9999).contains(&chrono::Datelike::year(&at)) {
        return Err(invalid_cursor());
    }
    Ok((at, id.to_owned()))
}

/// Read the storyline
///
/// Events in the order they happened (`occurred_at`, then id), with cursor pagination. Clients
/// see published events only; agency, platform and the case's agents see drafts too. With
/// `Accept: application/geo+json` or `?format=geojson` the answer is an RFC 7946
/// FeatureCollection (`[longitude, latitude]`) of the positioned events the caller may see (at
/// most 5000, oldest first; no pagination). The titles the system writes (a move with its
/// reason, the submitted required data) follow `Accept-Language`, else the caller's locale.
/// Roles: anyone who can see the case.
#[utoipa::path(
    tag = "storyline",
    operation_id = "list_storyline",
    params(("id" = Uuid, Path, description = "Case id"), StorylineQuery, AcceptLanguage),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "One page of events, or a GeoJSON FeatureCollection", content(
            (Page<EventView> = "application/json"),
            (Value = "application/geo+json", example = json!({"type": "FeatureCollection", "features": [
                {"type": "Feature", "id": "0193a6f7-8888-7c2d-8e3f-405162738495",
                 "geometry": {"type": "Point", "coordinates": [9.19, 45.4642]},
                 "properties": {"occurred_at": "2026-11-21T14:05:00Z", "kind": "sighting", "title": "Subject enters the golf club",
                                "body": null, "place_name": "Golf Club Milano", "status": "published",
                                "author_id": "0193a6f2-3333-7b51-9d0a-3f1e2a4b5c6d", "attachment_ids": []}}]}))
        ), headers(("Link" = String, description = "`<…>; rel=\"next\"` when another page follows"),
            ("Vary" = String, description = "`accept, accept-language`: the format follows the first, the system's titles the second"))),
        (status = 404, description = "No such case, or not one the caller can see"),
    )
)]
#[get("/v1/cases/{id}/storyline")]
pub async fn list_storyline(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: Token,
    id: web::Path<Uuid>,
    query: Query<StorylineQuery>,
) -> Result<HttpResponse, ApiError> {
    let language = i18n::requested(&req);
    let case_id = id.into_inner().to_string();
    let geojson = wants_geojson(&req, query.format);
    let page = PageRequest::keyed(query.limit, query.cursor.as_deref())?;
    let after = page.after.as_deref().map(parse_key).transpose()?;
    let (after, limit) = if geojson {
        (None, MAP_LIMIT)
    } else {
        (after, page.fetch())
    };
    let (rows, locale) = db::read(&state.pool, move |conn| {
        let viewer = Viewer::asking(&token.user(conn)?, language);
        let filter = EventFilter {
            published_only: viewer.role == Role::Client,
            positioned_only: geojson,
        };
        find_visible(conn, &viewer, &case_id)?;
        let rows = repo::storyline::list(conn, &case_id, &filter, after, limit)?;
        Ok((rows, viewer.locale))
    })
    .await?;
    // One URL, two formats chosen by `Accept`: a cache must keep them apart.
    let mut response = if geojson {
        let features: Vec<Value> = rows
            .into_iter()
            .filter_map(|row| feature(row, locale))
            .collect();
        HttpResponse::Ok()
            .content_type(GEO_JSON)
            .json(json!({"type": "FeatureCollection", "features": features}))
    } else {
        let keys: Vec<(String, EventRow)> = rows
            .into_iter()
            .map(|r| {
                let micros = r.occurred_at.and_utc().timestamp_micros();
                (format!("{micros}_{}", r.id), r)
            })
            .collect();
        let view = |(_, row)| EventView::of(row, locale);
        let page: Page<EventView> = page.page(keys, |(k, _)| k, view);
        page_response(&req, page)
    };
    // One value: the CORS layer keeps only the first `Vary` it finds.
    let vary = header::HeaderValue::from_static("accept, accept-language");
    response.headers_mut().insert(header::VARY, vary);
    Ok(response)
}

/// Get a storyline event
///
/// One event as the list shows it: clients see published events only, agency, platform and the
/// case's agents drafts too (404 otherwise). Answers 304 when `If-None-Match` names its current
/// version. Roles: anyone who can see the case.
#[utoipa::path(
    tag = "storyline",
    operation_id = "get_storyline_event",
    params(("id" = Uuid, Path, description = "Case id"),
           ("event_id" = Uuid, Path, description = "Event id"), AcceptLanguage),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The event", body = EventView, headers(("ETag" = String, description = "Its version"), ("Vary" = String, description = "`accept-language`: a title the system wrote is in the reader's language"))),
        (status = 304, description = "Unchanged since the `If-None-Match` version", headers(("ETag" = String, description = "Its version"), ("Vary" = String, description = "`accept-language`"))),
        (status = 404, description = "No such case or event, or not one the caller can see"),
    )
)]
#[get("/v1/cases/{id}/storyline/{event_id}")]
pub async fn get_event(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: Token,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (case_id, event_id) = path.into_inner();
    let event_id = event_id.to_string();
    let view = read_on_case(&state, &req, token, case_id, move |conn, viewer, case| {
        // Drafts for everyone but the client, as in the list.
        let drafts_too = viewer.role != Role::Client;
        let row = repo::storyline::find_visible(conn, &case.id, &event_id, drafts_too)?
            .ok_or_else(event_not_found)?;
        Ok(EventView::of(row, viewer.locale))
    })
    .await?;
    Ok(i18n::varies_by_language(versioned_response(
        &req,
        view.version,
        &view,
    )))
}

#[derive(Debug, Deserialize, Serialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "occurred_at": "2026-11-21T14:05:00Z", "kind": "sighting", "title": "Subject enters the golf club",
    "body": "Arrived by taxi, alone.", "latitude": 45.4642, "longitude": 9.19, "place_name": "Golf Club Milano"
}))]
pub struct CreateEvent {
    /// When it happened; defaults to now. From the year 1 to at most a day in the future.
    pub occurred_at: Option<DateTime<Utc>>,
    /// Defaults to `note`; `system` is the system's own.
    #[serde(default = "default_kind")]
    pub kind: EventKind,
    #[serde(deserialize_with = "crate::api::trimmed")]
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub title: String,
    #[validate(length(max = 10000))]
    #[schema(max_length = 10000)]
    pub body: Option<String>,
    /// With `longitude`, or neither.
    #[validate(range(min = -90.0, max = 90.0))]
    #[schema(minimum = -90, maximum = 90)]
    pub latitude: Option<f64>,
    #[validate(range(min = -180.0, max = 180.0))]
    #[schema(minimum = -180, maximum = 180)]
    pub longitude: Option<f64>,
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub place_name: Option<String>,
    /// Attachments of this case (at most 20).
    #[serde(default)]
    #[validate(length(max = 20))]
    #[schema(max_items = 20)]
    pub attachment_ids: Vec<Uuid>,
    /// Agency staff choose (default `published`); agents always write drafts.
    pub status: Option<EventStatus>,
}

fn default_kind() -> EventKind {
    EventKind::Note
}

fn event_not_found() -> ApiError {
    ApiError::NotFound("No such storyline event, or not one you can see.".into())
}

/// 403 for a role that never writes the storyline, 409 while the case's status keeps it shut.
fn check_writable(viewer: &Viewer, case: &CaseRow, agents_too: bool) -> Result<(), ApiError> {
    let allowed = viewer.role == Role::Agency || (agents_too && viewer.role == Role::Agent);
    if !allowed {
        return Err(ApiError::Forbidden(if agents_too {
            "Only the agency and the case's agents write the storyline.".into()
        } else {
            "Only the agency moderates the storyline.".into()
        }));
    }
    let status = case.status();
    let state = workflow::state_of(status);
    let open = state.storyline_open && (viewer.role != Role::Agent || state.agents_write);
    if !open {
        return Err(wrong_state(
            viewer,
            case,
            format!("The storyline takes no changes while the case is `{status}`."),
        ));
    }
    Ok(())
}

/// Position and attachment rules shared by create and update; errors point at body members.
fn check_content(
    conn: &mut DbConnection,
    viewer: &Viewer,
    case_id: &str,
    position: (Option<f64>, Option<f64>),
    attachment_ids: Option<&[Uuid]>,
    occurred_at: Option<DateTime<Utc>>,
    kind: Option<EventKind>,
) -> Result<(), ApiError> {
    let mut errors = Vec::new();
    if position.0.is_some() != position.1.is_some() {
        errors.push(FieldError::new(
            "/longitude",
            "incomplete_position",
            "send latitude and longitude together",
        ));
    }
    if let Some(ids) = attachment_ids {
        errors.extend(check_case_attachments(conn, viewer, case_id, ids)?.1);
    }
    if occurred_at.is_some_and(|t| t > Utc::now() + chrono::Duration::days(1)) {
        errors.push(FieldError::new(
            "/occurred_at",
            "in_the_future",
            "at most a day ahead",
        ));
    }
    // Years before 1 do not store on PostgreSQL, sort backwards as SQLite's text and make
    // cursors this API refuses.
    if occurred_at.is_some_and(|t| t.year() < 1) {
        errors.push(FieldError::new(
            "/occurred_at",
            "out_of_range",
            "from the year 1 on",
        ));
    }
    if kind == Some(EventKind::System) {
        errors.push(FieldError::new(
            "/kind",
            "not_allowed",
            "`system` events are written by the system",
        ));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::validation(errors))
    }
}

/// A published event shows its files to the client (`attachments::share_with_client`).
fn share_if_published(
    conn: &mut DbConnection,
    actor: &Actor,
    row: &EventRow,
) -> Result<(), ApiError> {
    if row.status != EventStatus::Published.as_str() {
        return Ok(());
    }
    let ids: Vec<String> = serde_json::from_str(&row.attachment_ids).unwrap_or_default();
    share_with_client(conn, actor, &row.case_id, &ids)
}

/// The ids as a JSON array, each once, in the order first given.
fn ids_json(ids: &[Uuid]) -> String {
    let mut seen = std::collections::HashSet::new();
    let ids: Vec<String> = ids
        .iter()
        .filter(|id| seen.insert(**id))
        .map(|id| id.to_string())
        .collect();
    json!(ids).to_string()
}

/// Add a storyline event
///
/// Agents on the case write drafts while it is `in_progress`; agency staff write while it is in
/// approval, approved, in progress or suspended, and choose the status (default `published`).
/// Frozen (409) once `completed`, and in every terminal status. Attachments must belong to the
/// case. Accepts `Idempotency-Key`, as buying a service does. Roles: agency, agent (on the
/// case).
#[utoipa::path(
    tag = "storyline",
    operation_id = "create_storyline_event",
    params(("id" = Uuid, Path, description = "Case id"), IdempotencyKey),
    request_body = CreateEvent,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = EventView,
            headers(("ETag" = String, description = "The event's version"),
                    ("Location" = String, description = "The event's URL"))),
        (status = 403, description = "Clients and platform staff do not write the storyline; agents write drafts only"),
        (status = 404, description = "No such case, or not one the caller can see"),
        (status = 409, description = "The storyline is frozen or not open in this status (`wrong_state`)"),
    )
)]
#[post("/v1/cases/{id}/storyline")]
pub async fn create_event(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: Token,
    id: web::Path<Uuid>,
    key: IdempotencyKey,
    body: ValidJson<CreateEvent>,
) -> Result<HttpResponse, ApiError> {
    create_on_case(
        &state,
        &req,
        key,
        body.0,
        Asking::new(token, &req),
        id.into_inner().to_string(),
        create,
    )
    .await
}

/// The event itself, once the caller may see the case and is not replayed an earlier answer.
fn create(
    conn: &mut DbConnection,
    viewer: &Viewer,
    actor: &Actor,
    case: CaseRow,
    input: CreateEvent,
) -> Result<Created<EventView>, ApiError> {
    // The status checked must be the one a racing transition leaves.
    let case = share_locked(conn, viewer, case)?;
    check_writable(viewer, &case, true)?;
    let case_id = case.id.clone();
    if viewer.role == Role::Agent && input.status == Some(EventStatus::Published) {
        return Err(ApiError::Forbidden(
            "Agents write drafts; the agency publishes them.".into(),
        ));
    }
    check_content(
        conn,
        viewer,
        &case_id,
        (input.latitude, input.longitude),
        Some(&input.attachment_ids),
        input.occurred_at,
        Some(input.kind),
    )?;
    let status = match viewer.role {
        Role::Agent => EventStatus::Draft,
        _ => input.status.unwrap_or(EventStatus::Published),
    };
    let now = db::now();
    let row = EventRow {
        id: repo::new_id(),
        case_id: case_id.clone(),
        occurred_at: input.occurred_at.map(db::stored_time).unwrap_or(now),
        kind: input.kind.as_str().to_owned(),
        title: input.title,
        body: input.body,
        latitude: input.latitude,
        longitude: input.longitude,
        place_name: input.place_name,
        attachment_ids: ids_json(&input.attachment_ids),
        author_id: actor.user_id.clone(),
        status: status.as_str().to_owned(),
        version: 1,
        created_at: now,
        updated_at: now,
        title_code: None,
    };
    repo::storyline::insert(conn, &row)?;
    let change = Change::entity("storyline_event", &row.id, Some(&case_id), "create");
    repo::audit::append(
        conn,
        actor,
        change.fields(vec![
            ("title", None, Some(row.title.clone())),
            ("status", None, Some(row.status.clone())),
        ]),
    )?;
    share_if_published(conn, actor, &row)?;
    let view = EventView::of(row, viewer.locale);
    Ok(Created {
        location: Some(format!("/v1/cases/{case_id}/storyline/{}", view.id)),
        version: Some(view.version),
        body: view,
    })
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"title": "Subject leaves the golf club", "latitude": null, "longitude": null}))]
pub struct UpdateEvent {
    pub occurred_at: Option<DateTime<Utc>>,
    pub kind: Option<EventKind>,
    #[serde(default, deserialize_with = "crate::api::trimmed_opt")]
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub title: Option<String>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "nullable")]
    #[validate(length(max = 10000))]
    #[schema(value_type = Option<String>, max_length = 10000)]
    pub body: Option<Option<String>>,
    /// `null` (with `longitude`) removes the position.
    #[serde(default, deserialize_with = "nullable")]
    #[validate(range(min = -90.0, max = 90.0))]
    #[schema(value_type = Option<f64>, minimum = -90, maximum = 90)]
    pub latitude: Option<Option<f64>>,
    #[serde(default, deserialize_with = "nullable")]
    #[validate(range(min = -180.0, max = 180.0))]
    #[schema(value_type = Option<f64>, minimum = -180, maximum = 180)]
    pub longitude: Option<Option<f64>>,
    #[serde(default, deserialize_with = "nullable")]
    #[validate(length(min = 1, max = 200))]
    #[schema(value_type = Option<String>, min_length = 1, max_length = 200)]
    pub place_name: Option<Option<String>>,
    #[validate(length(max = 20))]
    #[schema(max_items = 20)]
    pub attachment_ids: Option<Vec<Uuid>>,
}

/// The event, moderated by the agency: found on a case it may write (404/403/409 otherwise).
/// With `to_change`, 409 `recorded_event` for what the agency may not rewrite: events of kind
/// `system` and those the client's or platform staff's actions wrote (a dispute's, a
/// cancellation's or a failed payment's reason).
fn moderated_event(
    conn: &mut DbConnection,
    viewer: &Viewer,
    case_id: &str,
    event_id: &str,
    to_change: bool,
) -> Result<EventRow, ApiError> {
    // Readers who cannot see drafts must not learn a draft exists.
    let case = find_visible(conn, viewer, case_id)?;
    let event = repo::storyline::find(conn, &case.id, event_id)?.ok_or_else(event_not_found)?;
    if viewer.role == Role::Client && event.status != EventStatus::Published.as_str() {
        return Err(event_not_found());
    }
    check_writable(viewer, &share_locked(conn, viewer, case)?, false)?;
    let recorded = to_change
        && (event.kind == EventKind::System.as_str()
            || matches!(
                repo::users::find(conn, &repo::users::UserScope::All, &event.author_id)?
                    .map(|author| author.role()),
                Some(Role::Client | Role::Platform)
            ));
    if recorded {
        return Err(ApiError::Conflict {
            code: "recorded_event",
            detail: "The system, the client or platform staff wrote this event: it stays as \
                     written."
                .into(),
        });
    }
    Ok(event)
}

/// A versioned edit of an event found it changed: 412 when the caller sent `If-Match`,
/// otherwise 409 `concurrent_update` (or 404 when it was deleted meanwhile).
fn lost_event_race(
    conn: &mut DbConnection,
    case_id: &str,
    event_id: &str,
    if_match: &IfMatch,
) -> ApiError {
    match repo::storyline::find(conn, case_id, event_id) {
        Ok(Some(now)) => if_match.lost_race(now.version, "event"),
        Ok(None) => event_not_found(),
        Err(e) => e.into(),
    }
}

/// Edit a storyline event
///
/// Any member; `null` clears body, position or place name. Honours `If-Match` on the event's
/// version. Frozen (409) once the case is completed. Roles: agency.
#[utoipa::path(
    tag = "storyline",
    operation_id = "update_storyline_event",
    params(
        ("id" = Uuid, Path, description = "Case id"),
        ("event_id" = Uuid, Path, description = "Event id"),
        IfMatch,
    ),
    request_body = UpdateEvent,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Updated", body = EventView, headers(("ETag" = String, description = "The new version"))),
        (status = 403, description = "Only the agency edits the storyline"),
        (status = 404, description = "No such case or event, or not one the caller can see"),
        (status = 409, description = "The storyline is frozen (`wrong_state`), the system, the client or platform staff wrote the event (`recorded_event`), or another change to it committed first (`concurrent_update`, without `If-Match`)"),
        (status = 412, description = "`If-Match` is stale"),
        (status = 422, description = "A member breaks a rule"),
    )
)]
#[patch("/v1/cases/{id}/storyline/{event_id}")]
pub async fn update_event(
    req: HttpRequest,
    if_match: IfMatch,
    state: web::Data<AppState>,
    token: Token,
    path: web::Path<(Uuid, Uuid)>,
    body: ValidJson<UpdateEvent>,
) -> Result<HttpResponse, ApiError> {
    let asking = Asking::new(token, &req);
    let (case_id, event_id) = path.into_inner();
    let (case_id, event_id) = (case_id.to_string(), event_id.to_string());
    let input = body.0;
    let view = db::write(&state.pool, move |conn| {
        let Asked { viewer, actor, .. } = asking.resolve(conn)?;
        let current = moderated_event(conn, &viewer, &case_id, &event_id, true)?;
        if_match.check(current.version)?;
        // The position after the change must still be whole.
        let latitude = input.latitude.unwrap_or(current.latitude);
        let longitude = input.longitude.unwrap_or(current.longitude);
        check_content(
            conn,
            &viewer,
            &case_id,
            (latitude, longitude),
            input.attachment_ids.as_deref(),
            input.occurred_at,
            input.kind,
        )?;
        // A title or kind the agency sets replaces what the system wrote: it reads as written.
        let retitled = input.title.is_some() || input.kind.is_some();
        let changes = EventChanges {
            occurred_at: input.occurred_at.map(db::stored_time),
            kind: input.kind.map(|k| k.as_str().to_owned()),
            title_code: (retitled && current.title_code.is_some()).then_some(None),
            title: input.title,
            body: input.body,
            latitude: input.latitude,
            longitude: input.longitude,
            place_name: input.place_name,
            attachment_ids: input.attachment_ids.as_deref().map(ids_json),
            status: None,
        };
        let show = |v: Option<f64>| v.map(|x| x.to_string());
        let sent = |v: Option<String>| v.map(Some);
        let change = Change::entity("storyline_event", &event_id, Some(&case_id), "update");
        // Body, position and place name can be cleared: `null` is a change to audit too.
        let audit = change.sent_fields(vec![
            (
                "occurred_at",
                Some(current.occurred_at.to_string()),
                sent(changes.occurred_at.map(|t| t.to_string())),
            ),
            (
                "kind",
                Some(current.kind.clone()),
                sent(changes.kind.clone()),
            ),
            (
                "title",
                Some(current.title.clone()),
                sent(changes.title.clone()),
            ),
            ("body", current.body.clone(), changes.body.clone()),
            (
                "latitude",
                show(current.latitude),
                changes.latitude.map(show),
            ),
            (
                "longitude",
                show(current.longitude),
                changes.longitude.map(show),
            ),
            (
                "place_name",
                current.place_name.clone(),
                changes.place_name.clone(),
            ),
            (
                "attachment_ids",
                Some(current.attachment_ids.clone()),
                sent(changes.attachment_ids.clone()),
            ),
        ]);
        if !repo::storyline::update(conn, &event_id, current.version, &changes)? {
            return Err(lost_event_race(conn, &case_id, &event_id, &if_match));
        }
        repo::audit::append(conn, &actor, audit)?;
        let row = repo::storyline::find(conn, &case_id, &event_id)?.ok_or_else(event_not_found)?;
        share_if_published(conn, &actor, &row)?;
        Ok(EventView::of(row, viewer.locale))
    })
    .await?;
    Ok(HttpResponse::Ok()
        .insert_header(("ETag", etag(view.version)))
        .json(view))
}

/// Publish a storyline event
///
/// Makes a draft visible to the client, with its files (publishing a published event changes
/// nothing). Honours `If-Match` on the event's version: a moderator publishes the text they
/// reviewed. Roles: agency.
#[utoipa::path(
    tag = "storyline",
    operation_id = "publish_storyline_event",
    params(
        ("id" = Uuid, Path, description = "Case id"),
        ("event_id" = Uuid, Path, description = "Event id"),
        IfMatch,
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Published", body = EventView, headers(("ETag" = String, description = "The new version"))),
        (status = 403, description = "Only the agency publishes"),
        (status = 404, description = "No such case or event, or not one the caller can see"),
        (status = 409, description = "The storyline is frozen (`wrong_state`)"),
        (status = 412, description = "`If-Match` is stale"),
    )
)]
#[post("/v1/cases/{id}/storyline/{event_id}/publish")]
pub async fn publish_event(
    req: HttpRequest,
    if_match: IfMatch,
    state: web::Data<AppState>,
    token: Token,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let asking = Asking::new(token, &req);
    let (case_id, event_id) = path.into_inner();
    let (case_id, event_id) = (case_id.to_string(), event_id.to_string());
    let view = db::write(&state.pool, move |conn| {
        let Asked { viewer, actor, .. } = asking.resolve(conn)?;
        let current = moderated_event(conn, &viewer, &case_id, &event_id, false)?;
        if_match.check(current.version)?;
        let published = EventStatus::Published.as_str();
        if current.status != published {
            let changes = EventChanges {
                status: Some(published.to_owned()),
                ..EventChanges::default()
            };
            if !repo::storyline::update(conn, &event_id, current.version, &changes)? {
                return Err(lost_event_race(conn, &case_id, &event_id, &if_match));
            }
            let change = Change::entity("storyline_event", &event_id, Some(&case_id), "publish")
                .field("status", Some(current.status), Some(published.to_owned()));
            repo::audit::append(conn, &actor, vec![change])?;
        }
        let row = repo::storyline::find(conn, &case_id, &event_id)?.ok_or_else(event_not_found)?;
        share_if_published(conn, &actor, &row)?;
        Ok(EventView::of(row, viewer.locale))
    })
    .await?;
    Ok(HttpResponse::Ok()
        .insert_header(("ETag", etag(view.version)))
        .json(view))
}

/// Delete a storyline event
///
/// Honours `If-Match` on the event's version. Frozen (409) once the case is completed. Roles:
/// agency.
#[utoipa::path(
    tag = "storyline",
    operation_id = "delete_storyline_event",
    params(
        ("id" = Uuid, Path, description = "Case id"),
        ("event_id" = Uuid, Path, description = "Event id"),
        IfMatch,
    ),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "Only the agency deletes"),
        (status = 404, description = "No such case or event, or not one the caller can see"),
        (status = 409, description = "The storyline is frozen (`wrong_state`), or the system, the client or platform staff wrote the event (`recorded_event`)"),
        (status = 412, description = "`If-Match` is stale"),
    )
)]
#[delete("/v1/cases/{id}/storyline/{event_id}")]
pub async fn delete_event(
    req: HttpRequest,
    if_match: IfMatch,
    state: web::Data<AppState>,
    token: Token,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let asking = Asking::new(token, &req);
    let (case_id, event_id) = path.into_inner();
    let (case_id, event_id) = (case_id.to_string(), event_id.to_string());
    db::write(&state.pool, move |conn| {
        let Asked { viewer, actor, .. } = asking.resolve(conn)?;
        let current = moderated_event(conn, &viewer, &case_id, &event_id, true)?;
        if_match.check(current.version)?;
        // The title the audit row keeps is the one deleted: a change since the read is 409
        // (412 with `If-Match`).
        if !repo::storyline::delete(conn, &event_id, current.version)? {
            return Err(lost_event_race(conn, &case_id, &event_id, &if_match));
        }
        let change = Change::entity("storyline_event", &event_id, Some(&case_id), "delete").field(
            "title",
            Some(current.title),
            None,
        );
        repo::audit::append(conn, &actor, vec![change])?;
        Ok(())
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}
