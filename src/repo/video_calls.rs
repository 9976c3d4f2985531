//! Video call rooms of a case.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::schema::video_calls;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = video_calls)]
#[diesel(treat_none_as_default_value = false)]
pub struct VideoCallRow {
    pub id: String,
    pub case_id: String,
    pub room: String,
    pub url: String,
    pub created_by: String,
    pub created_at: NaiveDateTime,
    /// When the link stopped working: the case left the statuses with calls.
    pub ended_at: Option<NaiveDateTime>,
}

pub fn insert(conn: &mut DbConnection, row: &VideoCallRow) -> QueryResult<()> {
    diesel::insert_into(video_calls::table)
        .values(row)
        .execute(conn)
        .map(|_| ())
}

pub fn find(conn: &mut DbConnection, id: &str) -> QueryResult<Option<VideoCallRow>> {
    video_calls::table
        .find(id)
        .select(VideoCallRow::as_select())
        .first(conn)
        .optional()
}

/// Ends the case's rooms still working, as the case leaves the statuses with calls; their ids.
pub fn end_working(
    conn: &mut DbConnection,
    case_id: &str,
    at: NaiveDateTime,
) -> QueryResult<Vec<String>> {
    diesel::update(
        video_calls::table
            .filter(video_calls::case_id.eq(case_id))
            .filter(video_calls::ended_at.is_null()),
    )
    .set(video_calls::ended_at.eq(at))
    .returning(video_calls::id)
    .get_results(conn)
}

/// A case's rooms, newest first; `before` is the id of the last one of the previous page.
pub fn of_case(
    conn: &mut DbConnection,
    case_id: &str,
    before: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<VideoCallRow>> {
    let mut query = video_calls::table
        .filter(video_calls::case_id.eq(case_id.to_owned()))
        .into_boxed();
    if let Some(before) = before {
        query = query.filter(video_calls::id.lt(before.to_owned()));
    }
    query
        .order(video_calls::id.desc())
        .limit(limit)
        .select(VideoCallRow::as_select())
        .load(conn)
}
