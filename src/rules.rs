//! The business rules the server fires by itself. Built in so far: `auto_close`, which closes a
//! completed case whose client neither confirmed nor disputed it within
//! `DOSSIER_AUTO_CLOSE_AFTER` (DESIGN.md's lifecycle), and `ticket_auto_close`, which closes a
//! support ticket resolved longer than `DOSSIER_TICKET_AUTO_CLOSE_AFTER` ago and not
//! reactivated; and `auto_assign`, which gives paid cases to the agency's available operators
//! with the most room (DESIGN.md "Presence and capacity"), fired inside the write that makes a
//! case paid or an operator available, and by the worker each round for room freed since; and
//! `sla_warning` / `sla_breach` (`crate::sla`), which the worker fires when an SLA clock passes
//! its warning share or its target. Each firing is one write: the transition
//! with its audit rows (their `request_id` is the rule-log entry's id) and notifications (the
//! client is asked to rate), and the rule-log entry. Several nodes may run the rule: the case's
//! conditional update lets exactly one of them close it.

use std::time::Duration;

use actix_web::web;
use chrono::NaiveDateTime;
use diesel::QueryResult;

use crate::api::transitions::{self, Mover, TransitionRequest};
use crate::app::AppState;
use crate::db::{self, DbConnection};
use crate::domain::{CaseAction, CaseStatus, TicketAction};
use crate::errors::ApiError;
use crate::events::{Event, Notifier, TicketAudience};
use crate::repo;
use crate::repo::audit::Change;
use crate::repo::cases::{CaseChanges, CaseRow, CaseScope};
use crate::repo::presence::{OpenWork, StaffScope};
use crate::repo::rules::{RuleLogRow, WaitKey};
use crate::repo::tickets::{TicketChanges, TicketScope};
use crate::ticket_workflow;
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
    let mut waits = crate::live::subscribe_waits();
    // The queues' pass fills room freed since: once a minute, not at every wake (each paid
    // case's SLA clocks wake the worker, and the pass is a write per agency).
    let mut queues_served: Option<tokio::time::Instant> = None;
    loop {
        // Forget the wakes seen so far before looking: only later waits wake us.
        waits.borrow_and_update();
        let mut failed = 0;
        if queues_served.is_none_or(|at| at.elapsed() >= IDLE) {
            queues_served = Some(tokio::time::Instant::now());
            if let Err(e) = serve_queues(&state).await {
                log::error!("auto-assign rule: {e}");
            }
        }
        for round in [
            close_overdue(&state).await,
            close_resolved_tickets(&state).await,
            crate::sla::settle_due(&state).await,
        ] {
            failed += match round {
                Ok(round) => round.failed,
                Err(e) => {
                    log::error!("timed rules: {e}");
                    1
                }
            };
        }
        let wait = match next_due(&state).await {
            // What failed stays overdue: look again in a while, not at once.
            Ok(_) if failed > 0 => IDLE,
            Ok(at) => crate::live::time_until(at, IDLE),
            Err(e) => {
                log::error!("auto-close rules cannot read what waits: {e}");
                IDLE
            }
        };
        if wait.is_zero() {
            continue;
        }
        tokio::select! {
            changed = waits.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// When the case waiting longest, or the ticket resolved longest ago, becomes overdue, or the
/// next SLA warning or breach falls due.
async fn next_due(state: &AppState) -> Result<Option<NaiveDateTime>, ApiError> {
    let (cases, tickets) = (case_wait(state)?, ticket_wait(state)?);
    let (since, resolved, sla) = db::read(&state.pool, |conn| {
        Ok((
            repo::rules::first_waiting_since(conn)?,
            repo::tickets::first_resolved_at(conn)?,
            repo::sla::next_due(conn)?,
        ))
    })
    .await?;
    let due = [
        since.map(|at| at + cases),
        resolved.map(|at| at + tickets),
        sla,
    ];
    Ok(due.into_iter().flatten().min())
}

fn case_wait(state: &AppState) -> Result<chrono::Duration, ApiError> {
    chrono::Duration::from_std(state.settings.auto_close_after).map_err(ApiError::internal)
}

fn ticket_wait(state: &AppState) -> Result<chrono::Duration, ApiError> {
    chrono::Duration::from_std(state.settings.ticket_auto_close_after).map_err(ApiError::internal)
}

/// What one round of a rule did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Round {
    /// Cases or tickets the rule closed (the SLA rule: brought up to date).
    pub done: usize,
    /// Cases or tickets whose write failed (logged); they stay overdue for a later round.
    pub failed: usize,
}

/// Reads a batch of what waits since `cutoff` or earlier, after the previous batch's last key.
type Batch =
    fn(&mut DbConnection, NaiveDateTime, Option<&WaitKey>, i64) -> QueryResult<Vec<WaitKey>>;
/// Closes one case or ticket if it still waits since `cutoff` or earlier (the wait in seconds
/// goes into the rule log).
type Close = fn(&mut DbConnection, &Notifier, &str, NaiveDateTime, i64) -> Result<bool, ApiError>;

/// One round of `auto_close`: visits every case overdue now, in order, once, and closes it in
/// a write of its own, so one case's failure keeps none of the others open.
pub async fn close_overdue(state: &AppState) -> Result<Round, ApiError> {
    close_each(state, case_wait(state)?, repo::rules::overdue, auto_close).await
}

/// One round of the tickets' `auto_close`: every ticket resolved longer than
/// `DOSSIER_TICKET_AUTO_CLOSE_AFTER` ago and not reactivated is closed, each in its own write.
pub async fn close_resolved_tickets(state: &AppState) -> Result<Round, ApiError> {
    close_each(
        state,
        ticket_wait(state)?,
        repo::tickets::resolved_before,
        auto_close_ticket,
    )
    .await
}

async fn close_each(
    state: &AppState,
    after: chrono::Duration,
    batch: Batch,
    close: Close,
) -> Result<Round, ApiError> {
    let cutoff = db::now() - after;
    let mut round = Round::default();
    let mut last = None;
    loop {
        let keys = db::read(&state.pool, move |conn| {
            Ok(batch(conn, cutoff, last.as_ref(), BATCH)?)
        })
        .await?;
        let full = keys.len() as i64 == BATCH;
        last = keys.last().cloned();
        for (_, id) in keys {
            let notifier = state.notifier.clone();
            let secs = after.num_seconds();
            let closed = db::write(&state.pool, move |conn| {
                close(conn, &notifier, &id, cutoff, secs)
            })
            .await;
            match closed {
                Ok(true) => round.done += 1,
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
        ticket_id: None,
    };
    let input = TransitionRequest::bare(rule.action);
    let mover = Mover::Rule { log_id: &entry.id };
    if !transitions::apply(conn, notifier, mover, &case, rule, &input)? {
        return Ok(false);
    }
    repo::rules::record(conn, &entry)?;
    Ok(true)
}

/// Closes one ticket resolved at `cutoff` or earlier and still resolved, with its rule-log
/// entry; `false` when it was reactivated, closed or changed since its batch was read.
fn auto_close_ticket(
    conn: &mut DbConnection,
    notifier: &Notifier,
    ticket_id: &str,
    cutoff: NaiveDateTime,
    after_secs: i64,
) -> Result<bool, ApiError> {
    let rule = ticket_workflow::rule(TicketAction::AutoClose);
    let Some(ticket) = repo::tickets::find(conn, &TicketScope::All, ticket_id)? else {
        return Ok(false);
    };
    let Some(resolved_at) = ticket.resolved_at.filter(|at| *at <= cutoff) else {
        return Ok(false);
    };
    if !rule.from.contains(&ticket.status()) {
        return Ok(false);
    }
    let entry = RuleLogRow {
        id: repo::new_id(),
        rule: "ticket_auto_close".into(),
        trigger_event: "resolution_not_reactivated".into(),
        action: rule.action.as_str().into(),
        case_id: None,
        agency_id: ticket.agency_id.clone(),
        outcome: "closed".into(),
        detail: Some(format!(
            "Resolved at {}Z; not reactivated within {after_secs} s.",
            resolved_at.format("%Y-%m-%dT%H:%M:%S")
        )),
        created_at: db::now(),
        ticket_id: Some(ticket.id.clone()),
    };
    let changes = TicketChanges {
        status: Some(rule.to.as_str().to_owned()),
        ..TicketChanges::default()
    };
    if !repo::tickets::update(conn, ticket_id, Some(ticket.version), rule.from, &changes)? {
        return Ok(false);
    }
    let change = Change::outside_cases(
        "ticket",
        ticket_id,
        ticket.agency_id.as_deref(),
        "auto_close",
    )
    .field(
        "status",
        Some(ticket.status.clone()),
        Some(rule.to.as_str().to_owned()),
    );
    repo::audit::append_by_rule(conn, &entry.id, vec![change])?;
    notifier.notify_ticket(
        conn,
        &ticket,
        Event::StatusChanged,
        &[TicketAudience::Requester],
        &[],
        None,
        None,
        Some(rule.to),
    )?;
    repo::rules::record(conn, &entry)?;
    Ok(true)
}

/// Queued cases read per pass of [`serve_queue`].
const QUEUE_BATCH: i64 = 20;

/// `auto_assign`: serves the agency's queue, its paid cases nobody is responsible for
/// (`in_approval`, unassigned), oldest first, each to the `available` operator with the most
/// room (their capacity, else `default_capacity`, less their open cases); between equals, the
/// one the rule served longest ago (round robin). Stops when nobody has room or the queue is empty: cases wait, unassigned
/// (the "to assign" view). Runs inside the write that made a case paid or an operator
/// available, and in the rules' worker every minute (room freed since); `trigger` names the
/// occasion in the rule log. How many cases it gave out.
pub fn serve_queue(
    conn: &mut DbConnection,
    notifier: &Notifier,
    agency_id: &str,
    default_capacity: u32,
    trigger: &str,
) -> Result<usize, ApiError> {
    repo::presence::lock_queue(conn, agency_id)?;
    let mut given = 0;
    loop {
        let candidates = repo::presence::available_operators(conn, agency_id)?;
        if candidates.is_empty() {
            return Ok(given);
        }
        let ids: Vec<String> = candidates.iter().map(|c| c.id.clone()).collect();
        let load = open_cases(conn, agency_id, &ids)?;
        let mut operators: Vec<(i64, Option<NaiveDateTime>, String, i64)> = candidates
            .into_iter()
            .map(|c| {
                let capacity = repo::users::effective_capacity(c.capacity, default_capacity);
                let room = capacity - load.get(&c.id).copied().unwrap_or(0);
                (room, c.last_assigned_at, c.id, capacity)
            })
            .filter(|(room, ..)| *room > 0)
            .collect();
        if operators.is_empty() {
            return Ok(given);
        }
        let queue = repo::cases::queued(conn, agency_id, QUEUE_BATCH)?;
        let full = queue.len() as i64 == QUEUE_BATCH;
        let mut moved = false;
        for case in queue {
            // Most room first, then the longest since served (never: first), then the id.
            let Some(best) = operators
                .iter_mut()
                .filter(|(room, ..)| *room > 0)
                .min_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)))
            else {
                return Ok(given);
            };
            if assign_by_rule(conn, notifier, &case, &best.2, trigger, best.0, best.3)? {
                best.0 -= 1;
                best.1 = Some(db::now());
                given += 1;
                moved = true;
            }
        }
        // A batch whose cases all moved on meanwhile is left to a later pass.
        if !full || !moved {
            return Ok(given);
        }
    }
}

/// The worker's pass of `auto_assign` over every agency with someone available: fills room
/// freed since (a case completed, closed or handed over) and any hand-off two racing writes
/// missed. Each agency in its own write.
pub async fn serve_queues(state: &AppState) -> Result<usize, ApiError> {
    let agencies = db::read(&state.pool, |conn| {
        Ok(repo::presence::agencies_with_available_operators(conn)?)
    })
    .await?;
    let capacity = state.settings.operator_capacity;
    let mut given = 0;
    for agency in agencies {
        let notifier = state.notifier.clone();
        let served = db::write(&state.pool, move |conn| {
            serve_queue(conn, &notifier, &agency, capacity, "queue_check")
        })
        .await;
        match served {
            Ok(n) => given += n,
            Err(e) => log::error!("auto-assign rule: {e}"),
        }
    }
    Ok(given)
}

/// Open cases each of `ids` holds, against their capacity.
fn open_cases(
    conn: &mut DbConnection,
    agency_id: &str,
    ids: &[String],
) -> Result<std::collections::HashMap<String, i64>, ApiError> {
    let holding = workflow::holding_statuses();
    let open = OpenWork {
        assigned_cases: &holding,
        tickets: &[],
    };
    let scope = StaffScope::Agency(agency_id.to_owned());
    Ok(repo::presence::workload(conn, &scope, ids, &open)?)
}

/// Makes `operator` responsible for `case` while it is still as read (unassigned, same
/// version), with the rule-log entry, audit row and the operator's notification; `false` when
/// the case moved on meanwhile.
fn assign_by_rule(
    conn: &mut DbConnection,
    notifier: &Notifier,
    case: &CaseRow,
    operator: &str,
    trigger: &str,
    room: i64,
    capacity: i64,
) -> Result<bool, ApiError> {
    let now = db::now();
    let entry = RuleLogRow {
        id: repo::new_id(),
        rule: "auto_assign".into(),
        trigger_event: trigger.into(),
        action: "assign".into(),
        case_id: Some(case.id.clone()),
        agency_id: Some(case.agency_id.clone()),
        outcome: "assigned".into(),
        detail: Some(format!(
            "To {operator}, available with room for {room} of {capacity} open cases."
        )),
        created_at: now,
        ticket_id: None,
    };
    let changes = CaseChanges {
        assignee_id: Some(Some(operator.to_owned())),
        delegated_by: Some(None),
        ..CaseChanges::default()
    };
    if !repo::cases::update(conn, &case.id, case.version, &[case.status()], &changes)? {
        return Ok(false);
    }
    repo::presence::mark_assigned(conn, operator, now)?;
    let change =
        Change::case(&case.id, "auto_assign").field("assignee_id", None, Some(operator.to_owned()));
    repo::audit::append_by_rule(conn, &entry.id, vec![change])?;
    notifier.notify_users(
        conn,
        case,
        Event::Assigned,
        &[],
        &[operator.to_owned()],
        None,
        None,
        None,
    )?;
    repo::rules::record(conn, &entry)?;
    Ok(true)
}
