//! The repository layer: every query the API runs, one module per resource. Object-level
//! authorization lives here, inside the queries (a scope argument), never after them.
//!
//! Every `Insertable` row says `treat_none_as_default_value = false`: a `None` is bound as NULL
//! (no column here has another default), so each INSERT has one shape and a static query id.
//! With diesel's default every field may become `DEFAULT`: SQLite's statement cache was keyed
//! by the INSERT's text, rendered again at every call (15% of a posted message's instructions),
//! and PostgreSQL compiled the INSERT afresh every time.

/// Narrows a boxed query to rows whose `$column` is one of `$values`, written `=` when there is
/// one value, the common call (a card's case, one status, one recipient): diesel caches no
/// statement with an `IN` list, so SQLite would compile it again at every call.
macro_rules! filter_in {
    ($query:expr, $column:expr, $values:expr) => {
        match $values {
            [one] => $query.filter($column.eq(one.to_owned())),
            many => $query.filter($column.eq_any(many.to_vec())),
        }
    };
}

/// `filter_in!` for a filter the caller may leave out: no values, no condition.
macro_rules! filter_any {
    ($query:expr, $column:expr, $values:expr) => {
        match $values {
            [] => $query,
            values => filter_in!($query, $column, values),
        }
    };
}

/// The next `<prefix>-<year>-<6 or more digits>` from a counter table `(year, last)` (the
/// millionth of a year gets seven: nothing sorts by the text). The year's row is bumped and
/// read in one statement inside the creating transaction, so concurrent creators wait for each
/// other (one round trip under the lock: bench/RESULTS.md, 25th session) and never share a
/// number; a rolled-back creation leaves a gap, which is allowed.
macro_rules! next_number {
    ($conn:expr, $counters:ident, $prefix:literal, $now:expr) => {{
        use diesel::prelude::*;
        let year = chrono::Datelike::year(&$now);
        let bump = |conn: &mut $crate::db::DbConnection| {
            $crate::db::fixed_update(
                diesel::update($counters::table.find(year))
                    .set($counters::last.eq($counters::last + 1))
                    .returning($counters::last),
            )
            .get_result::<i64>(conn)
            .optional()
        };
        $crate::repo::bump_or_create($conn, bump, |c| {
            diesel::insert_into($counters::table)
                .values(($counters::year.eq(year), $counters::last.eq(1)))
                .execute(c)
                .map(|_| 1)
        })
        .map(|last| format!(concat!($prefix, "-{}-{:06}"), year, last))
    }};
}

pub mod agencies;
pub mod attachments;
pub mod audit;
pub mod cases;
pub mod email;
pub mod idempotency;
pub mod loose_blobs;
pub mod messages;
pub mod notifications;
pub mod presence;
pub mod refresh_tokens;
pub mod requests;
pub mod rules;
pub mod services;
pub mod sla;
pub mod storyline;
pub mod surveys;
pub mod ticket_attachments;
pub mod tickets;
pub mod triggers;
pub mod users;
pub mod video_calls;
pub mod webhooks;

use diesel::QueryResult;
use diesel::result::{DatabaseErrorKind, Error};

use crate::db::DbConnection;
use crate::errors::ApiError;

/// Adds one to a counter row, making the row (already at one) when it is the first: `bump`
/// updates and gives what it read back, `None` when no row was there; `create` inserts. A
/// racing creator makes our insert a unique violation; the savepoint keeps the transaction
/// usable, and the row it made is bumped instead (diesel's MultiConnection has no upsert).
pub fn bump_or_create<T>(
    conn: &mut DbConnection,
    bump: impl Fn(&mut DbConnection) -> QueryResult<Option<T>>,
    create: impl FnOnce(&mut DbConnection) -> QueryResult<T>,
) -> QueryResult<T> {
    if let Some(value) = bump(conn)? {
        return Ok(value);
    }
    match diesel::Connection::transaction(conn, create) {
        Ok(value) => Ok(value),
        Err(Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
            // Under an isolation level stricter than read committed the racer's row can stay
            // invisible: fail the request rather than lose the count.
            bump(conn)?.ok_or_else(|| not_one_row(0, "the counter row a racing request made"))
        }
        Err(e) => Err(e),
    }
}

/// Ok when an update touched exactly one row, else an error naming what was missing: for
/// rows whose absence breaks an invariant (a 500 with the cause logged, never a silent skip).
pub fn one_row(touched: usize, what: &str) -> QueryResult<()> {
    match touched {
        1 => Ok(()),
        n => Err(not_one_row(n, what)),
    }
}

fn not_one_row(touched: usize, what: &str) -> Error {
    Error::QueryBuilderError(
        format!("expected to update one row of {what}, updated {touched}").into(),
    )
}

/// Maps a unique-constraint violation (both engines report it alike) to the resource's own
/// conflict, and any other database error to the usual mapping.
pub fn unique_violation_as(conflict: fn() -> ApiError) -> impl Fn(Error) -> ApiError {
    move |e| match e {
        Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => conflict(),
        other => other.into(),
    }
}

/// A new time-ordered id: UUIDv7 strings sort by creation time, so `ORDER BY id DESC` is
/// "newest first" and keyset pagination needs no second column.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}
