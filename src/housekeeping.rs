//! Clean-up no request does for itself, once an hour: expired `Idempotency-Key` responses (a
//! user's own go whenever they send another keyed request; a user who never does would keep
//! theirs, bodies included, for good), webhook deliveries and e-mails finished (delivered or
//! sent, or dead) more than [`KEEP_DELIVERIES_DAYS`] days ago, webhooks deleted more than an
//! hour ago, with their deliveries, webhooks' old secrets once they expired, refresh tokens
//! expired more than [`KEEP_EXPIRED_SESSIONS`] ago, and blobs no row owns that their request
//! left behind (`loose_blobs`: a deleted file's bytes, an upload dropped midway).

use std::time::Duration;

use actix_web::web;

use crate::app::AppState;
use crate::db;
use crate::errors::ApiError;
use crate::repo;

const EVERY: Duration = Duration::from_secs(3600);
/// How long a finished webhook delivery stays listed under its webhook, and a finished mail in
/// the outbox.
pub const KEEP_DELIVERIES_DAYS: i64 = 30;
/// How long a deleted webhook's row outlives it: longer than any request that read it before
/// the deletion and may still write a delivery for it.
const KEEP_DELETED_WEBHOOKS: chrono::Duration = chrono::Duration::hours(1);

/// How long an expired refresh token is kept: until then, presenting it once spent still
/// counts as reuse at `/v1/auth/refresh` and revokes its family; afterwards it is simply unknown
/// there (401 either way).
const KEEP_EXPIRED_SESSIONS: chrono::Duration = chrono::Duration::days(30);
/// Rows removed per write by the sweeps that may find a backlog (expired keys, old deliveries
/// and mail, deleted webhooks' deliveries, old refresh tokens): the first sweep of a large
/// database takes the writer in short turns, each well inside PostgreSQL's statement timeout,
/// not in one long one.
const ROWS_PER_WRITE: i64 = 5_000;

/// Loose blobs removed per round: one search of the due index and one write per round.
const BLOBS_PER_ROUND: i64 = 100;

/// Starts the hourly sweep.
pub fn spawn(state: web::Data<AppState>) {
    actix_web::rt::spawn(async move {
        loop {
            if let Err(e) = sweep(&state).await {
                log::error!("housekeeping: {e}");
            }
            tokio::time::sleep(EVERY).await;
        }
    });
}

/// One sweep: how many expired keys, old deliveries and mail, deleted webhooks' rows, old
/// secrets, old refresh tokens and loose blobs it removed.
pub async fn sweep(state: &AppState) -> Result<usize, ApiError> {
    sweep_in_turns_of(state, ROWS_PER_WRITE).await
}

/// [`sweep`], deleting at most about `rows` rows of a kind per write. Each part runs whatever
/// the others did: one that fails (storage down, a timeout) is reported after the rest ran.
pub async fn sweep_in_turns_of(state: &AppState, rows: i64) -> Result<usize, ApiError> {
    let now = db::now();
    let deleted = now - KEEP_DELETED_WEBHOOKS;
    let finished = now - chrono::Duration::days(KEEP_DELIVERIES_DAYS);
    let expired = now - KEEP_EXPIRED_SESSIONS;
    let outcomes = [
        sweep_loose_blobs(state).await,
        in_turns(state, rows, move |conn| {
            repo::webhooks::purge_deleted_before(conn, deleted, rows)
        })
        .await,
        db::write(&state.pool, move |conn| {
            Ok(repo::webhooks::forget_old_secrets(conn, now)?)
        })
        .await,
        in_turns(state, rows, move |conn| {
            repo::idempotency::delete_expired(conn, rows)
        })
        .await,
        in_turns(state, rows, move |conn| {
            repo::webhooks::delete_finished_before(conn, finished, rows)
        })
        .await,
        in_turns(state, rows, move |conn| {
            repo::email::delete_finished_before(conn, finished, rows)
        })
        .await,
        in_turns(state, rows, move |conn| {
            repo::refresh_tokens::delete_expired_before(conn, expired, rows)
        })
        .await,
    ];
    let mut removed = 0;
    let mut failure = None;
    for outcome in outcomes {
        match outcome {
            Ok(n) => removed += n,
            Err(e) => {
                failure.get_or_insert(e);
            }
        }
    }
    failure.map_or(Ok(removed), Err)
}

/// Removes the loose blobs that are due from storage, then their rows. A blob storage fails
/// to remove is due again at the next sweep, after the others: blobs storage keeps refusing
/// never hold back those behind them. Two rounds in a row that remove nothing end the sweep
/// (storage is down), so that the rest of the housekeeping still runs.
async fn sweep_loose_blobs(state: &AppState) -> Result<usize, ApiError> {
    let now = db::now();
    let later = now + chrono::Duration::from_std(EVERY).unwrap_or_default();
    let (mut removed, mut barren) = (0, 0);
    loop {
        let due = db::read(&state.pool, move |conn| {
            Ok(repo::loose_blobs::due(conn, now, BLOBS_PER_ROUND)?)
        })
        .await?;
        let (mut gone, mut kept) = (Vec::with_capacity(due.len()), Vec::new());
        for key in &due {
            if state.blobs.delete(key).await {
                gone.push(key.clone());
            } else {
                kept.push(key.clone());
            }
        }
        removed += gone.len();
        barren = if gone.is_empty() { barren + 1 } else { 0 };
        db::write(&state.pool, move |conn| {
            repo::loose_blobs::settle(conn, &gone)?;
            Ok(repo::loose_blobs::postpone(conn, &kept, later)?)
        })
        .await?;
        // Every key of the round is settled or due after `now`: a short round was the last.
        if due.len() < BLOBS_PER_ROUND as usize || barren == 2 {
            return Ok(removed);
        }
    }
}

/// Runs a deletion of about `rows` rows, one write each time, until a turn removes fewer: how
/// many it removed in all. A turn that finds fewer because a request took some meanwhile ends
/// the sweep early; the next one goes on.
async fn in_turns<F>(state: &AppState, rows: i64, delete: F) -> Result<usize, ApiError>
where
    F: Fn(&mut db::DbConnection) -> diesel::QueryResult<usize> + Clone + Send + 'static,
{
    let mut removed = 0;
    loop {
        let turn = delete.clone();
        let count = db::write(&state.pool, move |conn| Ok(turn(conn)?)).await?;
        removed += count;
        if count < rows as usize {
            return Ok(removed);
        }
    }
}
