//! The business rules the server fires by itself. Built in so far: `auto_close`, which closes a
//! completed case whose client neither confirmed nor disputed it within
//! `DOSSIER_AUTO_CLOSE_AFTER` (DESIGN.md's lifecycle). Each firing is one write: the transition
//! with its audit rows (their `request_id` is the rule-log entry's id) and notifications (the
//! client is asked to rate), and the rule-log entry. Several nodes may run the rule: the case's
//! conditional update lets exactly one of them close it.

use std::time::Duration;

use actix_web::web;
use chrono::NaiveDateTime;

use crate::api::notifications::Notifier;
use crate::api::transitions::{self, Mover, TransitionRequest};
use crate::app::AppState;
use crate::db::{self, DbConnection};
use crate::domain::{CaseAction, CaseStatus};
use crate::errors::ApiError;
use crate::repo;
use crate::repo::cases::CaseScope;
use crate::repo::rules::RuleLogRow;
use crate::workflow;

/// Cases read per round of the rule.
const BATCH: i64 = 100;
/// Longest sleep: a safety net for cases another node completed.
const IDLE: Duration = Duration::from_secs(60);

/// Starts the rules' worker.
pub fn spawn(state: web::Data<AppState>) {
    actix_web::rt::spawn(run(state));
}

async fn run(state: web::Data<AppState>) {
    let mut awaiting = crate::live::subscribe_awaiting();
    loop {
        // Forget the wakes seen so far before looking: only later completions wake us.
        awaiting.borrow_and_update();
        let failed = match close_overdue(&state).await {
            Ok(round) => round.failed,
            Err(e) => {
                log::error!("auto-close rule: {e}");
                1
            }
        };
        let wait = match next_due(&state).await {
            // A case that failed stays overdue: look again in a while, not at once.
            Ok(_) if failed > 0 => IDLE,
            Ok(at) => crate::live::time_until(at, IDLE),
            Err(e) => {
                log::error!("auto-close rule cannot read its cases: {e}");
                IDLE
            }
        };
        if wait.is_zero() {
            continue;
        }
        tokio::select! {
            changed = awaiting.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// When the case waiting longest becomes overdue.
async fn next_due(state: &AppState) -> Result<Option<NaiveDateTime>, ApiError> {
    let after = waiting_time(state)?;
    let since = db::read(&state.pool, |conn| {
        Ok(repo::rules::first_waiting_since(conn)?)
    })
    .await?;
    Ok(since.map(|since| since + after))
}

fn waiting_time(state: &AppState) -> Result<chrono::Duration, ApiError> {
    chrono::Duration::from_std(state.settings.auto_close_after).map_err(ApiError::internal)
}

/// What one round of the rule did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Round {
    pub closed: usize,
    /// Cases whose write failed (logged); they stay overdue for a later round.
    pub failed: usize,
}

/// One round of `auto_close`: visits every case overdue now, in order, once, and closes it in
/// a write of its own, so one case's failure keeps none of the others open.
pub async fn close_overdue(state: &AppState) -> Result<Round, ApiError> {
    let after = waiting_time(state)?;
    let cutoff = db::now() - after;
    let mut round = Round::default();
    let mut last = None;
    loop {
        let batch = db::read(&state.pool, move |conn| {
            Ok(repo::rules::overdue(conn, cutoff, last.as_ref(), BATCH)?)
        })
        .await?;
        let full = batch.len() as i64 == BATCH;
        last = batch.last().cloned();
        for (_, case_id) in batch {
            let notifier = state.notifier.clone();
            let secs = after.num_seconds();
            let closed = db::write(&state.pool, move |conn| {
                auto_close(conn, &notifier, &case_id, cutoff, secs)
            })
            .await;
            match closed {
                Ok(true) => round.closed += 1,
                Ok(false) => {}
                Err(e) => {
                    round.failed += 1;
                    log::error!("auto-close rule: {e}");
                }
            }
        }
        if !full {
            return Ok(round);
        }
    }
}

/// Closes one case still waiting since `cutoff` or earlier, with its rule-log entry. `false`
/// when it no longer waits that long (the client answered, or the agency reopened and
/// completed it again, since the batch was read) or changed under us (a later round looks
/// again). The case is read before its wait: a completion committed in between shows as a
/// newer wait, never as an old wait on a newly completed case.
fn auto_close(
    conn: &mut DbConnection,
    notifier: &Notifier,
    case_id: &str,
    cutoff: NaiveDateTime,
    after_secs: i64,
) -> Result<bool, ApiError> {
    let rule = workflow::rule(CaseAction::AutoClose);
    let case = repo::cases::find(conn, &CaseScope::All, case_id)?;
    let Some(completed_at) = repo::rules::waiting_since(conn, case_id)? else {
        return Ok(false);
    };
    if completed_at > cutoff {
        return Ok(false);
    }
    let Some(case) = case.filter(|c| c.status() == CaseStatus::Completed && !c.disputed) else {
        // Every move out of `completed`, and a dispute, ends the wait in its own write: this
        // one is left over.
        repo::rules::stop_awaiting_since(conn, case_id, completed_at)?;
        return Ok(false);
    };
    let entry = RuleLogRow {
        id: repo::new_id(),
        rule: "auto_close".into(),
        trigger_event: "confirmation_overdue".into(),
        action: rule.action.as_str().into(),
        case_id: Some(case.id.clone()),
        agency_id: Some(case.agency_id.clone()),
        outcome: "closed".into(),
        detail: Some(format!(
            "Completed at {}Z; neither confirmed nor disputed by the client within {after_secs} s.",
            completed_at.format("%Y-%m-%dT%H:%M:%S")
        )),
        created_at: db::now(),
    };
    let input = TransitionRequest::bare(rule.action);
    let mover = Mover::Rule { log_id: &entry.id };
    if !transitions::apply(conn, notifier, mover, &case, rule, &input)? {
        return Ok(false);
    }
    repo::rules::record(conn, &entry)?;
    Ok(true)
}
