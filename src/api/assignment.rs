//! Who works a case: its responsible operator (`take`, `delegate`) and its field agents.

use actix_web::{HttpRequest, HttpResponse, get, post, put, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;
use validator::Validate;

use crate::api::case_access::{find_visible, lost_race, wrong_state};
use crate::api::cases::{PersonView, reload_card};
use crate::api::{Asked, Asking};
use crate::app::AppState;
use crate::auth::Token;
use crate::db;
use crate::domain::{CaseStatus, Role};
use crate::errors::ApiError;
use crate::events::Event;
use crate::http::extract::{IfMatch, ValidJson, etag, versioned_response};
use crate::i18n::AcceptLanguage;
use crate::repo;
use crate::repo::audit::Change;
use crate::repo::cases::{CaseChanges, CaseScope};
use crate::workflow;

#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AssignmentAction {
    /// Assign the case or ticket to the caller.
    Take,
    /// Assign it to another staff member: an operator (`agency` user) of the case's agency, or
    /// a platform staff member for a ticket.
    Delegate,
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"action": "delegate", "user_id": "0193a6f2-2c4e-7b51-9d0a-3f1e2a4b5c6d"}))]
pub struct AssignmentRequest {
    pub action: AssignmentAction,
    /// Required for `delegate` (someone other than the caller); refused for `take`.
    pub user_id: Option<Uuid>,
}

/// Whom an assignment names, before the resource checks who may hold it.
pub enum Assignee {
    /// `take`: the caller.
    Caller(String),
    /// `delegate`: this user.
    Other(String),
}

impl AssignmentRequest {
    /// The assignee the body names (422 when `user_id` is missing for `delegate`, is the
    /// caller's own, or is sent with `take`).
    pub fn delegate_to(&self, caller_id: String) -> Result<Assignee, ApiError> {
        match (self.action, self.user_id) {
            (AssignmentAction::Take, None) => Ok(Assignee::Caller(caller_id)),
            (AssignmentAction::Take, Some(_)) => Err(ApiError::invalid_field(
                "/user_id",
                "not_allowed",
                "`take` assigns the caller; send no `user_id`",
            )),
            (AssignmentAction::Delegate, None) => Err(ApiError::invalid_field(
                "/user_id",
                "required",
                "`delegate` needs the assignee's `user_id`",
            )),
            // Delegating is handing over: to oneself it is a `take` that would still show as
            // delegated (`delegated_by=me`).
            (AssignmentAction::Delegate, Some(user)) if user.to_string() == caller_id => {
                Err(ApiError::invalid_field(
                    "/user_id",
                    "invalid_assignee",
                    "`delegate` hands over to someone else; use `take` for yourself",
                ))
            }
            (AssignmentAction::Delegate, Some(user)) => Ok(Assignee::Other(user.to_string())),
        }
    }

    /// The audit trail's name for the action.
    pub fn audit_action(&self) -> &'static str {
        match self.action {
            AssignmentAction::Take => "take",
            AssignmentAction::Delegate => "delegate",
        }
    }
}

/// The statuses in which the responsible operator may change: every open one.
fn assignable_statuses() -> Vec<CaseStatus> {
    workflow::STATES
        .iter()
        .filter(|s| !s.terminal)
        .map(|s| s.status)
        .collect()
}

/// Take or delegate a case
///
/// `take` makes the caller the case's responsible operator; `delegate` hands it to another
/// active `agency` user of the same agency (anyone else, the caller included, is 422
/// `invalid_assignee`). Allowed while the case is open (409 once terminal). Recorded in the
/// audit trail. Honours `If-Match`. Roles: agency.
#[utoipa::path(
    tag = "cases",
    operation_id = "assign_case",
    params(
        ("id" = Uuid, Path, description = "Case id"),
        IfMatch,
        AcceptLanguage,
    ),
    request_body = AssignmentRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Assigned; the new card", body = crate::api::cases::CaseView, headers(("ETag" = String, description = "The new version"))),
        (status = 403, description = "Only agency staff assign cases"),
        (status = 404, description = "No such case, or not one the caller can see"),
        (status = 409, description = "The case is terminal (`wrong_state`)"),
        (status = 412, description = "`If-Match` is stale"),
        (status = 422, description = "`user_id` is missing, the caller's own, or not an active operator of the case's agency"),
    )
)]
#[post("/v1/cases/{id}/assignment")]
pub async fn assign_case(
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
        let Asked { viewer, actor, .. } = asking.resolve(conn)?;
        let caller_id = viewer.user_id.clone();
        let current = find_visible(conn, &viewer, &id)?;
        if viewer.role != Role::Agency {
            return Err(ApiError::Forbidden(
                "Only agency staff assign cases.".into(),
            ));
        }
        let assignee = match input.delegate_to(caller_id)? {
            Assignee::Caller(id) => id,
            Assignee::Other(user) => {
                let found = repo::cases::staff_among(
                    conn,
                    &current.agency_id,
                    Role::Agency,
                    std::slice::from_ref(&user),
                )?;
                if found.is_empty() {
                    return Err(ApiError::invalid_field(
                        "/user_id",
                        "invalid_assignee",
                        "not an active operator of this case's agency",
                    ));
                }
                user
            }
        };
        if_match.check(current.version)?;
        let open = assignable_statuses();
        let status = current.status();
        if !open.contains(&status) {
            return Err(wrong_state(
                &viewer,
                &current,
                format!("A `{status}` case cannot be reassigned."),
            ));
        }
        let delegated_by = match input.action {
            AssignmentAction::Take => None,
            AssignmentAction::Delegate => Some(actor.user_id.clone()),
        };
        // Taking a case delegated to oneself changes who it was delegated by: it leaves the
        // delegator's "delegated" view, as a ticket does.
        let moved = current.assignee_id.as_deref() != Some(assignee.as_str());
        let was_delegated_by = repo::cases::delegated_by(conn, &id)?;
        if moved || was_delegated_by != delegated_by {
            let changes = CaseChanges {
                assignee_id: Some(Some(assignee.clone())),
                delegated_by: Some(delegated_by.clone()),
                ..CaseChanges::default()
            };
            // The new assignee's room changes: after the queue, as `reopen` and payments.
            repo::presence::lock_queue(conn, &current.agency_id)?;
            if !repo::cases::update(conn, &id, current.version, &open, &changes)? {
                return Err(lost_race(conn, &viewer, &id, &open, &if_match));
            }
            let rows = Change::case(&id, input.audit_action()).sent_fields(vec![
                (
                    "assignee_id",
                    current.assignee_id.clone(),
                    Some(Some(assignee.clone())),
                ),
                ("delegated_by", was_delegated_by, Some(delegated_by)),
            ]);
            repo::audit::append(conn, &actor, rows)?;
            // The new assignee hears of it (unless they took it themselves); a case that stays
            // with its operator is assigned to no one (no `assigned` event, webhook or trigger).
            if moved {
                notifier.notify_users(
                    conn,
                    &current,
                    Event::Assigned,
                    &[],
                    &[assignee],
                    Some(&actor.user_id),
                    None,
                    None,
                )?;
            }
        }
        reload_card(conn, &viewer, &id)
    })
    .await?;
    Ok(HttpResponse::Ok()
        .insert_header(("ETag", etag(view.version)))
        .json(view))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AgentsView {
    pub agents: Vec<PersonView>,
}

/// List the agents on a case
///
/// Its `ETag` is the case's version, which `PUT` takes in `If-Match`; 304 when `If-None-Match`
/// names it. As on the card, an agent's new name does not move the version: a revalidation may
/// keep the old one until the case next changes. Roles: anyone who can see the case.
#[utoipa::path(
    tag = "cases",
    operation_id = "list_case_agents",
    params(("id" = Uuid, Path, description = "Case id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The case's agents, by name", body = AgentsView,
            headers(("ETag" = String, description = "The case's version"))),
        (status = 304, description = "Unchanged since the `If-None-Match` version"),
        (status = 404, description = "No such case, or not one the caller can see"),
    )
)]
#[get("/v1/cases/{id}/agents")]
pub async fn list_agents(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: Token,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let asking = Asking::new(token, &req);
    let id = id.into_inner().to_string();
    let (version, agents) = db::read(&state.pool, move |conn| {
        let Asked { viewer, .. } = asking.resolve(conn)?;
        let case = find_visible(conn, &viewer, &id)?;
        Ok((case.version, repo::cases::agents(conn, &id)?))
    })
    .await?;
    let agents = AgentsView {
        agents: agents.into_iter().map(PersonView::from).collect(),
    };
    Ok(versioned_response(&req, version, &agents))
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"agent_ids": ["0193a6f2-3333-7b51-9d0a-3f1e2a4b5c6d"]}))]
pub struct SetAgents {
    /// The complete new set (at most 20; empty removes everyone): active `agent` users of the
    /// case's agency.
    #[validate(length(max = 20))]
    #[schema(max_items = 20)]
    pub agent_ids: Vec<Uuid>,
}

/// Set the agents on a case
///
/// Replaces the case's field agents. Only active `agent` users of the case's agency (anyone
/// else is 422 with `invalid_agent` in `errors` at each such id), only while the case is `in_progress` (409 otherwise). Recorded
/// in the audit trail; bumps the case version. Honours `If-Match`. Roles: agency.
#[utoipa::path(
    tag = "cases",
    operation_id = "set_case_agents",
    params(
        ("id" = Uuid, Path, description = "Case id"),
        IfMatch,
    ),
    request_body = SetAgents,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The new set", body = AgentsView, headers(("ETag" = String, description = "The case's new version"))),
        (status = 403, description = "Only agency staff assign agents"),
        (status = 404, description = "No such case, or not one the caller can see"),
        (status = 409, description = "The case is not `in_progress` (`wrong_state`)"),
        (status = 412, description = "`If-Match` is stale"),
        (status = 422, description = "An id is not an active agent of the case's agency"),
    )
)]
#[put("/v1/cases/{id}/agents")]
pub async fn set_agents(
    req: HttpRequest,
    if_match: IfMatch,
    state: web::Data<AppState>,
    token: Token,
    id: web::Path<Uuid>,
    body: ValidJson<SetAgents>,
) -> Result<HttpResponse, ApiError> {
    let asking = Asking::new(token, &req);
    let id = id.into_inner().to_string();
    let requested: Vec<String> = body.0.agent_ids.iter().map(|a| a.to_string()).collect();
    let mut wanted = requested.clone();
    wanted.sort();
    wanted.dedup();
    let notifier = state.notifier.clone();
    let (agents, version) = db::write(&state.pool, move |conn| {
        let Asked { viewer, actor, .. } = asking.resolve(conn)?;
        let current = find_visible(conn, &viewer, &id)?;
        if viewer.role != Role::Agency {
            return Err(ApiError::Forbidden(
                "Only agency staff assign agents.".into(),
            ));
        }
        let found = repo::cases::staff_among(conn, &current.agency_id, Role::Agent, &wanted)?;
        // Pointers name positions in the body as sent.
        let invalid: Vec<_> = requested
            .iter()
            .enumerate()
            .filter(|(_, w)| !found.iter().any(|f| &f.id == *w))
            .map(|(i, _)| {
                crate::errors::FieldError::new(
                    format!("/agent_ids/{i}"),
                    "invalid_agent",
                    "not an active agent of this case's agency",
                )
            })
            .collect();
        if !invalid.is_empty() {
            return Err(ApiError::validation(invalid));
        }
        if_match.check(current.version)?;
        let assignable = workflow::statuses_where(|s| s.agents_assignable);
        let status = current.status();
        if !assignable.contains(&status.as_str()) {
            return Err(wrong_state(
                &viewer,
                &current,
                format!("Agents are assigned only while the case is in progress, not `{status}`."),
            ));
        }
        let mut before_sorted: Vec<String> = repo::cases::agents(conn, &id)?
            .into_iter()
            .map(|p| p.id)
            .collect();
        before_sorted.sort();
        let mut version = current.version;
        if before_sorted != wanted {
            let statuses = [status];
            if !repo::cases::update(
                conn,
                &id,
                current.version,
                &statuses,
                &CaseChanges::default(),
            )? {
                return Err(lost_race(conn, &viewer, &id, &statuses, &if_match));
            }
            version += 1;
            repo::cases::set_agents(conn, &id, &wanted)?;
            let added: Vec<String> = wanted
                .iter()
                .filter(|w| !before_sorted.contains(w))
                .cloned()
                .collect();
            // Only agents put on the case are told (and webhooks hear of it).
            if !added.is_empty() {
                notifier.notify_users(
                    conn,
                    &current,
                    Event::Assigned,
                    &[],
                    &added,
                    Some(&actor.user_id),
                    None,
                    None,
                )?;
                // The agency's `assigned` triggers may have changed the case since.
                if let Some(case) = repo::cases::find(conn, &CaseScope::All, &id)? {
                    version = case.version;
                }
            }
            let row = Change::entity("case_agents", &id, Some(&id), "set_agents").field(
                "agent_ids",
                Some(serde_json::json!(before_sorted).to_string()),
                Some(serde_json::json!(wanted).to_string()),
            );
            repo::audit::append(conn, &actor, vec![row])?;
        }
        Ok((repo::cases::agents(conn, &id)?, version))
    })
    .await?;
    Ok(HttpResponse::Ok()
        .insert_header(("ETag", etag(version)))
        .json(AgentsView {
            agents: agents.into_iter().map(PersonView::from).collect(),
        }))
}
