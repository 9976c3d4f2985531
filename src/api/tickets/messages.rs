//! A support ticket's conversation between its requester's side and the platform.

use std::collections::HashMap;

use actix_web::{HttpRequest, HttpResponse, get, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use validator::Validate;

use super::{TicketViewer, attachments, other_side, ticket_change};
use crate::api::cases::PersonView;
use crate::api::{Asking, timestamp};
use crate::app::AppState;
use crate::auth::Token;
use crate::db::{self, DbConnection};
use crate::domain::{Role, TicketParty};
use crate::errors::ApiError;
use crate::events::{Event, Notifier};
use crate::http::extract::{IfMatch, Page, PageRequest, Query, ValidJson, page_response};
use crate::http::idempotency::{self, Authorized, Created, IdempotencyKey};
use crate::repo;
use crate::repo::tickets::{TicketChanges, TicketMessageRow, TicketRow, TicketScope};
use crate::sla::{Bump, Starts, Subject};
use crate::ticket_workflow::{self, WORKED};

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
