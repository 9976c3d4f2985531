//! Messages of a case's conversation and how far each user has read them.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use diesel::expression::{AppearsOnTable, Expression, ValidGrouping, is_aggregate};
use diesel::prelude::*;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::result::{DatabaseErrorKind, Error};
use diesel::sql_types::{BigInt, Nullable, Text};

use crate::db::schema::{message_reads, messages, users};
use crate::db::{BuildOnce, DbConnection, MultiBackend, StoredTimestamp, fixed_update};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = messages)]
#[diesel(treat_none_as_default_value = false)]
pub struct MessageRow {
    pub id: String,
    pub case_id: String,
    pub sender_id: String,
    pub sender_role: String,
    pub direction: String,
    pub channel: String,
    pub internal: bool,
    pub body: String,
    /// JSON array of attachment ids.
    pub attachment_ids: String,
    #[diesel(deserialize_as = StoredTimestamp)]
    pub created_at: NaiveDateTime,
    /// JSON array of the ids of the users it mentions.
    pub mention_ids: String,
}

/// Which part of a conversation a role reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// Agency and platform staff: everything.
    Everything,
    /// The client: never internal notes.
    PublicOnly,
    /// Agents: internal notes only.
    InternalOnly,
}

impl Audience {
    /// The value of `messages.internal` this audience is limited to, if any.
    fn internal(self) -> Option<bool> {
        match self {
            Audience::Everything => None,
            Audience::PublicOnly => Some(false),
            Audience::InternalOnly => Some(true),
        }
    }

    /// Whether this audience reads a message that is (or is not) `internal`.
    pub fn reads(self, internal: bool) -> bool {
        self.internal().is_none_or(|only| only == internal)
    }

    /// This audience's part as `internal = value OR all`, returned as `(value, all)`: one
    /// statement shape for every audience. Not `internal = a OR internal = b`: SQLite turns
    /// that into an IN list and builds a temporary table for it at every execution (6% of the
    /// card's instructions).
    pub(crate) fn internal_filter(self) -> (bool, bool) {
        match self.internal() {
            Some(only) => (only, false),
            None => (false, true),
        }
    }
}

#[derive(Debug, Default)]
pub struct MessageFilter {
    /// Any of these channels; every channel when empty.
    pub channels: Vec<&'static str>,
    pub from: Option<NaiveDateTime>,
    pub to: Option<NaiveDateTime>,
}

/// Messages of `case_ids`, oldest first when `ascending`; `after` is the last id already seen
/// in that direction.
pub fn list(
    conn: &mut DbConnection,
    conversation: &Conversation,
    audience: Audience,
    filter: &MessageFilter,
    ascending: bool,
    after: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<MessageRow>> {
    let mut query = match conversation {
        Conversation::Case(id) => messages::table
            .filter(messages::case_id.eq(id.to_string()))
            .into_boxed(),
        Conversation::Client { scope, client_id } => {
            super::cases::messages_of_client(scope, client_id)
        }
    };
    if let Some(internal) = audience.internal() {
        query = query.filter(messages::internal.eq(internal));
    }
    query = filter_any!(query, messages::channel, filter.channels.as_slice());
    if let Some(from) = filter.from {
        query = query.filter(messages::created_at.ge(from));
    }
    if let Some(to) = filter.to {
        query = query.filter(messages::created_at.lt(to));
    }
    query = match (after, ascending) {
        (Some(after), true) => query.filter(messages::id.gt(after.to_owned())),
        (Some(after), false) => query.filter(messages::id.lt(after.to_owned())),
        (None, _) => query,
    };
    query = if ascending {
        query.order(messages::id.asc())
    } else {
        query.order(messages::id.desc())
    };
    query
        .limit(limit)
        .select(MessageRow::as_select())
        .load(conn)
}

/// Whose messages a list reads.
pub enum Conversation<'a> {
    /// One case's.
    Case(&'a str),
    /// Those of every case of the client's that the caller may see (`include=earlier_cases`).
    Client {
        scope: &'a super::cases::CaseScope,
        client_id: &'a str,
    },
}

pub fn insert(conn: &mut DbConnection, row: &MessageRow) -> QueryResult<()> {
    diesel::insert_into(messages::table)
        .values(row)
        .built_once()
        .execute(conn)
        .map(|_| ())
}

/// One message of the case, if `audience` reads it.
pub fn find(
    conn: &mut DbConnection,
    case_id: &str,
    id: &str,
    audience: Audience,
) -> QueryResult<Option<MessageRow>> {
    let mut query = messages::table
        .filter(messages::case_id.eq(case_id))
        .filter(messages::id.eq(id))
        .into_boxed();
    if let Some(internal) = audience.internal() {
        query = query.filter(messages::internal.eq(internal));
    }
    query.select(MessageRow::as_select()).first(conn).optional()
}

/// Moves the user's read mark forward to `up_to` (never back). Returns the mark now stored.
pub fn mark_read(
    conn: &mut DbConnection,
    case_id: &str,
    user_id: &str,
    up_to: &str,
) -> QueryResult<String> {
    let now = crate::db::now();
    // Forward only, and safe against a concurrent request of the same user: the update moves
    // the mark only if it is behind; a missing row is inserted in a savepoint, and if a racing
    // request inserted it first, the update runs again against that row.
    let forward = |conn: &mut DbConnection| {
        fixed_update(
            diesel::update(
                message_reads::table
                    .filter(message_reads::case_id.eq(case_id))
                    .filter(message_reads::user_id.eq(user_id))
                    .filter(message_reads::last_read_id.lt(up_to)),
            )
            .set((
                message_reads::last_read_id.eq(up_to),
                message_reads::read_at.eq(now),
            )),
        )
        .execute(conn)
    };
    let current = |conn: &mut DbConnection| {
        message_reads::table
            .find((case_id, user_id))
            .select(message_reads::last_read_id)
            .built_once()
            .get_result::<String>(conn)
            .optional()
    };
    // Moved forward: the mark is `up_to` (the common case, one statement).
    if forward(conn)? == 1 {
        return Ok(up_to.to_owned());
    }
    if current(conn)?.is_none() {
        let inserted = conn.transaction(|conn| {
            diesel::insert_into(message_reads::table)
                .values((
                    message_reads::case_id.eq(case_id),
                    message_reads::user_id.eq(user_id),
                    message_reads::last_read_id.eq(up_to),
                    message_reads::read_at.eq(now),
                ))
                .built_once()
                .execute(conn)
        });
        match inserted {
            Ok(_) => return Ok(up_to.to_owned()),
            Err(Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
                forward(conn)?;
            }
            Err(e) => return Err(e),
        }
    }
    current(conn)?.ok_or(Error::NotFound)
}

/// Whose unread messages to count: the reader, the part of the conversation they read, and
/// the two roles of their own side, whose messages are never unread to them (one role twice
/// when the side is one, so every role's statement has one shape).
#[derive(Debug, Clone, Copy)]
pub struct Reader<'a> {
    pub user_id: &'a str,
    pub audience: Audience,
    pub own_side: [&'static str; 2],
}

/// How many messages `$reader` has not read in the case `in_case:` (a `&str` or an expression
/// of the case's id): in the part of the conversation they read, sent by the other side, after
/// their read mark. One shape for every role (`Audience::internal_filter`), written once for
/// the card's subquery, the read mark's count and the list's counts.
///
/// The count starts at the mark: the mark is read once and the messages after it are a range of
/// the primary key `(case_id, id)`, so its cost follows the messages after the reader's mark, not
/// the whole conversation. Joined to each message instead, the mark was searched once per
/// message: a card of a case with 1 000 messages took 3.3 times the server CPU, a list page
/// with three such cases 17 times the count's time (bench/RESULTS.md, twenty-third and
/// twenty-fourth sessions).
macro_rules! unread_by {
    ($reader:expr, in_case: $case_id:expr) => {{
        use diesel::prelude::*;
        use $crate::db::schema::{message_reads, messages};
        let reader: $crate::repo::messages::Reader = $reader;
        let case_id = $case_id;
        let mark = message_reads::table
            .filter(message_reads::case_id.eq(case_id.to_owned()))
            .filter(message_reads::user_id.eq(reader.user_id.to_owned()))
            .select(message_reads::last_read_id)
            .single_value();
        let (internal, all) = reader.audience.internal_filter();
        // Message ids are UUIDs made by the server, never empty: with no mark yet, every
        // message is after ''.
        messages::table
            .filter(messages::case_id.eq(case_id.to_owned()))
            .filter(messages::id.gt($crate::repo::messages::coalesce(mark, "")))
            .filter(
                messages::internal
                    .eq(internal)
                    .or(all.into_sql::<diesel::sql_types::Bool>()),
            )
            .filter(messages::sender_role.ne(reader.own_side[0]))
            .filter(messages::sender_role.ne(reader.own_side[1]))
            .count()
    }};
}
pub(crate) use unread_by;

diesel::define_sql_function!(
    /// The first of its arguments that is not NULL.
    fn coalesce(x: Nullable<Text>, y: Text) -> Text
);

/// Unread messages of each case of a list page, in one statement: each case counted as the
/// card counts it, from the reader's mark on. The page's ids are one bound JSON array, walked
/// by the engine's JSON function, so the statement is the same for every page and stays
/// prepared; an `IN` list was compiled anew for each page.
pub fn unread_counts(
    conn: &mut DbConnection,
    case_ids: &[String],
    reader: Reader,
) -> QueryResult<HashMap<String, i64>> {
    if case_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let page = serde_json::to_string(case_ids).map_err(|e| Error::SerializationError(e.into()))?;
    let query = UnreadPerCase {
        count: unread_by!(reader, in_case: CaseOfThePage),
        page,
    };
    let rows: Vec<(String, i64)> = query.built_once().load(conn)?;
    Ok(rows.into_iter().collect())
}

/// `SELECT page.value, (count) FROM <the page's ids> AS page`: `count` is a statement in which
/// [`CaseOfThePage`] stands for the id of the page's case at hand. The two engines name their
/// JSON functions differently. It runs through `built_once` only.
#[derive(QueryId)]
struct UnreadPerCase<C> {
    count: C,
    /// The page's case ids as a JSON array of strings.
    page: String,
}

impl<C: QueryFragment<MultiBackend>> QueryFragment<MultiBackend> for UnreadPerCase<C> {
    fn walk_ast<'b>(&'b self, mut pass: AstPass<'_, 'b, MultiBackend>) -> QueryResult<()> {
        let postgres = matches!(pass.backend(), MultiBackend::Postgresql(_));
        pass.push_sql("SELECT page.value, (");
        self.count.walk_ast(pass.reborrow())?;
        pass.push_sql(if postgres {
            ") FROM json_array_elements_text(CAST("
        } else {
            ") FROM json_each("
        });
        pass.push_bind_param::<Text, String>(&self.page)?;
        pass.push_sql(if postgres {
            " AS json)) AS page(value)"
        } else {
            ") AS page"
        });
        Ok(())
    }
}

impl<C> Query for UnreadPerCase<C> {
    type SqlType = (Text, BigInt);
}

/// The id of the case at hand in [`UnreadPerCase`]'s count.
#[derive(Debug, Clone, Copy, QueryId)]
struct CaseOfThePage;

impl Expression for CaseOfThePage {
    type SqlType = Text;
}

impl<QS> AppearsOnTable<QS> for CaseOfThePage {}

impl ValidGrouping<()> for CaseOfThePage {
    type IsAggregate = is_aggregate::Never;
}

impl QueryFragment<MultiBackend> for CaseOfThePage {
    fn walk_ast<'b>(&'b self, mut pass: AstPass<'_, 'b, MultiBackend>) -> QueryResult<()> {
        pass.push_sql("page.value");
        Ok(())
    }
}

/// Unread messages of one case (a read mark's answer; the card reads it in its own
/// statement, `cases::find_card`): a statement of a fixed type, rendered once per thread
/// (`db::built_once`).
pub fn unread_in_case(conn: &mut DbConnection, case_id: &str, reader: Reader) -> QueryResult<i64> {
    unread_by!(reader, in_case: case_id)
        .built_once()
        .get_result(conn)
}

/// How far a case has been read: the client's mark, and the furthest agency member's.
pub type ReadMarks = (Option<String>, Option<String>);

/// How far the client, and the furthest agency member, have read a case.
pub fn read_marks(
    conn: &mut DbConnection,
    case_id: &str,
    client_id: &str,
) -> QueryResult<ReadMarks> {
    let marks: Vec<(String, String, String)> = message_reads::table
        .inner_join(users::table)
        .filter(message_reads::case_id.eq(case_id))
        .select((
            message_reads::user_id,
            users::role,
            message_reads::last_read_id,
        ))
        .built_once()
        .load(conn)?;
    Ok(marks_of(marks, client_id))
}

/// [`read_marks`] of several cases of one client, in one statement.
pub fn read_marks_of(
    conn: &mut DbConnection,
    case_ids: &[String],
    client_id: &str,
) -> QueryResult<HashMap<String, ReadMarks>> {
    let query = message_reads::table.inner_join(users::table).into_boxed();
    let rows: Vec<(String, String, String, String)> =
        filter_in!(query, message_reads::case_id, case_ids)
            .select((
                message_reads::case_id,
                message_reads::user_id,
                users::role,
                message_reads::last_read_id,
            ))
            .load(conn)?;
    let mut by_case: HashMap<String, Vec<(String, String, String)>> = HashMap::new();
    for (case_id, user_id, role, mark) in rows {
        by_case
            .entry(case_id)
            .or_default()
            .push((user_id, role, mark));
    }
    Ok(by_case
        .into_iter()
        .map(|(case_id, marks)| (case_id, marks_of(marks, client_id)))
        .collect())
}

/// The marks of one case's readers (user, role, last message read).
fn marks_of(marks: Vec<(String, String, String)>, client_id: &str) -> ReadMarks {
    let client = marks
        .iter()
        .find(|(u, _, _)| u == client_id)
        .map(|(_, _, m)| m.clone());
    // Agents read internal notes only, and platform staff answer through tickets: only an
    // agency member's mark says the agency has read the client's messages.
    let staff = marks
        .into_iter()
        .filter(|(_, role, _)| role == "agency")
        .map(|(_, _, m)| m)
        .max();
    (client, staff)
}
