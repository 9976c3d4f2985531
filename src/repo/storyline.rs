//! Storyline events of a case, in the order they happened.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::storyline_events;
use crate::db::{BuildOnce, DbConnection, StoredTimestamp};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = storyline_events)]
#[diesel(treat_none_as_default_value = false)]
pub struct EventRow {
    pub id: String,
    pub case_id: String,
    #[diesel(deserialize_as = StoredTimestamp)]
    pub occurred_at: NaiveDateTime,
    pub kind: String,
    pub title: String,
    pub body: Option<String>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub place_name: Option<String>,
    /// JSON array of attachment ids.
    pub attachment_ids: String,
    pub author_id: String,
    pub status: String,
    pub version: i64,
    #[diesel(deserialize_as = StoredTimestamp)]
    pub created_at: NaiveDateTime,
    #[diesel(deserialize_as = StoredTimestamp)]
    pub updated_at: NaiveDateTime,
    /// For a title the system wrote, what it says as a code (`i18n::SystemTitle`), so that
    /// each reader gets it in their language; `title` is its English text.
    pub title_code: Option<String>,
}

/// Columns a PATCH may set; `Some(None)` clears a nullable one.
#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = storyline_events)]
pub struct EventChanges {
    pub occurred_at: Option<NaiveDateTime>,
    pub kind: Option<String>,
    pub title: Option<String>,
    pub body: Option<Option<String>>,
    pub latitude: Option<Option<f64>>,
    pub longitude: Option<Option<f64>>,
    pub place_name: Option<Option<String>>,
    pub attachment_ids: Option<String>,
    pub status: Option<String>,
    /// `Some(None)`: a person retitled (or re-kinded) what the system wrote; it reads as written.
    pub title_code: Option<Option<String>>,
}

pub fn insert(conn: &mut DbConnection, row: &EventRow) -> QueryResult<()> {
    diesel::insert_into(storyline_events::table)
        .values(row)
        .execute(conn)
        .map(|_| ())
}

pub fn find(conn: &mut DbConnection, case_id: &str, id: &str) -> QueryResult<Option<EventRow>> {
    find_visible(conn, case_id, id, true)
}

/// One event of the case, if published or `drafts_too`.
pub fn find_visible(
    conn: &mut DbConnection,
    case_id: &str,
    id: &str,
    drafts_too: bool,
) -> QueryResult<Option<EventRow>> {
    let mut query = storyline_events::table
        .filter(storyline_events::case_id.eq(case_id))
        .filter(storyline_events::id.eq(id))
        .into_boxed();
    if !drafts_too {
        query = query.filter(storyline_events::status.eq("published"));
    }
    query.select(EventRow::as_select()).first(conn).optional()
}

/// What a reader of the storyline gets.
pub struct EventFilter {
    pub published_only: bool,
    pub positioned_only: bool,
}

/// Chronological; `after` is the (`occurred_at`, id) of the last row of the previous page.
pub fn list(
    conn: &mut DbConnection,
    case_id: &str,
    filter: &EventFilter,
    after: Option<(NaiveDateTime, String)>,
    limit: i64,
) -> QueryResult<Vec<EventRow>> {
    let mut query = storyline_events::table
        .filter(storyline_events::case_id.eq(case_id.to_owned()))
        .into_boxed();
    if filter.published_only {
        query = query.filter(storyline_events::status.eq("published"));
    }
    if filter.positioned_only {
        query = query.filter(storyline_events::latitude.is_not_null());
    }
    if let Some((at, id)) = after {
        query = query.filter(
            storyline_events::occurred_at
                .gt(at)
                .or(storyline_events::occurred_at
                    .eq(at)
                    .and(storyline_events::id.gt(id))),
        );
    }
    query
        .order((
            storyline_events::occurred_at.asc(),
            storyline_events::id.asc(),
        ))
        .limit(limit)
        .select(EventRow::as_select())
        .built_once()
        .load(conn)
}

/// Applies `changes` and bumps the version, only if the event is still at `version`.
pub fn update(
    conn: &mut DbConnection,
    id: &str,
    version: i64,
    changes: &EventChanges,
) -> QueryResult<bool> {
    let updated = diesel::update(
        storyline_events::table
            .find(id)
            .filter(storyline_events::version.eq(version)),
    )
    .set((
        changes,
        storyline_events::version.eq(version + 1),
        storyline_events::updated_at.eq(crate::db::now()),
    ))
    .execute(conn)?;
    Ok(updated == 1)
}

/// Deletes the event if it is still at `version`; false if it changed or went meanwhile (a
/// concurrent write on PostgreSQL).
pub fn delete(conn: &mut DbConnection, id: &str, version: i64) -> QueryResult<bool> {
    diesel::delete(
        storyline_events::table
            .filter(storyline_events::id.eq(id))
            .filter(storyline_events::version.eq(version)),
    )
    .execute(conn)
    .map(|deleted| deleted == 1)
}
