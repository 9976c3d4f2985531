//! Human labels for machine codes, in English, Italian, Spanish and Polish, and the choice of
//! language for a request.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};

use crate::domain::{CaseAction, CaseStatus, Locale};

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

/// A notification's title for case `number`; `status` is the new status's label, for
/// status changes.
pub fn notification_title(
    event: crate::api::notifications::Event,
    locale: Locale,
    number: &str,
    status: Option<CaseStatus>,
) -> String {
    use crate::api::notifications::Event as E;
    let template = match event {
        E::StatusChanged => {
            let label = status.map(|s| status_label(s, locale)).unwrap_or_default();
            return format!("{number} — {label}");
        }
        E::MessageReceived => [
            "New message on {n}",
            "Nuovo messaggio su {n}",
            "Nuevo mensaje en {n}",
            "Nowa wiadomość w sprawie {n}",
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
            "Sprawa {n} została Ci przydzielona",
        ],
        E::SurveyRequested => [
            "{n} is closed: how did it go? Rate it from 1 to 5",
            "La pratica {n} è chiusa: com'è andata? Dai un voto da 1 a 5",
            "El caso {n} está cerrado: ¿cómo ha ido? Valórelo de 1 a 5",
            "Sprawa {n} została zamknięta: jak oceniasz jej przebieg? Wystaw ocenę od 1 do 5",
        ],
    };
    pick(locale, template).replace("{n}", number)
}

/// The plain-text body of a notification e-mail: greeting, what happened, the link to the case,
/// and why the recipient gets it (with where to turn it off).
pub fn email_body(
    locale: Locale,
    name: &str,
    title: &str,
    detail: Option<&str>,
    link: &str,
) -> String {
    let greeting = pick(locale, ["Hello", "Buongiorno", "Hola", "Dzień dobry"]);
    let open = pick(
        locale,
        [
            "Open the case",
            "Apri la pratica",
            "Abrir el caso",
            "Otwórz sprawę",
        ],
    );
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
