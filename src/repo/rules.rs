//! The business-rule log, and the completed cases the auto-close rule watches.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::schema::{awaiting_confirmation, rule_log};

/// One rule that fired.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = rule_log)]
pub struct RuleLogRow {
    pub id: String,
    pub rule: String,
    pub trigger_event: String,
    pub action: String,
    pub case_id: Option<String>,
    pub agency_id: Option<String>,
    pub outcome: String,
    pub detail: Option<String>,
    pub created_at: NaiveDateTime,
    pub ticket_id: Option<String>,
}

pub fn record(conn: &mut DbConnection, row: &RuleLogRow) -> QueryResult<()> {
    diesel::insert_into(rule_log::table)
        .values(row)
        .execute(conn)
        .map(drop)
}

/// Which entries a reader gets: an agency's staff their agency's only, in the query itself.
#[derive(Debug, Default)]
pub struct RuleLogFilter {
    pub agency_id: Option<String>,
    pub case_id: Option<String>,
}

/// Newest first, below `before` (an id from the previous page): each filter walks its own
/// index, `(case_id, id)` or `(agency_id, id)`, and the whole log its primary key.
pub fn list(
    conn: &mut DbConnection,
    filter: &RuleLogFilter,
    before: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<RuleLogRow>> {
    let mut query = rule_log::table.select(RuleLogRow::as_select()).into_boxed();
    if let Some(agency) = &filter.agency_id {
        query = query.filter(rule_log::agency_id.eq(agency.clone()));
    }
    if let Some(case) = &filter.case_id {
        query = query.filter(rule_log::case_id.eq(case.clone()));
    }
    if let Some(before) = before {
        query = query.filter(rule_log::id.lt(before.to_owned()));
    }
    query.order(rule_log::id.desc()).limit(limit).load(conn)
}

/// The case waits for its client's answer from `completed_at` on.
pub fn await_confirmation(
    conn: &mut DbConnection,
    case_id: &str,
    completed_at: NaiveDateTime,
) -> QueryResult<()> {
    stop_awaiting(conn, case_id)?;
    diesel::insert_into(awaiting_confirmation::table)
        .values((
            awaiting_confirmation::case_id.eq(case_id),
            awaiting_confirmation::completed_at.eq(completed_at),
        ))
        .execute(conn)
        .map(drop)
}

/// The client answered, or the case left `completed`: nothing is waiting any more.
pub fn stop_awaiting(conn: &mut DbConnection, case_id: &str) -> QueryResult<()> {
    diesel::delete(awaiting_confirmation::table.find(case_id))
        .execute(conn)
        .map(drop)
}

/// Removes the case's wait only if it is still the one that began at `completed_at` (a newer
/// completion's wait stays).
pub fn stop_awaiting_since(
    conn: &mut DbConnection,
    case_id: &str,
    completed_at: NaiveDateTime,
) -> QueryResult<()> {
    diesel::delete(
        awaiting_confirmation::table
            .filter(awaiting_confirmation::case_id.eq(case_id))
            .filter(awaiting_confirmation::completed_at.eq(completed_at)),
    )
    .execute(conn)
    .map(drop)
}

/// Since when the case has been waiting, if it is.
pub fn waiting_since(conn: &mut DbConnection, case_id: &str) -> QueryResult<Option<NaiveDateTime>> {
    awaiting_confirmation::table
        .find(case_id)
        .select(awaiting_confirmation::completed_at)
        .first(conn)
        .optional()
}

/// A waiting case's place in the order [`overdue`] reads them: when it completed, then its id.
pub type WaitKey = (NaiveDateTime, String);

/// Up to `limit` cases completed at or before `cutoff` and still waiting, the longest waiting
/// first, after `after` (the last key of the previous batch).
pub fn overdue(
    conn: &mut DbConnection,
    cutoff: NaiveDateTime,
    after: Option<&WaitKey>,
    limit: i64,
) -> QueryResult<Vec<WaitKey>> {
    let mut query = awaiting_confirmation::table
        .filter(awaiting_confirmation::completed_at.le(cutoff))
        .into_boxed();
    if let Some((at, id)) = after {
        query = query.filter(
            awaiting_confirmation::completed_at
                .gt(*at)
                .or(awaiting_confirmation::completed_at
                    .eq(*at)
                    .and(awaiting_confirmation::case_id.gt(id.clone()))),
        );
    }
    query
        .order((
            awaiting_confirmation::completed_at,
            awaiting_confirmation::case_id,
        ))
        .limit(limit)
        .select((
            awaiting_confirmation::completed_at,
            awaiting_confirmation::case_id,
        ))
        .load(conn)
}

/// When the first case still waiting completed: the rule's next round is due then plus the
/// waiting time.
pub fn first_waiting_since(conn: &mut DbConnection) -> QueryResult<Option<NaiveDateTime>> {
    awaiting_confirmation::table
        .select(diesel::dsl::min(awaiting_confirmation::completed_at))
        .get_result(conn)
}
