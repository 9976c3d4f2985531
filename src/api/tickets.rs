//! Support tickets (DESIGN.md): clients and agencies ask the platform for help, optionally
//! about a case they can see; platform staff work them in queues, take and delegate them,
//! answer, and resolve them. A client's tickets are theirs alone; an agency's are shared by its
//! staff; agents have none. The lifecycle is data in `ticket_workflow`.

use std::collections::HashMap;

use actix_web::{HttpRequest, HttpResponse, get, patch, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use validator::Validate;

use crate::api::case_access::{Viewer, visible_case_id};
use crate::api::cases::{AssigneeKeyword, AssigneeParam, PersonView, SlaSummary};
use crate::api::{Asked, Asking, timestamp};
use crate::app::AppState;
use crate::auth::{AuthUser, Token};
use crate::db::{self, DbConnection};
use crate::domain::{Locale, Priority, Role, TicketAction, TicketParty, TicketStatus};
use crate::errors::{AllowedActions, ApiError};
use crate::events::{Event, Notifier, TicketAudience};
use crate::http::extract::{
    IfMatch, Page, PageRequest, Query, ValidJson, etag, page_response, versioned_response,
};
use crate::http::idempotency::{self, Authorized, Created, IdempotencyKey};
use crate::i18n::{self, AcceptLanguage};
use crate::repo;
use crate::repo::audit::{Actor, Change};
use crate::repo::tickets::{TicketChanges, TicketFilter, TicketRow, TicketScope};
use crate::sla::{SlaState, Subject};
use crate::ticket_workflow::{self, TicketAllowedAction, WORKED};
use crate::webhooks::WebhookEvent;
use crate::workflow::Input;

pub mod assignment;
pub mod attachments;
pub mod messages;
pub mod transitions;

#[derive(Debug, Serialize, ToSchema)]
pub struct TicketResolution {
    /// The kind of outcome, e.g. `answered`, `fixed`, `refunded`, `not_reproducible`.
    #[serde(rename = "type")]
    pub resolution_type: String,
    pub text: String,
    #[serde(serialize_with = "crate::api::rfc3339")]
    pub resolved_at: DateTime<Utc>,
}

/// A support ticket, as its requester's side and platform staff see it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0193a6fc-dddd-7c2d-8e3f-405162738495",
    "number": "TKT-2026-000045",
    "subject": "The agency stopped answering",
    "description": "No answer on DOS-2026-000123 for a week, though the case is in progress.",
    "status": "open",
    "status_label": "Open",
    "priority": "normal",
    "sla": {"state": "on_track", "breached": false, "due_at": "2026-11-24T17:00:00Z"},
    "requester": {"id": "0193a6f2-2c4e-7b51-9d0a-3f1e2a4b5c6d", "name": "Ana Client"},
    "agency_id": null,
    "case_id": "0193a6f4-2222-7c2d-8e3f-405162738495",
    "assignee": {"id": "0193a6f1-0000-7b51-9d0a-3f1e2a4b5c6d", "name": "Paula Platform"},
    "delegated_by": null,
    "resolution": null,
    "allowed_actions": [
        {"action": "wait_on_requester", "label": "Wait for the requester", "requires": []},
        {"action": "resolve", "label": "Resolve", "requires": ["resolution_type", "resolution"]}
    ],
    "created_at": "2026-11-24T09:00:00Z",
    "updated_at": "2026-11-24T09:30:00Z",
    "version": 3
}))]
pub struct TicketView {
    #[schema(format = "uuid")]
    pub id: String,
    /// Human, for people to quote: `TKT-<year>-<6 or more digits>`, counted across the platform.
    pub number: String,
    pub subject: String,
    pub description: String,
    pub status: TicketStatus,
    /// In the language chosen by `Accept-Language`.
    pub status_label: &'static str,
    pub priority: Priority,
    /// Its SLA at a glance (`GET /v1/tickets/{id}/sla` has each clock); `null` when it has no
    /// clocks (no platform default policy when it was opened, or opened before tickets had
    /// SLA clocks).
    pub sla: Option<SlaSummary>,
    /// Who opened it.
    pub requester: PersonView,
    /// The agency whose staff share the ticket, for an agency's ticket.
    #[schema(format = "uuid")]
    pub agency_id: Option<String>,
    /// The case it is about, if any.
    #[schema(format = "uuid")]
    pub case_id: Option<String>,
    /// The platform staff member working it.
    pub assignee: Option<PersonView>,
    /// Who handed it to its assignee (the "delegated" queue), until someone takes it.
    #[schema(format = "uuid")]
    pub delegated_by: Option<String>,
    /// Set while `resolved` or `closed` after a resolution.
    pub resolution: Option<TicketResolution>,
    /// What the caller may do now.
    pub allowed_actions: Vec<TicketAllowedAction>,
    #[serde(serialize_with = "crate::api::rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::api::rfc3339")]
    pub updated_at: DateTime<Utc>,
    /// Also the `ETag`.
    pub version: i64,
}

/// Who the caller is to tickets: what they see, on which side, in which language.
struct TicketViewer {
    scope: TicketScope,
    party: TicketParty,
    locale: Locale,
    viewer: Viewer,
    actor: Actor,
}

/// 403 for agents, who have no tickets.
fn scope_of(caller: &AuthUser) -> Result<TicketScope, ApiError> {
    TicketScope::of(caller.role, &caller.id, caller.agency_id.as_deref())
        .ok_or_else(|| ApiError::Forbidden("Agents have no support tickets.".into()))
}

/// The ticket if `caller` may see it: 404 otherwise, as for one that does not exist; 403 for
/// agents.
pub fn find_visible(
    conn: &mut DbConnection,
    caller: &AuthUser,
    id: &str,
) -> Result<TicketRow, ApiError> {
    repo::tickets::find(conn, &scope_of(caller)?, id)?.ok_or_else(ticket_not_found)
}

impl TicketViewer {
    fn of(asked: Asked) -> Result<TicketViewer, ApiError> {
        let Asked {
            caller,
            viewer,
            actor,
        } = asked;
        let scope = scope_of(&caller)?;
        Ok(TicketViewer {
            scope,
            party: party_of(&caller),
            locale: viewer.locale,
            viewer,
            actor,
        })
    }

    fn find(&self, conn: &mut DbConnection, id: &str) -> Result<TicketRow, ApiError> {
        repo::tickets::find(conn, &self.scope, id)?.ok_or_else(ticket_not_found)
    }

    /// The ticket as the caller sees it, names looked up.
    fn view(&self, conn: &mut DbConnection, row: TicketRow) -> Result<TicketView, ApiError> {
        let names = names_of(conn, std::slice::from_ref(&row))?;
        Ok(self.render(row, &names))
    }

    fn render(&self, row: TicketRow, names: &HashMap<String, String>) -> TicketView {
        let person = |id: &str| PersonView {
            id: id.to_owned(),
            name: names.get(id).cloned().unwrap_or_default(),
        };
        let (status, priority) = (row.status(), row.priority());
        let resolution = match (row.resolution_type, row.resolution, row.resolved_at) {
            (Some(resolution_type), Some(text), Some(at)) => Some(TicketResolution {
                resolution_type,
                text,
                resolved_at: timestamp(at),
            }),
            _ => None,
        };
        TicketView {
            status,
            status_label: i18n::ticket_status_label(status, self.locale),
            priority,
            sla: SlaSummary::of(row.sla_state.as_deref(), row.sla_due_at),
            requester: person(&row.requester_id),
            assignee: row.assignee_id.as_deref().map(person),
            allowed_actions: TicketAllowedAction::list(self.party, status, self.locale),
            resolution,
            id: row.id,
            number: row.number,
            subject: row.subject,
            description: row.description,
            agency_id: row.agency_id,
            case_id: row.case_id,
            delegated_by: row.delegated_by,
            created_at: timestamp(row.created_at),
            updated_at: timestamp(row.updated_at),
            version: row.version,
        }
    }

    /// The ticket's status while it is worked (`new`, `open`, `waiting_on_requester`: the only
    /// statuses that take messages, files, edits and assignment); 409 `wrong_state` otherwise,
    /// as "A `<status>` ticket `<refusal>`.".
    fn require_worked(&self, ticket: &TicketRow, refusal: &str) -> Result<TicketStatus, ApiError> {
        let status = ticket.status();
        if !WORKED.contains(&status) {
            return Err(self.wrong_state(status, format!("A `{status}` ticket {refusal}.")));
        }
        Ok(status)
    }

    /// 409 `wrong_state` with what the caller may do in `status` instead.
    fn wrong_state(&self, status: TicketStatus, detail: String) -> ApiError {
        ApiError::WrongState {
            detail,
            allowed_actions: AllowedActions::Ticket(TicketAllowedAction::list(
                self.party,
                status,
                self.locale,
            )),
        }
    }

    /// Why a conditional update found the ticket moved on (a write committed between our read
    /// and ours): 412 for `If-Match` callers, 409 `wrong_state` when the status left
    /// `allowed`, 409 `concurrent_update` otherwise.
    fn lost_race(
        &self,
        conn: &mut DbConnection,
        id: &str,
        allowed: &[TicketStatus],
        if_match: &IfMatch,
    ) -> ApiError {
        match self.find(conn, id) {
            Err(e) => e,
            Ok(now) if !if_match.is_set() && !allowed.contains(&now.status()) => self.wrong_state(
                now.status(),
                format!("The ticket moved to `{}` meanwhile.", now.status),
            ),
            Ok(now) => if_match.lost_race(now.version, "ticket"),
        }
    }

    /// Applies `changes` while the ticket is still at the version `current` was read at (and
    /// so in its status): what the request decided from that read, the new status and the audit
    /// trail's old values, cannot undo a write that committed meanwhile (PostgreSQL).
    fn update(
        &self,
        conn: &mut DbConnection,
        current: &TicketRow,
        allowed: &[TicketStatus],
        if_match: &IfMatch,
        changes: &TicketChanges,
    ) -> Result<(), ApiError> {
        if !repo::tickets::update(conn, &current.id, Some(current.version), allowed, changes)? {
            return Err(self.lost_race(conn, &current.id, allowed, if_match));
        }
        Ok(())
    }
}

fn party_of(caller: &AuthUser) -> TicketParty {
    match caller.role {
        Role::Platform => TicketParty::Platform,
        _ => TicketParty::Requester,
    }
}

/// The audience on the other side of `party`.
fn other_side(party: TicketParty) -> TicketAudience {
    match party {
        TicketParty::Platform => TicketAudience::Requester,
        TicketParty::Requester => TicketAudience::Platform,
    }
}

fn ticket_not_found() -> ApiError {
    ApiError::NotFound("No such ticket, or not one you can see.".into())
}

/// Requesters' and assignees' names for these tickets, in one statement.
fn names_of(
    conn: &mut DbConnection,
    rows: &[TicketRow],
) -> Result<HashMap<String, String>, ApiError> {
    let mut ids: Vec<&str> = rows
        .iter()
        .flat_map(|r| std::iter::once(r.requester_id.as_str()).chain(r.assignee_id.as_deref()))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    Ok(repo::tickets::names(conn, &ids)?)
}

fn ticket_change(ticket: &TicketRow, action: &str) -> Change {
    Change::outside_cases("ticket", &ticket.id, ticket.agency_id.as_deref(), action)
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListTicketsQuery {
    /// Only these statuses (repeat the parameter for several).
    #[serde(default)]
    #[param(style = Form, explode)]
    pub status: Vec<TicketStatus>,
    /// `me` (the caller), `none` (nobody) or a user id.
    #[param(value_type = Option<AssigneeParam>, example = "me")]
    pub assignee: Option<AssigneeParam>,
    /// Who delegated the ticket to its assignee: `me`, `none` or a user id.
    #[param(value_type = Option<AssigneeParam>, example = "me")]
    pub delegated_by: Option<AssigneeParam>,
    /// Only tickets about this case.
    pub case_id: Option<Uuid>,
    /// The ticket with this number (`TKT-2026-000045`; any case, spaces around it ignored), if
    /// the caller sees it.
    #[param(example = "TKT-2026-000045")]
    pub number: Option<String>,
    /// Only tickets whose SLA is in these states (repeat the parameter for several), e.g. the
    /// view of breached tickets `?sla=breached`.
    #[serde(default)]
    #[param(style = Form, explode)]
    pub sla: Vec<SlaState>,
    #[param(minimum = 1, maximum = 100, default = 25)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

fn user_filter(param: Option<AssigneeParam>, caller_id: &str) -> repo::tickets::UserFilter {
    param.map(|p| match p {
        AssigneeParam::Keyword(AssigneeKeyword::Me) => Some(caller_id.to_owned()),
        AssigneeParam::Keyword(AssigneeKeyword::None) => None,
        AssigneeParam::User(id) => Some(id.0.to_string()),
    })
}

/// List support tickets
///
/// The tickets the caller may see, newest first, with keyset pagination: platform staff see
/// all; agency staff their agency's; clients their own; agents have none (403). Filters
/// combine. The platform's queues are filters: unassigned
/// `?assignee=none&status=new&status=open&status=waiting_on_requester`, mine `?assignee=me`,
/// delegated `?delegated_by=me`, closed `?status=closed`. Roles: platform, agency, client.
#[utoipa::path(
    tag = "tickets",
    operation_id = "list_tickets",
    params(ListTicketsQuery, AcceptLanguage),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "One page of tickets", body = Page<TicketView>,
            headers(("Link" = String, description = "`<…>; rel=\"next\"` when another page follows"),
                ("Vary" = String, description = "`accept-language`: the labels follow it"))),
        (status = 403, description = "Agents have no support tickets"),
    )
)]
#[get("/v1/tickets")]
pub async fn list_tickets(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: Token,
    query: Query<ListTicketsQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.0;
    let page = PageRequest::new(query.limit, query.cursor.as_deref())?;
    let asking = Asking::new(token, &req);
    let (views, page) = db::read(&state.pool, move |conn| {
        let who = TicketViewer::of(asking.resolve(conn)?)?;
        let me = &who.actor.user_id;
        let filter = TicketFilter {
            statuses: query.status.iter().map(|s| s.as_str()).collect(),
            assignee: user_filter(query.assignee, me),
            delegated_by: user_filter(query.delegated_by, me),
            case_id: query.case_id.map(|id| id.to_string()),
            sla_states: query.sla.iter().map(|s| s.as_str()).collect(),
            // As people quote it: spaces around it or in lower case find it too.
            number: query.number.map(|n| n.trim().to_ascii_uppercase()),
        };
        let rows = repo::tickets::list(
            conn,
            &who.scope,
            &filter,
            page.after.as_deref(),
            page.fetch(),
        )?;
        let names = names_of(conn, &rows)?;
        let views: Vec<TicketView> = rows.into_iter().map(|r| who.render(r, &names)).collect();
        Ok((views, page))
    })
    .await?;
    let page = page.page(views, |v| v.id.as_str(), |v| v);
    Ok(i18n::varies_by_language(page_response(&req, page)))
}

#[derive(Debug, Deserialize, Serialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "subject": "The agency stopped answering",
    "description": "No answer on DOS-2026-000123 for a week, though the case is in progress.",
    "case_id": "0193a6f4-2222-7c2d-8e3f-405162738495"
}))]
pub struct CreateTicket {
    #[serde(deserialize_with = "crate::api::trimmed")]
    #[validate(length(min = 3, max = 200))]
    #[schema(min_length = 3, max_length = 200)]
    pub subject: String,
    #[serde(deserialize_with = "crate::api::trimmed")]
    #[validate(length(min = 10, max = 10000))]
    #[schema(min_length = 10, max_length = 10000)]
    pub description: String,
    /// A case the requester can see (422 `case_unavailable` otherwise).
    pub case_id: Option<Uuid>,
}

/// Open a support ticket
///
/// A client or an agency staff member asks the platform for help, optionally about a case they
/// can see. The ticket starts `new` and unassigned; every platform staff member is notified
/// (`ticket_opened`). Accepts `Idempotency-Key`, as buying a service does. Roles: client,
/// agency.
#[utoipa::path(
    tag = "tickets",
    operation_id = "create_ticket",
    request_body = CreateTicket,
    params(IdempotencyKey, AcceptLanguage),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Opened", body = TicketView,
            headers(("Location" = String, description = "The new ticket's URL"), ("ETag" = String, description = "Its version"))),
        (status = 403, description = "Only clients and agency staff open tickets"),
        (status = 422, description = "A member breaks a rule, or the case is not one the requester can see (`case_unavailable`)"),
    )
)]
#[post("/v1/tickets")]
pub async fn create_ticket(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: Token,
    key: IdempotencyKey,
    body: ValidJson<CreateTicket>,
) -> Result<HttpResponse, ApiError> {
    let asking = Asking::new(token, &req);
    let notifier = state.notifier.clone();
    idempotency::create(&state, &req, key, body.0, move |conn| {
        let asked = asking.resolve(conn)?;
        let caller = asked.caller.clone();
        asked.caller.require(
            matches!(caller.role, Role::Client | Role::Agency),
            "open support tickets",
        )?;
        let who = TicketViewer::of(asked)?;
        let user_id = caller.id.clone();
        let create = move |conn: &mut DbConnection, input: CreateTicket| {
            open_ticket(conn, &notifier, &who, &caller, input)
        };
        Ok(Authorized { user_id, create })
    })
    .await
}

fn open_ticket(
    conn: &mut DbConnection,
    notifier: &Notifier,
    who: &TicketViewer,
    caller: &AuthUser,
    input: CreateTicket,
) -> Result<Created<TicketView>, ApiError> {
    let case_id = input
        .case_id
        .map(|id| visible_case_id(conn, &who.viewer, id, "/case_id"))
        .transpose()?;
    let now = db::now();
    let row = TicketRow {
        id: repo::new_id(),
        requester_id: caller.id.clone(),
        agency_id: caller.agency_id.clone(),
        case_id,
        subject: input.subject,
        description: input.description,
        status: TicketStatus::New.as_str().to_owned(),
        // Platform staff set the priority (PATCH): a requester's own would be `urgent`.
        priority: Priority::Normal.as_str().to_owned(),
        assignee_id: None,
        delegated_by: None,
        resolution_type: None,
        resolution: None,
        resolved_at: None,
        version: 1,
        created_at: now,
        updated_at: now,
        sla_state: None,
        sla_due_at: None,
        number: repo::tickets::next_number(conn, now)?,
    };
    repo::tickets::insert(conn, &row)?;
    let created = ticket_change(&row, "create");
    let mut audit = created.fields(vec![
        ("number", None, Some(row.number.clone())),
        ("subject", None, Some(row.subject.clone())),
        ("status", None, Some(row.status.clone())),
        ("priority", None, Some(row.priority.clone())),
    ]);
    audit.extend(created.fields(vec![("case_id", None, row.case_id.clone())]));
    repo::audit::append(conn, &who.actor, audit)?;
    notifier.notify_ticket(
        conn,
        &row,
        Event::TicketOpened,
        &[TicketAudience::Platform],
        &[],
        Some(&caller.id),
        Some(&row.description),
        None,
    )?;
    crate::sla::started(conn, notifier, Subject::ticket(&row))?;
    // As stored: with its SLA columns.
    let row = who.find(conn, &row.id)?;
    let view = who.view(conn, row)?;
    Ok(Created {
        location: Some(format!("/v1/tickets/{}", view.id)),
        version: Some(view.version),
        body: view,
    })
}

/// Get a support ticket
///
/// With the actions the caller may take now. Answers 304 when `If-None-Match` names the current
/// version. Roles: platform, and the requester's side (the client who opened it, or the staff
/// of the agency that did); 404 for anyone else, 403 for agents.
#[utoipa::path(
    tag = "tickets",
    operation_id = "get_ticket",
    params(("id" = Uuid, Path, description = "Ticket id"),
           AcceptLanguage),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The ticket", body = TicketView, headers(("ETag" = String, description = "Its version"),
            ("Vary" = String, description = "`accept-language`: the labels follow it"))),
        (status = 304, description = "Unchanged since the `If-None-Match` version", headers(("ETag" = String, description = "Its version"))),
        (status = 403, description = "Agents have no support tickets"),
        (status = 404, description = "No such ticket, or not one the caller can see"),
    )
)]
#[get("/v1/tickets/{id}")]
pub async fn get_ticket(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: Token,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let asking = Asking::new(token, &req);
    let id = id.into_inner().to_string();
    let view = db::read(&state.pool, move |conn| {
        let who = TicketViewer::of(asking.resolve(conn)?)?;
        let row = who.find(conn, &id)?;
        who.view(conn, row)
    })
    .await?;
    Ok(i18n::varies_by_language(versioned_response(
        &req,
        view.version,
        &view,
    )))
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"priority": "high"}))]
pub struct UpdateTicket {
    #[serde(default, deserialize_with = "crate::api::trimmed_opt")]
    #[validate(length(min = 3, max = 200))]
    #[schema(min_length = 3, max_length = 200)]
    pub subject: Option<String>,
    #[serde(default, deserialize_with = "crate::api::trimmed_opt")]
    #[validate(length(min = 10, max = 10000))]
    #[schema(min_length = 10, max_length = 10000)]
    pub description: Option<String>,
    /// Platform staff only.
    pub priority: Option<Priority>,
}

/// Update a support ticket
///
/// The requester's side changes subject and description; platform staff change those and the
/// priority (403 for a requester sending `priority`). Only while the ticket is worked (`new`,
/// `open`, `waiting_on_requester`; 409 otherwise). Honours `If-Match` (412 when stale). An
/// edit that changes something reaches webhooks as `ticket_updated`.
/// Roles: platform, client, agency.
#[utoipa::path(
    tag = "tickets",
    operation_id = "update_ticket",
    params(
        ("id" = Uuid, Path, description = "Ticket id"),
        IfMatch,
        AcceptLanguage,
    ),
    request_body = UpdateTicket,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Updated", body = TicketView, headers(("ETag" = String, description = "The new version"))),
        (status = 403, description = "Agents have no tickets; requesters never change the priority"),
        (status = 404, description = "No such ticket, or not one the caller can see"),
        (status = 409, description = "The ticket is no longer worked (`wrong_state`, with `allowed_actions`), or changed meanwhile (`concurrent_update`)"),
        (status = 412, description = "`If-Match` is stale"),
        (status = 422, description = "A member breaks a rule"),
    )
)]
#[patch("/v1/tickets/{id}")]
pub async fn update_ticket(
    req: HttpRequest,
    if_match: IfMatch,
    state: web::Data<AppState>,
    token: Token,
    id: web::Path<Uuid>,
    body: ValidJson<UpdateTicket>,
) -> Result<HttpResponse, ApiError> {
    let input = body.0;
    let asking = Asking::new(token, &req);
    let id = id.into_inner().to_string();
    let notifier = state.notifier.clone();
    let view = db::write(&state.pool, move |conn| {
        let who = TicketViewer::of(asking.resolve(conn)?)?;
        let current = who.find(conn, &id)?;
        if who.party == TicketParty::Requester && input.priority.is_some() {
            return Err(ApiError::Forbidden(
                "Your role may not change a ticket's priority.".into(),
            ));
        }
        if_match.check(current.version)?;
        who.require_worked(&current, "cannot be edited")?;
        let changes = TicketChanges {
            subject: input.subject,
            description: input.description,
            priority: input.priority.map(|p| p.as_str().to_owned()),
            ..TicketChanges::default()
        };
        let audit = ticket_change(&current, "update").fields(vec![
            (
                "subject",
                Some(current.subject.clone()),
                changes.subject.clone(),
            ),
            (
                "description",
                Some(current.description.clone()),
                changes.description.clone(),
            ),
            (
                "priority",
                Some(current.priority.clone()),
                changes.priority.clone(),
            ),
        ]);
        if audit.is_empty() {
            return who.view(conn, current);
        }
        // A webhook is told the names of the members changed, never their text. They are the
        // audit rows' field names: renaming one changes what receivers read.
        let edited: Vec<String> = audit.iter().filter_map(|c| c.field.clone()).collect();
        who.update(conn, &current, WORKED, &if_match, &changes)?;
        repo::audit::append(conn, &who.actor, audit)?;
        // Before the SLA events a new priority may bring: the edit comes first.
        let row = who.find(conn, &id)?;
        let what = crate::webhooks::TicketWhat {
            ticket: &row,
            status: None,
            detail: Some(&edited.join(", ")),
        };
        crate::webhooks::enqueue_ticket(conn, WebhookEvent::TicketUpdated, &what)?;
        let Some(priority) = input.priority.filter(|p| *p != current.priority()) else {
            return who.view(conn, row);
        };
        crate::sla::reprioritized(conn, &notifier, Subject::ticket(&current), priority)?;
        // The new priority moved the ticket's SLA clocks.
        let row = who.find(conn, &id)?;
        who.view(conn, row)
    })
    .await?;
    Ok(HttpResponse::Ok()
        .insert_header(("ETag", etag(view.version)))
        .json(view))
}

/// A ticket state, for `GET /v1/workflow`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TicketStateView {
    pub status: TicketStatus,
    pub label: &'static str,
    /// Takes messages, assignment and edits.
    pub worked: bool,
}

/// A ticket action, for `GET /v1/workflow`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TicketActionView {
    pub action: TicketAction,
    pub label: &'static str,
    pub from: Vec<TicketStatus>,
    pub to: TicketStatus,
    /// `requester` (the client who opened it, or the staff of the agency that did) and/or
    /// `platform`.
    pub parties: Vec<TicketParty>,
    /// Fired by the system only (`auto_close`).
    pub system_only: bool,
    pub requires: Vec<Input>,
}

/// The support ticket's lifecycle as data.
#[derive(Debug, Serialize, ToSchema)]
pub struct TicketWorkflowView {
    pub states: Vec<TicketStateView>,
    pub actions: Vec<TicketActionView>,
}

impl TicketWorkflowView {
    pub fn new(locale: Locale) -> TicketWorkflowView {
        TicketWorkflowView {
            states: TicketStatus::ALL
                .iter()
                .map(|&status| TicketStateView {
                    status,
                    label: i18n::ticket_status_label(status, locale),
                    worked: WORKED.contains(&status),
                })
                .collect(),
            actions: ticket_workflow::RULES
                .iter()
                .map(|r| TicketActionView {
                    action: r.action,
                    label: i18n::ticket_action_label(r.action, locale),
                    from: r.from.to_vec(),
                    to: r.to,
                    parties: r.parties.to_vec(),
                    system_only: r.parties.is_empty(),
                    requires: r.requires.to_vec(),
                })
                .collect(),
        }
    }
}
