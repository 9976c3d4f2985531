//! Blobs that may be in storage with no row owning them (`loose_blobs`): an upload streaming
//! in, a deleted file's bytes. Each is settled by its request, or swept once due.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::schema::loose_blobs;

/// Marks `key` as possibly in storage with nothing owning it, to be removed from `due_at` on.
pub fn insert(conn: &mut DbConnection, key: &str, due_at: NaiveDateTime) -> QueryResult<()> {
    diesel::insert_into(loose_blobs::table)
        .values((
            loose_blobs::storage_key.eq(key),
            loose_blobs::due_at.eq(due_at),
        ))
        .execute(conn)
        .map(drop)
}

/// `keys` are owned by a row now, or gone from storage.
pub fn settle(conn: &mut DbConnection, keys: &[String]) -> QueryResult<()> {
    diesel::delete(loose_blobs::table.filter(loose_blobs::storage_key.eq_any(keys)))
        .execute(conn)
        .map(drop)
}

/// `keys` storage could not remove: due again at `due_at`.
pub fn postpone(
    conn: &mut DbConnection,
    keys: &[String],
    due_at: NaiveDateTime,
) -> QueryResult<()> {
    diesel::update(loose_blobs::table.filter(loose_blobs::storage_key.eq_any(keys)))
        .set(loose_blobs::due_at.eq(due_at))
        .execute(conn)
        .map(drop)
}

/// Up to `limit` keys due by `now`, oldest first (a search of `loose_blobs_due_idx`).
pub fn due(conn: &mut DbConnection, now: NaiveDateTime, limit: i64) -> QueryResult<Vec<String>> {
    loose_blobs::table
        .filter(loose_blobs::due_at.le(now))
        .order(loose_blobs::due_at)
        .limit(limit)
        .select(loose_blobs::storage_key)
        .load(conn)
}
