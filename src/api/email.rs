//! E-mail as users and operators see it: each user's choice per event type, and the outbox
//! platform admins watch (dead letters, retry).

use actix_web::{HttpRequest, HttpResponse, get, patch, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use validator::Validate;

use crate::api::{Asked, Asking, timestamp};
use crate::app::AppState;
use crate::auth::{AuthUser, Token};
use crate::db;
use crate::domain::code_enum;
use crate::errors::ApiError;
use crate::events::Event;
use crate::http::extract::{Page, PageRequest, Query, ValidJson, page_response};
use crate::repo;
use crate::repo::audit::Change;
use crate::repo::email::OutboxRow;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventChoice {
    pub event: Event,
    /// Whether this event also comes by e-mail (in-app notifications always come).
    pub email: bool,
}

// Its example, every event in order, is built in `openapi::composed_examples`.
#[derive(Debug, Serialize, ToSchema)]
pub struct EmailPreferences {
    /// Whether this server sends e-mail at all (`DOSSIER_SMTP_URL` is set); choices are kept
    /// either way.
    pub email_enabled: bool,
    /// Every event type, in a fixed order; e-mail is on until the user turns it off.
    pub events: Vec<EventChoice>,
}

fn preferences(
    conn: &mut db::DbConnection,
    user_id: &str,
    email_enabled: bool,
) -> Result<EmailPreferences, ApiError> {
    let stored = repo::email::preferences(conn, user_id)?;
    let events = Event::ALL
        .iter()
        .map(|&event| EventChoice {
            event,
            email: stored
                .iter()
                .find(|(code, _)| code == event.as_str())
                .is_none_or(|(_, enabled)| *enabled),
        })
        .collect();
    Ok(EmailPreferences {
        email_enabled,
        events,
    })
}

/// The caller's e-mail choices
///
/// Which notification events also come by e-mail. Roles: any user.
#[utoipa::path(
    tag = "notifications",
    operation_id = "get_email_preferences",
    security(("bearer" = [])),
    responses((status = 200, description = "The choices", body = EmailPreferences))
)]
#[get("/v1/me/email-preferences")]
pub async fn get_email_preferences(
    state: web::Data<AppState>,
    token: Token,
) -> Result<HttpResponse, ApiError> {
    let enabled = state.settings.email.is_some();
    let prefs = db::read(&state.pool, move |conn| {
        let user = token.user(conn)?.id;
        preferences(conn, &user, enabled)
    })
    .await?;
    Ok(HttpResponse::Ok().json(prefs))
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"events": [{"event": "message_received", "email": false}]}))]
pub struct UpdateEmailPreferences {
    /// The events to change; the others keep their choice. Each event at most once.
    #[validate(length(min = 1, max = 20))]
    #[schema(min_items = 1, max_items = 20)]
    pub events: Vec<EventChoice>,
}

/// Change e-mail choices
///
/// Turns e-mail on or off per event type; answers with every choice. Roles: any user.
#[utoipa::path(
    tag = "notifications",
    operation_id = "update_email_preferences",
    request_body = UpdateEmailPreferences,
    security(("bearer" = [])),
    responses((status = 200, description = "The choices now", body = EmailPreferences))
)]
#[patch("/v1/me/email-preferences")]
pub async fn update_email_preferences(
    state: web::Data<AppState>,
    token: Token,
    body: ValidJson<UpdateEmailPreferences>,
) -> Result<HttpResponse, ApiError> {
    let mut choices = body.0.events;
    for (i, choice) in choices.iter().enumerate() {
        if choices[..i].iter().any(|c| c.event == choice.event) {
            return Err(ApiError::invalid_field(
                &format!("/events/{i}/event"),
                "duplicate",
                "each event at most once",
            ));
        }
    }
    // Rows in one order whatever the body's, so two writes of the same user cannot deadlock.
    choices.sort_by_key(|c| c.event.as_str());
    let enabled = state.settings.email.is_some();
    let prefs = db::write(&state.pool, move |conn| {
        let user = token.user(conn)?.id;
        for choice in &choices {
            repo::email::set_preference(conn, &user, choice.event.as_str(), choice.email)?;
        }
        preferences(conn, &user, enabled)
    })
    .await?;
    Ok(HttpResponse::Ok().json(prefs))
}

code_enum! {
    /// Where a mail stands: `pending` (queued or waiting for a retry), `sent` (accepted by the
    /// SMTP server) or `dead` (refused for good, or out of attempts).
    OutboxStatus {
        Pending = "pending",
        Sent = "sent",
        Dead = "dead",
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0193a6fc-dddd-7c2d-8e3f-405162738495",
    "user_id": "0193a6f0-1111-7c2d-8e3f-405162738495",
    "case_id": "0193a6f4-2222-7c2d-8e3f-405162738495",
    "event": "status_changed",
    "recipient": "maria.rossi@example.com",
    "locale": "it",
    "subject": "DOS-2026-000123 — Sospeso",
    "status": "dead",
    "attempts": 8,
    "next_attempt_at": "2026-11-22T17:30:00Z",
    "last_error": "permanent error (550): mailbox unavailable",
    "created_at": "2026-11-22T16:30:00Z",
    "sent_at": null
}))]
pub struct OutboxMail {
    #[schema(format = "uuid")]
    pub id: String,
    #[schema(format = "uuid")]
    pub user_id: String,
    #[schema(format = "uuid")]
    pub case_id: Option<String>,
    pub event: Event,
    pub recipient: String,
    #[schema(value_type = crate::domain::Locale)]
    pub locale: String,
    pub subject: String,
    pub status: OutboxStatus,
    /// Attempts made so far.
    pub attempts: i32,
    /// When a pending mail is tried next.
    #[serde(serialize_with = "crate::api::rfc3339")]
    pub next_attempt_at: DateTime<Utc>,
    /// What the SMTP server (or the connection) said the last time it failed.
    pub last_error: Option<String>,
    #[serde(serialize_with = "crate::api::rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::api::rfc3339_opt")]
    pub sent_at: Option<DateTime<Utc>>,
}

impl From<OutboxRow> for OutboxMail {
    fn from(row: OutboxRow) -> Self {
        OutboxMail {
            event: Event::from_code(&row.event).unwrap_or(Event::StatusChanged),
            status: OutboxStatus::from_code(&row.status).unwrap_or(OutboxStatus::Pending),
            next_attempt_at: timestamp(row.next_attempt_at),
            created_at: timestamp(row.created_at),
            sent_at: row.sent_at.map(timestamp),
            id: row.id,
            user_id: row.user_id,
            case_id: row.case_id,
            recipient: row.recipient,
            locale: row.locale,
            subject: row.subject,
            attempts: row.attempts,
            last_error: row.last_error,
        }
    }
}

fn require_platform_admin(caller: &AuthUser) -> Result<(), ApiError> {
    caller.require(caller.is_platform_admin(), "manage the e-mail outbox")
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListOutboxQuery {
    /// Only mails in these states (`dead`: the dead letters; repeat the parameter for several).
    #[serde(default)]
    #[param(style = Form, explode)]
    pub status: Vec<OutboxStatus>,
    #[param(minimum = 1, maximum = 100, default = 25)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// The e-mail outbox
///
/// Every notification mail, newest first; `status=dead` lists what could not be delivered.
/// Roles: platform admin.
#[utoipa::path(
    tag = "notifications",
    operation_id = "list_outbox",
    params(ListOutboxQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "One page of mails", body = Page<OutboxMail>,
            headers(("Link" = String, description = "`<…>; rel=\"next\"` when another page follows"))),
        (status = 403, description = "Not a platform admin"),
    )
)]
#[get("/v1/emails")]
pub async fn list_outbox(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: Token,
    query: Query<ListOutboxQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = PageRequest::new(query.limit, query.cursor.as_deref())?;
    let statuses: Vec<&'static str> = query.status.iter().map(|s| s.as_str()).collect();
    let (rows, page) = db::read(&state.pool, move |conn| {
        require_platform_admin(&token.user(conn)?)?;
        let rows = repo::email::list(conn, &statuses, page.after.as_deref(), page.fetch())?;
        Ok((rows, page))
    })
    .await?;
    let page = page.page(rows, |r| &r.id, OutboxMail::from);
    Ok(page_response(&req, page))
}

/// Retry a dead mail
///
/// Puts a dead mail back in the queue with a fresh count of attempts; the worker sends it at
/// once. 409 `not_dead` for a mail that is pending or sent. Roles: platform admin.
#[utoipa::path(
    tag = "notifications",
    operation_id = "retry_outbox_mail",
    params(("id" = Uuid, Path, description = "Mail id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Queued again", body = OutboxMail),
        (status = 403, description = "Not a platform admin"),
        (status = 404, description = "No such mail"),
        (status = 409, description = "The mail is not dead"),
    )
)]
#[post("/v1/emails/{id}/retry")]
pub async fn retry_outbox_mail(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: Token,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let asking = Asking::new(token, &req);
    let id = path.into_inner().to_string();
    let mail = db::write(&state.pool, move |conn| {
        let Asked { caller, actor, .. } = asking.resolve(conn)?;
        require_platform_admin(&caller)?;
        let current = repo::email::find(conn, &id)?.ok_or_else(mail_not_found)?;
        if !repo::email::retry_dead(conn, &id)? {
            return Err(ApiError::Conflict {
                code: "not_dead",
                detail: format!(
                    "The mail is `{}`; only dead mails are retried.",
                    current.status
                ),
            });
        }
        // The platform's own work, whatever case the mail was about: not in that case's trail,
        // nor read by its agency.
        let change = Change::outside_cases("email", &id, None, "retry").field(
            "status",
            Some(current.status),
            Some(OutboxStatus::Pending.as_str().to_owned()),
        );
        repo::audit::append(conn, &actor, vec![change])?;
        repo::email::find(conn, &id)?.ok_or_else(mail_not_found)
    })
    .await?;
    Ok(HttpResponse::Ok().json(OutboxMail::from(mail)))
}

fn mail_not_found() -> ApiError {
    ApiError::NotFound("No such mail.".into())
}
