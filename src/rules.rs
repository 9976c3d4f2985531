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
        if let Err(e) = close_overdue(&state).await {
            log::error!("auto-close rule: {e}");
        }
        let wait = match next_due(&state).await {
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

/// One round of `auto_close`: closes every case overdue now, one write each. Returns how many
/// it closed.
pub async fn close_overdue(state: &AppState) -> Result<usize, ApiError> {
    let after = waiting_time(state)?;
    let mut closed = 0;
    loop {
        let cutoff = db::now() - after;
        let due = db::read(&state.pool, move |conn| {
            Ok(repo::rules::overdue(conn, cutoff, BATCH)?)
        })
        .await?;
        let full = due.len() as i64 == BATCH;
        let mut closed_now = 0;
        for (case_id, completed_at) in due {
            let notifier = state.notifier.clone();
            let secs = after.num_seconds();
            let outcome = db::write(&state.pool, move |conn| {
                auto_close(conn, &notifier, &case_id, completed_at, secs)
            })
            .await;
            match outcome {
                Ok(true) => closed_now += 1,
                Ok(false) => {}
                // One case's failure must not keep the others open.
                Err(e) => {
                    log::error!("auto-close rule: {e}")
                }
            }
        }
        closed += closed_now;
        // A batch that closed nothing would come back as it was.
        if !full || closed_now == 0 {
            return Ok(closed);
        }
    }
}

/// Closes one overdue case, with its rule-log entry. `false` when it no longer waits (the
/// client answered meanwhile) or changed under us (the next round looks again).
fn auto_close(
    conn: &mut DbConnection,
    notifier: &Notifier,
    case_id: &str,
    completed_at: NaiveDateTime,
    after_secs: i64,
) -> Result<bool, ApiError> {
    let rule = workflow::rule(CaseAction::AutoClose);
    let case = repo::cases::find(conn, &CaseScope::All, case_id)?;
    let Some(case) = case.filter(|c| c.status() == CaseStatus::Completed && !c.disputed) else {
        // Every move out of `completed`, and a dispute, ends the wait in its own write: a row
        // left behind is stale.
        repo::rules::stop_awaiting(conn, case_id)?;
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
