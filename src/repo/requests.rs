//! Requests to the client and their answers.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::client_requests;
use crate::db::{BuildOnce, DbConnection};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = client_requests)]
#[diesel(treat_none_as_default_value = false)]
pub struct RequestRow {
    pub id: String,
    pub case_id: String,
    pub kind: String,
    pub prompt: String,
    pub due_at: Option<NaiveDateTime>,
    pub status: String,
    pub created_by: String,
    pub created_at: NaiveDateTime,
    pub answer_text: Option<String>,
    /// JSON array of attachment ids.
    pub answer_attachment_ids: Option<String>,
    pub answered_by: Option<String>,
    pub answered_at: Option<NaiveDateTime>,
    pub version: i64,
}

#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = client_requests)]
pub struct RequestChanges {
    pub status: Option<String>,
    pub answer_text: Option<Option<String>>,
    pub answer_attachment_ids: Option<Option<String>>,
    pub answered_by: Option<Option<String>>,
    pub answered_at: Option<Option<NaiveDateTime>>,
}

pub fn insert(conn: &mut DbConnection, row: &RequestRow) -> QueryResult<()> {
    diesel::insert_into(client_requests::table)
        .values(row)
        .execute(conn)
        .map(|_| ())
}

pub fn find(conn: &mut DbConnection, case_id: &str, id: &str) -> QueryResult<Option<RequestRow>> {
    client_requests::table
        .filter(client_requests::case_id.eq(case_id))
        .filter(client_requests::id.eq(id))
        .select(RequestRow::as_select())
        .first(conn)
        .optional()
}

/// A case's requests, newest first, only those in `statuses` unless it is empty.
pub fn list(
    conn: &mut DbConnection,
    case_id: &str,
    statuses: &[&str],
    after: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<RequestRow>> {
    let mut query = client_requests::table
        .filter(client_requests::case_id.eq(case_id.to_owned()))
        .into_boxed();
    query = filter_any!(query, client_requests::status, statuses);
    if let Some(after) = after {
        query = query.filter(client_requests::id.lt(after.to_owned()));
    }
    query
        .order(client_requests::id.desc())
        .limit(limit)
        .select(RequestRow::as_select())
        .built_once()
        .load(conn)
}

/// The case's requests in one status, newest first (the card's open requests): `list`'s
/// statement as a fixed type, rendered once per thread (`db::built_once`).
pub fn in_status(
    conn: &mut DbConnection,
    case_id: &str,
    status: &str,
    limit: i64,
) -> QueryResult<Vec<RequestRow>> {
    client_requests::table
        .filter(client_requests::case_id.eq(case_id.to_owned()))
        .filter(client_requests::status.eq(status.to_owned()))
        .order(client_requests::id.desc())
        .limit(limit)
        .select(RequestRow::as_select())
        .built_once()
        .load(conn)
}

/// Changes an open request, only while it is still open at `version`.
pub fn update_open(
    conn: &mut DbConnection,
    id: &str,
    version: i64,
    changes: &RequestChanges,
) -> QueryResult<bool> {
    let updated = diesel::update(
        client_requests::table
            .find(id)
            .filter(client_requests::version.eq(version))
            .filter(client_requests::status.eq("open")),
    )
    .set((changes, client_requests::version.eq(version + 1)))
    .execute(conn)?;
    Ok(updated == 1)
}

/// Cancels the case's open requests; their ids.
pub fn cancel_open(conn: &mut DbConnection, case_id: &str) -> QueryResult<Vec<String>> {
    diesel::update(
        client_requests::table
            .filter(client_requests::case_id.eq(case_id))
            .filter(client_requests::status.eq("open")),
    )
    .set((
        client_requests::status.eq("cancelled"),
        client_requests::version.eq(client_requests::version + 1),
    ))
    .returning(client_requests::id)
    .get_results(conn)
}
