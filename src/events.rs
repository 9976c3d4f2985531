//! What follows an event on a case or a support ticket, inside the event's transaction: its
//! webhook deliveries are queued, the agency's triggers run on it, and each recipient gets a
//! notification in their own language (and, with e-mail on, its mail in the outbox).

use std::collections::BTreeSet;

use crate::config::Settings;
use crate::db::{self, DbConnection};
use crate::domain::{CaseStatus, Locale, Role, TicketStatus, code_enum};
use crate::errors::ApiError;
use crate::i18n::{self, SlaAccount};
use crate::repo;
use crate::repo::cases::CaseRow;
use crate::repo::email::OutboxRow;
use crate::repo::notifications::{NotificationRow, Recipient};
use crate::repo::tickets::TicketRow;
use crate::webhooks::WebhookEvent;

code_enum! {
    /// What happened.
    Event {
        StatusChanged = "status_changed",
        MessageReceived = "message_received",
        RequestOpened = "request_opened",
        RequestAnswered = "request_answered",
        /// The agency withdrew a request (to the client; a move that cancels the case's open
        /// requests tells of itself).
        RequestCancelled = "request_cancelled",
        VideoCallOpened = "video_call_opened",
        Assigned = "assigned",
        SurveyRequested = "survey_requested",
        /// A support ticket was opened (to platform staff).
        TicketOpened = "ticket_opened",
        /// An SLA clock of the case passed its warning share (to the agency).
        SlaWarning = "sla_warning",
        /// An SLA clock of the case passed its target (to the agency).
        SlaBreached = "sla_breached",
        /// A client bought a service: the case exists (to webhooks and triggers; the agency
        /// hears of it when it is assigned).
        CaseCreated = "case_created",
        /// A message on the case names the user (`mentions`): theirs in place of
        /// `message_received` (the bell's and e-mail's only: webhooks and triggers hear the
        /// message).
        Mentioned = "mentioned",
    }
}

/// Who hears of an event on a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// The case's client.
    Client,
    /// The responsible operator, or every operator of the agency while nobody is assigned.
    Agency,
    /// The agents on the case, while they can see it (or a move makes them, or ends it).
    Agents,
    /// Platform staff.
    Platform,
}

/// Who hears of an event on a support ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TicketAudience {
    /// The user who opened it; for an agency's ticket, its staff once that user cannot log in.
    Requester,
    /// The platform staff member it is assigned to, or all platform staff while nobody is.
    Platform,
}

/// Writes notifications (and, with e-mail on, their outbox mails) inside the event's transaction.
#[derive(Debug, Clone)]
pub struct Notifier {
    email: bool,
    app_link_template: std::sync::Arc<str>,
    ticket_link_template: std::sync::Arc<str>,
}

/// `person` while they can log in; else (or without one) every enabled user of `fallback`'s
/// role and agency, when given.
fn reach_or_all(
    conn: &mut DbConnection,
    person: Option<&String>,
    fallback: Option<(Role, Option<&str>)>,
) -> Result<Vec<Recipient>, ApiError> {
    if let Some(person) = person {
        let found = repo::notifications::recipients(conn, std::slice::from_ref(person))?;
        if !found.is_empty() {
            return Ok(found);
        }
    }
    Ok(match fallback {
        Some((role, agency)) => repo::notifications::active_users(conn, role, agency)?,
        None => Vec::new(),
    })
}

/// Whom an event on a case tells besides its audiences (`extra`), and whom it leaves to a
/// notification of their own (`mentioned`).
#[derive(Debug, Clone, Copy, Default)]
struct Told<'a> {
    extra: &'a [String],
    mentioned: &'a [String],
}

/// What a notification says under its title: someone's words as written (at most 500
/// characters), or an SLA crossing's account in each recipient's language.
#[derive(Debug, Clone, Copy)]
enum Said<'a> {
    Words(&'a str),
    Sla(&'a SlaAccount),
}

impl Said<'_> {
    fn to(self, locale: Locale) -> String {
        match self {
            Said::Words(words) => words.chars().take(500).collect(),
            Said::Sla(account) => account.render(locale),
        }
    }
}

/// What a notification links to.
#[derive(Debug, Clone, Copy)]
enum Subject<'a> {
    Case(&'a CaseRow, Option<CaseStatus>),
    Ticket(&'a TicketRow, Option<TicketStatus>),
}

impl Notifier {
    pub fn new(settings: &Settings) -> Notifier {
        Notifier {
            email: settings.email.is_some(),
            app_link_template: settings.app_link_template.as_str().into(),
            ticket_link_template: settings.ticket_link_template.as_str().into(),
        }
    }

    /// The app's deep link to a case.
    pub fn app_link(&self, case_id: &str) -> String {
        self.app_link_template.replace("{case_id}", case_id)
    }

    /// The app's deep link to a support ticket.
    pub fn ticket_link(&self, ticket_id: &str) -> String {
        self.ticket_link_template.replace("{ticket_id}", ticket_id)
    }

    /// One notification per recipient (the actor excluded), in their own language.
    #[allow(clippy::too_many_arguments)]
    pub fn notify(
        &self,
        conn: &mut DbConnection,
        case: &CaseRow,
        event: Event,
        to: &[Audience],
        actor_id: Option<&str>,
        body: Option<&str>,
        status: Option<CaseStatus>,
    ) -> Result<(), ApiError> {
        self.notify_users(conn, case, event, to, &[], actor_id, body, status)
    }

    /// [`Notifier::notify`], plus these users by id.
    #[allow(clippy::too_many_arguments)]
    pub fn notify_users(
        &self,
        conn: &mut DbConnection,
        case: &CaseRow,
        event: Event,
        to: &[Audience],
        extra: &[String],
        actor_id: Option<&str>,
        body: Option<&str>,
        status: Option<CaseStatus>,
    ) -> Result<(), ApiError> {
        let told = Told {
            extra,
            mentioned: &[],
        };
        self.notify_case(conn, case, event, to, told, actor_id, body, status)
    }

    /// A new message on a case: `message_received` to `to`, and `mentioned` in its place to
    /// the users it mentions (read and checked by the caller).
    pub fn notify_message(
        &self,
        conn: &mut DbConnection,
        case: &CaseRow,
        to: &[Audience],
        mentioned: Vec<Recipient>,
        actor_id: &str,
        body: &str,
    ) -> Result<(), ApiError> {
        let ids: Vec<String> = mentioned.iter().map(|r| r.id.clone()).collect();
        let told = Told {
            extra: &[],
            mentioned: &ids,
        };
        let (actor, body) = (Some(actor_id), Some(body));
        let event = Event::MessageReceived;
        self.notify_case(conn, case, event, to, told, actor, body, None)?;
        let about = Subject::Case(case, None);
        let said = body.map(Said::Words);
        self.deliver(conn, mentioned, about, Event::Mentioned, actor, said, &[])
    }

    /// The SLA crossings one sync found on a case, told by the rule that found them (webhooks
    /// get their English account as `detail`, recipients theirs in their language): every
    /// webhook is queued before any trigger runs, so that what a trigger's own change announces
    /// comes after all of them, as in the audit trail.
    pub fn notify_each(
        &self,
        conn: &mut DbConnection,
        case: &CaseRow,
        crossings: &[(Event, SlaAccount)],
        to: &[Audience],
        status: Option<CaseStatus>,
    ) -> Result<(), ApiError> {
        let english: Vec<String> = crossings
            .iter()
            .map(|(_, account)| account.render(Locale::En))
            .collect();
        let whats: Vec<_> = crossings
            .iter()
            .zip(&english)
            .map(|(&(event, _), detail)| crate::webhooks::What {
                case,
                event,
                status,
                detail: Some(detail),
            })
            .collect();
        for what in &whats {
            crate::webhooks::enqueue(conn, what)?;
        }
        for (what, (_, account)) in whats.iter().zip(crossings) {
            let said = Some(Said::Sla(account));
            self.announced(conn, what, to, Told::default(), None, said)?;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn notify_case(
        &self,
        conn: &mut DbConnection,
        case: &CaseRow,
        event: Event,
        to: &[Audience],
        told: Told,
        actor_id: Option<&str>,
        body: Option<&str>,
        status: Option<CaseStatus>,
    ) -> Result<(), ApiError> {
        // The agency's and the platform's webhooks hear of every event on a case, and the
        // agency's triggers run on it.
        let what = crate::webhooks::What {
            case,
            event,
            status,
            detail: body,
        };
        crate::webhooks::enqueue(conn, &what)?;
        self.announced(conn, &what, to, told, actor_id, body.map(Said::Words))
    }

    /// An event its webhooks have heard of: the agency's triggers run on it, then its
    /// recipients are told what it `said`.
    fn announced(
        &self,
        conn: &mut DbConnection,
        what: &crate::webhooks::What,
        to: &[Audience],
        told: Told,
        actor_id: Option<&str>,
        said: Option<Said>,
    ) -> Result<(), ApiError> {
        let (case, event, status) = (what.case, what.event, what.status);
        let fired = crate::triggers::fire(conn, self, what)?;
        // Agents stay on a case after it leaves their statuses, but no longer see it: they hear
        // of an event while they see the case as the event found it, or of a move into or out
        // of those statuses (`status`: where it goes; triggers move no status).
        let agents_hear = [Some(case.status()), status]
            .into_iter()
            .flatten()
            .any(|s| crate::workflow::state_of(s).agent_visible);
        // Of a move that takes the case from them, in the bell only: no mail leaves about a case
        // its addressee no longer sees (the mailer would end it unsent).
        let agents_mailed = status.is_none_or(|s| crate::workflow::state_of(s).agent_visible);
        let mut bell_only = Vec::new();
        // Told as the triggers left the case: the operator one assigned hears of the event.
        let case = fired.case.as_ref().unwrap_or(case);
        let mut ids = fired.notify;
        ids.extend_from_slice(told.extra);
        let mut recipients: Vec<Recipient> = Vec::new();
        let mut assignee_wanted = None;
        for audience in to {
            match audience {
                Audience::Client => ids.push(case.client_id.clone()),
                Audience::Agency => match &case.assignee_id {
                    Some(assignee) => {
                        ids.push(assignee.clone());
                        assignee_wanted = Some(assignee);
                    }
                    None => recipients.extend(repo::notifications::active_users(
                        conn,
                        Role::Agency,
                        Some(&case.agency_id),
                    )?),
                },
                Audience::Agents if agents_hear => {
                    let agents = repo::notifications::agents_of(conn, &case.id)?;
                    if !agents_mailed {
                        bell_only.extend(agents.iter().cloned());
                    }
                    ids.extend(agents);
                }
                Audience::Agents => {}
                Audience::Platform => recipients.extend(repo::notifications::active_users(
                    conn,
                    Role::Platform,
                    None,
                )?),
            }
        }
        recipients.extend(repo::notifications::recipients(conn, &ids)?);
        // An assignee who can no longer log in leaves the case's news to the whole agency.
        if let Some(assignee) = assignee_wanted
            && !recipients.iter().any(|r| &r.id == assignee)
        {
            recipients.extend(repo::notifications::active_users(
                conn,
                Role::Agency,
                Some(&case.agency_id),
            )?);
        }
        recipients.retain(|r| !told.mentioned.contains(&r.id));
        self.deliver(
            conn,
            recipients,
            Subject::Case(case, status),
            event,
            actor_id,
            said,
            &bell_only,
        )
    }

    /// One notification per recipient of an event on a support ticket (the actor excluded).
    #[allow(clippy::too_many_arguments)]
    pub fn notify_ticket(
        &self,
        conn: &mut DbConnection,
        ticket: &TicketRow,
        event: Event,
        to: &[TicketAudience],
        extra: &[String],
        actor_id: Option<&str>,
        body: Option<&str>,
        status: Option<TicketStatus>,
    ) -> Result<(), ApiError> {
        let said = body.map(Said::Words);
        self.tell_ticket(conn, ticket, event, to, extra, actor_id, body, said, status)
    }

    /// The SLA crossings one sync found on a ticket, each told in turn (webhooks get its
    /// English account as `detail`, recipients theirs in their language).
    pub fn notify_ticket_each(
        &self,
        conn: &mut DbConnection,
        ticket: &TicketRow,
        crossings: &[(Event, SlaAccount)],
        to: &[TicketAudience],
        status: Option<TicketStatus>,
    ) -> Result<(), ApiError> {
        for (event, account) in crossings {
            let english = account.render(Locale::En);
            let (detail, said) = (Some(english.as_str()), Some(Said::Sla(account)));
            self.tell_ticket(conn, ticket, *event, to, &[], None, detail, said, status)?;
        }
        Ok(())
    }

    /// An event on a ticket to its webhooks (with `detail`) and its recipients (what it `said`).
    #[allow(clippy::too_many_arguments)]
    fn tell_ticket(
        &self,
        conn: &mut DbConnection,
        ticket: &TicketRow,
        event: Event,
        to: &[TicketAudience],
        extra: &[String],
        actor_id: Option<&str>,
        detail: Option<&str>,
        said: Option<Said>,
        status: Option<TicketStatus>,
    ) -> Result<(), ApiError> {
        // The platform's webhooks hear of every ticket's events, an agency's of its own.
        if let Some(heard) = WebhookEvent::on_ticket(event) {
            let what = crate::webhooks::TicketWhat {
                ticket,
                status,
                detail,
            };
            crate::webhooks::enqueue_ticket(conn, heard, &what)?;
        }
        let mut recipients = repo::notifications::recipients(conn, extra)?;
        if to.contains(&TicketAudience::Requester) {
            // An agency's ticket is its staff's: a requester who left hands its news to them.
            let agency = ticket.agency_id.as_deref().map(|a| (Role::Agency, Some(a)));
            recipients.extend(reach_or_all(conn, Some(&ticket.requester_id), agency)?);
        }
        if to.contains(&TicketAudience::Platform) {
            let everyone = Some((Role::Platform, None));
            recipients.extend(reach_or_all(conn, ticket.assignee_id.as_ref(), everyone)?);
        }
        self.deliver(
            conn,
            recipients,
            Subject::Ticket(ticket, status),
            event,
            actor_id,
            said,
            &[],
        )
    }

    /// Writes the notifications (and mails, but to `bell_only`, who get the title alone) of
    /// `recipients`, each once, the actor left out.
    #[allow(clippy::too_many_arguments)]
    fn deliver(
        &self,
        conn: &mut DbConnection,
        mut recipients: Vec<Recipient>,
        subject: Subject,
        event: Event,
        actor_id: Option<&str>,
        said: Option<Said>,
        bell_only: &[String],
    ) -> Result<(), ApiError> {
        let mut seen = BTreeSet::new();
        recipients.retain(|r| Some(r.id.as_str()) != actor_id && seen.insert(r.id.clone()));

        let (case_id, ticket_id, about, linked, link) = match subject {
            Subject::Case(case, status) => (
                Some(case.id.clone()),
                None,
                i18n::About::Case {
                    number: &case.number,
                    status,
                },
                i18n::Linked::Case,
                self.app_link(&case.id),
            ),
            Subject::Ticket(ticket, status) => (
                None,
                Some(ticket.id.clone()),
                i18n::About::Ticket {
                    number: &ticket.number,
                    subject: &ticket.subject,
                    status,
                },
                i18n::Linked::Ticket,
                self.ticket_link(&ticket.id),
            ),
        };
        let now = db::now();
        let mut muted: BTreeSet<String> = if self.email && !recipients.is_empty() {
            let ids: Vec<String> = recipients.iter().map(|r| r.id.clone()).collect();
            repo::email::opted_out(conn, event.as_str(), &ids)?
                .into_iter()
                .collect()
        } else {
            BTreeSet::new()
        };
        muted.extend(bell_only.iter().cloned());
        for recipient in recipients {
            let locale = Locale::from_code(&recipient.locale).unwrap_or(Locale::En);
            let title = i18n::notification_title(event, locale, about);
            // Who no longer sees the case (`bell_only`) is told of the move, not what it said.
            let body = match bell_only.contains(&recipient.id) {
                true => None,
                false => said.map(|said| said.to(locale)),
            };
            if self.email && !muted.contains(&recipient.id) {
                let text = i18n::email_body(
                    locale,
                    &recipient.name,
                    &title,
                    body.as_deref(),
                    linked,
                    &link,
                );
                repo::email::enqueue(
                    conn,
                    &OutboxRow {
                        id: repo::new_id(),
                        user_id: recipient.id.clone(),
                        case_id: case_id.clone(),
                        event: event.as_str().to_owned(),
                        recipient: recipient.email,
                        recipient_name: recipient.name,
                        locale: locale.as_str().to_owned(),
                        subject: title.clone(),
                        body: text,
                        status: repo::email::PENDING.to_owned(),
                        attempts: 0,
                        next_attempt_at: now,
                        last_error: None,
                        created_at: now,
                        sent_at: None,
                    },
                )?;
            }
            crate::live::will_notify([recipient.id.as_str()]);
            repo::notifications::insert(
                conn,
                &NotificationRow {
                    id: repo::new_id(),
                    user_id: recipient.id,
                    case_id: case_id.clone(),
                    event: event.as_str().to_owned(),
                    title,
                    body,
                    created_at: now,
                    read_at: None,
                    ticket_id: ticket_id.clone(),
                },
            )?;
        }
        Ok(())
    }
}
