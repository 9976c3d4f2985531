use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::schema::agencies;
use crate::errors::ApiError;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = agencies)]
#[diesel(treat_none_as_default_value = false)]
pub struct AgencyRow {
    pub id: String,
    pub name: String,
    pub contact_email: Option<String>,
    pub active: bool,
    pub version: i64,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = agencies)]
pub struct AgencyChanges {
    pub name: Option<String>,
    pub contact_email: Option<Option<String>>,
    pub active: Option<bool>,
}

fn name_taken() -> ApiError {
    ApiError::Conflict {
        code: "agency_name_taken",
        detail: "Another agency already has this name.".into(),
    }
}

pub fn find(conn: &mut DbConnection, id: &str) -> QueryResult<Option<AgencyRow>> {
    agencies::table
        .find(id)
        .select(AgencyRow::as_select())
        .first(conn)
        .optional()
}

/// Whether the agency is active (an unknown one is not).
pub fn is_active(conn: &mut DbConnection, id: &str) -> QueryResult<bool> {
    agencies::table
        .find(id)
        .select(agencies::active)
        .first(conn)
        .optional()
        .map(|active| active == Some(true))
}

/// Ends every session of the agency's staff: access tokens issued so far are refused from
/// their next request on ([`super::users::SessionEpochs::sum`]). Not part of the
/// agency's representation, so the version stays.
pub fn end_sessions(conn: &mut DbConnection, id: &str) -> QueryResult<()> {
    diesel::update(agencies::table.find(id))
        .set(agencies::session_epoch.eq(agencies::session_epoch + 1))
        .execute(conn)
        .map(drop)
}

/// Newest first; `after` is the id of the last row of the previous page.
pub fn list(
    conn: &mut DbConnection,
    after: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<AgencyRow>> {
    let mut query = agencies::table.into_boxed();
    if let Some(after) = after {
        query = query.filter(agencies::id.lt(after.to_owned()));
    }
    query
        .order(agencies::id.desc())
        .limit(limit)
        .select(AgencyRow::as_select())
        .load(conn)
}

pub fn insert(conn: &mut DbConnection, agency: &AgencyRow) -> Result<(), ApiError> {
    diesel::insert_into(agencies::table)
        .values(agency)
        .execute(conn)
        .map_err(super::unique_violation_as(name_taken))?;
    Ok(())
}

/// Applies `changes` only if the row is still at `version`; false when it has moved on.
pub fn update(
    conn: &mut DbConnection,
    id: &str,
    version: i64,
    changes: &AgencyChanges,
) -> Result<bool, ApiError> {
    let updated = diesel::update(
        agencies::table
            .find(id)
            .filter(agencies::version.eq(version)),
    )
    .set((
        changes,
        agencies::version.eq(version + 1),
        agencies::updated_at.eq(crate::db::now()),
    ))
    .execute(conn)
    .map_err(super::unique_violation_as(name_taken))?;
    Ok(updated == 1)
}
