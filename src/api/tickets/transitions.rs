//! A support ticket's moves: waiting on its requester, resolving, reactivating, closing.

use actix_web::{HttpRequest, HttpResponse, post, web};
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;
use validator::Validate;

use super::{TicketView, TicketViewer, other_side, ticket_change};
use crate::api::Asking;
use crate::app::AppState;
use crate::auth::Token;
use crate::db;
use crate::domain::{TicketAction, TicketStatus};
use crate::errors::{ApiError, FieldError};
use crate::events::Event;
use crate::http::extract::{IfMatch, ValidJson, etag};
use crate::i18n::AcceptLanguage;
use crate::repo;
use crate::repo::tickets::TicketChanges;
use crate::sla::{Bump, Starts, Subject};
use crate::ticket_workflow;
use crate::workflow::Input;

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
        crate::workflow::input_errors(rule.action.as_str(), rule.requires, sent)
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
        if rule.to == TicketStatus::Resolved {
            // The auto-close rule has a new deadline.
            crate::live::will_wake_rules();
        }
        let row = who.find(conn, &id)?;
        who.view(conn, row)
    })
    .await?;
    Ok(HttpResponse::Ok()
        .insert_header(("ETag", etag(view.version)))
        .json(view))
}
