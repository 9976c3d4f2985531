//! SLA storage: business calendars, policies, each case's and ticket's clocks, and the SLA
//! columns their views and lists read.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::{calendars, cases, sla_clocks, sla_policies, ticket_sla_clocks, tickets};
use crate::db::{BuildOnce, DbConnection};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = calendars)]
pub struct CalendarRow {
    pub id: String,
    /// `None`: the platform's.
    pub agency_id: Option<String>,
    pub name: String,
    pub time_zone: String,
    /// JSON array of `business_time::OpeningHours`.
    pub hours: String,
    /// JSON array of dates.
    pub holidays: String,
    pub created_at: NaiveDateTime,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = sla_policies)]
pub struct PolicyRow {
    pub id: String,
    /// `None`: the platform's.
    pub agency_id: Option<String>,
    pub name: String,
    pub calendar_id: Option<String>,
    pub warning_percent: i32,
    /// JSON object: minutes per priority and clock (`api::sla::Targets`).
    pub targets: String,
    pub is_default: bool,
    pub created_at: NaiveDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = sla_clocks)]
#[diesel(treat_none_as_null = true)]
pub struct ClockRow {
    /// The case's id (`ticket_sla_clocks`: the ticket's; loaded by position).
    #[diesel(column_name = case_id)]
    pub holder_id: String,
    pub clock: String,
    pub policy_id: String,
    pub calendar_id: Option<String>,
    pub target_secs: i64,
    pub warn_secs: i64,
    pub started_at: NaiveDateTime,
    /// Business seconds counted before `running_since` (all of them once paused or stopped).
    pub elapsed_secs: i64,
    pub running_since: Option<NaiveDateTime>,
    pub warn_at: Option<NaiveDateTime>,
    pub due_at: Option<NaiveDateTime>,
    pub warned_at: Option<NaiveDateTime>,
    pub breached_at: Option<NaiveDateTime>,
    pub stopped_at: Option<NaiveDateTime>,
}

/// Whose calendars and policies a caller reads: an agency's with the platform's, or all.
#[derive(Debug, Clone)]
pub enum OwnerScope {
    /// Everyone's (platform staff), or one agency's with `Some` (an agency's staff their own).
    All(Option<String>),
    /// Agency staff: their agency's and the platform's.
    AgencyAndPlatform(String),
}

/// `$query` narrowed to the calendars or policies `$scope` reads, by their `$agency_id`
/// (`NULL`: the platform's).
macro_rules! owned_by {
    ($query:expr, $agency_id:expr, $scope:expr) => {
        match $scope {
            OwnerScope::All(None) => $query,
            OwnerScope::All(Some(agency)) => $query.filter($agency_id.eq(agency.clone())),
            OwnerScope::AgencyAndPlatform(agency) => {
                $query.filter($agency_id.eq(agency.clone()).or($agency_id.is_null()))
            }
        }
    };
}

pub fn insert_calendar(conn: &mut DbConnection, row: &CalendarRow) -> QueryResult<()> {
    diesel::insert_into(calendars::table)
        .values(row)
        .execute(conn)
        .map(|_| ())
}

/// The calendar if the scope may use (and read) it.
pub fn find_calendar(
    conn: &mut DbConnection,
    scope: &OwnerScope,
    id: &str,
) -> QueryResult<Option<CalendarRow>> {
    let query = calendars::table.find(id.to_owned()).into_boxed();
    owned_by!(query, calendars::agency_id, scope)
        .select(CalendarRow::as_select())
        .first(conn)
        .optional()
}

/// Newest first after `after` (an id).
pub fn list_calendars(
    conn: &mut DbConnection,
    scope: &OwnerScope,
    after: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<CalendarRow>> {
    let mut query = owned_by!(calendars::table.into_boxed(), calendars::agency_id, scope);
    if let Some(after) = after {
        query = query.filter(calendars::id.lt(after.to_owned()));
    }
    query
        .order(calendars::id.desc())
        .limit(limit)
        .select(CalendarRow::as_select())
        .load(conn)
}

/// Adds a policy; a new default takes over from its owner's previous one, whose id it returns
/// (for the audit trail). On PostgreSQL two new defaults of one owner queue on a lock of the
/// owner's (else both would demote the old one and the second would break the one-default
/// index).
pub fn insert_policy(conn: &mut DbConnection, row: &PolicyRow) -> QueryResult<Vec<String>> {
    let mut demoted = Vec::new();
    if row.is_default {
        let key = format!(
            "sla_default:{}",
            row.agency_id.as_deref().unwrap_or("platform")
        );
        crate::db::lock_key(conn, &key)?;
        let owner = sla_policies::table.filter(sla_policies::is_default.eq(true));
        demoted = match &row.agency_id {
            Some(agency) => {
                diesel::update(owner.filter(sla_policies::agency_id.eq(agency.clone())))
                    .set(sla_policies::is_default.eq(false))
                    .returning(sla_policies::id)
                    .get_results(conn)?
            }
            None => diesel::update(owner.filter(sla_policies::agency_id.is_null()))
                .set(sla_policies::is_default.eq(false))
                .returning(sla_policies::id)
                .get_results(conn)?,
        };
    }
    diesel::insert_into(sla_policies::table)
        .values(row)
        .execute(conn)?;
    Ok(demoted)
}

/// The policy if the scope may read it.
pub fn find_policy(
    conn: &mut DbConnection,
    scope: &OwnerScope,
    id: &str,
) -> QueryResult<Option<PolicyRow>> {
    let query = sla_policies::table.find(id.to_owned()).into_boxed();
    owned_by!(query, sla_policies::agency_id, scope)
        .select(PolicyRow::as_select())
        .first(conn)
        .optional()
}

/// Newest first after `after` (an id).
pub fn list_policies(
    conn: &mut DbConnection,
    scope: &OwnerScope,
    after: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<PolicyRow>> {
    let mut query = owned_by!(
        sla_policies::table.into_boxed(),
        sla_policies::agency_id,
        scope
    );
    if let Some(after) = after {
        query = query.filter(sla_policies::id.lt(after.to_owned()));
    }
    query
        .order(sla_policies::id.desc())
        .limit(limit)
        .select(PolicyRow::as_select())
        .load(conn)
}

/// The policy a new clock of the agency's case follows: the agency's default, else the
/// platform's; with its calendar. One statement (the two defaults, the agency's first).
pub fn policy_for(
    conn: &mut DbConnection,
    agency_id: &str,
) -> QueryResult<Option<(PolicyRow, Option<CalendarRow>)>> {
    sla_policies::table
        .left_join(calendars::table)
        .filter(sla_policies::is_default.eq(true))
        .filter(
            sla_policies::agency_id
                .eq(agency_id.to_owned())
                .or(sla_policies::agency_id.is_null()),
        )
        .order(sla_policies::agency_id.is_null())
        .select((PolicyRow::as_select(), Option::<CalendarRow>::as_select()))
        .limit(1)
        .built_once()
        .get_result(conn)
        .optional()
}

/// The platform's default policy with its calendar: the one a ticket's clocks follow.
pub fn platform_default(
    conn: &mut DbConnection,
) -> QueryResult<Option<(PolicyRow, Option<CalendarRow>)>> {
    sla_policies::table
        .left_join(calendars::table)
        .filter(sla_policies::is_default.eq(true))
        .filter(sla_policies::agency_id.is_null())
        .select((PolicyRow::as_select(), Option::<CalendarRow>::as_select()))
        .first(conn)
        .optional()
}

/// The policy of this id with its calendar, if `agency_id` may use it (its own or the
/// platform's).
pub fn usable_policy(
    conn: &mut DbConnection,
    agency_id: &str,
    id: &str,
) -> QueryResult<Option<(PolicyRow, Option<CalendarRow>)>> {
    sla_policies::table
        .left_join(calendars::table)
        .filter(sla_policies::id.eq(id.to_owned()))
        .filter(
            sla_policies::agency_id
                .eq(agency_id.to_owned())
                .or(sla_policies::agency_id.is_null()),
        )
        .select((PolicyRow::as_select(), Option::<CalendarRow>::as_select()))
        .first(conn)
        .optional()
}

/// The policies of these ids.
pub fn policies_by_id(conn: &mut DbConnection, ids: &[String]) -> QueryResult<Vec<PolicyRow>> {
    sla_policies::table
        .filter(sla_policies::id.eq_any(ids))
        .select(PolicyRow::as_select())
        .load(conn)
}

/// The calendars of these ids.
pub fn calendars_by_id(conn: &mut DbConnection, ids: &[String]) -> QueryResult<Vec<CalendarRow>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    calendars::table
        .filter(calendars::id.eq_any(ids))
        .select(CalendarRow::as_select())
        .load(conn)
}

/// What a set of clocks belongs to: a case or a support ticket, by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder<'a> {
    Case(&'a str),
    Ticket(&'a str),
}

impl Holder<'_> {
    pub fn id(&self) -> &str {
        match self {
            Holder::Case(id) | Holder::Ticket(id) => id,
        }
    }
}

/// The clocks, in the order their holder meets them.
pub fn clocks_of(conn: &mut DbConnection, holder: Holder) -> QueryResult<Vec<ClockRow>> {
    let mut clocks: Vec<ClockRow> = match holder {
        Holder::Case(id) => sla_clocks::table
            .filter(sla_clocks::case_id.eq(id.to_owned()))
            .select(ClockRow::as_select())
            .built_once()
            .load(conn)?,
        // The columns are a case clock's, in its order (`schema.rs`; both migrations).
        Holder::Ticket(id) => ticket_sla_clocks::table
            .filter(ticket_sla_clocks::ticket_id.eq(id.to_owned()))
            .select(ticket_sla_clocks::all_columns)
            .built_once()
            .load(conn)?,
    };
    let order = |c: &ClockRow| {
        ["first_response", "decision", "resolution"]
            .iter()
            .position(|k| *k == c.clock)
    };
    clocks.sort_by_key(order);
    Ok(clocks)
}

/// Whether the first-response clock still runs (one search of the primary key).
pub fn awaits_first_response(conn: &mut DbConnection, holder: Holder) -> QueryResult<bool> {
    let running = match holder {
        Holder::Case(id) => sla_clocks::table
            .filter(sla_clocks::case_id.eq(id.to_owned()))
            .filter(sla_clocks::clock.eq("first_response"))
            .filter(sla_clocks::stopped_at.is_null())
            .select(sla_clocks::case_id)
            .limit(1)
            .built_once()
            .get_result::<String>(conn)
            .optional()?,
        Holder::Ticket(id) => ticket_sla_clocks::table
            .filter(ticket_sla_clocks::ticket_id.eq(id.to_owned()))
            .filter(ticket_sla_clocks::clock.eq("first_response"))
            .filter(ticket_sla_clocks::stopped_at.is_null())
            .select(ticket_sla_clocks::ticket_id)
            .limit(1)
            .built_once()
            .get_result::<String>(conn)
            .optional()?,
    };
    Ok(running.is_some())
}

pub fn insert_clock(conn: &mut DbConnection, holder: Holder, row: &ClockRow) -> QueryResult<()> {
    use ticket_sla_clocks as t;
    match holder {
        Holder::Case(_) => diesel::insert_into(sla_clocks::table)
            .values(row)
            .execute(conn)?,
        Holder::Ticket(_) => diesel::insert_into(t::table)
            .values((
                t::ticket_id.eq(&row.holder_id),
                t::clock.eq(&row.clock),
                t::policy_id.eq(&row.policy_id),
                t::calendar_id.eq(&row.calendar_id),
                t::target_secs.eq(row.target_secs),
                t::warn_secs.eq(row.warn_secs),
                t::started_at.eq(row.started_at),
                ticket_clock_state(row),
            ))
            .execute(conn)?,
    };
    Ok(())
}

/// A ticket clock's columns that move.
#[allow(clippy::type_complexity)]
fn ticket_clock_state(
    row: &ClockRow,
) -> (
    diesel::dsl::Eq<ticket_sla_clocks::elapsed_secs, i64>,
    diesel::dsl::Eq<ticket_sla_clocks::running_since, Option<NaiveDateTime>>,
    diesel::dsl::Eq<ticket_sla_clocks::warn_at, Option<NaiveDateTime>>,
    diesel::dsl::Eq<ticket_sla_clocks::due_at, Option<NaiveDateTime>>,
    diesel::dsl::Eq<ticket_sla_clocks::warned_at, Option<NaiveDateTime>>,
    diesel::dsl::Eq<ticket_sla_clocks::breached_at, Option<NaiveDateTime>>,
    diesel::dsl::Eq<ticket_sla_clocks::stopped_at, Option<NaiveDateTime>>,
) {
    use ticket_sla_clocks as t;
    (
        t::elapsed_secs.eq(row.elapsed_secs),
        t::running_since.eq(row.running_since),
        t::warn_at.eq(row.warn_at),
        t::due_at.eq(row.due_at),
        t::warned_at.eq(row.warned_at),
        t::breached_at.eq(row.breached_at),
        t::stopped_at.eq(row.stopped_at),
    )
}

/// Writes a clock's moving columns and targets (a new priority changes those).
pub fn update_clock(conn: &mut DbConnection, holder: Holder, row: &ClockRow) -> QueryResult<()> {
    use ticket_sla_clocks as t;
    let key = (row.holder_id.clone(), row.clock.clone());
    match holder {
        Holder::Case(_) => diesel::update(sla_clocks::table.find(key))
            .set(row)
            .execute(conn)?,
        Holder::Ticket(_) => diesel::update(t::table.find(key))
            .set((
                t::target_secs.eq(row.target_secs),
                t::warn_secs.eq(row.warn_secs),
                ticket_clock_state(row),
            ))
            .execute(conn)?,
    };
    Ok(())
}

/// A case's or ticket's SLA columns.
#[derive(Debug, Clone, Default, PartialEq, Eq, Queryable, Selectable, AsChangeset)]
#[diesel(table_name = cases)]
#[diesel(treat_none_as_null = true)]
pub struct SlaColumns {
    pub sla_state: Option<String>,
    pub sla_due_at: Option<NaiveDateTime>,
    pub sla_next_at: Option<NaiveDateTime>,
}

pub fn columns_of(conn: &mut DbConnection, holder: Holder) -> QueryResult<SlaColumns> {
    match holder {
        Holder::Case(id) => cases::table
            .find(id.to_owned())
            .select(SlaColumns::as_select())
            .first(conn),
        Holder::Ticket(id) => tickets::table
            .find(id.to_owned())
            .select((
                tickets::sla_state,
                tickets::sla_due_at,
                tickets::sla_next_at,
            ))
            .first(conn),
    }
}

/// Writes the SLA columns; with `bump` the holder's version moves on too (its view changed
/// outside any other write that would move it).
pub fn set_columns(
    conn: &mut DbConnection,
    holder: Holder,
    columns: &SlaColumns,
    bump: bool,
) -> QueryResult<()> {
    let now = crate::db::now();
    match holder {
        Holder::Case(id) => {
            let target = cases::table.find(id.to_owned());
            if bump {
                diesel::update(target)
                    .set((
                        columns,
                        cases::version.eq(cases::version + 1),
                        cases::updated_at.eq(now),
                    ))
                    .execute(conn)?;
            } else {
                diesel::update(target).set(columns).execute(conn)?;
            }
        }
        Holder::Ticket(id) => {
            let target = tickets::table.find(id.to_owned());
            let set = (
                tickets::sla_state.eq(&columns.sla_state),
                tickets::sla_due_at.eq(columns.sla_due_at),
                tickets::sla_next_at.eq(columns.sla_next_at),
            );
            if bump {
                diesel::update(target)
                    .set((
                        set,
                        tickets::version.eq(tickets::version + 1),
                        tickets::updated_at.eq(now),
                    ))
                    .execute(conn)?;
            } else {
                diesel::update(target).set(set).execute(conn)?;
            }
        }
    }
    Ok(())
}

/// Holds the holder's row until the transaction ends (PostgreSQL; SQLite's writes are
/// serialized already), so one write at a time moves its clocks.
pub fn update_lock(conn: &mut DbConnection, holder: Holder) -> QueryResult<()> {
    match (holder, &mut *conn) {
        (Holder::Case(id), _) => crate::repo::cases::update_lock(conn, id).map(drop),
        (Holder::Ticket(id), DbConnection::Postgresql(pg)) => tickets::table
            .find(id)
            .select(tickets::id)
            .for_no_key_update()
            .load::<String>(pg)
            .map(drop),
        (Holder::Ticket(_), DbConnection::Sqlite(_)) => Ok(()),
    }
}

/// Cases and tickets whose SLA state changes by time at `now` or before, the earliest first,
/// up to `limit` of each.
pub fn due(
    conn: &mut DbConnection,
    now: NaiveDateTime,
    limit: i64,
) -> QueryResult<(Vec<String>, Vec<String>)> {
    let cases = cases::table
        .filter(cases::sla_next_at.le(now))
        .order(cases::sla_next_at.asc())
        .limit(limit)
        .select(cases::id)
        .load(conn)?;
    let tickets = tickets::table
        .filter(tickets::sla_next_at.le(now))
        .order(tickets::sla_next_at.asc())
        .limit(limit)
        .select(tickets::id)
        .load(conn)?;
    Ok((cases, tickets))
}

/// When the next case's or ticket's SLA state changes by time.
pub fn next_due(conn: &mut DbConnection) -> QueryResult<Option<NaiveDateTime>> {
    let case: Option<NaiveDateTime> = cases::table
        .select(diesel::dsl::min(cases::sla_next_at))
        .first(conn)?;
    let ticket: Option<NaiveDateTime> = tickets::table
        .select(diesel::dsl::min(tickets::sla_next_at))
        .first(conn)?;
    Ok(case.into_iter().chain(ticket).min())
}
