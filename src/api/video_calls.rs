//! Video call rooms on the configured provider, opened by the client or the agency on a case.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::api::case_access::{Viewer, find_visible, read_on_case, update_locked, wrong_state};
use crate::api::{Asked, Asking, timestamp};
use crate::app::AppState;
use crate::auth::Token;
use crate::db::{self, DbConnection};
use crate::domain::Role;
use crate::errors::ApiError;
use crate::events::{Audience, Event, Notifier};
use crate::http::extract::{Page, PageRequest, Query, page_response};
use crate::http::idempotency::{self, Authorized, Created, IdempotencyKey};
use crate::repo;
use crate::repo::audit::{Actor, Change};
use crate::repo::cases::CaseRow;
use crate::repo::video_calls::VideoCallRow;
use crate::workflow;

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0193a6fa-bbbb-7c2d-8e3f-405162738495",
    "case_id": "0193a6f4-2222-7c2d-8e3f-405162738495",
    "url": "https://meet.example/dossier-q3Kx9vJ2m1LwP0aZbT7sYc4dE6fG8hI0",
    "join_url": "/v1/video-calls/0193a6fa-bbbb-7c2d-8e3f-405162738495/join",
    "active": true,
    "created_by": "0193a6f2-4444-7b51-9d0a-3f1e2a4b5c6d",
    "created_at": "2026-11-22T11:00:00Z",
    "ended_at": null
}))]
pub struct VideoCallView {
    #[schema(format = "uuid")]
    pub id: String,
    #[schema(format = "uuid")]
    pub case_id: String,
    /// The room on the provider; only while `active`, else `null`.
    pub url: Option<String>,
    /// Redirects to the room while active; 410 afterwards.
    pub join_url: String,
    /// The link works: the case has not left the statuses with calls since the room opened.
    pub active: bool,
    #[schema(format = "uuid")]
    pub created_by: String,
    #[serde(serialize_with = "crate::api::rfc3339")]
    pub created_at: DateTime<Utc>,
    /// When the link stopped working for good: the case was completed, rejected or cancelled
    /// (a reopened case opens new rooms); `null` while it works.
    #[serde(serialize_with = "crate::api::rfc3339_opt")]
    pub ended_at: Option<DateTime<Utc>>,
}

impl VideoCallView {
    /// `row` as shown while its case is (`case_active`) or is not in a status with calls. The
    /// status is the second guard: a room its case left without ending it (a node of an older
    /// version completing the case) does not work either.
    fn of(row: VideoCallRow, case_active: bool) -> Self {
        let active = row.ended_at.is_none() && case_active;
        VideoCallView {
            join_url: format!("{}/join", call_url(&row.id)),
            url: active.then_some(row.url),
            active,
            id: row.id,
            case_id: row.case_id,
            created_by: row.created_by,
            created_at: timestamp(row.created_at),
            ended_at: row.ended_at.map(timestamp),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListVideoCallsQuery {
    #[param(minimum = 1, maximum = 100, default = 25)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// The client's calls are between the client and the agency, which mediates for its agents:
/// 403 for agents and platform staff, who neither open, list nor join them.
fn refuse_outsiders(viewer: &Viewer) -> Result<(), ApiError> {
    if !matches!(viewer.role, Role::Client | Role::Agency) {
        return Err(ApiError::Forbidden(
            "Video calls are between the client and the agency.".into(),
        ));
    }
    Ok(())
}

/// List a case's video calls
///
/// Newest first, with keyset pagination. Roles: the client and the agency who can see the
/// case; an agent on it and platform staff get 403.
#[utoipa::path(
    tag = "video-calls",
    operation_id = "list_video_calls",
    params(("id" = Uuid, Path, description = "Case id"), ListVideoCallsQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "One page of rooms", body = Page<VideoCallView>,
            headers(("Link" = String, description = "`<…>; rel=\"next\"` when another page follows"))),
        (status = 403, description = "Agents and platform staff take no part in video calls"),
        (status = 404, description = "No such case, or not one the caller can see"),
    )
)]
#[get("/v1/cases/{id}/video-calls")]
pub async fn list_video_calls(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: Token,
    id: web::Path<Uuid>,
    query: Query<ListVideoCallsQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = PageRequest::new(query.limit, query.cursor.as_deref())?;
    let (rows, case_active, page) =
        read_on_case(&state, &req, token, *id, move |conn, viewer, case| {
            refuse_outsiders(viewer)?;
            let case_active = workflow::state_of(case.status()).video_calls_active;
            let rows =
                repo::video_calls::of_case(conn, &case.id, page.after.as_deref(), page.fetch())?;
            Ok((rows, case_active, page))
        })
        .await?;
    let page = page.page(rows, |r| &r.id, |r| VideoCallView::of(r, case_active));
    Ok(page_response(&req, page))
}

/// A video call's URL, the `Location` of its creation.
fn call_url(id: &str) -> String {
    format!("/v1/video-calls/{id}")
}

/// The call `id` as `viewer` may see it: 404 unless they see its case, 403 for agents and
/// platform staff.
fn visible_call(
    conn: &mut DbConnection,
    viewer: &Viewer,
    id: &str,
) -> Result<VideoCallView, ApiError> {
    let not_found = || ApiError::NotFound("No such video call, or not one you can see.".into());
    let row = repo::video_calls::find(conn, id)?.ok_or_else(not_found)?;
    let case = find_visible(conn, viewer, &row.case_id).map_err(|e| e.not_found_as(not_found))?;
    refuse_outsiders(viewer)?;
    let case_active = workflow::state_of(case.status()).video_calls_active;
    Ok(VideoCallView::of(row, case_active))
}

/// Get a video call
///
/// The room with its state; `url` only while it works. Roles: the client and the agency who
/// can see the case (404 otherwise); an agent on it and platform staff get 403.
#[utoipa::path(
    tag = "video-calls",
    operation_id = "get_video_call",
    params(("id" = Uuid, Path, description = "Video call id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The room", body = VideoCallView),
        (status = 403, description = "Agents and platform staff take no part in video calls"),
        (status = 404, description = "No such call, or not one the caller can see"),
    )
)]
#[get("/v1/video-calls/{id}")]
pub async fn get_video_call(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: Token,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let asking = Asking::new(token, &req);
    let id = id.into_inner().to_string();
    let view = db::read(&state.pool, move |conn| {
        let Asked { viewer, .. } = asking.resolve(conn)?;
        visible_call(conn, &viewer, &id)
    })
    .await?;
    // No `ETag`: never stored (`http::middleware`), as the room's URL must not be.
    Ok(HttpResponse::Ok().json(view))
}

/// Open a video call
///
/// A room on `DOSSIER_VIDEO_BASE_URL` with an unguessable name (192 random bits), while the case
/// is `in_approval`, `approved`, `in_progress` or `suspended` (409 otherwise). Accepts
/// `Idempotency-Key` (with no body, the key alone names the call): a retry is not a second
/// room, and one whose room has ended since (the case was completed, then reopened) is 410
/// `call_ended`. Roles: client, agency.
#[utoipa::path(
    tag = "video-calls",
    operation_id = "create_video_call",
    params(("id" = Uuid, Path, description = "Case id"), IdempotencyKey),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Opened", body = VideoCallView,
            headers(("Location" = String, description = "The call's URL (`join_url` is in the body)"))),
        (status = 403, description = "Only the client and the agency open calls"),
        (status = 404, description = "No such case, or not one the caller can see"),
        (status = 409, description = "The case's status allows no calls (`wrong_state`)"),
        (status = 410, description = "A retry under the `Idempotency-Key` of a room that has ended since (`call_ended`)"),
    )
)]
#[post("/v1/cases/{id}/video-calls")]
pub async fn create_video_call(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: Token,
    id: web::Path<Uuid>,
    key: IdempotencyKey,
) -> Result<HttpResponse, ApiError> {
    let asking = Asking::new(token, &req);
    let case_id = id.into_inner().to_string();
    let base = state.settings.video_base_url.clone();
    let notifier = state.notifier.clone();
    // Every rule is checked before a replay too, and the room it names after it: a replay
    // hands out the room's URL, which the case's leaving the active statuses ends.
    let answer = idempotency::remember(&state, &req, key, (), move |conn| {
        let Asked {
            caller,
            viewer,
            actor,
        } = asking.resolve(conn)?;
        // The status checked must be the one a racing transition leaves; the update lock, as
        // the agency's triggers may change the case on the call's event.
        let case = find_visible(conn, &viewer, &case_id)?;
        let case = update_locked(conn, &viewer, case)?;
        may_open_call(&viewer, &case)?;
        Ok(Authorized {
            user_id: caller.id,
            create: move |conn: &mut DbConnection, ()| {
                open_call(conn, &notifier, &viewer, &actor, &case, &base)
            },
        })
    })
    .await?;
    if answer.replayed {
        // A room never starts again once ended, so reading it after the replay's transaction
        // is no race.
        let first: FirstRoom = answer.body()?;
        let room = db::read(&state.pool, move |conn| {
            Ok(repo::video_calls::find(conn, &first.id)?)
        })
        .await?;
        if room.is_none_or(|room| room.ended_at.is_some()) {
            return Err(call_ended());
        }
    }
    Ok(answer.into_response())
}

/// The room a replayed creation answered with.
#[derive(Deserialize)]
struct FirstRoom {
    id: String,
}

/// 410 for a room that has ended.
fn call_ended() -> ApiError {
    ApiError::Http {
        status: actix_web::http::StatusCode::GONE,
        code: "call_ended",
        detail: "This video call has ended: its case was completed, rejected or cancelled since \
                 it opened."
            .into(),
    }
}

/// 403 for agents and platform staff, 409 while the case's status has calls disabled.
fn may_open_call(viewer: &Viewer, case: &CaseRow) -> Result<(), ApiError> {
    refuse_outsiders(viewer)?;
    let status = case.status();
    if !workflow::state_of(status).video_calls_active {
        return Err(wrong_state(
            viewer,
            case,
            format!("No video calls while the case is `{status}`."),
        ));
    }
    Ok(())
}

/// The room itself, once the caller may open one and is not replayed an earlier answer.
fn open_call(
    conn: &mut DbConnection,
    notifier: &Notifier,
    viewer: &Viewer,
    actor: &Actor,
    case: &CaseRow,
    base: &str,
) -> Result<Created<VideoCallView>, ApiError> {
    let case_id = case.id.clone();
    let room = format!(
        "dossier-{}",
        URL_SAFE_NO_PAD.encode(crate::auth::random_bytes::<24>())
    );
    let row = VideoCallRow {
        id: repo::new_id(),
        case_id: case_id.clone(),
        url: format!("{base}{room}"),
        room,
        created_by: actor.user_id.clone(),
        created_at: db::now(),
        ended_at: None,
    };
    repo::video_calls::insert(conn, &row)?;
    let change = Change::entity("video_call", &row.id, Some(&case_id), "create");
    repo::audit::append(conn, actor, vec![change])?;
    // The other side is told a room is waiting.
    let other = match viewer.role {
        Role::Client => Audience::Agency,
        _ => Audience::Client,
    };
    notifier.notify(
        conn,
        case,
        Event::VideoCallOpened,
        &[other],
        Some(&actor.user_id),
        None,
        None,
    )?;
    let view = VideoCallView::of(row, true);
    Ok(Created {
        location: Some(call_url(&view.id)),
        version: None,
        body: view,
    })
}

/// Join a video call
///
/// 302 to the room until the case leaves the statuses with calls; 410 `call_ended` from then
/// on, also after a reopening (which opens new rooms). Roles: the client and the agency who
/// can see the case (404 otherwise); an agent on it and platform staff get 403.
#[utoipa::path(
    tag = "video-calls",
    operation_id = "join_video_call",
    params(("id" = Uuid, Path, description = "Video call id")),
    security(("bearer" = [])),
    responses(
        (status = 302, description = "To the room", headers(
            ("Location" = String, description = "The room's URL"),
            ("Cache-Control" = String, description = "`no-store`: the room's URL is kept by no cache"),
        )),
        (status = 403, description = "Agents and platform staff take no part in video calls"),
        (status = 404, description = "No such call, or not one the caller can see"),
        (status = 410, description = "The link ended when the case left the statuses where calls work (`call_ended`)"),
    )
)]
#[get("/v1/video-calls/{id}/join")]
pub async fn join_video_call(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: Token,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let asking = Asking::new(token, &req);
    let id = id.into_inner().to_string();
    let room = db::read(&state.pool, move |conn| {
        let Asked { viewer, .. } = asking.resolve(conn)?;
        visible_call(conn, &viewer, &id)
    })
    .await?;
    let Some(url) = room.url else {
        return Err(call_ended());
    };
    Ok(HttpResponse::Found()
        .insert_header((header::LOCATION, url))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish())
}
