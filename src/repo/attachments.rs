//! Attachment rows; the bytes are in object storage (`crate::storage`).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::schema::attachments;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = attachments)]
#[diesel(treat_none_as_default_value = false)]
pub struct AttachmentRow {
    pub id: String,
    pub case_id: String,
    pub uploader_id: String,
    pub file_name: String,
    pub content_type: String,
    pub size_bytes: i64,
    pub sha256: String,
    pub storage_key: String,
    pub created_at: NaiveDateTime,
}

pub fn insert(conn: &mut DbConnection, row: &AttachmentRow) -> QueryResult<()> {
    diesel::insert_into(attachments::table)
        .values(row)
        .execute(conn)
        .map(|_| ())
}

/// The row, whatever case it belongs to: callers check the case's visibility next.
pub fn find(conn: &mut DbConnection, id: &str) -> QueryResult<Option<AttachmentRow>> {
    attachments::table
        .find(id)
        .select(AttachmentRow::as_select())
        .first(conn)
        .optional()
}

/// A case's attachments, newest first; `after` is the last id of the previous page.
pub fn list(
    conn: &mut DbConnection,
    case_id: &str,
    after: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<AttachmentRow>> {
    let mut query = attachments::table
        .filter(attachments::case_id.eq(case_id))
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(attachments::id.lt(after.to_owned()));
    }
    query
        .order(attachments::id.desc())
        .limit(limit)
        .select(AttachmentRow::as_select())
        .load(conn)
}

pub fn delete(conn: &mut DbConnection, id: &str) -> QueryResult<()> {
    diesel::delete(attachments::table.find(id))
        .execute(conn)
        .map(|_| ())
}

/// How many of `ids` are attachments of this case.
pub fn count_of_case(conn: &mut DbConnection, case_id: &str, ids: &[String]) -> QueryResult<i64> {
    attachments::table
        .filter(attachments::case_id.eq(case_id))
        .filter(attachments::id.eq_any(ids))
        .count()
        .get_result(conn)
}
