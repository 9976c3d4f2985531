//! Notifications and the people they go to.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::{agencies, case_agents, notifications, users};
use crate::db::{BuildOnce, DbConnection};
use crate::domain::Role;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = notifications)]
#[diesel(treat_none_as_default_value = false)]
pub struct NotificationRow {
    pub id: String,
    pub user_id: String,
    pub case_id: Option<String>,
    pub event: String,
    pub title: String,
    pub body: Option<String>,
    pub created_at: NaiveDateTime,
    pub read_at: Option<NaiveDateTime>,
    pub ticket_id: Option<String>,
}

pub fn insert(conn: &mut DbConnection, row: &NotificationRow) -> QueryResult<()> {
    diesel::insert_into(notifications::table)
        .values(row)
        .built_once()
        .execute(conn)
        .map(|_| ())
}

/// A user's notifications, newest first; `after` is the last id of the previous page.
pub fn list(
    conn: &mut DbConnection,
    user_id: &str,
    unread_only: bool,
    after: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<NotificationRow>> {
    let mut query = notifications::table
        .filter(notifications::user_id.eq(user_id.to_owned()))
        .into_boxed();
    if unread_only {
        query = query.filter(notifications::read_at.is_null());
    }
    if let Some(after) = after {
        query = query.filter(notifications::id.lt(after.to_owned()));
    }
    query
        .order(notifications::id.desc())
        .limit(limit)
        .select(NotificationRow::as_select())
        .load(conn)
}

/// The user's notifications after `after` (all of them when `None`), oldest first.
pub fn since(
    conn: &mut DbConnection,
    user_id: &str,
    after: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<NotificationRow>> {
    let mut query = notifications::table
        .filter(notifications::user_id.eq(user_id.to_owned()))
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(notifications::id.gt(after.to_owned()));
    }
    query
        .order(notifications::id.asc())
        .limit(limit)
        .select(NotificationRow::as_select())
        .load(conn)
}

/// The ids of the user's notifications after `after` and up to `up_to`.
pub fn ids_between(
    conn: &mut DbConnection,
    user_id: &str,
    after: &str,
    up_to: &str,
) -> QueryResult<Vec<String>> {
    notifications::table
        .filter(notifications::user_id.eq(user_id))
        .filter(notifications::id.gt(after))
        .filter(notifications::id.le(up_to))
        .select(notifications::id)
        .load(conn)
}

/// Whether `id` is one of the user's notifications (a primary-key lookup).
pub fn is_theirs(conn: &mut DbConnection, user_id: &str, id: &str) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        notifications::table.find((user_id, id)),
    ))
    .get_result(conn)
}

/// The id of the user's newest notification.
pub fn newest_id(conn: &mut DbConnection, user_id: &str) -> QueryResult<Option<String>> {
    notifications::table
        .filter(notifications::user_id.eq(user_id))
        .order(notifications::id.desc())
        .select(notifications::id)
        .first(conn)
        .optional()
}

pub fn unread_count(conn: &mut DbConnection, user_id: &str) -> QueryResult<i64> {
    notifications::table
        .filter(notifications::user_id.eq(user_id))
        .filter(notifications::read_at.is_null())
        .count()
        .get_result(conn)
}

/// Marks the user's unread notifications `which` names read; how many changed.
pub fn mark_read(conn: &mut DbConnection, user_id: &str, which: &Marked) -> QueryResult<usize> {
    let now = crate::db::now();
    let target = notifications::table
        .filter(notifications::user_id.eq(user_id))
        .filter(notifications::read_at.is_null());
    let set = notifications::read_at.eq(now);
    match which {
        Marked::These(ids) => diesel::update(target.filter(notifications::id.eq_any(ids)))
            .set(set)
            .execute(conn),
        // Ids are UUIDv7 in their text form: they sort as the notifications were written.
        Marked::All { up_to: Some(last) } => {
            diesel::update(target.filter(notifications::id.le(last)))
                .set(set)
                .execute(conn)
        }
        Marked::All { up_to: None } => diesel::update(target).set(set).execute(conn),
    }
}

/// Which of a user's unread notifications a "read" mark covers.
#[derive(Debug)]
pub enum Marked {
    These(Vec<String>),
    /// Every one, or those up to this id (the newest the user has seen).
    All {
        up_to: Option<String>,
    },
}

/// Someone a notification goes to.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = users)]
pub struct Recipient {
    pub id: String,
    pub locale: String,
    pub email: String,
    pub name: String,
    /// Who they are to the case, for whoever picks recipients by hand (a message's mentions).
    pub role: String,
    pub agency_id: Option<String>,
}

/// Enabled users (`users::is_enabled`: active, of an active agency) with this role (and agency,
/// for agency staff).
pub fn active_users(
    conn: &mut DbConnection,
    role: Role,
    agency_id: Option<&str>,
) -> QueryResult<Vec<Recipient>> {
    let mut query = users::table
        .left_join(agencies::table)
        .filter(users::role.eq(role.as_str()))
        .filter(super::users::is_enabled())
        .into_boxed();
    if let Some(agency) = agency_id {
        query = query.filter(users::agency_id.eq(agency.to_owned()));
    }
    query.select(Recipient::as_select()).built_once().load(conn)
}

/// These users, those who can no longer log in left out (`users::is_enabled`).
pub fn recipients(conn: &mut DbConnection, ids: &[String]) -> QueryResult<Vec<Recipient>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let active = users::table
        .left_join(agencies::table)
        .filter(super::users::is_enabled())
        .into_boxed();
    filter_in!(active, users::id, ids)
        .select(Recipient::as_select())
        .built_once()
        .load(conn)
}

pub fn agents_of(conn: &mut DbConnection, case_id: &str) -> QueryResult<Vec<String>> {
    case_agents::table
        .filter(case_agents::case_id.eq(case_id))
        .select(case_agents::user_id)
        .built_once()
        .load(conn)
}
