//! The services catalog: what agencies sell.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::{agencies, services};
use crate::db::{BuildOnce, DbConnection};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = services)]
#[diesel(treat_none_as_default_value = false)]
pub struct ServiceRow {
    pub id: String,
    pub agency_id: String,
    pub title: String,
    pub description: String,
    pub price_minor: i64,
    pub currency: String,
    pub active: bool,
    pub default_priority: String,
    /// JSON array of field definitions.
    pub required_data_template: String,
    pub version: i64,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// The SLA policy its cases follow, ahead of the agency's default.
    pub sla_policy_id: Option<String>,
}

#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = services)]
pub struct ServiceChanges {
    pub title: Option<String>,
    pub description: Option<String>,
    pub price_minor: Option<i64>,
    pub currency: Option<String>,
    pub active: Option<bool>,
    pub default_priority: Option<String>,
    pub required_data_template: Option<String>,
    pub sla_policy_id: Option<Option<String>>,
}

/// Which services a caller may see.
#[derive(Debug, Clone)]
pub enum ServiceScope {
    /// Platform staff: every service.
    All,
    /// Anyone: active services of active agencies, plus every service of `own_agency`.
    Catalog { own_agency: Option<String> },
}

type Backend = <DbConnection as diesel::Connection>::Backend;
type BoxedServices = diesel::dsl::IntoBoxed<
    'static,
    diesel::dsl::InnerJoin<services::table, agencies::table>,
    Backend,
>;

/// Services joined with their agency (for its name), narrowed to what the scope may see.
fn scoped(scope: &ServiceScope) -> BoxedServices {
    let query = services::table.inner_join(agencies::table).into_boxed();
    match scope {
        ServiceScope::All => query,
        ServiceScope::Catalog { own_agency } => {
            let on_sale = services::active.eq(true).and(agencies::active.eq(true));
            match own_agency {
                Some(own) => query.filter(on_sale.or(services::agency_id.eq(own.clone()))),
                None => query.filter(on_sale),
            }
        }
    }
}

/// A service with its agency's name.
pub type ServiceWithAgency = (ServiceRow, String);

#[derive(Debug, Default)]
pub struct ServiceFilter {
    pub agency_id: Option<String>,
    pub active: Option<bool>,
}

pub fn find(
    conn: &mut DbConnection,
    scope: &ServiceScope,
    id: &str,
) -> QueryResult<Option<ServiceWithAgency>> {
    scoped(scope)
        .filter(services::id.eq(id.to_owned()))
        .select((ServiceRow::as_select(), agencies::name))
        .limit(1)
        .built_once()
        .get_result(conn)
        .optional()
}

/// Newest first; `after` is the id of the last row of the previous page.
pub fn list(
    conn: &mut DbConnection,
    scope: &ServiceScope,
    filter: &ServiceFilter,
    after: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<ServiceWithAgency>> {
    let mut query = scoped(scope);
    if let Some(agency) = &filter.agency_id {
        query = query.filter(services::agency_id.eq(agency.clone()));
    }
    if let Some(active) = filter.active {
        query = query.filter(services::active.eq(active));
    }
    if let Some(after) = after {
        query = query.filter(services::id.lt(after.to_owned()));
    }
    query
        .order(services::id.desc())
        .limit(limit)
        .select((ServiceRow::as_select(), agencies::name))
        .load(conn)
}

pub fn insert(conn: &mut DbConnection, row: &ServiceRow) -> QueryResult<()> {
    diesel::insert_into(services::table)
        .values(row)
        .execute(conn)
        .map(|_| ())
}

/// Applies `changes` and bumps the version, only if the row is still at `version`.
pub fn update(
    conn: &mut DbConnection,
    id: &str,
    version: i64,
    changes: &ServiceChanges,
) -> QueryResult<bool> {
    let updated = diesel::update(
        services::table
            .find(id)
            .filter(services::version.eq(version)),
    )
    .set((
        changes,
        services::version.eq(version + 1),
        services::updated_at.eq(crate::db::now()),
    ))
    .execute(conn)?;
    Ok(updated == 1)
}
