//! A support ticket's files; the bytes are in object storage (`crate::storage`). Every query
//! names the ticket: the caller's right to it is checked on the ticket first, and a file of
//! another ticket is not found.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::schema::{ticket_attachments, ticket_messages};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = ticket_attachments)]
#[diesel(treat_none_as_default_value = false)]
pub struct TicketAttachmentRow {
    pub ticket_id: String,
    pub id: String,
    pub uploader_id: String,
    pub file_name: String,
    pub content_type: String,
    pub size_bytes: i64,
    pub sha256: String,
    pub storage_key: String,
    pub created_at: NaiveDateTime,
}

pub fn insert(conn: &mut DbConnection, row: &TicketAttachmentRow) -> QueryResult<()> {
    diesel::insert_into(ticket_attachments::table)
        .values(row)
        .execute(conn)
        .map(drop)
}

pub fn find(
    conn: &mut DbConnection,
    ticket_id: &str,
    id: &str,
) -> QueryResult<Option<TicketAttachmentRow>> {
    ticket_attachments::table
        .find((ticket_id, id))
        .select(TicketAttachmentRow::as_select())
        .first(conn)
        .optional()
}

/// Newest first, below `before` (the last id of the previous page): the key's order.
pub fn list(
    conn: &mut DbConnection,
    ticket_id: &str,
    before: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<TicketAttachmentRow>> {
    let mut query = ticket_attachments::table
        .filter(ticket_attachments::ticket_id.eq(ticket_id.to_owned()))
        .into_boxed();
    if let Some(before) = before {
        query = query.filter(ticket_attachments::id.lt(before.to_owned()));
    }
    query
        .order(ticket_attachments::id.desc())
        .limit(limit)
        .select(TicketAttachmentRow::as_select())
        .load(conn)
}

/// False when the row has gone meanwhile (a racing deletion got there first).
pub fn delete(conn: &mut DbConnection, ticket_id: &str, id: &str) -> QueryResult<bool> {
    diesel::delete(ticket_attachments::table.find((ticket_id, id)))
        .execute(conn)
        .map(|n| n == 1)
}

/// Which of `ids` are files of this ticket. On PostgreSQL their rows are locked KEY SHARE as
/// they are read, so that a deletion racing the message citing them (it deletes the row,
/// which waits for the lock) then sees the message. SQLite's writes are serialized already.
pub fn found_of_ticket(
    conn: &mut DbConnection,
    ticket_id: &str,
    ids: &[String],
) -> QueryResult<Vec<String>> {
    let rows = ticket_attachments::table
        .filter(ticket_attachments::ticket_id.eq(ticket_id))
        .filter(ticket_attachments::id.eq_any(ids))
        .select(ticket_attachments::id);
    match conn {
        DbConnection::Postgresql(pg) => rows.for_key_share().load::<String>(pg),
        DbConnection::Sqlite(lite) => rows.load::<String>(lite),
    }
}

/// Whether a message of the ticket carries the file (a search within the ticket's messages).
pub fn cited(conn: &mut DbConnection, ticket_id: &str, id: &str) -> QueryResult<bool> {
    let citing: i64 = ticket_messages::table
        .filter(ticket_messages::ticket_id.eq(ticket_id))
        .filter(ticket_messages::attachment_ids.like(super::attachments::naming(id)))
        .count()
        .get_result(conn)?;
    Ok(citing > 0)
}
