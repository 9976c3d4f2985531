//! The audit trail: append-only rows, each chained to the previous one by a SHA-256 hash.
//! Appends bump the single `audit_head` row, which serializes writers on both engines (a row
//! lock on PostgreSQL, the write lock on SQLite), so the chain never forks. They run as the
//! write's last step, all of its appends together (`db::before_commit`): on PostgreSQL the row's
//! lock is then held for the chain's own statements and the commit, not for the rest of the
//! request.

use std::sync::LazyLock;

use chrono::NaiveDateTime;
use chrono::format::{Item, StrftimeItems};
use diesel::prelude::*;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::sql_types::{BigInt, Integer, Nullable, Text, Timestamp};
use sha2::{Digest, Sha256};

use crate::db::schema::{audit_head, audit_log, cases};
use crate::db::{BuildOnce, DbConnection, MultiBackend, fixed_update};
use crate::domain::Role;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = audit_log)]
#[diesel(treat_none_as_default_value = false)]
pub struct AuditRow {
    pub id: String,
    pub seq: i64,
    pub entity: String,
    pub entity_id: String,
    pub case_id: Option<String>,
    pub action: String,
    pub field: Option<String>,
    pub old_value: Option<String>,
    pub new_value: Option<String>,
    pub actor_id: Option<String>,
    pub actor_role: Option<String>,
    pub request_id: Option<String>,
    pub created_at: NaiveDateTime,
    pub prev_hash: String,
    pub hash: String,
    /// Whose agency's admins read the row: a case's or a service's agency (hashed by rule 2).
    pub agency_id: Option<String>,
    /// The rule `hash` was computed by ([`AuditRow::expected_hash`]).
    pub hash_version: i32,
}

/// The rule new rows are hashed by. Rule 1 (rows written before migration 46, or by a node of
/// the previous version during a rolling deploy) left out `agency_id`, so moving a row into
/// another agency's view went unnoticed.
pub const HASH_VERSION: i32 = 2;

impl AuditRow {
    /// The hash of this row's content after `prev_hash` by its `hash_version`'s rule: what
    /// `hash` must equal. The bytes are the README's rules (and what stored chains were hashed
    /// with): a compact JSON array, rule 2's with `agency_id` as a fourteenth member.
    pub fn expected_hash(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(self.prev_hash.as_bytes());
        serde_json::to_writer(&mut hasher, &HashedContent(self))
            .expect("a string or a number always serializes");
        format!("{:x}", hasher.finalize())
    }

    /// The optional texts after `action`, in the order the hash and the insert take them.
    fn optional_texts(&self) -> [&Option<String>; 6] {
        [
            &self.field,
            &self.old_value,
            &self.new_value,
            &self.actor_id,
            &self.actor_role,
            &self.request_id,
        ]
    }
}

/// A row's hashed content as a JSON array, written straight into the hasher: rule 1's thirteen
/// members, and rule 2's `agency_id` after them.
struct HashedContent<'a>(&'a AuditRow);

impl serde::Serialize for HashedContent<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let row = self.0;
        let created_at = row.created_at.format_with_items(HASHED_TIME.iter());
        let mut content = s.serialize_seq(None)?;
        content.serialize_element(&row.seq)?;
        for text in [&row.id, &row.entity, &row.entity_id] {
            content.serialize_element(text)?;
        }
        content.serialize_element(&row.case_id)?;
        content.serialize_element(&row.action)?;
        for optional in row.optional_texts() {
            content.serialize_element(optional)?;
        }
        content.serialize_element(&created_at.to_string())?;
        if row.hash_version >= 2 {
            content.serialize_element(&row.agency_id)?;
        }
        content.end()
    }
}

/// The hashed time's format, parsed once (parsing it at every row cost more than the SHA-256).
static HASHED_TIME: LazyLock<Vec<Item<'static>>> = LazyLock::new(|| {
    StrftimeItems::new("%Y-%m-%dT%H:%M:%S%.6f")
        .parse_to_owned()
        .expect("a valid format")
});

/// Who made a change, and in which request.
#[derive(Debug, Clone)]
pub struct Actor {
    pub user_id: String,
    pub role: Role,
    pub request_id: String,
}

/// A field of a PATCH: its name, its value before, and what was sent (`None`: not sent;
/// `Some(None)`: cleared).
pub type SentField = (&'static str, Option<String>, Option<Option<String>>);

/// One changed field (or a whole event when `field` is `None`).
#[derive(Debug, Clone)]
pub struct Change {
    pub entity: &'static str,
    pub entity_id: String,
    pub case_id: Option<String>,
    pub action: String,
    pub field: Option<String>,
    pub old: Option<String>,
    pub new: Option<String>,
    /// Whose agency's admins read the row: set for what an agency owns outside its cases and
    /// by [`Change::on_case`]; other rows of a case take their case's, read at the append.
    pub agency_id: Option<String>,
}

impl Change {
    pub fn entity(
        entity: &'static str,
        entity_id: &str,
        case_id: Option<&str>,
        action: &str,
    ) -> Change {
        Change {
            entity,
            entity_id: entity_id.to_owned(),
            case_id: case_id.map(str::to_owned),
            action: action.to_owned(),
            field: None,
            old: None,
            new: None,
            agency_id: None,
        }
    }

    /// A change on a case itself.
    pub fn case(case_id: &str, action: &str) -> Change {
        Change::entity("case", case_id, Some(case_id), action)
    }

    /// A change to `entity` on a case the write holds: its agency comes from the row, and the
    /// append reads nothing more (one round trip fewer on the busiest writes).
    pub fn on_case(
        case: &super::cases::CaseRow,
        entity: &'static str,
        entity_id: &str,
        action: &str,
    ) -> Change {
        Change {
            agency_id: Some(case.agency_id.clone()),
            ..Change::entity(entity, entity_id, Some(&case.id), action)
        }
    }

    /// A change on one of an agency's services: the agency's admins read it.
    pub fn service(service_id: &str, agency_id: &str, action: &str) -> Change {
        Change {
            agency_id: Some(agency_id.to_owned()),
            ..Change::entity("service", service_id, None, action)
        }
    }

    /// A change outside any case (a support ticket or its messages, a calendar, an SLA
    /// policy): platform admins read it, and an agency's admins those of their agency. Never
    /// linked to a case: a client's ticket about a case is not the case agency's to read.
    pub fn outside_cases(
        entity: &'static str,
        entity_id: &str,
        agency_id: Option<&str>,
        action: &str,
    ) -> Change {
        Change {
            agency_id: agency_id.map(str::to_owned),
            ..Change::entity(entity, entity_id, None, action)
        }
    }

    /// One row per `(field, old, new)` whose new value was sent and differs from the old one.
    pub fn fields(
        &self,
        values: Vec<(&'static str, Option<String>, Option<String>)>,
    ) -> Vec<Change> {
        self.sent_fields(
            values
                .into_iter()
                .map(|(field, old, new)| (field, old, new.map(Some)))
                .collect(),
        )
    }

    /// [`Change::fields`] for fields that can be cleared: the new value is `None` when not
    /// sent, `Some(None)` when cleared, which is a change like any other.
    pub fn sent_fields(&self, values: Vec<SentField>) -> Vec<Change> {
        values
            .into_iter()
            .filter_map(|(field, old, sent)| sent.map(|new| (field, old, new)))
            .filter(|(_, old, new)| old != new)
            .map(|(field, old, new)| self.clone().field(field, old, new))
            .collect()
    }

    /// One row per field whose value moved from `before` (none: the entity was just created)
    /// to `after`, which name the same fields in the same order.
    pub fn moved<const N: usize>(
        &self,
        before: Option<[(&'static str, Option<String>); N]>,
        after: [(&'static str, Option<String>); N],
    ) -> Vec<Change> {
        let old = |i: usize| before.as_ref().and_then(|b| b[i].1.clone());
        let values = after
            .into_iter()
            .enumerate()
            .map(|(i, (field, new))| (field, old(i), Some(new)));
        self.sent_fields(values.collect())
    }

    /// The row without its values: the field changed, and the log keeps no more of it.
    pub fn without_values(self) -> Change {
        Change {
            old: None,
            new: None,
            ..self
        }
    }

    pub fn field(
        mut self,
        field: impl Into<String>,
        old: Option<String>,
        new: Option<String>,
    ) -> Self {
        self.field = Some(field.into());
        self.old = old;
        self.new = new;
        self
    }
}

/// Appends `changes` to the chain, in order, inside the caller's transaction, as its last step
/// (`db::before_commit`, with the write's other appends): a failure there rolls the whole write
/// back.
pub fn append(conn: &mut DbConnection, actor: &Actor, changes: Vec<Change>) -> QueryResult<()> {
    let by = By {
        actor_id: Some(actor.user_id.clone()),
        actor_role: Some(actor.role),
        request_id: actor.request_id.clone(),
    };
    append_by(conn, by, changes)
}

/// [`append`] for a change the server's own rule made: no actor; the rows' `request_id` is the
/// rule-log entry's id.
pub fn append_by_rule(
    conn: &mut DbConnection,
    rule_log_id: &str,
    changes: Vec<Change>,
) -> QueryResult<()> {
    let by = By {
        actor_id: None,
        actor_role: None,
        request_id: rule_log_id.to_owned(),
    };
    append_by(conn, by, changes)
}

/// [`append`] for a change made from the command line (`create-user`, the bootstrap admin):
/// no actor; the rows' `request_id` is [`COMMAND_LINE`].
pub fn append_from_command_line(conn: &mut DbConnection, changes: Vec<Change>) -> QueryResult<()> {
    let by = By {
        actor_id: None,
        actor_role: None,
        request_id: COMMAND_LINE.to_owned(),
    };
    append_by(conn, by, changes)
}

/// The `request_id` of the rows written from the command line.
pub const COMMAND_LINE: &str = "command-line";

fn append_by(conn: &mut DbConnection, by: By, changes: Vec<Change>) -> QueryResult<()> {
    if changes.is_empty() {
        return Ok(());
    }
    crate::db::before_commit(conn, Appended { by, changes }, chain)
}

/// Who the rows of one [`append`] name.
struct By {
    actor_id: Option<String>,
    actor_role: Option<Role>,
    request_id: String,
}

/// The changes of one [`append`], kept until the write's last step.
struct Appended {
    by: By,
    changes: Vec<Change>,
}

/// Links the write's appended changes to the chain's head, in order, and stores them: the head
/// moves once however many appends the write made.
fn chain(conn: &mut DbConnection, mut appended: Vec<Appended>) -> QueryResult<()> {
    // A case's rows take its agency (rule 2 hashes it): where the write did not name it, read
    // once per case before the head is locked.
    let mut agencies: Vec<(String, Option<String>)> = Vec::new();
    for change in appended.iter_mut().flat_map(|a| a.changes.iter_mut()) {
        let (None, Some(case_id)) = (&change.agency_id, &change.case_id) else {
            continue;
        };
        change.agency_id = match agencies.iter().find(|(case, _)| case == case_id) {
            Some((_, agency)) => agency.clone(),
            None => {
                let agency = cases::table
                    .find(case_id)
                    .select(cases::agency_id)
                    .first::<String>(conn)
                    .optional()?;
                agencies.push((case_id.clone(), agency.clone()));
                agency
            }
        };
    }
    let count: usize = appended.iter().map(|a| a.changes.len()).sum();
    let n = count as i64;
    // Moving the head and reading it in one statement: one round trip fewer with its lock held.
    let (last_seq, mut prev_hash): (i64, String) = fixed_update(
        diesel::update(audit_head::table.find(1))
            .set(audit_head::seq.eq(audit_head::seq + n))
            .returning((audit_head::seq, audit_head::hash)),
    )
    .get_result(conn)?;
    let now = crate::db::now();
    let mut seq = last_seq - n;
    let mut rows = Vec::with_capacity(count);
    for Appended { by, changes } in appended {
        for change in changes {
            seq += 1;
            let mut row = AuditRow {
                id: super::new_id(),
                seq,
                entity: change.entity.to_owned(),
                entity_id: change.entity_id,
                case_id: change.case_id,
                action: change.action,
                field: change.field,
                old_value: change.old,
                new_value: change.new,
                actor_id: by.actor_id.clone(),
                actor_role: by.actor_role.map(|role| role.as_str().to_owned()),
                request_id: Some(by.request_id.clone()),
                created_at: now,
                prev_hash: prev_hash.clone(),
                hash: String::new(),
                agency_id: change.agency_id,
                hash_version: HASH_VERSION,
            };
            row.hash = row.expected_hash();
            prev_hash = row.hash.clone();
            rows.push(row);
        }
    }
    for rows in rows.chunks(ROWS_PER_INSERT) {
        InsertRows(rows).built_once().execute(conn)?;
    }
    fixed_update(diesel::update(audit_head::table.find(1)).set(audit_head::hash.eq(prev_hash)))
        .execute(conn)?;
    Ok(())
}

/// `INSERT INTO audit_log (…) VALUES (…), (…), …`: a write's rows in one statement, one round
/// trip while the head is locked, where diesel's multi-engine connection sends one INSERT per
/// row (it has no batch insert). Its text follows the number of rows: each number is prepared
/// once and kept, up to [`KEPT_PREPARED_ROWS`].
struct InsertRows<'a>(&'a [AuditRow]);

/// 17 000 bind values, under both engines' limits per statement (SQLite 32 766, PostgreSQL
/// 65 535).
const ROWS_PER_INSERT: usize = 1000;

/// Statements for up to this many rows are kept prepared, one per count; a bulk write's are
/// not, so a connection keeps at most this many.
const KEPT_PREPARED_ROWS: usize = 32;

/// No static id: the text varies with the number of rows, so the statement cache keys it by
/// its text.
impl QueryId for InsertRows<'_> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl QueryFragment<MultiBackend> for InsertRows<'_> {
    fn walk_ast<'b>(&'b self, mut pass: AstPass<'_, 'b, MultiBackend>) -> QueryResult<()> {
        pass.push_sql(
            "INSERT INTO audit_log (id, seq, entity, entity_id, case_id, action, field, \
             old_value, new_value, actor_id, actor_role, request_id, created_at, prev_hash, hash, \
             agency_id, hash_version) VALUES ",
        );
        if self.0.len() > KEPT_PREPARED_ROWS {
            pass.unsafe_to_cache_prepared();
        }
        for (i, row) in self.0.iter().enumerate() {
            pass.push_sql(if i == 0 { "(" } else { ", (" });
            pass.push_bind_param::<Text, _>(&row.id)?;
            pass.push_sql(", ");
            pass.push_bind_param::<BigInt, _>(&row.seq)?;
            for text in [&row.entity, &row.entity_id] {
                pass.push_sql(", ");
                pass.push_bind_param::<Text, _>(text)?;
            }
            pass.push_sql(", ");
            pass.push_bind_param::<Nullable<Text>, _>(&row.case_id)?;
            pass.push_sql(", ");
            pass.push_bind_param::<Text, _>(&row.action)?;
            for optional in row.optional_texts() {
                pass.push_sql(", ");
                pass.push_bind_param::<Nullable<Text>, _>(optional)?;
            }
            pass.push_sql(", ");
            pass.push_bind_param::<Timestamp, _>(&row.created_at)?;
            for text in [&row.prev_hash, &row.hash] {
                pass.push_sql(", ");
                pass.push_bind_param::<Text, _>(text)?;
            }
            pass.push_sql(", ");
            pass.push_bind_param::<Nullable<Text>, _>(&row.agency_id)?;
            pass.push_sql(", ");
            pass.push_bind_param::<Integer, _>(&row.hash_version)?;
            pass.push_sql(")");
        }
        Ok(())
    }
}

impl<Conn> RunQueryDsl<Conn> for InsertRows<'_> {}

#[derive(Debug, Default)]
pub struct AuditFilter {
    /// An agency admin's scope: the rows of that agency (its cases', services', own tickets',
    /// webhooks', triggers', SLA calendars' and policies').
    pub agency_id: Option<String>,
    pub case_id: Option<String>,
    /// The thing a row is about (`entity_id`): a ticket's rows are all keyed by its id.
    pub entity_id: Option<String>,
    pub actor_id: Option<String>,
    pub action: Option<String>,
    pub from: Option<NaiveDateTime>,
    pub to: Option<NaiveDateTime>,
    /// The `seq` of the first and last row inside `from`..`to` ([`bound_time_range`]): a page
    /// then walks `seq` from the newest instead of sorting every row of the range.
    pub seq_range: Option<(i64, i64)>,
}

/// On SQLite, finds the rows of the filter's time range as a range of `seq`, once for a
/// request or a whole export: the least and greatest `seq` in it (`created_at` follows `seq`
/// only as far as the nodes' clocks agree), one read of the `(created_at, seq)` index. SQLite
/// otherwise sorted every row of the range for each page. PostgreSQL plans the range with its
/// own statistics, and would find these bounds by walking `seq` from either end.
pub fn bound_time_range(conn: &mut DbConnection, filter: &mut AuditFilter) -> QueryResult<()> {
    let ranged = filter.from.is_some() || filter.to.is_some();
    if !ranged || matches!(conn, DbConnection::Postgresql(_)) {
        return Ok(());
    }
    let (first, last): (Option<i64>, Option<i64>) =
        in_time_range(audit_log::table.into_boxed(), filter)
            .select((
                diesel::dsl::min(audit_log::seq),
                diesel::dsl::max(audit_log::seq),
            ))
            .first(conn)?;
    // An empty range: bounds no row meets.
    filter.seq_range = Some((first.unwrap_or(1), last.unwrap_or(0)));
    Ok(())
}

/// The rows of `query` inside the filter's `from`..`to`.
fn in_time_range<'a>(
    mut query: audit_log::BoxedQuery<'a, MultiBackend>,
    filter: &AuditFilter,
) -> audit_log::BoxedQuery<'a, MultiBackend> {
    if let Some(from) = filter.from {
        query = query.filter(audit_log::created_at.ge(from));
    }
    if let Some(to) = filter.to {
        query = query.filter(audit_log::created_at.lt(to));
    }
    query
}

/// Newest first; `before` is the `seq` of the last row of the previous page.
pub fn list(
    conn: &mut DbConnection,
    filter: &AuditFilter,
    before: Option<i64>,
    limit: i64,
) -> QueryResult<Vec<AuditRow>> {
    let mut query = audit_log::table.into_boxed();
    if let Some(agency_id) = &filter.agency_id {
        query = query.filter(audit_log::agency_id.eq(agency_id.clone()));
    }
    if let Some(case_id) = &filter.case_id {
        query = query.filter(audit_log::case_id.eq(case_id.clone()));
    }
    if let Some(entity_id) = &filter.entity_id {
        query = query.filter(audit_log::entity_id.eq(entity_id.clone()));
    }
    if let Some(actor_id) = &filter.actor_id {
        query = query.filter(audit_log::actor_id.eq(actor_id.clone()));
    }
    if let Some(action) = &filter.action {
        query = query.filter(audit_log::action.eq(action.clone()));
    }
    query = in_time_range(query, filter);
    if let Some((first, last)) = filter.seq_range {
        query = query
            .filter(audit_log::seq.ge(first))
            .filter(audit_log::seq.le(last));
    }
    if let Some(before) = before {
        query = query.filter(audit_log::seq.lt(before));
    }
    query
        .order(audit_log::seq.desc())
        .limit(limit)
        .select(AuditRow::as_select())
        .load(conn)
}

/// The outcome of walking the whole chain.
pub struct ChainReport {
    pub rows_checked: i64,
    /// The first row whose hash or link does not match, if any.
    pub first_broken_seq: Option<i64>,
}

/// Recomputes every hash in `seq` order, a batch at a time, up to the head as it stood when
/// the walk began (rows appended meanwhile are left for the next check).
pub fn verify(conn: &mut DbConnection) -> QueryResult<ChainReport> {
    const BATCH: i64 = 1000;
    let (head_seq, head_hash): (i64, String) = audit_head::table
        .find(1)
        .select((audit_head::seq, audit_head::hash))
        .first(conn)?;
    let mut prev_hash: String = "0".repeat(64);
    let mut checked = 0i64;
    while checked < head_seq {
        let rows: Vec<AuditRow> = audit_log::table
            .filter(audit_log::seq.gt(checked))
            .filter(audit_log::seq.le(head_seq))
            .order(audit_log::seq.asc())
            .limit(BATCH)
            .select(AuditRow::as_select())
            .load(conn)?;
        if rows.is_empty() {
            break;
        }
        for row in &rows {
            checked += 1;
            let linked = row.prev_hash == prev_hash && row.seq == checked;
            let known_rule = (1..=HASH_VERSION).contains(&row.hash_version);
            if !linked || !known_rule || row.hash != row.expected_hash() {
                return Ok(ChainReport {
                    rows_checked: checked,
                    first_broken_seq: Some(checked),
                });
            }
            prev_hash = row.hash.clone();
        }
    }
    // Missing rows at the end, or a head that names another hash, break the chain too.
    let first_broken_seq = (checked != head_seq || prev_hash != head_hash).then_some(checked + 1);
    Ok(ChainReport {
        rows_checked: checked,
        first_broken_seq,
    })
}
