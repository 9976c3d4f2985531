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

use crate::api::assignment::{Assignee, AssignmentRequest};
use crate::api::cases::{
    AssigneeKeyword, AssigneeParam, PersonView, SlaSummary, Viewer, visible_case_id,
};
use crate::api::notifications::{Event, Notifier, TicketAudience};
use crate::api::{Asked, Asking, timestamp};
use crate::app::AppState;
use crate::auth::{AuthUser, Token};
use crate::db::{self, DbConnection};
use crate::domain::{Locale, Priority, Role, TicketAction, TicketParty, TicketStatus};
use crate::errors::{AllowedActions, ApiError, FieldError};
use crate::http::extract::{
    IfMatch, Page, PageRequest, Query, ValidJson, etag, page_response, versioned_response,
};
use crate::http::idempotency::{self, Authorized, Created, IdempotencyKey};
use crate::i18n::{self, AcceptLanguage};
use crate::repo;
use crate::repo::audit::{Actor, Change};
use crate::repo::tickets::{TicketChanges, TicketFilter, TicketMessageRow, TicketRow, TicketScope};
use crate::sla::{Bump, SlaState, Starts, Subject};
use crate::ticket_workflow::{self, TicketAllowedAction, WORKED};
use crate::webhooks::WebhookEvent;
use crate::workflow::Input;

pub mod attachments;

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

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"action": "resolve", "resolution_type": "answered", "resolution": "The agency answered on the case; we reminded them of the response times."}))]
pub struct TicketTransitionRequest {
    /// The action; `auto_close` is the system's own and always refused (403).
    pub action: TicketAction,
    /// Required by `reactivate`; recorded in the audit trail whenever sent.
    #[serde(default, deserialize_with = "crate::api::trimmed_opt")]
    #[validate(length(min = 1, max = 2000))]
    #[schema(min_length = 1, max_length = 2000)]
    pub reason: Option<String>,
    /// Required by `resolve` (e.g. `answered`, `fixed`, `refunded`); refused by every other
    /// action.
    #[serde(default, deserialize_with = "crate::api::trimmed_opt")]
    #[validate(length(min = 1, max = 64))]
    #[schema(min_length = 1, max_length = 64)]
    pub resolution_type: Option<String>,
    /// Required by `resolve`; refused by every other action.
    #[serde(default, deserialize_with = "crate::api::trimmed_opt")]
    #[validate(length(min = 1, max = 10000))]
    #[schema(min_length = 1, max_length = 10000)]
    pub resolution: Option<String>,
}

impl TicketTransitionRequest {
    /// Required inputs that are missing, and resolution inputs the action does not take.
    fn input_errors(&self, rule: &ticket_workflow::TicketRule) -> Vec<FieldError> {
        let sent = |input: Input| match input {
            Input::Reason => self.reason.is_some(),
            Input::ResolutionType => self.resolution_type.is_some(),
            Input::Resolution => self.resolution.is_some(),
        };
        crate::workflow::input_errors(rule.action.as_str(), rule.requires, sent, sent)
    }
}

/// Move a support ticket
///
/// Platform staff make a ticket wait on its requester (`wait_on_requester`) or resolve it
/// (`resolve`, with `resolution_type` and `resolution`); the requester's side or platform staff
/// reactivate a resolved ticket (`reactivate`, with a `reason`) or close it (`close`). A
/// resolved ticket nobody reactivates closes by itself after
/// `DOSSIER_TICKET_AUTO_CLOSE_AFTER` (default 3 days; the rule log records it). The other side
/// is notified. 403 for an action the caller's side may never take (and for `auto_close`), 409
/// `wrong_state` in the wrong status, 422 for missing or refused inputs, 412 for a stale
/// `If-Match`. The whole table is in `GET /v1/workflow` (`tickets`). Roles: platform, client,
/// agency.
#[utoipa::path(
    tag = "tickets",
    operation_id = "transition_ticket",
    params(
        ("id" = Uuid, Path, description = "Ticket id"),
        IfMatch,
        AcceptLanguage,
    ),
    request_body = TicketTransitionRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Moved", body = TicketView, headers(("ETag" = String, description = "The new version"))),
        (status = 403, description = "The caller's side may never take this action"),
        (status = 404, description = "No such ticket, or not one the caller can see"),
        (status = 409, description = "Not allowed in the ticket's status (`wrong_state`, with `allowed_actions`), or the ticket changed meanwhile (`concurrent_update`)"),
        (status = 412, description = "`If-Match` is stale"),
        (status = 422, description = "A required input is missing, or an input the action does not take was sent"),
    )
)]
#[post("/v1/tickets/{id}/transitions")]
pub async fn transition_ticket(
    req: HttpRequest,
    if_match: IfMatch,
    state: web::Data<AppState>,
    token: Token,
    id: web::Path<Uuid>,
    body: ValidJson<TicketTransitionRequest>,
) -> Result<HttpResponse, ApiError> {
    let input = body.0;
    let rule = ticket_workflow::rule(input.action);
    let asking = Asking::new(token, &req);
    let id = id.into_inner().to_string();
    let notifier = state.notifier.clone();
    let view = db::write(&state.pool, move |conn| {
        let who = TicketViewer::of(asking.resolve(conn)?)?;
        let current = who.find(conn, &id)?;
        if rule.parties.is_empty() {
            return Err(ApiError::Forbidden(format!(
                "`{}` is the system's own action.",
                rule.action
            )));
        }
        if !rule.parties.contains(&who.party) {
            return Err(ApiError::Forbidden(format!(
                "Your side of the ticket may not `{}` it.",
                rule.action
            )));
        }
        if_match.check(current.version)?;
        let status = current.status();
        if !rule.from.contains(&status) {
            return Err(who.wrong_state(
                status,
                format!("A `{status}` ticket cannot `{}`.", rule.action),
            ));
        }
        let errors = input.input_errors(rule);
        if !errors.is_empty() {
            return Err(ApiError::validation(errors));
        }
        // `resolve` records the resolution; `reactivate` clears it (the ticket is worked again).
        let resolution = match rule.action {
            TicketAction::Resolve => Some((
                input.resolution_type.clone(),
                input.resolution.clone(),
                Some(db::now()),
            )),
            TicketAction::Reactivate => Some((None, None, None)),
            _ => None,
        };
        let changes = TicketChanges {
            status: Some(rule.to.as_str().to_owned()),
            resolution_type: resolution.as_ref().map(|r| r.0.clone()),
            resolution: resolution.as_ref().map(|r| r.1.clone()),
            resolved_at: resolution.as_ref().map(|r| r.2),
            ..TicketChanges::default()
        };
        who.update(conn, &current, rule.from, &if_match, &changes)?;
        let change = ticket_change(&current, rule.action.as_str());
        let mut audit = vec![change.clone().field(
            "status",
            Some(current.status.clone()),
            Some(rule.to.as_str().to_owned()),
        )];
        audit.extend(change.fields(vec![
            ("reason", None, input.reason.clone()),
            ("resolution_type", None, input.resolution_type.clone()),
            ("resolution", None, input.resolution.clone()),
        ]));
        repo::audit::append(conn, &who.actor, audit)?;
        // A move changes neither the ticket's subject nor who hears of it.
        let body = input.reason.as_deref().or(input.resolution.as_deref());
        notifier.notify_ticket(
            conn,
            &current,
            Event::StatusChanged,
            &[other_side(who.party)],
            &[],
            Some(&who.actor.user_id),
            body,
            Some(rule.to),
        )?;
        let moved = Subject::Ticket(&current, rule.to);
        crate::sla::sync(conn, &notifier, moved, Starts::OnlyMore, Bump::Done)?;
        let row = who.find(conn, &id)?;
        who.view(conn, row)
    })
    .await?;
    if rule.to == TicketStatus::Resolved {
        crate::live::wait_started();
    }
    Ok(HttpResponse::Ok()
        .insert_header(("ETag", etag(view.version)))
        .json(view))
}

/// Take or delegate a support ticket
///
/// `take` makes the caller the ticket's assignee; `delegate` hands it to another platform staff
/// member (`user_id`; 422 `invalid_assignee` unless an active one), who is notified. A `new`
/// ticket opens. Only while the ticket is worked (409 otherwise). Honours `If-Match`.
/// Roles: platform.
#[utoipa::path(
    tag = "tickets",
    operation_id = "assign_ticket",
    params(
        ("id" = Uuid, Path, description = "Ticket id"),
        IfMatch,
        AcceptLanguage,
    ),
    request_body = AssignmentRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Assigned", body = TicketView, headers(("ETag" = String, description = "The new version"))),
        (status = 403, description = "Only platform staff assign tickets"),
        (status = 404, description = "No such ticket, or not one the caller can see"),
        (status = 409, description = "The ticket is no longer worked (`wrong_state`), or changed meanwhile (`concurrent_update`)"),
        (status = 412, description = "`If-Match` is stale"),
        (status = 422, description = "`user_id` missing for `delegate`, sent with `take`, the caller's own or not an active platform staff member (`invalid_assignee`)"),
    )
)]
#[post("/v1/tickets/{id}/assignment")]
pub async fn assign_ticket(
    req: HttpRequest,
    if_match: IfMatch,
    state: web::Data<AppState>,
    token: Token,
    id: web::Path<Uuid>,
    body: ValidJson<AssignmentRequest>,
) -> Result<HttpResponse, ApiError> {
    let input = body.0;
    let asking = Asking::new(token, &req);
    let id = id.into_inner().to_string();
    let notifier = state.notifier.clone();
    let view = db::write(&state.pool, move |conn| {
        let who = TicketViewer::of(asking.resolve(conn)?)?;
        let current = who.find(conn, &id)?;
        if who.party != TicketParty::Platform {
            return Err(ApiError::Forbidden(
                "Only platform staff assign tickets.".into(),
            ));
        }
        let (assignee, delegated_by) = match input.delegate_to(who.actor.user_id.clone())? {
            Assignee::Caller(me) => (me, None),
            Assignee::Other(user) => {
                if !repo::tickets::is_active_platform_user(conn, &user)? {
                    return Err(ApiError::invalid_field(
                        "/user_id",
                        "invalid_assignee",
                        "not an active platform staff member",
                    ));
                }
                (user, Some(who.actor.user_id.clone()))
            }
        };
        if_match.check(current.version)?;
        let status = who.require_worked(&current, "cannot be reassigned")?;
        let next = ticket_workflow::after_assignment(status);
        let unchanged = current.assignee_id.as_deref() == Some(assignee.as_str())
            && current.delegated_by == delegated_by
            && next == status;
        if !unchanged {
            let changes = TicketChanges {
                status: Some(next.as_str().to_owned()),
                assignee_id: Some(Some(assignee.clone())),
                delegated_by: Some(delegated_by.clone()),
                ..TicketChanges::default()
            };
            who.update(conn, &current, WORKED, &if_match, &changes)?;
            let change = ticket_change(&current, input.audit_action());
            let audit = change.sent_fields(vec![
                (
                    "assignee_id",
                    current.assignee_id.clone(),
                    Some(Some(assignee.clone())),
                ),
                (
                    "delegated_by",
                    current.delegated_by.clone(),
                    Some(delegated_by.clone()),
                ),
                (
                    "status",
                    Some(current.status.clone()),
                    Some(Some(next.as_str().to_owned())),
                ),
            ]);
            repo::audit::append(conn, &who.actor, audit)?;
            notifier.notify_ticket(
                conn,
                &current,
                Event::Assigned,
                &[],
                &[assignee],
                Some(&who.actor.user_id),
                None,
                // The status it left the ticket in (webhooks tell it; titles do not).
                Some(next),
            )?;
            if next != status {
                crate::webhooks::enqueue_ticket_move(conn, &current, next)?;
            }
        }
        let row = who.find(conn, &id)?;
        who.view(conn, row)
    })
    .await?;
    Ok(HttpResponse::Ok()
        .insert_header(("ETag", etag(view.version)))
        .json(view))
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0193a6fd-eeee-7c2d-8e3f-405162738495",
    "ticket_id": "0193a6fc-dddd-7c2d-8e3f-405162738495",
    "author": {"id": "0193a6f1-0000-7b51-9d0a-3f1e2a4b5c6d", "name": "Paula Platform"},
    "author_role": "platform",
    "body": "We have written to the agency and will come back to you by tomorrow.",
    "attachment_ids": [],
    "created_at": "2026-11-24T09:30:00Z"
}))]
pub struct TicketMessageView {
    #[schema(format = "uuid")]
    pub id: String,
    #[schema(format = "uuid")]
    pub ticket_id: String,
    pub author: PersonView,
    /// `platform`, `agency` or `client` (never `agent`: agents have no tickets).
    pub author_role: Role,
    pub body: String,
    /// Files of the ticket the message carries
    /// (`GET /v1/tickets/{id}/attachments/{attachment_id}`).
    #[schema(value_type = Vec<String>, format = "uuid")]
    pub attachment_ids: Vec<String>,
    #[serde(serialize_with = "crate::api::rfc3339")]
    pub created_at: DateTime<Utc>,
}

fn message_view(row: TicketMessageRow, names: &HashMap<String, String>) -> TicketMessageView {
    TicketMessageView {
        author: PersonView {
            name: names.get(&row.author_id).cloned().unwrap_or_default(),
            id: row.author_id,
        },
        author_role: Role::from_code(&row.author_role).unwrap_or(Role::Client),
        id: row.id,
        ticket_id: row.ticket_id,
        body: row.body,
        attachment_ids: serde_json::from_str(&row.attachment_ids).unwrap_or_default(),
        created_at: timestamp(row.created_at),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListTicketMessagesQuery {
    #[param(minimum = 1, maximum = 100, default = 25)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A ticket's messages
///
/// Oldest first, with keyset pagination. Roles: whoever can see the ticket.
#[utoipa::path(
    tag = "tickets",
    operation_id = "list_ticket_messages",
    params(("id" = Uuid, Path, description = "Ticket id"), ListTicketMessagesQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "One page of messages", body = Page<TicketMessageView>,
            headers(("Link" = String, description = "`<…>; rel=\"next\"` when another page follows"))),
        (status = 403, description = "Agents have no support tickets"),
        (status = 404, description = "No such ticket, or not one the caller can see"),
    )
)]
#[get("/v1/tickets/{id}/messages")]
pub async fn list_ticket_messages(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: Token,
    id: web::Path<Uuid>,
    query: Query<ListTicketMessagesQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = PageRequest::new(query.limit, query.cursor.as_deref())?;
    let asking = Asking::new(token, &req);
    let id = id.into_inner().to_string();
    let (views, page) = db::read(&state.pool, move |conn| {
        let who = TicketViewer::of(asking.resolve(conn)?)?;
        who.find(conn, &id)?;
        let rows = repo::tickets::messages(conn, &id, page.after.as_deref(), page.fetch())?;
        let mut authors: Vec<&str> = rows.iter().map(|r| r.author_id.as_str()).collect();
        authors.sort_unstable();
        authors.dedup();
        let names = repo::tickets::names(conn, &authors)?;
        let views: Vec<TicketMessageView> =
            rows.into_iter().map(|r| message_view(r, &names)).collect();
        Ok((views, page))
    })
    .await?;
    let page = page.page(views, |v| v.id.as_str(), |v| v);
    Ok(page_response(&req, page))
}

/// Get a support ticket's message
///
/// Roles: whoever can see the ticket.
#[utoipa::path(
    tag = "tickets",
    operation_id = "get_ticket_message",
    params(("id" = Uuid, Path, description = "Ticket id"),
           ("message_id" = Uuid, Path, description = "Message id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The message", body = TicketMessageView),
        (status = 403, description = "Agents have no support tickets"),
        (status = 404, description = "No such ticket or message, or not one the caller can see"),
    )
)]
#[get("/v1/tickets/{id}/messages/{message_id}")]
pub async fn get_ticket_message(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: Token,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let asking = Asking::new(token, &req);
    let (id, message_id) = path.into_inner();
    let (id, message_id) = (id.to_string(), message_id.to_string());
    let view = db::read(&state.pool, move |conn| {
        let who = TicketViewer::of(asking.resolve(conn)?)?;
        let ticket = who.find(conn, &id)?;
        let row = repo::tickets::message(conn, &ticket.id, &message_id)?
            .ok_or_else(|| ApiError::NotFound("No such message on this ticket.".into()))?;
        let names = repo::tickets::names(conn, &[row.author_id.as_str()])?;
        Ok(message_view(row, &names))
    })
    .await?;
    Ok(HttpResponse::Ok().json(view))
}

#[derive(Debug, Deserialize, Serialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"body": "We have written to the agency and will come back to you by tomorrow."}))]
pub struct PostTicketMessage {
    #[serde(deserialize_with = "crate::api::trimmed")]
    #[validate(length(min = 1, max = 10000))]
    #[schema(min_length = 1, max_length = 10000)]
    pub body: String,
    /// Files of this ticket (at most 20), uploaded first with
    /// `POST /v1/tickets/{id}/attachments`; a file a message carries stays for good.
    #[serde(default)]
    #[validate(length(max = 20))]
    #[schema(max_items = 20)]
    pub attachment_ids: Vec<Uuid>,
}

/// Write on a support ticket
///
/// The requester's side or platform staff write while the ticket is worked (`new`, `open`,
/// `waiting_on_requester`; a resolved or closed ticket is 409: reactivate it first). The
/// platform's first answer opens a `new` ticket; the requester's answer reopens one that waited
/// on them. The other side is notified: the requester, or the assignee (all platform staff
/// while nobody is assigned). Accepts `Idempotency-Key`. Roles: platform, client, agency.
#[utoipa::path(
    tag = "tickets",
    operation_id = "post_ticket_message",
    params(("id" = Uuid, Path, description = "Ticket id"), IdempotencyKey),
    request_body = PostTicketMessage,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Written", body = TicketMessageView,
            headers(("Location" = String, description = "The message's URL"))),
        (status = 403, description = "Agents have no support tickets"),
        (status = 404, description = "No such ticket, or not one the caller can see"),
        (status = 409, description = "The ticket is no longer worked (`wrong_state`, with `allowed_actions`), or it changed meanwhile (`concurrent_update`)"),
        (status = 422, description = "A member breaks a rule (an id that is not a file of this ticket: `validation_failed`, `invalid_attachment` in `errors` at each such id)"),
    )
)]
#[post("/v1/tickets/{id}/messages")]
pub async fn post_ticket_message(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: Token,
    id: web::Path<Uuid>,
    key: IdempotencyKey,
    body: ValidJson<PostTicketMessage>,
) -> Result<HttpResponse, ApiError> {
    let asking = Asking::new(token, &req);
    let id = id.into_inner().to_string();
    let notifier = state.notifier.clone();
    idempotency::create(&state, &req, key, body.0, move |conn| {
        let asked = asking.resolve(conn)?;
        let user_id = asked.caller.id.clone();
        let role = asked.caller.role;
        let who = TicketViewer::of(asked)?;
        let ticket = who.find(conn, &id)?;
        let create = move |conn: &mut DbConnection, input: PostTicketMessage| {
            write_message(conn, &notifier, &who, role, ticket, input)
        };
        Ok(Authorized { user_id, create })
    })
    .await
}

fn write_message(
    conn: &mut DbConnection,
    notifier: &Notifier,
    who: &TicketViewer,
    role: Role,
    ticket: TicketRow,
    input: PostTicketMessage,
) -> Result<Created<TicketMessageView>, ApiError> {
    let status = who.require_worked(&ticket, "takes no messages")?;
    let attachment_ids = attachments::check_cited(conn, &ticket.id, &input.attachment_ids)?;
    let next = ticket_workflow::after_message(who.party, status);
    // Moves the version (and the status, where the message moves it) while the ticket is still
    // in the status it was read in: a move committing meanwhile (a `resolve`, a
    // `wait_on_requester`) makes this 409, never a message after it or a status it undoes.
    // Other messages do not: two people may write at once.
    let changes = TicketChanges {
        status: (next != status).then(|| next.as_str().to_owned()),
        ..TicketChanges::default()
    };
    if !repo::tickets::update(conn, &ticket.id, None, &[status], &changes)? {
        // Still worked: the status moved under us (a retry may write); else no longer worked.
        return Err(who.lost_race(conn, &ticket.id, WORKED, &IfMatch::default()));
    }
    // The row as the update left it: an assignment that committed since it was read (the update
    // waited for it on PostgreSQL) names whom the message is for.
    let ticket = repo::tickets::find(conn, &TicketScope::All, &ticket.id)?
        .ok_or_else(|| ApiError::internal("the ticket just updated is gone"))?;
    let row = TicketMessageRow {
        id: repo::new_id(),
        ticket_id: ticket.id.clone(),
        author_id: who.actor.user_id.clone(),
        author_role: role.as_str().to_owned(),
        body: input.body,
        created_at: db::now(),
        attachment_ids,
    };
    repo::tickets::insert_message(conn, &row)?;
    // The ticket's row names the message: the ticket's trail is the rows with its id.
    let mut audit = vec![ticket_change(&ticket, "post_message").field(
        "message_id",
        None,
        Some(row.id.clone()),
    )];
    if next != status {
        audit.push(ticket_change(&ticket, "update").field(
            "status",
            Some(status.as_str().to_owned()),
            Some(next.as_str().to_owned()),
        ));
    }
    repo::audit::append(conn, &who.actor, audit)?;
    // The platform's first word stops the first-response clock; the requester's answer to a
    // ticket that waited on them runs the resolution clock again.
    let moved = Subject::Ticket(&ticket, next);
    if who.party == TicketParty::Platform {
        crate::sla::answered(conn, notifier, moved, Bump::Done)?;
    } else if next != status {
        crate::sla::sync(conn, notifier, moved, Starts::OnlyMore, Bump::Done)?;
    }
    notifier.notify_ticket(
        conn,
        &ticket,
        Event::MessageReceived,
        &[other_side(who.party)],
        &[],
        Some(&who.actor.user_id),
        Some(&row.body),
        // The status it left the ticket in (webhooks tell it; titles do not).
        Some(next),
    )?;
    if next != status {
        crate::webhooks::enqueue_ticket_move(conn, &ticket, next)?;
    }
    let names = repo::tickets::names(conn, &[row.author_id.as_str()])?;
    Ok(Created {
        location: Some(format!("/v1/tickets/{}/messages/{}", row.ticket_id, row.id)),
        version: None,
        body: message_view(row, &names),
    })
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
