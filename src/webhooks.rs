//! Outbound webhooks: every event the bell hears of on a case (`Notifier::notify`; a mention is
//! the bell's alone) or on a support ticket (`Notifier::notify_ticket`), and a ticket's moves and
//! edits the bell does not tell ([`enqueue_ticket_move`], `ticket_updated`), becomes, in the same
//! transaction, one delivery per active webhook of the agency (the case's, the requesting
//! agency's) or the platform that subscribed to it. A worker posts each delivery as JSON, signed
//! with the webhook's secret (and its old one while a rotation keeps it), and retries failures with exponential backoff until `DOSSIER_WEBHOOK_MAX_ATTEMPTS`;
//! then the delivery is dead (listed under the webhook). Delivery is at least once: a
//! receiver tells repeats apart by `Dossier-Delivery`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use actix_web::web;
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

use crate::app::AppState;
use crate::db::{self, DbConnection};
use crate::domain::{CaseStatus, TicketStatus, code_enum};
use crate::errors::ApiError;
use crate::events::Event;
use crate::repo;
use crate::repo::cases::CaseRow;
use crate::repo::tickets::TicketRow;
use crate::repo::webhooks::{Claim, DeliveryRow, PENDING, WebhookRow};

/// Deliveries claimed per round: with the timeout each, well inside the lease.
const BATCH: i64 = 10;
/// How long a claimed delivery stays hidden from other workers.
const LEASE_SECONDS: i64 = 300;
/// Longest idle sleep: a safety net for deliveries written by another node.
const IDLE: Duration = Duration::from_secs(60);
/// The last error of a delivery its webhook's pause ended.
pub const PAUSED: &str = "paused";
/// The last error of a delivery its webhook's deletion ended.
pub const DELETED: &str = "deleted";
/// The last error of a delivery its agency's deactivation ended.
pub const AGENCY_DEACTIVATED: &str = "agency_deactivated";
/// The last errors of deliveries ended before their turn: one of them that was being posted
/// at that moment and reached the receiver is recorded `delivered` after all.
const ENDINGS: [&str; 3] = [PAUSED, DELETED, AGENCY_DEACTIVATED];

code_enum! {
    /// What a webhook hears of: the bell's events on cases and `case_created`, the bell's
    /// events on support tickets, named `ticket_…`, and `ticket_updated` (an edit).
    WebhookEvent {
        StatusChanged = "status_changed",
        MessageReceived = "message_received",
        RequestOpened = "request_opened",
        RequestAnswered = "request_answered",
        RequestCancelled = "request_cancelled",
        VideoCallOpened = "video_call_opened",
        Assigned = "assigned",
        SurveyRequested = "survey_requested",
        SlaWarning = "sla_warning",
        SlaBreached = "sla_breached",
        CaseCreated = "case_created",
        TicketOpened = "ticket_opened",
        TicketMessageReceived = "ticket_message_received",
        TicketStatusChanged = "ticket_status_changed",
        TicketAssigned = "ticket_assigned",
        TicketSlaWarning = "ticket_sla_warning",
        TicketSlaBreached = "ticket_sla_breached",
        TicketUpdated = "ticket_updated",
    }
}

impl WebhookEvent {
    /// What a webhook hears of an event on a case (`ticket_opened` and `mentioned` are none).
    pub fn on_case(event: Event) -> Option<WebhookEvent> {
        use WebhookEvent as W;
        Some(match event {
            Event::StatusChanged => W::StatusChanged,
            Event::MessageReceived => W::MessageReceived,
            Event::RequestOpened => W::RequestOpened,
            Event::RequestAnswered => W::RequestAnswered,
            Event::RequestCancelled => W::RequestCancelled,
            Event::VideoCallOpened => W::VideoCallOpened,
            Event::Assigned => W::Assigned,
            Event::SurveyRequested => W::SurveyRequested,
            Event::SlaWarning => W::SlaWarning,
            Event::SlaBreached => W::SlaBreached,
            Event::CaseCreated => W::CaseCreated,
            // The message's own event tells a webhook of it; whom it names is the bell's.
            Event::TicketOpened | Event::Mentioned => return None,
        })
    }

    /// What a webhook hears of an event on a support ticket, if it hears of it.
    pub fn on_ticket(event: Event) -> Option<WebhookEvent> {
        use WebhookEvent as W;
        match event {
            Event::TicketOpened => Some(W::TicketOpened),
            Event::MessageReceived => Some(W::TicketMessageReceived),
            Event::StatusChanged => Some(W::TicketStatusChanged),
            Event::Assigned => Some(W::TicketAssigned),
            Event::SlaWarning => Some(W::TicketSlaWarning),
            Event::SlaBreached => Some(W::TicketSlaBreached),
            _ => None,
        }
    }

    /// Whether a delivery carries the event's `detail`: a status change's reason (else its
    /// resolution), an SLA warning's or breach's account, the members an edit changed; never a
    /// message's or a ticket's text.
    fn tells_detail(self) -> bool {
        use WebhookEvent as W;
        matches!(
            self,
            W::StatusChanged
                | W::SlaWarning
                | W::SlaBreached
                | W::TicketStatusChanged
                | W::TicketSlaWarning
                | W::TicketSlaBreached
                | W::TicketUpdated
        )
    }
}

/// Writes the deliveries of an event on a case (in the event's transaction) to the webhooks
/// subscribed to it.
pub fn enqueue(conn: &mut DbConnection, what: &What) -> Result<(), ApiError> {
    let Some(event) = WebhookEvent::on_case(what.event) else {
        return Ok(());
    };
    let hooks = repo::webhooks::listening(conn, &what.case.agency_id)?;
    write_deliveries(conn, &hooks, event, || about_case(what, None))
}

/// Writes the deliveries of an event on a support ticket (in the event's transaction) to the
/// platform's webhooks subscribed to it, and to the requesting agency's for an agency's ticket
/// (a client's ticket about a case is not its agency's).
pub fn enqueue_ticket(
    conn: &mut DbConnection,
    event: WebhookEvent,
    what: &TicketWhat,
) -> Result<(), ApiError> {
    let hooks = repo::webhooks::listening_to_tickets(conn, what.ticket.agency_id.as_deref())?;
    write_deliveries(conn, &hooks, event, || about_ticket(what))
}

/// The move a message or an assignment made (`new` or `waiting_on_requester` to `open`): the
/// bell tells only the message or the assignment, a webhook hears of every move.
pub fn enqueue_ticket_move(
    conn: &mut DbConnection,
    ticket: &TicketRow,
    status: TicketStatus,
) -> Result<(), ApiError> {
    let what = TicketWhat {
        ticket,
        status: Some(status),
        detail: None,
    };
    enqueue_ticket(conn, WebhookEvent::TicketStatusChanged, &what)
}

fn write_deliveries(
    conn: &mut DbConnection,
    hooks: &[WebhookRow],
    event: WebhookEvent,
    about: impl Fn() -> About,
) -> Result<(), ApiError> {
    let rows: Vec<DeliveryRow> = hooks
        .iter()
        .filter(|hook| subscribed(hook, event))
        .map(|hook| delivery(hook, event, about()))
        .collect();
    if !rows.is_empty() {
        repo::webhooks::enqueue(conn, &rows)?;
        crate::live::will_wake_webhooks();
    }
    Ok(())
}

/// An event on a case, as a delivery tells it.
pub struct What<'a> {
    pub case: &'a CaseRow,
    pub event: Event,
    /// The case's new status for `status_changed`.
    pub status: Option<CaseStatus>,
    /// The reason or the rule's account; never a message's text (the receiver reads that
    /// through the API, as its role allows).
    pub detail: Option<&'a str>,
}

/// An event on a support ticket, as a delivery tells it.
pub struct TicketWhat<'a> {
    pub ticket: &'a TicketRow,
    /// The ticket's new status, where the event moved it.
    pub status: Option<TicketStatus>,
    /// A move's reason or resolution, the SLA rule's account, or the members an edit changed
    /// (see [`WebhookEvent::tells_detail`]).
    pub detail: Option<&'a str>,
}

/// The agency trigger that sends an event to a webhook (`crate::triggers`).
pub struct ByTrigger<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub rule_log_id: &'a str,
}

/// Writes one delivery of the event to `hook`, which a trigger chose (subscribed or not).
pub fn send(
    conn: &mut DbConnection,
    hook: &WebhookRow,
    what: &What,
    by: ByTrigger,
) -> Result<(), ApiError> {
    let Some(event) = WebhookEvent::on_case(what.event) else {
        return Ok(());
    };
    repo::webhooks::enqueue(conn, &[delivery(hook, event, about_case(what, Some(by)))])?;
    crate::live::will_wake_webhooks();
    Ok(())
}

/// What a delivery is about: the case it names (its column) and its payload's members.
struct About {
    case_id: Option<String>,
    detail: Option<String>,
    /// `case` or `ticket`, and its object.
    subject: (&'static str, serde_json::Value),
    trigger: Option<serde_json::Value>,
}

fn about_case(what: &What, by: Option<ByTrigger>) -> About {
    let case = what.case;
    About {
        case_id: Some(case.id.clone()),
        detail: what.detail.map(str::to_owned),
        subject: (
            "case",
            json!({
                "id": case.id,
                "number": case.number,
                "agency_id": case.agency_id,
                "status": what.status.map_or(case.status.clone(), |s| s.as_str().to_owned()),
            }),
        ),
        trigger: by.map(|by| json!({"id": by.id, "name": by.name, "rule_log_id": by.rule_log_id})),
    }
}

fn about_ticket(what: &TicketWhat) -> About {
    let ticket = what.ticket;
    About {
        case_id: None,
        detail: what.detail.map(str::to_owned),
        subject: (
            "ticket",
            json!({
                "id": ticket.id,
                "number": ticket.number,
                "agency_id": ticket.agency_id,
                "case_id": ticket.case_id,
                "status": what.status.map_or(ticket.status.clone(), |s| s.as_str().to_owned()),
                "priority": ticket.priority,
            }),
        ),
        trigger: None,
    }
}

fn delivery(hook: &WebhookRow, event: WebhookEvent, about: About) -> DeliveryRow {
    let now = db::now();
    let id = repo::new_id();
    let (subject, object) = about.subject;
    let mut payload = json!({
        "id": id,
        "event": event,
        "occurred_at": crate::api::timestamp(now),
        "detail": about.detail.filter(|_| event.tells_detail()),
    });
    payload[subject] = object;
    if let Some(trigger) = about.trigger {
        payload["trigger"] = trigger;
    }
    DeliveryRow {
        id,
        webhook_id: hook.id.clone(),
        event: event.as_str().to_owned(),
        case_id: about.case_id,
        payload: payload.to_string(),
        status: PENDING.into(),
        attempts: 0,
        next_attempt_at: now,
        last_status: None,
        last_error: None,
        created_at: now,
        delivered_at: None,
    }
}

/// Why a webhook URL is refused, if it is; `public_only` (production): https to a public host.
pub fn url_problem(url: &str, public_only: bool) -> Option<&'static str> {
    let Ok(parsed) = url::Url::parse(url) else {
        return Some("not an absolute URL");
    };
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Some("no user name or password in the URL: it is shown to every admin");
    }
    match (parsed.scheme(), public_only) {
        ("https", _) | ("http", false) => {}
        (_, true) => return Some("must be https"),
        _ => return Some("must be http or https"),
    }
    let public = match parsed.host() {
        None => return Some("must name a host"),
        Some(url::Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            name != "localhost" && !name.ends_with(".localhost")
        }
        Some(url::Host::Ipv4(ip)) => public_address(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => public_address(IpAddr::V6(ip)),
    };
    (public_only && !public).then_some("must not be a local or private address")
}

/// Whether an address is on the public internet: not loopback, private, link-local, shared
/// (carrier-grade NAT), benchmarking, documentation, multicast or unspecified. An IPv6 address
/// that carries an IPv4 one (mapped, compatible, 6to4) is judged as that IPv4 address; Teredo
/// and site-local addresses, which a host may route inside, are never public.
pub fn public_address(ip: IpAddr) -> bool {
    const NOT_PUBLIC: &[&str] = &[
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/3",
        "64:ff9b::/96",
        "100::/64",
        "2001::/32",
        "2001:2::/48",
        "2001:db8::/32",
        "fc00::/7",
        "fe80::/10",
        "fec0::/10",
        "ff00::/8",
    ];
    let ip = match ip {
        IpAddr::V6(v6) => match (v6.to_ipv4(), v6.segments()) {
            // `::ffff:a.b.c.d` and `::a.b.c.d` (`::` and `::1` read as 0.0.0.0 and 0.0.0.1).
            (Some(v4), _) => IpAddr::V4(v4),
            // 6to4 (`2002:AABB:CCDD::/48`) reaches the IPv4 address its next two groups hold.
            (None, [0x2002, high, low, ..]) => {
                IpAddr::V4(Ipv4Addr::from((u32::from(high) << 16) | u32::from(low)))
            }
            (None, _) => ip,
        },
        v4 => v4,
    };
    !NOT_PUBLIC
        .iter()
        .filter_map(|net| net.parse::<ipnet::IpNet>().ok())
        .any(|net| net.contains(&ip))
}

/// Resolves receivers' host names to their public addresses only (production), at every
/// delivery: a name that points inside the network, or is rebound there later, reaches
/// nothing.
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let public: Vec<SocketAddr> = found.filter(|a| public_address(a.ip())).collect();
            if public.is_empty() {
                return Err("the host has no public address".into());
            }
            Ok(Box::new(public.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

fn subscribed(hook: &WebhookRow, event: WebhookEvent) -> bool {
    serde_json::from_str::<Vec<WebhookEvent>>(&hook.events)
        .is_ok_and(|events| events.contains(&event))
}

/// The `Dossier-Signature` header of a body: `t=<unix seconds>`, then for each secret
/// `,v1=<hex HMAC-SHA256 of "<t>.<body>" keyed with it>`.
pub fn signature(secrets: &[String], timestamp: i64, body: &str) -> String {
    let signed = format!("{timestamp}.{body}");
    let mut header = format!("t={timestamp}");
    for secret in secrets {
        // HMAC takes a key of any length.
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
        mac.update(signed.as_bytes());
        header.push_str(&format!(",v1={:x}", mac.finalize().into_bytes()));
    }
    header
}

/// Starts the worker.
pub fn spawn(state: web::Data<AppState>) {
    let client = match client(&state) {
        Ok(client) => client,
        Err(e) => {
            log::error!("webhooks are off: no HTTP client: {e}");
            return;
        }
    };
    actix_web::rt::spawn(run(state, client));
}

fn client(state: &AppState) -> reqwest::Result<reqwest::Client> {
    let builder = reqwest::Client::builder()
        .timeout(state.settings.webhooks.timeout)
        // A receiver's redirect is not followed: the signature is for the URL subscribed, and
        // a redirect could point inside the network.
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .user_agent(concat!("Dossier-Webhooks/", env!("CARGO_PKG_VERSION")));
    match state.settings.webhooks.public_https_only {
        true => builder
            .dns_resolver(std::sync::Arc::new(PublicOnly))
            .build(),
        false => builder.build(),
    }
}

async fn run(state: web::Data<AppState>, client: reqwest::Client) {
    let (state, client) = (&state, &client);
    let work = move || async move {
        if let Err(e) = deliver_due_with(state, client).await {
            log::error!("webhook worker cannot claim deliveries: {e}");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    };
    let (wakes, next_due) = (crate::live::subscribe_webhooks(), repo::webhooks::next_due);
    crate::live::drain(&state.pool, wakes, "webhook worker", IDLE, next_due, work).await;
}

/// One round of the worker: claims the due deliveries and posts them; how many it posted.
pub async fn deliver_due(state: &AppState) -> Result<usize, ApiError> {
    let client = client(state).map_err(ApiError::internal)?;
    deliver_due_with(state, &client).await
}

async fn deliver_due_with(state: &AppState, client: &reqwest::Client) -> Result<usize, ApiError> {
    let lease = chrono::Duration::seconds(LEASE_SECONDS);
    let claimed = db::write(&state.pool, move |conn| {
        let claimed = repo::webhooks::claim_due(conn, db::now(), lease, BATCH)?;
        claimed
            .into_iter()
            .map(|(delivery, hook)| Ok((agency_hears(conn, &hook)?, delivery, hook)))
            .collect::<Result<Vec<_>, ApiError>>()
    })
    .await?;
    let posted = claimed.len();
    // At once: a slow receiver holds up a round for one timeout, not one per delivery.
    let posts = claimed
        .into_iter()
        .map(|(hears, delivery, hook)| post(state, client, delivery, hook, hears));
    futures_util::future::join_all(posts).await;
    Ok(posted)
}

/// Whether the webhook's agency still hears of its cases (the platform's webhooks always do).
/// Asked again when a delivery is posted: a write that read the agency before its
/// deactivation committed may have queued one after the deactivation ended the others.
pub fn agency_hears(conn: &mut DbConnection, hook: &WebhookRow) -> Result<bool, ApiError> {
    match &hook.agency_id {
        Some(agency) => Ok(repo::agencies::is_active(conn, agency)?),
        None => Ok(true),
    }
}

/// Posts one delivery and records the outcome; `agency_hears` is [`agency_hears`]'s answer.
async fn post(
    state: &AppState,
    client: &reqwest::Client,
    delivery: DeliveryRow,
    hook: WebhookRow,
    agency_hears: bool,
) {
    let claim = Claim {
        id: delivery.id.clone(),
        lease_end: delivery.next_attempt_at,
        attempts: delivery.attempts,
    };
    let now = db::now();
    let timestamp = now.and_utc().timestamp();
    // The URL is checked again: the rules may have tightened since it was subscribed (an IP
    // literal never goes through the resolver's check).
    let refused = url_problem(&hook.url, state.settings.webhooks.public_https_only);
    // A paused (or deleted) webhook's delivery, written by a write that read the webhook before
    // the pause committed, ends unposted as the pause ended the others (`Err(None)`); so does
    // a deactivated agency's.
    let hears = hook.active && agency_hears;
    let sent = match (hears, refused) {
        (false, _) => Err(None),
        (true, Some(problem)) => Err(Some(format!("the URL is refused: {problem}"))),
        (true, None) => match hook.signing_secrets(&state.sealer, now) {
            // Start-up opened every secret: only a key removed since, or a row changed
            // outside the API, gets here. Nothing unsigned leaves.
            Err(e) => {
                log::error!("webhook {}: {e}", hook.id);
                Err(Some(
                    "the webhook's secret cannot be read; nothing was sent".to_owned(),
                ))
            }
            Ok(secrets) => Ok(client
                .post(&hook.url)
                .header("Content-Type", "application/json")
                .header("Dossier-Event", &delivery.event)
                .header("Dossier-Delivery", &delivery.id)
                .header(
                    "Dossier-Signature",
                    signature(&secrets, timestamp, &delivery.payload),
                )
                .body(delivery.payload.clone())
                .send()
                .await),
        },
    };
    let (status, error) = match sent {
        Ok(Ok(res)) if res.status().is_success() => (Some(res.status().as_u16()), None),
        Ok(Ok(res)) => (
            Some(res.status().as_u16()),
            Some(format!("the receiver answered {}", res.status())),
        ),
        // The error names the URL, which the webhook's owner knows; the log does not get it.
        Ok(Err(e)) => (None, Some(transport_error(&e))),
        Err(Some(why)) => (None, Some(why)),
        Err(None) => {
            let why = if hook.deleted_at.is_some() {
                DELETED
            } else if !agency_hears {
                AGENCY_DEACTIVATED
            } else {
                PAUSED
            };
            (None, Some(why.to_owned()))
        }
    };
    let attempt = delivery.attempts + 1;
    let settings = &state.settings.webhooks;
    let max_attempts = i32::try_from(settings.max_attempts).unwrap_or(i32::MAX);
    let retry_at = (error.is_some() && attempt < max_attempts && hears)
        .then(|| db::now() + crate::mailer::backoff(settings.retry_base, attempt));
    if let Some(error) = &error {
        let next = if retry_at.is_some() {
            "will retry"
        } else {
            "dead"
        };
        log::warn!(
            "webhook delivery {} (attempt {attempt}): {error}; {next}",
            delivery.id
        );
    }
    let status = status.map(i32::from);
    let recorded = db::write(&state.pool, move |conn| {
        if repo::webhooks::record(conn, &claim, status, error.as_deref(), retry_at)? {
            return Ok(true);
        }
        Ok(match (error, status) {
            (None, Some(status)) => {
                repo::webhooks::record_sent_after_end(conn, &claim, status, &ENDINGS)?
            }
            _ => false,
        })
    })
    .await;
    match recorded {
        Ok(true) => {}
        Ok(false) => log::warn!(
            "webhook delivery {}: another worker took it, or it was ended",
            delivery.id
        ),
        Err(e) => log::error!("webhook delivery {}: cannot record it: {e}", delivery.id),
    }
}

fn transport_error(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "no answer within the timeout".into()
    } else if e.is_connect() {
        "cannot connect".into()
    } else {
        "the request failed".into()
    }
}
