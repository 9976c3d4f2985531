//! Outbound webhooks (API.md): agency admins subscribe URLs to events on their agency's cases
//! and support tickets, platform admins to events on every agency's cases and on every ticket;
//! each event is posted, signed, and retried
//! (`crate::webhooks`), and the deliveries are listed for the webhook's owner, who may also
//! read, pause, resume, change (its URL, events, secret) and delete it, and retry a dead
//! delivery.

use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, web};
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use validator::Validate;

use crate::api::{Asked, Asking, timestamp};
use crate::app::AppState;
use crate::auth::{AuthUser, Token, random_bytes};
use crate::db::{self, DbConnection};
use crate::domain::{Role, code_enum};
use crate::errors::ApiError;
use crate::http::extract::{
    IfMatch, Page, PageRequest, Query, ValidJson, etag, page_response, versioned_response,
};
use crate::http::idempotency::{self, Authorized, Created, IdempotencyKey};
use crate::repo;
use crate::repo::audit::Change;
use crate::repo::unique_violation_as;
use crate::repo::webhooks::{DeliveryRow, Owner, WebhookChanges, WebhookRow};
use crate::sealing::{self, Sealer};
use crate::webhooks::WebhookEvent;

/// Webhooks an agency (or the platform) may have: each event writes one delivery per webhook.
const MAX_PER_OWNER: usize = 20;

/// Whose webhooks the caller manages: an agency admin their agency's, a platform admin the
/// platform's (or, reading, an agency's with `agency_id`); 403 for everyone else.
fn owner(caller: &AuthUser, agency_id: Option<Uuid>) -> Result<Owner, ApiError> {
    match (caller.role, &caller.agency_id, agency_id) {
        (Role::Agency, Some(own), None) if caller.admin => Ok(Owner::Agency(own.clone())),
        (Role::Platform, _, None) if caller.admin => Ok(Owner::Platform),
        (Role::Platform, _, Some(agency)) if caller.admin => Ok(Owner::Agency(agency.to_string())),
        (Role::Agency, _, Some(_)) if caller.admin => Err(ApiError::Forbidden(
            "`agency_id` is for platform admins; you see your agency's webhooks.".into(),
        )),
        _ => Err(ApiError::Forbidden(
            "Only agency and platform admins manage webhooks.".into(),
        )),
    }
}

/// A webhook as its owner sees it (the secret only once, on creation).
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0193a6f4-7777-7c2d-8e3f-405162738495",
    "agency_id": "0193a6f4-0000-7c2d-8e3f-405162738495",
    "url": "https://crm.rossi.example/hooks/dossier",
    "events": ["status_changed", "sla_breached"],
    "active": true,
    "created_at": "2026-11-24T09:30:00Z",
    "version": 1,
    "old_secret_expires_at": null
}))]
pub struct WebhookView {
    #[schema(format = "uuid")]
    pub id: String,
    /// `null`: the platform's, which hears of every agency's cases.
    #[schema(format = "uuid")]
    pub agency_id: Option<String>,
    pub url: String,
    pub events: Vec<WebhookEvent>,
    pub active: bool,
    #[serde(serialize_with = "crate::api::rfc3339")]
    pub created_at: DateTime<Utc>,
    /// The `ETag`.
    pub version: i64,
    /// Only in the answer to its creation or to a change with `rotate_secret`: the key of each
    /// delivery's `Dossier-Signature`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub secret: Option<String>,
    /// Until when the secret the last rotation replaced signs each delivery beside the current
    /// one (`keep_old_secret_hours`); a time past: it signs no more (the hourly sweep then
    /// forgets the secret); `null`: none is kept.
    #[serde(serialize_with = "crate::api::rfc3339_opt")]
    pub old_secret_expires_at: Option<DateTime<Utc>>,
}

impl TryFrom<WebhookRow> for WebhookView {
    type Error = ApiError;

    fn try_from(row: WebhookRow) -> Result<Self, ApiError> {
        Ok(WebhookView {
            events: serde_json::from_str(&row.events).map_err(ApiError::internal)?,
            id: row.id,
            agency_id: row.agency_id,
            url: row.url,
            active: row.active,
            created_at: timestamp(row.created_at),
            version: row.version,
            secret: None,
            old_secret_expires_at: row.old_secret_expires_at.map(timestamp),
        })
    }
}

#[derive(Debug, Deserialize, Serialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"url": "https://crm.rossi.example/hooks/dossier", "events": ["status_changed", "sla_breached"]}))]
pub struct CreateWebhook {
    /// `https` (development also takes `http`); in production not `localhost` nor an address
    /// that is not public (checked again for the addresses its host name resolves to at each
    /// delivery). No user name or password in it; at most 2 000 bytes. At most 20 webhooks per
    /// owner, one per URL.
    #[validate(length(min = 1, max = 2000))]
    #[schema(min_length = 1, max_length = 2000, format = "uri")]
    pub url: String,
    /// The events to post: on cases (the bell's and `case_created`), and on support tickets
    /// (`ticket_…`, with `ticket_updated` for an edit: an agency's webhooks hear of the
    /// agency's own tickets, the platform's of every ticket).
    #[validate(length(min = 1, max = 20))]
    #[schema(min_items = 1, max_items = 20, value_type = BTreeSet<WebhookEvent>)]
    pub events: Vec<WebhookEvent>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListWebhooksQuery {
    /// Platform admins: this agency's webhooks instead of the platform's.
    pub agency_id: Option<Uuid>,
    #[param(minimum = 1, maximum = 100, default = 25)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// List webhooks
///
/// The caller's webhooks, newest first: an agency admin's agency's, a platform admin's the
/// platform's (or an agency's with `agency_id`). Secrets are never listed. Roles: agency and
/// platform admins.
#[utoipa::path(
    tag = "webhooks",
    operation_id = "list_webhooks",
    params(ListWebhooksQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "One page of webhooks", body = Page<WebhookView>,
            headers(("Link" = String, description = "`<…>; rel=\"next\"` when another page follows"))),
        (status = 403, description = "Only agency and platform admins; `agency_id` is for platform admins"),
    )
)]
#[get("/v1/webhooks")]
pub async fn list_webhooks(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: Token,
    query: Query<ListWebhooksQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = PageRequest::new(query.limit, query.cursor.as_deref())?;
    let agency_id = query.agency_id;
    let (rows, page) = db::read(&state.pool, move |conn| {
        let owner = owner(&token.user(conn)?, agency_id)?;
        let rows = repo::webhooks::list(conn, &owner, page.after.as_deref(), page.fetch())?;
        Ok((rows, page))
    })
    .await?;
    let page = page.try_page::<_, WebhookView>(rows, |r| &r.id)?;
    Ok(page_response(&req, page))
}

/// Create a webhook
///
/// Subscribes a URL to events on the caller's agency's cases and support tickets (a platform
/// admin's: every agency's cases and every ticket). Each event is posted as JSON (`id`,
/// `event`, `occurred_at`, for an event on a case `case` {`id`, `number`, `agency_id`,
/// `status`}, for one on a ticket (`ticket_…`) `ticket` {`id`, `number`, `agency_id`,
/// `case_id`, `status`, `priority`}, and `detail`: the reason of a status change, else its
/// resolution (a case's completion, a ticket's resolving; `null` for a move without either: an automatic
/// close, or the move a message or an assignment made), the account of an SLA warning or breach, or the members a ticket's edit changed
/// (`ticket_updated`: `subject, priority`); never a message's or a ticket's text) with the headers `Dossier-Event`, `Dossier-Delivery` (the
/// delivery's id: deliveries are at least once) and `Dossier-Signature`: `t=<unix
/// seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" keyed with the secret>` (while a rotation
/// keeps the old secret, a second `v1=` keyed with it follows: accept any `v1` that matches).
/// A receiver answering
/// anything but 2xx, or not within `DOSSIER_WEBHOOK_TIMEOUT_SECONDS`, gets the delivery again
/// with exponential backoff, up to `DOSSIER_WEBHOOK_MAX_ATTEMPTS`; redirects are not followed.
/// The secret is in this answer only, and in its replays: accepts `Idempotency-Key`, so a
/// creation whose answer was lost can be retried for its secret within 24 hours (the first
/// answer as it was: a rotation since is not in it); another body under the same key is 422.
/// Roles: agency and platform admins.
#[utoipa::path(
    tag = "webhooks",
    operation_id = "create_webhook",
    request_body = CreateWebhook,
    params(IdempotencyKey),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created, with its secret", body = WebhookView,
            headers(
                ("Location" = String, description = "The webhook's URL"),
                ("ETag" = String, description = "Its version"),
                ("Cache-Control" = String, description = "`no-store`: the answer carries the secret"),
            )),
        (status = 403, description = "Only agency and platform admins"),
        (status = 422, description = "A member breaks a rule: the URL (`invalid_url`, `duplicate_url`, `too_many_webhooks`), an unknown event (`validation_failed`, at its pointer), or a repeated event (`repeated`)"),
    )
)]
#[post("/v1/webhooks")]
pub async fn create_webhook(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: Token,
    key: IdempotencyKey,
    body: ValidJson<CreateWebhook>,
) -> Result<HttpResponse, ApiError> {
    let asking = Asking::new(token, &req);
    let public_https_only = state.settings.webhooks.public_https_only;
    let sealer = state.sealer.clone();
    let mut response = idempotency::create(&state, &req, key, body.0, move |conn| {
        let Asked { caller, actor, .. } = asking.resolve(conn)?;
        let owner = owner(&caller, None)?;
        let user_id = caller.id.clone();
        let create = move |conn: &mut DbConnection, input: CreateWebhook| {
            allowed_url(&input.url, public_https_only)?;
            if free_url(conn, &owner, &input.url)? >= MAX_PER_OWNER {
                return Err(ApiError::invalid_field(
                    "/url",
                    "too_many_webhooks",
                    format!("at most {MAX_PER_OWNER} webhooks each"),
                ));
            }
            let events = checked_events(input.events)?;
            let id = repo::new_id();
            let secret = new_secret();
            let row = WebhookRow {
                secret: sealer.seal(&sealing::webhook_context(&id), &secret)?,
                id,
                agency_id: match owner {
                    Owner::Agency(agency) => Some(agency),
                    Owner::Platform => None,
                },
                url: input.url,
                events: serde_json::to_string(&events).map_err(ApiError::internal)?,
                active: true,
                created_by: caller.id,
                created_at: db::now(),
                version: 1,
                deleted_at: None,
                old_secret: None,
                old_secret_expires_at: None,
            };
            repo::webhooks::insert(conn, &row).map_err(unique_violation_as(duplicate_url))?;
            let change =
                Change::outside_cases("webhook", &row.id, row.agency_id.as_deref(), "create");
            repo::audit::append(
                conn,
                &actor,
                change.fields(vec![
                    ("url", None, Some(row.url.clone())),
                    ("events", None, Some(row.events.clone())),
                ]),
            )?;
            let mut view = WebhookView::try_from(row)?;
            view.secret = Some(secret);
            Ok(Created {
                location: Some(format!("/v1/webhooks/{}", view.id)),
                version: Some(view.version),
                body: view,
            })
        };
        Ok(Authorized { user_id, create })
    })
    .await?;
    // The answer, first or replayed, carries the secret.
    response.headers_mut().insert(
        actix_web::http::header::CACHE_CONTROL,
        actix_web::http::header::HeaderValue::from_static("no-store"),
    );
    Ok(response)
}

/// A new signing key: 32 random bytes, hex, after `whsec_`.
fn new_secret() -> String {
    let hex: String = random_bytes::<32>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("whsec_{hex}")
}

/// The longest webhook URL, in bytes: PostgreSQL's unique index on the URL refuses entries
/// past 2 704 bytes (a 500), which 2 000 characters outside ASCII would pass four times over.
const MAX_URL_BYTES: usize = 2000;

/// Refuses a URL deliveries may not go to, or too long to store.
fn allowed_url(url: &str, public_https_only: bool) -> Result<(), ApiError> {
    if url.len() > MAX_URL_BYTES {
        let problem = "at most 2000 bytes (a character outside ASCII takes two to four)";
        return Err(ApiError::invalid_field("/url", "invalid_url", problem));
    }
    match crate::webhooks::url_problem(url, public_https_only) {
        Some(problem) => Err(ApiError::invalid_field("/url", "invalid_url", problem)),
        None => Ok(()),
    }
}

/// Refuses a URL the owner has a webhook for already; otherwise answers how many webhooks the
/// owner has.
fn free_url(conn: &mut DbConnection, owner: &Owner, url: &str) -> Result<usize, ApiError> {
    // Two creations at once each count before the other inserts (PostgreSQL): one waits.
    let key = match owner {
        Owner::Agency(agency) => format!("webhooks:{agency}"),
        Owner::Platform => "webhooks:platform".to_owned(),
    };
    db::lock_key(conn, &key)?;
    let taken = repo::webhooks::urls(conn, owner)?;
    if taken.iter().any(|t| t == url) {
        return Err(duplicate_url());
    }
    Ok(taken.len())
}

/// Also what the database's unique index answers when two requests race for one URL.
fn duplicate_url() -> ApiError {
    ApiError::invalid_field("/url", "duplicate_url", "this URL has a webhook already")
}

/// The events a webhook hears, sorted, each once.
fn checked_events(mut events: Vec<WebhookEvent>) -> Result<Vec<WebhookEvent>, ApiError> {
    let count = events.len();
    events.sort_by_key(|e| e.as_str());
    events.dedup();
    if events.len() != count {
        return Err(ApiError::invalid_field(
            "/events",
            "repeated",
            "each event at most once",
        ));
    }
    Ok(events)
}

/// The webhook the caller manages: an agency admin's agency's, or any for a platform admin
/// (who may pause a receiver that misbehaves); 404 for anyone else's.
fn managed(conn: &mut DbConnection, caller: &AuthUser, id: &str) -> Result<WebhookRow, ApiError> {
    let found = match owner(caller, None)? {
        Owner::Platform => repo::webhooks::find_any(conn, id)?,
        agency => repo::webhooks::find(conn, &agency, id)?,
    };
    found.ok_or_else(|| ApiError::NotFound("No such webhook of yours.".into()))
}

/// Get a webhook
///
/// Without its secret. Answers 304 when `If-None-Match` names the current version. Roles: the
/// webhook's owner (agency admins of its agency), platform admins (every webhook); 404 for
/// anyone else's.
#[utoipa::path(
    tag = "webhooks",
    operation_id = "get_webhook",
    params(("id" = Uuid, Path, description = "The webhook")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The webhook", body = WebhookView, headers(("ETag" = String, description = "Its version"))),
        (status = 304, description = "Unchanged since the `If-None-Match` version"),
        (status = 403, description = "Only agency and platform admins"),
        (status = 404, description = "No such webhook, or not the caller's"),
    )
)]
#[get("/v1/webhooks/{id}")]
pub async fn get_webhook(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: Token,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner().to_string();
    let row = db::read(&state.pool, move |conn| {
        let caller = token.user(conn)?;
        managed(conn, &caller, &id)
    })
    .await?;
    let view = WebhookView::try_from(row)?;
    Ok(versioned_response(&req, view.version, &view))
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"active": false}))]
pub struct UpdateWebhook {
    /// `false` pauses it: no delivery is written for it, and those still pending end `dead`
    /// (`last_error` `paused`; one being posted at that moment that arrives is `delivered`);
    /// `true` resumes it for the events that follow.
    pub active: Option<bool>,
    /// The events to post from now on (see the creation's).
    #[validate(length(min = 1, max = 20))]
    #[schema(min_items = 1, max_items = 20, value_type = Option<BTreeSet<WebhookEvent>>)]
    pub events: Option<Vec<WebhookEvent>>,
    /// Where to post from now on, pending deliveries included; the rules of a new webhook's.
    #[validate(length(min = 1, max = 2000))]
    #[schema(min_length = 1, max_length = 2000, format = "uri")]
    pub url: Option<String>,
    /// `true`: a new secret signs every delivery posted from now on, pending ones included; the
    /// old one signs no more, unless `keep_old_secret_hours` says otherwise. The new secret is
    /// in this answer only.
    pub rotate_secret: Option<bool>,
    /// With `rotate_secret`: the old secret goes on signing each delivery beside the new one
    /// (a second `v1=` in `Dossier-Signature`) for this many hours, while receivers move to the
    /// new one. A rotation without it drops every old secret at once.
    #[serde(default, deserialize_with = "crate::api::whole_number_opt")]
    #[validate(range(min = 1, max = 168))]
    #[schema(minimum = 1, maximum = 168)]
    pub keep_old_secret_hours: Option<i64>,
}

/// Pause, resume or change a webhook
///
/// `active` pauses (`false`) or resumes (`true`) it; `events` replaces the events it hears;
/// `url` moves it; `rotate_secret` gives it a new secret, in this answer only, and
/// `keep_old_secret_hours` keeps the old one signing beside it for a while (1–168 hours; 422
/// `not_allowed` without `rotate_secret`).
/// Pausing ends its pending deliveries as `dead` (`last_error` `paused`): a receiver that is
/// down is not retried for hours after it was switched off. Honours `If-Match` (412 when
/// stale). Audited (a rotation as `secret` `rotated`, never the secret, and the old secret's
/// `old_secret_expires_at`, old and new, when either is set). Roles: the webhook's
/// owner (agency admins of its agency), platform admins (every webhook); 404 for anyone
/// else's.
#[utoipa::path(
    tag = "webhooks",
    operation_id = "update_webhook",
    params(
        ("id" = Uuid, Path, description = "The webhook"),
        IfMatch,
    ),
    request_body = UpdateWebhook,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The webhook as it is now (with its new secret after `rotate_secret`)", body = WebhookView,
            headers(
                ("ETag" = String, description = "Its version"),
                ("Cache-Control" = String, description = "`no-store`: the answer may carry the secret"),
            )),
        (status = 403, description = "Only agency and platform admins"),
        (status = 404, description = "No such webhook, or not the caller's"),
        (status = 409, description = "Changed by another request meanwhile (`concurrent_update`)"),
        (status = 412, description = "`If-Match` is stale"),
        (status = 422, description = "An event is unknown (`validation_failed`, at its pointer) or repeated (`repeated`); the URL is refused (`invalid_url`) or has a webhook of the owner's already (`duplicate_url`); `keep_old_secret_hours` is out of range (`validation_failed`) or sent without `rotate_secret` (`not_allowed`)"),
    )
)]
#[patch("/v1/webhooks/{id}")]
pub async fn update_webhook(
    req: HttpRequest,
    if_match: IfMatch,
    state: web::Data<AppState>,
    token: Token,
    id: web::Path<Uuid>,
    body: ValidJson<UpdateWebhook>,
) -> Result<HttpResponse, ApiError> {
    let input = body.0;
    let asking = Asking::new(token, &req);
    let id = id.into_inner().to_string();
    let public_https_only = state.settings.webhooks.public_https_only;
    let sealer = state.sealer.clone();
    let view = db::write(&state.pool, move |conn| {
        let Asked { caller, actor, .. } = asking.resolve(conn)?;
        let hook = managed(conn, &caller, &id)?;
        // What is wrong with the body comes before what is stale about it.
        let events = match input.events {
            Some(events) => {
                Some(serde_json::to_string(&checked_events(events)?).map_err(ApiError::internal)?)
            }
            None => None,
        };
        if let Some(url) = &input.url {
            allowed_url(url, public_https_only)?;
        }
        let rotation = match (
            input.rotate_secret == Some(true),
            input.keep_old_secret_hours,
        ) {
            (true, keep_hours) => Some(Rotation::new(&sealer, &hook, keep_hours)?),
            (false, None) => None,
            (false, Some(_)) => {
                return Err(ApiError::invalid_field(
                    "/keep_old_secret_hours",
                    "not_allowed",
                    "only with `rotate_secret` `true`",
                ));
            }
        };
        if_match.check(hook.version)?;
        let url = input.url.filter(|u| *u != hook.url);
        if let Some(url) = &url {
            let owner = hook
                .agency_id
                .clone()
                .map_or(Owner::Platform, Owner::Agency);
            free_url(conn, &owner, url)?;
        }
        let changes = WebhookChanges {
            active: input.active.filter(|a| *a != hook.active),
            events: events.filter(|e| *e != hook.events),
            url,
            secret: rotation.as_ref().map(|r| r.sealed.clone()),
            old_secret: rotation.as_ref().map(|r| r.old.clone().map(|(old, _)| old)),
            old_secret_expires_at: rotation
                .as_ref()
                .map(|r| r.old.as_ref().map(|(_, until)| *until)),
        };
        let change =
            Change::outside_cases("webhook", &hook.id, hook.agency_id.as_deref(), "update");
        let mut audit = change.fields(vec![
            (
                "active",
                Some(hook.active.to_string()),
                changes.active.map(|a| a.to_string()),
            ),
            ("events", Some(hook.events.clone()), changes.events.clone()),
            ("url", Some(hook.url.clone()), changes.url.clone()),
            (
                "secret",
                None,
                changes.secret.as_ref().map(|_| "rotated".to_owned()),
            ),
        ]);
        let text = |t: Option<NaiveDateTime>| t.map(|t| crate::api::rfc3339_text(&timestamp(t)));
        audit.extend(change.sent_fields(vec![(
            "old_secret_expires_at",
            text(hook.old_secret_expires_at),
            changes.old_secret_expires_at.map(text),
        )]));
        if audit.is_empty() {
            return WebhookView::try_from(hook);
        }
        if !repo::webhooks::update(conn, &hook.id, hook.version, &changes)
            .map_err(unique_violation_as(duplicate_url))?
        {
            return Err(if_match.lost_race(hook.version, "webhook"));
        }
        if changes.active == Some(false) {
            repo::webhooks::end_pending(
                conn,
                std::slice::from_ref(&hook.id),
                crate::webhooks::PAUSED,
            )?;
        }
        repo::audit::append(conn, &actor, audit)?;
        let mut view = WebhookView::try_from(managed(conn, &caller, &id)?)?;
        view.secret = rotation.map(|r| r.secret);
        Ok(view)
    })
    .await?;
    Ok(HttpResponse::Ok()
        .insert_header(("ETag", etag(view.version)))
        .insert_header(("Cache-Control", "no-store"))
        .json(view))
}

/// A new secret (for the answer, and sealed for the row), and the old one (as stored) with its
/// end when the rotation keeps it.
struct Rotation {
    secret: String,
    sealed: String,
    old: Option<(String, NaiveDateTime)>,
}

impl Rotation {
    fn new(
        sealer: &Sealer,
        hook: &WebhookRow,
        keep_hours: Option<i64>,
    ) -> Result<Rotation, ApiError> {
        let secret = new_secret();
        Ok(Rotation {
            sealed: sealer.seal(&sealing::webhook_context(&hook.id), &secret)?,
            secret,
            // Both secrets are sealed for the same row, so the old one moves as it is.
            old: keep_hours.map(|hours| {
                let until = db::now() + chrono::Duration::hours(hours);
                (hook.secret.clone(), until)
            }),
        })
    }
}

/// Delete a webhook
///
/// It hears nothing more and is gone from every answer, its deliveries with it; pending ones
/// end unposted (one being posted at that moment may still arrive). Triggers that send to it
/// skip that action from then on (the rule log says so). Its URL is free for a new webhook.
/// Honours `If-Match`. Audited. Roles: the webhook's owner (agency admins of its agency),
/// platform admins (every webhook); 404 for anyone else's.
#[utoipa::path(
    tag = "webhooks",
    operation_id = "delete_webhook",
    params(
        ("id" = Uuid, Path, description = "The webhook"),
        IfMatch,
    ),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "Only agency and platform admins"),
        (status = 404, description = "No such webhook, or not the caller's"),
        (status = 409, description = "Changed by another request meanwhile (`concurrent_update`)"),
        (status = 412, description = "`If-Match` is stale"),
    )
)]
#[delete("/v1/webhooks/{id}")]
pub async fn delete_webhook(
    req: HttpRequest,
    if_match: IfMatch,
    state: web::Data<AppState>,
    token: Token,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let asking = Asking::new(token, &req);
    let id = id.into_inner().to_string();
    db::write(&state.pool, move |conn| {
        let Asked { caller, actor, .. } = asking.resolve(conn)?;
        let hook = managed(conn, &caller, &id)?;
        if_match.check(hook.version)?;
        if !repo::webhooks::delete(conn, &hook.id, hook.version)? {
            return Err(if_match.lost_race(hook.version, "webhook"));
        }
        repo::webhooks::end_pending(
            conn,
            std::slice::from_ref(&hook.id),
            crate::webhooks::DELETED,
        )?;
        let change =
            Change::outside_cases("webhook", &hook.id, hook.agency_id.as_deref(), "delete");
        repo::audit::append(
            conn,
            &actor,
            vec![change.field("url", Some(hook.url), None)],
        )?;
        Ok(())
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

code_enum! {
    /// Where a delivery stands: `pending` (due at `next_attempt_at`), `delivered` (the receiver
    /// answered 2xx) or `dead` (no more attempts: out of them, refused, paused or deleted).
    DeliveryStatus {
        Pending = "pending",
        Delivered = "delivered",
        Dead = "dead",
    }
}

/// One delivery of a webhook.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0193a6fa-bbbb-7c2d-8e3f-405162738495", "event": "status_changed",
    "case_id": "0193a6f4-2222-7c2d-8e3f-405162738495", "status": "pending", "attempts": 2,
    "next_attempt_at": "2026-11-22T16:35:00Z", "last_status": 503,
    "last_error": "the receiver answered 503", "created_at": "2026-11-22T16:30:00Z",
    "delivered_at": null,
    "payload": {"event": "status_changed", "case": {"id": "0193a6f4-2222-7c2d-8e3f-405162738495",
                "status": "in_progress"}}
}))]
pub struct DeliveryView {
    #[schema(format = "uuid")]
    pub id: String,
    pub event: WebhookEvent,
    /// The case of an event on a case; `null` for an event on a ticket (the payload's
    /// `ticket` names it).
    #[schema(format = "uuid")]
    pub case_id: Option<String>,
    pub status: DeliveryStatus,
    pub attempts: i32,
    #[serde(serialize_with = "crate::api::rfc3339_opt")]
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The receiver's last HTTP status; `null` if it never answered.
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    /// The JSON posted.
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    #[serde(serialize_with = "crate::api::rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::api::rfc3339_opt")]
    pub delivered_at: Option<DateTime<Utc>>,
}

impl DeliveryView {
    fn new(row: DeliveryRow) -> DeliveryView {
        let status = DeliveryStatus::from_code(&row.status).unwrap_or(DeliveryStatus::Pending);
        DeliveryView {
            event: WebhookEvent::from_code(&row.event).unwrap_or(WebhookEvent::StatusChanged),
            payload: serde_json::from_str(&row.payload).unwrap_or(serde_json::Value::Null),
            next_attempt_at: (status == DeliveryStatus::Pending)
                .then(|| timestamp(row.next_attempt_at)),
            id: row.id,
            case_id: row.case_id,
            status,
            attempts: row.attempts,
            last_status: row.last_status,
            last_error: row.last_error,
            created_at: timestamp(row.created_at),
            delivered_at: row.delivered_at.map(timestamp),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListDeliveriesQuery {
    /// Only the deliveries in these states (`dead`: those to look into, or retry; repeat the
    /// parameter for several).
    #[serde(default)]
    #[param(style = Form, explode)]
    pub status: Vec<DeliveryStatus>,
    #[param(minimum = 1, maximum = 100, default = 25)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A webhook's deliveries
///
/// Newest first, with each one's status, attempts, the receiver's last answer and the JSON
/// posted; `status` narrows them to some states. Roles: the webhook's owner (agency admins of its
/// agency, platform admins); 404 for anyone else's.
#[utoipa::path(
    tag = "webhooks",
    operation_id = "list_webhook_deliveries",
    params(("id" = Uuid, Path, description = "The webhook"), ListDeliveriesQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "One page of deliveries", body = Page<DeliveryView>,
            headers(("Link" = String, description = "`<…>; rel=\"next\"` when another page follows"))),
        (status = 403, description = "Only agency and platform admins"),
        (status = 404, description = "No such webhook, or not the caller's"),
    )
)]
#[get("/v1/webhooks/{id}/deliveries")]
pub async fn list_webhook_deliveries(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: Token,
    id: web::Path<Uuid>,
    query: Query<ListDeliveriesQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = PageRequest::new(query.limit, query.cursor.as_deref())?;
    let statuses: Vec<&'static str> = query.status.iter().map(|s| s.as_str()).collect();
    let id = id.into_inner().to_string();
    let (rows, page) = db::read(&state.pool, move |conn| {
        let caller = token.user(conn)?;
        // Platform admins read every webhook's deliveries; agency admins their agency's.
        let hook = managed(conn, &caller, &id)?;
        let rows = repo::webhooks::deliveries(
            conn,
            &hook.id,
            &statuses,
            page.after.as_deref(),
            page.fetch(),
        )?;
        Ok((rows, page))
    })
    .await?;
    let page = page.page(rows, |r| &r.id, DeliveryView::new);
    Ok(page_response(&req, page))
}

/// Retry a dead delivery
///
/// Puts it back in the queue with a fresh count of attempts; the worker posts it at once, with
/// the same `Dossier-Delivery` id and payload (signed anew), so `occurred_at` and the case's
/// `status` in it are still those of the event. 409 `not_dead` for a delivery that is pending
/// or delivered, else `webhook_paused` while the webhook is paused (a pause committed just
/// after the retry ends it unposted, as the pause's own), or `agency_deactivated` while its
/// agency is. Audited (entity `webhook_delivery`).
/// Roles: the webhook's owner (agency admins of its agency), platform admins; 404 for anyone
/// else's.
#[utoipa::path(
    tag = "webhooks",
    operation_id = "retry_webhook_delivery",
    params(
        ("id" = Uuid, Path, description = "The webhook"),
        ("delivery_id" = Uuid, Path, description = "One of its deliveries"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Queued again", body = DeliveryView),
        (status = 403, description = "Only agency and platform admins"),
        (status = 404, description = "No such webhook or delivery, or not the caller's"),
        (status = 409, description = "The delivery is not dead (`not_dead`), the webhook is paused (`webhook_paused`), or its agency is deactivated (`agency_deactivated`)"),
    )
)]
#[post("/v1/webhooks/{id}/deliveries/{delivery_id}/retry")]
pub async fn retry_webhook_delivery(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: Token,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let asking = Asking::new(token, &req);
    let (id, delivery_id) = path.into_inner();
    let (id, delivery_id) = (id.to_string(), delivery_id.to_string());
    let row = db::write(&state.pool, move |conn| {
        let Asked { caller, actor, .. } = asking.resolve(conn)?;
        let hook = managed(conn, &caller, &id)?;
        let not_found = || ApiError::NotFound("No such delivery of this webhook.".into());
        let not_dead = |status: &str| ApiError::Conflict {
            code: "not_dead",
            detail: format!("The delivery is `{status}`; only dead deliveries are retried."),
        };
        let delivery =
            repo::webhooks::delivery(conn, &hook.id, &delivery_id)?.ok_or_else(not_found)?;
        if delivery.status != repo::webhooks::DEAD {
            return Err(not_dead(&delivery.status));
        }
        if !hook.active {
            return Err(ApiError::Conflict {
                code: "webhook_paused",
                detail: "The webhook is paused; resume it first.".into(),
            });
        }
        if !crate::webhooks::agency_hears(conn, &hook)? {
            return Err(ApiError::Conflict {
                code: "agency_deactivated",
                detail: "The webhook's agency is deactivated: nothing is posted to it.".into(),
            });
        }
        // Another retry, or the sweep, may have come first since the read.
        if !repo::webhooks::retry_dead(conn, &delivery.id)? {
            let now = repo::webhooks::delivery(conn, &hook.id, &delivery_id)?;
            return Err(now.map_or_else(not_found, |d| not_dead(&d.status)));
        }
        let change = Change::outside_cases(
            "webhook_delivery",
            &delivery.id,
            hook.agency_id.as_deref(),
            "retry",
        )
        .field(
            "status",
            Some(delivery.status),
            Some(repo::webhooks::PENDING.to_owned()),
        );
        repo::audit::append(conn, &actor, vec![change])?;
        crate::live::will_wake_webhooks();
        repo::webhooks::delivery(conn, &hook.id, &delivery_id)?.ok_or_else(not_found)
    })
    .await?;
    Ok(HttpResponse::Ok().json(DeliveryView::new(row)))
}
