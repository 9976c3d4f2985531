//! Agencies' own triggers (`crate::triggers`): stored with their conditions and actions as JSON.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::{services, triggers};
use crate::db::{BuildOnce, DbConnection};

#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = triggers)]
pub struct TriggerRow {
    pub id: String,
    pub agency_id: String,
    pub name: String,
    /// A notification event on cases.
    pub event: String,
    /// JSON array of `triggers::Condition`.
    pub conditions: String,
    /// JSON array of `triggers::Action`.
    pub actions: String,
    pub active: bool,
    pub version: i64,
    pub created_by: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

pub fn insert(conn: &mut DbConnection, row: &TriggerRow) -> QueryResult<()> {
    diesel::insert_into(triggers::table)
        .values(row)
        .execute(conn)
        .map(drop)
}

/// The trigger of this id, of `agency` when given (agency admins), of any agency otherwise
/// (platform admins).
pub fn find(
    conn: &mut DbConnection,
    agency: Option<&str>,
    id: &str,
) -> QueryResult<Option<TriggerRow>> {
    let mut query = triggers::table
        .filter(triggers::id.eq(id.to_owned()))
        .into_boxed();
    if let Some(agency) = agency {
        query = query.filter(triggers::agency_id.eq(agency.to_owned()));
    }
    query.select(TriggerRow::as_select()).first(conn).optional()
}

/// In the order they run (oldest first) after `after` (an id), `agency`'s or every agency's:
/// `triggers_agency_idx (agency_id, id)`, or the primary key.
pub fn list(
    conn: &mut DbConnection,
    agency: Option<&str>,
    after: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<TriggerRow>> {
    let mut query = triggers::table.into_boxed();
    if let Some(agency) = agency {
        query = query.filter(triggers::agency_id.eq(agency.to_owned()));
    }
    if let Some(after) = after {
        query = query.filter(triggers::id.gt(after.to_owned()));
    }
    query
        .order(triggers::id.asc())
        .limit(limit)
        .select(TriggerRow::as_select())
        .load(conn)
}

/// How many triggers the agency has.
pub fn count(conn: &mut DbConnection, agency: &str) -> QueryResult<i64> {
    triggers::table
        .filter(triggers::agency_id.eq(agency.to_owned()))
        .count()
        .get_result(conn)
}

/// Writes the row as given (its version already moved on) while the stored one is still at
/// `version`; false when it was changed meanwhile.
pub fn update(conn: &mut DbConnection, row: &TriggerRow, version: i64) -> QueryResult<bool> {
    diesel::update(
        triggers::table
            .filter(triggers::id.eq(&row.id))
            .filter(triggers::version.eq(version)),
    )
    .set(row)
    .execute(conn)
    .map(|n| n == 1)
}

/// Deletes the trigger if it is still at `version`; false if it changed or went meanwhile.
pub fn delete(conn: &mut DbConnection, id: &str, version: i64) -> QueryResult<bool> {
    let deleted = diesel::delete(
        triggers::table
            .filter(triggers::id.eq(id))
            .filter(triggers::version.eq(version)),
    )
    .execute(conn)?;
    Ok(deleted == 1)
}

/// The agency's active triggers for `event`, in the order they run: asked on every event on a
/// case, a search of `triggers_agency_event_idx (agency_id, event, id)`.
pub fn active_for(
    conn: &mut DbConnection,
    agency: &str,
    event: &str,
) -> QueryResult<Vec<TriggerRow>> {
    triggers::table
        .filter(triggers::agency_id.eq(agency.to_owned()))
        .filter(triggers::event.eq(event.to_owned()))
        .filter(triggers::active.eq(true))
        .order(triggers::id.asc())
        .select(TriggerRow::as_select())
        .built_once()
        .load(conn)
}

/// Which of `ids` are the agency's services.
pub fn services_of(
    conn: &mut DbConnection,
    agency: &str,
    ids: &[String],
) -> QueryResult<Vec<String>> {
    services::table
        .filter(services::agency_id.eq(agency.to_owned()))
        .filter(services::id.eq_any(ids.to_vec()))
        .select(services::id)
        .load(conn)
}
