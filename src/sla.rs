//! SLA clocks (DESIGN.md "SLA"). A case has up to three clocks, started by its service's policy,
//! else its agency's default, else the platform's, for the case's priority:
//! - `first_response`: from `in_approval` to the agency's first message to the client, or to
//!   the case's end (completed, rejected, cancelled, closed) if none came;
//! - `decision`: from `in_approval` to `accept` or `reject`;
//! - `resolution`: from `in_progress` to `completed`, paused while `suspended` or while a
//!   request to the client is open, running again on `resume` and `reopen`.
//!
//! A support ticket has two, started when it is opened, by the platform's default policy for
//! the ticket's priority:
//! - `first_response`: to the platform's first message on it, its `wait_on_requester` or its
//!   resolution;
//! - `resolution`: to `resolved`, paused while `waiting_on_requester`, running again when the
//!   requester answers or the ticket is reactivated.
//!
//! Every clock is a function of its case or ticket (its [`Subject`]): each write that moves it,
//! its requests or its conversation calls [`sync`], which starts, pauses, resumes and stops the
//! clocks its state now asks for, records the warnings and breaches time has crossed (once
//! each: a notification, a rule-log entry, an audit row) and keeps its SLA columns (state, next
//! due time, and when the state next changes by time alone, which the rules' worker waits for).
//! A breach stays on record whatever happens afterwards.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::Validate;

use crate::business_time::{Calendar, Hours, OpeningHours};
use crate::db::{self, DbConnection};
use crate::domain::{CaseStatus, Locale, Priority, TicketStatus, code_enum};
use crate::errors::ApiError;
use crate::events::{Audience, Event, Notifier, TicketAudience};
use crate::i18n::SlaAccount;
use crate::repo;
use crate::repo::audit::Change;
use crate::repo::cases::CaseRow;
use crate::repo::rules::RuleLogRow;
use crate::repo::sla::{CalendarRow, ClockRow, Holder, PolicyRow, SlaColumns};
use crate::repo::tickets::{TicketRow, TicketScope};
use crate::rules::Round;

code_enum! {
    /// One of a case's or a ticket's SLA clocks.
    Clock {
        /// From `in_approval` to the agency's first message to the client; a ticket's, from
        /// its opening to the platform's first message.
        FirstResponse = "first_response",
        /// From `in_approval` to `accept` or `reject`.
        Decision = "decision",
        /// From `in_progress` to `completed`; paused while `suspended` or while a request to
        /// the client is open. A ticket's, from its opening to `resolved`, paused while
        /// `waiting_on_requester`.
        Resolution = "resolution",
    }
}

code_enum! {
    /// A case's or ticket's SLA at a glance.
    SlaState {
        /// Every running clock is short of its warning share.
        OnTrack = "on_track",
        /// A running clock has passed its warning share (`warning_percent` of its target).
        AtRisk = "at_risk",
        /// A clock passed its target; it stays so for good.
        Breached = "breached",
        /// Every clock stopped within its target.
        Met = "met",
    }
}

/// Minutes allowed to each clock.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClockTargets {
    #[serde(deserialize_with = "crate::api::whole_number")]
    #[validate(range(min = 1, max = 525_600))]
    #[schema(minimum = 1, maximum = 525_600)]
    pub first_response: i64,
    #[serde(deserialize_with = "crate::api::whole_number")]
    #[validate(range(min = 1, max = 525_600))]
    #[schema(minimum = 1, maximum = 525_600)]
    pub decision: i64,
    #[serde(deserialize_with = "crate::api::whole_number")]
    #[validate(range(min = 1, max = 525_600))]
    #[schema(minimum = 1, maximum = 525_600)]
    pub resolution: i64,
}

/// A policy's targets, in minutes of business time, for each priority.
#[derive(Debug, Clone, Serialize, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "low": {"first_response": 1440, "decision": 2880, "resolution": 43200},
    "normal": {"first_response": 480, "decision": 1440, "resolution": 20160},
    "high": {"first_response": 120, "decision": 480, "resolution": 10080},
    "urgent": {"first_response": 30, "decision": 120, "resolution": 2880}
}))]
pub struct Targets {
    #[validate(nested)]
    pub low: ClockTargets,
    #[validate(nested)]
    pub normal: ClockTargets,
    #[validate(nested)]
    pub high: ClockTargets,
    #[validate(nested)]
    pub urgent: ClockTargets,
}

impl Targets {
    pub fn minutes(&self, priority: Priority, clock: Clock) -> i64 {
        let targets = match priority {
            Priority::Low => self.low,
            Priority::Normal => self.normal,
            Priority::High => self.high,
            Priority::Urgent => self.urgent,
        };
        match clock {
            Clock::FirstResponse => targets.first_response,
            Clock::Decision => targets.decision,
            Clock::Resolution => targets.resolution,
        }
    }

    /// The longest target, in seconds.
    pub fn longest_secs(&self) -> i64 {
        [self.low, self.normal, self.high, self.urgent]
            .iter()
            .flat_map(|t| [t.first_response, t.decision, t.resolution])
            .max()
            .unwrap_or(0)
            * 60
    }
}

/// How a stored calendar counts (around the clock without one). A stored calendar that no
/// longer reads (a time zone gone from a later tz database) counts around the clock, logged:
/// refusing would block every write to its cases, `complete` and `cancel` included.
pub fn hours_of(calendar: Option<&CalendarRow>) -> Hours {
    let Some(row) = calendar else {
        return Hours::AroundTheClock;
    };
    let hours = serde_json::from_str::<Vec<OpeningHours>>(&row.hours);
    let holidays = serde_json::from_str::<Vec<chrono::NaiveDate>>(&row.holidays);
    let calendar = match (hours, holidays) {
        (Ok(hours), Ok(holidays)) => Calendar::new(&row.time_zone, &hours, &holidays).ok(),
        _ => None,
    };
    calendar.map(Hours::Calendar).unwrap_or_else(|| {
        log::error!(
            "calendar {} no longer reads; its clocks count around the clock",
            row.id
        );
        Hours::AroundTheClock
    })
}

/// The policy's warning share of a target, rounded up: at least a second, so a clock is
/// never at risk the moment it starts.
fn warning_secs(target_secs: i64, percent: i32) -> i64 {
    ((target_secs * i64::from(percent) + 99) / 100).max(1)
}

code_enum! {
    /// What a clock is doing (and what the case's state asks of it).
    ClockState {
        Running = "running",
        /// `resolution` only: the case is `suspended` or waits on a request to the client; the
        /// ticket waits on its requester.
        Paused = "paused",
        /// Its end was reached (or the case ended before it).
        Stopped = "stopped",
    }
}

/// A warning or a breach a clock crossed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Crossing {
    Warning,
    Breach,
}

/// A crossing to record: the clock, the crossing, when, the target in seconds, and whether
/// the target counts business hours.
type Told = (Clock, Crossing, NaiveDateTime, i64, bool);

/// A clock with what it counts in.
struct Live<'a> {
    row: ClockRow,
    hours: &'a Hours,
}

impl Live<'_> {
    fn clock(&self) -> Clock {
        Clock::from_code(&self.row.clock).unwrap_or(Clock::Resolution)
    }

    /// What crossing it tells of: the clock, when, its target and whether that counts business
    /// hours (a calendar's) or every hour.
    fn crossing(&self, crossing: Crossing, at: NaiveDateTime, target_secs: i64) -> Told {
        let business_hours = matches!(self.hours, Hours::Calendar(_));
        (self.clock(), crossing, at, target_secs, business_hours)
    }

    fn state(&self) -> ClockState {
        match (&self.row.running_since, &self.row.stopped_at) {
            (Some(_), _) => ClockState::Running,
            (None, Some(_)) => ClockState::Stopped,
            (None, None) => ClockState::Paused,
        }
    }

    /// Warnings and breaches due at `now` or before, recorded at the moment they happened.
    fn settle(&mut self, now: NaiveDateTime) -> Vec<(Crossing, NaiveDateTime)> {
        let mut crossed = Vec::new();
        let row = &mut self.row;
        if let Some(at) = row
            .warn_at
            .filter(|at| *at <= now && row.warned_at.is_none())
        {
            row.warned_at = Some(at);
            crossed.push((Crossing::Warning, at));
        }
        if let Some(at) = row
            .due_at
            .filter(|at| *at <= now && row.breached_at.is_none())
        {
            row.breached_at = Some(at);
            crossed.push((Crossing::Breach, at));
        }
        crossed
    }

    /// Business seconds counted at `now`.
    fn elapsed(&self, now: NaiveDateTime) -> i64 {
        let running = self
            .row
            .running_since
            .map_or(0, |since| self.hours.between(since, now));
        self.row.elapsed_secs + running
    }

    fn halt(&mut self, now: NaiveDateTime, stop: bool) {
        self.row.elapsed_secs = self.elapsed(now);
        self.row.running_since = None;
        self.row.warn_at = None;
        self.row.due_at = None;
        if stop {
            self.row.stopped_at = Some(now);
        }
    }

    fn start(&mut self, now: NaiveDateTime) {
        let row = &mut self.row;
        row.stopped_at = None;
        row.running_since = Some(now);
        row.due_at = self.hours.add(now, row.target_secs - row.elapsed_secs);
        row.warn_at = match row.warned_at {
            None => self.hours.add(now, row.warn_secs - row.elapsed_secs),
            Some(_) => None,
        };
    }

    /// New targets, keeping the business time counted; a running clock's due and warning
    /// times follow them (the next [`Live::settle`] finds them passed). A paused clock that
    /// has counted past them crossed them now.
    fn retarget(
        &mut self,
        target_secs: i64,
        warn_secs: i64,
        now: NaiveDateTime,
    ) -> Vec<(Crossing, NaiveDateTime)> {
        let state = self.state();
        if state == ClockState::Running {
            self.halt(now, false);
        }
        self.row.target_secs = target_secs;
        self.row.warn_secs = warn_secs;
        let mut crossed = Vec::new();
        match state {
            ClockState::Running => self.start(now),
            ClockState::Paused => {
                let row = &mut self.row;
                if row.warned_at.is_none() && row.elapsed_secs >= warn_secs {
                    row.warned_at = Some(now);
                    crossed.push((Crossing::Warning, now));
                }
                if row.breached_at.is_none() && row.elapsed_secs >= target_secs {
                    row.breached_at = Some(now);
                    crossed.push((Crossing::Breach, now));
                }
            }
            ClockState::Stopped => {}
        }
        crossed
    }

    /// Moves the clock to what the case asks; only the resolution clock starts again once
    /// stopped (`reopen`).
    fn steer(&mut self, to: ClockState, now: NaiveDateTime) {
        match (self.state(), to) {
            (ClockState::Running, ClockState::Paused) => self.halt(now, false),
            (ClockState::Running, ClockState::Stopped) => self.halt(now, true),
            (ClockState::Paused, ClockState::Stopped) => self.row.stopped_at = Some(now),
            (ClockState::Paused, ClockState::Running) => self.start(now),
            (ClockState::Stopped, ClockState::Running) if self.clock() == Clock::Resolution => {
                self.start(now)
            }
            _ => {}
        }
    }
}

/// What a set of clocks belongs to, in the status a write leaves it in.
#[derive(Debug, Clone, Copy)]
pub enum Subject<'a> {
    Case(&'a CaseRow, CaseStatus),
    Ticket(&'a TicketRow, TicketStatus),
}

impl Subject<'_> {
    /// The case as it is stored.
    pub fn case(case: &CaseRow) -> Subject<'_> {
        Subject::Case(case, case.status())
    }

    /// The ticket as it is stored.
    pub fn ticket(ticket: &TicketRow) -> Subject<'_> {
        Subject::Ticket(ticket, ticket.status())
    }

    fn holder(&self) -> Holder<'_> {
        match self {
            Subject::Case(case, _) => Holder::Case(&case.id),
            Subject::Ticket(ticket, _) => Holder::Ticket(&ticket.id),
        }
    }

    fn priority(&self) -> Priority {
        match self {
            Subject::Case(case, _) => case.priority(),
            Subject::Ticket(ticket, _) => ticket.priority(),
        }
    }

    /// The clocks it starts in its status (if it has not got them yet).
    fn starts(&self) -> &'static [Clock] {
        match self {
            Subject::Case(_, CaseStatus::InApproval) => &[Clock::FirstResponse, Clock::Decision],
            Subject::Case(_, CaseStatus::InProgress) => &[Clock::Resolution],
            Subject::Ticket(_, TicketStatus::New) => &[Clock::FirstResponse, Clock::Resolution],
            _ => &[],
        }
    }

    /// What its status asks of `clock`.
    fn wants(&self, clock: Clock, requests_open: bool) -> ClockState {
        use CaseStatus as S;
        use TicketStatus as T;
        match (self, clock) {
            // The work handed in answers the client too: a completed case owes no first
            // answer (and its clock, once stopped, stays so through a reopening).
            (Subject::Case(_, status), Clock::FirstResponse) => match status {
                S::Completed | S::Rejected | S::Cancelled | S::Closed => ClockState::Stopped,
                _ => ClockState::Running,
            },
            (Subject::Case(_, status), Clock::Decision) => match status {
                S::InApproval => ClockState::Running,
                _ => ClockState::Stopped,
            },
            (Subject::Case(_, status), Clock::Resolution) => match status {
                S::InProgress if requests_open => ClockState::Paused,
                S::InProgress => ClockState::Running,
                S::Completed | S::Closed | S::Rejected | S::Cancelled => ClockState::Stopped,
                _ => ClockState::Paused,
            },
            // Waiting on the requester, or resolving, answers them too.
            (Subject::Ticket(_, status), Clock::FirstResponse) => match status {
                T::New | T::Open => ClockState::Running,
                T::WaitingOnRequester | T::Resolved | T::Closed => ClockState::Stopped,
            },
            (Subject::Ticket(_, status), Clock::Resolution) => match status {
                T::New | T::Open => ClockState::Running,
                T::WaitingOnRequester => ClockState::Paused,
                T::Resolved | T::Closed => ClockState::Stopped,
            },
            // Tickets have no decision to make.
            (Subject::Ticket(..), Clock::Decision) => ClockState::Stopped,
        }
    }

    /// No clock can start any more (a case's resolution clock is still to come once accepted).
    fn done(&self) -> bool {
        match self {
            Subject::Case(_, status) => matches!(
                status,
                CaseStatus::Completed
                    | CaseStatus::Closed
                    | CaseStatus::Rejected
                    | CaseStatus::Cancelled
            ),
            Subject::Ticket(_, status) => {
                matches!(status, TicketStatus::Resolved | TicketStatus::Closed)
            }
        }
    }
}

/// Whether a write must bump the case's or ticket's version for the SLA columns it changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bump {
    /// The write already moved the version (a transition, a request's change, an edit, a
    /// message on a ticket), and so holds the lock on its row.
    Done,
    /// Nothing else moves it (a message on a case, the worker).
    Needed,
}

/// What may start clocks a case has not got yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Starts {
    /// Payment, and work starting, resuming or reopened (`workflow::Effect::StartSlaClocks`):
    /// the policy is looked up for the clocks the status calls for.
    Clocks,
    /// Any other write: only a case that has clocks already gets the others its status calls
    /// for, so a case without a policy costs one search of its clocks and no policy lookup.
    OnlyMore,
}

/// A case bought and paid, or a ticket opened, in this write: its first clocks start.
pub fn started(
    conn: &mut DbConnection,
    notifier: &Notifier,
    subject: Subject,
) -> Result<(), ApiError> {
    sync_at(
        conn,
        notifier,
        subject,
        Starts::Clocks,
        Bump::Done,
        Moment::Created,
    )
}

/// A request to the client was opened, answered or withdrawn (the write moved the case's
/// version): the resolution clock waits while one is open.
pub fn requests_changed(
    conn: &mut DbConnection,
    notifier: &Notifier,
    case: &CaseRow,
) -> Result<(), ApiError> {
    let case = Subject::case(case);
    sync(conn, notifier, case, Starts::OnlyMore, Bump::Done)
}

/// Brings the subject's clocks in line with it as it now is, inside the write that changed it;
/// see the module's description.
pub fn sync(
    conn: &mut DbConnection,
    notifier: &Notifier,
    subject: Subject,
    starts: Starts,
    bump: Bump,
) -> Result<(), ApiError> {
    sync_at(conn, notifier, subject, starts, bump, Moment::Moved)
}

/// The subject's priority changed (to `priority`; the write moved its version): the clocks
/// still counting take their policy's targets for it, keeping the business time already
/// counted. A target the clock has already passed under the new priority is a breach now.
pub fn reprioritized(
    conn: &mut DbConnection,
    notifier: &Notifier,
    subject: Subject,
    priority: Priority,
) -> Result<(), ApiError> {
    let moment = Moment::Reprioritized(priority);
    sync_at(
        conn,
        notifier,
        subject,
        Starts::OnlyMore,
        Bump::Done,
        moment,
    )
}

/// The agency answered the client, or the platform the requester: the first-response clock
/// stops (a search of one key when it does not run).
pub fn answered(
    conn: &mut DbConnection,
    notifier: &Notifier,
    subject: Subject,
    bump: Bump,
) -> Result<(), ApiError> {
    if !repo::sla::awaits_first_response(conn, subject.holder())? {
        return Ok(());
    }
    sync_at(
        conn,
        notifier,
        subject,
        Starts::OnlyMore,
        bump,
        Moment::Answered,
    )
}

/// What the write did, besides leaving the case in its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Moment {
    /// The case was just bought, paid; the ticket just opened.
    Created,
    Moved,
    /// The agency's first answer to the client, the platform's to the requester.
    Answered,
    Reprioritized(Priority),
}

fn sync_at(
    conn: &mut DbConnection,
    notifier: &Notifier,
    subject: Subject,
    starts: Starts,
    bump: Bump,
    moment: Moment,
) -> Result<(), ApiError> {
    let holder = subject.holder();
    // One write at a time brings the clocks in line: the case's or ticket's row first, then
    // its clocks, in every writer's order (PostgreSQL; SQLite's writes are serialized
    // already). A write that updated that row holds the lock already.
    if bump == Bump::Needed {
        repo::sla::update_lock(conn, holder)?;
    }
    let now = db::now();
    // What is being created has no clocks yet, nor SLA columns: two reads fewer.
    let stored = match moment {
        Moment::Created => Vec::new(),
        _ => repo::sla::clocks_of(conn, holder)?,
    };
    let mut rows = stored.clone();
    let missing: Vec<Clock> = subject
        .starts()
        .iter()
        .copied()
        .filter(|clock| !rows.iter().any(|r| r.clock == clock.as_str()))
        .collect();
    let mut extra_calendar = None;
    let may_start = starts == Starts::Clocks || !stored.is_empty();
    if may_start
        && !missing.is_empty()
        && let Some((policy, calendar)) = policy_of(conn, subject, &stored)?
    {
        let targets: Targets = serde_json::from_str(&policy.targets).map_err(ApiError::internal)?;
        for clock in missing {
            let target_secs = targets.minutes(subject.priority(), clock) * 60;
            rows.push(ClockRow {
                holder_id: holder.id().to_owned(),
                clock: clock.as_str().to_owned(),
                policy_id: policy.id.clone(),
                calendar_id: policy.calendar_id.clone(),
                target_secs,
                warn_secs: warning_secs(target_secs, policy.warning_percent),
                started_at: now,
                elapsed_secs: 0,
                running_since: None,
                warn_at: None,
                due_at: None,
                warned_at: None,
                breached_at: None,
                stopped_at: None,
            });
        }
        extra_calendar = calendar;
    }
    if rows.is_empty() {
        return Ok(());
    }
    let calendars = calendars_of(conn, &rows, extra_calendar)?;
    let requests_open = match subject {
        Subject::Case(case, CaseStatus::InProgress)
            if rows.iter().any(|r| r.clock == Clock::Resolution.as_str()) =>
        {
            !repo::requests::in_status(conn, &case.id, "open", 1)?.is_empty()
        }
        _ => false,
    };
    let mut crossings = Vec::new();
    let mut live: Vec<Live> = rows
        .into_iter()
        .map(|row| {
            let hours = calendars.get(&row.calendar_id).unwrap_or(&AROUND_THE_CLOCK);
            Live { row, hours }
        })
        .collect();
    let retargets = match moment {
        Moment::Reprioritized(priority) => targets_of(conn, &live, priority)?,
        _ => HashMap::new(),
    };
    for clock in &mut live {
        for (crossing, at) in clock.settle(now) {
            crossings.push(clock.crossing(crossing, at, clock.row.target_secs));
        }
        if let Some(&(target_secs, warn_secs)) = retargets.get(&clock.row.clock) {
            for (crossing, at) in clock.retarget(target_secs, warn_secs, now) {
                crossings.push(clock.crossing(crossing, at, target_secs));
            }
        }
        let mut to = subject.wants(clock.clock(), requests_open);
        if moment == Moment::Answered && clock.clock() == Clock::FirstResponse {
            to = ClockState::Stopped;
        }
        clock.steer(to, now);
        // A clock started at or past its target (none can be, but a stored one resumed late).
        for (crossing, at) in clock.settle(now) {
            crossings.push(clock.crossing(crossing, at, clock.row.target_secs));
        }
    }
    for clock in &live {
        match stored.iter().find(|s| s.clock == clock.row.clock) {
            None => repo::sla::insert_clock(conn, holder, &clock.row)?,
            Some(before) if *before != clock.row => {
                repo::sla::update_clock(conn, holder, &clock.row)?
            }
            Some(_) => {}
        }
    }
    let columns = columns(&live, subject.done());
    let current = match moment {
        Moment::Created => SlaColumns::default(),
        _ => repo::sla::columns_of(conn, holder)?,
    };
    if columns != current {
        // The views show the state and the due time; when the worker wakes is not on them.
        let shown =
            columns.sla_state != current.sla_state || columns.sla_due_at != current.sla_due_at;
        repo::sla::set_columns(conn, holder, &columns, shown && bump == Bump::Needed)?;
    }
    let sooner = columns
        .sla_next_at
        .is_some_and(|next| current.sla_next_at.is_none_or(|was| next < was));
    if sooner {
        crate::live::will_wake_rules();
    }
    if !crossings.is_empty() {
        let states = (&current, &columns);
        record(conn, notifier, subject, &crossings, states)?;
    }
    Ok(())
}

/// The policy new clocks start under. A case's: the one its first clocks started under, else
/// the one its service named when it was bought, else the agency's default, else the
/// platform's. A ticket's (both
/// start at once): the platform's default.
fn policy_of(
    conn: &mut DbConnection,
    subject: Subject,
    stored: &[ClockRow],
) -> Result<Option<(PolicyRow, Option<CalendarRow>)>, ApiError> {
    let case = match subject {
        Subject::Case(case, _) => case,
        Subject::Ticket(..) => return Ok(repo::sla::platform_default(conn)?),
    };
    let named = match stored.first() {
        Some(clock) => Some(clock.policy_id.clone()),
        None => case.sla_policy_id.clone(),
    };
    if let Some(id) = named
        && let Some(found) = repo::sla::usable_policy(conn, &case.agency_id, &id)?
    {
        return Ok(Some(found));
    }
    Ok(repo::sla::policy_for(conn, &case.agency_id)?)
}

/// Around the clock: what a clock counts in if its calendar were missing (calendars are never
/// deleted, so only a broken database gets here).
static AROUND_THE_CLOCK: Hours = Hours::AroundTheClock;

/// The new (target, warning) seconds of each clock still counting, by clock name, from the
/// policy it started under.
fn targets_of(
    conn: &mut DbConnection,
    clocks: &[Live],
    priority: Priority,
) -> Result<HashMap<String, (i64, i64)>, ApiError> {
    let counting: Vec<&ClockRow> = clocks
        .iter()
        .map(|c| &c.row)
        .filter(|r| r.stopped_at.is_none())
        .collect();
    let mut ids: Vec<String> = counting.iter().map(|r| r.policy_id.clone()).collect();
    ids.sort();
    ids.dedup();
    let policies = repo::sla::policies_by_id(conn, &ids)?;
    let mut targets = HashMap::new();
    for row in counting {
        let Some(policy) = policies.iter().find(|p| p.id == row.policy_id) else {
            continue;
        };
        let parsed: Targets = serde_json::from_str(&policy.targets).map_err(ApiError::internal)?;
        let clock = Clock::from_code(&row.clock).unwrap_or(Clock::Resolution);
        let target_secs = parsed.minutes(priority, clock) * 60;
        let warn_secs = warning_secs(target_secs, policy.warning_percent);
        targets.insert(row.clock.clone(), (target_secs, warn_secs));
    }
    Ok(targets)
}

/// How each of the rows counts, by calendar id (`None`: around the clock).
fn calendars_of(
    conn: &mut DbConnection,
    rows: &[ClockRow],
    known: Option<CalendarRow>,
) -> Result<HashMap<Option<String>, Hours>, ApiError> {
    let mut ids: Vec<String> = rows.iter().filter_map(|r| r.calendar_id.clone()).collect();
    ids.sort();
    ids.dedup();
    let mut found = Vec::new();
    if let Some(known) = known {
        ids.retain(|id| *id != known.id);
        found.push(known);
    }
    found.extend(repo::sla::calendars_by_id(conn, &ids)?);
    let mut hours = HashMap::from([(None, Hours::AroundTheClock)]);
    for row in &found {
        hours.insert(Some(row.id.clone()), hours_of(Some(row)));
    }
    Ok(hours)
}

/// The SLA columns from the clocks; `done` when no clock can start any more.
fn columns(clocks: &[Live], done: bool) -> SlaColumns {
    let rows = || clocks.iter().map(|c| &c.row);
    if clocks.is_empty() {
        return SlaColumns::default();
    }
    let state = if rows().any(|r| r.breached_at.is_some()) {
        SlaState::Breached
    } else if done && rows().all(|r| r.stopped_at.is_some()) {
        SlaState::Met
    } else if rows().any(|r| r.stopped_at.is_none() && r.warned_at.is_some()) {
        SlaState::AtRisk
    } else {
        SlaState::OnTrack
    };
    let running = || rows().filter(|r| r.running_since.is_some());
    SlaColumns {
        sla_state: Some(state.as_str().to_owned()),
        sla_due_at: running()
            .filter(|r| r.breached_at.is_none())
            .filter_map(|r| r.due_at)
            .min(),
        sla_next_at: running()
            .flat_map(|r| {
                [
                    r.warn_at.filter(|_| r.warned_at.is_none()),
                    r.due_at.filter(|_| r.breached_at.is_none()),
                ]
            })
            .flatten()
            .min(),
    }
}

/// The warnings and breaches one write found crossed, each once: a rule-log entry, an audit
/// row by the rule and the notification of the side that owes the answer (the agency's staff,
/// the ticket's assignee or every platform staff member); and one audit row for the SLA state
/// if it changed. Every crossing is logged, and on a case heard by the webhooks, before anyone
/// is notified: a notification can run an agency's trigger that changes the case and syncs its
/// clocks again, and what that finds must come after this sync's rows and deliveries (tickets
/// have no triggers: each crossing is told in turn).
fn record(
    conn: &mut DbConnection,
    notifier: &Notifier,
    subject: Subject,
    crossings: &[Told],
    (before, after): (&SlaColumns, &SlaColumns),
) -> Result<(), ApiError> {
    // A ticket's assignee as committed (a message's write holds no lock before its update),
    // read once for all its crossings.
    let fresh = match subject {
        Subject::Ticket(ticket, _) => repo::tickets::find(conn, &TicketScope::All, &ticket.id)?,
        Subject::Case(..) => None,
    };
    let mut told = Vec::with_capacity(crossings.len());
    for (i, &(clock, crossing, at, target_secs, business_hours)) in crossings.iter().enumerate() {
        let (rule, trigger, event, word) = match crossing {
            Crossing::Warning => ("sla_warning", "at_risk", Event::SlaWarning, "at_risk"),
            Crossing::Breach => ("sla_breach", "overdue", Event::SlaBreached, "breached"),
        };
        let account = SlaAccount {
            clock,
            breached: crossing == Crossing::Breach,
            at,
            target_minutes: target_secs / 60,
            business_hours,
        };
        let (case_id, agency_id, ticket_id, change) = match subject {
            Subject::Case(case, _) => (
                Some(case.id.clone()),
                Some(case.agency_id.clone()),
                None,
                Change::case(&case.id, rule),
            ),
            Subject::Ticket(ticket, _) => (
                None,
                ticket.agency_id.clone(),
                Some(ticket.id.clone()),
                Change::outside_cases("ticket", &ticket.id, ticket.agency_id.as_deref(), rule),
            ),
        };
        let entry = RuleLogRow {
            id: repo::new_id(),
            rule: rule.into(),
            trigger_event: format!("{clock}_{trigger}"),
            action: "notify".into(),
            case_id,
            agency_id,
            outcome: "notified".into(),
            detail: Some(account.render(Locale::En)),
            created_at: db::now(),
            ticket_id,
        };
        let mut audit = vec![
            change
                .clone()
                .field(format!("sla.{clock}"), None, Some(word.into())),
        ];
        // The state's change goes with the last crossing, which left it so.
        if i + 1 == crossings.len() && before.sla_state != after.sla_state {
            audit.push(change.field(
                "sla_state",
                before.sla_state.clone(),
                after.sla_state.clone(),
            ));
        }
        repo::audit::append_by_rule(conn, &entry.id, audit)?;
        repo::rules::record(conn, &entry)?;
        told.push((event, account));
    }
    match subject {
        Subject::Case(case, status) => {
            notifier.notify_each(conn, case, &told, &[Audience::Agency], Some(status))
        }
        Subject::Ticket(ticket, status) => {
            let ticket = fresh.as_ref().unwrap_or(ticket);
            let to = &[TicketAudience::Platform];
            notifier.notify_ticket_each(conn, ticket, &told, to, Some(status))
        }
    }
}

/// A clock as `GET /v1/cases/{id}/sla` and `GET /v1/tickets/{id}/sla` show it, counted at
/// `now`.
pub struct ClockReading {
    pub row: ClockRow,
    pub state: ClockState,
    pub elapsed_secs: i64,
}

/// The clocks read at `now`.
pub fn read(
    conn: &mut DbConnection,
    holder: Holder,
    now: NaiveDateTime,
) -> Result<Vec<ClockReading>, ApiError> {
    let rows = repo::sla::clocks_of(conn, holder)?;
    let calendars = calendars_of(conn, &rows, None)?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let hours = calendars.get(&row.calendar_id).unwrap_or(&AROUND_THE_CLOCK);
            let live = Live { row, hours };
            let (elapsed_secs, state) = (live.elapsed(now), live.state());
            ClockReading {
                row: live.row,
                state,
                elapsed_secs,
            }
        })
        .collect())
}

/// One round of the SLA rule: each case and ticket whose warning or breach is due now (up to
/// 100 of each) is brought up to date in a write of its own, so one failure holds up none of
/// the others.
pub async fn settle_due(state: &crate::app::AppState) -> Result<Round, ApiError> {
    let (cases, tickets) = db::read(&state.pool, |conn| {
        Ok(repo::sla::due(conn, db::now(), 100)?)
    })
    .await?;
    let due = cases
        .into_iter()
        .map(Due::Case)
        .chain(tickets.into_iter().map(Due::Ticket));
    let mut round = Round::default();
    for due in due {
        let notifier = state.notifier.clone();
        let done = db::write(&state.pool, move |conn| {
            // As it stands under the lock `sync` would take: a move committed since the batch
            // was read is seen.
            match &due {
                Due::Case(id) => {
                    repo::sla::update_lock(conn, Holder::Case(id))?;
                    let scope = &repo::cases::CaseScope::All;
                    let Some(case) = repo::cases::find(conn, scope, id)? else {
                        return Ok(());
                    };
                    let case = Subject::case(&case);
                    sync(conn, &notifier, case, Starts::OnlyMore, Bump::Needed)
                }
                Due::Ticket(id) => {
                    repo::sla::update_lock(conn, Holder::Ticket(id))?;
                    let Some(ticket) = repo::tickets::find(conn, &TicketScope::All, id)? else {
                        return Ok(());
                    };
                    let ticket = Subject::ticket(&ticket);
                    sync(conn, &notifier, ticket, Starts::OnlyMore, Bump::Needed)
                }
            }
        })
        .await;
        match done {
            Ok(()) => round.done += 1,
            Err(e) => {
                round.failed += 1;
                log::error!("SLA rule: {e}");
            }
        }
    }
    Ok(round)
}

/// A case or a ticket the SLA rule visits, by id.
enum Due {
    Case(String),
    Ticket(String),
}
