//! The bell: a user's in-app notifications, their unread count and their live stream. They are
//! written by `events::Notifier` in the transaction of the event that causes them.

use std::collections::BTreeSet;

use actix_web::{HttpRequest, HttpResponse, get, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use validator::Validate;

use crate::api::timestamp;
use crate::app::AppState;
use crate::auth::Token;
use crate::db;
use crate::errors::ApiError;
use crate::events::{Event, Notifier};
use crate::http::extract::{Page, PageRequest, Query, ValidJson, page_response};
use crate::repo;
use crate::repo::notifications::{Marked, NotificationRow};

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0193a6fb-cccc-7c2d-8e3f-405162738495",
    "event": "status_changed",
    "title": "DOS-2026-000123 — Sospeso",
    "body": "Waiting for the client's documents",
    "case_id": "0193a6f4-2222-7c2d-8e3f-405162738495",
    "ticket_id": null,
    "link": "/v1/cases/0193a6f4-2222-7c2d-8e3f-405162738495",
    "app_link": "dossier://cases/0193a6f4-2222-7c2d-8e3f-405162738495",
    "created_at": "2026-11-22T16:30:00Z",
    "read": false
}))]
pub struct NotificationView {
    #[schema(format = "uuid")]
    pub id: String,
    pub event: Event,
    /// In the recipient's language.
    pub title: String,
    /// The reason, the message's first 500 characters, the request…
    pub body: Option<String>,
    #[schema(format = "uuid")]
    pub case_id: Option<String>,
    /// The support ticket it is about, if it is about one.
    #[schema(format = "uuid")]
    pub ticket_id: Option<String>,
    /// The case's or ticket's API path.
    pub link: Option<String>,
    /// The app's deep link to the case (`DOSSIER_APP_LINK_TEMPLATE`) or ticket
    /// (`DOSSIER_APP_TICKET_LINK_TEMPLATE`).
    pub app_link: Option<String>,
    #[serde(serialize_with = "crate::api::rfc3339")]
    pub created_at: DateTime<Utc>,
    pub read: bool,
}

fn view(row: NotificationRow, notifier: &Notifier) -> NotificationView {
    let (link, app_link) = match (&row.case_id, &row.ticket_id) {
        (Some(c), _) => (Some(format!("/v1/cases/{c}")), Some(notifier.app_link(c))),
        (None, Some(t)) => (
            Some(format!("/v1/tickets/{t}")),
            Some(notifier.ticket_link(t)),
        ),
        (None, None) => (None, None),
    };
    NotificationView {
        link,
        app_link,
        ticket_id: row.ticket_id.clone(),
        event: Event::from_code(&row.event).unwrap_or(Event::StatusChanged),
        read: row.read_at.is_some(),
        id: row.id,
        title: row.title,
        body: row.body,
        case_id: row.case_id,
        created_at: timestamp(row.created_at),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListNotificationsQuery {
    /// `true`: unread ones only.
    pub unread: Option<bool>,
    #[param(minimum = 1, maximum = 100, default = 25)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// The caller's notifications
///
/// Newest first. Roles: any user.
#[utoipa::path(
    tag = "notifications",
    operation_id = "list_notifications",
    params(ListNotificationsQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "One page of notifications", body = Page<NotificationView>,
            headers(("Link" = String, description = "`<…>; rel=\"next\"` when another page follows"))),
    )
)]
#[get("/v1/notifications")]
pub async fn list_notifications(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: Token,
    query: Query<ListNotificationsQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = PageRequest::new(query.limit, query.cursor.as_deref())?;
    let unread = query.unread.unwrap_or(false);
    let (rows, page) = db::read(&state.pool, move |conn| {
        let user = token.user(conn)?.id;
        let rows =
            repo::notifications::list(conn, &user, unread, page.after.as_deref(), page.fetch())?;
        Ok((rows, page))
    })
    .await?;
    let page = page.page(rows, |r| &r.id, |r| view(r, &state.notifier));
    Ok(page_response(&req, page))
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"count": 3}))]
pub struct UnreadCount {
    pub count: i64,
}

/// How many notifications are unread
///
/// For the bell's badge. Roles: any user.
#[utoipa::path(
    tag = "notifications",
    operation_id = "count_unread_notifications",
    security(("bearer" = [])),
    responses((status = 200, description = "The count", body = UnreadCount))
)]
#[get("/v1/notifications/unread-count")]
pub async fn unread_count(
    state: web::Data<AppState>,
    token: Token,
) -> Result<HttpResponse, ApiError> {
    let count = db::read(&state.pool, move |conn| {
        let user = token.user(conn)?.id;
        Ok(repo::notifications::unread_count(conn, &user)?)
    })
    .await?;
    Ok(HttpResponse::Ok().json(UnreadCount { count }))
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"ids": ["0193a6fb-cccc-7c2d-8e3f-405162738495"]}))]
pub struct MarkNotificationsRead {
    /// These notifications (at most 100); ids that are not the caller's change nothing.
    #[validate(length(min = 1, max = 100))]
    #[schema(min_items = 1, max_items = 100)]
    pub ids: Option<Vec<uuid::Uuid>>,
    /// `true`: every notification of the caller, up to `up_to` when sent.
    pub all: Option<bool>,
    /// With `all`: the newest notification the user has seen (as listed or streamed; one of
    /// theirs, else 422 `not_found`); those written after it stay unread, so "mark all read"
    /// does not hide what arrived since. Ids follow the order notifications are written in; on
    /// PostgreSQL one written in the same instant may commit a moment after, and be marked with
    /// it.
    pub up_to: Option<uuid::Uuid>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"updated": 1, "unread": 4}))]
pub struct MarkedRead {
    /// How many went from unread to read.
    pub updated: usize,
    /// Unread notifications left.
    pub unread: i64,
}

/// Mark notifications read
///
/// `{"ids": [...]}` or `{"all": true}` (exactly one of them, else 422); `up_to` with `all`
/// leaves unread what arrived after the newest notification the user has seen (one of theirs;
/// 422 with `ids`). Roles: any user.
#[utoipa::path(
    tag = "notifications",
    operation_id = "mark_notifications_read",
    request_body = MarkNotificationsRead,
    security(("bearer" = [])),
    responses((status = 200, description = "Marked", body = MarkedRead))
)]
#[post("/v1/notifications/read")]
pub async fn mark_notifications_read(
    state: web::Data<AppState>,
    token: Token,
    body: ValidJson<MarkNotificationsRead>,
) -> Result<HttpResponse, ApiError> {
    let input = body.0;
    let which = match (input.ids, input.all) {
        (Some(_), _) if input.up_to.is_some() => {
            return Err(ApiError::invalid_field(
                "/up_to",
                "not_allowed",
                "`up_to` goes with `\"all\": true`",
            ));
        }
        (Some(ids), None | Some(false)) => {
            Marked::These(ids.into_iter().map(|i| i.to_string()).collect())
        }
        (None, Some(true)) => Marked::All {
            up_to: input.up_to.map(|id| id.to_string()),
        },
        _ => {
            return Err(ApiError::invalid_field(
                "/ids",
                "one_of",
                "send `ids` or `\"all\": true`",
            ));
        }
    };
    let marked = db::write(&state.pool, move |conn| {
        let user = token.user(conn)?.id;
        if let Marked::All { up_to: Some(last) } = &which
            && !repo::notifications::is_theirs(conn, &user, last)?
        {
            return Err(ApiError::invalid_field(
                "/up_to",
                "not_found",
                "not one of your notifications",
            ));
        }
        let updated = repo::notifications::mark_read(conn, &user, &which)?;
        let unread = repo::notifications::unread_count(conn, &user)?;
        Ok(MarkedRead { updated, unread })
    })
    .await?;
    Ok(HttpResponse::Ok().json(marked))
}

/// One Server-Sent Event for a notification.
fn sse_event(row: NotificationRow, notifier: &Notifier) -> String {
    let id = row.id.clone();
    let data = serde_json::to_string(&view(row, notifier)).unwrap_or_default();
    sse_frame(&id, &data)
}

/// The frame of a notification `data` (its JSON) on the stream (also the spec's example).
pub fn sse_frame(id: &str, data: &str) -> String {
    format!("id: {id}\nevent: notification\ndata: {data}\n\n")
}

/// What an idle stream sends every heartbeat: a comment, which clients ignore.
pub const HEARTBEAT: &str = ": heartbeat\n\n";

/// What an open stream remembers between events.
/// How far before the newest notification a stream has sent its next read starts again.
const LOOKBACK_MS: u64 = 10_000;

/// What a stream has sent, for its next read. Notification ids are UUIDv7s taken when a write
/// inserts its rows, and on PostgreSQL a write that took its ids first may commit after a later
/// one: a stream that read only after the newest id it sent would never send the earlier one.
/// So each read starts [`LOOKBACK_MS`] before that newest id and skips what was sent already.
struct Sent {
    /// Where the stream started (`Last-Event-ID`, or the newest at opening).
    floor: Option<String>,
    /// The ids within the look-back of the newest that are not to be sent (again): those sent,
    /// and those up to the floor that existed when the stream opened.
    recent: BTreeSet<String>,
}

impl Sent {
    /// Where the next read starts (after, not at): the look-back before the newest id known.
    fn read_after(&self) -> Option<String> {
        let newest = self.recent.last().max(self.floor.as_ref())?;
        v7_before(newest, LOOKBACK_MS)
    }

    fn record(&mut self, id: &str) {
        self.recent.insert(id.to_owned());
        if let Some(bound) = self.read_after() {
            self.recent = self.recent.split_off(&bound);
        }
    }
}

/// The smallest UUIDv7 (as text) of the millisecond `ms` before the one `id` was made in.
fn v7_before(id: &str, ms: u64) -> Option<String> {
    let hex: String = id.chars().filter(|c| *c != '-').take(12).collect();
    let at = u64::from_str_radix(&hex, 16).ok()?.saturating_sub(ms);
    Some(format!(
        "{:08x}-{:04x}-0000-0000-000000000000",
        at >> 16,
        at & 0xffff
    ))
}

struct Stream {
    state: web::Data<AppState>,
    /// Checked again at every read: the stream ends with the token or the user's access.
    token: Token,
    sent: Sent,
    pending: std::collections::VecDeque<String>,
    /// Wakes the stream when its user is notified.
    listener: crate::live::Listener,
    /// When the next heartbeat is due: after `sse_heartbeat` of silence on this stream.
    next_beat: tokio::time::Instant,
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.state.metrics.live_streams_add(-1);
    }
}

/// The live stream
///
/// Server-Sent Events: each new notification of the caller as `event: notification` with the
/// notification as JSON `data` and its id as the event `id`, pushed as soon as its transaction
/// commits; a `: heartbeat` comment when idle (every 15 s by default). The stream ends when the
/// access token expires or the user loses access (deactivated, or their agency, or their
/// sessions ended: logged out everywhere, a password change), at the latest
/// by the next heartbeat; reconnect with a fresh token and `Last-Event-ID` to receive what was
/// missed. A user holds at most `DOSSIER_MAX_STREAMS_PER_USER` (default 5) streams at once; one
/// more is 429, with `Retry-After` the heartbeat interval (by when a stream whose client left
/// has ended). Roles: any user.
#[utoipa::path(
    tag = "notifications",
    operation_id = "stream_notifications",
    params(("Last-Event-ID" = Option<String>, Header, description = "The last event id received; the stream resumes after it")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A `text/event-stream` that lasts until the access token expires or the user loses access", content_type = "text/event-stream", body = String),
        (status = 429, description = "The user already holds `DOSSIER_MAX_STREAMS_PER_USER` open streams", headers(("Retry-After" = String, description = "Seconds: the heartbeat interval"))),
    )
)]
#[get("/v1/notifications/stream")]
pub async fn stream_notifications(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: Token,
) -> Result<HttpResponse, ApiError> {
    let resume = req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| uuid::Uuid::parse_str(v.trim()).ok())
        .map(|id| id.to_string());
    // Listen before reading the starting point, so no notification falls between the two. A
    // stream whose client went away is noticed at its next heartbeat at the latest: retry then.
    let heartbeat = state.settings.sse_heartbeat;
    let listener = crate::live::listen(token.user_id(), state.settings.max_streams_per_user)
        .ok_or(ApiError::TooManyRequests {
            retry_after: heartbeat.as_secs().max(1),
        })?;
    let caller = token.clone();
    let sent = db::read(&state.pool, move |conn| {
        let user = caller.user(conn)?;
        let resumed = resume.is_some();
        let floor = match resume {
            Some(id) => Some(id),
            None => repo::notifications::newest_id(conn, &user.id)?,
        };
        // A new stream: what already exists up to the floor is not its to send; what commits
        // there later is. A resumed one: the client had the floor, but not necessarily what
        // committed late below it, perhaps after the old stream ended; everything in the
        // look-back but the floor is sent again (at least once).
        let window = floor
            .as_deref()
            .and_then(|f| Some((f, v7_before(f, LOOKBACK_MS)?)));
        let recent = match window {
            Some((floor, _)) if resumed => BTreeSet::from([floor.to_owned()]),
            Some((floor, after)) => {
                repo::notifications::ids_between(conn, &user.id, &after, floor)?
                    .into_iter()
                    .collect()
            }
            None => BTreeSet::new(),
        };
        Ok(Sent { floor, recent })
    })
    .await?;
    state.metrics.live_streams_add(1);
    let start = Stream {
        state: state.clone(),
        token,
        sent,
        pending: Default::default(),
        listener,
        next_beat: tokio::time::Instant::now() + heartbeat,
    };
    let events = futures_util::stream::unfold(start, move |mut s| async move {
        loop {
            // Checked before each event too: what was read before the expiry stays unsent.
            if s.token.expired() {
                return None;
            }
            if let Some(event) = s.pending.pop_front() {
                s.next_beat = tokio::time::Instant::now() + heartbeat;
                return Some((Ok::<_, actix_web::Error>(web::Bytes::from(event)), s));
            }
            let (token, after) = (s.token.clone(), s.sent.read_after());
            let sent = s.sent.recent.clone();
            s.state.metrics.live_stream_read();
            let rows = db::read(&s.state.pool, move |conn| {
                let user = token.user(conn)?;
                let mut after = after;
                // Pages of rows already sent (all within the look-back) are stepped over.
                loop {
                    let page = repo::notifications::since(conn, &user.id, after.as_deref(), 100)?;
                    let full = page.len() == 100;
                    after = page.last().map(|r| r.id.clone()).or(after);
                    let fresh: Vec<_> =
                        page.into_iter().filter(|r| !sent.contains(&r.id)).collect();
                    if !fresh.is_empty() || !full {
                        return Ok(fresh);
                    }
                }
            })
            .await;
            match rows {
                Ok(rows) if !rows.is_empty() => {
                    for row in rows {
                        s.sent.record(&row.id);
                        s.pending.push_back(sse_event(row, &s.state.notifier));
                    }
                    continue;
                }
                Err(ApiError::Unauthorized { .. }) => return None,
                // A database hiccup is retried at the next notification or heartbeat.
                Ok(_) | Err(_) => {}
            }
            tokio::select! {
                () = s.listener.notified() => {}
                _ = tokio::time::sleep_until(s.next_beat) => {
                    s.next_beat = tokio::time::Instant::now() + heartbeat;
                    return Some((Ok(web::Bytes::from_static(HEARTBEAT.as_bytes())), s));
                }
            }
        }
    });
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-cache"))
        .insert_header(("x-accel-buffering", "no"))
        .streaming(events))
}
