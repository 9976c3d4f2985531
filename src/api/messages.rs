//! The conversation of a case: client ↔ agency messages, interactions the agency logs from
//! other channels, and internal notes between the agency and the case's agents.

use std::collections::HashMap;

use actix_web::{HttpRequest, HttpResponse, get, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use validator::Validate;

use crate::api::attachments::{check_case_attachments, share_with_client};
use crate::api::case_access::{
    Viewer, create_on_case, find_visible, read_on_case, update_locked, wrong_state,
};
use crate::api::{Asked, Asking, timestamp};
use crate::app::AppState;
use crate::auth::Token;
use crate::db::{self, DbConnection};
use crate::domain::{CaseStatus, Role, code_enum};
use crate::errors::ApiError;
use crate::events::{Audience as Notified, Notifier};
use crate::http::extract::{Page, PageRequest, Query, ValidJson, page_response};
use crate::http::idempotency::{Created, IdempotencyKey};
use crate::repo;
use crate::repo::audit::{Actor, Change};
use crate::repo::cases::CaseRow;
use crate::repo::messages::{Audience, Conversation, MessageFilter, MessageRow, Reader};
use crate::repo::notifications::Recipient;
use crate::workflow;

code_enum! {
    /// How a message travelled.
    Channel {
        InApp = "in_app",
        Email = "email",
        Phone = "phone",
        Whatsapp = "whatsapp",
        Video = "video",
    }
}

code_enum! {
    /// `inbound`: from the client to the agency; `outbound`: from the agency to the client;
    /// `internal`: a note between the agency and its agents.
    Direction {
        Inbound = "inbound",
        Outbound = "outbound",
        Internal = "internal",
    }
}

/// The part of the conversation a role reads.
pub fn audience_of(role: Role) -> Audience {
    match role {
        Role::Client => Audience::PublicOnly,
        Role::Agent => Audience::InternalOnly,
        Role::Agency | Role::Platform => Audience::Everything,
    }
}

/// The roles on the caller's side of the conversation: their messages are never "unread".
/// Always two (one role twice when the side is one), so each role's statement has one shape.
fn own_side(role: Role) -> [&'static str; 2] {
    match role {
        Role::Client => ["client", "client"],
        Role::Agent => ["agent", "agent"],
        Role::Agency | Role::Platform => ["agency", "platform"],
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0193a6f8-9999-7c2d-8e3f-405162738495",
    "case_id": "0193a6f4-2222-7c2d-8e3f-405162738495",
    "case_number": "DOS-2026-000123",
    "sender_id": "0193a6f2-4444-7b51-9d0a-3f1e2a4b5c6d",
    "sender_role": "client",
    "direction": "inbound",
    "channel": "in_app",
    "internal": false,
    "body": "He left early again today.",
    "attachment_ids": [],
    "mentions": [],
    "created_at": "2026-11-22T17:00:00Z",
    "read_by_client": true,
    "read_by_agency": false
}))]
pub struct MessageView {
    #[schema(format = "uuid")]
    pub id: String,
    /// The case it belongs to (with `include=earlier_cases`, maybe another case of the client).
    #[schema(format = "uuid")]
    pub case_id: String,
    pub case_number: String,
    #[schema(format = "uuid")]
    pub sender_id: String,
    pub sender_role: Role,
    pub direction: Direction,
    pub channel: Channel,
    pub internal: bool,
    pub body: String,
    #[schema(value_type = Vec<String>, format = "uuid")]
    pub attachment_ids: Vec<String>,
    /// The users it mentions (`mentions` when it was posted), by id.
    #[schema(value_type = Vec<String>, format = "uuid")]
    pub mentions: Vec<String>,
    #[serde(serialize_with = "crate::api::rfc3339")]
    pub created_at: DateTime<Utc>,
    /// The client has read up to this message (always `false` for internal notes).
    pub read_by_client: bool,
    /// An agency member has read up to this message.
    pub read_by_agency: bool,
}

/// Read marks of each case on a page.
type Marks = HashMap<String, repo::messages::ReadMarks>;

fn view(row: MessageRow, numbers: &HashMap<String, String>, marks: &Marks) -> MessageView {
    let (client_mark, staff_mark) = marks.get(&row.case_id).cloned().unwrap_or_default();
    let read_up_to = |mark: &Option<String>| mark.as_deref().is_some_and(|m| m >= row.id.as_str());
    MessageView {
        read_by_client: !row.internal && read_up_to(&client_mark),
        read_by_agency: read_up_to(&staff_mark),
        case_number: numbers.get(&row.case_id).cloned().unwrap_or_default(),
        sender_role: Role::from_code(&row.sender_role).unwrap_or(Role::Client),
        direction: Direction::from_code(&row.direction).unwrap_or(Direction::Inbound),
        channel: Channel::from_code(&row.channel).unwrap_or(Channel::InApp),
        attachment_ids: serde_json::from_str(&row.attachment_ids).unwrap_or_default(),
        mentions: serde_json::from_str(&row.mention_ids).unwrap_or_default(),
        id: row.id,
        case_id: row.case_id,
        sender_id: row.sender_id,
        internal: row.internal,
        body: row.body,
        created_at: timestamp(row.created_at),
    }
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    Asc,
    Desc,
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Include {
    EarlierCases,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListMessagesQuery {
    /// Only these channels (repeat the parameter for several).
    #[serde(default)]
    #[param(style = Form, explode)]
    pub channel: Vec<Channel>,
    /// Sent at or after this instant (RFC 3339).
    #[serde(default, deserialize_with = "crate::api::instant_opt")]
    pub from: Option<DateTime<Utc>>,
    /// Sent before this instant (RFC 3339).
    #[serde(default, deserialize_with = "crate::api::instant_opt")]
    pub to: Option<DateTime<Utc>>,
    /// `desc` (newest first, the default: "jump to the end") or `asc` (oldest first: "jump to
    /// the start").
    #[param(inline)]
    pub order: Option<Order>,
    /// Messages after this one, oldest first.
    pub after: Option<Uuid>,
    /// Messages before this one, newest first.
    pub before: Option<Uuid>,
    /// `earlier_cases` adds the same client's messages on their other cases the caller can see,
    /// each marked with its case.
    #[param(inline)]
    pub include: Option<Include>,
    #[param(minimum = 1, maximum = 100, default = 25)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page (continues in the same direction).
    pub cursor: Option<String>,
}

/// The conversation
///
/// Clients read the client ↔ agency messages (never internal notes); agents read the internal
/// notes; agency and platform staff read everything. Filter by channel and date range; page
/// newest first (default) or oldest first, or from a message with `after`/`before`. Each message
/// says whether the client and the agency have read it. Roles: anyone who can see the case.
#[utoipa::path(
    tag = "messages",
    operation_id = "list_messages",
    params(("id" = Uuid, Path, description = "Case id"), ListMessagesQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "One page of messages", body = Page<MessageView>,
            headers(("Link" = String, description = "`<…>; rel=\"next\"` when another page follows"))),
        (status = 404, description = "No such case, or not one the caller can see"),
    )
)]
#[get("/v1/cases/{id}/messages")]
pub async fn list_messages(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: Token,
    id: web::Path<Uuid>,
    query: Query<ListMessagesQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let page = PageRequest::new(query.limit, query.cursor.as_deref())?;
    let (ascending, anchor) = match (query.after, query.before) {
        (Some(_), Some(_)) => {
            return Err(crate::http::fallback::invalid_query(
                "send `after` or `before`, not both".into(),
            ));
        }
        (Some(after), None) => (true, Some(after.to_string())),
        (None, Some(before)) => (false, Some(before.to_string())),
        (None, None) => (matches!(query.order, Some(Order::Asc)), None),
    };
    let after = page.after.clone().or(anchor);
    let asking = Asking::new(token, &req);
    let case_id = id.into_inner().to_string();
    let filter = MessageFilter {
        channels: query.channel.iter().map(|c| c.as_str()).collect(),
        from: query.from.map(|t| t.naive_utc()),
        to: query.to.map(|t| t.naive_utc()),
    };
    let earlier = query.include.is_some();
    let limit = page.fetch();
    let (rows, numbers, marks) = db::read(&state.pool, move |conn| {
        let Asked { viewer, .. } = asking.resolve(conn)?;
        let case = find_visible(conn, &viewer, &case_id)?;
        let conversation = match earlier {
            true => Conversation::Client {
                scope: &viewer.scope,
                client_id: &case.client_id,
            },
            false => Conversation::Case(&case.id),
        };
        let audience = audience_of(viewer.role);
        let rows = repo::messages::list(
            conn,
            &conversation,
            audience,
            &filter,
            ascending,
            after.as_deref(),
            limit,
        )?;
        // Only the cases on the page: at most one per message.
        let mut on_page: Vec<String> = rows.iter().map(|r| r.case_id.clone()).collect();
        on_page.sort_unstable();
        on_page.dedup();
        let marks = match on_page.as_slice() {
            [] => Marks::new(),
            [one] => Marks::from([(
                one.clone(),
                repo::messages::read_marks(conn, one, &case.client_id)?,
            )]),
            ids => repo::messages::read_marks_of(conn, ids, &case.client_id)?,
        };
        let numbers = match earlier {
            true => repo::cases::numbers(conn, &on_page)?,
            false => vec![(case.id.clone(), case.number.clone())],
        };
        Ok((rows, numbers.into_iter().collect::<HashMap<_, _>>(), marks))
    })
    .await?;
    let page = page.page(rows, |r| &r.id, |r| view(r, &numbers, &marks));
    Ok(page_response(&req, page))
}

fn message_not_found() -> ApiError {
    ApiError::NotFound("No such message, or not one you can read.".into())
}

/// A message's URL, the `Location` of its creation.
fn message_url(case_id: &str, id: &str) -> String {
    format!("/v1/cases/{case_id}/messages/{id}")
}

/// Get a message
///
/// One message of the conversation, as the list shows it: clients read the client ↔ agency
/// messages, agents the internal notes, agency and platform staff everything (404 otherwise).
/// Roles: anyone who can see the case.
#[utoipa::path(
    tag = "messages",
    operation_id = "get_message",
    params(("id" = Uuid, Path, description = "Case id"),
           ("message_id" = Uuid, Path, description = "Message id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The message", body = MessageView),
        (status = 404, description = "No such case or message, or not one the caller can read"),
    )
)]
#[get("/v1/cases/{id}/messages/{message_id}")]
pub async fn get_message(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: Token,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (case_id, message_id) = path.into_inner();
    let message_id = message_id.to_string();
    let view = read_on_case(&state, &req, token, case_id, move |conn, viewer, case| {
        let row = repo::messages::find(conn, &case.id, &message_id, audience_of(viewer.role))?
            .ok_or_else(message_not_found)?;
        rendered(conn, row, case)
    })
    .await?;
    Ok(HttpResponse::Ok().json(view))
}

/// One message of `case` with its case's number and read marks.
fn rendered(
    conn: &mut DbConnection,
    row: MessageRow,
    case: CaseRow,
) -> Result<MessageView, ApiError> {
    let marks = Marks::from([(
        case.id.clone(),
        repo::messages::read_marks(conn, &case.id, &case.client_id)?,
    )]);
    Ok(view(row, &HashMap::from([(case.id, case.number)]), &marks))
}

#[derive(Debug, Deserialize, Serialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"body": "Called the client: they confirm the address.", "channel": "phone", "direction": "outbound"}))]
pub struct PostMessage {
    #[serde(deserialize_with = "crate::api::trimmed")]
    #[validate(length(min = 1, max = 10000))]
    #[schema(min_length = 1, max_length = 10000)]
    pub body: String,
    /// Default `in_app`. Agency staff log interactions on other channels; clients write in-app.
    pub channel: Option<Channel>,
    /// Agency staff logging an interaction: `inbound` (the client reached them) or `outbound`
    /// (default). Clients' messages are always `inbound`.
    pub direction: Option<Direction>,
    /// `true`: a note between the agency and the case's agents, never shown to the client.
    /// Agents write internal notes only.
    #[serde(default)]
    #[schema(default = false)]
    pub internal: bool,
    /// Attachments of this case (at most 20).
    #[serde(default)]
    #[validate(length(max = 20))]
    #[schema(max_items = 20)]
    pub attachment_ids: Vec<Uuid>,
    /// Users to tell of this message by name (at most 20, each once): they get a `mentioned`
    /// notification in place of `message_received` (the sender, if named, is told nothing).
    /// Only the case's people who read the message: the agency's staff, the case's agents in
    /// an internal note (while they see the case), the client in a message that is not
    /// internal; not platform staff, who answer through tickets (422 `invalid_mention`).
    // Left out of the body's `Idempotency-Key` fingerprint when empty, as before it existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[validate(length(max = 20))]
    #[schema(max_items = 20, value_type = BTreeSet<Uuid>)]
    pub mentions: Vec<Uuid>,
}

/// Post a message
///
/// Clients write to the agency in-app (not while `awaiting_payment`); agency staff write to the
/// client, log interactions on other channels with their direction, or write internal notes;
/// agents on the case write internal notes while it is `in_progress`. Nobody writes once the
/// case is `closed`, `cancelled` or `rejected` (409). Accepts `Idempotency-Key`, as buying a
/// service does: a retried send is not a second message. Roles: client, agency, agent.
#[utoipa::path(
    tag = "messages",
    operation_id = "post_message",
    params(("id" = Uuid, Path, description = "Case id"), IdempotencyKey),
    request_body = PostMessage,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Posted", body = MessageView,
            headers(("Location" = String, description = "The message's URL"))),
        (status = 403, description = "The caller's role may not send this kind of message"),
        (status = 404, description = "No such case, or not one the caller can see"),
        (status = 409, description = "The case's status allows no messages from the caller (`wrong_state`)"),
        (status = 422, description = "A member breaks a rule: a file not of the case (`validation_failed`, `invalid_attachment` in `errors` at each such id), a mention of someone who does not read the message (`invalid_mention`) or twice (`repeated`), a channel or direction the caller's role does not write (`not_allowed` at `/channel` or `/direction`), or a note sent as a direction without `internal: true` (`required` at `/internal`)"),
    )
)]
#[post("/v1/cases/{id}/messages")]
pub async fn post_message(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: Token,
    id: web::Path<Uuid>,
    key: IdempotencyKey,
    body: ValidJson<PostMessage>,
) -> Result<HttpResponse, ApiError> {
    let notifier = state.notifier.clone();
    create_on_case(
        &state,
        &req,
        key,
        body.0,
        Asking::new(token, &req),
        id.into_inner().to_string(),
        move |conn, viewer, actor, case, input| post(conn, &notifier, viewer, actor, case, input),
    )
    .await
}

/// The message itself, once the caller may see the case and is not replayed an earlier answer.
fn post(
    conn: &mut DbConnection,
    notifier: &Notifier,
    viewer: &Viewer,
    actor: &Actor,
    case: CaseRow,
    input: PostMessage,
) -> Result<Created<MessageView>, ApiError> {
    // The files cited first, then the case: an attachment's deletion takes them in that order.
    if !input.attachment_ids.is_empty() {
        let ids: Vec<String> = input.attachment_ids.iter().map(Uuid::to_string).collect();
        repo::attachments::lock_for_citing(conn, &case.id, &ids)?;
    }
    // The status checked below must be the one a racing transition leaves. The update lock:
    // an agency's answer moves the SLA clocks, and the agency's triggers may change the case
    // on any message (two share locks would deadlock upgrading).
    let case = update_locked(conn, viewer, case)?;
    let case_id = case.id.clone();
    let channel = input.channel.unwrap_or(Channel::InApp);
    let direction = match viewer.role {
        Role::Platform => {
            return Err(ApiError::Forbidden(
                "Platform staff answer through support tickets.".into(),
            ));
        }
        Role::Client if input.internal => {
            return Err(ApiError::Forbidden(
                "Clients write no internal notes.".into(),
            ));
        }
        Role::Client => {
            if channel != Channel::InApp || input.direction.is_some_and(|d| d != Direction::Inbound)
            {
                return Err(ApiError::invalid_field(
                    "/channel",
                    "not_allowed",
                    "clients write in-app messages to the agency",
                ));
            }
            Direction::Inbound
        }
        Role::Agent if !input.internal => {
            return Err(ApiError::Forbidden(
                "Agents write internal notes only.".into(),
            ));
        }
        Role::Agent | Role::Agency if input.internal => {
            if input.direction.is_some_and(|d| d != Direction::Internal)
                || channel != Channel::InApp
            {
                return Err(ApiError::invalid_field(
                    "/direction",
                    "not_allowed",
                    "internal notes have no channel or direction",
                ));
            }
            Direction::Internal
        }
        Role::Agent | Role::Agency => match input.direction.unwrap_or(Direction::Outbound) {
            Direction::Internal => {
                return Err(ApiError::invalid_field(
                    "/internal",
                    "required",
                    "send `internal: true` for a note",
                ));
            }
            Direction::Inbound if channel == Channel::InApp => {
                return Err(ApiError::invalid_field(
                    "/channel",
                    "not_allowed",
                    "in-app messages from the client are the client's to send",
                ));
            }
            d => d,
        },
    };
    let status = case.status();
    let state = workflow::state_of(status);
    let open = match viewer.role {
        Role::Agent => state.agents_write,
        Role::Client => status != CaseStatus::AwaitingPayment && !state.terminal,
        _ => !state.terminal,
    };
    if !open {
        return Err(wrong_state(
            viewer,
            &case,
            format!("No messages from your role while the case is `{status}`."),
        ));
    }
    let (ids, foreign) = check_case_attachments(conn, viewer, &case_id, &input.attachment_ids)?;
    if !foreign.is_empty() {
        return Err(ApiError::validation(foreign));
    }
    let internal = direction == Direction::Internal;
    let mentioned = check_mentions(conn, &case, internal, &input.mentions)?;
    let row = MessageRow {
        id: repo::new_id(),
        case_id: case_id.clone(),
        sender_id: actor.user_id.clone(),
        sender_role: viewer.role.as_str().to_owned(),
        direction: direction.as_str().to_owned(),
        channel: channel.as_str().to_owned(),
        internal,
        body: input.body,
        attachment_ids: json!(ids).to_string(),
        created_at: db::now(),
        mention_ids: json!(mentioned.iter().map(|u| &u.id).collect::<Vec<_>>()).to_string(),
    };
    repo::messages::insert(conn, &row)?;
    if viewer.role == Role::Agency && direction == Direction::Outbound {
        // The agency answered the client: the first-response clock stops.
        let answered = crate::sla::Subject::case(&case);
        crate::sla::answered(conn, notifier, answered, crate::sla::Bump::Needed)?;
    }
    // What the agency sends the client shows the client its files.
    if direction != Direction::Internal && viewer.role != Role::Client {
        share_with_client(conn, actor, &case_id, &ids)?;
    }
    // The sender has read their own message.
    repo::messages::mark_read(conn, &case_id, &actor.user_id, &row.id)?;
    let change = Change::on_case(&case, "message", &row.id, "post");
    repo::audit::append(
        conn,
        actor,
        change.fields(vec![
            ("direction", None, Some(row.direction.clone())),
            ("channel", None, Some(row.channel.clone())),
            (
                "mentions",
                None,
                (!mentioned.is_empty()).then(|| row.mention_ids.clone()),
            ),
        ]),
    )?;
    // In-app messages reach the other side; interactions logged from other channels are
    // the agency's own record and notify nobody.
    let audience: &[Notified] = match (direction, channel) {
        (Direction::Internal, _) => &[Notified::Agents, Notified::Agency],
        (Direction::Inbound, Channel::InApp) => &[Notified::Agency],
        (Direction::Outbound, Channel::InApp) => &[Notified::Client],
        _ => &[],
    };
    notifier.notify_message(conn, &case, audience, mentioned, &actor.user_id, &row.body)?;
    Ok(Created {
        location: Some(message_url(&case_id, &row.id)),
        version: None,
        body: rendered(conn, row, case)?,
    })
}

/// The users a message mentions, sorted by id, or 422 at the first one who does not read it
/// among the case's people: the agency's staff, the case's agents in an internal note (while
/// they see the case), the client in a message that is not internal. Deactivated users read
/// nothing; platform staff read but answer through tickets, so they are not named. Read as the
/// notification's recipients, so telling them takes no second query.
fn check_mentions(
    conn: &mut DbConnection,
    case: &CaseRow,
    internal: bool,
    mentions: &[Uuid],
) -> Result<Vec<Recipient>, ApiError> {
    if mentions.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<String> = mentions.iter().map(Uuid::to_string).collect();
    let mut users = repo::notifications::recipients(conn, &ids)?;
    let agents_read = workflow::state_of(case.status()).agent_visible;
    let agents = match agents_read && users.iter().any(|u| u.role == Role::Agent.as_str()) {
        true => repo::notifications::agents_of(conn, &case.id)?,
        false => Vec::new(),
    };
    // On the case (as `CaseScope` narrows it), and of the part of the conversation the
    // message is in.
    let reads = |id: &String| {
        let Some((user, role)) = users
            .iter()
            .find(|u| u.id == *id)
            .and_then(|u| Some((u, Role::from_code(&u.role)?)))
        else {
            return false;
        };
        let on_case = match role {
            Role::Agency => user.agency_id.as_deref() == Some(case.agency_id.as_str()),
            Role::Agent => agents.contains(id),
            Role::Client => *id == case.client_id,
            Role::Platform => false,
        };
        on_case && audience_of(role).reads(internal)
    };
    for (i, id) in ids.iter().enumerate() {
        let pointer = format!("/mentions/{i}");
        if ids[..i].contains(id) {
            return Err(ApiError::invalid_field(
                &pointer,
                "repeated",
                "each person once",
            ));
        }
        if !reads(id) {
            return Err(ApiError::invalid_field(
                &pointer,
                "invalid_mention",
                "mention only who reads this message: the agency's staff, the case's agents \
                 (internal notes), the client (not in internal notes)",
            ));
        }
    }
    users.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(users)
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"up_to": "0193a6f8-9999-7c2d-8e3f-405162738495"}))]
pub struct MarkRead {
    /// The newest message read; everything before it counts as read too.
    pub up_to: Uuid,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"last_read_id": "0193a6f8-9999-7c2d-8e3f-405162738495", "unread": 0}))]
pub struct ReadState {
    #[schema(format = "uuid")]
    pub last_read_id: String,
    /// Messages of this case the caller has still not read.
    pub unread: i64,
}

/// Mark messages read
///
/// Moves the caller's read mark on this case forward to `up_to` (never back). The message must
/// be one the caller can read (404 otherwise). Roles: anyone who can see the case.
#[utoipa::path(
    tag = "messages",
    operation_id = "mark_messages_read",
    params(("id" = Uuid, Path, description = "Case id")),
    request_body = MarkRead,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's read state", body = ReadState),
        (status = 404, description = "No such case or message, or not one the caller can see"),
    )
)]
#[post("/v1/cases/{id}/messages/read")]
pub async fn mark_read(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: Token,
    id: web::Path<Uuid>,
    body: ValidJson<MarkRead>,
) -> Result<HttpResponse, ApiError> {
    let asking = Asking::new(token, &req);
    let case_id = id.into_inner().to_string();
    let up_to = body.0.up_to.to_string();
    let read = db::write(&state.pool, move |conn| {
        let Asked { viewer, .. } = asking.resolve(conn)?;
        let user_id = viewer.user_id.clone();
        find_visible(conn, &viewer, &case_id)?;
        let message = repo::messages::find(conn, &case_id, &up_to, audience_of(viewer.role))?
            .ok_or_else(message_not_found)?;
        let last_read_id = repo::messages::mark_read(conn, &case_id, &user_id, &message.id)?;
        let unread = unread_in(conn, &viewer, &case_id)?;
        Ok(ReadState {
            last_read_id,
            unread,
        })
    })
    .await?;
    Ok(HttpResponse::Ok().json(read))
}

/// Whose unread messages a caller's counts are: theirs, in their part of the conversation.
pub fn reader(viewer: &Viewer) -> Reader<'_> {
    Reader {
        user_id: &viewer.user_id,
        audience: audience_of(viewer.role),
        own_side: own_side(viewer.role),
    }
}

/// Unread messages of one case for a caller: from the other side, after the caller's read
/// mark.
pub fn unread_in(
    conn: &mut db::DbConnection,
    viewer: &Viewer,
    case_id: &str,
) -> Result<i64, ApiError> {
    Ok(repo::messages::unread_in_case(
        conn,
        case_id,
        reader(viewer),
    )?)
}

/// `unread_in` for each case of a list page.
pub fn unread_for(
    conn: &mut db::DbConnection,
    viewer: &Viewer,
    case_ids: &[String],
) -> Result<HashMap<String, i64>, ApiError> {
    Ok(repo::messages::unread_counts(
        conn,
        case_ids,
        reader(viewer),
    )?)
}
