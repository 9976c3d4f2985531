//! Presence and workload (DESIGN.md "Presence and capacity"): staff say whether they are
//! available and which case they are working on; supervisors see their people with the open
//! work each holds against their capacity (their own, else `DOSSIER_OPERATOR_CAPACITY`).

use actix_web::{HttpRequest, HttpResponse, get, put, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use validator::Validate;

use crate::api::case_access::visible_case_id;
use crate::api::cases::PersonView;
use crate::api::{Asked, Asking, timestamp};
use crate::app::AppState;
use crate::auth::{AuthUser, Token};
use crate::db::{self, DbConnection};
use crate::domain::{PresenceStatus, Role, code_enum};
use crate::errors::ApiError;
use crate::http::extract::{Page, PageRequest, Query, ValidJson, page_response};
use crate::repo;
use crate::repo::presence::{OpenWork, PresenceRow, StaffScope};
use crate::ticket_workflow::WORKED;
use crate::workflow;

code_enum! {
    /// `working` while the staff member has a case open (`working_on`), `waiting` otherwise.
    Activity {
        Working = "working",
        Waiting = "waiting",
    }
}

/// A staff member's presence as they set it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"status": "available", "activity": "working", "working_on": "0193a6f4-2222-7c2d-8e3f-405162738495", "updated_at": "2026-11-24T09:30:00Z"}))]
pub struct PresenceView {
    pub status: PresenceStatus,
    pub activity: Activity,
    /// The case they have open.
    #[schema(format = "uuid")]
    pub working_on: Option<String>,
    /// When they last set it; `null` if they never did (then `offline`).
    #[serde(serialize_with = "crate::api::rfc3339_opt")]
    pub updated_at: Option<DateTime<Utc>>,
}

impl PresenceView {
    fn new(
        status: Option<String>,
        working_on: Option<String>,
        updated_at: Option<chrono::NaiveDateTime>,
    ) -> PresenceView {
        PresenceView {
            status: status
                .as_deref()
                .and_then(PresenceStatus::from_code)
                .unwrap_or(PresenceStatus::Offline),
            activity: match working_on {
                Some(_) => Activity::Working,
                None => Activity::Waiting,
            },
            working_on,
            updated_at: updated_at.map(timestamp),
        }
    }

    /// The caller's presence, for `GET /v1/me` and `/v1/me/presence`: `None` for clients.
    pub fn of(
        conn: &mut DbConnection,
        user_id: &str,
        role: Role,
    ) -> Result<Option<Self>, ApiError> {
        if role == Role::Client {
            return Ok(None);
        }
        let row = repo::presence::of(conn, user_id)?;
        Ok(Some(match row {
            Some(r) => PresenceView::new(Some(r.status), r.working_on, Some(r.updated_at)),
            None => PresenceView::new(None, None, None),
        }))
    }
}

fn staff_only(caller: &AuthUser) -> Result<(), ApiError> {
    caller.require(caller.role != Role::Client, "have a presence")
}

/// The caller's presence
///
/// Roles: platform, agency, agent (clients have none: 403).
#[utoipa::path(
    tag = "presence",
    operation_id = "get_my_presence",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's presence", body = PresenceView),
        (status = 403, description = "Clients have no presence"),
    )
)]
#[get("/v1/me/presence")]
pub async fn get_my_presence(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: Token,
) -> Result<HttpResponse, ApiError> {
    let asking = Asking::new(token, &req);
    let view = db::read(&state.pool, move |conn| {
        let Asked { caller, .. } = asking.resolve(conn)?;
        staff_only(&caller)?;
        PresenceView::of(conn, &caller.id, caller.role)
    })
    .await?;
    Ok(HttpResponse::Ok().json(view))
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"status": "available", "working_on": "0193a6f4-2222-7c2d-8e3f-405162738495"}))]
pub struct SetPresence {
    pub status: PresenceStatus,
    /// The case the caller has open (one they can see; 422 `case_unavailable` otherwise):
    /// the app sets it on opening a case and sends `null` (or nothing) on leaving it. Ignored
    /// with `offline`.
    pub working_on: Option<Uuid>,
}

/// Set the caller's presence
///
/// The status, and the case the caller is working on (`activity` `working`), or none
/// (`waiting`). When an agency operator sets `available`, the agency's queued cases (paid,
/// `in_approval`, unassigned; oldest first) go to the available operators with room, them
/// included (the `auto_assign` rule).
/// Roles: platform, agency, agent (clients: 403).
#[utoipa::path(
    tag = "presence",
    operation_id = "set_my_presence",
    request_body = SetPresence,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's presence", body = PresenceView),
        (status = 403, description = "Clients have no presence"),
        (status = 422, description = "`working_on` is not a case the caller can see (`case_unavailable`)"),
    )
)]
#[put("/v1/me/presence")]
pub async fn set_my_presence(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: Token,
    body: ValidJson<SetPresence>,
) -> Result<HttpResponse, ApiError> {
    let input = body.0;
    let user_id = token.user_id().to_owned();
    let asking = Asking::new(token, &req);
    let notifier = state.notifier.clone();
    let capacity = state.settings.operator_capacity;
    let view = db::write(&state.pool, move |conn| {
        // An operator going available serves the agency's queue below: its lock comes before
        // their rows, as in every write that serves it or ends its staff's sessions (which
        // then wait for those rows). Role and agency never change: read here unlocked.
        let serves = match input.status {
            PresenceStatus::Available => repo::users::find_caller(conn, &user_id)?.and_then(|u| {
                repo::presence::queue_of(u.role(), u.agency_id.as_deref()).map(str::to_owned)
            }),
            _ => None,
        };
        if let Some(agency) = &serves {
            repo::presence::lock_queue(conn, agency)?;
        }
        // Their row is share-locked before they are read (PostgreSQL): sessions ending
        // meanwhile (a logout everywhere) set them offline before this runs, or after it.
        repo::users::lock_for_new_session(conn, &user_id)?;
        let Asked { caller, viewer, .. } = asking.resolve(conn)?;
        staff_only(&caller)?;
        // Nobody works on a case offline.
        let working_on = match input.status {
            PresenceStatus::Offline => None,
            _ => input
                .working_on
                .map(|id| visible_case_id(conn, &viewer, id, "/working_on"))
                .transpose()?,
        };
        repo::presence::set(
            conn,
            &PresenceRow {
                user_id: caller.id.clone(),
                status: input.status.as_str().to_owned(),
                working_on,
                updated_at: db::now(),
                last_assigned_at: None,
            },
        )?;
        // An operator available: the agency's queue goes to who has room, them included.
        if let Some(agency) = serves {
            let trigger = "operator_available";
            crate::rules::serve_queue(conn, &notifier, &agency, capacity, trigger)?;
        }
        PresenceView::of(conn, &caller.id, caller.role)
    })
    .await?;
    Ok(HttpResponse::Ok().json(view))
}

/// A staff member as their supervisor sees them.
#[derive(Debug, Serialize, ToSchema)]
pub struct StaffPresenceView {
    pub user: PersonView,
    pub role: Role,
    #[serde(flatten)]
    pub presence: PresenceView,
    /// Their open work as an operator: for agency staff the cases they are responsible for
    /// that are neither terminal nor `completed`; for platform staff their tickets being worked
    /// (`new`, `open`, `waiting_on_requester`). `null` for agents, who are not operators (their
    /// operators put them on cases).
    pub workload: Option<i64>,
    /// Their own capacity (`POST /v1/users`, `PATCH /v1/users/{id}`), else the server's
    /// `DOSSIER_OPERATOR_CAPACITY`; `null` for agents.
    pub capacity: Option<i64>,
    /// What is left of the capacity (0 at or past it); `null` for agents.
    pub room: Option<i64>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListPresenceQuery {
    /// Platform admins: this agency's staff and agents instead of platform staff.
    pub agency_id: Option<Uuid>,
    /// Only these statuses (repeat the parameter for several); `offline` includes those who
    /// never set one.
    #[serde(default)]
    #[param(style = Form, explode)]
    pub status: Vec<PresenceStatus>,
    #[param(minimum = 1, maximum = 100, default = 25)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Presence and workload of a team
///
/// Active staff by id, each with their presence and the open work they hold against their
/// capacity. Agency admins see their agency's staff and agents; platform admins see platform
/// staff, or an agency's people with `agency_id`. Roles: agency and platform admins (others
/// 403; `agency_id` from an agency admin is 403).
#[utoipa::path(
    tag = "presence",
    operation_id = "list_presence",
    params(ListPresenceQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "One page of staff", body = Page<StaffPresenceView>,
            headers(("Link" = String, description = "`<…>; rel=\"next\"` when another page follows"))),
        (status = 403, description = "Only agency and platform admins supervise presence"),
        (status = 404, description = "No such agency (`agency_id`)"),
    )
)]
#[get("/v1/presence")]
pub async fn list_presence(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: Token,
    query: Query<ListPresenceQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.0;
    let page = PageRequest::new(query.limit, query.cursor.as_deref())?;
    let asking = Asking::new(token, &req);
    let default_capacity = state.settings.operator_capacity;
    let (rows, load, page) = db::read(&state.pool, move |conn| {
        let Asked { caller, .. } = asking.resolve(conn)?;
        let scope = match (caller.role, query.agency_id) {
            (Role::Platform, None) if caller.admin => StaffScope::Platform,
            (Role::Platform, Some(agency)) if caller.admin => {
                let agency = agency.to_string();
                if repo::agencies::find(conn, &agency)?.is_none() {
                    return Err(ApiError::NotFound("No such agency.".into()));
                }
                StaffScope::Agency(agency)
            }
            (Role::Agency, None) if caller.admin => {
                StaffScope::Agency(caller.agency_id.clone().unwrap_or_default())
            }
            _ => {
                return Err(ApiError::Forbidden(
                    "Only agency and platform admins supervise presence; only platform admins \
                     choose the agency."
                        .into(),
                ));
            }
        };
        let rows = repo::presence::list(
            conn,
            &scope,
            &query.status,
            page.after.as_deref(),
            page.fetch(),
        )?;
        let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
        let assigned = workflow::holding_statuses();
        let tickets: Vec<&str> = WORKED.iter().map(|s| s.as_str()).collect();
        let open = OpenWork {
            assigned_cases: &assigned,
            tickets: &tickets,
        };
        let load = repo::presence::workload(conn, &scope, &ids, &open)?;
        Ok((rows, load, page))
    })
    .await?;
    let page = page.page(
        rows,
        |r| r.id.as_str(),
        |r| {
            let role = Role::from_code(&r.role).unwrap_or(Role::Agent);
            let operator = role.is_operator();
            let workload = operator.then(|| load.get(&r.id).copied().unwrap_or(0));
            let capacity = repo::users::effective_capacity(r.capacity, default_capacity);
            StaffPresenceView {
                role,
                presence: PresenceView::new(r.status, r.working_on, r.updated_at),
                user: PersonView {
                    id: r.id,
                    name: r.name,
                },
                workload,
                capacity: operator.then_some(capacity),
                room: workload.map(|n| (capacity - n).max(0)),
            }
        },
    );
    Ok(page_response(&req, page))
}
