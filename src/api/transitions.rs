//! Lifecycle moves (`POST /v1/cases/{id}/transitions`) and the workflow table as data
//! (`GET /v1/workflow`). Both read `crate::workflow`; nothing here restates its rules.

use actix_web::{HttpRequest, HttpResponse, get, post, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;
use validator::Validate;

use crate::api::case_access::{find_visible, lost_race, wrong_state};
use crate::api::cases::{CaseView, reload_card};
use crate::api::storyline::{self, EventKind};
use crate::api::{Asked, Asking, rfc3339_text, timestamp};
use crate::app::AppState;
use crate::auth::{AuthUser, Token};
use crate::db::{self, DbConnection};
use crate::domain::{CaseAction, CaseStatus, Locale, Role};
use crate::errors::{ApiError, FieldError};
use crate::events::{Audience, Event, Notifier};
use crate::http::extract::{IfMatch, ValidJson, etag};
use crate::i18n::{self, AcceptLanguage, SystemTitle};
use crate::repo;
use crate::repo::audit::{Actor, Change};
use crate::repo::cases::{CaseChanges, CaseRow};
use crate::sla;
use crate::workflow::{self, Effect, Input};

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"action": "suspend", "reason": "Waiting for the client's documents"}))]
pub struct TransitionRequest {
    /// The action; `auto_close` is the system's own and always refused (403).
    pub action: CaseAction,
    /// Required by `fail_payment`, `reject`, `suspend`, `dispute_completion`, `reopen`,
    /// `cancel`; recorded in the audit trail whenever sent.
    #[serde(default, deserialize_with = "crate::api::trimmed_opt")]
    #[validate(length(min = 1, max = 2000))]
    #[schema(min_length = 1, max_length = 2000)]
    pub reason: Option<String>,
    /// Required by `complete` (e.g. `solved`, `partially_solved`, `not_solvable`); refused by
    /// every other action.
    #[serde(default, deserialize_with = "crate::api::trimmed_opt")]
    #[validate(length(min = 1, max = 64))]
    #[schema(min_length = 1, max_length = 64)]
    pub resolution_type: Option<String>,
    /// Required by `complete`; refused by every other action.
    #[serde(default, deserialize_with = "crate::api::trimmed_opt")]
    #[validate(length(min = 1, max = 10000))]
    #[schema(min_length = 1, max_length = 10000)]
    pub resolution: Option<String>,
    /// The client's rating, from 1 to 5, with `confirm_completion` only (optional): the case's
    /// survey, shown on the card.
    #[serde(default, deserialize_with = "crate::api::whole_number_opt")]
    #[validate(range(min = 1, max = 5))]
    #[schema(minimum = 1, maximum = 5)]
    pub rating: Option<i64>,
    /// A comment to go with `rating`.
    #[serde(default, deserialize_with = "crate::api::trimmed_opt")]
    #[validate(length(min = 1, max = 2000))]
    #[schema(min_length = 1, max_length = 2000)]
    pub comment: Option<String>,
}

impl TransitionRequest {
    /// The action alone, as the server's own rules take it.
    pub fn bare(action: CaseAction) -> TransitionRequest {
        TransitionRequest {
            action,
            reason: None,
            resolution_type: None,
            resolution: None,
            rating: None,
            comment: None,
        }
    }

    fn input(&self, input: Input) -> Option<&str> {
        match input {
            Input::Reason => self.reason.as_deref(),
            Input::ResolutionType => self.resolution_type.as_deref(),
            Input::Resolution => self.resolution.as_deref(),
        }
    }

    /// Required inputs that are missing, and resolution inputs the action does not take.
    fn input_errors(&self, rule: &workflow::Rule) -> Vec<FieldError> {
        let mut errors = workflow::input_errors(rule.action.as_str(), rule.requires, |input| {
            self.input(input).is_some()
        });
        for (name, sent) in [
            ("rating", self.rating.is_some()),
            ("comment", self.comment.is_some()),
        ] {
            if sent && !rule.has(Effect::RecordSurvey) {
                errors.push(FieldError::new(
                    format!("/{name}"),
                    "not_allowed",
                    format!("`{}` takes no `{name}`", rule.action),
                ));
            }
        }
        if self.comment.is_some() && self.rating.is_none() && rule.has(Effect::RecordSurvey) {
            errors.push(FieldError::new(
                "/rating",
                "required",
                "a `comment` goes with a `rating`",
            ));
        }
        errors
    }
}

/// Where to go next, when an action leads somewhere (a disputed completion → messages, tickets;
/// a completion confirmed without a rating → the survey).
#[derive(Debug, Serialize, ToSchema)]
pub struct NextStep {
    /// `messages`, `tickets` or `survey`.
    #[schema(pattern = "^(messages|tickets|survey)$")]
    pub rel: &'static str,
    pub href: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TransitionOutcome {
    /// The case card after the move.
    pub case: CaseView,
    /// Empty unless the action invites a follow-up.
    pub next_steps: Vec<NextStep>,
}

/// Move a case through its lifecycle
///
/// Applies one action of the workflow table (below, and as data at `GET /v1/workflow`). The
/// status check and the update are one conditional statement: of two racing transitions exactly
/// one succeeds and the other gets 409 `wrong_state` with the actions now allowed. Order of
/// checks: 404 (case not visible), 403 (the caller's role may never take this action; always for
/// `auto_close`), 422 (missing `reason`/`resolution_type`/`resolution`), 412 (`If-Match` stale),
/// 409 (not allowed in the current status), 422 `required_data_missing` (for `accept`, listing
/// the empty required fields). Writes audit rows in the same transaction. Roles: per action.
#[utoipa::path(
    tag = "cases",
    operation_id = "transition_case",
    params(
        ("id" = Uuid, Path, description = "Case id"),
        IfMatch,
        AcceptLanguage,
    ),
    request_body = TransitionRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Moved; the new card", body = TransitionOutcome, headers(("ETag" = String, description = "The new version"))),
        (status = 403, description = "The caller's role may never take this action"),
        (status = 404, description = "No such case, or not one the caller can see"),
        (status = 409, description = "Not allowed in the current status, or a completion disputed already (`wrong_state`, with `allowed_actions`)"),
        (status = 412, description = "`If-Match` is stale"),
        (status = 422, description = "A required input is missing, or required data is empty (`required_data_missing`)"),
    )
)]
#[post("/v1/cases/{id}/transitions")]
pub async fn transition_case(
    req: HttpRequest,
    if_match: IfMatch,
    state: web::Data<AppState>,
    token: Token,
    id: web::Path<Uuid>,
    body: ValidJson<TransitionRequest>,
) -> Result<HttpResponse, ApiError> {
    let input = body.0;
    let rule = workflow::rule(input.action);
    let asking = Asking::new(token, &req);
    let id = id.into_inner().to_string();
    let notifier = state.notifier.clone();
    let capacity = state.settings.operator_capacity;
    let asks_for_rating = rule.has(Effect::AskForRating) && input.rating.is_none();
    let view = db::write(&state.pool, move |conn| {
        let Asked { viewer, actor, .. } = asking.resolve(conn)?;
        let current = find_visible(conn, &viewer, &id)?;
        if !rule.allows_role(viewer.role) {
            return Err(ApiError::Forbidden(format!(
                "Your role may never take the action `{}`.",
                rule.action
            )));
        }
        let errors = input.input_errors(rule);
        if !errors.is_empty() {
            return Err(ApiError::validation(errors));
        }
        if_match.check(current.version)?;
        let status = current.status();
        if !rule.from.contains(&status) {
            return Err(wrong_state(
                &viewer,
                &current,
                format!(
                    "`{}` is not allowed while the case is `{status}`.",
                    rule.action
                ),
            ));
        }
        if rule.has(Effect::FlagDisputed) && current.disputed {
            return Err(wrong_state(
                &viewer,
                &current,
                "The completion is disputed already: write to the agency (messages) or to the \
                 platform (tickets)."
                    .into(),
            ));
        }
        if rule.has(Effect::RequireRequiredData) {
            let missing = repo::cases::missing_required_fields(conn, &id)?;
            if !missing.is_empty() {
                return Err(ApiError::Unprocessable {
                    code: "required_data_missing",
                    detail: format!(
                        "{} required field(s) are still empty: {}.",
                        missing.len(),
                        missing.join(", ")
                    ),
                    errors: missing
                        .iter()
                        .map(|key| {
                            FieldError::new(
                                format!("/required_data/{key}"),
                                "required",
                                "this required field has no value",
                            )
                        })
                        .collect(),
                });
            }
        }
        if rule.adds_work() {
            // Before the case's row, as the automatic assignment takes it: its count of an
            // operator's room never misses this write, and neither waits for the other's rows.
            repo::presence::lock_queue(conn, &current.agency_id)?;
        }
        if !apply(conn, &notifier, Mover::User(&actor), &current, rule, &input)? {
            return Err(lost_race(conn, &viewer, &id, rule.from, &if_match));
        }
        if rule.to == CaseStatus::InApproval {
            // Paid: the agency's queue, this case at its end, goes to who has room.
            let agency = &current.agency_id;
            crate::rules::serve_queue(conn, &notifier, agency, capacity, "payment_confirmed")?;
        }
        reload_card(conn, &viewer, &id)
    })
    .await?;
    let mut next_steps = Vec::new();
    if rule.action == CaseAction::DisputeCompletion {
        next_steps.push(NextStep {
            rel: "messages",
            href: format!("/v1/cases/{}/messages", view.id),
        });
        next_steps.push(NextStep {
            rel: "tickets",
            href: "/v1/tickets".into(),
        });
    }
    if asks_for_rating {
        next_steps.push(NextStep {
            rel: "survey",
            href: format!("/v1/cases/{}/survey", view.id),
        });
    }
    Ok(HttpResponse::Ok()
        .insert_header(("ETag", etag(view.version)))
        .json(TransitionOutcome {
            case: view,
            next_steps,
        }))
}

/// Who moves a case: a user, or one of the server's own rules (its rule-log entry's id goes
/// into the audit rows' `request_id`).
#[derive(Clone, Copy)]
pub enum Mover<'a> {
    User(&'a Actor),
    Rule { log_id: &'a str },
}

/// Moves `current` by `rule` once the caller's right to it and the inputs are checked: the
/// conditional update, the effects, the audit rows and the notifications, in the caller's
/// transaction. `false`: the case changed since `current` was read (nothing was written).
pub fn apply(
    conn: &mut DbConnection,
    notifier: &Notifier,
    mover: Mover<'_>,
    current: &CaseRow,
    rule: &workflow::Rule,
    input: &TransitionRequest,
) -> Result<bool, ApiError> {
    let id = current.id.as_str();
    let resolution_type = input.input(Input::ResolutionType).map(str::to_owned);
    let resolution = input.input(Input::Resolution).map(str::to_owned);
    let mut changes = CaseChanges {
        status: Some(rule.to.as_str().to_owned()),
        payment_state: rule.payment_state().map(|p| p.as_str().to_owned()),
        ..CaseChanges::default()
    };
    if rule.has(Effect::RecordResolution) {
        changes.resolution_type = Some(resolution_type.clone());
        changes.resolution = Some(resolution.clone());
    }
    if rule.has(Effect::ClearResolution) {
        changes.resolution_type = Some(None);
        changes.resolution = Some(None);
    }
    if rule.has(Effect::FlagDisputed) {
        changes.disputed = Some(true);
    }
    if rule.has(Effect::ClearDisputed) {
        changes.disputed = Some(false);
    }
    // Reaching a terminal status from an open one closes the case: its client has one
    // open case fewer (`client_open_cases`).
    let closes =
        workflow::state_of(rule.to).terminal && !workflow::state_of(current.status()).terminal;
    if closes {
        changes.closed_at = Some(Some(db::now()));
    }
    if !repo::cases::update(conn, id, current.version, rule.from, &changes)? {
        return Ok(false);
    }
    if closes {
        repo::cases::count_closed(conn, current)?;
    }
    if rule.has(Effect::AwaitConfirmation) {
        // The case starts waiting for its client: the auto-close rule has a new deadline.
        crate::live::will_wake_rules();
    }
    let flatten = |v: &Option<Option<String>>| v.clone().flatten();
    let change = Change::on_case(current, "case", id, rule.action.as_str());
    let mut audit = change.fields(vec![
        (
            "status",
            Some(current.status.clone()),
            changes.status.clone(),
        ),
        (
            "payment_state",
            Some(current.payment_state.clone()),
            changes.payment_state.clone(),
        ),
        (
            "disputed",
            Some(current.disputed.to_string()),
            changes.disputed.map(|d| d.to_string()),
        ),
    ]);
    for (field, old, new) in [
        (
            "resolution_type",
            &current.resolution_type,
            &changes.resolution_type,
        ),
        ("resolution", &current.resolution, &changes.resolution),
    ] {
        if new.is_some() && *old != flatten(new) {
            audit.push(change.clone().field(field, old.clone(), flatten(new)));
        }
    }
    if let Some(reason) = input.input(Input::Reason) {
        audit.push(
            change
                .clone()
                .field("reason", None, Some(reason.to_owned())),
        );
    }
    if audit.is_empty() {
        // Every move changes a field (a dispute, its flag); were one not to, the action itself
        // is still on record.
        audit.push(change);
    }
    if rule.has(Effect::CancelOpenRequests) {
        for request in repo::requests::cancel_open(conn, id)? {
            audit.push(
                Change::on_case(current, "request", &request, "cancel").field(
                    "status",
                    Some("open".into()),
                    Some("cancelled".into()),
                ),
            );
        }
    }
    if rule.has(Effect::EndVideoCalls) {
        let now = db::now();
        let ended = Some(rfc3339_text(&timestamp(now)));
        for call in repo::video_calls::end_working(conn, id, now)? {
            audit.push(Change::on_case(current, "video_call", &call, "end").field(
                "ended_at",
                None,
                ended.clone(),
            ));
        }
    }
    match mover {
        Mover::User(actor) => repo::audit::append(conn, actor, audit)?,
        Mover::Rule { log_id } => repo::audit::append_by_rule(conn, log_id, audit)?,
    }
    if current.status() == CaseStatus::Completed {
        // Whatever the action, the client has answered or the case moved on: nothing waits.
        repo::rules::stop_awaiting(conn, id)?;
    }
    if rule.has(Effect::AwaitConfirmation) {
        repo::rules::await_confirmation(conn, id, db::now())?;
    }
    // Storyline entries and surveys have an author: no rule the system fires has these effects.
    let user = match mover {
        Mover::User(actor) => Some(actor),
        Mover::Rule { .. } => None,
    };
    if let Some(actor) = user
        && rule.has(Effect::SnapshotRequiredData)
    {
        let data = crate::api::required_data::snapshot(conn, current)?;
        storyline::record(
            conn,
            actor,
            id,
            EventKind::System,
            SystemTitle::RequiredDataSubmitted,
            Some(data),
        )?;
    }
    if let Some(actor) = user
        && rule.has(Effect::StorylineEntry)
        && let Some(reason) = input.input(Input::Reason)
    {
        storyline::record(
            conn,
            actor,
            id,
            EventKind::Status,
            SystemTitle::Moved(rule.action),
            Some(reason.to_owned()),
        )?;
    }
    if let Some(actor) = user
        && rule.has(Effect::RecordSurvey)
        && let Some(rating) = input.rating
    {
        crate::api::surveys::record(conn, actor, current, rating, input.comment.clone())?;
    }
    // The SLA clocks follow the case's new status.
    let starts = match rule.has(Effect::StartSlaClocks) {
        true => sla::Starts::Clocks,
        false => sla::Starts::OnlyMore,
    };
    let case = sla::Subject::Case(current, rule.to);
    sla::sync(conn, notifier, case, starts, sla::Bump::Done)?;
    // The agents hear of the moves into or out of the statuses they see the case in.
    let mut audience = vec![Audience::Client, Audience::Agency, Audience::Agents];
    if rule.has(Effect::NotifyPlatform) {
        audience.push(Audience::Platform);
    }
    let actor_id = user.map(|actor| actor.user_id.as_str());
    // The move's reason, else (a completion, which the client is asked to confirm) its
    // resolution, as a ticket's move tells.
    let said = input
        .input(Input::Reason)
        .or(input.input(Input::Resolution));
    notifier.notify(
        conn,
        current,
        Event::StatusChanged,
        &audience,
        actor_id,
        said,
        Some(rule.to),
    )?;
    if rule.has(Effect::AskForRating) && input.rating.is_none() {
        notifier.notify(
            conn,
            current,
            Event::SurveyRequested,
            &[Audience::Client],
            actor_id,
            None,
            Some(rule.to),
        )?;
    }
    Ok(true)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StateView {
    pub status: CaseStatus,
    pub label: &'static str,
    /// No action leads out; the case no longer counts as open.
    pub terminal: bool,
    /// Assigned agents see the case only in these states.
    pub agent_visible: bool,
    /// Agents may be assigned (`PUT /v1/cases/{id}/agents`).
    pub agents_assignable: bool,
    /// The case's agents write: storyline drafts, internal notes, files (409 otherwise).
    pub agents_write: bool,
    /// The client may edit title and description.
    pub client_edits: bool,
    /// Files may be attached (`POST /v1/cases/{id}/attachments`).
    pub accepts_files: bool,
    /// The storyline takes writes (it is frozen otherwise).
    pub storyline_open: bool,
    /// Requests to the client may be opened and answered.
    pub requests_open: bool,
    /// Video call rooms may be opened; leaving these states ends their links for good (410).
    pub video_calls_active: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ActionView {
    pub action: CaseAction,
    pub label: &'static str,
    pub from: Vec<CaseStatus>,
    pub to: CaseStatus,
    /// Who may ask for it; empty when only the system fires it.
    pub roles: Vec<Role>,
    pub system_only: bool,
    pub requires: Vec<Input>,
    pub effects: Vec<Effect>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WorkflowView {
    pub states: Vec<StateView>,
    pub actions: Vec<ActionView>,
    /// The support ticket's lifecycle.
    pub tickets: crate::api::tickets::TicketWorkflowView,
}

/// The case workflow as data
///
/// Every state and every action (from, to, roles, required inputs, effects) with labels in the
/// language chosen by `Accept-Language`, so a frontend renders buttons without hard-coding the
/// rules; the support ticket's lifecycle is under `tickets`. Roles: any user.
#[utoipa::path(
    tag = "cases",
    operation_id = "get_workflow",
    params(AcceptLanguage),
    security(("bearer" = [])),
    responses((status = 200, description = "The workflow", body = WorkflowView,
        headers(("Vary" = String, description = "`accept-language`: the labels follow it"))))
)]
#[get("/v1/workflow")]
pub async fn get_workflow(req: HttpRequest, caller: AuthUser) -> HttpResponse {
    let locale = i18n::negotiate(&req, caller.locale);
    i18n::varies_by_language(HttpResponse::Ok().json(WorkflowView::new(locale)))
}

impl WorkflowView {
    /// The workflow tables with their labels in `locale` (also the spec's example).
    pub fn new(locale: Locale) -> WorkflowView {
        WorkflowView {
            states: workflow::STATES
                .iter()
                .map(|s| StateView {
                    status: s.status,
                    label: i18n::status_label(s.status, locale),
                    terminal: s.terminal,
                    agent_visible: s.agent_visible,
                    agents_assignable: s.agents_assignable,
                    agents_write: s.agents_write,
                    client_edits: s.client_edits,
                    accepts_files: s.accepts_files,
                    storyline_open: s.storyline_open,
                    requests_open: s.requests_open,
                    video_calls_active: s.video_calls_active,
                })
                .collect(),
            actions: workflow::RULES
                .iter()
                .map(|r| ActionView {
                    action: r.action,
                    label: i18n::action_label(r.action, locale),
                    from: r.from.to_vec(),
                    to: r.to,
                    roles: r.roles.to_vec(),
                    system_only: r.roles.is_empty(),
                    requires: r.requires.to_vec(),
                    effects: r.effects.to_vec(),
                })
                .collect(),
            tickets: crate::api::tickets::TicketWorkflowView::new(locale),
        }
    }
}
