//! Outbound webhooks and their deliveries (the outbox the webhook worker drains).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::{webhook_deliveries, webhooks};
use crate::db::{BuildOnce, DbConnection};
use crate::errors::ApiError;
use crate::sealing::{self, SealError, Sealer};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = webhooks)]
pub struct WebhookRow {
    pub id: String,
    /// `None`: the platform's, which hears of every agency's cases.
    pub agency_id: Option<String>,
    pub url: String,
    /// As stored: sealed (`sealing::webhook_context`) when a key is configured.
    pub secret: String,
    /// JSON array of event codes.
    pub events: String,
    pub active: bool,
    pub created_by: String,
    pub created_at: NaiveDateTime,
    /// Its `ETag`: one more at each change.
    pub version: i64,
    /// Deleted: hidden from every request, and kept only until its deliveries are swept.
    pub deleted_at: Option<NaiveDateTime>,
    /// The secret a rotation replaced (as stored, like `secret`), still signing beside
    /// `secret` until it expires.
    pub old_secret: Option<String>,
    pub old_secret_expires_at: Option<NaiveDateTime>,
}

impl WebhookRow {
    /// The secrets that sign a delivery posted at `now`, opened: the current one, then the old
    /// one while it is kept.
    pub fn signing_secrets(
        &self,
        sealer: &Sealer,
        now: NaiveDateTime,
    ) -> Result<Vec<String>, SealError> {
        let context = sealing::webhook_context(&self.id);
        let old = self
            .old_secret
            .as_deref()
            .filter(|_| self.old_secret_expires_at.is_some_and(|until| until > now));
        std::iter::once(self.secret.as_str())
            .chain(old)
            .map(|stored| sealer.open(&context, stored))
            .collect()
    }
}

/// What a change sets of a webhook; `None` keeps a column as it is.
#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = webhooks)]
pub struct WebhookChanges {
    pub url: Option<String>,
    pub secret: Option<String>,
    /// With a new `secret`: the replaced one and its end, or `Some(None)` for none.
    pub old_secret: Option<Option<String>>,
    pub old_secret_expires_at: Option<Option<NaiveDateTime>>,
    pub events: Option<String>,
    pub active: Option<bool>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = webhook_deliveries)]
#[diesel(treat_none_as_default_value = false)]
pub struct DeliveryRow {
    pub id: String,
    pub webhook_id: String,
    pub event: String,
    pub case_id: Option<String>,
    pub payload: String,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: NaiveDateTime,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: NaiveDateTime,
    pub delivered_at: Option<NaiveDateTime>,
}

type Backend = <DbConnection as diesel::Connection>::Backend;

pub const PENDING: &str = "pending";
pub const DELIVERED: &str = "delivered";
pub const DEAD: &str = "dead";

/// Whose webhooks a caller manages: an agency's, or the platform's.
#[derive(Debug, Clone)]
pub enum Owner {
    Agency(String),
    Platform,
}

pub fn insert(conn: &mut DbConnection, row: &WebhookRow) -> QueryResult<()> {
    diesel::insert_into(webhooks::table)
        .values(row)
        .execute(conn)
        .map(|_| ())
}

/// The owner's webhooks that are not deleted.
fn owned(owner: &Owner) -> webhooks::BoxedQuery<'static, Backend> {
    let query = webhooks::table
        .filter(webhooks::deleted_at.is_null())
        .into_boxed();
    match owner {
        Owner::Agency(agency) => query.filter(webhooks::agency_id.eq(agency.clone())),
        Owner::Platform => query.filter(webhooks::agency_id.is_null()),
    }
}

/// The URLs of the owner's webhooks.
pub fn urls(conn: &mut DbConnection, owner: &Owner) -> QueryResult<Vec<String>> {
    owned(owner).select(webhooks::url).load(conn)
}

/// The owner's webhooks, newest first after `after` (an id).
pub fn list(
    conn: &mut DbConnection,
    owner: &Owner,
    after: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<WebhookRow>> {
    let mut query = owned(owner);
    if let Some(after) = after {
        query = query.filter(webhooks::id.lt(after.to_owned()));
    }
    query
        .order(webhooks::id.desc())
        .limit(limit)
        .select(WebhookRow::as_select())
        .load(conn)
}

/// The owner's webhook of this id.
pub fn find(conn: &mut DbConnection, owner: &Owner, id: &str) -> QueryResult<Option<WebhookRow>> {
    owned(owner)
        .filter(webhooks::id.eq(id.to_owned()))
        .select(WebhookRow::as_select())
        .first(conn)
        .optional()
}

/// Applies `changes` to the webhook if it is still at `version`, and moves its version on;
/// `false` when another request changed it first.
pub fn update(
    conn: &mut DbConnection,
    id: &str,
    version: i64,
    changes: &WebhookChanges,
) -> QueryResult<bool> {
    let updated = diesel::update(
        webhooks::table
            .filter(webhooks::id.eq(id))
            .filter(webhooks::version.eq(version)),
    )
    .set((changes, webhooks::version.eq(version + 1)))
    .execute(conn)?;
    Ok(updated == 1)
}

/// Deletes the webhook if it is still at `version`: it is hidden and paused at once, and kept
/// until the sweep removes it ([`purge_deleted_before`]). `false` when another request changed
/// it first.
pub fn delete(conn: &mut DbConnection, id: &str, version: i64) -> QueryResult<bool> {
    let deleted = diesel::update(
        webhooks::table
            .filter(webhooks::id.eq(id))
            .filter(webhooks::version.eq(version)),
    )
    .set((
        webhooks::active.eq(false),
        webhooks::deleted_at.eq(crate::db::now()),
        webhooks::version.eq(version + 1),
    ))
    .execute(conn)?;
    Ok(deleted == 1)
}

/// A webhook's secrets as stored, for [`reseal_secrets`].
#[derive(Queryable, Selectable)]
#[diesel(table_name = webhooks)]
struct StoredSecrets {
    id: String,
    version: i64,
    secret: String,
    old_secret: Option<String>,
    old_secret_expires_at: Option<NaiveDateTime>,
}

/// Opens every webhook's secrets (deleted ones' too) and stores them as the current key seals
/// them: sealed with it, when they were stored in the clear or with an old key; in the clear,
/// when no key is configured (development) and an old key opens them. An old secret that
/// expired is forgotten instead, as the hourly sweep would. Not a change of the webhook: its
/// version stays. How many webhooks changed. A whole read of a small table (at most 20
/// webhooks per owner), at each start. A webhook another node changes meanwhile keeps that
/// change (its writer sealed it), and is sealed again at the next start if need be.
pub fn reseal_secrets(
    conn: &mut DbConnection,
    sealer: &Sealer,
    now: NaiveDateTime,
) -> Result<usize, ApiError> {
    let stored = webhooks::table
        .select(StoredSecrets::as_select())
        .load(conn)?;
    let mut changed = 0;
    for StoredSecrets {
        id,
        version,
        secret,
        old_secret,
        old_secret_expires_at: old_until,
    } in stored
    {
        let context = sealing::webhook_context(&id);
        // The start stops here: its message says which row to look at.
        let reseal = |column: &str, stored: &str| {
            sealer
                .reseal(&context, stored)
                .map_err(|e| ApiError::internal(format!("webhook {id}, {column}: {e}")))
        };
        let new_secret = reseal("secret", &secret)?;
        // `Some(None)`: forget it.
        let new_old = match &old_secret {
            Some(_) if old_until.is_none_or(|until| until <= now) => Some(None),
            Some(old) => reseal("old_secret", old)?.map(Some),
            None => None,
        };
        if new_secret.is_none() && new_old.is_none() {
            continue;
        }
        changed += diesel::update(
            webhooks::table
                .find(&id)
                .filter(webhooks::version.eq(version))
                .filter(webhooks::secret.eq(&secret)),
        )
        .set((
            webhooks::secret.eq(new_secret.as_ref().unwrap_or(&secret)),
            webhooks::old_secret.eq(new_old.unwrap_or(old_secret)),
        ))
        .execute(conn)?;
    }
    Ok(changed)
}

/// Forgets the old secrets that expired before `now` (they sign nothing already): how many.
/// Only the secret goes; `old_secret_expires_at` stays, a time past, so the webhook's
/// representation and version do not change behind its owner's back.
pub fn forget_old_secrets(conn: &mut DbConnection, now: NaiveDateTime) -> QueryResult<usize> {
    diesel::update(
        webhooks::table
            .filter(webhooks::old_secret_expires_at.lt(now))
            .filter(webhooks::old_secret.is_not_null()),
    )
    .set(webhooks::old_secret.eq(None::<String>))
    .execute(conn)
}

/// Removes up to `limit` deliveries of the webhooks deleted before `cutoff`, and the webhooks
/// themselves once none is left: how many rows went.
pub fn purge_deleted_before(
    conn: &mut DbConnection,
    cutoff: NaiveDateTime,
    limit: i64,
) -> QueryResult<usize> {
    let deleted = || webhooks::table.filter(webhooks::deleted_at.lt(cutoff));
    let deliveries: Vec<String> = webhook_deliveries::table
        .filter(webhook_deliveries::webhook_id.eq_any(deleted().select(webhooks::id)))
        .select(webhook_deliveries::id)
        .limit(limit)
        .load(conn)?;
    let found = deliveries.len();
    let removed =
        diesel::delete(webhook_deliveries::table.filter(webhook_deliveries::id.eq_any(deliveries)))
            .execute(conn)?;
    if found < limit as usize {
        return Ok(removed + diesel::delete(deleted()).execute(conn)?);
    }
    Ok(removed)
}

/// Ends the webhooks' pending deliveries as dead, with `why` as their last error.
pub fn end_pending(conn: &mut DbConnection, webhook_ids: &[String], why: &str) -> QueryResult<()> {
    diesel::update(
        webhook_deliveries::table
            .filter(webhook_deliveries::webhook_id.eq_any(webhook_ids))
            .filter(webhook_deliveries::status.eq(PENDING)),
    )
    .set((
        webhook_deliveries::status.eq(DEAD),
        webhook_deliveries::next_attempt_at.eq(crate::db::now()),
        webhook_deliveries::last_error.eq(why),
    ))
    .execute(conn)
    .map(drop)
}

/// The webhook of this id, whoever owns it (platform admins read every one), unless deleted.
pub fn find_any(conn: &mut DbConnection, id: &str) -> QueryResult<Option<WebhookRow>> {
    webhooks::table
        .find(id.to_owned())
        .filter(webhooks::deleted_at.is_null())
        .select(WebhookRow::as_select())
        .first(conn)
        .optional()
}

/// The active webhooks that hear of the agency's cases: its own while the agency is active,
/// and the platform's. Their events are checked by the caller (one search of the agency's
/// index, and one of the platform's, on every event; the agency's row only when it has one).
pub fn listening(conn: &mut DbConnection, agency_id: &str) -> QueryResult<Vec<WebhookRow>> {
    let mut hooks: Vec<WebhookRow> = webhooks::table
        .filter(
            webhooks::agency_id
                .eq(agency_id.to_owned())
                .or(webhooks::agency_id.is_null()),
        )
        .filter(webhooks::active.eq(true))
        .filter(webhooks::deleted_at.is_null())
        .select(WebhookRow::as_select())
        .built_once()
        .load(conn)?;
    // A deactivated agency hears nothing more of its cases: its staff are locked out, and its
    // webhooks must not carry on telling it what clients write.
    let agencys = |hook: &WebhookRow| hook.agency_id.is_some();
    if hooks.iter().any(agencys) && !super::agencies::is_active(conn, agency_id)? {
        hooks.retain(|hook| !agencys(hook));
    }
    Ok(hooks)
}

/// Ends the deliveries still pending to the agency's webhooks (its deactivation).
pub fn end_pending_of_agency(
    conn: &mut DbConnection,
    agency_id: &str,
    why: &str,
) -> QueryResult<()> {
    let hooks: Vec<String> = webhooks::table
        .filter(webhooks::agency_id.eq(agency_id.to_owned()))
        .select(webhooks::id)
        .load(conn)?;
    end_pending(conn, &hooks, why)
}

/// The active webhooks that hear of a support ticket's events: the platform's, and the
/// requesting agency's for an agency's ticket (`agency_id`), as for its cases.
pub fn listening_to_tickets(
    conn: &mut DbConnection,
    agency_id: Option<&str>,
) -> QueryResult<Vec<WebhookRow>> {
    match agency_id {
        Some(agency) => listening(conn, agency),
        None => webhooks::table
            .filter(webhooks::agency_id.is_null())
            .filter(webhooks::active.eq(true))
            .filter(webhooks::deleted_at.is_null())
            .select(WebhookRow::as_select())
            .built_once()
            .load(conn),
    }
}

/// One statement per delivery: the multi-engine connection has no multi-row insert.
pub fn enqueue(conn: &mut DbConnection, rows: &[DeliveryRow]) -> QueryResult<()> {
    for row in rows {
        diesel::insert_into(webhook_deliveries::table)
            .values(row)
            .execute(conn)?;
    }
    Ok(())
}

/// The webhook's deliveries (in `statuses`, unless it is empty), newest first after `after`
/// (an id).
pub fn deliveries(
    conn: &mut DbConnection,
    webhook_id: &str,
    statuses: &[&str],
    after: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<DeliveryRow>> {
    let mut query = webhook_deliveries::table
        .filter(webhook_deliveries::webhook_id.eq(webhook_id.to_owned()))
        .into_boxed();
    query = filter_any!(query, webhook_deliveries::status, statuses);
    if let Some(after) = after {
        query = query.filter(webhook_deliveries::id.lt(after.to_owned()));
    }
    query
        .order(webhook_deliveries::id.desc())
        .limit(limit)
        .select(DeliveryRow::as_select())
        .load(conn)
}

/// The webhook's delivery of this id.
pub fn delivery(
    conn: &mut DbConnection,
    webhook_id: &str,
    id: &str,
) -> QueryResult<Option<DeliveryRow>> {
    webhook_deliveries::table
        .filter(webhook_deliveries::id.eq(id))
        .filter(webhook_deliveries::webhook_id.eq(webhook_id))
        .select(DeliveryRow::as_select())
        .first(conn)
        .optional()
}

/// Puts a dead delivery back in the queue, due now, with a fresh count of attempts; `false`
/// when it is not dead.
pub fn retry_dead(conn: &mut DbConnection, id: &str) -> QueryResult<bool> {
    let updated = diesel::update(
        webhook_deliveries::table
            .filter(webhook_deliveries::id.eq(id))
            .filter(webhook_deliveries::status.eq(DEAD)),
    )
    .set((
        webhook_deliveries::status.eq(PENDING),
        webhook_deliveries::attempts.eq(0),
        webhook_deliveries::next_attempt_at.eq(crate::db::now()),
    ))
    .execute(conn)?;
    Ok(updated == 1)
}

/// A delivery claimed by a worker until `lease_end`; its outcome is recorded only while the
/// claim still holds.
#[derive(Debug, Clone)]
pub struct Claim {
    pub id: String,
    pub lease_end: NaiveDateTime,
    /// Its attempts before this one.
    pub attempts: i32,
}

/// Claims up to `limit` due deliveries, with their webhooks, by pushing each one's due time
/// `lease` ahead: a conditional update per row, so two workers never claim the same one, and a
/// worker that dies mid-post leaves it to be retried when the lease ends.
pub fn claim_due(
    conn: &mut DbConnection,
    now: NaiveDateTime,
    lease: chrono::Duration,
    limit: i64,
) -> QueryResult<Vec<(DeliveryRow, WebhookRow)>> {
    let due: Vec<String> = webhook_deliveries::table
        .filter(webhook_deliveries::status.eq(PENDING))
        .filter(webhook_deliveries::next_attempt_at.le(now))
        .order((webhook_deliveries::next_attempt_at, webhook_deliveries::id))
        .limit(limit)
        .select(webhook_deliveries::id)
        .load(conn)?;
    let mut claimed = Vec::with_capacity(due.len());
    for id in due {
        let won = diesel::update(
            webhook_deliveries::table
                .filter(webhook_deliveries::id.eq(&id))
                .filter(webhook_deliveries::status.eq(PENDING))
                .filter(webhook_deliveries::next_attempt_at.le(now)),
        )
        .set(webhook_deliveries::next_attempt_at.eq(now + lease))
        .execute(conn)?;
        if won == 1 {
            claimed.push(
                webhook_deliveries::table
                    .inner_join(webhooks::table)
                    .filter(webhook_deliveries::id.eq(&id))
                    .select((DeliveryRow::as_select(), WebhookRow::as_select()))
                    .first(conn)?,
            );
        }
    }
    Ok(claimed)
}

/// Records a delivery's outcome while `claim` holds: delivered, due again at `retry_at`, or
/// dead without one. `false` when another worker has it now.
pub fn record(
    conn: &mut DbConnection,
    claim: &Claim,
    status: Option<i32>,
    error: Option<&str>,
    retry_at: Option<NaiveDateTime>,
) -> QueryResult<bool> {
    let now = crate::db::now();
    let target = webhook_deliveries::table
        .filter(webhook_deliveries::id.eq(&claim.id))
        .filter(webhook_deliveries::status.eq(PENDING))
        .filter(webhook_deliveries::next_attempt_at.eq(claim.lease_end));
    let delivered = error.is_none();
    let (state, next) = match (delivered, retry_at) {
        (true, _) => (DELIVERED, now),
        (false, Some(at)) => (PENDING, at),
        (false, None) => (DEAD, now),
    };
    let updated = diesel::update(target)
        .set((
            webhook_deliveries::status.eq(state),
            webhook_deliveries::attempts.eq(webhook_deliveries::attempts + 1),
            webhook_deliveries::next_attempt_at.eq(next),
            webhook_deliveries::last_status.eq(status),
            webhook_deliveries::last_error.eq(error),
            webhook_deliveries::delivered_at.eq(delivered.then_some(now)),
        ))
        .execute(conn)?;
    Ok(updated == 1)
}

/// Records as delivered (answered `status`) a claimed delivery that a pause, deletion or
/// deactivation ended while it was being posted (`endings`: their last errors): it reached
/// the receiver all the same. `false` when it was not ended so, or was tried again since.
pub fn record_sent_after_end(
    conn: &mut DbConnection,
    claim: &Claim,
    status: i32,
    endings: &[&str],
) -> QueryResult<bool> {
    let now = crate::db::now();
    let updated = diesel::update(
        webhook_deliveries::table
            .filter(webhook_deliveries::id.eq(&claim.id))
            .filter(webhook_deliveries::status.eq(DEAD))
            .filter(webhook_deliveries::attempts.eq(claim.attempts))
            .filter(webhook_deliveries::last_error.eq_any(endings)),
    )
    .set((
        webhook_deliveries::status.eq(DELIVERED),
        webhook_deliveries::attempts.eq(claim.attempts + 1),
        webhook_deliveries::next_attempt_at.eq(now),
        webhook_deliveries::last_status.eq(status),
        webhook_deliveries::last_error.eq(None::<String>),
        webhook_deliveries::delivered_at.eq(now),
    ))
    .execute(conn)?;
    Ok(updated == 1)
}

/// Deletes at most `limit` of the deliveries finished (delivered or dead) before `cutoff`:
/// their `next_attempt_at` is when they finished, so the due index finds them.
pub fn delete_finished_before(
    conn: &mut DbConnection,
    cutoff: NaiveDateTime,
    limit: i64,
) -> QueryResult<usize> {
    // Two statements: diesel takes no subquery of the deleted table itself in a DELETE.
    let finished: Vec<String> = webhook_deliveries::table
        .filter(webhook_deliveries::status.eq_any([DELIVERED, DEAD]))
        .filter(webhook_deliveries::next_attempt_at.lt(cutoff))
        .select(webhook_deliveries::id)
        .limit(limit)
        .load(conn)?;
    // The state again: a retry that committed meanwhile put the delivery back in the queue.
    diesel::delete(
        webhook_deliveries::table
            .filter(webhook_deliveries::id.eq_any(finished))
            .filter(webhook_deliveries::status.eq_any([DELIVERED, DEAD]))
            .filter(webhook_deliveries::next_attempt_at.lt(cutoff)),
    )
    .execute(conn)
}

/// When the next pending delivery is due.
pub fn next_due(conn: &mut DbConnection) -> QueryResult<Option<NaiveDateTime>> {
    webhook_deliveries::table
        .filter(webhook_deliveries::status.eq(PENDING))
        .select(diesel::dsl::min(webhook_deliveries::next_attempt_at))
        .first(conn)
}
