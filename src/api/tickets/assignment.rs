//! Taking and delegating a support ticket among platform staff.

use actix_web::{HttpRequest, HttpResponse, post, web};
use uuid::Uuid;

use super::{TicketView, TicketViewer, ticket_change};
use crate::api::Asking;
use crate::api::assignment::{Assignee, AssignmentRequest};
use crate::app::AppState;
use crate::auth::Token;
use crate::db;
use crate::domain::TicketParty;
use crate::errors::ApiError;
use crate::events::Event;
use crate::http::extract::{IfMatch, ValidJson, etag};
use crate::i18n::AcceptLanguage;
use crate::repo;
use crate::repo::tickets::TicketChanges;
use crate::ticket_workflow::{self, WORKED};

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
            // As on cases, a ticket that stays with its assignee is assigned to no one.
            if current.assignee_id.as_deref() != Some(assignee.as_str()) {
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
            }
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
