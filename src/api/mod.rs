//! The HTTP handlers, one module per resource. Each handler is registered once, in
//! [`routes`], for both serving and the OpenAPI document.

pub mod agencies;
pub mod assignment;
pub mod attachments;
pub mod audit;
pub mod auth;
pub mod case_access;
pub mod cases;
pub mod email;
pub mod files;
pub mod me;
pub mod messages;
pub mod notifications;
pub mod operations;
pub mod presence;
pub mod requests;
pub mod required_data;
pub mod rules;
pub mod services;
pub mod sla;
pub mod storyline;
pub mod surveys;
pub mod tickets;
pub mod transitions;
pub mod triggers;
pub mod users;
pub mod video_calls;
pub mod webhooks;

use actix_web::{HttpMessage, HttpRequest};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::api::case_access::Viewer;
use crate::auth::{AuthUser, Token};
use crate::db::DbConnection;
use crate::domain::Locale;
use crate::errors::ApiError;
use crate::http::RequestId;
use crate::i18n;
use crate::repo::audit::Actor;

/// actix tries routes in the order given here, matching each path with parameters by a regex,
/// so the probes and the case routes, which carry nearly all the traffic, come first: the card
/// was tried against six other routes' regexes before (4% of its instructions).
pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(operations::live)
        .service(operations::ready)
        .service(operations::metrics)
        .service(cases::list_cases)
        .service(cases::create_case)
        .service(cases::get_case)
        .service(cases::update_case)
        .service(transitions::transition_case)
        .service(surveys::create_survey)
        .service(surveys::get_survey)
        .service(surveys::get_survey_by_id)
        .service(transitions::get_workflow)
        .service(assignment::assign_case)
        .service(assignment::list_agents)
        .service(assignment::set_agents)
        .service(audit::list_case_audit)
        .service(audit::list_ticket_audit)
        .service(audit::list_audit)
        .service(audit::verify_audit)
        .service(rules::list_case_rule_log)
        .service(rules::list_rule_log)
        .service(attachments::upload_attachment)
        .service(attachments::list_attachments)
        .service(attachments::download_attachment)
        .service(attachments::delete_attachment)
        .service(required_data::get_required_data)
        .service(required_data::define_fields)
        .service(required_data::fill_values)
        .service(storyline::list_storyline)
        .service(storyline::create_event)
        .service(storyline::get_event)
        .service(storyline::update_event)
        .service(storyline::publish_event)
        .service(storyline::delete_event)
        .service(messages::list_messages)
        .service(messages::post_message)
        .service(messages::get_message)
        .service(messages::mark_read)
        .service(requests::list_requests)
        .service(requests::create_request)
        .service(requests::get_request)
        .service(requests::answer_request)
        .service(requests::cancel_request)
        .service(video_calls::list_video_calls)
        .service(video_calls::create_video_call)
        .service(video_calls::join_video_call)
        .service(video_calls::get_video_call)
        .service(auth::create_token)
        .service(auth::refresh_token)
        .service(auth::logout)
        .service(auth::change_password)
        .service(me::get_me)
        .service(me::update_me)
        .service(agencies::list_agencies)
        .service(agencies::create_agency)
        .service(agencies::get_agency)
        .service(agencies::update_agency)
        .service(users::list_users)
        .service(users::create_user)
        .service(users::get_user)
        .service(users::update_user)
        .service(services::list_services)
        .service(services::create_service)
        .service(services::get_service)
        .service(services::update_service)
        .service(notifications::list_notifications)
        .service(notifications::unread_count)
        .service(notifications::mark_notifications_read)
        .service(notifications::stream_notifications)
        .service(email::get_email_preferences)
        .service(email::update_email_preferences)
        .service(email::list_outbox)
        .service(email::retry_outbox_mail)
        .service(tickets::list_tickets)
        .service(tickets::create_ticket)
        .service(tickets::get_ticket)
        .service(tickets::update_ticket)
        .service(tickets::transitions::transition_ticket)
        .service(tickets::assignment::assign_ticket)
        .service(tickets::messages::list_ticket_messages)
        .service(tickets::messages::post_ticket_message)
        .service(tickets::messages::get_ticket_message)
        .service(tickets::attachments::upload_ticket_attachment)
        .service(tickets::attachments::list_ticket_attachments)
        .service(tickets::attachments::download_ticket_attachment)
        .service(tickets::attachments::delete_ticket_attachment)
        .service(presence::get_my_presence)
        .service(presence::set_my_presence)
        .service(presence::list_presence)
        .service(sla::list_calendars)
        .service(sla::create_calendar)
        .service(sla::get_calendar)
        .service(sla::list_sla_policies)
        .service(sla::create_sla_policy)
        .service(sla::get_sla_policy)
        .service(sla::get_case_sla)
        .service(sla::get_ticket_sla)
        .service(webhooks::list_webhooks)
        .service(webhooks::create_webhook)
        .service(webhooks::get_webhook)
        .service(webhooks::update_webhook)
        .service(webhooks::delete_webhook)
        .service(webhooks::list_webhook_deliveries)
        .service(webhooks::retry_webhook_delivery)
        .service(triggers::list_triggers)
        .service(triggers::create_trigger)
        .service(triggers::get_trigger)
        .service(triggers::update_trigger)
        .service(triggers::delete_trigger);
}

fn request_id(req: &HttpRequest) -> String {
    req.extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default()
}

/// The caller of a request that looks them up inside its own transaction ([`Token::user`]),
/// and what the request says besides, since `HttpRequest` cannot go to a database thread. The
/// busiest routes then cost one hand-off to a database thread instead of two (a fifth of a
/// posted message's server CPU: bench/RESULTS.md). On SQLite, whose one writer also commits
/// every deactivation, a write sees the caller as it commits.
#[derive(Clone)]
pub struct Asking {
    token: Token,
    language: Option<Locale>,
    request_id: String,
}

impl Asking {
    pub fn new(token: Token, req: &HttpRequest) -> Asking {
        Asking {
            token,
            language: i18n::requested(req),
            request_id: request_id(req),
        }
    }

    /// The caller as the transaction sees them (401 if deactivated): whose cases they see,
    /// and who they are in the audit trail.
    pub fn resolve(&self, conn: &mut DbConnection) -> Result<Asked, ApiError> {
        let caller = self.token.user(conn)?;
        Ok(Asked {
            viewer: Viewer::asking(&caller, self.language),
            actor: actor(&caller, self.request_id.clone()),
            caller,
        })
    }
}

/// Who `caller` is in the audit trail of the request `request_id`.
fn actor(caller: &AuthUser, request_id: String) -> Actor {
    Actor {
        user_id: caller.id.clone(),
        role: caller.role,
        request_id,
    }
}

/// [`actor`] for a caller authenticated before the request's transaction.
pub fn actor_of(caller: &AuthUser, req: &HttpRequest) -> Actor {
    actor(caller, request_id(req))
}

/// What [`Asking::resolve`] found: the caller's row, and the two views of it writes need.
pub struct Asked {
    pub caller: AuthUser,
    pub viewer: Viewer,
    pub actor: Actor,
}

/// For PATCH bodies: tells "absent" (`None`) from "null" (`Some(None)`).
pub fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Trims surrounding whitespace while deserializing, so length rules apply to what is stored.
pub fn trimmed<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    String::deserialize(d).map(|s| s.trim().to_owned())
}

/// An optional RFC 3339 instant from the year 1 to 9999 (UTC), for the range filters and the
/// instants a body sets, as the bound the query compares: rounded up to the microsecond
/// (`db::time_bound`), so `from` and `to` keep the same rows on both engines. Outside those
/// years SQLite's stored text compares wrongly (`+10000-…` sorts before `2026-…`), the answer
/// would not be RFC 3339, and PostgreSQL stores no year before 4713 BC.
pub fn instant_opt<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, D::Error> {
    use chrono::Datelike;
    let Some(sent) = Option::<chrono::DateTime<chrono::Utc>>::deserialize(d)? else {
        return Ok(None);
    };
    let within = |year: i32| (1..=9999).contains(&year);
    // The year is checked before rounding too: rounding chrono's last instant up overflows.
    let bound = within(sent.year())
        .then(|| crate::db::time_bound(sent))
        .filter(|bound| within(bound.year()))
        .ok_or_else(|| serde::de::Error::custom("an instant from the year 1 to 9999 (UTC)"))?;
    Ok(Some(bound.and_utc()))
}

/// A date written exactly `YYYY-MM-DD`: chrono alone also takes `26-1-5` (the year 26),
/// signed years and spaces.
pub fn plain_date(text: &str) -> Option<chrono::NaiveDate> {
    let shaped = text.len() == 10
        && text.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            _ => b.is_ascii_digit(),
        });
    shaped
        .then(|| chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").ok())
        .flatten()
}

/// A body member holding a [`plain_date`] (a list of them points at the one that is not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct PlainDate(pub chrono::NaiveDate);

impl<'de> Deserialize<'de> for PlainDate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        plain_date(&text)
            .map(PlainDate)
            .ok_or_else(|| serde::de::Error::custom("a date as YYYY-MM-DD"))
    }
}

/// serde's default for a member that is `true` when left out.
pub fn yes() -> bool {
    true
}

/// [`trimmed`] for optional members.
pub fn trimmed_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Option::<String>::deserialize(d).map(|o| o.map(|s| s.trim().to_owned()))
}

/// An `integer` member as JSON Schema defines one: any number without a fractional part, so
/// `150000.0` (how Python's `json` writes a float) is 150000 and `150000.5` is refused, as is a
/// number outside `T`. Past 2^53 a number written as a float has already lost its last digits
/// in the parser.
struct WholeNumber<T>(T);

impl<'de, T: TryFrom<i64>> Deserialize<'de> for WholeNumber<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Whole;
        impl serde::de::Visitor<'_> for Whole {
            type Value = i64;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an integer")
            }

            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<i64, E> {
                Ok(v)
            }

            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<i64, E> {
                i64::try_from(v)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Unsigned(v), &self))
            }

            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<i64, E> {
                // i64::MIN is exactly -2^63 as an f64; 2^63 itself is already out of range.
                let in_range = v >= i64::MIN as f64 && v < -(i64::MIN as f64);
                if v.fract() == 0.0 && in_range {
                    Ok(v as i64)
                } else {
                    Err(E::invalid_value(serde::de::Unexpected::Float(v), &self))
                }
            }
        }
        let n = d.deserialize_any(Whole)?;
        T::try_from(n).map(WholeNumber).map_err(|_| {
            serde::de::Error::invalid_value(
                serde::de::Unexpected::Signed(n),
                &"an integer in range",
            )
        })
    }
}

/// Reads an `integer` member that may be written with a zero fraction ([`WholeNumber`]).
pub fn whole_number<'de, D: Deserializer<'de>, T: TryFrom<i64>>(d: D) -> Result<T, D::Error> {
    WholeNumber::deserialize(d).map(|n| n.0)
}

/// [`whole_number`] for optional members.
pub fn whole_number_opt<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i64>,
{
    Option::<WholeNumber<T>>::deserialize(d).map(|n| n.map(|n| n.0))
}

/// [`whole_number`] for members that may be `null` ([`nullable`]).
pub fn whole_number_nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i64>,
{
    whole_number_opt(d).map(Some)
}

/// RFC 3339 in UTC with a `Z`, as API.md asks.
pub fn timestamp(t: chrono::NaiveDateTime) -> chrono::DateTime<chrono::Utc> {
    t.and_utc()
}

/// Writes a timestamp as chrono's own `Serialize` does (RFC 3339, `Z`, as many fraction digits
/// as it has), but in one piece: chrono's goes through `collect_str`, which serde_json escapes
/// piece by piece, 1 900 instructions a timestamp, 2% of a card (bench/RESULTS.md). For every
/// timestamp of a response: `#[serde(serialize_with = "crate::api::rfc3339")]`.
pub fn rfc3339<S: Serializer>(t: &chrono::DateTime<chrono::Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339_text(t))
}

/// A timestamp's text in a response, for where it is kept as text (an audit row's value).
pub fn rfc3339_text(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// [`rfc3339`] for optional timestamps.
pub fn rfc3339_opt<S: Serializer>(
    t: &Option<chrono::DateTime<chrono::Utc>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => rfc3339(t, s),
        None => s.serialize_none(),
    }
}
