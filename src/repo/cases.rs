//! Cases: the rows, who sees which (inside every query), numbering, the list with its filters,
//! and the conditional updates the lifecycle and PATCH rely on.

use chrono::NaiveDateTime;
use diesel::expression::{AppearsOnTable, Expression, SelectableExpression};
use diesel::prelude::*;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};

use crate::db::schema::{
    agencies, case_agents, case_counters, case_fields, case_tags, cases, client_open_cases,
    client_requests, messages, services, users,
};
use crate::db::{
    BuildOnce, DbConnection, MultiBackend, StoredOptionalTimestamp, StoredTimestamp, fixed_update,
};
use crate::domain::{CaseStatus, Priority, Role};
use crate::repo::messages::{Reader, unread_by};
use crate::workflow;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = cases)]
#[diesel(treat_none_as_default_value = false)]
pub struct CaseRow {
    pub id: String,
    pub number: String,
    pub title: String,
    pub description: String,
    pub service_id: String,
    pub agency_id: String,
    pub client_id: String,
    pub status: String,
    pub priority: String,
    pub payment_method: String,
    pub payment_state: String,
    pub assignee_id: Option<String>,
    pub disputed: bool,
    pub resolution_type: Option<String>,
    pub resolution: Option<String>,
    pub version: i64,
    #[diesel(deserialize_as = StoredTimestamp)]
    pub created_at: NaiveDateTime,
    #[diesel(deserialize_as = StoredTimestamp)]
    pub updated_at: NaiveDateTime,
    #[diesel(deserialize_as = StoredOptionalTimestamp)]
    pub closed_at: Option<NaiveDateTime>,
    /// `sla::SlaState`; `None` without SLA clocks.
    pub sla_state: Option<String>,
    /// The earliest due time of a running SLA clock short of its target.
    #[diesel(deserialize_as = StoredOptionalTimestamp)]
    pub sla_due_at: Option<NaiveDateTime>,
    /// JSON array of the agency's labels (`CaseRow::tags`).
    pub tags: String,
    /// The SLA policy its service named when it was bought (`sla::policy_of`).
    pub sla_policy_id: Option<String>,
}

impl CaseRow {
    /// The agency's labels on the case (stored as a JSON array).
    pub fn tags(&self) -> Vec<String> {
        serde_json::from_str(&self.tags).unwrap_or_default()
    }

    pub fn status(&self) -> CaseStatus {
        CaseStatus::from_code(&self.status).unwrap_or(CaseStatus::Cancelled)
    }

    pub fn priority(&self) -> Priority {
        Priority::from_code(&self.priority).unwrap_or(Priority::Normal)
    }
}

/// Columns an update may set; `None` leaves a column alone. The version always moves on.
#[derive(Debug, Default, Clone, AsChangeset)]
#[diesel(table_name = cases)]
pub struct CaseChanges {
    pub title: Option<String>,
    pub description: Option<String>,
    pub priority: Option<String>,
    pub status: Option<String>,
    pub payment_state: Option<String>,
    pub assignee_id: Option<Option<String>>,
    pub disputed: Option<bool>,
    pub resolution_type: Option<Option<String>>,
    pub resolution: Option<Option<String>>,
    pub closed_at: Option<Option<NaiveDateTime>>,
    /// Who delegated the case to its operator (`None` inside: it was taken).
    pub delegated_by: Option<Option<String>>,
    /// JSON array of strings.
    pub tags: Option<String>,
}

/// Which cases a caller may see (DESIGN.md "Roles and tenancy").
#[derive(Debug, Clone)]
pub enum CaseScope {
    /// Platform staff: every case.
    All,
    /// Agency staff: their agency's cases.
    Agency(String),
    /// An agent: cases they are assigned to, only while the workflow lets agents see them.
    Agent(String),
    /// A client: their own cases.
    Client(String),
}

impl CaseScope {
    pub fn of(role: Role, user_id: &str, agency_id: Option<&str>) -> CaseScope {
        match (role, agency_id) {
            (Role::Platform, _) => CaseScope::All,
            (Role::Agency, Some(agency)) => CaseScope::Agency(agency.to_owned()),
            (Role::Agent, _) => CaseScope::Agent(user_id.to_owned()),
            _ => CaseScope::Client(user_id.to_owned()),
        }
    }
}

type Backend = <DbConnection as diesel::Connection>::Backend;
type BoxedCases<'a> = cases::BoxedQuery<'a, Backend>;

/// Runs `$run` on `$query` (over `cases`, alone or joined) narrowed to the cases `scope` may
/// see: the one place the visibility rules are written. Staff and clients get a query of a
/// fixed type (its SQL rendered once per thread, `db::built_once`); an agent's is boxed by
/// `$boxed` first. Each arm binds `$q` to its own type, so `$run` is written once and compiled
/// per arm. `unboxed` leaves an agent's unboxed too, for a subquery (diesel renders a boxed
/// query over both engines only as a statement of its own); its statuses are then one
/// `NOT IN` list, which SQLite prepares anew at each call.
macro_rules! with_visible {
    ($query:expr, $scope:expr, unboxed, |$q:ident| $run:expr) => {
        with_visible!(@arms $query, $scope, |$q| $run, |query, agent| query
            .filter(cases::id.eq_any(
                case_agents::table
                    .filter(case_agents::user_id.eq(agent.clone()))
                    .select(case_agents::case_id),
            ))
            .filter(cases::status.ne_all(workflow::statuses_where(|s| !s.agent_visible))))
    };
    ($query:expr, $scope:expr, boxed_by: $boxed:path, |$q:ident| $run:expr) => {
        with_visible!(@arms $query, $scope, |$q| $run, |query, agent| {
            let mut query = $boxed(query).filter(cases::id.eq_any(
                case_agents::table
                    .filter(case_agents::user_id.eq(agent.clone()))
                    .select(case_agents::case_id),
            ));
            // One `<>` per status rather than `NOT IN`: diesel caches no statement with an
            // `IN` list, so SQLite would prepare it again at every call.
            for status in workflow::statuses_where(|s| !s.agent_visible) {
                query = query.filter(cases::status.ne(status));
            }
            query
        })
    };
    // The arms both forms share; `$agent_q` narrows `$query_in` to `$agent`'s cases.
    (@arms $query:expr, $scope:expr, |$q:ident| $run:expr,
     |$query_in:ident, $agent:ident| $agent_q:expr) => {{
        let $query_in = $query;
        match $scope {
            CaseScope::All => {
                let $q = $query_in;
                $run
            }
            CaseScope::Agency(agency) => {
                let $q = $query_in.filter(cases::agency_id.eq(agency.clone()));
                $run
            }
            CaseScope::Client(client) => {
                let $q = $query_in.filter(cases::client_id.eq(client.clone()));
                $run
            }
            CaseScope::Agent($agent) => {
                let $q = $agent_q;
                $run
            }
        }
    }};
}

fn scoped(scope: &CaseScope) -> BoxedCases<'static> {
    with_visible!(cases::table.into_boxed(), scope, boxed_by: std::convert::identity, |q| q)
}

/// Leaves out cases in `excluded` statuses, as SQL that never changes (see `with_visible`).
fn status_not_in(
    mut query: BoxedCases<'static>,
    excluded: Vec<&'static str>,
) -> BoxedCases<'static> {
    for status in excluded {
        query = query.filter(cases::status.ne(status));
    }
    query
}

/// On PostgreSQL, share-locks the case's row to the end of the write, for a write that changes
/// what the case holds (storyline events, files) without changing the case itself: a transition
/// (which updates the row) then waits for it, or it waits for the transition and reads the new
/// status after this call. Under READ COMMITTED it would otherwise check a status that a
/// committing `complete` or `reject` had already left. SQLite's writes are serialized already
/// (the case read inside them is current): `true` when a lock was taken, and a case read before
/// it must be read again.
pub fn share_lock(conn: &mut DbConnection, id: &str) -> QueryResult<bool> {
    match conn {
        DbConnection::Postgresql(pg) => {
            cases::table
                .find(id)
                .select(cases::id)
                .for_share()
                .load::<String>(pg)?;
            Ok(true)
        }
        DbConnection::Sqlite(_) => Ok(false),
    }
}

/// Locks the case's row for a change (PostgreSQL's `FOR NO KEY UPDATE`, held to the commit):
/// a write that changes what hangs off the case (its SLA clocks) waits for any other. Free
/// where the write has updated the row already; SQLite's writes are serialized anyway: `true`
/// when a lock was taken, and a case read before it must be read again.
pub fn update_lock(conn: &mut DbConnection, id: &str) -> QueryResult<bool> {
    match conn {
        DbConnection::Postgresql(pg) => {
            cases::table
                .find(id)
                .select(cases::id)
                .for_no_key_update()
                .load::<String>(pg)?;
            Ok(true)
        }
        DbConnection::Sqlite(_) => Ok(false),
    }
}

pub fn find(conn: &mut DbConnection, scope: &CaseScope, id: &str) -> QueryResult<Option<CaseRow>> {
    scoped(scope)
        .filter(cases::id.eq(id.to_owned()))
        .select(CaseRow::as_select())
        .limit(1)
        .built_once()
        .get_result(conn)
        .optional()
}

/// Who delegated the case to its operator (`None`: nobody, or it was taken since). Kept off
/// [`CaseRow`], which every card reads: only assignment needs it.
pub fn delegated_by(conn: &mut DbConnection, id: &str) -> QueryResult<Option<String>> {
    cases::table
        .filter(cases::id.eq(id))
        .select(cases::delegated_by)
        .first::<Option<String>>(conn)
        .optional()
        .map(Option::flatten)
}

/// The buyer's name, e-mail and identity, as the card shows them to staff.
#[derive(Debug, Queryable)]
pub struct ClientOfCase {
    pub name: String,
    pub email: String,
    pub id_document_type: Option<String>,
    pub id_document_number: Option<String>,
    pub account_number: Option<String>,
}

/// A case with the names and counts its card shows, read in one statement.
#[derive(Debug, Queryable)]
pub struct CardRow {
    pub case: CaseRow,
    pub service_title: String,
    pub agency_name: String,
    pub assignee_name: Option<String>,
    pub client: ClientOfCase,
    /// The kept count of the client's open cases at the case's agency (none: zero).
    pub open_cases_at_agency: Option<i64>,
    /// Messages the reader has not read (`messages::unread_by`).
    pub unread_messages: Option<i64>,
    pub agents: AgentList,
    /// How many requests to the client are open: the card reads them only when there are some
    /// (most cases have none).
    pub open_requests: Option<i64>,
}

/// The agents working a case, read inside the card's statement.
#[derive(Debug, Default)]
pub struct AgentList(pub Vec<Person>);

impl Queryable<diesel::sql_types::Nullable<diesel::sql_types::Text>, MultiBackend> for AgentList {
    type Row = Option<String>;

    fn build(json: Option<String>) -> diesel::deserialize::Result<AgentList> {
        let pairs: Vec<(String, String)> = match json {
            Some(json) => serde_json::from_str(&json)?,
            None => Vec::new(),
        };
        Ok(AgentList(by_name(
            pairs
                .into_iter()
                .map(|(id, name)| Person { id, name })
                .collect(),
        )))
    }
}

/// Agents in the order the card and [`agents`] share: by name, then id, compared as bytes
/// (a database's collation would put `bianchi` and `Conti` either way round).
fn by_name(mut people: Vec<Person>) -> Vec<Person> {
    people.sort_by(|a, b| (&a.name, &a.id).cmp(&(&b.name, &b.id)));
    people
}

/// The case's agents as a JSON array of `[id, name]` pairs, a subquery of the card's statement:
/// one statement fewer per card, and on PostgreSQL one round trip fewer. [`AgentList`] orders
/// them ([`by_name`]): an `ORDER BY` inside SQLite's aggregate sorted in a temporary b-tree
/// at every card (10-33% more server CPU per agency card, bench/RESULTS.md). The two engines
/// name their JSON aggregates differently, so each has its own text; SQLite gives `[]` for no
/// agents, PostgreSQL NULL. No aliases: the plan test (`tests/api/plans.rs`) finds whole scans
/// by table name.
#[derive(Debug, Clone, Copy, QueryId)]
struct AgentsAsJson;

impl Expression for AgentsAsJson {
    type SqlType = diesel::sql_types::Nullable<diesel::sql_types::Text>;
}

impl<QS> AppearsOnTable<QS> for AgentsAsJson {}

impl<QS> SelectableExpression<QS> for AgentsAsJson {}

impl diesel::expression::ValidGrouping<()> for AgentsAsJson {
    type IsAggregate = diesel::expression::is_aggregate::Never;
}

impl QueryFragment<MultiBackend> for AgentsAsJson {
    fn walk_ast<'b>(&'b self, mut pass: AstPass<'_, 'b, MultiBackend>) -> QueryResult<()> {
        pass.push_sql(match pass.backend() {
            MultiBackend::Sqlite(_) => {
                "(SELECT json_group_array(json_array(users.id, users.name)) FROM case_agents \
                 INNER JOIN users ON users.id = case_agents.user_id \
                 WHERE case_agents.case_id = cases.id)"
            }
            MultiBackend::Postgresql(_) => {
                "(SELECT json_agg(json_build_array(users.id, users.name))::text FROM case_agents \
                 INNER JOIN users ON users.id = case_agents.user_id \
                 WHERE case_agents.case_id = cases.id)"
            }
        });
        Ok(())
    }
}

/// The case as `scope` may see it, joined with its service, agency, assignee, client and the
/// client's open cases at its agency, with the reader's unread messages, its agents and how many
/// open requests it has: the card's most frequent read as one statement.
pub fn find_card(
    conn: &mut DbConnection,
    scope: &CaseScope,
    id: &str,
    reader: Reader,
) -> QueryResult<Option<CardRow>> {
    let (assignee, client) = diesel::alias!(users as assignee, users as client);
    let unread = unread_by!(reader, in_case: id).single_value();
    let open_requests = client_requests::table
        .filter(client_requests::case_id.eq(id.to_owned()))
        .filter(client_requests::status.eq("open"))
        .count()
        .single_value();
    let card = cases::table
        .inner_join(services::table)
        .inner_join(agencies::table.on(agencies::id.eq(cases::agency_id)))
        .left_join(assignee.on(cases::assignee_id.eq(assignee.field(users::id).nullable())))
        .inner_join(client.on(cases::client_id.eq(client.field(users::id))))
        .left_join(
            client_open_cases::table.on(client_open_cases::client_id
                .eq(cases::client_id)
                .and(client_open_cases::agency_id.eq(cases::agency_id))),
        )
        .filter(cases::id.eq(id.to_owned()))
        .select((
            CaseRow::as_select(),
            services::title,
            agencies::name,
            assignee.field(users::name).nullable(),
            (
                client.field(users::name),
                client.field(users::email),
                client.field(users::id_document_type),
                client.field(users::id_document_number),
                client.field(users::account_number),
            ),
            client_open_cases::open_cases.nullable(),
            unread,
            AgentsAsJson,
            open_requests,
        ))
        .limit(1);
    with_visible!(card, scope, boxed_by: QueryDsl::into_boxed, |q| q
        .built_once()
        .get_result(conn))
    .optional()
}

/// Who the list is narrowed to by `assignee`.
#[derive(Debug, Clone)]
pub enum AssigneeFilter {
    Nobody,
    User(String),
}

#[derive(Debug, Default)]
pub struct CaseFilter {
    pub statuses: Vec<&'static str>,
    pub priorities: Vec<&'static str>,
    pub sla_states: Vec<&'static str>,
    pub assignee: Option<AssigneeFilter>,
    /// Who delegated the case (the "delegated" view), or cases nobody delegated.
    pub delegated_by: Option<AssigneeFilter>,
    pub client_id: Option<String>,
    pub agency_id: Option<String>,
    pub service_id: Option<String>,
    pub created_from: Option<NaiveDateTime>,
    pub created_to: Option<NaiveDateTime>,
    /// Text to find in the number or the title, case-insensitively.
    pub q: Option<String>,
    /// Cases with any of these tags.
    pub tags: Vec<String>,
    /// Oldest first (by id, a UUIDv7: by creation), and the cursor goes on upwards.
    pub oldest_first: bool,
}

diesel::define_sql_function!(fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text);

/// `%text%` with LIKE's wildcards escaped. The query lower-cases it with the columns, in the
/// engine's own `lower()` (SQLite's folds ASCII only, PostgreSQL's every letter), so the two
/// sides are always folded alike.
fn contains_pattern(text: &str) -> String {
    let escaped = text
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

/// Keeps the case's `case_tags` rows (the list's `tag` filter) in step with its tags going
/// from `before` to `after`.
pub fn set_tags(
    conn: &mut DbConnection,
    case: &CaseRow,
    before: &[String],
    after: &[String],
) -> QueryResult<()> {
    for tag in before.iter().filter(|t| !after.contains(t)) {
        diesel::delete(case_tags::table.find((tag, &case.id))).execute(conn)?;
    }
    for tag in after.iter().filter(|t| !before.contains(t)) {
        diesel::insert_into(case_tags::table)
            .values((
                case_tags::tag.eq(tag),
                case_tags::case_id.eq(&case.id),
                case_tags::agency_id.eq(&case.agency_id),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// Newest first (ids are UUIDv7), or oldest first (`oldest_first`); `after` is the id of the
/// last row of the previous page, in that order.
pub fn list(
    conn: &mut DbConnection,
    scope: &CaseScope,
    filter: &CaseFilter,
    after: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<CaseRow>> {
    let mut query = scoped(scope);
    query = filter_any!(query, cases::status, filter.statuses.as_slice());
    query = filter_any!(query, cases::priority, filter.priorities.as_slice());
    query = filter_any!(query, cases::sla_state, filter.sla_states.as_slice());
    match &filter.assignee {
        Some(AssigneeFilter::Nobody) => query = query.filter(cases::assignee_id.is_null()),
        Some(AssigneeFilter::User(id)) => {
            query = query.filter(cases::assignee_id.eq(id.clone()));
        }
        None => {}
    }
    match &filter.delegated_by {
        Some(AssigneeFilter::Nobody) => query = query.filter(cases::delegated_by.is_null()),
        Some(AssigneeFilter::User(id)) => {
            query = query.filter(cases::delegated_by.eq(id.clone()));
        }
        None => {}
    }
    if let Some(client) = &filter.client_id {
        query = query.filter(cases::client_id.eq(client.clone()));
    }
    if let Some(agency) = &filter.agency_id {
        query = query.filter(cases::agency_id.eq(agency.clone()));
    }
    if let Some(service) = &filter.service_id {
        query = query.filter(cases::service_id.eq(service.clone()));
    }
    if let Some(from) = filter.created_from {
        query = query.filter(cases::created_at.ge(from));
    }
    if let Some(to) = filter.created_to {
        query = query.filter(cases::created_at.lt(to));
    }
    if !filter.tags.is_empty() {
        // One agency's (its staff's, or the one `agency_id` names): a search of
        // `(agency_id, tag, case_id)` per tag, that agency's cases alone; else of the primary
        // key `(tag, case_id)`.
        let tagged = case_tags::table.filter(case_tags::tag.eq_any(filter.tags.clone()));
        let agency = match scope {
            CaseScope::Agency(agency) => Some(agency),
            _ => filter.agency_id.as_ref(),
        };
        query = match agency {
            Some(agency) => query.filter(
                cases::id.eq_any(
                    tagged
                        .filter(case_tags::agency_id.eq(agency.clone()))
                        .select(case_tags::case_id),
                ),
            ),
            None => query.filter(cases::id.eq_any(tagged.select(case_tags::case_id))),
        };
    }
    if let Some(q) = &filter.q {
        let pattern = contains_pattern(q);
        query = query.filter(
            lower(cases::number)
                .like(lower(pattern.clone()))
                .escape('\\')
                .or(lower(cases::title).like(lower(pattern)).escape('\\')),
        );
    }
    query = match (filter.oldest_first, after) {
        (false, Some(after)) => query.filter(cases::id.lt(after.to_owned())),
        (true, Some(after)) => query.filter(cases::id.gt(after.to_owned())),
        (_, None) => query,
    };
    query = match filter.oldest_first {
        false => query.order(cases::id.desc()),
        true => query.order(cases::id.asc()),
    };
    query
        .limit(limit)
        .select(CaseRow::as_select())
        .built_once()
        .load(conn)
}

/// The messages of the client's cases that the caller may see: the cases as a subquery (a
/// search of the client's cases by `client_id`), each case's messages by its key.
pub fn messages_of_client(
    scope: &CaseScope,
    client_id: &str,
) -> messages::BoxedQuery<'static, MultiBackend> {
    let of_client = cases::table.filter(cases::client_id.eq(client_id.to_owned()));
    with_visible!(of_client, scope, unboxed, |q| messages::table
        .filter(messages::case_id.eq_any(q.select(cases::id)))
        .into_boxed())
}

/// Id and number of each of these cases.
pub fn numbers(conn: &mut DbConnection, ids: &[String]) -> QueryResult<Vec<(String, String)>> {
    cases::table
        .filter(cases::id.eq_any(ids))
        .select((cases::id, cases::number))
        .load(conn)
}

/// The client's open cases among those the caller can see. Agency staff get the count kept
/// for their agency, read with the card; the client and platform staff add up the counts kept
/// per agency; an agent's share depends on their assignments, so it is counted from the cases
/// themselves.
pub fn open_cases_of_client(
    conn: &mut DbConnection,
    scope: &CaseScope,
    card: &CardRow,
) -> QueryResult<i64> {
    let client_id = &card.case.client_id;
    let counts = client_open_cases::table
        .filter(client_open_cases::client_id.eq(client_id.to_owned()))
        .select(client_open_cases::open_cases);
    let counts: Vec<i64> = match scope {
        CaseScope::Agency(agency) if *agency == card.case.agency_id => {
            return Ok(card.open_cases_at_agency.unwrap_or(0));
        }
        CaseScope::All => counts.built_once().load(conn)?,
        CaseScope::Agency(agency) => counts
            .filter(client_open_cases::agency_id.eq(agency.clone()))
            .built_once()
            .load(conn)?,
        CaseScope::Client(own) => counts
            .filter(client_open_cases::client_id.eq(own.clone()))
            .built_once()
            .load(conn)?,
        CaseScope::Agent(_) => {
            let of_client = scoped(scope).filter(cases::client_id.eq(client_id.to_owned()));
            return status_not_in(of_client, workflow::statuses_where(|s| s.terminal))
                .count()
                .built_once()
                .get_result(conn);
        }
    };
    Ok(counts.iter().sum())
}

/// Moves the kept count of the client's open cases at the agency by `delta`; the rows touched.
fn shift_open_count(
    conn: &mut DbConnection,
    client_id: &str,
    agency_id: &str,
    delta: i64,
) -> QueryResult<usize> {
    fixed_update(
        diesel::update(
            client_open_cases::table
                .filter(client_open_cases::client_id.eq(client_id))
                .filter(client_open_cases::agency_id.eq(agency_id)),
        )
        .set(client_open_cases::open_cases.eq(client_open_cases::open_cases + delta)),
    )
    .execute(conn)
}

/// Counts a new case as open for its client at its agency.
fn count_opened(conn: &mut DbConnection, client_id: &str, agency_id: &str) -> QueryResult<()> {
    super::bump_or_create(
        conn,
        |conn| Ok((shift_open_count(conn, client_id, agency_id, 1)? > 0).then_some(())),
        |c| {
            diesel::insert_into(client_open_cases::table)
                .values((
                    client_open_cases::client_id.eq(client_id),
                    client_open_cases::agency_id.eq(agency_id),
                    client_open_cases::open_cases.eq(1),
                ))
                .execute(c)
                .map(drop)
        },
    )
}

/// Counts an open case that reached a terminal status as no longer open; in the transition's
/// transaction, so the count never disagrees with the cases.
pub fn count_closed(conn: &mut DbConnection, case: &CaseRow) -> QueryResult<()> {
    let touched = shift_open_count(conn, &case.client_id, &case.agency_id, -1)?;
    super::one_row(touched, "client_open_cases")
}

/// The next case number, `DOS-<year>-<6 or more digits>`.
pub fn next_number(conn: &mut DbConnection, now: NaiveDateTime) -> QueryResult<String> {
    next_number!(conn, case_counters, "DOS", now)
}

/// Inserts a new case and counts it open for its client.
pub fn insert(conn: &mut DbConnection, row: &CaseRow) -> QueryResult<()> {
    diesel::insert_into(cases::table)
        .values(row)
        .built_once()
        .execute(conn)?;
    count_opened(conn, &row.client_id, &row.agency_id)
}

/// Applies `changes` and bumps the version in one conditional statement, only while the case
/// is still at `version` and in one of `statuses`: the check and the write cannot be separated
/// by a racing request (PostgreSQL re-checks the condition on the locked row). False when the
/// case has moved on.
pub fn update(
    conn: &mut DbConnection,
    id: &str,
    version: i64,
    statuses: &[CaseStatus],
    changes: &CaseChanges,
) -> QueryResult<bool> {
    let statuses: Vec<&str> = statuses.iter().map(|s| s.as_str()).collect();
    let updated = diesel::update(
        cases::table
            .filter(cases::id.eq(id))
            .filter(cases::version.eq(version))
            .filter(cases::status.eq_any(statuses)),
    )
    .set((
        changes,
        cases::version.eq(version + 1),
        cases::updated_at.eq(crate::db::now()),
    ))
    .execute(conn)?;
    Ok(updated == 1)
}

/// Up to `limit` of the agency's paid cases nobody is responsible for (`in_approval`,
/// unassigned), oldest first: the automatic assignment's queue. Walks
/// `cases_agency_status_idx (agency_id, status, id)`.
pub fn queued(conn: &mut DbConnection, agency_id: &str, limit: i64) -> QueryResult<Vec<CaseRow>> {
    cases::table
        .filter(cases::agency_id.eq(agency_id))
        .filter(cases::status.eq(CaseStatus::InApproval.as_str()))
        .filter(cases::assignee_id.is_null())
        .order(cases::id)
        .limit(limit)
        .select(CaseRow::as_select())
        .load(conn)
}

/// A field agent on a case.
#[derive(Debug, Clone, Queryable)]
pub struct Person {
    pub id: String,
    pub name: String,
}

pub fn agents(conn: &mut DbConnection, case_id: &str) -> QueryResult<Vec<Person>> {
    case_agents::table
        .inner_join(users::table)
        .filter(case_agents::case_id.eq(case_id))
        .select((users::id, users::name))
        .built_once()
        .load(conn)
        .map(by_name)
}

/// Replaces the case's agents.
pub fn set_agents(conn: &mut DbConnection, case_id: &str, agent_ids: &[String]) -> QueryResult<()> {
    diesel::delete(case_agents::table.filter(case_agents::case_id.eq(case_id))).execute(conn)?;
    let now = crate::db::now();
    // One statement per row: diesel's multi-engine connection has no batch insert.
    for id in agent_ids {
        diesel::insert_into(case_agents::table)
            .values((
                case_agents::case_id.eq(case_id),
                case_agents::user_id.eq(id.as_str()),
                case_agents::assigned_at.eq(now),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// The active users among `ids` with this role in this agency (to check assignments).
pub fn staff_among(
    conn: &mut DbConnection,
    agency_id: &str,
    role: Role,
    ids: &[String],
) -> QueryResult<Vec<Person>> {
    users::table
        .filter(users::id.eq_any(ids))
        .filter(users::agency_id.eq(agency_id))
        .filter(users::role.eq(role.as_str()))
        .filter(users::active.eq(true))
        .select((users::id, users::name))
        .load(conn)
}

/// One field of a case's required-data form.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = case_fields)]
#[diesel(treat_none_as_default_value = false)]
pub struct FieldRow {
    pub case_id: String,
    pub key: String,
    pub position: i32,
    pub label: String,
    pub field_type: String,
    pub required: bool,
    /// JSON array of strings, for `choice` fields.
    pub options: Option<String>,
    pub help: Option<String>,
    /// JSON value; `None` while empty.
    pub value: Option<String>,
}

pub fn insert_fields(conn: &mut DbConnection, fields: &[FieldRow]) -> QueryResult<()> {
    for field in fields {
        diesel::insert_into(case_fields::table)
            .values(field)
            .built_once()
            .execute(conn)?;
    }
    Ok(())
}

/// Keys of required fields still without a value, in form order.
pub fn missing_required_fields(conn: &mut DbConnection, case_id: &str) -> QueryResult<Vec<String>> {
    case_fields::table
        .filter(case_fields::case_id.eq(case_id))
        .filter(case_fields::required.eq(true))
        .filter(case_fields::value.is_null())
        .order(case_fields::position.asc())
        .select(case_fields::key)
        .load(conn)
}

/// The case's required-data form, in order.
pub fn fields(conn: &mut DbConnection, case_id: &str) -> QueryResult<Vec<FieldRow>> {
    case_fields::table
        .filter(case_fields::case_id.eq(case_id))
        .order(case_fields::position.asc())
        .select(FieldRow::as_select())
        .load(conn)
}

/// Replaces the whole form.
pub fn replace_fields(
    conn: &mut DbConnection,
    case_id: &str,
    fields: &[FieldRow],
) -> QueryResult<()> {
    diesel::delete(case_fields::table.filter(case_fields::case_id.eq(case_id))).execute(conn)?;
    insert_fields(conn, fields)
}

pub fn set_field_value(
    conn: &mut DbConnection,
    case_id: &str,
    key: &str,
    value: Option<String>,
) -> QueryResult<()> {
    diesel::update(case_fields::table.find((case_id, key)))
        .set(case_fields::value.eq(value))
        .execute(conn)
        .map(|_| ())
}
