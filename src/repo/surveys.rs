//! Surveys: the client's rating of a case they closed.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::surveys;
use crate::db::{BuildOnce, DbConnection};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = surveys)]
#[diesel(treat_none_as_default_value = false)]
pub struct SurveyRow {
    pub id: String,
    pub case_id: String,
    pub client_id: String,
    pub rating: i32,
    pub comment: Option<String>,
    pub created_at: NaiveDateTime,
}

pub fn insert(conn: &mut DbConnection, row: &SurveyRow) -> QueryResult<()> {
    diesel::insert_into(surveys::table)
        .values(row)
        .execute(conn)
        .map(|_| ())
}

/// One survey of the case.
pub fn find(conn: &mut DbConnection, case_id: &str, id: &str) -> QueryResult<Option<SurveyRow>> {
    surveys::table
        .filter(surveys::case_id.eq(case_id))
        .filter(surveys::id.eq(id))
        .select(SurveyRow::as_select())
        .first(conn)
        .optional()
}

/// The case's newest survey (ids are UUIDv7).
pub fn last(conn: &mut DbConnection, case_id: &str) -> QueryResult<Option<SurveyRow>> {
    surveys::table
        .filter(surveys::case_id.eq(case_id))
        .order(surveys::id.desc())
        .limit(1)
        .select(SurveyRow::as_select())
        .built_once()
        .get_result(conn)
        .optional()
}
