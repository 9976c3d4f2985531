//! The bell: in-app notifications, written in the same transaction as the event that causes
//! them, in each recipient's language, with a link to the case.

use std::collections::BTreeSet;

use actix_web::{HttpRequest, HttpResponse, get, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use validator::Validate;

use crate::api::timestamp;
use crate::app::AppState;
use crate::auth::Token;
use crate::config::Settings;
use crate::db::{self, DbConnection};
use crate::domain::{CaseStatus, Locale, Role, TicketStatus, code_enum};
use crate::errors::ApiError;
use crate::http::extract::{Page, PageRequest, Query, ValidJson, page_response};
use crate::i18n;
use crate::repo;
use crate::repo::cases::CaseRow;
use crate::repo::email::OutboxRow;
use crate::repo::notifications::{NotificationRow, Recipient};
use crate::repo::tickets::TicketRow;
use crate::webhooks::WebhookEvent;

code_enum! {
    /// What happened.
    Event {
        StatusChanged = "status_changed",
        MessageReceived = "message_received",
        RequestOpened = "request_opened",
        RequestAnswered = "request_answered",
        VideoCallOpened = "video_call_opened",
        Assigned = "assigned",
        SurveyRequested = "survey_requested",
        /// A support ticket was opened (to platform staff).
        TicketOpened = "ticket_opened",
        /// An SLA clock of the case passed its warning share (to the agency).
        SlaWarning = "sla_warning",
        /// An SLA clock of the case passed its target (to the agency).
        SlaBreached = "sla_breached",
        /// A client bought a service: the case exists (to webhooks and triggers; the agency
        /// hears of it when it is assigned).
        CaseCreated = "case_created",
        /// A message on the case names the user (`mentions`): theirs in place of
        /// `message_received` (the bell's and e-mail's only: webhooks and triggers hear the
        /// message).
        Mentioned = "mentioned",
    }
}

/// Who hears of an event on a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// The case's client.
    Client,
    /// The responsible operator, or every operator of the agency while nobody is assigned.
    Agency,
    /// The agents on the case, while they can see it (or a move makes them, or ends it).
    Agents,
    /// Platform staff.
    Platform,
}

/// Who hears of an event on a support ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TicketAudience {
    /// The user who opened it; for an agency's ticket, its staff once that user cannot log in.
    Requester,
    /// The platform staff member it is assigned to, or all platform staff while nobody is.
    Platform,
}

/// Writes notifications (and, with e-mail on, their outbox mails) inside the event's transaction.
#[derive(Debug, Clone)]
pub struct Notifier {
    email: bool,
    app_link_template: std::sync::Arc<str>,
    ticket_link_template: std::sync::Arc<str>,
}

/// `person` while they can log in; else (or without one) every enabled user of `fallback`'s
/// role and agency, when given.
fn reach_or_all(
    conn: &mut DbConnection,
    person: Option<&String>,
    fallback: Option<(Role, Option<&str>)>,
) -> Result<Vec<Recipient>, ApiError> {
    if let Some(person) = person {
        let found = repo::notifications::recipients(conn, std::slice::from_ref(person))?;
        if !found.is_empty() {
            return Ok(found);
        }
    }
    Ok(match fallback {
        Some((role, agency)) => repo::notifications::active_users(conn, role, agency)?,
        None => Vec::new(),
    })
}

/// Whom an event on a case tells besides its audiences (`extra`), and whom it leaves to a
/// notification of their own (`mentioned`).
#[derive(Debug, Clone, Copy, Default)]
struct Told<'a> {
    extra: &'a [String],
    mentioned: &'a [String],
}

/// What a notification links to.
#[derive(Debug, Clone, Copy)]
enum Subject<'a> {
    Case(&'a CaseRow, Option<CaseStatus>),
    Ticket(&'a TicketRow, Option<TicketStatus>),
}

impl Notifier {
    pub fn new(settings: &Settings) -> Notifier {
        Notifier {
            email: settings.email.is_some(),
            app_link_template: settings.app_link_template.as_str().into(),
            ticket_link_template: settings.ticket_link_template.as_str().into(),
        }
    }

    /// The app's deep link to a case.
    pub fn app_link(&self, case_id: &str) -> String {
        self.app_link_template.replace("{case_id}", case_id)
    }

    /// The app's deep link to a support ticket.
    pub fn ticket_link(&self, ticket_id: &str) -> String {
        self.ticket_link_template.replace("{ticket_id}", ticket_id)
    }

    /// One notification per recipient (the actor excluded), in their own language.
    #[allow(clippy::too_many_arguments)]
    pub fn notify(
        &self,
        conn: &mut DbConnection,
        case: &CaseRow,
        event: Event,
        to: &[Audience],
        actor_id: Option<&str>,
        body: Option<&str>,
        status: Option<CaseStatus>,
    ) -> Result<(), ApiError> {
        self.notify_users(conn, case, event, to, &[], actor_id, body, status)
    }

    /// [`Notifier::notify`], plus these users by id.
    #[allow(clippy::too_many_arguments)]
    pub fn notify_users(
        &self,
        conn: &mut DbConnection,
        case: &CaseRow,
        event: Event,
        to: &[Audience],
        extra: &[String],
        actor_id: Option<&str>,
        body: Option<&str>,
        status: Option<CaseStatus>,
    ) -> Result<(), ApiError> {
        let told = Told {
            extra,
            mentioned: &[],
        };
        self.notify_case(conn, case, event, to, told, actor_id, body, status)
    }

    /// A new message on a case: `message_received` to `to`, and `mentioned` in its place to
    /// the users it mentions (read and checked by the caller).
    pub fn notify_message(
        &self,
        conn: &mut DbConnection,
        case: &CaseRow,
        to: &[Audience],
        mentioned: Vec<Recipient>,
        actor_id: &str,
        body: &str,
    ) -> Result<(), ApiError> {
        let ids: Vec<String> = mentioned.iter().map(|r| r.id.clone()).collect();
        let told = Told {
            extra: &[],
            mentioned: &ids,
        };
        let (actor, body) = (Some(actor_id), Some(body));
        let event = Event::MessageReceived;
        self.notify_case(conn, case, event, to, told, actor, body, None)?;
        let about = Subject::Case(case, None);
        self.deliver(conn, mentioned, about, Event::Mentioned, actor, body, &[])
    }

    /// Several events one write found on a case at once (the SLA crossings of one sync), told
    /// by the rule that found them: every webhook is queued before any trigger runs, so that
    /// what a trigger's own change announces comes after all of them, as in the audit trail.
    pub fn notify_each(
        &self,
        conn: &mut DbConnection,
        case: &CaseRow,
        events: &[(Event, &str)],
        to: &[Audience],
        status: Option<CaseStatus>,
    ) -> Result<(), ApiError> {
        let whats: Vec<_> = events
            .iter()
            .map(|&(event, body)| crate::webhooks::What {
                case,
                event,
                status,
                detail: Some(body),
            })
            .collect();
        for what in &whats {
            crate::webhooks::enqueue(conn, what)?;
        }
        for what in &whats {
            self.announced(conn, what, to, Told::default(), None)?;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn notify_case(
        &self,
        conn: &mut DbConnection,
        case: &CaseRow,
        event: Event,
        to: &[Audience],
        told: Told,
        actor_id: Option<&str>,
        body: Option<&str>,
        status: Option<CaseStatus>,
    ) -> Result<(), ApiError> {
        // The agency's and the platform's webhooks hear of every event on a case, and the
        // agency's triggers run on it.
        let what = crate::webhooks::What {
            case,
            event,
            status,
            detail: body,
        };
        crate::webhooks::enqueue(conn, &what)?;
        self.announced(conn, &what, to, told, actor_id)
    }

    /// An event its webhooks have heard of: the agency's triggers run on it, then its
    /// recipients are told.
    fn announced(
        &self,
        conn: &mut DbConnection,
        what: &crate::webhooks::What,
        to: &[Audience],
        told: Told,
        actor_id: Option<&str>,
    ) -> Result<(), ApiError> {
        let (case, event, status, body) = (what.case, what.event, what.status, what.detail);
        let fired = crate::triggers::fire(conn, self, what)?;
        // Agents stay on a case after it leaves their statuses, but no longer see it: they hear
        // of an event while they see the case as the event found it, or of a move into or out
        // of those statuses (`status`: where it goes; triggers move no status).
        let agents_hear = [Some(case.status()), status]
            .into_iter()
            .flatten()
            .any(|s| crate::workflow::state_of(s).agent_visible);
        // Of a move that takes the case from them, in the bell only: no mail leaves about a case
        // its addressee no longer sees (the mailer would end it unsent).
        let agents_mailed = status.is_none_or(|s| crate::workflow::state_of(s).agent_visible);
        let mut bell_only = Vec::new();
        // Told as the triggers left the case: the operator one assigned hears of the event.
        let case = fired.case.as_ref().unwrap_or(case);
        let mut ids = fired.notify;
        ids.extend_from_slice(told.extra);
        let mut recipients: Vec<Recipient> = Vec::new();
        let mut assignee_wanted = None;
        for audience in to {
            match audience {
                Audience::Client => ids.push(case.client_id.clone()),
                Audience::Agency => match &case.assignee_id {
                    Some(assignee) => {
                        ids.push(assignee.clone());
                        assignee_wanted = Some(assignee);
                    }
                    None => recipients.extend(repo::notifications::active_users(
                        conn,
                        Role::Agency,
                        Some(&case.agency_id),
                    )?),
                },
                Audience::Agents if agents_hear => {
                    let agents = repo::notifications::agents_of(conn, &case.id)?;
                    if !agents_mailed {
                        bell_only.extend(agents.iter().cloned());
                    }
                    ids.extend(agents);
                }
                Audience::Agents => {}
                Audience::Platform => recipients.extend(repo::notifications::active_users(
                    conn,
                    Role::Platform,
                    None,
                )?),
            }
        }
        recipients.extend(repo::notifications::recipients(conn, &ids)?);
        // An assignee who can no longer log in leaves the case's news to the whole agency.
        if let Some(assignee) = assignee_wanted
            && !recipients.iter().any(|r| &r.id == assignee)
        {
            recipients.extend(repo::notifications::active_users(
                conn,
                Role::Agency,
                Some(&case.agency_id),
            )?);
        }
        recipients.retain(|r| !told.mentioned.contains(&r.id));
        self.deliver(
            conn,
            recipients,
            Subject::Case(case, status),
            event,
            actor_id,
            body,
            &bell_only,
        )
    }

    /// One notification per recipient of an event on a support ticket (the actor excluded).
    #[allow(clippy::too_many_arguments)]
    pub fn notify_ticket(
        &self,
        conn: &mut DbConnection,
        ticket: &TicketRow,
        event: Event,
        to: &[TicketAudience],
        extra: &[String],
        actor_id: Option<&str>,
        body: Option<&str>,
        status: Option<TicketStatus>,
    ) -> Result<(), ApiError> {
        // The platform's webhooks hear of every ticket's events, an agency's of its own.
        if let Some(heard) = WebhookEvent::on_ticket(event) {
            let what = crate::webhooks::TicketWhat {
                ticket,
                status,
                detail: body,
            };
            crate::webhooks::enqueue_ticket(conn, heard, &what)?;
        }
        let mut recipients = repo::notifications::recipients(conn, extra)?;
        if to.contains(&TicketAudience::Requester) {
            // An agency's ticket is its staff's: a requester who left hands its news to them.
            let agency = ticket.agency_id.as_deref().map(|a| (Role::Agency, Some(a)));
            recipients.extend(reach_or_all(conn, Some(&ticket.requester_id), agency)?);
        }
        if to.contains(&TicketAudience::Platform) {
            let everyone = Some((Role::Platform, None));
            recipients.extend(reach_or_all(conn, ticket.assignee_id.as_ref(), everyone)?);
        }
        self.deliver(
            conn,
            recipients,
            Subject::Ticket(ticket, status),
            event,
            actor_id,
            body,
            &[],
        )
    }

    /// Writes the notifications (and mails, but to `bell_only`) of `recipients`, each once, the
    /// actor left out.
    #[allow(clippy::too_many_arguments)]
    fn deliver(
        &self,
        conn: &mut DbConnection,
        mut recipients: Vec<Recipient>,
        subject: Subject,
        event: Event,
        actor_id: Option<&str>,
        body: Option<&str>,
        bell_only: &[String],
    ) -> Result<(), ApiError> {
        let mut seen = BTreeSet::new();
        recipients.retain(|r| Some(r.id.as_str()) != actor_id && seen.insert(r.id.clone()));

        let (case_id, ticket_id, about, linked, link) = match subject {
            Subject::Case(case, status) => (
                Some(case.id.clone()),
                None,
                i18n::About::Case {
                    number: &case.number,
                    status,
                },
                i18n::Linked::Case,
                self.app_link(&case.id),
            ),
            Subject::Ticket(ticket, status) => (
                None,
                Some(ticket.id.clone()),
                i18n::About::Ticket {
                    number: &ticket.number,
                    subject: &ticket.subject,
                    status,
                },
                i18n::Linked::Ticket,
                self.ticket_link(&ticket.id),
            ),
        };
        let body = body.map(|b| b.chars().take(500).collect::<String>());
        let now = db::now();
        let mut muted: BTreeSet<String> = if self.email && !recipients.is_empty() {
            let ids: Vec<String> = recipients.iter().map(|r| r.id.clone()).collect();
            repo::email::opted_out(conn, event.as_str(), &ids)?
                .into_iter()
                .collect()
        } else {
            BTreeSet::new()
        };
        muted.extend(bell_only.iter().cloned());
        for recipient in recipients {
            let locale = Locale::from_code(&recipient.locale).unwrap_or(Locale::En);
            let title = i18n::notification_title(event, locale, about);
            if self.email && !muted.contains(&recipient.id) {
                let text = i18n::email_body(
                    locale,
                    &recipient.name,
                    &title,
                    body.as_deref(),
                    linked,
                    &link,
                );
                repo::email::enqueue(
                    conn,
                    &OutboxRow {
                        id: repo::new_id(),
                        user_id: recipient.id.clone(),
                        case_id: case_id.clone(),
                        event: event.as_str().to_owned(),
                        recipient: recipient.email,
                        recipient_name: recipient.name,
                        locale: locale.as_str().to_owned(),
                        subject: title.clone(),
                        body: text,
                        status: repo::email::PENDING.to_owned(),
                        attempts: 0,
                        next_attempt_at: now,
                        last_error: None,
                        created_at: now,
                        sent_at: None,
                    },
                )?;
            }
            crate::live::will_notify([recipient.id.as_str()]);
            repo::notifications::insert(
                conn,
                &NotificationRow {
                    id: repo::new_id(),
                    user_id: recipient.id,
                    case_id: case_id.clone(),
                    event: event.as_str().to_owned(),
                    title,
                    body: body.clone(),
                    created_at: now,
                    read_at: None,
                    ticket_id: ticket_id.clone(),
                },
            )?;
        }
        Ok(())
    }
}

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
    /// `true`: every notification of the caller.
    pub all: Option<bool>,
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
/// `{"ids": [...]}` or `{"all": true}` (exactly one of them, else 422). Roles: any user.
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
    let ids = match (body.0.ids, body.0.all) {
        (Some(ids), None | Some(false)) => {
            Some(ids.into_iter().map(|i| i.to_string()).collect::<Vec<_>>())
        }
        (None, Some(true)) => None,
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
        let updated = repo::notifications::mark_read(conn, &user, ids.as_deref())?;
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
