//! Attachment rows; the bytes are in object storage (`crate::storage`).
//!
//! Every read takes `with_internal`: the client's reads leave internal files out in the query.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::{attachments, case_fields, client_requests, messages, storyline_events};
use crate::db::{DbConnection, MultiBackend};

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
    /// Hidden from the client (see the migration `internal_attachments`).
    pub internal: bool,
}

pub fn insert(conn: &mut DbConnection, row: &AttachmentRow) -> QueryResult<()> {
    diesel::insert_into(attachments::table)
        .values(row)
        .execute(conn)
        .map(|_| ())
}

/// The attachments a reader may see: internal ones only `with_internal`.
fn seen(with_internal: bool) -> attachments::BoxedQuery<'static, MultiBackend> {
    let rows = attachments::table.into_boxed();
    if with_internal {
        rows
    } else {
        rows.filter(attachments::internal.eq(false))
    }
}

/// The row, whatever case it belongs to: callers check the case's visibility next.
pub fn find(
    conn: &mut DbConnection,
    id: &str,
    with_internal: bool,
) -> QueryResult<Option<AttachmentRow>> {
    seen(with_internal)
        .filter(attachments::id.eq(id.to_owned()))
        .select(AttachmentRow::as_select())
        .first(conn)
        .optional()
}

/// A case's attachments, newest first; `after` is the last id of the previous page.
pub fn list(
    conn: &mut DbConnection,
    case_id: &str,
    with_internal: bool,
    after: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<AttachmentRow>> {
    let mut query = seen(with_internal).filter(attachments::case_id.eq(case_id.to_owned()));
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

/// Which of `ids` are attachments of this case that the reader may see.
pub fn found_of_case(
    conn: &mut DbConnection,
    case_id: &str,
    ids: &[String],
    with_internal: bool,
) -> QueryResult<Vec<String>> {
    seen(with_internal)
        .filter(attachments::case_id.eq(case_id.to_owned()))
        .filter(attachments::id.eq_any(ids.to_vec()))
        .select(attachments::id)
        .load(conn)
}

/// Shows the internal ones among `ids` (of this case) to the client; the ids it changed. One
/// statement: a racing write that shared them first leaves this one nothing to change (and to
/// audit), as PostgreSQL checks `internal` again once the other's row lock is released.
pub fn share(conn: &mut DbConnection, case_id: &str, ids: &[String]) -> QueryResult<Vec<String>> {
    diesel::update(
        attachments::table
            .filter(attachments::case_id.eq(case_id))
            .filter(attachments::id.eq_any(ids))
            .filter(attachments::internal.eq(true)),
    )
    .set(attachments::internal.eq(false))
    .returning(attachments::id)
    .get_results(conn)
}

/// On PostgreSQL a write citing files takes a key-share lock on their rows, so that a deletion
/// racing it (which takes [`lock_for_deletion`]) waits for it and then sees what cited them.
/// KEY SHARE, not SHARE: two writes citing one internal file both go on to [`share`] it, and
/// an UPDATE of a non-key column waits for SHARE locks, not KEY SHARE ones (two SHARE holders
/// each waited for the other's). SQLite's writes are serialized already (`BEGIN IMMEDIATE`).
/// Only the case's own files: another case's named by mistake (or on purpose) stay unlocked.
pub fn lock_for_citing(conn: &mut DbConnection, case_id: &str, ids: &[String]) -> QueryResult<()> {
    if let DbConnection::Postgresql(pg) = conn {
        attachments::table
            .filter(attachments::case_id.eq(case_id))
            .filter(attachments::id.eq_any(ids))
            .select(attachments::id)
            .for_key_share()
            .load::<String>(pg)?;
    }
    Ok(())
}

/// The deleting side of [`lock_for_citing`]; false when the row has gone meanwhile (a racing
/// deletion got there first).
pub fn lock_for_deletion(conn: &mut DbConnection, id: &str) -> QueryResult<bool> {
    match conn {
        DbConnection::Postgresql(pg) => Ok(attachments::table
            .filter(attachments::id.eq(id))
            .select(attachments::id)
            .for_update()
            .load::<String>(pg)?
            .len()
            == 1),
        DbConnection::Sqlite(_) => Ok(true),
    }
}

/// What in its case still names the file, if anything: a message, a storyline event, an answer
/// to a request or a required-data value. Each stores ids as JSON strings, so `"<id>"` finds
/// it (a UUID holds no LIKE wildcard); each search stays within the case's rows.
pub fn named_by(
    conn: &mut DbConnection,
    case_id: &str,
    id: &str,
) -> QueryResult<Option<&'static str>> {
    let quoted = naming(id);
    macro_rules! names_it {
        ($table:ident . $column:ident) => {
            $table::table
                .filter($table::case_id.eq(case_id))
                .filter($table::$column.like(&quoted))
                .count()
                .get_result::<i64>(conn)?
                > 0
        };
    }
    Ok(if names_it!(messages.attachment_ids) {
        Some("a message")
    } else if names_it!(storyline_events.attachment_ids) {
        Some("a storyline event")
    } else if names_it!(client_requests.answer_attachment_ids) {
        Some("an answer to a request")
    } else if file_value_names_it(conn, case_id, &quoted)? {
        Some("a required-data value")
    } else {
        None
    })
}

/// The LIKE pattern of a JSON array of ids that holds `id`: `"<id>"` (a UUID holds no LIKE
/// wildcard).
pub fn naming(id: &str) -> String {
    format!("%\"{id}\"%")
}

/// Whether an image or file field holds the id: a text field may hold the same characters.
fn file_value_names_it(conn: &mut DbConnection, case_id: &str, quoted: &str) -> QueryResult<bool> {
    let holders: i64 = case_fields::table
        .filter(case_fields::case_id.eq(case_id))
        .filter(case_fields::field_type.eq_any(["image", "file"]))
        .filter(case_fields::value.like(quoted))
        .count()
        .get_result(conn)?;
    Ok(holders > 0)
}
