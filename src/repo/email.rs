//! E-mail: each user's choice per event type, and the outbox the mail worker drains.

use std::collections::{HashMap, HashSet};

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error};

use super::cases::CaseScope;
use crate::db::DbConnection;
use crate::db::schema::{email_outbox, email_preferences};
use crate::domain::Role;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = email_outbox)]
#[diesel(treat_none_as_default_value = false)]
pub struct OutboxRow {
    pub id: String,
    pub user_id: String,
    pub case_id: Option<String>,
    pub event: String,
    pub recipient: String,
    pub recipient_name: String,
    pub locale: String,
    pub subject: String,
    pub body: String,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: NaiveDateTime,
    pub last_error: Option<String>,
    pub created_at: NaiveDateTime,
    pub sent_at: Option<NaiveDateTime>,
}

pub const PENDING: &str = "pending";
pub const SENT: &str = "sent";
pub const DEAD: &str = "dead";

pub fn enqueue(conn: &mut DbConnection, row: &OutboxRow) -> QueryResult<()> {
    diesel::insert_into(email_outbox::table)
        .values(row)
        .execute(conn)
        .map(|_| ())
}

/// Which of these users turned e-mail off for this event (no row means on).
pub fn opted_out(
    conn: &mut DbConnection,
    event: &str,
    user_ids: &[String],
) -> QueryResult<Vec<String>> {
    email_preferences::table
        .filter(email_preferences::user_id.eq_any(user_ids))
        .filter(email_preferences::event.eq(event))
        .filter(email_preferences::enabled.eq(false))
        .select(email_preferences::user_id)
        .load(conn)
}

/// The user's stored choices as (event, enabled); events without a row are on.
pub fn preferences(conn: &mut DbConnection, user_id: &str) -> QueryResult<Vec<(String, bool)>> {
    email_preferences::table
        .filter(email_preferences::user_id.eq(user_id))
        .select((email_preferences::event, email_preferences::enabled))
        .load(conn)
}

pub fn set_preference(
    conn: &mut DbConnection,
    user_id: &str,
    event: &str,
    enabled: bool,
) -> QueryResult<()> {
    let now = crate::db::now();
    let updated = diesel::update(
        email_preferences::table
            .filter(email_preferences::user_id.eq(user_id))
            .filter(email_preferences::event.eq(event)),
    )
    .set((
        email_preferences::enabled.eq(enabled),
        email_preferences::updated_at.eq(now),
    ))
    .execute(conn)?;
    if updated == 0 {
        // In a savepoint: a concurrent request of the same user may insert the row first, and
        // then its choice stands (both were sent at the same moment).
        let inserted = conn.transaction(|conn| {
            diesel::insert_into(email_preferences::table)
                .values((
                    email_preferences::user_id.eq(user_id),
                    email_preferences::event.eq(event),
                    email_preferences::enabled.eq(enabled),
                    email_preferences::updated_at.eq(now),
                ))
                .execute(conn)
        });
        match inserted {
            Ok(_) | Err(Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Claims up to `limit` due mails for one worker by pushing each one's due time `lease` ahead:
/// a conditional update per row, so two workers (or nodes) never claim the same mail, and a
/// worker that dies mid-send leaves it to be retried when the lease ends. Mails to users who
/// can no longer log in, or no longer see the case the mail is about, die here instead
/// (`last_error` says why).
pub fn claim_due(
    conn: &mut DbConnection,
    now: NaiveDateTime,
    lease: chrono::Duration,
    limit: i64,
) -> QueryResult<Vec<OutboxRow>> {
    let due: Vec<String> = email_outbox::table
        .filter(email_outbox::status.eq(PENDING))
        .filter(email_outbox::next_attempt_at.le(now))
        .order((email_outbox::next_attempt_at, email_outbox::id))
        .limit(limit)
        .select(email_outbox::id)
        .load(conn)?;
    let mut claimed = Vec::with_capacity(due.len());
    for id in due {
        let won = diesel::update(
            email_outbox::table
                .filter(email_outbox::id.eq(&id))
                .filter(email_outbox::status.eq(PENDING))
                .filter(email_outbox::next_attempt_at.le(now)),
        )
        .set(email_outbox::next_attempt_at.eq(now + lease))
        .execute(conn)?;
        if won == 1 {
            claimed.push(
                email_outbox::table
                    .find(&id)
                    .select(OutboxRow::as_select())
                    .first(conn)?,
            );
        }
    }
    deliverable(conn, claimed)
}

/// The mails whose addressees still may read them and still want them, addressed as they are
/// now; the others die here (`last_error` says why). Checked at the claim, for the whole
/// batch, and again right before each send.
fn deliverable(conn: &mut DbConnection, claimed: Vec<OutboxRow>) -> QueryResult<Vec<OutboxRow>> {
    let addressees: Vec<String> = claimed.iter().map(|m| m.user_id.clone()).collect();
    // Someone deactivated (or whose agency was) since their mail was queued gets no more mail.
    let can_log_in: HashMap<String, super::notifications::Recipient> =
        super::notifications::recipients(conn, &addressees)?
            .into_iter()
            .map(|r| (r.id.clone(), r))
            .collect();
    let turned_off: HashSet<(String, String)> = email_preferences::table
        .filter(email_preferences::user_id.eq_any(&addressees))
        .filter(email_preferences::enabled.eq(false))
        .select((email_preferences::user_id, email_preferences::event))
        .load(conn)?
        .into_iter()
        .collect();
    let mut wanted = Vec::with_capacity(claimed.len());
    for mut mail in claimed {
        let Some(now) = can_log_in.get(&mail.user_id) else {
            die_unsent(conn, &mail.id, LOCKED_OUT)?;
            continue;
        };
        // An event turned off after the mail was queued (or before an admin's retry).
        if turned_off.contains(&(mail.user_id.clone(), mail.event.clone())) {
            die_unsent(conn, &mail.id, TURNED_OFF)?;
            continue;
        }
        // An address corrected since (say after a bounce, before the retry) is the one used.
        if (&mail.recipient, &mail.recipient_name) != (&now.email, &now.name) {
            mail.recipient = now.email.clone();
            mail.recipient_name = now.name.clone();
            diesel::update(email_outbox::table.find(&mail.id))
                .set((
                    email_outbox::recipient.eq(&mail.recipient),
                    email_outbox::recipient_name.eq(&mail.recipient_name),
                ))
                .execute(conn)?;
        }
        wanted.push(mail);
    }
    let claimed = wanted;
    // Nor mail about a case they no longer see (an agent taken off it, or once it left the
    // statuses agents see): it would carry what the case holds, an internal note's text say.
    let scopes = case_scopes(conn, &claimed)?;
    let mut seen = Vec::with_capacity(claimed.len());
    for mail in claimed {
        let sees = match (&mail.case_id, scopes.get(&mail.user_id)) {
            (None, _) => true,
            (Some(case_id), Some(scope)) => super::cases::find(conn, scope, case_id)?.is_some(),
            (Some(_), None) => false,
        };
        if sees {
            seen.push(mail);
        } else {
            die_unsent(conn, &mail.id, CASE_UNSEEN)?;
        }
    }
    Ok(seen)
}

/// The cases each addressee of mails about a case may see, read in one statement.
fn case_scopes(
    conn: &mut DbConnection,
    mails: &[OutboxRow],
) -> QueryResult<HashMap<String, CaseScope>> {
    use crate::db::schema::users;
    let ids: Vec<&str> = mails
        .iter()
        .filter(|m| m.case_id.is_some())
        .map(|m| m.user_id.as_str())
        .collect();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(String, String, Option<String>)> = users::table
        .filter(users::id.eq_any(ids))
        .select((users::id, users::role, users::agency_id))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, role, agency)| {
            let scope = CaseScope::of(Role::from_code(&role)?, &id, agency.as_deref());
            Some((id, scope))
        })
        .collect())
}

fn die_unsent(conn: &mut DbConnection, id: &str, why: &str) -> QueryResult<()> {
    diesel::update(email_outbox::table.find(id))
        .set((
            email_outbox::status.eq(DEAD),
            email_outbox::last_error.eq(why),
        ))
        .execute(conn)
        .map(drop)
}

/// Why a mail died unsent: its addressee lost their access after it was queued.
const LOCKED_OUT: &str = "the recipient can no longer log in";
/// Why a mail died unsent: its addressee turned its event's mail off after it was queued.
const TURNED_OFF: &str = "the recipient turned this e-mail off";
/// Why a mail died unsent: its addressee no longer sees the case it is about.
const CASE_UNSEEN: &str = "the recipient can no longer see the case";

/// When the next pending mail falls due, if any.
pub fn next_due(conn: &mut DbConnection) -> QueryResult<Option<NaiveDateTime>> {
    email_outbox::table
        .filter(email_outbox::status.eq(PENDING))
        .order(email_outbox::next_attempt_at)
        .select(email_outbox::next_attempt_at)
        .first(conn)
        .optional()
}

/// A worker's hold on a claimed mail: its id and the end of the lease it claimed, which no
/// other claim, renewal or admin retry leaves in place.
#[derive(Debug, Clone)]
pub struct Claim {
    pub id: String,
    pub lease_end: NaiveDateTime,
}

/// The claimed mail's row while `claim` still holds it.
macro_rules! held {
    ($claim:expr) => {
        email_outbox::table
            .filter(email_outbox::id.eq(&$claim.id))
            .filter(email_outbox::status.eq(PENDING))
            .filter(email_outbox::next_attempt_at.eq($claim.lease_end))
    };
}

/// Extends the lease right before a send, if the claim still holds and the addressee may
/// still read the mail (a batch's last mails are sent long after its claim, and its access
/// checks): the new claim and the mail addressed as its addressee is now, or `None` when
/// another worker has the mail now or it died unsent.
pub fn renew(
    conn: &mut DbConnection,
    mail: &OutboxRow,
    claim: &Claim,
    lease: chrono::Duration,
) -> QueryResult<Option<(Claim, OutboxRow)>> {
    let lease_end = crate::db::stored_time(chrono::Utc::now() + lease);
    let n = diesel::update(held!(claim))
        .set(email_outbox::next_attempt_at.eq(lease_end))
        .execute(conn)?;
    if n == 0 {
        return Ok(None);
    }
    let claim = Claim {
        id: claim.id.clone(),
        lease_end,
    };
    Ok(deliverable(conn, vec![mail.clone()])?
        .pop()
        .map(|mail| (claim, mail)))
}

/// Records the send, if the claim still holds; `false` when another worker had taken the mail.
pub fn mark_sent(conn: &mut DbConnection, claim: &Claim) -> QueryResult<bool> {
    diesel::update(held!(claim))
        .set((
            email_outbox::status.eq(SENT),
            email_outbox::attempts.eq(email_outbox::attempts + 1),
            email_outbox::sent_at.eq(crate::db::now()),
            email_outbox::last_error.eq(None::<String>),
        ))
        .execute(conn)
        .map(|n| n == 1)
}

/// Records a failed attempt, if the claim still holds: due again at `retry_at`, or dead when
/// `retry_at` is `None`. `false` when another worker had taken the mail.
pub fn mark_failed(
    conn: &mut DbConnection,
    claim: &Claim,
    error: &str,
    retry_at: Option<NaiveDateTime>,
) -> QueryResult<bool> {
    let common = (
        email_outbox::attempts.eq(email_outbox::attempts + 1),
        email_outbox::last_error.eq(error),
    );
    match retry_at {
        Some(at) => diesel::update(held!(claim))
            .set((common, email_outbox::next_attempt_at.eq(at)))
            .execute(conn),
        None => diesel::update(held!(claim))
            .set((common, email_outbox::status.eq(DEAD)))
            .execute(conn),
    }
    .map(|n| n == 1)
}

/// Deletes at most `limit` of the mails finished (sent or dead) before `cutoff`, bodies and
/// addresses with them: their `next_attempt_at` is when they were last tried, so the due
/// index finds them.
pub fn delete_finished_before(
    conn: &mut DbConnection,
    cutoff: NaiveDateTime,
    limit: i64,
) -> QueryResult<usize> {
    // Two statements: diesel takes no subquery of the deleted table itself in a DELETE.
    let finished: Vec<String> = email_outbox::table
        .filter(email_outbox::status.eq_any([SENT, DEAD]))
        .filter(email_outbox::next_attempt_at.lt(cutoff))
        .select(email_outbox::id)
        .limit(limit)
        .load(conn)?;
    // The state again: a retry that committed meanwhile put the mail back in the queue.
    diesel::delete(
        email_outbox::table
            .filter(email_outbox::id.eq_any(finished))
            .filter(email_outbox::status.eq_any([SENT, DEAD]))
            .filter(email_outbox::next_attempt_at.lt(cutoff)),
    )
    .execute(conn)
}

/// Outbox rows, newest first, only those in `statuses` unless it is empty.
pub fn list(
    conn: &mut DbConnection,
    statuses: &[&str],
    after: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<OutboxRow>> {
    let mut query = email_outbox::table.into_boxed();
    query = filter_any!(query, email_outbox::status, statuses);
    if let Some(after) = after {
        query = query.filter(email_outbox::id.lt(after.to_owned()));
    }
    query
        .order(email_outbox::id.desc())
        .limit(limit)
        .select(OutboxRow::as_select())
        .load(conn)
}

pub fn find(conn: &mut DbConnection, id: &str) -> QueryResult<Option<OutboxRow>> {
    email_outbox::table
        .find(id)
        .select(OutboxRow::as_select())
        .first(conn)
        .optional()
}

/// Puts a dead mail back in the queue with a fresh count of attempts; false if it is not dead.
pub fn retry_dead(conn: &mut DbConnection, id: &str) -> QueryResult<bool> {
    diesel::update(
        email_outbox::table
            .filter(email_outbox::id.eq(id))
            .filter(email_outbox::status.eq(DEAD)),
    )
    .set((
        email_outbox::status.eq(PENDING),
        email_outbox::attempts.eq(0),
        email_outbox::next_attempt_at.eq(crate::db::now()),
    ))
    .execute(conn)
    .map(|n| n == 1)
}
