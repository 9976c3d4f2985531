//! Human labels for machine codes, in English, Italian, Spanish and Polish, and the choice of
//! language for a request.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};

use crate::domain::{CaseAction, CaseStatus, Locale, TicketAction, TicketStatus};

/// The `Accept-Language` header as an operation that answers labels declares it in the spec
/// (the handlers read it with [`requested`]).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
pub struct AcceptLanguage {
    /// `en`, `it`, `es` or `pl` for labels (else the caller's own locale)
    #[param(rename = "Accept-Language", nullable = false)]
    pub sent: Option<String>,
}

/// The language of a response: the supported language `Accept-Language` ranks highest (by
/// primary subtag, so `it-IT` is Italian), else the caller's own locale.
pub fn negotiate(req: &HttpRequest, fallback: Locale) -> Locale {
    requested(req).unwrap_or(fallback)
}

/// The supported language `Accept-Language` ranks highest, if any.
pub fn requested(req: &HttpRequest) -> Option<Locale> {
    req.headers()
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .and_then(best_supported)
}

/// Marks a GET answer whose body follows `Accept-Language`, so an HTTP cache keeps one copy
/// per language instead of serving (or revalidating with a 304) the labels of another.
pub fn varies_by_language(mut response: HttpResponse) -> HttpResponse {
    response.headers_mut().append(
        header::VARY,
        header::HeaderValue::from_static("accept-language"),
    );
    response
}

/// Parsed here rather than with a crate: the one at hand sorts `q` values as floats without a
/// total order and can panic on `q=NaN`. Unparsable or non-finite weights drop the entry.
fn best_supported(header: &str) -> Option<Locale> {
    let mut best: Option<(f32, Locale)> = None;
    for entry in header.split(',').take(50) {
        let mut parts = entry.split(';');
        let tag = parts.next().unwrap_or_default().trim();
        let primary = tag
            .split('-')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        let quality = match parts.find_map(|p| p.trim().strip_prefix("q=")) {
            Some(q) => match q.trim().parse::<f32>() {
                Ok(q) if q.is_finite() && q > 0.0 && q <= 1.0 => q,
                _ => continue,
            },
            None => 1.0,
        };
        if let Some(locale) = Locale::from_code(&primary)
            && best.is_none_or(|(q, _)| quality > q)
        {
            best = Some((quality, locale));
        }
    }
    best.map(|(_, locale)| locale)
}

/// `[en, it, es, pl]`, picked by locale.
fn pick(locale: Locale, texts: [&'static str; 4]) -> &'static str {
    match locale {
        Locale::En => texts[0],
        Locale::It => texts[1],
        Locale::Es => texts[2],
        Locale::Pl => texts[3],
    }
}

/// What the client is shown for a status (DESIGN.md "The case lifecycle").
pub fn status_label(status: CaseStatus, locale: Locale) -> &'static str {
    use CaseStatus as S;
    pick(
        locale,
        match status {
            S::AwaitingPayment => [
                "Awaiting payment",
                "In attesa di pagamento",
                "Pendiente de pago",
                "Oczekuje na płatność",
            ],
            S::PaymentFailed => [
                "Payment failed",
                "Pagamento non riuscito",
                "Pago fallido",
                "Płatność nieudana",
            ],
            S::InApproval => [
                "Under review",
                "In approvazione",
                "En revisión",
                "W weryfikacji",
            ],
            S::Approved => ["Approved", "Approvato", "Aprobado", "Zatwierdzona"],
            S::Rejected => ["Rejected", "Rifiutato", "Rechazado", "Odrzucona"],
            S::InProgress => [
                "Investigation in progress",
                "Indagine in corso",
                "Investigación en curso",
                "Dochodzenie w toku",
            ],
            S::Suspended => ["Suspended", "Sospeso", "Suspendido", "Wstrzymana"],
            S::Completed => [
                "Completed — please confirm",
                "Completato — conferma, per favore",
                "Completado — confírmelo, por favor",
                "Zakończona — prosimy o potwierdzenie",
            ],
            S::Closed => ["Closed", "Chiuso", "Cerrado", "Zamknięta"],
            S::Cancelled => ["Cancelled", "Annullato", "Cancelado", "Anulowana"],
        },
    )
}

/// The button text for an action.
pub fn action_label(action: CaseAction, locale: Locale) -> &'static str {
    use CaseAction as A;
    pick(
        locale,
        match action {
            A::ConfirmPayment => [
                "Confirm payment",
                "Conferma pagamento",
                "Confirmar pago",
                "Potwierdź płatność",
            ],
            A::FailPayment => [
                "Record failed payment",
                "Registra pagamento non riuscito",
                "Registrar pago fallido",
                "Zarejestruj nieudaną płatność",
            ],
            A::RetryPayment => [
                "Retry payment",
                "Riprova il pagamento",
                "Reintentar el pago",
                "Ponów płatność",
            ],
            A::Accept => ["Accept", "Accetta", "Aceptar", "Przyjmij"],
            A::Reject => ["Reject", "Rifiuta", "Rechazar", "Odrzuć"],
            A::Start => [
                "Start investigation",
                "Avvia indagine",
                "Iniciar investigación",
                "Rozpocznij dochodzenie",
            ],
            A::Suspend => ["Suspend", "Sospendi", "Suspender", "Wstrzymaj"],
            A::Resume => ["Resume", "Riprendi", "Reanudar", "Wznów"],
            A::Complete => ["Complete", "Completa", "Completar", "Zakończ"],
            A::ConfirmCompletion => [
                "Confirm completion",
                "Conferma completamento",
                "Confirmar finalización",
                "Potwierdź zakończenie",
            ],
            A::DisputeCompletion => [
                "Dispute completion",
                "Contesta completamento",
                "Impugnar finalización",
                "Zakwestionuj zakończenie",
            ],
            A::Reopen => ["Reopen", "Riapri", "Reabrir", "Otwórz ponownie"],
            A::Cancel => ["Cancel", "Annulla", "Cancelar", "Anuluj"],
            A::AutoClose => [
                "Close automatically",
                "Chiusura automatica",
                "Cierre automático",
                "Zamknij automatycznie",
            ],
        },
    )
}

/// A storyline title the system writes (`storyline_events.title_code`): a move with its reason,
/// by its action, or the required data the client submitted. Kept as a code, it is rendered in
/// each reader's language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SystemTitle {
    Moved(CaseAction),
    RequiredDataSubmitted,
}

impl SystemTitle {
    const REQUIRED_DATA_SUBMITTED: &'static str = "required_data_submitted";

    pub fn code(self) -> &'static str {
        match self {
            SystemTitle::Moved(action) => action.as_str(),
            SystemTitle::RequiredDataSubmitted => Self::REQUIRED_DATA_SUBMITTED,
        }
    }

    pub fn from_code(code: &str) -> Option<SystemTitle> {
        match code {
            Self::REQUIRED_DATA_SUBMITTED => Some(SystemTitle::RequiredDataSubmitted),
            action => CaseAction::from_code(action).map(SystemTitle::Moved),
        }
    }

    /// The title in `locale`: a move's action and the status it led to (the action alone for
    /// a move that stays where it is: a dispute leaves the case `completed`, whose label asks
    /// the client to confirm).
    pub fn render(self, locale: Locale) -> String {
        match self {
            SystemTitle::Moved(action) => {
                let rule = crate::workflow::rule(action);
                let label = action_label(action, locale);
                match rule.from.contains(&rule.to) {
                    true => label.to_owned(),
                    false => format!("{label}: {}", status_label(rule.to, locale)),
                }
            }
            SystemTitle::RequiredDataSubmitted => pick(
                locale,
                [
                    "Required data submitted",
                    "Dati richiesti inviati",
                    "Datos requeridos enviados",
                    "Przesłano wymagane dane",
                ],
            )
            .to_owned(),
        }
    }
}

/// An SLA clock's crossing as a notification tells it under its title, in the recipient's
/// language; in English it is also the rule log's and the webhooks' `detail`.
#[derive(Debug, Clone)]
pub struct SlaAccount {
    pub clock: crate::sla::Clock,
    /// Past its target (else past its warning share).
    pub breached: bool,
    pub at: chrono::NaiveDateTime,
    pub target_minutes: i64,
    /// The target counts a calendar's business hours (else every hour).
    pub business_hours: bool,
}

impl SlaAccount {
    pub fn render(&self, locale: Locale) -> String {
        use crate::sla::Clock as C;
        let clock = pick(
            locale,
            match self.clock {
                C::FirstResponse => [
                    "first response",
                    "prima risposta",
                    "primera respuesta",
                    "pierwszej odpowiedzi",
                ],
                C::Decision => ["decision", "decisione", "decisión", "decyzji"],
                C::Resolution => ["resolution", "risoluzione", "resolución", "rozwiązania"],
            },
        );
        let state = pick(
            locale,
            match self.breached {
                false => ["at risk", "a rischio", "en riesgo", "zagrożony"],
                true => ["breached", "superato", "incumplido", "przekroczony"],
            },
        );
        let (at, n) = (self.at.format("%Y-%m-%dT%H:%M:%S"), self.target_minutes);
        // A target on a calendar counts its business hours; without one, every hour.
        let hours = match self.business_hours {
            true => pick(
                locale,
                [
                    " of business time",
                    " di orario lavorativo",
                    " de horario laboral",
                    " w godzinach pracy",
                ],
            ),
            false => "",
        };
        match locale {
            Locale::En => {
                format!("The {clock} clock was {state} at {at}Z (target {n} min{hours}).")
            }
            Locale::It => {
                format!("Il tempo di {clock} era {state} alle {at}Z (obiettivo {n} min{hours}).")
            }
            Locale::Es => {
                format!("El plazo de {clock} estaba {state} a las {at}Z (objetivo {n} min{hours}).")
            }
            Locale::Pl => format!("Termin {clock} był {state} o {at}Z (cel: {n} min{hours})."),
        }
    }
}

/// What a ticket's status is called.
pub fn ticket_status_label(status: TicketStatus, locale: Locale) -> &'static str {
    use TicketStatus as S;
    pick(
        locale,
        match status {
            S::New => ["New", "Nuovo", "Nuevo", "Nowe"],
            S::Open => ["Open", "Aperto", "Abierto", "Otwarte"],
            S::WaitingOnRequester => [
                "Waiting for the requester",
                "In attesa del richiedente",
                "Esperando al solicitante",
                "Oczekuje na zgłaszającego",
            ],
            S::Resolved => ["Resolved", "Risolto", "Resuelto", "Rozwiązane"],
            S::Closed => ["Closed", "Chiuso", "Cerrado", "Zamknięte"],
        },
    )
}

/// The button text for a ticket action.
pub fn ticket_action_label(action: TicketAction, locale: Locale) -> &'static str {
    use TicketAction as A;
    pick(
        locale,
        match action {
            A::WaitOnRequester => [
                "Wait for the requester",
                "Attendi il richiedente",
                "Esperar al solicitante",
                "Czekaj na zgłaszającego",
            ],
            A::Resolve => ["Resolve", "Risolvi", "Resolver", "Rozwiąż"],
            A::Reactivate => ["Reactivate", "Riattiva", "Reactivar", "Otwórz ponownie"],
            A::Close => ["Close", "Chiudi", "Cerrar", "Zamknij"],
            A::AutoClose => [
                "Close automatically",
                "Chiusura automatica",
                "Cierre automático",
                "Zamknij automatycznie",
            ],
        },
    )
}

/// What a notification is about: a case (by its number) or a support ticket (by its subject).
#[derive(Debug, Clone, Copy)]
pub enum About<'a> {
    Case {
        number: &'a str,
        status: Option<CaseStatus>,
    },
    Ticket {
        number: &'a str,
        subject: &'a str,
        status: Option<TicketStatus>,
    },
}

/// A notification's title: the case's number, or the ticket's number and subject in quotes,
/// with the new status's label for status changes.
pub fn notification_title(event: crate::events::Event, locale: Locale, about: About) -> String {
    use crate::events::Event as E;
    let (number, label) = match about {
        About::Case { number, status } => {
            (number.to_owned(), status.map(|s| status_label(s, locale)))
        }
        About::Ticket {
            number,
            subject,
            status,
        } => {
            let subject: String = subject.chars().take(80).collect();
            let ticket = pick(locale, ["ticket", "ticket", "ticket", "zgłoszenie"]);
            (
                format!("{ticket} {number} «{subject}»"),
                status.map(|s| ticket_status_label(s, locale)),
            )
        }
    };
    let number = number.as_str();
    let template = match event {
        E::StatusChanged => {
            return upper_first(format!("{number} — {}", label.unwrap_or_default()));
        }
        E::CaseCreated => [
            "New case {n}",
            "Nuova pratica {n}",
            "Nuevo caso {n}",
            "Nowa sprawa {n}",
        ],
        E::TicketOpened => [
            "New support ticket: {n}",
            "Nuovo ticket di assistenza: {n}",
            "Nuevo ticket de soporte: {n}",
            "Nowe zgłoszenie do pomocy: {n}",
        ],
        E::SlaWarning => [
            "{n} is at risk of missing its SLA",
            "{n} rischia di superare lo SLA",
            "{n} está a punto de incumplir el SLA",
            "{n}: zagrożony termin SLA",
        ],
        E::SlaBreached => [
            "{n} missed its SLA",
            "{n} ha superato lo SLA",
            "{n} ha incumplido el SLA",
            "{n}: przekroczony termin SLA",
        ],
        E::MessageReceived => [
            "New message on {n}",
            "Nuovo messaggio su {n}",
            "Nuevo mensaje en {n}",
            "Nowa wiadomość w sprawie {n}",
        ],
        E::Mentioned => [
            "You were mentioned on {n}",
            "Sei stato menzionato su {n}",
            "Le han mencionado en {n}",
            "Wspomniano o Tobie w sprawie {n}",
        ],
        E::RequestOpened => [
            "The agency asks you something on {n}",
            "L'agenzia ti chiede qualcosa su {n}",
            "La agencia le pide algo en {n}",
            "Agencja prosi o informacje w sprawie {n}",
        ],
        E::RequestAnswered => [
            "Request answered on {n}",
            "Richiesta evasa su {n}",
            "Solicitud respondida en {n}",
            "Odpowiedź na prośbę w sprawie {n}",
        ],
        E::RequestCancelled => [
            "Request withdrawn on {n}",
            "Richiesta ritirata su {n}",
            "Solicitud retirada en {n}",
            "Prośba wycofana w sprawie {n}",
        ],
        E::VideoCallOpened => [
            "Video call opened on {n}",
            "Videochiamata aperta su {n}",
            "Videollamada abierta en {n}",
            "Rozmowa wideo otwarta w sprawie {n}",
        ],
        E::Assigned => [
            "{n} was assigned to you",
            "{n} ti è stato assegnato",
            "{n} se le ha asignado",
            "Przydzielono Ci: {n}",
        ],
        E::SurveyRequested => [
            "{n} is closed: how did it go? Rate it from 1 to 5",
            "La pratica {n} è chiusa: com'è andata? Dai un voto da 1 a 5",
            "El caso {n} está cerrado: ¿cómo ha ido? Valórelo de 1 a 5",
            "Sprawa {n} została zamknięta: jak oceniasz jej przebieg? Wystaw ocenę od 1 do 5",
        ],
    };
    upper_first(pick(locale, template).replace("{n}", number))
}

/// A title that opens with a ticket's name ("ticket TKT-… «…»") starts with a capital.
fn upper_first(title: String) -> String {
    let mut chars = title.chars();
    match chars.next() {
        Some(first) if first.is_lowercase() => first.to_uppercase().chain(chars).collect(),
        _ => title,
    }
}

/// What an e-mail's link opens.
#[derive(Debug, Clone, Copy)]
pub enum Linked {
    Case,
    Ticket,
}

/// The plain-text body of a notification e-mail: greeting, what happened, the link to the case,
/// and why the recipient gets it (with where to turn it off).
pub fn email_body(
    locale: Locale,
    name: &str,
    title: &str,
    detail: Option<&str>,
    link_to: Linked,
    link: &str,
) -> String {
    let greeting = pick(locale, ["Hello", "Buongiorno", "Hola", "Dzień dobry"]);
    let open = match link_to {
        Linked::Case => pick(
            locale,
            [
                "Open the case",
                "Apri la pratica",
                "Abrir el caso",
                "Otwórz sprawę",
            ],
        ),
        Linked::Ticket => pick(
            locale,
            [
                "Open the ticket",
                "Apri il ticket",
                "Abrir el ticket",
                "Otwórz zgłoszenie",
            ],
        ),
    };
    let why = pick(
        locale,
        [
            "You receive this e-mail because e-mail notifications for this kind of event are on \
             in your Dossier settings.",
            "Ricevi questa e-mail perché le notifiche via e-mail per questo tipo di evento sono \
             attive nelle tue impostazioni di Dossier.",
            "Recibe este correo porque las notificaciones por correo para este tipo de evento \
             están activadas en su configuración de Dossier.",
            "Otrzymujesz tę wiadomość, ponieważ powiadomienia e-mail o zdarzeniach tego rodzaju \
             są włączone w Twoich ustawieniach Dossier.",
        ],
    );
    let detail = detail.map(|d| format!("{d}\n\n")).unwrap_or_default();
    format!("{greeting} {name},\n\n{title}\n\n{detail}{open}: {link}\n\n-- \n{why}\n")
}
