//! Agencies' own triggers (DESIGN.md "Audit log and business-rule log"): on an event on one of
//! the agency's cases, each active trigger for that event whose conditions the case meets takes
//! its actions (notify, set the priority, assign, add a tag, send to a webhook), in the event's
//! own transaction, and the rule log records it. What a trigger does fires no trigger: no
//! chains and no loops.

use std::cell::Cell;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::db::{self, DbConnection};
use crate::domain::{self, CaseStatus, PaymentMethod, Priority, Role, code_enum};
use crate::errors::{ApiError, FieldError};
use crate::events::{Event, Notifier};
use crate::repo;
use crate::repo::audit::Change;
use crate::repo::cases::{CaseChanges, CaseRow, CaseScope};
use crate::repo::rules::RuleLogRow;
use crate::repo::triggers::TriggerRow;
use crate::repo::webhooks::Owner;
use crate::webhooks::What;

/// The rule log's name for what triggers do.
pub const RULE: &str = "trigger";

code_enum! {
    /// What a condition reads of the case.
    ConditionField {
        Status = "status",
        Priority = "priority",
        PaymentMethod = "payment_method",
        ServiceId = "service_id",
        AssigneeId = "assignee_id",
        /// The case's tags (`in`: it has one of `values`; `not_in`: none of them).
        Tags = "tags",
    }
}

code_enum! {
    /// How a condition compares.
    ConditionOp {
        /// One of `values`.
        In = "in",
        /// None of `values`.
        NotIn = "not_in",
        /// Unset (`assignee_id`: nobody; `tags`: none); no `values`.
        Empty = "empty",
        /// Set; no `values`.
        NotEmpty = "not_empty",
    }
}

/// A test on the case as the event left it (with what earlier triggers changed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"field": "priority", "op": "in", "values": ["high", "urgent"]}))]
pub struct Condition {
    pub field: ConditionField,
    pub op: ConditionOp,
    /// For `in` and `not_in`, 1 to 20: statuses, priorities, payment methods, the agency's
    /// service ids, its operators' ids, or tags, as `field` says.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(max_items = 20)]
    pub values: Vec<String>,
}

/// What a trigger does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// The event's notification also goes to this member of the agency's staff.
    Notify {
        #[schema(format = "uuid")]
        user_id: String,
    },
    /// The case gets this priority (its SLA targets follow).
    SetPriority { priority: Priority },
    /// This operator of the agency becomes responsible for the case, and is notified.
    Assign {
        #[schema(format = "uuid")]
        user_id: String,
    },
    /// The case gets this tag: 1 to 40 letters that are not upper-case, digits, `-` or `_`.
    AddTag {
        #[schema(value_type = crate::api::cases::Tag)]
        tag: String,
    },
    /// The event is posted to this webhook of the agency (subscribed to it or not), with the
    /// trigger in the payload.
    SendWebhook {
        #[schema(format = "uuid")]
        webhook_id: String,
    },
}

impl Action {
    fn kind(&self) -> &'static str {
        match self {
            Action::Notify { .. } => "notify",
            Action::SetPriority { .. } => "set_priority",
            Action::Assign { .. } => "assign",
            Action::AddTag { .. } => "add_tag",
            Action::SendWebhook { .. } => "send_webhook",
        }
    }
}

/// Whether a trigger may run on `event`: an event on a case, but `mentioned` (told only to the
/// people a message names).
pub fn runs_on(event: Event) -> bool {
    !matches!(event, Event::TicketOpened | Event::Mentioned)
}

/// What is wrong with a trigger of `agency`: its event, each condition and each action
/// against the agency's services, staff and webhooks. Empty when nothing is.
pub fn problems(
    conn: &mut DbConnection,
    agency: &str,
    event: Event,
    conditions: &[Condition],
    actions: &[Action],
) -> Result<Vec<FieldError>, ApiError> {
    let mut errors = Vec::new();
    if !runs_on(event) {
        errors.push(match event {
            Event::Mentioned => FieldError::new(
                "/event",
                "not_a_trigger_event",
                "`mentioned` tells only the people a message names: triggers run on `message_received`",
            ),
            _ => FieldError::new(
                "/event",
                "not_a_case_event",
                format!("`{event}` is not an event on a case"),
            ),
        });
    }
    let services: Vec<String> = conditions
        .iter()
        .filter(|c| c.field == ConditionField::ServiceId)
        .flat_map(|c| c.values.clone())
        .collect();
    let services = repo::triggers::services_of(conn, agency, &services)?;
    let mut people: Vec<String> = conditions
        .iter()
        .filter(|c| c.field == ConditionField::AssigneeId)
        .flat_map(|c| c.values.clone())
        .collect();
    people.extend(actions.iter().filter_map(|a| match a {
        Action::Notify { user_id } | Action::Assign { user_id } => Some(user_id.clone()),
        _ => None,
    }));
    let staff = repo::cases::staff_among(conn, agency, Role::Agency, &people)?;
    let is_staff = |id: &String| staff.iter().any(|p| &p.id == id);
    for (i, condition) in conditions.iter().enumerate() {
        let at = |suffix: &str| format!("/conditions/{i}{suffix}");
        let wants_values = matches!(condition.op, ConditionOp::In | ConditionOp::NotIn);
        let can_be_empty = matches!(
            condition.field,
            ConditionField::AssigneeId | ConditionField::Tags
        );
        match (wants_values, condition.values.len()) {
            (true, 0) => errors.push(FieldError::new(at("/values"), "required", "1 to 20 values")),
            (true, n) if n > 20 => {
                errors.push(FieldError::new(at("/values"), "too_long", "1 to 20 values"))
            }
            (false, 0) if can_be_empty => {}
            (false, 0) => errors.push(FieldError::new(
                at("/op"),
                "invalid_op",
                "only `assignee_id` and `tags` can be `empty` or `not_empty`",
            )),
            (false, _) => errors.push(FieldError::new(
                at("/values"),
                "not_allowed",
                "`empty` and `not_empty` take no values",
            )),
            _ => {}
        }
        for (j, value) in condition.values.iter().enumerate() {
            let problem = match condition.field {
                ConditionField::Status => CaseStatus::from_code(value)
                    .is_none()
                    .then_some("not a case status"),
                ConditionField::Priority => Priority::from_code(value)
                    .is_none()
                    .then_some("not a priority"),
                ConditionField::PaymentMethod => PaymentMethod::from_code(value)
                    .is_none()
                    .then_some("not a payment method"),
                ConditionField::ServiceId => {
                    (!services.contains(value)).then_some("not a service of your agency")
                }
                ConditionField::AssigneeId => {
                    (!is_staff(value)).then_some("not an active operator of your agency")
                }
                ConditionField::Tags => domain::tag_problem(value),
            };
            if let Some(problem) = problem {
                errors.push(FieldError::new(
                    at(&format!("/values/{j}")),
                    "invalid_value",
                    problem,
                ));
            }
        }
    }
    for (i, action) in actions.iter().enumerate() {
        let at = |member: &str| format!("/actions/{i}/{member}");
        match action {
            Action::Notify { user_id } | Action::Assign { user_id } if !is_staff(user_id) => {
                errors.push(FieldError::new(
                    at("user_id"),
                    "invalid_value",
                    "not an active operator of your agency",
                ));
            }
            Action::AddTag { tag } => {
                if let Some(problem) = domain::tag_problem(tag) {
                    errors.push(FieldError::new(at("tag"), "invalid_value", problem));
                }
            }
            Action::SendWebhook { webhook_id } => {
                let owner = Owner::Agency(agency.to_owned());
                if repo::webhooks::find(conn, &owner, webhook_id)?.is_none() {
                    errors.push(FieldError::new(
                        at("webhook_id"),
                        "invalid_value",
                        "not a webhook of your agency",
                    ));
                }
            }
            _ => {}
        }
    }
    Ok(errors)
}

thread_local! {
    /// Set while a trigger's actions run on this thread: the events they cause fire none.
    static FIRING: Cell<bool> = const { Cell::new(false) };
}

/// Clears [`FIRING`] however the actions end, a panic included.
struct Firing;

impl Firing {
    fn start() -> Firing {
        FIRING.set(true);
        Firing
    }
}

impl Drop for Firing {
    fn drop(&mut self) {
        FIRING.set(false);
    }
}

/// What the triggers did that the event's notification must follow.
#[derive(Default)]
pub struct Fired {
    /// The users the `notify` actions add to it.
    pub notify: Vec<String>,
    /// The case as the triggers left it (its assignee hears of the event); `None` when none ran.
    pub case: Option<CaseRow>,
}

/// Runs the agency's triggers for `event` on `case` (inside the event's write). Nothing when a
/// trigger's own action caused the event.
pub fn fire(conn: &mut DbConnection, notifier: &Notifier, what: &What) -> Result<Fired, ApiError> {
    if FIRING.get() {
        return Ok(Fired::default());
    }
    let (case, event) = (what.case, what.event);
    let triggers = repo::triggers::active_for(conn, &case.agency_id, event.as_str())?;
    // A deactivated agency's rules act for it no more, as its staff do not.
    if triggers.is_empty() || !repo::agencies::is_active(conn, &case.agency_id)? {
        return Ok(Fired::default());
    }
    let _firing = Firing::start();
    // As the event's write left it: the row the event was told of may predate that write.
    let Some(mut case) = repo::cases::find(conn, &CaseScope::All, &case.id)? else {
        return Ok(Fired::default());
    };
    let mut notify = Vec::new();
    for trigger in triggers {
        let conditions: Vec<Condition> =
            serde_json::from_str(&trigger.conditions).map_err(ApiError::internal)?;
        if !conditions.iter().all(|c| holds(c, &case)) {
            continue;
        }
        let actions: Vec<Action> =
            serde_json::from_str(&trigger.actions).map_err(ApiError::internal)?;
        let entry_id = repo::new_id();
        let mut changes = Vec::new();
        let mut done = Vec::new();
        let mut applied = false;
        for action in &actions {
            let outcome = act(conn, notifier, &mut case, what, &trigger, action, &entry_id)?;
            done.push(format!("{}: {}", action.kind(), outcome.account()));
            applied |= outcome.did_something();
            match outcome {
                Outcome::Changed(change) => changes.push(change),
                Outcome::Notify(user) => notify.push(user),
                Outcome::Sent | Outcome::Unchanged | Outcome::Skipped(_) => {}
            }
        }
        repo::rules::record(
            conn,
            &RuleLogRow {
                id: entry_id.clone(),
                rule: RULE.into(),
                trigger_event: event.as_str().into(),
                action: actions
                    .iter()
                    .map(Action::kind)
                    .collect::<Vec<_>>()
                    .join(","),
                case_id: Some(case.id.clone()),
                agency_id: Some(case.agency_id.clone()),
                outcome: if applied { "applied" } else { "nothing_to_do" }.into(),
                detail: Some(format!(
                    "Trigger «{}» ({}): {}.",
                    trigger.name,
                    trigger.id,
                    done.join("; ")
                )),
                created_at: db::now(),
                ticket_id: None,
            },
        )?;
        if !changes.is_empty() {
            repo::audit::append_by_rule(conn, &entry_id, changes)?;
        }
    }
    Ok(Fired {
        notify,
        case: Some(case),
    })
}

/// Whether the case meets the condition.
fn holds(condition: &Condition, case: &CaseRow) -> bool {
    let tags;
    let set: Vec<&str> = match condition.field {
        ConditionField::Status => vec![case.status.as_str()],
        ConditionField::Priority => vec![case.priority.as_str()],
        ConditionField::PaymentMethod => vec![case.payment_method.as_str()],
        ConditionField::ServiceId => vec![case.service_id.as_str()],
        ConditionField::AssigneeId => case.assignee_id.as_deref().into_iter().collect(),
        ConditionField::Tags => {
            tags = case.tags();
            tags.iter().map(String::as_str).collect()
        }
    };
    let any = set.iter().any(|v| condition.values.iter().any(|w| w == v));
    match condition.op {
        ConditionOp::In => any,
        ConditionOp::NotIn => !any,
        ConditionOp::Empty => set.is_empty(),
        ConditionOp::NotEmpty => !set.is_empty(),
    }
}

/// What one action did.
enum Outcome {
    /// The case changed, as the audit row says.
    Changed(Change),
    /// This user is added to the event's notification.
    Notify(String),
    /// A delivery was written.
    Sent,
    /// The case was already so.
    Unchanged,
    /// Not done, for this reason.
    Skipped(&'static str),
}

impl Outcome {
    fn did_something(&self) -> bool {
        matches!(
            self,
            Outcome::Changed(_) | Outcome::Notify(_) | Outcome::Sent
        )
    }

    fn account(&self) -> &'static str {
        match self {
            Outcome::Changed(_) | Outcome::Notify(_) | Outcome::Sent => "done",
            Outcome::Unchanged => "already so",
            Outcome::Skipped(why) => why,
        }
    }
}

/// Takes one action on `case`, which follows what it changed.
#[allow(clippy::too_many_arguments)]
fn act(
    conn: &mut DbConnection,
    notifier: &Notifier,
    case: &mut CaseRow,
    what: &What,
    trigger: &TriggerRow,
    action: &Action,
    entry_id: &str,
) -> Result<Outcome, ApiError> {
    let change = Change::case(&case.id, RULE);
    match action {
        Action::Notify { user_id } => Ok(Outcome::Notify(user_id.clone())),
        Action::SetPriority { priority } => {
            if case.priority() == *priority {
                return Ok(Outcome::Unchanged);
            }
            let changes = CaseChanges {
                priority: Some(priority.as_str().to_owned()),
                ..CaseChanges::default()
            };
            if !update(conn, case, &changes)? {
                return Ok(Outcome::Skipped("the case moved on meanwhile"));
            }
            // The clocks follow from the case as it was, to the new priority's targets.
            let subject = crate::sla::Subject::case(case);
            crate::sla::reprioritized(conn, notifier, subject, *priority)?;
            let old = std::mem::replace(&mut case.priority, priority.as_str().to_owned());
            Ok(Outcome::Changed(change.field(
                "priority",
                Some(old),
                Some(priority.as_str().to_owned()),
            )))
        }
        Action::Assign { user_id } => {
            if case.assignee_id.as_ref() == Some(user_id) {
                return Ok(Outcome::Unchanged);
            }
            if crate::workflow::state_of(case.status()).terminal {
                return Ok(Outcome::Skipped("the case is closed"));
            }
            let staff = std::slice::from_ref(user_id);
            if repo::cases::staff_among(conn, &case.agency_id, Role::Agency, staff)?.is_empty() {
                return Ok(Outcome::Skipped("the operator can no longer log in"));
            }
            let changes = CaseChanges {
                assignee_id: Some(Some(user_id.clone())),
                delegated_by: Some(None),
                ..CaseChanges::default()
            };
            if !update(conn, case, &changes)? {
                return Ok(Outcome::Skipped("the case moved on meanwhile"));
            }
            let old = case.assignee_id.replace(user_id.clone());
            notifier.notify_users(
                conn,
                case,
                Event::Assigned,
                &[],
                std::slice::from_ref(user_id),
                None,
                None,
                None,
            )?;
            Ok(Outcome::Changed(change.field(
                "assignee_id",
                old,
                Some(user_id.clone()),
            )))
        }
        Action::AddTag { tag } => {
            let mut tags = case.tags();
            if tags.contains(tag) {
                return Ok(Outcome::Unchanged);
            }
            if tags.len() >= domain::TAGS_MAX {
                return Ok(Outcome::Skipped("the case has as many tags as it may"));
            }
            let before = tags.clone();
            tags.push(tag.clone());
            let stored = serde_json::to_string(&tags).map_err(ApiError::internal)?;
            let changes = CaseChanges {
                tags: Some(stored.clone()),
                ..CaseChanges::default()
            };
            if !update(conn, case, &changes)? {
                return Ok(Outcome::Skipped("the case moved on meanwhile"));
            }
            repo::cases::set_tags(conn, case, &before, &tags)?;
            let tags = stored;
            let old = std::mem::replace(&mut case.tags, tags.clone());
            Ok(Outcome::Changed(change.field(
                "tags",
                Some(old),
                Some(tags),
            )))
        }
        Action::SendWebhook { webhook_id } => {
            let owner = Owner::Agency(case.agency_id.clone());
            match repo::webhooks::find(conn, &owner, webhook_id)? {
                None => Ok(Outcome::Skipped("the webhook is gone")),
                Some(hook) if !hook.active => Ok(Outcome::Skipped("the webhook is paused")),
                Some(hook) => {
                    let by = crate::webhooks::ByTrigger {
                        id: &trigger.id,
                        name: &trigger.name,
                        rule_log_id: entry_id,
                    };
                    let what = What {
                        case: &*case,
                        ..*what
                    };
                    crate::webhooks::send(conn, &hook, &what, by)?;
                    Ok(Outcome::Sent)
                }
            }
        }
    }
}

/// Applies `changes` to the case while it is as `case` says; moves `case`'s version on.
fn update(
    conn: &mut DbConnection,
    case: &mut CaseRow,
    changes: &CaseChanges,
) -> Result<bool, ApiError> {
    let status = [case.status()];
    if !repo::cases::update(conn, &case.id, case.version, &status, changes)? {
        return Ok(false);
    }
    case.version += 1;
    Ok(true)
}
