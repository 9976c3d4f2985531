//! Vocabulary shared by every resource: roles and locales, with their machine codes.

/// Declares a string enum stored as its snake_case code in the database. The spec describes
/// it by its own doc comment, then each value its doc comment explains.
macro_rules! code_enum {
    (
        $(#[doc = $doc:literal])* $name:ident {
            $($(#[doc = $vdoc:literal])* $variant:ident = $code:literal),+ $(,)?
        }
    ) => {
        $(#[doc = $doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ::serde::Serialize, ::serde::Deserialize, ::utoipa::ToSchema)]
        #[serde(rename_all = "snake_case")]
        #[schema(description = $crate::domain::described(&[$($doc),*], &[$(($code, &[$($vdoc),*][..])),+]))]
        pub enum $name { $($(#[doc = $vdoc])* $variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $code),+ }
            }

            /// Parses a stored code; the database's CHECK constraints keep it valid.
            pub fn from_code(code: &str) -> Option<$name> {
                match code { $($code => Some($name::$variant),)+ _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use code_enum;

/// An enum's description in the spec: its doc comment's lines (`summary`), then a list of the
/// values whose doc comments explain them, each with its explanation on one line.
pub fn described(summary: &[&str], values: &[(&str, &[&str])]) -> String {
    let line = |l: &&str| l.strip_prefix(' ').unwrap_or(l).trim_end().to_owned();
    let mut text = summary.iter().map(line).collect::<Vec<_>>().join("\n");
    for (i, (code, doc)) in values.iter().filter(|(_, doc)| !doc.is_empty()).enumerate() {
        text.push_str(if i == 0 { "\n\n" } else { "\n" });
        let explained = doc.iter().map(|l| l.trim()).collect::<Vec<_>>().join(" ");
        text.push_str(&format!("- `{code}`: {explained}"));
    }
    text
}

code_enum! {
    /// Who a user is on the marketplace; decides what they see and do.
    Role {
        /// The marketplace operator's staff.
        Platform = "platform",
        /// An agency's staff (operators; `admin` = agency manager).
        Agency = "agency",
        /// An agency's field investigator.
        Agent = "agent",
        /// A buyer of services.
        Client = "client",
    }
}

impl Role {
    /// Agency and agent users belong to an agency; platform staff and clients never do.
    pub fn belongs_to_agency(self) -> bool {
        matches!(self, Role::Agency | Role::Agent)
    }

    /// Agency and platform staff take work and hold it against a capacity; agents are put on
    /// cases by their operators, and clients hold none.
    pub fn is_operator(self) -> bool {
        matches!(self, Role::Agency | Role::Platform)
    }
}

code_enum! {
    /// Language of a user's labels, notifications and e-mails.
    Locale {
        En = "en",
        It = "it",
        Es = "es",
        Pl = "pl",
    }
}

code_enum! {
    /// Where a case stands in its lifecycle (see `GET /v1/workflow`).
    CaseStatus {
        AwaitingPayment = "awaiting_payment",
        PaymentFailed = "payment_failed",
        InApproval = "in_approval",
        Approved = "approved",
        Rejected = "rejected",
        InProgress = "in_progress",
        Suspended = "suspended",
        Completed = "completed",
        Closed = "closed",
        Cancelled = "cancelled",
    }
}

code_enum! {
    /// A lifecycle action, sent to `POST /v1/cases/{id}/transitions`.
    CaseAction {
        ConfirmPayment = "confirm_payment",
        FailPayment = "fail_payment",
        RetryPayment = "retry_payment",
        Accept = "accept",
        Reject = "reject",
        Start = "start",
        Suspend = "suspend",
        Resume = "resume",
        Complete = "complete",
        ConfirmCompletion = "confirm_completion",
        DisputeCompletion = "dispute_completion",
        Reopen = "reopen",
        Cancel = "cancel",
        /// Fired by the system only; never accepted from a caller.
        AutoClose = "auto_close",
    }
}

code_enum! {
    /// How the client pays for the service.
    PaymentMethod {
        Card = "card",
        BankTransfer = "bank_transfer",
    }
}

code_enum! {
    /// Whether the platform has the client's money.
    PaymentState {
        Pending = "pending",
        Paid = "paid",
        Failed = "failed",
    }
}

code_enum! {
    /// How urgent a case is.
    Priority {
        Low = "low",
        Normal = "normal",
        High = "high",
        Urgent = "urgent",
    }
}

code_enum! {
    /// The kind of value a required-data field holds.
    FieldType {
        Text = "text",
        LongText = "long_text",
        Number = "number",
        Date = "date",
        Boolean = "boolean",
        Choice = "choice",
        Image = "image",
        File = "file",
        Location = "location",
    }
}

code_enum! {
    /// Where a support ticket stands (see `GET /v1/workflow`, member `tickets`).
    TicketStatus {
        /// Opened; nobody at the platform has taken it or answered yet.
        New = "new",
        /// Platform staff work on it.
        Open = "open",
        /// The platform waits for the requester's answer.
        WaitingOnRequester = "waiting_on_requester",
        /// Solved; closes by itself after `DOSSIER_TICKET_AUTO_CLOSE_AFTER` unless reactivated.
        Resolved = "resolved",
        Closed = "closed",
    }
}

code_enum! {
    /// A ticket action, sent to `POST /v1/tickets/{id}/transitions`.
    TicketAction {
        WaitOnRequester = "wait_on_requester",
        Resolve = "resolve",
        Reactivate = "reactivate",
        Close = "close",
        /// Fired by the system only; never accepted from a caller.
        AutoClose = "auto_close",
    }
}

code_enum! {
    /// Who acts on a ticket: its requester's side (the client who opened it, or any staff
    /// member of the agency that did) or platform staff.
    TicketParty {
        Requester = "requester",
        Platform = "platform",
    }
}

code_enum! {
    /// What a staff member tells their colleagues (DESIGN.md "Presence and capacity").
    PresenceStatus {
        Available = "available",
        Busy = "busy",
        DoNotDisturb = "do_not_disturb",
        Away = "away",
        /// Also the status of anyone who never set one.
        Offline = "offline",
    }
}

/// Longest case tag, in characters.
pub const TAG_MAX: usize = 40;
/// Most tags a case has.
pub const TAGS_MAX: usize = 20;

/// Why a case tag is refused, if it is.
pub fn tag_problem(tag: &str) -> Option<&'static str> {
    let ok = |c: char| (c.is_alphanumeric() && !c.is_uppercase()) || c == '-' || c == '_';
    match tag.chars().count() {
        0 => Some("a tag has at least one character"),
        n if n > TAG_MAX => Some("a tag has at most 40 characters"),
        _ if !tag.chars().all(ok) => {
            Some("letters that are not upper-case, digits, `-` and `_` only")
        }
        _ => None,
    }
}
