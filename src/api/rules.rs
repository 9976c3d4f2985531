//! The business-rule log: each rule the server fired by itself, with its trigger, the action
//! it took and the outcome (`crate::rules`).

use actix_web::{HttpRequest, HttpResponse, get, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::api::case_access::find_visible;
use crate::api::{Asked, Asking, timestamp};
use crate::app::AppState;
use crate::auth::Token;
use crate::db;
use crate::domain::Role;
use crate::errors::ApiError;
use crate::http::extract::{Page, PageRequest, Query, page_response};
use crate::repo;
use crate::repo::rules::{RuleLogFilter, RuleLogRow};

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0193a6f9-9999-7c2d-8e3f-405162738495",
    "rule": "auto_close",
    "trigger": "confirmation_overdue",
    "action": "auto_close",
    "case_id": "0193a6f4-2222-7c2d-8e3f-405162738495",
    "ticket_id": null,
    "outcome": "closed",
    "detail": "Completed at 2026-11-25T09:00:00Z; neither confirmed nor disputed by the client within 259200 s.",
    "created_at": "2026-11-28T09:00:05Z"
}))]
pub struct RuleLogEntry {
    /// Also the `request_id` of the audit rows the rule wrote.
    #[schema(format = "uuid")]
    pub id: String,
    /// The rule that fired (`auto_close`, `ticket_auto_close`, `auto_assign`, `sla_warning`,
    /// `sla_breach`, or `trigger`: one of the agency's own, named with its id in `detail`).
    pub rule: String,
    /// What made it fire (`confirmation_overdue`: the client neither confirmed nor disputed a
    /// completed case in time; `resolution_not_reactivated`: nobody reactivated a resolved
    /// ticket in time; `case_paid`, `payment_confirmed`, `operator_available`,
    /// `capacity_changed`, `queue_check`: the occasions `auto_assign` serves the agency's queue;
    /// `<clock>_at_risk` and `<clock>_overdue` (`first_response`, `resolution`): an SLA
    /// clock's warning and breach; for `trigger`, the event).
    pub trigger: String,
    /// What it did: a workflow action (`auto_close`), `assign`, `notify` (an SLA warning or
    /// breach), or a trigger's actions in order, comma-separated.
    pub action: String,
    #[schema(format = "uuid")]
    pub case_id: Option<String>,
    /// The support ticket it fired on (`ticket_auto_close`).
    #[schema(format = "uuid")]
    pub ticket_id: Option<String>,
    /// How it ended (`closed`; `assigned`; `notified`; a trigger's `applied`, or
    /// `nothing_to_do` when the case was already as its actions would leave it; `detail` has
    /// each action's outcome).
    pub outcome: String,
    pub detail: Option<String>,
    #[serde(serialize_with = "crate::api::rfc3339")]
    pub created_at: DateTime<Utc>,
}

impl From<RuleLogRow> for RuleLogEntry {
    fn from(r: RuleLogRow) -> Self {
        RuleLogEntry {
            id: r.id,
            rule: r.rule,
            trigger: r.trigger_event,
            action: r.action,
            case_id: r.case_id,
            ticket_id: r.ticket_id,
            outcome: r.outcome,
            detail: r.detail,
            created_at: timestamp(r.created_at),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RuleLogQuery {
    #[param(minimum = 1, maximum = 100, default = 25)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A case's rule log
///
/// The rules that fired on the case, newest first; cursor pagination. Roles: agency staff
/// (their agency's cases; other cases are 404) and platform staff; agents and clients are 403.
#[utoipa::path(
    tag = "rules",
    operation_id = "list_case_rule_log",
    params(("id" = Uuid, Path, description = "Case id"), RuleLogQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "One page of rule-log entries", body = Page<RuleLogEntry>,
            headers(("Link" = String, description = "`<…>; rel=\"next\"` when another page follows"))),
        (status = 403, description = "Only agency and platform staff read the rule log"),
        (status = 404, description = "No such case, or not one the caller can see"),
    )
)]
#[get("/v1/cases/{id}/rule-log")]
pub async fn list_case_rule_log(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: Token,
    id: web::Path<Uuid>,
    query: Query<RuleLogQuery>,
) -> Result<HttpResponse, ApiError> {
    rule_log_answer(req, state, token, Some(id.into_inner().to_string()), query).await
}

/// The rule log
///
/// Every rule that fired, newest first, for platform staff; for agency staff, the entries of
/// their agency's cases and support tickets. Cursor pagination. Roles: agency and platform staff; agents and
/// clients are 403.
#[utoipa::path(
    tag = "rules",
    operation_id = "list_rule_log",
    params(RuleLogQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "One page of rule-log entries", body = Page<RuleLogEntry>,
            headers(("Link" = String, description = "`<…>; rel=\"next\"` when another page follows"))),
        (status = 403, description = "Only agency and platform staff read the rule log"),
    )
)]
#[get("/v1/rule-log")]
pub async fn list_rule_log(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: Token,
    query: Query<RuleLogQuery>,
) -> Result<HttpResponse, ApiError> {
    rule_log_answer(req, state, token, None, query).await
}

async fn rule_log_answer(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: Token,
    case_id: Option<String>,
    query: Query<RuleLogQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = PageRequest::new(query.limit, query.cursor.as_deref())?;
    let asking = Asking::new(token, &req);
    let (rows, page) = db::read(&state.pool, move |conn| {
        let Asked { caller, viewer, .. } = asking.resolve(conn)?;
        let staff = matches!(caller.role, Role::Agency | Role::Platform);
        caller.require(staff, "read the rule log")?;
        if let Some(case_id) = &case_id {
            find_visible(conn, &viewer, case_id)?;
        }
        // Agency staff read their agency's entries only, in the query itself.
        let filter = RuleLogFilter {
            agency_id: match caller.role {
                // An agency user always has an agency; without one, an empty id matches nothing.
                Role::Agency => Some(caller.agency_id.clone().unwrap_or_default()),
                _ => None,
            },
            case_id,
        };
        let rows = repo::rules::list(conn, &filter, page.after.as_deref(), page.fetch())?;
        Ok((rows, page))
    })
    .await?;
    let page = page.page(rows, |r| &r.id, RuleLogEntry::from);
    Ok(page_response(&req, page))
}
