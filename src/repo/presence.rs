//! Staff presence and workload.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::schema::{agencies, cases, presence, tickets, users};
use crate::domain::{CaseStatus, PresenceStatus, Role};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = presence)]
#[diesel(treat_none_as_default_value = false)]
pub struct PresenceRow {
    pub user_id: String,
    pub status: String,
    pub working_on: Option<String>,
    pub updated_at: NaiveDateTime,
    /// When the automatic assignment last gave them a case.
    pub last_assigned_at: Option<NaiveDateTime>,
}

/// Sets the user's presence (creating their row the first time).
pub fn set(conn: &mut DbConnection, row: &PresenceRow) -> QueryResult<()> {
    let update = |conn: &mut DbConnection| {
        // The rule's turn (`last_assigned_at`) is kept.
        let touched = diesel::update(presence::table.find(&row.user_id))
            .set((
                presence::status.eq(&row.status),
                presence::working_on.eq(&row.working_on),
                presence::updated_at.eq(row.updated_at),
            ))
            .execute(conn)?;
        Ok((touched == 1).then_some(()))
    };
    super::bump_or_create(conn, update, |conn| {
        diesel::insert_into(presence::table)
            .values(row)
            .execute(conn)
            .map(drop)
    })
}

/// Whose presence a change is for.
pub enum Whose<'a> {
    User(&'a str),
    /// Every member of the agency.
    Agency(&'a str),
}

/// Sets `whose` presence `offline` (their sessions ended), where it is not already (someone
/// who never set one stays without).
pub fn go_offline(conn: &mut DbConnection, whose: Whose, at: NaiveDateTime) -> QueryResult<()> {
    let members: Vec<String> = match whose {
        Whose::User(id) => vec![id.to_owned()],
        Whose::Agency(agency) => users::table
            .filter(users::agency_id.eq(agency.to_owned()))
            .select(users::id)
            .load(conn)?,
    };
    let offline = PresenceStatus::Offline.as_str();
    diesel::update(
        presence::table
            .filter(presence::user_id.eq_any(members))
            .filter(presence::status.ne(offline)),
    )
    .set((
        presence::status.eq(offline),
        presence::working_on.eq(None::<String>),
        presence::updated_at.eq(at),
    ))
    .execute(conn)
    .map(drop)
}

pub fn of(conn: &mut DbConnection, user_id: &str) -> QueryResult<Option<PresenceRow>> {
    presence::table
        .find(user_id)
        .select(PresenceRow::as_select())
        .first(conn)
        .optional()
}

/// Whose presence a supervisor reads: an agency's staff and agents, or platform staff.
#[derive(Debug, Clone)]
pub enum StaffScope {
    Agency(String),
    Platform,
}

/// A staff member with their presence, if they ever set one.
#[derive(Debug, Queryable)]
pub struct StaffPresence {
    pub id: String,
    pub name: String,
    pub role: String,
    pub status: Option<String>,
    pub working_on: Option<String>,
    pub updated_at: Option<NaiveDateTime>,
    /// Their own capacity; `None` follows `DOSSIER_OPERATOR_CAPACITY`.
    pub capacity: Option<i32>,
}

/// Active staff in `scope` by id, after `after`, with their presence; `statuses` filters
/// (`offline` includes those who never set one). Walks `users_agency_id_idx` or
/// `users_role_idx`, and `presence` by its key.
pub fn list(
    conn: &mut DbConnection,
    scope: &StaffScope,
    statuses: &[PresenceStatus],
    after: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<StaffPresence>> {
    // Those who can log in only (`users::is_enabled`): not the staff of a deactivated agency.
    let mut query = users::table
        .left_join(presence::table)
        .left_join(agencies::table)
        .filter(super::users::is_enabled())
        .into_boxed();
    query = match scope {
        StaffScope::Agency(agency) => query.filter(users::agency_id.eq(agency.clone())),
        StaffScope::Platform => query.filter(users::role.eq(Role::Platform.as_str())),
    };
    if !statuses.is_empty() {
        let codes: Vec<&str> = statuses.iter().map(|s| s.as_str()).collect();
        query = if statuses.contains(&PresenceStatus::Offline) {
            query.filter(
                presence::status
                    .is_null()
                    .or(presence::status.eq_any(codes)),
            )
        } else {
            query.filter(presence::status.eq_any(codes))
        };
    }
    if let Some(after) = after {
        query = query.filter(users::id.gt(after.to_owned()));
    }
    query
        .select((
            users::id,
            users::name,
            users::role,
            presence::status.nullable(),
            presence::working_on.nullable(),
            presence::updated_at.nullable(),
            users::capacity,
        ))
        .order(users::id)
        .limit(limit)
        .load(conn)
}

/// What counts as someone's open work, by the statuses of their cases and tickets.
pub struct OpenWork<'a> {
    /// Cases an operator is responsible for (`cases.assignee_id`).
    pub assigned_cases: &'a [&'a str],
    /// Tickets platform staff are assigned.
    pub tickets: &'a [&'a str],
}

/// Each of `ids`' open work as operators (those of `scope`), in one grouped statement over an
/// assignee index, `cases (assignee_id, status)` or `tickets (assignee_id, status)`.
pub fn workload(
    conn: &mut DbConnection,
    scope: &StaffScope,
    ids: &[String],
    open: &OpenWork,
) -> QueryResult<HashMap<String, i64>> {
    let mut counts: Vec<(Option<String>, i64)> = Vec::new();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    match scope {
        StaffScope::Agency(_) => {
            counts.extend(
                cases::table
                    .filter(cases::assignee_id.eq_any(ids))
                    .filter(cases::status.eq_any(open.assigned_cases))
                    .group_by(cases::assignee_id)
                    .select((cases::assignee_id, diesel::dsl::count_star()))
                    .load::<(Option<String>, i64)>(conn)?,
            );
        }
        StaffScope::Platform => counts.extend(
            tickets::table
                .filter(tickets::assignee_id.eq_any(ids))
                .filter(tickets::status.eq_any(open.tickets))
                .group_by(tickets::assignee_id)
                .select((tickets::assignee_id, diesel::dsl::count_star()))
                .load::<(Option<String>, i64)>(conn)?,
        ),
    }
    let mut load = HashMap::new();
    for (id, n) in counts {
        if let Some(id) = id {
            *load.entry(id).or_insert(0) += n;
        }
    }
    Ok(load)
}

/// An operator the automatic assignment may serve.
#[derive(Debug, Queryable)]
pub struct AvailableOperator {
    pub id: String,
    /// When the assignment last served them; `None`: never.
    pub last_assigned_at: Option<NaiveDateTime>,
    /// Their own capacity; `None` follows `DOSSIER_OPERATOR_CAPACITY`.
    pub capacity: Option<i32>,
}

/// The agency's operators (agency staff who can log in) who are `available`, with when the
/// automatic assignment last served each and their capacity, in one statement. On PostgreSQL
/// it locks their presence rows (only those) until the write commits and checks `available`
/// again after any wait: two assignments never both count the same room, nor serve someone
/// who just left.
pub fn available_operators(
    conn: &mut DbConnection,
    agency_id: &str,
) -> QueryResult<Vec<AvailableOperator>> {
    let operators = users::table
        .left_join(agencies::table)
        .filter(users::agency_id.eq(agency_id.to_owned()))
        .filter(users::role.eq(Role::Agency.as_str()))
        .filter(super::users::is_enabled())
        .select(users::id);
    // The capacity is a scalar read of the user's row by its key: a join would put `users`
    // under PostgreSQL's `FOR NO KEY UPDATE`, and only presence rows are to be locked.
    let capacity = users::table
        .filter(users::id.eq(presence::user_id))
        .select(users::capacity)
        .single_value();
    let query = presence::table
        .filter(presence::status.eq(PresenceStatus::Available.as_str()))
        .filter(presence::user_id.eq_any(operators))
        .order(presence::user_id)
        .select((presence::user_id, presence::last_assigned_at, capacity));
    match conn {
        DbConnection::Postgresql(pg) => query.for_no_key_update().load(pg),
        // SQLite's single writer serializes the whole write.
        DbConnection::Sqlite(lite) => query.load(lite),
    }
}

/// Serves `agency_id`'s queue alone until the write commits (PostgreSQL: an advisory lock of
/// the transaction, keyed by the agency). Taken by every write that serves the queue or gives
/// an operator work by hand or by the workflow (`take`, `delegate`, `reopen`, a payment), so
/// an assignment's count of room never misses one, and before any presence or case row: a
/// write that changed its row first and then waited for the others' (a `PUT /v1/me/presence`,
/// a capacity raised, a payment) would otherwise wait in a circle with another doing the same.
/// A trigger's `assign` is the exception: it runs inside the write that fired it, after that
/// write's rows, and (as a `take` may) can give an operator more than their room. SQLite's
/// writes are serialized already.
pub fn lock_queue(conn: &mut DbConnection, agency_id: &str) -> QueryResult<()> {
    crate::db::lock_key(conn, &format!("auto_assign:{agency_id}"))
}

/// The queue an agency's staff member serves (role `agency`); none for anyone else.
pub fn queue_of(role: Role, agency_id: Option<&str>) -> Option<&str> {
    agency_id.filter(|_| role == Role::Agency)
}

/// Agencies with at least one operator `available` and a case in their queue: those whose
/// queue can be served (the others would cost the worker a write each for nothing).
pub fn agencies_with_available_operators(conn: &mut DbConnection) -> QueryResult<Vec<String>> {
    let queued = cases::table
        .filter(cases::status.eq(CaseStatus::InApproval.as_str()))
        .filter(cases::assignee_id.is_null())
        .select(cases::agency_id.nullable());
    let agencies: Vec<Option<String>> = presence::table
        .inner_join(users::table)
        .filter(presence::status.eq(PresenceStatus::Available.as_str()))
        .filter(users::role.eq(Role::Agency.as_str()))
        .filter(users::agency_id.eq_any(queued))
        .select(users::agency_id)
        .distinct()
        .load(conn)?;
    Ok(agencies.into_iter().flatten().collect())
}

/// The automatic assignment gave `user_id` a case at `at`.
pub fn mark_assigned(conn: &mut DbConnection, user_id: &str, at: NaiveDateTime) -> QueryResult<()> {
    diesel::update(presence::table.find(user_id))
        .set(presence::last_assigned_at.eq(at))
        .execute(conn)
        .map(drop)
}
