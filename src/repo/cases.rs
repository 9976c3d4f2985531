//! Cases: the rows, who sees which (inside every query), numbering, the list with its filters,
//! and the conditional updates the lifecycle and PATCH rely on.

use chrono::{Datelike, NaiveDateTime};
use diesel::prelude::*;

use crate::db::schema::{case_agents, case_counters, case_fields, cases, users};
use crate::db::{BuildOnce, DbConnection, fixed_update};
use crate::domain::{CaseStatus, Priority, Role};
use crate::workflow;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = cases)]
pub struct CaseRow {
    pub id: String,
    pub number: String,
    pub title: String,
    pub description: String,
    pub service_id: String,
    pub agency_id: String,
    pub client_id: String,
    pub status: String,
    pub priority: String,
    pub payment_method: String,
    pub payment_state: String,
    pub assignee_id: Option<String>,
    pub disputed: bool,
    pub resolution_type: Option<String>,
    pub resolution: Option<String>,
    pub version: i64,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub closed_at: Option<NaiveDateTime>,
}

impl CaseRow {
    pub fn status(&self) -> CaseStatus {
        CaseStatus::from_code(&self.status).unwrap_or(CaseStatus::Cancelled)
    }

    pub fn priority(&self) -> Priority {
        Priority::from_code(&self.priority).unwrap_or(Priority::Normal)
    }
}

/// Columns an update may set; `None` leaves a column alone. The version always moves on.
#[derive(Debug, Default, Clone, AsChangeset)]
#[diesel(table_name = cases)]
pub struct CaseChanges {
    pub title: Option<String>,
    pub description: Option<String>,
    pub priority: Option<String>,
    pub status: Option<String>,
    pub payment_state: Option<String>,
    pub assignee_id: Option<Option<String>>,
    pub disputed: Option<bool>,
    pub resolution_type: Option<Option<String>>,
    pub resolution: Option<Option<String>>,
    pub closed_at: Option<Option<NaiveDateTime>>,
}

/// Which cases a caller may see (DESIGN.md "Roles and tenancy").
#[derive(Debug, Clone)]
pub enum CaseScope {
    /// Platform staff: every case.
    All,
    /// Agency staff: their agency's cases.
    Agency(String),
    /// An agent: cases they are assigned to, only while the workflow lets agents see them.
    Agent(String),
    /// A client: their own cases.
    Client(String),
}

impl CaseScope {
    pub fn of(role: Role, user_id: &str, agency_id: Option<&str>) -> CaseScope {
        match (role, agency_id) {
            (Role::Platform, _) => CaseScope::All,
            (Role::Agency, Some(agency)) => CaseScope::Agency(agency.to_owned()),
            (Role::Agent, _) => CaseScope::Agent(user_id.to_owned()),
            _ => CaseScope::Client(user_id.to_owned()),
        }
    }
}

type Backend = <DbConnection as diesel::Connection>::Backend;
type BoxedCases<'a> = cases::BoxedQuery<'a, Backend>;

fn scoped(scope: &CaseScope) -> BoxedCases<'static> {
    let query = cases::table.into_boxed();
    match scope {
        CaseScope::All => query,
        CaseScope::Agency(agency) => query.filter(cases::agency_id.eq(agency.clone())),
        CaseScope::Client(client) => query.filter(cases::client_id.eq(client.clone())),
        CaseScope::Agent(agent) => status_not_in(
            query.filter(
                cases::id.eq_any(
                    case_agents::table
                        .filter(case_agents::user_id.eq(agent.clone()))
                        .select(case_agents::case_id),
                ),
            ),
            workflow::statuses_where(|s| !s.agent_visible),
        ),
    }
}

/// Leaves out cases in `excluded` statuses, as SQL that never changes: diesel caches no
/// statement with an `IN` list, so SQLite would prepare it again at every call.
fn status_not_in(
    mut query: BoxedCases<'static>,
    excluded: Vec<&'static str>,
) -> BoxedCases<'static> {
    for status in excluded {
        query = query.filter(cases::status.ne(status));
    }
    query
}

pub fn find(conn: &mut DbConnection, scope: &CaseScope, id: &str) -> QueryResult<Option<CaseRow>> {
    scoped(scope)
        .filter(cases::id.eq(id.to_owned()))
        .select(CaseRow::as_select())
        .limit(1)
        .built_once()
        .get_result(conn)
        .optional()
}

/// Who the list is narrowed to by `assignee`.
#[derive(Debug, Clone)]
pub enum AssigneeFilter {
    Nobody,
    User(String),
}

#[derive(Debug, Default)]
pub struct CaseFilter {
    pub statuses: Vec<&'static str>,
    pub priorities: Vec<&'static str>,
    pub assignee: Option<AssigneeFilter>,
    pub client_id: Option<String>,
    pub agency_id: Option<String>,
    pub service_id: Option<String>,
    pub created_from: Option<NaiveDateTime>,
    pub created_to: Option<NaiveDateTime>,
    /// Text to find in the number or the title, case-insensitively.
    pub q: Option<String>,
}

diesel::define_sql_function!(fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text);

/// `%text%` with LIKE's wildcards escaped, ASCII lower-cased: SQLite's `lower()` folds only
/// ASCII, so folding more here would make the engines disagree.
fn contains_pattern(text: &str) -> String {
    let escaped = text
        .to_ascii_lowercase()
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

/// Newest first (ids are UUIDv7); `after` is the id of the last row of the previous page.
pub fn list(
    conn: &mut DbConnection,
    scope: &CaseScope,
    filter: &CaseFilter,
    after: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<CaseRow>> {
    let mut query = scoped(scope);
    if !filter.statuses.is_empty() {
        query = filter_in!(query, cases::status, filter.statuses.as_slice());
    }
    if !filter.priorities.is_empty() {
        query = filter_in!(query, cases::priority, filter.priorities.as_slice());
    }
    match &filter.assignee {
        Some(AssigneeFilter::Nobody) => query = query.filter(cases::assignee_id.is_null()),
        Some(AssigneeFilter::User(id)) => {
            query = query.filter(cases::assignee_id.eq(id.clone()));
        }
        None => {}
    }
    if let Some(client) = &filter.client_id {
        query = query.filter(cases::client_id.eq(client.clone()));
    }
    if let Some(agency) = &filter.agency_id {
        query = query.filter(cases::agency_id.eq(agency.clone()));
    }
    if let Some(service) = &filter.service_id {
        query = query.filter(cases::service_id.eq(service.clone()));
    }
    if let Some(from) = filter.created_from {
        query = query.filter(cases::created_at.ge(from));
    }
    if let Some(to) = filter.created_to {
        query = query.filter(cases::created_at.lt(to));
    }
    if let Some(q) = &filter.q {
        let pattern = contains_pattern(q);
        query = query.filter(
            lower(cases::number)
                .like(pattern.clone())
                .escape('\\')
                .or(lower(cases::title).like(pattern).escape('\\')),
        );
    }
    if let Some(after) = after {
        query = query.filter(cases::id.lt(after.to_owned()));
    }
    query
        .order(cases::id.desc())
        .limit(limit)
        .select(CaseRow::as_select())
        .built_once()
        .load(conn)
}

/// Id and number of every case of the client that the caller may see.
pub fn cases_of_client(
    conn: &mut DbConnection,
    scope: &CaseScope,
    client_id: &str,
) -> QueryResult<Vec<(String, String)>> {
    scoped(scope)
        .filter(cases::client_id.eq(client_id.to_owned()))
        .select((cases::id, cases::number))
        .load(conn)
}

/// The client's cases that are still open, among those the caller may see.
pub fn open_cases_of_client(
    conn: &mut DbConnection,
    scope: &CaseScope,
    client_id: &str,
) -> QueryResult<i64> {
    let of_client = scoped(scope).filter(cases::client_id.eq(client_id.to_owned()));
    status_not_in(of_client, workflow::statuses_where(|s| s.terminal))
        .count()
        .built_once()
        .get_result(conn)
}

/// The next `DOS-<year>-<6 digits>`. The counter row is updated inside the creating
/// transaction, so concurrent creators wait for each other and never share a number; a
/// rolled-back creation leaves a gap, which is allowed.
pub fn next_number(conn: &mut DbConnection, now: NaiveDateTime) -> QueryResult<String> {
    let year = now.year();
    let bump = |conn: &mut DbConnection| {
        fixed_update(
            diesel::update(case_counters::table.find(year))
                .set(case_counters::last.eq(case_counters::last + 1)),
        )
        .execute(conn)
    };
    if bump(conn)? == 0 {
        // The year's first case. A racing first creator makes the insert a unique violation;
        // the savepoint keeps our transaction usable, and the row it made can be bumped.
        let inserted = conn.transaction(|c| {
            diesel::insert_into(case_counters::table)
                .values((case_counters::year.eq(year), case_counters::last.eq(1)))
                .execute(c)
        });
        match inserted {
            Ok(_) => {}
            Err(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _,
            )) => {
                bump(conn)?;
            }
            Err(e) => return Err(e),
        }
    }
    let last: i64 = case_counters::table
        .find(year)
        .select(case_counters::last)
        .first(conn)?;
    Ok(format!("DOS-{year}-{last:06}"))
}

pub fn insert(conn: &mut DbConnection, row: &CaseRow) -> QueryResult<()> {
    diesel::insert_into(cases::table)
        .values(row)
        .execute(conn)
        .map(|_| ())
}

/// Applies `changes` and bumps the version in one conditional statement, only while the case
/// is still at `version` and in one of `statuses`: the check and the write cannot be separated
/// by a racing request (PostgreSQL re-checks the condition on the locked row). False when the
/// case has moved on.
pub fn update(
    conn: &mut DbConnection,
    id: &str,
    version: i64,
    statuses: &[CaseStatus],
    changes: &CaseChanges,
) -> QueryResult<bool> {
    let statuses: Vec<&str> = statuses.iter().map(|s| s.as_str()).collect();
    let updated = diesel::update(
        cases::table
            .filter(cases::id.eq(id))
            .filter(cases::version.eq(version))
            .filter(cases::status.eq_any(statuses)),
    )
    .set((
        changes,
        cases::version.eq(version + 1),
        cases::updated_at.eq(crate::db::now()),
    ))
    .execute(conn)?;
    Ok(updated == 1)
}

/// A user named on a case (assignee or agent).
#[derive(Debug, Clone, Queryable)]
pub struct Person {
    pub id: String,
    pub name: String,
}

pub fn person(conn: &mut DbConnection, id: &str) -> QueryResult<Option<Person>> {
    users::table
        .find(id)
        .select((users::id, users::name))
        .limit(1)
        .built_once()
        .get_result(conn)
        .optional()
}

pub fn agents(conn: &mut DbConnection, case_id: &str) -> QueryResult<Vec<Person>> {
    case_agents::table
        .inner_join(users::table)
        .filter(case_agents::case_id.eq(case_id))
        .order(users::name.asc())
        .select((users::id, users::name))
        .built_once()
        .load(conn)
}

/// Replaces the case's agents.
pub fn set_agents(conn: &mut DbConnection, case_id: &str, agent_ids: &[String]) -> QueryResult<()> {
    diesel::delete(case_agents::table.filter(case_agents::case_id.eq(case_id))).execute(conn)?;
    let now = crate::db::now();
    // One statement per row: diesel's multi-engine connection has no batch insert.
    for id in agent_ids {
        diesel::insert_into(case_agents::table)
            .values((
                case_agents::case_id.eq(case_id),
                case_agents::user_id.eq(id.as_str()),
                case_agents::assigned_at.eq(now),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// The active users among `ids` with this role in this agency (to check assignments).
pub fn staff_among(
    conn: &mut DbConnection,
    agency_id: &str,
    role: Role,
    ids: &[String],
) -> QueryResult<Vec<Person>> {
    users::table
        .filter(users::id.eq_any(ids))
        .filter(users::agency_id.eq(agency_id))
        .filter(users::role.eq(role.as_str()))
        .filter(users::active.eq(true))
        .select((users::id, users::name))
        .load(conn)
}

/// One field of a case's required-data form.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = case_fields)]
pub struct FieldRow {
    pub case_id: String,
    pub key: String,
    pub position: i32,
    pub label: String,
    pub field_type: String,
    pub required: bool,
    /// JSON array of strings, for `choice` fields.
    pub options: Option<String>,
    pub help: Option<String>,
    /// JSON value; `None` while empty.
    pub value: Option<String>,
}

pub fn insert_fields(conn: &mut DbConnection, fields: &[FieldRow]) -> QueryResult<()> {
    for field in fields {
        diesel::insert_into(case_fields::table)
            .values(field)
            .execute(conn)?;
    }
    Ok(())
}

/// Keys of required fields still without a value, in form order.
pub fn missing_required_fields(conn: &mut DbConnection, case_id: &str) -> QueryResult<Vec<String>> {
    case_fields::table
        .filter(case_fields::case_id.eq(case_id))
        .filter(case_fields::required.eq(true))
        .filter(case_fields::value.is_null())
        .order(case_fields::position.asc())
        .select(case_fields::key)
        .load(conn)
}

/// The case's required-data form, in order.
pub fn fields(conn: &mut DbConnection, case_id: &str) -> QueryResult<Vec<FieldRow>> {
    case_fields::table
        .filter(case_fields::case_id.eq(case_id))
        .order(case_fields::position.asc())
        .select(FieldRow::as_select())
        .load(conn)
}

/// Replaces the whole form.
pub fn replace_fields(
    conn: &mut DbConnection,
    case_id: &str,
    fields: &[FieldRow],
) -> QueryResult<()> {
    diesel::delete(case_fields::table.filter(case_fields::case_id.eq(case_id))).execute(conn)?;
    insert_fields(conn, fields)
}

pub fn set_field_value(
    conn: &mut DbConnection,
    case_id: &str,
    key: &str,
    value: Option<String>,
) -> QueryResult<()> {
    diesel::update(case_fields::table.find((case_id, key)))
        .set(case_fields::value.eq(value))
        .execute(conn)
        .map(|_| ())
}
