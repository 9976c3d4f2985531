//! The e-mail worker: drains the outbox through SMTP. A failed mail is retried with exponential
//! backoff; a permanent refusal (5xx) or the last allowed attempt parks it as dead, where a
//! platform admin can list it and put it back (`/v1/emails`). Delivery is at least once: a
//! worker that stops mid-send leaves its claim to expire and the mail to be sent again. Each
//! send first renews its claim, and its outcome is recorded only while the claim still holds,
//! so a worker whose lease ran out mid-send neither sends a mail another worker has taken nor
//! overwrites that worker's outcome.

use std::time::Duration;

use actix_web::web;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, Message};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use crate::app::AppState;
use crate::config::EmailSettings;
use crate::db;
use crate::repo;
use crate::repo::email::{Claim, OutboxRow};

/// Mails claimed per round.
const BATCH: i64 = 20;
/// How long a claimed mail stays hidden from other workers (lettre gives up on a send after 60 s).
const LEASE_SECONDS: i64 = 300;
/// Longest wait between two retries of a mail.
const MAX_BACKOFF: Duration = Duration::from_secs(6 * 3600);
/// Longest idle sleep: a safety net for mails written by another node.
const IDLE: Duration = Duration::from_secs(60);

type Transport = AsyncSmtpTransport<Tokio1Executor>;

/// Starts the worker when SMTP is configured; otherwise says once that e-mail is off.
pub fn spawn(state: web::Data<AppState>) {
    let Some(settings) = state.settings.email.clone() else {
        log::warn!("e-mail is off: DOSSIER_SMTP_URL is not set (notifications stay in the app)");
        return;
    };
    // The URL was parsed when the settings were read.
    let transport = match Transport::from_url(&settings.smtp_url) {
        Ok(builder) => builder.build(),
        Err(e) => {
            log::error!("e-mail is off: DOSSIER_SMTP_URL does not parse: {e}");
            return;
        }
    };
    log::info!("e-mail is on: sending as {}", settings.from);
    actix_web::rt::spawn(run(state, settings, transport));
}

async fn run(state: web::Data<AppState>, settings: EmailSettings, transport: Transport) {
    let work = || send_due(&state, &settings, &transport);
    let (wakes, next_due) = (crate::live::subscribe(), repo::email::next_due);
    crate::live::drain(&state.pool, wakes, "e-mail worker", IDLE, next_due, work).await;
}

/// Claims a batch of due mails and sends them.
async fn send_due(state: &web::Data<AppState>, settings: &EmailSettings, transport: &Transport) {
    let claimed = db::write(&state.pool, |conn| {
        Ok(repo::email::claim_due(conn, db::now(), lease(), BATCH)?)
    })
    .await;
    match claimed {
        Ok(mails) => {
            for mail in mails {
                deliver(state, settings, transport, mail).await;
            }
        }
        Err(e) => {
            log::error!("e-mail worker cannot claim mails: {e}");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// Sends one mail and records the outcome.
async fn deliver(
    state: &web::Data<AppState>,
    settings: &EmailSettings,
    transport: &Transport,
    mail: OutboxRow,
) {
    // The claim's lease is renewed right before the send: a batch's last mails go out long
    // after it was claimed, and another worker may have claimed them again by then, or their
    // addressee lost access to what they tell.
    let claim = Claim {
        id: mail.id.clone(),
        lease_end: mail.next_attempt_at,
    };
    let renewing = mail.clone();
    let renewed = db::write(&state.pool, move |conn| {
        Ok(repo::email::renew(conn, &renewing, &claim, lease())?)
    })
    .await;
    let (claim, mail) = match renewed {
        Ok(Some(renewed)) => renewed,
        Ok(None) => {
            log::info!(
                "e-mail {}: not sent (another worker has it, or its addressee lost access or turned it off)",
                mail.id
            );
            return;
        }
        Err(e) => {
            log::error!("e-mail {}: cannot renew its claim: {e}", mail.id);
            return;
        }
    };
    let outcome = match message(settings, &mail) {
        Ok(message) => transport.send(message).await.map(|_| ()).map_err(|e| {
            let reply = e
                .status()
                .map(|code| format!("SMTP {code}"))
                .unwrap_or_else(|| "no SMTP reply".into());
            (e.is_permanent(), reply, e.to_string())
        }),
        Err(e) => Err((true, "unsendable".into(), e)),
    };
    let attempt = mail.attempts + 1;
    let recorded = match outcome {
        Ok(()) => {
            db::write(&state.pool, move |conn| {
                Ok(repo::email::mark_sent(conn, &claim)?)
            })
            .await
        }
        Err((permanent, reply, error)) => {
            let max_attempts = i32::try_from(settings.max_attempts).unwrap_or(i32::MAX);
            let retry_at = (!permanent && attempt < max_attempts)
                .then(|| db::now() + backoff(settings.retry_base, attempt));
            // The address and the server's text stay out of the log (they may name the
            // recipient); the admin list shows them.
            log::warn!(
                "e-mail {} (attempt {attempt}) failed: {reply}; {}",
                mail.id,
                if retry_at.is_some() {
                    "will retry"
                } else {
                    "parked as dead"
                }
            );
            db::write(&state.pool, move |conn| {
                Ok(repo::email::mark_failed(conn, &claim, &error, retry_at)?)
            })
            .await
        }
    };
    match recorded {
        Ok(true) => {}
        // Its lease ran out mid-send and another worker took it: that worker's outcome stands.
        Ok(false) => log::warn!("e-mail {}: another worker took it during the send", mail.id),
        Err(e) => log::error!("e-mail {}: cannot record the outcome: {e}", mail.id),
    }
}

fn lease() -> chrono::Duration {
    chrono::Duration::seconds(LEASE_SECONDS)
}

/// `base`, then twice as long after each further failure, up to [`MAX_BACKOFF`] (the webhook
/// worker's retries too).
pub fn backoff(base: Duration, attempt: i32) -> chrono::Duration {
    let factor = 2u32.saturating_pow(attempt.saturating_sub(1).max(0) as u32);
    let wait = base.saturating_mul(factor).min(MAX_BACKOFF);
    chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::hours(6))
}

fn message(settings: &EmailSettings, mail: &OutboxRow) -> Result<Message, String> {
    let address = mail
        .recipient
        .parse()
        .map_err(|e| format!("invalid recipient address: {e}"))?;
    let to = Mailbox::new(Some(mail.recipient_name.clone()), address);
    Message::builder()
        .from(settings.from.clone())
        .to(to)
        .subject(mail.subject.clone())
        // The outbox id makes the Message-ID: a mail sent twice is recognisably the same one.
        .message_id(Some(format!(
            "<{}@{}>",
            mail.id,
            settings.from.email.domain()
        )))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("Content-Language"),
            mail.locale.clone(),
        ))
        // RFC 3834: no auto-replies to a notification.
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("Auto-Submitted"),
            "auto-generated".into(),
        ))
        .header(ContentType::TEXT_PLAIN)
        .body(mail.body.clone())
        .map_err(|e| format!("cannot build the message: {e}"))
}
