//! Refresh tokens: opaque random strings, stored only as SHA-256 hashes, rotated on every use.
//! All tokens descending from one login share a `family_id`; reusing a spent one revokes the
//! family (the token was stolen, or the client is broken: both must log in again).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::schema::{refresh_tokens, users};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = refresh_tokens)]
#[diesel(treat_none_as_default_value = false)]
pub struct RefreshTokenRow {
    pub id: String,
    pub family_id: String,
    pub user_id: String,
    pub token_hash: String,
    pub expires_at: NaiveDateTime,
    pub used_at: Option<NaiveDateTime>,
    pub revoked_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
}

impl RefreshTokenRow {
    /// Exchanged already, and not revoked since: presented again, it is reuse.
    pub fn spent(&self) -> bool {
        self.used_at.is_some() && self.revoked_at.is_none()
    }

    /// Neither spent nor revoked nor expired: it can still be exchanged.
    pub fn works(&self, now: NaiveDateTime) -> bool {
        self.used_at.is_none() && self.revoked_at.is_none() && self.expires_at > now
    }
}

pub fn insert(conn: &mut DbConnection, row: &RefreshTokenRow) -> QueryResult<()> {
    diesel::insert_into(refresh_tokens::table)
        .values(row)
        .execute(conn)
        .map(|_| ())
}

pub fn find_by_hash(conn: &mut DbConnection, hash: &str) -> QueryResult<Option<RefreshTokenRow>> {
    refresh_tokens::table
        .filter(refresh_tokens::token_hash.eq(hash))
        .select(RefreshTokenRow::as_select())
        .first(conn)
        .optional()
}

/// Spends a token. False when it was already spent or revoked (possibly by a racing request).
pub fn spend(conn: &mut DbConnection, id: &str) -> QueryResult<bool> {
    let n = diesel::update(
        refresh_tokens::table
            .find(id)
            .filter(refresh_tokens::used_at.is_null())
            .filter(refresh_tokens::revoked_at.is_null()),
    )
    .set(refresh_tokens::used_at.eq(crate::db::now()))
    .execute(conn)?;
    Ok(n == 1)
}

pub fn revoke_family(conn: &mut DbConnection, family_id: &str) -> QueryResult<usize> {
    diesel::update(
        refresh_tokens::table
            .filter(refresh_tokens::family_id.eq(family_id))
            .filter(refresh_tokens::revoked_at.is_null()),
    )
    .set(refresh_tokens::revoked_at.eq(crate::db::now()))
    .execute(conn)
}

/// Revokes the refresh tokens of every user of an agency (when it is deactivated).
pub fn revoke_agency(conn: &mut DbConnection, agency_id: &str) -> QueryResult<usize> {
    let staff = users::table
        .filter(users::agency_id.eq(agency_id.to_owned()))
        .select(users::id);
    diesel::update(
        refresh_tokens::table
            .filter(refresh_tokens::user_id.eq_any(staff))
            .filter(refresh_tokens::revoked_at.is_null()),
    )
    .set(refresh_tokens::revoked_at.eq(crate::db::now()))
    .execute(conn)
}

/// Used when a user is deactivated or changes password.
pub fn revoke_user(conn: &mut DbConnection, user_id: &str) -> QueryResult<usize> {
    diesel::update(
        refresh_tokens::table
            .filter(refresh_tokens::user_id.eq(user_id))
            .filter(refresh_tokens::revoked_at.is_null()),
    )
    .set(refresh_tokens::revoked_at.eq(crate::db::now()))
    .execute(conn)
}

/// Whether the user still holds a refresh token that works: one session left somewhere.
pub fn any_live(conn: &mut DbConnection, user_id: &str, now: NaiveDateTime) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        refresh_tokens::table
            .filter(refresh_tokens::user_id.eq(user_id))
            .filter(refresh_tokens::used_at.is_null())
            .filter(refresh_tokens::revoked_at.is_null())
            .filter(refresh_tokens::expires_at.gt(now)),
    ))
    .get_result(conn)
}

/// Forgets up to `limit` of the tokens that expired before `before` (housekeeping).
pub fn delete_expired_before(
    conn: &mut DbConnection,
    before: NaiveDateTime,
    limit: i64,
) -> QueryResult<usize> {
    // Two statements: diesel takes no subquery of the deleted table itself in a DELETE.
    let expired: Vec<String> = refresh_tokens::table
        .filter(refresh_tokens::expires_at.lt(before))
        .select(refresh_tokens::id)
        .limit(limit)
        .load(conn)?;
    diesel::delete(refresh_tokens::table.filter(refresh_tokens::id.eq_any(expired))).execute(conn)
}
