//! Clean-up no request does for itself, once an hour: expired `Idempotency-Key` responses (a
//! user's own go whenever they send another keyed request; a user who never does would keep
//! theirs, bodies included, for good), webhook deliveries finished (delivered or dead) more
//! than [`KEEP_DELIVERIES_DAYS`] days ago, webhooks deleted more than an hour ago, with
//! their deliveries, webhooks' old secrets once they expired, refresh tokens expired more
//! than [`KEEP_EXPIRED_SESSIONS`] ago, and blobs no row owns that their request left behind
//! (`loose_blobs`: a deleted file's bytes, an upload dropped midway).

use std::time::Duration;

use actix_web::web;

use crate::app::AppState;
use crate::db;
use crate::errors::ApiError;
use crate::repo;

const EVERY: Duration = Duration::from_secs(3600);
/// How long a finished webhook delivery stays listed under its webhook.
pub const KEEP_DELIVERIES_DAYS: i64 = 30;
/// How long a deleted webhook's row outlives it: longer than any request that read it before
/// the deletion and may still write a delivery for it.
const KEEP_DELETED_WEBHOOKS: chrono::Duration = chrono::Duration::hours(1);

/// How long an expired refresh token is kept: until then, presenting it once spent still
/// counts as reuse at `/v1/auth/refresh` and revokes its family; afterwards it is simply unknown
/// there (401 either way).
const KEEP_EXPIRED_SESSIONS: chrono::Duration = chrono::Duration::days(30);
/// Old refresh tokens removed per write: the first sweep of a database that kept every session
/// for years takes the writer in short turns, not in one long one.
const SESSIONS_PER_WRITE: i64 = 5_000;

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

/// One sweep: how many expired keys, old deliveries, deleted webhooks' rows, old secrets, old
/// refresh tokens and loose blobs it removed.
pub async fn sweep(state: &AppState) -> Result<usize, ApiError> {
    let blobs = sweep_loose_blobs(state).await?;
    Ok(blobs + sweep_rows(state).await?)
}

/// Removes the loose blobs that are due from storage, then their rows; a blob storage fails
/// to remove stays listed for the next sweep.
async fn sweep_loose_blobs(state: &AppState) -> Result<usize, ApiError> {
    let now = db::now();
    let mut removed = 0;
    loop {
        let due = db::read(&state.pool, move |conn| {
            Ok(repo::loose_blobs::due(conn, now, BLOBS_PER_ROUND)?)
        })
        .await?;
        let mut gone = Vec::with_capacity(due.len());
        for key in &due {
            if state.blobs.delete(key).await {
                gone.push(key.clone());
            }
        }
        let settled = gone.len();
        db::write(&state.pool, move |conn| {
            Ok(repo::loose_blobs::settle(conn, &gone)?)
        })
        .await?;
        removed += settled;
        // A short round was the last; a round storage refused whole would come round again.
        if due.len() < BLOBS_PER_ROUND as usize || settled == 0 {
            return Ok(removed);
        }
    }
}

async fn sweep_rows(state: &AppState) -> Result<usize, ApiError> {
    let now = db::now();
    let swept = db::write(&state.pool, move |conn| {
        let keys = repo::idempotency::delete_expired(conn)?;
        let deliveries = repo::webhooks::delete_finished_before(
            conn,
            now - chrono::Duration::days(KEEP_DELIVERIES_DAYS),
        )?;
        let deleted = repo::webhooks::purge_deleted_before(conn, now - KEEP_DELETED_WEBHOOKS)?;
        let old_secrets = repo::webhooks::forget_old_secrets(conn, now)?;
        Ok(keys + deliveries + deleted + old_secrets)
    })
    .await?;
    let mut sessions = 0;
    loop {
        let removed = db::write(&state.pool, move |conn| {
            let before = now - KEEP_EXPIRED_SESSIONS;
            let limit = SESSIONS_PER_WRITE;
            Ok(repo::refresh_tokens::delete_expired_before(
                conn, before, limit,
            )?)
        })
        .await?;
        sessions += removed;
        if removed < SESSIONS_PER_WRITE as usize {
            return Ok(swept + sessions);
        }
    }
}
