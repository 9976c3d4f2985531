//! Support tickets and their conversation.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::schema::{ticket_counters, ticket_messages, tickets, users};
use crate::domain::{Priority, Role, TicketStatus};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = tickets)]
#[diesel(treat_none_as_default_value = false)]
pub struct TicketRow {
    pub id: String,
    pub requester_id: String,
    /// The requesting agency, for an agency's ticket: its staff share it.
    pub agency_id: Option<String>,
    pub case_id: Option<String>,
    pub subject: String,
    pub description: String,
    pub status: String,
    pub priority: String,
    pub assignee_id: Option<String>,
    pub delegated_by: Option<String>,
    pub resolution_type: Option<String>,
    pub resolution: Option<String>,
    pub resolved_at: Option<NaiveDateTime>,
    pub version: i64,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// `sla::SlaState`; `None` without SLA clocks.
    pub sla_state: Option<String>,
    /// The earliest due time of a running SLA clock.
    pub sla_due_at: Option<NaiveDateTime>,
    /// Human: `TKT-<year>-<6 or more digits>`.
    pub number: String,
}

impl TicketRow {
    pub fn status(&self) -> TicketStatus {
        TicketStatus::from_code(&self.status).unwrap_or(TicketStatus::Open)
    }

    pub fn priority(&self) -> Priority {
        Priority::from_code(&self.priority).unwrap_or(Priority::Normal)
    }
}

/// What a write changes; `None` leaves a column as it is.
#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = tickets)]
pub struct TicketChanges {
    pub status: Option<String>,
    pub subject: Option<String>,
    pub description: Option<String>,
    pub priority: Option<String>,
    pub assignee_id: Option<Option<String>>,
    pub delegated_by: Option<Option<String>>,
    pub resolution_type: Option<Option<String>>,
    pub resolution: Option<Option<String>>,
    pub resolved_at: Option<Option<NaiveDateTime>>,
}

/// Which tickets a caller may see: platform staff all; agency staff their agency's; a client
/// their own. Agents have no tickets.
#[derive(Debug, Clone)]
pub enum TicketScope {
    All,
    Agency(String),
    Requester(String),
}

impl TicketScope {
    /// `None` for a role that has no tickets (agents).
    pub fn of(role: Role, user_id: &str, agency_id: Option<&str>) -> Option<TicketScope> {
        match (role, agency_id) {
            (Role::Platform, _) => Some(TicketScope::All),
            (Role::Agency, Some(agency)) => Some(TicketScope::Agency(agency.to_owned())),
            (Role::Client, _) => Some(TicketScope::Requester(user_id.to_owned())),
            _ => None,
        }
    }
}

type Backend = <DbConnection as diesel::Connection>::Backend;

/// The tickets `scope` may see: the one place their visibility is written.
fn scoped<'a>(scope: &TicketScope) -> tickets::BoxedQuery<'a, Backend> {
    let query = tickets::table.into_boxed();
    match scope {
        TicketScope::All => query,
        TicketScope::Agency(agency) => query.filter(tickets::agency_id.eq(agency.clone())),
        TicketScope::Requester(user) => query.filter(tickets::requester_id.eq(user.clone())),
    }
}

/// The next ticket number, `TKT-<year>-<6 or more digits>`, counted across the platform.
pub fn next_number(conn: &mut DbConnection, now: NaiveDateTime) -> QueryResult<String> {
    next_number!(conn, ticket_counters, "TKT", now)
}

pub fn insert(conn: &mut DbConnection, row: &TicketRow) -> QueryResult<()> {
    diesel::insert_into(tickets::table)
        .values(row)
        .execute(conn)
        .map(drop)
}

pub fn find(
    conn: &mut DbConnection,
    scope: &TicketScope,
    id: &str,
) -> QueryResult<Option<TicketRow>> {
    scoped(scope)
        .filter(tickets::id.eq(id.to_owned()))
        .select(TicketRow::as_select())
        .first(conn)
        .optional()
}

/// `None`: no filter; `Some(None)`: nobody; `Some(Some(id))`: that user.
pub type UserFilter = Option<Option<String>>;

#[derive(Debug, Default)]
pub struct TicketFilter {
    pub statuses: Vec<&'static str>,
    pub assignee: UserFilter,
    pub delegated_by: UserFilter,
    pub case_id: Option<String>,
    pub sla_states: Vec<&'static str>,
    pub number: Option<String>,
}

/// Newest first, below `before` (the last id of the previous page). Each filter has an index
/// ending in `id`: the page is read in key order, never sorted.
pub fn list(
    conn: &mut DbConnection,
    scope: &TicketScope,
    filter: &TicketFilter,
    before: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<TicketRow>> {
    let mut query = scoped(scope);
    query = filter_any!(query, tickets::status, filter.statuses.as_slice());
    match &filter.assignee {
        None => {}
        Some(None) => query = query.filter(tickets::assignee_id.is_null()),
        Some(Some(user)) => query = query.filter(tickets::assignee_id.eq(user.clone())),
    }
    match &filter.delegated_by {
        None => {}
        Some(None) => query = query.filter(tickets::delegated_by.is_null()),
        Some(Some(user)) => query = query.filter(tickets::delegated_by.eq(user.clone())),
    }
    if let Some(case) = &filter.case_id {
        query = query.filter(tickets::case_id.eq(case.clone()));
    }
    query = filter_any!(query, tickets::sla_state, filter.sla_states.as_slice());
    // Unique: at most one row, found through its own index.
    if let Some(number) = &filter.number {
        query = query.filter(tickets::number.eq(number.clone()));
    }
    if let Some(before) = before {
        query = query.filter(tickets::id.lt(before.to_owned()));
    }
    query
        .select(TicketRow::as_select())
        .order(tickets::id.desc())
        .limit(limit)
        .load(conn)
}

/// Applies `changes` and moves the version on in one conditional statement, only while the
/// ticket is in one of `statuses` (and at `version`, when given): racing writes cannot both
/// pass the check. False when the ticket has moved on.
pub fn update(
    conn: &mut DbConnection,
    id: &str,
    version: Option<i64>,
    statuses: &[TicketStatus],
    changes: &TicketChanges,
) -> QueryResult<bool> {
    let codes: Vec<&str> = statuses.iter().map(|s| s.as_str()).collect();
    // Any version when none is given: one statement for both kinds of condition.
    let (lowest, highest) = version.map_or((i64::MIN, i64::MAX), |v| (v, v));
    let touched = diesel::update(
        tickets::table
            .filter(tickets::id.eq(id))
            .filter(tickets::status.eq_any(codes))
            .filter(tickets::version.between(lowest, highest)),
    )
    .set((
        changes,
        tickets::version.eq(tickets::version + 1),
        tickets::updated_at.eq(crate::db::now()),
    ))
    .execute(conn)?;
    Ok(touched == 1)
}

/// Locks the ticket's row against a change of its status (PostgreSQL's `FOR SHARE`, held to
/// the commit), for a write that depends on the status without changing the ticket (a file's
/// upload or deletion). SQLite's writes are serialized already.
pub fn share_lock(conn: &mut DbConnection, id: &str) -> QueryResult<()> {
    if let DbConnection::Postgresql(pg) = conn {
        tickets::table
            .find(id)
            .select(tickets::id)
            .for_share()
            .load::<String>(pg)?;
    }
    Ok(())
}

/// The names of these users, by id (one statement for a whole page).
pub fn names(conn: &mut DbConnection, ids: &[&str]) -> QueryResult<HashMap<String, String>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(String, String)> = users::table
        .filter(users::id.eq_any(ids))
        .select((users::id, users::name))
        .load(conn)?;
    Ok(rows.into_iter().collect())
}

/// An active platform staff member with this id, for delegation.
pub fn is_active_platform_user(conn: &mut DbConnection, id: &str) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        users::table
            .filter(users::id.eq(id))
            .filter(users::role.eq(Role::Platform.as_str()))
            .filter(users::active.eq(true)),
    ))
    .get_result(conn)
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = ticket_messages)]
pub struct TicketMessageRow {
    pub id: String,
    pub ticket_id: String,
    pub author_id: String,
    pub author_role: String,
    pub body: String,
    pub created_at: NaiveDateTime,
    /// The ticket's files the message carries, a JSON array of ids.
    pub attachment_ids: String,
}

pub fn insert_message(conn: &mut DbConnection, row: &TicketMessageRow) -> QueryResult<()> {
    diesel::insert_into(ticket_messages::table)
        .values(row)
        .execute(conn)
        .map(drop)
}

/// Oldest first, after `after` (the last id of the previous page): the primary key's order.
pub fn messages(
    conn: &mut DbConnection,
    ticket_id: &str,
    after: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<TicketMessageRow>> {
    let mut query = ticket_messages::table
        .filter(ticket_messages::ticket_id.eq(ticket_id.to_owned()))
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(ticket_messages::id.gt(after.to_owned()));
    }
    query
        .select(TicketMessageRow::as_select())
        .order(ticket_messages::id)
        .limit(limit)
        .load(conn)
}

/// One message of the ticket.
pub fn message(
    conn: &mut DbConnection,
    ticket_id: &str,
    id: &str,
) -> QueryResult<Option<TicketMessageRow>> {
    ticket_messages::table
        .filter(ticket_messages::ticket_id.eq(ticket_id))
        .filter(ticket_messages::id.eq(id))
        .select(TicketMessageRow::as_select())
        .first(conn)
        .optional()
}

/// A resolved ticket's place in the order [`resolved_before`] reads them.
pub type ResolvedKey = (NaiveDateTime, String);

/// Up to `limit` tickets resolved at or before `cutoff` and still resolved, the longest
/// resolved first, after `after` (the last key of the previous batch).
pub fn resolved_before(
    conn: &mut DbConnection,
    cutoff: NaiveDateTime,
    after: Option<&ResolvedKey>,
    limit: i64,
) -> QueryResult<Vec<ResolvedKey>> {
    let mut query = tickets::table
        .filter(tickets::status.eq(TicketStatus::Resolved.as_str()))
        .filter(tickets::resolved_at.le(cutoff))
        .into_boxed();
    if let Some((at, id)) = after {
        query = query.filter(
            tickets::resolved_at
                .gt(*at)
                .or(tickets::resolved_at.eq(*at).and(tickets::id.gt(id.clone()))),
        );
    }
    let rows: Vec<(Option<NaiveDateTime>, String)> = query
        .order((tickets::resolved_at, tickets::id))
        .limit(limit)
        .select((tickets::resolved_at, tickets::id))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter_map(|(at, id)| at.map(|at| (at, id)))
        .collect())
}

/// When the ticket resolved longest ago was resolved, if one still is.
pub fn first_resolved_at(conn: &mut DbConnection) -> QueryResult<Option<NaiveDateTime>> {
    tickets::table
        .filter(tickets::status.eq(TicketStatus::Resolved.as_str()))
        .select(diesel::dsl::min(tickets::resolved_at))
        .get_result(conn)
}
