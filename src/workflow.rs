//! The case lifecycle as data: DESIGN.md's state and action tables live here and nowhere else.
//! Enforcement (`api::transitions::apply`), each case's `allowed_actions`, `GET /v1/workflow`
//! and the transitions endpoint's description in the spec are all read from [`RULES`] and
//! [`STATES`].

use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::{CaseAction, CaseStatus, PaymentState, Role, code_enum};

code_enum! {
    /// An input a transition requires in its body.
    Input {
        Reason = "reason",
        ResolutionType = "resolution_type",
        Resolution = "resolution",
    }
}

code_enum! {
    /// What a transition changes on the case besides its status.
    Effect {
        /// The payment is recorded as received.
        MarkPaid = "mark_paid",
        /// The payment is recorded as failed or returned.
        MarkPaymentFailed = "mark_payment_failed",
        /// The client will pay again: the payment is pending.
        MarkPaymentPending = "mark_payment_pending",
        /// Refused while a required required-data field is empty (422 lists them).
        RequireRequiredData = "require_required_data",
        /// `resolution_type` and `resolution` are stored on the case.
        RecordResolution = "record_resolution",
        /// The resolution is cleared (the case is worked again).
        ClearResolution = "clear_resolution",
        /// The case is flagged `disputed`.
        FlagDisputed = "flag_disputed",
        /// The `disputed` flag is cleared.
        ClearDisputed = "clear_disputed",
        /// A published storyline event records the reason.
        StorylineEntry = "storyline_entry",
        /// A storyline event records the submitted required data.
        SnapshotRequiredData = "snapshot_required_data",
        /// Platform staff are notified too (besides the client and the agency, as on every move).
        NotifyPlatform = "notify_platform",
        /// Requests to the client still open are cancelled: nobody could answer them any more.
        CancelOpenRequests = "cancel_open_requests",
        /// The case's video-call links stop working for good (410): the case leaves the statuses
        /// with calls. A reopened case opens new rooms.
        EndVideoCalls = "end_video_calls",
        /// An optional `rating` (1 to 5) and `comment` are kept as the case's survey.
        RecordSurvey = "record_survey",
        /// The case waits for its client's answer: without a confirmation, a dispute or a
        /// reopening within `auto_close_after` (default 3 days), the system closes it
        /// (`auto_close`).
        AwaitConfirmation = "await_confirmation",
        /// Unless a rating came with the action, the client is asked to rate the case
        /// (`POST /v1/cases/{id}/survey`): a notification when the system closed it, a
        /// `next_steps` link in the answer when the client did.
        AskForRating = "ask_for_rating",
        /// The SLA clocks the new status calls for start, under the policy the case's service
        /// named when it was bought (else the agency's default, else the platform's):
        /// `first_response` and `decision` on payment, `resolution` when work starts, resumes or
        /// is reopened (a case that had no policy then gets one whichever way it reached
        /// `in_progress`). The clocks of a case that has some follow
        /// every later move (paused, resumed, stopped: `GET /v1/cases/{id}/sla`).
        StartSlaClocks = "start_sla_clocks",
    }
}

/// One row of the action table.
pub struct Rule {
    pub action: CaseAction,
    pub from: &'static [CaseStatus],
    pub to: CaseStatus,
    /// Who may ask for it; empty for actions only the system fires.
    pub roles: &'static [Role],
    pub requires: &'static [Input],
    pub effects: &'static [Effect],
}

/// What a state means for the rest of the product.
pub struct State {
    pub status: CaseStatus,
    /// No action leads out of it; the case no longer counts as open.
    pub terminal: bool,
    /// Agents assigned to the case see it only in these states.
    pub agent_visible: bool,
    /// Agents may be assigned to the case.
    pub agents_assignable: bool,
    /// The case's agents write: storyline drafts, internal notes, files.
    pub agents_write: bool,
    /// The client may edit the title and description (only while the agency reviews the case).
    pub client_edits: bool,
    /// Files may be attached: paid and not terminal.
    pub accepts_files: bool,
    /// The storyline takes writes (frozen once `completed`, and in every terminal status).
    pub storyline_open: bool,
    /// The agency may ask the client for something, and the client answer.
    pub requests_open: bool,
    /// Video call rooms may be opened; leaving these states ends their links for good.
    pub video_calls_active: bool,
}

use CaseAction as A;
use CaseStatus as S;
use Effect as E;
use Input as I;
use Role as R;

pub const RULES: &[Rule] = &[
    Rule {
        action: A::ConfirmPayment,
        from: &[S::AwaitingPayment, S::PaymentFailed],
        to: S::InApproval,
        roles: &[R::Platform],
        requires: &[],
        effects: &[E::MarkPaid, E::StartSlaClocks],
    },
    Rule {
        action: A::FailPayment,
        from: &[S::AwaitingPayment],
        to: S::PaymentFailed,
        roles: &[R::Platform],
        requires: &[I::Reason],
        effects: &[E::MarkPaymentFailed, E::StorylineEntry],
    },
    Rule {
        action: A::RetryPayment,
        from: &[S::PaymentFailed],
        to: S::AwaitingPayment,
        roles: &[R::Client],
        requires: &[],
        effects: &[E::MarkPaymentPending, E::NotifyPlatform],
    },
    Rule {
        action: A::Accept,
        from: &[S::InApproval],
        to: S::Approved,
        roles: &[R::Agency],
        requires: &[],
        effects: &[E::RequireRequiredData, E::SnapshotRequiredData],
    },
    Rule {
        action: A::Reject,
        from: &[S::InApproval],
        to: S::Rejected,
        roles: &[R::Agency],
        requires: &[I::Reason],
        effects: &[E::SnapshotRequiredData, E::StorylineEntry, E::EndVideoCalls],
    },
    Rule {
        action: A::Start,
        from: &[S::Approved],
        to: S::InProgress,
        roles: &[R::Agency],
        requires: &[],
        effects: &[E::StartSlaClocks],
    },
    Rule {
        action: A::Suspend,
        from: &[S::Approved, S::InProgress],
        to: S::Suspended,
        roles: &[R::Agency],
        requires: &[I::Reason],
        effects: &[E::StorylineEntry],
    },
    Rule {
        action: A::Resume,
        from: &[S::Suspended],
        to: S::InProgress,
        roles: &[R::Agency],
        requires: &[],
        effects: &[E::StartSlaClocks],
    },
    Rule {
        action: A::Complete,
        from: &[S::InProgress],
        to: S::Completed,
        roles: &[R::Agency],
        requires: &[I::ResolutionType, I::Resolution],
        effects: &[
            E::RecordResolution,
            E::CancelOpenRequests,
            E::EndVideoCalls,
            E::AwaitConfirmation,
        ],
    },
    Rule {
        action: A::ConfirmCompletion,
        from: &[S::Completed],
        to: S::Closed,
        roles: &[R::Client],
        requires: &[],
        effects: &[E::RecordSurvey, E::AskForRating],
    },
    Rule {
        action: A::DisputeCompletion,
        from: &[S::Completed],
        to: S::Completed,
        roles: &[R::Client],
        requires: &[I::Reason],
        effects: &[E::FlagDisputed, E::StorylineEntry, E::NotifyPlatform],
    },
    Rule {
        action: A::Reopen,
        from: &[S::Completed],
        to: S::InProgress,
        roles: &[R::Agency, R::Platform],
        requires: &[I::Reason],
        effects: &[
            E::ClearDisputed,
            E::ClearResolution,
            E::StorylineEntry,
            E::StartSlaClocks,
        ],
    },
    Rule {
        action: A::Cancel,
        from: &[S::AwaitingPayment, S::PaymentFailed, S::InApproval],
        to: S::Cancelled,
        roles: &[R::Client, R::Platform],
        requires: &[I::Reason],
        effects: &[E::StorylineEntry, E::EndVideoCalls],
    },
    Rule {
        action: A::AutoClose,
        from: &[S::Completed],
        to: S::Closed,
        roles: &[],
        requires: &[],
        effects: &[E::AskForRating],
    },
];

const fn state(status: CaseStatus) -> State {
    State {
        status,
        terminal: matches!(status, S::Rejected | S::Closed | S::Cancelled),
        agent_visible: matches!(status, S::InProgress | S::Suspended),
        agents_assignable: matches!(status, S::InProgress),
        agents_write: matches!(status, S::InProgress),
        // Before payment the client can only read and cancel (DESIGN.md).
        client_edits: matches!(status, S::InApproval),
        requests_open: matches!(status, S::Approved | S::InProgress | S::Suspended),
        video_calls_active: matches!(
            status,
            S::InApproval | S::Approved | S::InProgress | S::Suspended
        ),
        storyline_open: matches!(
            status,
            S::InApproval | S::Approved | S::InProgress | S::Suspended
        ),
        accepts_files: !matches!(
            status,
            S::AwaitingPayment | S::PaymentFailed | S::Rejected | S::Closed | S::Cancelled
        ),
    }
}

pub const STATES: &[State] = &[
    state(S::AwaitingPayment),
    state(S::PaymentFailed),
    state(S::InApproval),
    state(S::Approved),
    state(S::Rejected),
    state(S::InProgress),
    state(S::Suspended),
    state(S::Completed),
    state(S::Closed),
    state(S::Cancelled),
];

pub fn rule(action: CaseAction) -> &'static Rule {
    RULES
        .iter()
        .find(|r| r.action == action)
        .expect("every action has a rule")
}

pub fn state_of(status: CaseStatus) -> &'static State {
    STATES
        .iter()
        .find(|s| s.status == status)
        .expect("every status has a state")
}

/// The statuses that have `property`, as stored codes (for `IN (…)` filters).
pub fn statuses_where(property: impl Fn(&State) -> bool) -> Vec<&'static str> {
    STATES
        .iter()
        .filter(|s| property(s))
        .map(|s| s.status.as_str())
        .collect()
}

impl Rule {
    pub fn allows_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// The payment state this action leaves behind, if it changes it.
    pub fn payment_state(&self) -> Option<PaymentState> {
        self.effects.iter().find_map(|e| match e {
            E::MarkPaid => Some(PaymentState::Paid),
            E::MarkPaymentFailed => Some(PaymentState::Failed),
            E::MarkPaymentPending => Some(PaymentState::Pending),
            _ => None,
        })
    }

    pub fn has(&self, effect: Effect) -> bool {
        self.effects.contains(&effect)
    }

    /// Whether the move may give the agency's operators work: a paid case joins the queue
    /// (which the write then serves), a reopened one is open work of its operator again.
    pub fn adds_work(&self) -> bool {
        let holds = |status| holds_work(state_of(status));
        self.to == S::InApproval || (holds(self.to) && !self.from.iter().all(|&f| holds(f)))
    }
}

/// The actions `role` may take on a case in `status`, in table order; a completion already
/// `disputed` is not disputed again (the dispute's answer is in messages and tickets).
pub fn allowed_actions(
    role: Role,
    status: CaseStatus,
    disputed: bool,
) -> impl Iterator<Item = &'static Rule> {
    RULES.iter().filter(move |r| {
        r.allows_role(role) && r.from.contains(&status) && !(disputed && r.has(E::FlagDisputed))
    })
}

/// The statuses of the cases an operator holds as open work, against their capacity: not
/// terminal, and not `completed` (waiting on the client, as a resolved ticket waits on its
/// requester).
pub fn holding_statuses() -> Vec<&'static str> {
    statuses_where(holds_work)
}

fn holds_work(state: &State) -> bool {
    !state.terminal && state.status != S::Completed
}

/// The 422 errors of a transition's inputs (cases' and tickets' alike): each input `requires`
/// names that was not `sent`, and each resolution input `sent` to an action that takes none.
/// Inputs arrive trimmed, and an empty one is refused before (422 `length`).
pub fn input_errors(
    action: &str,
    requires: &[Input],
    sent: impl Fn(Input) -> bool,
) -> Vec<crate::errors::FieldError> {
    use crate::errors::FieldError;
    let mut errors = Vec::new();
    for &input in requires {
        if !sent(input) {
            errors.push(FieldError::new(
                format!("/{input}"),
                "required",
                format!("`{action}` requires `{input}`"),
            ));
        }
    }
    for input in [Input::ResolutionType, Input::Resolution] {
        if sent(input) && !requires.contains(&input) {
            errors.push(FieldError::new(
                format!("/{input}"),
                "not_allowed",
                format!("`{action}` takes no `{input}`"),
            ));
        }
    }
    errors
}

/// The action table as Markdown, for the transitions endpoint's description in the spec.
pub fn markdown_table() -> String {
    let codes = |items: Vec<&str>| {
        if items.is_empty() {
            "—".to_owned()
        } else {
            items
                .iter()
                .map(|i| format!("`{i}`"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let mut out = String::from(
        "| action | from | to | roles | requires | effects |\n|---|---|---|---|---|---|\n",
    );
    for r in RULES {
        let roles = if r.roles.is_empty() {
            "system only".to_owned()
        } else {
            codes(r.roles.iter().map(|x| x.as_str()).collect())
        };
        out.push_str(&format!(
            "| `{}` | {} | `{}` | {} | {} | {} |\n",
            r.action,
            codes(r.from.iter().map(|x| x.as_str()).collect()),
            r.to,
            roles,
            codes(r.requires.iter().map(|x| x.as_str()).collect()),
            codes(r.effects.iter().map(|x| x.as_str()).collect()),
        ));
    }
    out
}

/// An action the caller may take now, with its label and the inputs it needs.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"action": "suspend", "label": "Suspend", "requires": ["reason"]}))]
pub struct AllowedAction {
    pub action: CaseAction,
    /// In the language chosen by `Accept-Language`.
    pub label: &'static str,
    pub requires: Vec<Input>,
}

impl AllowedAction {
    pub fn list(
        role: Role,
        status: CaseStatus,
        disputed: bool,
        locale: crate::domain::Locale,
    ) -> Vec<AllowedAction> {
        allowed_actions(role, status, disputed)
            .map(|r| AllowedAction {
                action: r.action,
                label: crate::i18n::action_label(r.action, locale),
                requires: r.requires.to_vec(),
            })
            .collect()
    }
}
