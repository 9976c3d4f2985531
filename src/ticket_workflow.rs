//! The support ticket's lifecycle as data (DESIGN.md, "Support tickets"), as `workflow` holds
//! the case's: enforcement, each ticket's `allowed_actions` and `GET /v1/workflow` read
//! [`RULES`]. Besides its actions, a ticket moves by itself where DESIGN.md's queues need it:
//! see [`after_message`] and [`after_assignment`].

use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::{Locale, TicketAction, TicketParty, TicketStatus};
use crate::workflow::Input;

use TicketAction as A;
use TicketParty as P;
use TicketStatus as S;

/// One row of the ticket's action table.
pub struct TicketRule {
    pub action: TicketAction,
    pub from: &'static [TicketStatus],
    pub to: TicketStatus,
    /// Who may ask for it; empty for actions only the system fires.
    pub parties: &'static [TicketParty],
    pub requires: &'static [Input],
}

pub const RULES: &[TicketRule] = &[
    TicketRule {
        action: A::WaitOnRequester,
        from: &[S::New, S::Open],
        to: S::WaitingOnRequester,
        parties: &[P::Platform],
        requires: &[],
    },
    TicketRule {
        action: A::Resolve,
        from: &[S::New, S::Open, S::WaitingOnRequester],
        to: S::Resolved,
        parties: &[P::Platform],
        requires: &[Input::ResolutionType, Input::Resolution],
    },
    TicketRule {
        action: A::Reactivate,
        from: &[S::Resolved],
        to: S::Open,
        parties: &[P::Requester, P::Platform],
        requires: &[Input::Reason],
    },
    TicketRule {
        action: A::Close,
        from: &[S::Resolved],
        to: S::Closed,
        parties: &[P::Requester, P::Platform],
        requires: &[],
    },
    TicketRule {
        action: A::AutoClose,
        from: &[S::Resolved],
        to: S::Closed,
        parties: &[],
        requires: &[],
    },
];

/// The statuses in which a ticket is worked: it takes messages, assignment and edits.
pub const WORKED: &[TicketStatus] = &[S::New, S::Open, S::WaitingOnRequester];

pub fn rule(action: TicketAction) -> &'static TicketRule {
    RULES
        .iter()
        .find(|r| r.action == action)
        .expect("every ticket action has a rule")
}

/// The status a message leaves the ticket in: the platform's first answer opens a new ticket;
/// the requester's answer reopens one that waited on them.
pub fn after_message(party: TicketParty, status: TicketStatus) -> TicketStatus {
    match (party, status) {
        (P::Platform, S::New) | (P::Requester, S::WaitingOnRequester) => S::Open,
        _ => status,
    }
}

/// Taking or delegating a new ticket opens it.
pub fn after_assignment(status: TicketStatus) -> TicketStatus {
    match status {
        S::New => S::Open,
        other => other,
    }
}

/// An action the caller may take on a ticket now, with its label and the inputs it needs.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"action": "resolve", "label": "Resolve", "requires": ["resolution_type", "resolution"]}))]
pub struct TicketAllowedAction {
    pub action: TicketAction,
    /// In the language chosen by `Accept-Language`.
    pub label: &'static str,
    pub requires: Vec<Input>,
}

impl TicketAllowedAction {
    pub fn list(party: TicketParty, status: TicketStatus, locale: Locale) -> Vec<Self> {
        RULES
            .iter()
            .filter(|r| r.parties.contains(&party) && r.from.contains(&status))
            .map(|r| TicketAllowedAction {
                action: r.action,
                label: crate::i18n::ticket_action_label(r.action, locale),
                requires: r.requires.to_vec(),
            })
            .collect()
    }
}
