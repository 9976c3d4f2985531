//! Stored first responses for `Idempotency-Key` (API.md "Idempotency"). The key row is written
//! in the same transaction as what the request creates, so a replay exists exactly when the
//! creation committed.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::schema::idempotency_keys;
use crate::errors::ApiError;
use crate::sealing::{self, Sealer};

/// Keys are forgotten after this long.
pub const LIFETIME_HOURS: i64 = 24;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = idempotency_keys)]
#[diesel(treat_none_as_default_value = false)]
pub struct StoredResponse {
    pub user_id: String,
    pub key: String,
    /// SHA-256 of method, path and body: a retry must match it.
    pub fingerprint: String,
    pub status_code: i32,
    pub location: Option<String>,
    pub etag: Option<String>,
    /// Stored sealed (`sealing::idempotency_context`) when a key is configured; in memory, as
    /// sent.
    pub body: String,
    pub created_at: NaiveDateTime,
}

fn cutoff() -> NaiveDateTime {
    crate::db::now() - chrono::Duration::hours(LIFETIME_HOURS)
}

/// The stored response for this key, if a live one exists, its body opened; 422 when the key
/// was used with another request.
pub fn replay(
    conn: &mut DbConnection,
    sealer: &Sealer,
    user_id: &str,
    key: &str,
    fingerprint: &str,
) -> Result<Option<StoredResponse>, ApiError> {
    // An expired key is no key: `save` takes its place, `housekeeping` removes the others. A
    // replay deletes nothing, so it locks no row a concurrent write of the user may need.
    let stored = idempotency_keys::table
        .find((user_id, key))
        .filter(idempotency_keys::created_at.ge(cutoff()))
        .select(StoredResponse::as_select())
        .first(conn)
        .optional()?;
    match stored {
        Some(s) if s.fingerprint != fingerprint => Err(ApiError::Unprocessable {
            code: "idempotency_key_reused",
            detail: "This Idempotency-Key was used with a different request; use a new key.".into(),
            errors: Vec::new(),
        }),
        Some(mut s) => {
            s.body = sealer.open(&sealing::idempotency_context(user_id, key), &s.body)?;
            Ok(Some(s))
        }
        None => Ok(None),
    }
}

/// Forgets the `limit` oldest expired keys, whoever's (`save` replaces an expired key used
/// again). A walk of the `created_at` index.
pub fn delete_expired(conn: &mut DbConnection, limit: i64) -> QueryResult<usize> {
    // The oldest `limit` by their time (a few more when times tie): the key has two columns,
    // which diesel cannot list in a DELETE.
    let expired = idempotency_keys::table.filter(idempotency_keys::created_at.lt(cutoff()));
    let last: Option<NaiveDateTime> = expired
        .order(idempotency_keys::created_at)
        .offset(limit - 1)
        .select(idempotency_keys::created_at)
        .first(conn)
        .optional()?;
    match last {
        Some(last) => {
            diesel::delete(idempotency_keys::table.filter(idempotency_keys::created_at.le(last)))
                .execute(conn)
        }
        None => diesel::delete(expired).execute(conn),
    }
}

/// Records the first response, its body sealed, in place of the key's expired record if it
/// has one. A concurrent request holding the same key makes this a unique violation
/// (PostgreSQL waits for it to commit first): that retry answers 409.
pub fn save(
    conn: &mut DbConnection,
    sealer: &Sealer,
    response: &StoredResponse,
) -> Result<(), ApiError> {
    let body = sealer.seal(
        &sealing::idempotency_context(&response.user_id, &response.key),
        &response.body,
    )?;
    diesel::delete(
        idempotency_keys::table
            .find((&response.user_id, &response.key))
            .filter(idempotency_keys::created_at.lt(cutoff())),
    )
    .execute(conn)?;
    diesel::insert_into(idempotency_keys::table)
        .values(&StoredResponse {
            body,
            ..response.clone()
        })
        .execute(conn)
        .map_err(super::unique_violation_as(|| ApiError::Conflict {
            code: "idempotency_key_in_use",
            detail: "Another request with this Idempotency-Key is in progress; retry shortly to \
                     get its response."
                .into(),
        }))?;
    Ok(())
}
