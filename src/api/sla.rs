//! SLA (DESIGN.md "SLA"): business calendars and policies, which agency admins manage for their
//! agency and platform admins for the platform (the default of agencies without one), and the
//! clocks of each case and support ticket (`crate::sla` runs them).

use actix_web::{HttpRequest, HttpResponse, get, post, web};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use validator::Validate;

use crate::api::case_access::find_visible;
use crate::api::{Asked, Asking, PlainDate, timestamp};
use crate::app::AppState;
use crate::auth::{AuthUser, Token};
use crate::business_time::{Calendar, Hours, OpeningHours};
use crate::db::{self, DbConnection};
use crate::domain::Role;
use crate::errors::{ApiError, FieldError};
use crate::http::extract::{Page, PageRequest, Query, ValidJson, page_response};
use crate::http::idempotency::{self, Authorized, Created, IdempotencyKey};
use crate::repo;
use crate::repo::audit::Change;
use crate::repo::sla::{CalendarRow, Holder, OwnerScope, PolicyRow};
use crate::sla::{Clock, ClockState, SlaState, Targets};
use diesel::QueryResult;

/// The agency whose calendars and policies the caller manages (`None`: the platform's); 403
/// for anyone but agency and platform admins.
fn managed_owner(caller: &AuthUser) -> Result<Option<String>, ApiError> {
    match (caller.role, &caller.agency_id) {
        (Role::Agency, Some(agency)) if caller.admin => Ok(Some(agency.clone())),
        (Role::Platform, _) if caller.admin => Ok(None),
        _ => Err(ApiError::Forbidden(
            "Only agency and platform admins manage SLA calendars and policies.".into(),
        )),
    }
}

/// Whose calendars and policies the caller reads: agency staff their agency's and the
/// platform's, platform staff everyone's (or one agency's); 403 for agents and clients.
fn read_scope(caller: &AuthUser, agency_id: Option<Uuid>) -> Result<OwnerScope, ApiError> {
    match (caller.role, &caller.agency_id, agency_id) {
        (Role::Platform, _, agency) => Ok(OwnerScope::All(agency.map(|a| a.to_string()))),
        (Role::Agency, Some(own), None) => Ok(OwnerScope::AgencyAndPlatform(own.clone())),
        // Their agency's alone, without the platform's.
        (Role::Agency, Some(own), Some(agency)) if agency.to_string() == *own => {
            Ok(OwnerScope::All(Some(own.clone())))
        }
        (Role::Agency, _, Some(_)) => Err(ApiError::Forbidden(
            "`agency_id` is for platform staff, or your own agency's alone.".into(),
        )),
        _ => Err(ApiError::Forbidden(
            "Only agency and platform staff read SLA calendars and policies.".into(),
        )),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListOwnedQuery {
    /// Only this agency's (the platform's own have none): any agency for platform staff, their
    /// own for agency staff.
    pub agency_id: Option<Uuid>,
    #[param(minimum = 1, maximum = 100, default = 25)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A business calendar: the hours an SLA clock under it counts.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0193a6f4-5555-7c2d-8e3f-405162738495",
    "agency_id": "0193a6f4-0000-7c2d-8e3f-405162738495",
    "name": "Rome office",
    "time_zone": "Europe/Rome",
    "hours": [{"weekday": "mon", "opens": "09:00", "closes": "18:00"}],
    "holidays": ["2026-12-25"],
    "created_at": "2026-11-24T09:30:00Z"
}))]
pub struct CalendarView {
    #[schema(format = "uuid")]
    pub id: String,
    /// `null`: the platform's, usable by every agency.
    #[schema(format = "uuid")]
    pub agency_id: Option<String>,
    pub name: String,
    /// IANA time zone the hours are in.
    pub time_zone: String,
    pub hours: Vec<OpeningHours>,
    pub holidays: Vec<NaiveDate>,
    #[serde(serialize_with = "crate::api::rfc3339")]
    pub created_at: DateTime<Utc>,
}

impl TryFrom<CalendarRow> for CalendarView {
    type Error = ApiError;

    fn try_from(row: CalendarRow) -> Result<Self, ApiError> {
        Ok(CalendarView {
            hours: serde_json::from_str(&row.hours).map_err(ApiError::internal)?,
            holidays: serde_json::from_str(&row.holidays).map_err(ApiError::internal)?,
            id: row.id,
            agency_id: row.agency_id,
            name: row.name,
            time_zone: row.time_zone,
            created_at: timestamp(row.created_at),
        })
    }
}

#[derive(Debug, Serialize, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "name": "Rome office",
    "time_zone": "Europe/Rome",
    "hours": [
        {"weekday": "mon", "opens": "09:00", "closes": "13:00"},
        {"weekday": "mon", "opens": "14:00", "closes": "18:00"},
        {"weekday": "tue", "opens": "09:00", "closes": "18:00"}
    ],
    "holidays": ["2026-12-25", "2026-12-26"]
}))]
pub struct CreateCalendar {
    #[serde(deserialize_with = "crate::api::trimmed")]
    #[validate(length(min = 1, max = 100))]
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    /// An IANA time zone name (`Europe/Rome`, `UTC`).
    #[validate(length(min = 1, max = 64))]
    #[schema(min_length = 1, max_length = 64)]
    pub time_zone: String,
    /// Opening windows; several per weekday allowed, not overlapping. At least one.
    #[validate(length(min = 1, max = 70))]
    #[schema(min_items = 1, max_items = 70)]
    pub hours: Vec<OpeningHours>,
    /// Dates (local to the calendar, `YYYY-MM-DD`) with no business hours.
    #[serde(default)]
    #[validate(length(max = 500))]
    #[schema(max_items = 500, value_type = Vec<NaiveDate>)]
    pub holidays: Vec<PlainDate>,
}

fn problems_to_errors(problems: Vec<(String, String)>) -> ApiError {
    ApiError::validation(
        problems
            .into_iter()
            .map(|(pointer, detail)| FieldError::new(pointer, "invalid", detail))
            .collect(),
    )
}

/// List business calendars
///
/// Newest first. Agency staff see their agency's and the platform's; platform staff see all,
/// or one agency's with `agency_id` (agency staff: their own). Roles: agency and platform staff.
#[utoipa::path(
    tag = "sla",
    operation_id = "list_calendars",
    params(ListOwnedQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "One page of calendars", body = Page<CalendarView>,
            headers(("Link" = String, description = "`<…>; rel=\"next\"` when another page follows"))),
        (status = 403, description = "Agents and clients read no calendars; agency staff name no other agency in `agency_id`"),
    )
)]
#[get("/v1/calendars")]
pub async fn list_calendars(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: Token,
    query: Query<ListOwnedQuery>,
) -> Result<HttpResponse, ApiError> {
    owned_page::<_, CalendarView>(
        &req,
        &state,
        token,
        &query,
        repo::sla::list_calendars,
        |r| &r.id,
    )
    .await
}

/// Reads one page of calendars or policies.
type ListOwned<R> = fn(&mut DbConnection, &OwnerScope, Option<&str>, i64) -> QueryResult<Vec<R>>;

/// One page of calendars or policies, as the caller may read them, newest first.
async fn owned_page<R, V>(
    req: &HttpRequest,
    state: &AppState,
    token: Token,
    query: &ListOwnedQuery,
    list: ListOwned<R>,
    id_of: fn(&R) -> &str,
) -> Result<HttpResponse, ApiError>
where
    R: Send + 'static,
    V: TryFrom<R, Error = ApiError> + Serialize + ToSchema,
{
    let page = PageRequest::new(query.limit, query.cursor.as_deref())?;
    let agency_id = query.agency_id;
    let (rows, page) = db::read(&state.pool, move |conn| {
        let scope = read_scope(&token.user(conn)?, agency_id)?;
        let rows = list(conn, &scope, page.after.as_deref(), page.fetch())?;
        Ok((rows, page))
    })
    .await?;
    Ok(page_response(req, page.try_page::<R, V>(rows, id_of)?))
}

/// Get a business calendar
///
/// Agency staff read their agency's and the platform's (404 for another agency's); platform
/// staff any. Roles: agency and platform staff.
#[utoipa::path(
    tag = "sla",
    operation_id = "get_calendar",
    params(("id" = Uuid, Path, description = "Calendar id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The calendar", body = CalendarView),
        (status = 403, description = "Agents and clients read no calendars"),
        (status = 404, description = "No such calendar, or not one the caller can read"),
    )
)]
#[get("/v1/calendars/{id}")]
pub async fn get_calendar(
    state: web::Data<AppState>,
    token: Token,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    owned_item::<_, CalendarView>(&state, token, *id, "calendar", repo::sla::find_calendar).await
}

/// Reads one calendar or policy.
type FindOwned<R> = fn(&mut DbConnection, &OwnerScope, &str) -> QueryResult<Option<R>>;

/// A calendar or policy as the caller may read it, or 404.
async fn owned_item<R, V>(
    state: &AppState,
    token: Token,
    id: Uuid,
    what: &'static str,
    find: FindOwned<R>,
) -> Result<HttpResponse, ApiError>
where
    R: Send + 'static,
    V: TryFrom<R, Error = ApiError> + Serialize,
{
    let row = db::read(&state.pool, move |conn| {
        let scope = read_scope(&token.user(conn)?, None)?;
        find(conn, &scope, &id.to_string())?
            .ok_or_else(|| ApiError::NotFound(format!("No such {what}, or not one you can read.")))
    })
    .await?;
    Ok(HttpResponse::Ok().json(V::try_from(row)?))
}

/// Create a business calendar
///
/// Agency admins create their agency's, platform admins the platform's. The hours are local to
/// `time_zone`; a window that a daylight-saving jump skips starts when the clock resumes.
/// Roles: agency and platform admins.
#[utoipa::path(
    tag = "sla",
    operation_id = "create_calendar",
    request_body = CreateCalendar,
    params(IdempotencyKey),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = CalendarView,
            headers(("Location" = String, description = "The calendar's URL"))),
        (status = 403, description = "Only agency and platform admins"),
        (status = 422, description = "An unknown time zone, a window closing before it opens, overlapping windows, or no window"),
    )
)]
#[post("/v1/calendars")]
pub async fn create_calendar(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: Token,
    key: IdempotencyKey,
    body: ValidJson<CreateCalendar>,
) -> Result<HttpResponse, ApiError> {
    let asking = Asking::new(token, &req);
    let input = body.0;
    let holidays: Vec<NaiveDate> = input.holidays.iter().map(|day| day.0).collect();
    let checked = Calendar::new(&input.time_zone, &input.hours, &holidays).map(drop);
    idempotency::create(&state, &req, key, input, move |conn| {
        let Asked { caller, actor, .. } = asking.resolve(conn)?;
        let agency_id = managed_owner(&caller)?;
        checked.map_err(problems_to_errors)?;
        let create = move |conn: &mut DbConnection, input: CreateCalendar| {
            let mut holidays = input.holidays;
            holidays.sort();
            holidays.dedup();
            let row = CalendarRow {
                id: repo::new_id(),
                agency_id,
                name: input.name,
                time_zone: input.time_zone,
                hours: serde_json::to_string(&input.hours).map_err(ApiError::internal)?,
                holidays: serde_json::to_string(&holidays).map_err(ApiError::internal)?,
                created_at: db::now(),
            };
            repo::sla::insert_calendar(conn, &row)?;
            let owner = row.agency_id.as_deref();
            let change = Change::outside_cases("calendar", &row.id, owner, "create");
            let name = change.field("name", None, Some(row.name.clone()));
            repo::audit::append(conn, &actor, vec![name])?;
            let view = CalendarView::try_from(row)?;
            Ok(Created {
                location: Some(format!("/v1/calendars/{}", view.id)),
                version: None,
                body: view,
            })
        };
        Ok(Authorized {
            user_id: caller.id,
            create,
        })
    })
    .await
}

/// An SLA policy: targets per priority, counted in a calendar's hours or around the clock.
#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyView {
    #[schema(format = "uuid")]
    pub id: String,
    /// `null`: the platform's.
    #[schema(format = "uuid")]
    pub agency_id: Option<String>,
    pub name: String,
    /// `null`: around the clock.
    #[schema(format = "uuid")]
    pub calendar_id: Option<String>,
    /// Share of a target after which a clock is `at_risk`.
    pub warning_percent: i32,
    pub targets: Targets,
    /// The policy new clocks of its owner's cases follow (the platform's: of every agency
    /// without a default of its own, and of every support ticket). Clocks already running keep
    /// the targets they started with.
    pub default: bool,
    #[serde(serialize_with = "crate::api::rfc3339")]
    pub created_at: DateTime<Utc>,
}

impl TryFrom<PolicyRow> for PolicyView {
    type Error = ApiError;

    fn try_from(row: PolicyRow) -> Result<Self, ApiError> {
        Ok(PolicyView {
            targets: serde_json::from_str(&row.targets).map_err(ApiError::internal)?,
            id: row.id,
            agency_id: row.agency_id,
            name: row.name,
            calendar_id: row.calendar_id,
            warning_percent: row.warning_percent,
            default: row.is_default,
            created_at: timestamp(row.created_at),
        })
    }
}

fn default_warning_percent() -> i32 {
    80
}

#[derive(Debug, Serialize, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "name": "Standard",
    "calendar_id": "0193a6f4-5555-7c2d-8e3f-405162738495",
    "warning_percent": 80,
    "default": true,
    "targets": {
        "low": {"first_response": 1440, "decision": 2880, "resolution": 43200},
        "normal": {"first_response": 480, "decision": 1440, "resolution": 20160},
        "high": {"first_response": 120, "decision": 480, "resolution": 10080},
        "urgent": {"first_response": 30, "decision": 120, "resolution": 2880}
    }
}))]
pub struct CreatePolicy {
    #[serde(deserialize_with = "crate::api::trimmed")]
    #[validate(length(min = 1, max = 100))]
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    /// A calendar of the caller's agency or the platform's (422 `calendar_unavailable`
    /// otherwise); absent or `null`: around the clock.
    pub calendar_id: Option<Uuid>,
    /// Share of a target after which a clock is `at_risk` (default 80).
    #[serde(
        default = "default_warning_percent",
        deserialize_with = "crate::api::whole_number"
    )]
    #[validate(range(min = 1, max = 99))]
    #[schema(minimum = 1, maximum = 99, default = 80)]
    pub warning_percent: i32,
    /// Make it the owner's default (default `true`): the previous default stops being one.
    #[serde(default = "crate::api::yes")]
    #[schema(default = true)]
    pub default: bool,
    /// Minutes of business time per priority and clock, each 1 to 525 600 (a year).
    #[validate(nested)]
    pub targets: Targets,
}

/// List SLA policies
///
/// Newest first. Agency staff see their agency's and the platform's; platform staff see all,
/// or one agency's with `agency_id` (agency staff: their own). Roles: agency and platform staff.
#[utoipa::path(
    tag = "sla",
    operation_id = "list_sla_policies",
    params(ListOwnedQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "One page of policies", body = Page<PolicyView>,
            headers(("Link" = String, description = "`<…>; rel=\"next\"` when another page follows"))),
        (status = 403, description = "Agents and clients read no policies; agency staff name no other agency in `agency_id`"),
    )
)]
#[get("/v1/sla-policies")]
pub async fn list_sla_policies(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: Token,
    query: Query<ListOwnedQuery>,
) -> Result<HttpResponse, ApiError> {
    owned_page::<_, PolicyView>(&req, &state, token, &query, repo::sla::list_policies, |r| {
        &r.id
    })
    .await
}

/// Get an SLA policy
///
/// Agency staff read their agency's and the platform's (404 for another agency's); platform
/// staff any. Roles: agency and platform staff.
#[utoipa::path(
    tag = "sla",
    operation_id = "get_sla_policy",
    params(("id" = Uuid, Path, description = "Policy id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The policy", body = PolicyView),
        (status = 403, description = "Agents and clients read no policies"),
        (status = 404, description = "No such policy, or not one the caller can read"),
    )
)]
#[get("/v1/sla-policies/{id}")]
pub async fn get_sla_policy(
    state: web::Data<AppState>,
    token: Token,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    owned_item::<_, PolicyView>(&state, token, *id, "SLA policy", repo::sla::find_policy).await
}

/// Create an SLA policy
///
/// Agency admins create their agency's, platform admins the platform's. A new default applies
/// to clocks that start from then on: a case's first-response and decision clocks start when
/// it is paid (`in_approval`), its resolution clock when work starts (`in_progress`). Targets
/// a calendar cannot reach within 20 years are refused. Roles: agency and platform admins.
#[utoipa::path(
    tag = "sla",
    operation_id = "create_sla_policy",
    request_body = CreatePolicy,
    params(IdempotencyKey),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = PolicyView,
            headers(("Location" = String, description = "The policy's URL"))),
        (status = 403, description = "Only agency and platform admins"),
        (status = 422, description = "A member breaks a rule, the calendar is not the caller's to use (`calendar_unavailable`), or a target is out of the calendar's reach"),
    )
)]
#[post("/v1/sla-policies")]
pub async fn create_sla_policy(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: Token,
    key: IdempotencyKey,
    body: ValidJson<CreatePolicy>,
) -> Result<HttpResponse, ApiError> {
    let asking = Asking::new(token, &req);
    idempotency::create(&state, &req, key, body.0, move |conn| {
        let Asked { caller, actor, .. } = asking.resolve(conn)?;
        let agency_id = managed_owner(&caller)?;
        let create = move |conn: &mut DbConnection, input: CreatePolicy| {
            let row = new_policy(conn, agency_id, input)?;
            let demoted = repo::sla::insert_policy(conn, &row)?;
            let owner = row.agency_id.as_deref();
            let change = Change::outside_cases("sla_policy", &row.id, owner, "create");
            let mut changes = change.fields(vec![
                ("name", None, Some(row.name.clone())),
                ("default", None, Some(row.is_default.to_string())),
            ]);
            // The previous default stops being one: its only change after its creation.
            for old in demoted {
                let change = Change::outside_cases("sla_policy", &old, owner, "update");
                changes.extend(change.fields(vec![(
                    "default",
                    Some("true".into()),
                    Some("false".into()),
                )]));
            }
            repo::audit::append(conn, &actor, changes)?;
            let view = PolicyView::try_from(row)?;
            Ok(Created {
                location: Some(format!("/v1/sla-policies/{}", view.id)),
                version: None,
                body: view,
            })
        };
        Ok(Authorized {
            user_id: caller.id,
            create,
        })
    })
    .await
}

/// The policy `input` describes for `agency_id` (`None`: the platform), its calendar checked.
fn new_policy(
    conn: &mut DbConnection,
    agency_id: Option<String>,
    input: CreatePolicy,
) -> Result<PolicyRow, ApiError> {
    let calendar = match input.calendar_id {
        None => None,
        Some(id) => {
            let scope = match &agency_id {
                Some(agency) => OwnerScope::AgencyAndPlatform(agency.clone()),
                None => OwnerScope::All(None),
            };
            let found = repo::sla::find_calendar(conn, &scope, &id.to_string())?;
            // The platform's policies may only count in the platform's calendars.
            let found = found.filter(|c| agency_id.is_some() || c.agency_id.is_none());
            Some(found.ok_or_else(|| ApiError::Unprocessable {
                code: "calendar_unavailable",
                detail: "The calendar is not one this policy may use.".into(),
                errors: vec![FieldError::new(
                    "/calendar_id",
                    "calendar_unavailable",
                    "not a calendar of your agency or the platform",
                )],
            })?)
        }
    };
    let hours: Hours = crate::sla::hours_of(calendar.as_ref());
    if !hours.reaches(input.targets.longest_secs(), db::now().date()) {
        return Err(ApiError::invalid_field(
            "/targets",
            "out_of_reach",
            "the calendar's hours cannot reach the longest target within 20 years",
        ));
    }
    let row = PolicyRow {
        id: repo::new_id(),
        agency_id,
        name: input.name,
        calendar_id: calendar.map(|c| c.id),
        warning_percent: input.warning_percent,
        targets: serde_json::to_string(&input.targets).map_err(ApiError::internal)?,
        is_default: input.default,
        created_at: db::now(),
    };
    Ok(row)
}

/// One SLA clock of a case, read at the time of the request.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "clock": "first_response", "state": "running",
    "policy_id": "0193a6f4-6666-7c2d-8e3f-405162738495",
    "calendar_id": null,
    "started_at": "2026-11-24T09:30:00Z",
    "target_seconds": 28800, "elapsed_seconds": 24000, "remaining_seconds": 4800,
    "due_at": "2026-11-24T17:30:00Z", "at_risk": true, "breached": false,
    "warned_at": "2026-11-24T15:54:00Z", "breached_at": null, "stopped_at": null, "met": null
}))]
pub struct ClockView {
    pub clock: Clock,
    pub state: ClockState,
    #[schema(format = "uuid")]
    pub policy_id: String,
    /// `null`: it counts around the clock.
    #[schema(format = "uuid")]
    pub calendar_id: Option<String>,
    #[serde(serialize_with = "crate::api::rfc3339")]
    pub started_at: DateTime<Utc>,
    /// Business seconds allowed (the policy's minutes for the case's or ticket's priority).
    pub target_seconds: i64,
    /// Business seconds counted so far (pauses excluded).
    pub elapsed_seconds: i64,
    /// `target_seconds - elapsed_seconds`; negative past the target.
    pub remaining_seconds: i64,
    /// While running: when it reaches its target (or reached it).
    #[serde(serialize_with = "crate::api::rfc3339_opt")]
    pub due_at: Option<DateTime<Utc>>,
    /// Past the policy's warning share and not (yet) breached, while not stopped.
    pub at_risk: bool,
    /// It passed its target, for good.
    pub breached: bool,
    /// When it passed its warning share.
    #[serde(serialize_with = "crate::api::rfc3339_opt")]
    pub warned_at: Option<DateTime<Utc>>,
    /// When it passed its target.
    #[serde(serialize_with = "crate::api::rfc3339_opt")]
    pub breached_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "crate::api::rfc3339_opt")]
    pub stopped_at: Option<DateTime<Utc>>,
    /// Once stopped: whether it stopped within its target.
    pub met: Option<bool>,
}

/// A case's SLA.
#[derive(Debug, Serialize, ToSchema)]
pub struct CaseSlaView {
    #[schema(format = "uuid")]
    pub case_id: String,
    /// As on the card; `null` when no policy applied (then `clocks` is empty).
    pub state: Option<SlaState>,
    /// In the order the case meets them.
    pub clocks: Vec<ClockView>,
}

/// A support ticket's SLA.
#[derive(Debug, Serialize, ToSchema)]
pub struct TicketSlaView {
    #[schema(format = "uuid")]
    pub ticket_id: String,
    /// As on the ticket; `null` when no platform default policy applied when it was opened
    /// (then `clocks` is empty).
    pub state: Option<SlaState>,
    /// `first_response`, then `resolution`.
    pub clocks: Vec<ClockView>,
}

/// The clocks of `holder`, counted now.
fn clock_views(conn: &mut DbConnection, holder: Holder) -> Result<Vec<ClockView>, ApiError> {
    let now = db::now();
    let readings = crate::sla::read(conn, holder, now)?;
    Ok(readings
        .into_iter()
        .map(|reading| {
            let row = reading.row;
            let elapsed = reading.elapsed_secs;
            let breached = row.breached_at.is_some() || elapsed > row.target_secs;
            let state = reading.state;
            ClockView {
                clock: Clock::from_code(&row.clock).unwrap_or(Clock::Resolution),
                state,
                policy_id: row.policy_id,
                calendar_id: row.calendar_id,
                started_at: timestamp(row.started_at),
                target_seconds: row.target_secs,
                elapsed_seconds: elapsed,
                remaining_seconds: row.target_secs - elapsed,
                due_at: row.due_at.map(timestamp),
                at_risk: state != ClockState::Stopped && !breached && elapsed >= row.warn_secs,
                breached,
                warned_at: row.warned_at.map(timestamp),
                breached_at: row.breached_at.map(timestamp),
                stopped_at: row.stopped_at.map(timestamp),
                met: (state == ClockState::Stopped).then_some(!breached),
            }
        })
        .collect())
}

/// A case's SLA clocks
///
/// Each clock the case has started, counted at the time of the request: target, elapsed and
/// remaining business time, due time, `at_risk` and `breached`. Roles: anyone who can see the
/// case (404 otherwise).
#[utoipa::path(
    tag = "sla",
    operation_id = "get_case_sla",
    params(("id" = Uuid, Path, description = "The case")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The case's clocks", body = CaseSlaView),
        (status = 404, description = "No such case, or not one the caller can see"),
    )
)]
#[get("/v1/cases/{id}/sla")]
pub async fn get_case_sla(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: Token,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let asking = Asking::new(token, &req);
    let id = id.into_inner().to_string();
    let view = db::read(&state.pool, move |conn| {
        let Asked { viewer, .. } = asking.resolve(conn)?;
        let case = find_visible(conn, &viewer, &id)?;
        Ok(CaseSlaView {
            clocks: clock_views(conn, Holder::Case(&case.id))?,
            state: case.sla_state.as_deref().and_then(SlaState::from_code),
            case_id: case.id,
        })
    })
    .await?;
    Ok(HttpResponse::Ok().json(view))
}

/// A support ticket's SLA clocks
///
/// The ticket's `first_response` and `resolution` clocks under the platform's default policy,
/// counted at the time of the request, as a case's. Roles: platform staff, and the requester's
/// side (404 for anyone else, 403 for agents).
#[utoipa::path(
    tag = "sla",
    operation_id = "get_ticket_sla",
    params(("id" = Uuid, Path, description = "The ticket")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The ticket's clocks", body = TicketSlaView),
        (status = 403, description = "Agents have no support tickets"),
        (status = 404, description = "No such ticket, or not one the caller can see"),
    )
)]
#[get("/v1/tickets/{id}/sla")]
pub async fn get_ticket_sla(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: Token,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let asking = Asking::new(token, &req);
    let id = id.into_inner().to_string();
    let view = db::read(&state.pool, move |conn| {
        let caller = asking.resolve(conn)?.caller;
        let ticket = crate::api::tickets::find_visible(conn, &caller, &id)?;
        Ok(TicketSlaView {
            clocks: clock_views(conn, Holder::Ticket(&ticket.id))?,
            state: ticket.sla_state.as_deref().and_then(SlaState::from_code),
            ticket_id: ticket.id,
        })
    })
    .await?;
    Ok(HttpResponse::Ok().json(view))
}
