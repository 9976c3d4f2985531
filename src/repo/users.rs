use chrono::NaiveDateTime;
use diesel::dsl::{IntoBoxed, LeftJoin};
use diesel::prelude::*;

use crate::db::schema::{agencies, users};
use crate::db::{BuildOnce, DbConnection};
use crate::domain::{Locale, Role};
use crate::errors::ApiError;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = users)]
#[diesel(treat_none_as_default_value = false)]
pub struct UserRow {
    pub id: String,
    pub email: String,
    pub name: String,
    pub role: String,
    pub agency_id: Option<String>,
    pub is_admin: bool,
    pub locale: String,
    pub active: bool,
    pub password_hash: String,
    pub id_document_type: Option<String>,
    pub id_document_number: Option<String>,
    pub account_number: Option<String>,
    pub version: i64,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// Operators only; `None` follows `DOSSIER_OPERATOR_CAPACITY`.
    pub capacity: Option<i32>,
    /// Moved on when every session of the user ends ([`end_sessions`]); with their agency's,
    /// what their access tokens carry ([`SessionEpochs::sum`]).
    pub session_epoch: i64,
}

impl UserRow {
    pub fn role(&self) -> Role {
        role_of(&self.role)
    }

    /// Their capacity as an operator (agency or platform staff), against `default`; `None`
    /// for agents and clients, who are not operators.
    pub fn operator_capacity(&self, default: u32) -> Option<i64> {
        let own = self.capacity;
        self.role()
            .is_operator()
            .then(|| effective_capacity(own, default))
    }

    pub fn locale(&self) -> Locale {
        locale_of(&self.locale)
    }
}

/// An enabled user (`enabled`) with their agency's session epoch, for issuing and checking
/// sessions.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = users)]
pub struct ActiveUser {
    #[diesel(embed)]
    pub row: UserRow,
    #[diesel(embed)]
    pub epochs: SessionEpochs,
}

/// What authenticating a request needs of a user: a few columns rather than the whole row (no
/// password hash read on every request; this is the most frequent statement of all).
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = users)]
pub struct CallerRow {
    pub id: String,
    pub role: String,
    pub agency_id: Option<String>,
    pub is_admin: bool,
    pub locale: String,
    #[diesel(embed)]
    pub epochs: SessionEpochs,
}

impl CallerRow {
    pub fn role(&self) -> Role {
        role_of(&self.role)
    }

    pub fn locale(&self) -> Locale {
        locale_of(&self.locale)
    }
}

/// A user's session epoch and their agency's (staff only), read with `users` joined to
/// `agencies`.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = users)]
pub struct SessionEpochs {
    #[diesel(column_name = session_epoch)]
    own: i64,
    #[diesel(select_expression = agencies::session_epoch.nullable())]
    #[diesel(select_expression_type = diesel::dsl::Nullable<agencies::session_epoch>)]
    agency: Option<i64>,
}

impl SessionEpochs {
    /// The epoch the user's access tokens are issued under: their own plus their agency's.
    /// Both only grow, so the sum moves whenever the user's sessions end or their agency is
    /// deactivated, and a token carrying an older sum is refused.
    pub fn sum(&self) -> i64 {
        self.own + self.agency.unwrap_or(0)
    }
}

/// Someone's own capacity (`users.capacity`), else the server's `DOSSIER_OPERATOR_CAPACITY`.
pub fn effective_capacity(own: Option<i32>, default: u32) -> i64 {
    own.map_or(i64::from(default), i64::from)
}

fn role_of(code: &str) -> Role {
    Role::from_code(code).unwrap_or(Role::Client)
}

fn locale_of(code: &str) -> Locale {
    Locale::from_code(code).unwrap_or(Locale::En)
}

/// Columns a PATCH may set; `None` leaves a column alone, `Some(None)` clears a nullable one.
#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = users)]
pub struct UserChanges {
    pub email: Option<String>,
    pub name: Option<String>,
    pub is_admin: Option<bool>,
    pub locale: Option<String>,
    pub active: Option<bool>,
    pub password_hash: Option<String>,
    pub id_document_type: Option<Option<String>>,
    pub id_document_number: Option<Option<String>>,
    pub account_number: Option<Option<String>>,
    pub capacity: Option<Option<i32>>,
}

/// Which users a caller may see.
#[derive(Debug, Clone)]
pub enum UserScope {
    /// Platform staff: everyone.
    All,
    /// An agency admin: the agency and agent users of that agency.
    AgencyStaff(String),
}

#[derive(Debug, Default)]
pub struct UserFilter {
    /// Any of these roles; every role when empty.
    pub roles: Vec<&'static str>,
    pub agency_id: Option<String>,
}

type Backend = <DbConnection as diesel::Connection>::Backend;
type BoxedUsers<'a> = users::BoxedQuery<'a, Backend>;

fn scoped(scope: &UserScope) -> BoxedUsers<'static> {
    let query = users::table.into_boxed();
    match scope {
        UserScope::All => query,
        UserScope::AgencyStaff(agency) => query.filter(users::agency_id.eq(agency.clone())).filter(
            users::role
                .eq(Role::Agency.as_str())
                .or(users::role.eq(Role::Agent.as_str())),
        ),
    }
}

pub fn count(conn: &mut DbConnection) -> QueryResult<i64> {
    users::table.count().get_result(conn)
}

/// Users who may log in or use a token: active, and for agency staff, of an active agency.
/// A join, not `agency_id IN (SELECT … active agencies)`: SQLite listed every agency into a
/// temporary index at each call, which made authentication a tenth of a card's CPU.
fn enabled() -> IntoBoxed<'static, LeftJoin<users::table, agencies::table>, Backend> {
    users::table
        .left_join(agencies::table)
        .into_boxed()
        .filter(is_enabled())
}

/// The condition of `enabled`, for queries of fixed types (see `find_caller`) and for others
/// that join `agencies` to `users` themselves.
#[diesel::dsl::auto_type]
pub fn is_enabled() -> _ {
    let yes: bool = true;
    users::active.eq(yes).and(
        users::agency_id
            .is_null()
            .or(agencies::active.nullable().eq(yes)),
    )
}

/// On PostgreSQL, share-locks the user's row and their agency's to the end of the transaction,
/// before a refresh token is issued: a password change or a deactivation (which updates one of
/// those rows, then revokes the user's refresh tokens) waits for the token being issued and
/// then revokes it too, instead of missing a token its snapshot does not show (and a presence
/// set by the user waits for, or comes before, the end of their sessions). SQLite's writes
/// are serialized already. Taken before any refresh-token row, as those writes take them.
pub fn lock_for_new_session(conn: &mut DbConnection, id: &str) -> QueryResult<()> {
    if let DbConnection::Postgresql(pg) = conn {
        let agency: Option<Option<String>> = users::table
            .find(id)
            .select(users::agency_id)
            .for_share()
            .get_result(pg)
            .optional()?;
        if let Some(Some(agency)) = agency {
            agencies::table
                .find(agency)
                .select(agencies::id)
                .for_share()
                .load::<String>(pg)?;
        }
    }
    Ok(())
}

/// On PostgreSQL, locks these users' rows as an update of theirs would, in id order (so two
/// writes locking the same pair wait for each other, never deadlock), to the end of the
/// transaction. NO KEY UPDATE, not UPDATE: rows that merely reference a user (a message, a
/// notification) take KEY SHARE locks, which UPDATE would conflict with. SQLite's writes are
/// serialized already.
pub fn lock_for_update(conn: &mut DbConnection, ids: &[&str]) -> QueryResult<()> {
    if let DbConnection::Postgresql(pg) = conn {
        users::table
            .filter(users::id.eq_any(ids))
            .order(users::id)
            .select(users::id)
            .for_no_key_update()
            .load::<String>(pg)?;
    }
    Ok(())
}

pub fn find_active(conn: &mut DbConnection, id: &str) -> QueryResult<Option<ActiveUser>> {
    enabled()
        .filter(users::id.eq(id.to_owned()))
        .select(ActiveUser::as_select())
        .limit(1)
        .built_once()
        .get_result(conn)
        .optional()
}

/// An active user of an active agency (if any), for authentication.
/// Every request runs it: a statement of a fixed type, rendered once per thread
/// (`db::built_once`).
pub fn find_caller(conn: &mut DbConnection, id: &str) -> QueryResult<Option<CallerRow>> {
    users::table
        .left_join(agencies::table)
        .filter(is_enabled())
        .filter(users::id.eq(id.to_owned()))
        .select(CallerRow::as_select())
        .limit(1)
        .built_once()
        .get_result(conn)
        .optional()
}

pub fn find_active_by_email(conn: &mut DbConnection, email: &str) -> QueryResult<Option<UserRow>> {
    enabled()
        .filter(users::email.eq(email.to_owned()))
        .select(UserRow::as_select())
        .first(conn)
        .optional()
}

pub fn find(conn: &mut DbConnection, scope: &UserScope, id: &str) -> QueryResult<Option<UserRow>> {
    scoped(scope)
        .filter(users::id.eq(id.to_owned()))
        .select(UserRow::as_select())
        .limit(1)
        .built_once()
        .get_result(conn)
        .optional()
}

/// Newest first; `after` is the id of the last row of the previous page.
pub fn list(
    conn: &mut DbConnection,
    scope: &UserScope,
    filter: &UserFilter,
    after: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<UserRow>> {
    let mut query = scoped(scope);
    query = filter_any!(query, users::role, filter.roles.as_slice());
    if let Some(agency) = &filter.agency_id {
        query = query.filter(users::agency_id.eq(agency.clone()));
    }
    if let Some(after) = after {
        query = query.filter(users::id.lt(after.to_owned()));
    }
    query
        .order(users::id.desc())
        .limit(limit)
        .select(UserRow::as_select())
        .load(conn)
}

pub fn insert(conn: &mut DbConnection, user: &UserRow) -> Result<(), ApiError> {
    diesel::insert_into(users::table)
        .values(user)
        .execute(conn)
        .map_err(super::unique_violation_as(email_taken))?;
    Ok(())
}

pub fn email_taken() -> ApiError {
    ApiError::Conflict {
        code: "email_taken",
        detail: "Another user already has this e-mail address.".into(),
    }
}

/// Ends every session of the user: the access tokens issued so far are refused from their
/// next request on (refresh tokens are revoked apart). Not part of the user's representation,
/// so the version stays.
pub fn end_sessions(conn: &mut DbConnection, id: &str) -> QueryResult<()> {
    diesel::update(users::table.find(id))
        .set(users::session_epoch.eq(users::session_epoch + 1))
        .execute(conn)
        .map(drop)
}

/// Applies `changes` and bumps the version, only if the row is still at `version`.
/// Returns false when it has moved on (the caller answers 412).
pub fn update(
    conn: &mut DbConnection,
    id: &str,
    version: i64,
    changes: &UserChanges,
) -> Result<bool, ApiError> {
    let updated = diesel::update(users::table.find(id).filter(users::version.eq(version)))
        .set((
            changes,
            users::version.eq(version + 1),
            users::updated_at.eq(crate::db::now()),
        ))
        .execute(conn)
        .map_err(super::unique_violation_as(email_taken))?;
    Ok(updated == 1)
}
