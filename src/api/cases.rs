//! Cases: buying a service creates one; the card, the list and PATCH of title, description and
//! priority. Lifecycle moves are in `transitions`, people in `assignment`.

use actix_web::{HttpRequest, HttpResponse, get, patch, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use validator::Validate;

use crate::api::case_access::{Viewer, case_not_found, find_visible, lost_race, wrong_state};
use crate::api::messages::reader;
use crate::api::required_data::field_rows;
use crate::api::services::{AgencySummary, template_of};
use crate::api::users::ClientIdentity;
use crate::api::{Asked, Asking, nullable, timestamp};
use crate::app::AppState;
use crate::auth::Token;
use crate::db::{self, DbConnection};
use crate::domain::{CaseStatus, Locale, PaymentMethod, PaymentState, Priority, Role, code_enum};
use crate::errors::{ApiError, FieldError};
use crate::events::Event;
use crate::http::extract::{
    IfMatch, Page, PageRequest, Query, ValidJson, etag, invalid_cursor, is_row_id, page_response,
    versioned_response,
};
use crate::http::idempotency::{self, Authorized, Created, IdempotencyKey};
use crate::i18n::{self, AcceptLanguage};
use crate::repo;
use crate::repo::audit::Change;
use crate::repo::cases::{AssigneeFilter, CardRow, CaseChanges, CaseFilter, CaseRow, CaseScope};
use crate::repo::services::ServiceScope;
use crate::sla::SlaState;
use crate::workflow::{self, AllowedAction};

#[derive(Debug, Serialize, ToSchema)]
pub struct ServiceSummary {
    #[schema(format = "uuid")]
    pub id: String,
    pub title: String,
}

/// A user named on a case.
#[derive(Debug, Serialize, ToSchema)]
pub struct PersonView {
    #[schema(format = "uuid")]
    pub id: String,
    pub name: String,
}

impl From<repo::cases::Person> for PersonView {
    fn from(p: repo::cases::Person) -> Self {
        PersonView {
            id: p.id,
            name: p.name,
        }
    }
}

/// The buyer, as agency and platform staff see them.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientView {
    #[schema(format = "uuid")]
    pub id: String,
    pub name: String,
    #[schema(format = "email")]
    pub email: String,
    pub identity: ClientIdentity,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Resolution {
    /// The kind of outcome, e.g. `solved`, `partially_solved`, `not_solvable`.
    #[serde(rename = "type")]
    pub resolution_type: String,
    pub text: String,
}

/// The case card.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0193a6f4-2222-7c2d-8e3f-405162738495",
    "number": "DOS-2026-000123",
    "title": "Where does my business partner go on Fridays?",
    "description": "He leaves the office at 14:00 every Friday and is unreachable until Monday.",
    "service": {"id": "0193a6f3-1111-7c2d-8e3f-405162738495", "title": "Infidelity investigation"},
    "agency": {"id": "0193a6f1-0a1b-7c2d-8e3f-405162738495", "name": "Agenzia Investigativa Rossi"},
    "status": "in_progress",
    "status_label": "Investigation in progress",
    "allowed_actions": [
        {"action": "suspend", "label": "Suspend", "requires": ["reason"]},
        {"action": "complete", "label": "Complete", "requires": ["resolution_type", "resolution"]}
    ],
    "priority": "normal",
    "payment_method": "card",
    "payment_state": "paid",
    "assignee": {"id": "0193a6f2-2c4e-7b51-9d0a-3f1e2a4b5c6d", "name": "Marta Rossi"},
    "agents": [{"id": "0193a6f2-3333-7b51-9d0a-3f1e2a4b5c6d", "name": "Luca Bianchi"}],
    "client_open_cases": 2,
    "unread_messages": 1,
    "open_requests": [],
    "client": {"id": "0193a6f2-4444-7b51-9d0a-3f1e2a4b5c6d", "name": "Giulia Verdi", "email": "giulia@example.com",
               "identity": {"id_document_type": "national_id", "id_document_number": "CA12345BC", "account_number": "IT60X0542811101000000123456"}},
    "resolution": null,
    "disputed": false,
    "last_survey": null,
    "sla": {"state": "at_risk", "breached": false, "due_at": "2026-11-24T17:00:00Z"},
    "tags": ["vip"],
    "version": 7,
    "created_at": "2026-11-20T10:00:00Z",
    "updated_at": "2026-11-22T16:30:00Z",
    "closed_at": null
}))]
pub struct CaseView {
    #[schema(format = "uuid")]
    pub id: String,
    /// Human number, `DOS-<year>-<6 or more digits>`, unique.
    #[schema(example = "DOS-2026-000123")]
    pub number: String,
    pub title: String,
    pub description: String,
    pub service: ServiceSummary,
    pub agency: AgencySummary,
    pub status: CaseStatus,
    /// `status` in the language chosen by `Accept-Language` (else the caller's locale).
    pub status_label: &'static str,
    /// What the caller may do now, from the workflow table.
    pub allowed_actions: Vec<AllowedAction>,
    pub priority: Priority,
    pub payment_method: PaymentMethod,
    pub payment_state: PaymentState,
    /// The agency operator responsible for the case.
    pub assignee: Option<PersonView>,
    /// Field agents working the case.
    pub agents: Vec<PersonView>,
    /// The client's open (not terminal) cases among those the caller can see, this one included
    /// while it is open (alert when > 1).
    pub client_open_cases: i64,
    /// Messages of this case the caller can read, from the other side of the conversation (not
    /// the caller's own side: client, agents, or agency and platform staff), after the caller's
    /// read mark.
    pub unread_messages: i64,
    /// What the agency asked the client and is still waiting for, newest first: the latest
    /// 100 (`GET /v1/cases/{id}/requests?status=open` lists them all).
    #[schema(max_items = 100)]
    pub open_requests: Vec<crate::api::requests::RequestView>,
    /// The buyer with their identity: agency and platform callers only, else `null`.
    pub client: Option<ClientView>,
    /// Set by `complete`; cleared by `reopen`.
    pub resolution: Option<Resolution>,
    /// The client disputed the completion; cleared by `reopen`.
    pub disputed: bool,
    /// The client's newest rating of the closed case (`confirm_completion` or
    /// `POST /v1/cases/{id}/survey`); `null` until they rate it.
    pub last_survey: Option<crate::api::surveys::SurveyView>,
    /// `null` when no SLA policy applied to the case.
    pub sla: Option<SlaSummary>,
    /// The agency's labels, set by its staff (`PATCH`) and its triggers (`add_tag`); `null`
    /// for clients, who are not shown them.
    #[schema(value_type = Option<Vec<Tag>>)]
    pub tags: Option<Vec<String>>,
    /// Increases with every change to the case, its required data, its operator, agents, open
    /// requests or SLA summary; the `ETag`. Outside it: the live counts `unread_messages` and
    /// `client_open_cases`, and the names of the service, agency and people, which belong to
    /// their own resources: a conditional GET may answer 304 while those have moved.
    pub version: i64,
    #[serde(serialize_with = "crate::api::rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::api::rfc3339")]
    pub updated_at: DateTime<Utc>,
    /// When the case reached a terminal status.
    #[serde(serialize_with = "crate::api::rfc3339_opt")]
    pub closed_at: Option<DateTime<Utc>>,
}

/// A case's or ticket's SLA at a glance; `GET /v1/cases/{id}/sla` (`/v1/tickets/{id}/sla`) has
/// each clock.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"state": "at_risk", "breached": false, "due_at": "2026-11-24T17:00:00Z"}))]
pub struct SlaSummary {
    pub state: SlaState,
    /// The breach flag: a clock passed its target, which stays on record.
    pub breached: bool,
    /// The earliest due time of a running clock still short of its target; `null` while none
    /// runs.
    #[serde(serialize_with = "crate::api::rfc3339_opt")]
    pub due_at: Option<DateTime<Utc>>,
}

impl SlaSummary {
    /// From the stored SLA columns; `None` without clocks.
    pub fn of(state: Option<&str>, due_at: Option<chrono::NaiveDateTime>) -> Option<SlaSummary> {
        let state = SlaState::from_code(state?)?;
        Some(SlaSummary {
            state,
            breached: state == SlaState::Breached,
            due_at: due_at.map(timestamp),
        })
    }
}

/// One row of the case list.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0193a6f4-2222-7c2d-8e3f-405162738495", "number": "DOS-2026-000123",
    "title": "Where does my business partner go on Fridays?", "status": "in_progress",
    "status_label": "Investigation in progress", "priority": "normal",
    "service_id": "0193a6f3-1111-7c2d-8e3f-405162738495",
    "agency_id": "0193a6f1-0a1b-7c2d-8e3f-405162738495",
    "client_id": "0193a6f2-4444-7b51-9d0a-3f1e2a4b5c6d",
    "assignee_id": "0193a6f2-2c4e-7b51-9d0a-3f1e2a4b5c6d", "payment_method": "card",
    "payment_state": "paid", "disputed": false, "unread_messages": 1,
    "sla": {"state": "on_track", "breached": false, "due_at": "2026-12-04T10:00:00Z"},
    "tags": ["vip"], "version": 7,
    "created_at": "2026-11-20T10:00:00Z", "updated_at": "2026-11-22T16:30:00Z"
}))]
pub struct CaseSummary {
    #[schema(format = "uuid")]
    pub id: String,
    pub number: String,
    pub title: String,
    pub status: CaseStatus,
    pub status_label: &'static str,
    pub priority: Priority,
    #[schema(format = "uuid")]
    pub service_id: String,
    #[schema(format = "uuid")]
    pub agency_id: String,
    #[schema(format = "uuid")]
    pub client_id: String,
    #[schema(format = "uuid")]
    pub assignee_id: Option<String>,
    pub payment_method: PaymentMethod,
    pub payment_state: PaymentState,
    pub disputed: bool,
    /// As the card's `unread_messages`: readable, from the other side, after the caller's read
    /// mark.
    pub unread_messages: i64,
    /// `null` when no SLA policy applied to the case.
    pub sla: Option<SlaSummary>,
    /// As the card's `tags`: `null` for clients.
    #[schema(value_type = Option<Vec<Tag>>)]
    pub tags: Option<Vec<String>>,
    pub version: i64,
    #[serde(serialize_with = "crate::api::rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::api::rfc3339")]
    pub updated_at: DateTime<Utc>,
}

// The spec's item of every `tags` and `tag`; the code keeps tags as strings, checked by
// `crate::domain::tag_problem`.
/// A case's tag: 1 to 40 characters, each a letter that is not upper-case (in any script:
/// `città`, `日本`), a digit, `-` or `_`.
#[derive(ToSchema)]
#[schema(min_length = 1, max_length = 40, example = "vip")]
pub struct Tag(pub String);

/// The case's tags as `role` is shown them: not at all for clients.
fn tags_for(role: Role, row: &CaseRow) -> Option<Vec<String>> {
    (role != Role::Client).then(|| row.tags())
}

fn payment_method(row: &CaseRow) -> PaymentMethod {
    PaymentMethod::from_code(&row.payment_method).unwrap_or(PaymentMethod::Card)
}

fn payment_state(row: &CaseRow) -> PaymentState {
    PaymentState::from_code(&row.payment_state).unwrap_or(PaymentState::Pending)
}

impl CaseSummary {
    fn new(row: CaseRow, (locale, role): (Locale, Role), unread_messages: i64) -> CaseSummary {
        let status = row.status();
        CaseSummary {
            unread_messages,
            tags: tags_for(role, &row),
            sla: SlaSummary::of(row.sla_state.as_deref(), row.sla_due_at),
            status,
            status_label: i18n::status_label(status, locale),
            priority: row.priority(),
            payment_method: payment_method(&row),
            payment_state: payment_state(&row),
            id: row.id,
            number: row.number,
            title: row.title,
            service_id: row.service_id,
            agency_id: row.agency_id,
            client_id: row.client_id,
            assignee_id: row.assignee_id,
            disputed: row.disputed,
            version: row.version,
            created_at: timestamp(row.created_at),
            updated_at: timestamp(row.updated_at),
        }
    }
}

/// The card of a case as `viewer` may see it, or 404.
pub fn visible_card(
    conn: &mut DbConnection,
    viewer: &Viewer,
    id: &str,
) -> Result<CaseView, ApiError> {
    let row = repo::cases::find_card(conn, &viewer.scope, id, reader(viewer))?
        .ok_or_else(case_not_found)?;
    // Open requests and a closed case's survey come from further statements, which must see the
    // case row's snapshot (their changes move the version the ETag carries): outside a
    // transaction (`db::read_latest` on PostgreSQL) the card is read again inside one. Most
    // cases have neither.
    let reads_more = row.open_requests.unwrap_or(0) > 0 || row.case.status() == CaseStatus::Closed;
    if reads_more && !db::in_a_transaction(conn) {
        return db::in_read_transaction(conn, |conn| visible_card(conn, viewer, id));
    }
    card(conn, viewer, row)
}

/// Re-reads a case after a change and renders its card.
pub fn reload_card(
    conn: &mut DbConnection,
    viewer: &Viewer,
    id: &str,
) -> Result<CaseView, ApiError> {
    // The change may have hidden the case from the caller (an agent after suspension ends);
    // the caller still gets the card of what they just did.
    let row = repo::cases::find_card(conn, &CaseScope::All, id, reader(viewer))?
        .ok_or_else(case_not_found)?;
    card(conn, viewer, row)
}

/// The full card of a case read with its names (`repo::cases::find_card`).
fn card(conn: &mut DbConnection, viewer: &Viewer, row: CardRow) -> Result<CaseView, ApiError> {
    let client_open_cases = repo::cases::open_cases_of_client(conn, &viewer.scope, &row)?;
    let CardRow {
        case: row,
        service_title,
        agency_name,
        assignee_name,
        client,
        open_cases_at_agency: _,
        unread_messages,
        agents,
        open_requests,
    } = row;
    let assignee = row
        .assignee_id
        .clone()
        .zip(assignee_name)
        .map(|(id, name)| PersonView { id, name });
    let agents = agents.0.into_iter().map(PersonView::from).collect();
    let open_requests = match open_requests {
        Some(n) if n > 0 => crate::api::requests::open_requests(conn, &row.id)?,
        _ => Vec::new(),
    };
    // Read with the case in one statement; only staff are shown it.
    let client = match viewer.role {
        Role::Agency | Role::Platform => Some(ClientView {
            id: row.client_id.clone(),
            name: client.name,
            email: client.email,
            identity: ClientIdentity {
                id_document_type: client.id_document_type,
                id_document_number: client.id_document_number,
                account_number: client.account_number,
            },
        }),
        Role::Agent | Role::Client => None,
    };
    let status = row.status();
    // Only a closed case is rated: the others' cards need not look.
    let last_survey = match status {
        CaseStatus::Closed => repo::surveys::last(conn, &row.id)?.map(Into::into),
        _ => None,
    };
    let resolution = match (row.resolution_type.clone(), row.resolution.clone()) {
        (Some(resolution_type), Some(text)) => Some(Resolution {
            resolution_type,
            text,
        }),
        _ => None,
    };
    let sla = SlaSummary::of(row.sla_state.as_deref(), row.sla_due_at);
    let tags = tags_for(viewer.role, &row);
    Ok(CaseView {
        status,
        status_label: i18n::status_label(status, viewer.locale),
        allowed_actions: AllowedAction::list(viewer.role, status, row.disputed, viewer.locale),
        priority: row.priority(),
        payment_method: payment_method(&row),
        payment_state: payment_state(&row),
        service: ServiceSummary {
            id: row.service_id,
            title: service_title,
        },
        agency: AgencySummary {
            id: row.agency_id,
            name: agency_name,
        },
        assignee,
        agents,
        client_open_cases,
        unread_messages: unread_messages.unwrap_or(0),
        open_requests,
        client,
        resolution,
        sla,
        tags,
        id: row.id,
        number: row.number,
        title: row.title,
        description: row.description,
        disputed: row.disputed,
        last_survey,
        version: row.version,
        created_at: timestamp(row.created_at),
        updated_at: timestamp(row.updated_at),
        closed_at: row.closed_at.map(timestamp),
    })
}

#[derive(Debug, Serialize, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "service_id": "0193a6f3-1111-7c2d-8e3f-405162738495",
    "payment_method": "bank_transfer",
    "title": "Where does my business partner go on Fridays?",
    "description": "He leaves the office at 14:00 every Friday and is unreachable until Monday."
}))]
pub struct CreateCase {
    pub service_id: Uuid,
    /// `bank_transfer` starts in `awaiting_payment`; `card` (paid at checkout) in `in_approval`.
    pub payment_method: PaymentMethod,
    #[serde(deserialize_with = "crate::api::trimmed")]
    #[validate(length(min = 3, max = 200))]
    #[schema(min_length = 3, max_length = 200)]
    pub title: String,
    #[serde(deserialize_with = "crate::api::trimmed")]
    #[validate(length(min = 10, max = 10000))]
    #[schema(min_length = 10, max_length = 10000)]
    pub description: String,
}

/// Buy a service (create a case)
///
/// A client buys a service: the server fills the number, the agency (from the service), the
/// priority (the service's default), the payment state and the status (`awaiting_payment` for a
/// bank transfer, `in_approval` for a card), and copies the service's required-data template
/// onto the case. Accepts `Idempotency-Key`: a retry with the same key and body replays the first
/// response (`Idempotent-Replayed: true`), the same key with another body is 422, a retry racing
/// the first is 409; keys live 24 hours. A case paid by card goes to an available operator of
/// the agency at once when one has room (`auto_assign`, in the rule log). Roles: client.
#[utoipa::path(
    tag = "cases",
    operation_id = "create_case",
    request_body = CreateCase,
    params(IdempotencyKey, AcceptLanguage),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = CaseView,
            headers(("Location" = String, description = "The new case's URL"), ("ETag" = String, description = "Its version"))),
        (status = 403, description = "Only clients buy services"),
        (status = 422, description = "A member breaks a rule, or the service cannot be bought (`service_not_for_sale`: none is active with this id; not to be confused with the 503 `service_unavailable`, an outage)"),
    )
)]
#[post("/v1/cases")]
pub async fn create_case(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: Token,
    key: IdempotencyKey,
    body: ValidJson<CreateCase>,
) -> Result<HttpResponse, ApiError> {
    let asking = Asking::new(token, &req);
    let notifier = state.notifier.clone();
    let capacity = state.settings.operator_capacity;
    idempotency::create(&state, &req, key, body.0, move |conn| {
        let Asked {
            caller,
            viewer,
            actor,
        } = asking.resolve(conn)?;
        caller.require(caller.role == Role::Client, "buy services")?;
        let user_id = caller.id.clone();
        let client_id = caller.id;
        let create = move |conn: &mut DbConnection, input: CreateCase| {
            let service_id = input.service_id.to_string();
            let (service, _) = repo::services::find(
                conn,
                &ServiceScope::Catalog { own_agency: None },
                &service_id,
            )?
            .ok_or_else(|| {
                ApiError::invalid_field(
                    "/service_id",
                    "service_not_for_sale",
                    "no active service has this id",
                )
            })?;
            let now = db::now();
            let (status, payment) = match input.payment_method {
                PaymentMethod::BankTransfer => (CaseStatus::AwaitingPayment, PaymentState::Pending),
                PaymentMethod::Card => (CaseStatus::InApproval, PaymentState::Paid),
            };
            let paid = status == CaseStatus::InApproval;
            if paid {
                // The agency's queue is served below: its lock before any row, the year's case
                // counter included (else a wait for it would hold every agency's purchases).
                repo::presence::lock_queue(conn, &service.agency_id)?;
            }
            let row = CaseRow {
                id: repo::new_id(),
                number: repo::cases::next_number(conn, now)?,
                title: input.title,
                description: input.description,
                service_id,
                agency_id: service.agency_id.clone(),
                client_id,
                status: status.as_str().to_owned(),
                priority: service.default_priority.clone(),
                payment_method: input.payment_method.as_str().to_owned(),
                payment_state: payment.as_str().to_owned(),
                assignee_id: None,
                disputed: false,
                resolution_type: None,
                resolution: None,
                version: 1,
                created_at: now,
                updated_at: now,
                closed_at: None,
                sla_state: None,
                sla_due_at: None,
                tags: "[]".into(),
                sla_policy_id: service.sla_policy_id.clone(),
            };
            repo::cases::insert(conn, &row)?;
            let fields = field_rows(&row.id, template_of(&service));
            repo::cases::insert_fields(conn, &fields)?;
            let created = Change::on_case(&row, "case", &row.id, "create");
            let mut audit = created.fields(vec![
                ("number", None, Some(row.number.clone())),
                ("status", None, Some(row.status.clone())),
                ("title", None, Some(row.title.clone())),
                ("priority", None, Some(row.priority.clone())),
                ("payment_method", None, Some(row.payment_method.clone())),
            ]);
            audit.push(created.field("service_id", None, Some(row.service_id.clone())));
            repo::audit::append(conn, &actor, audit)?;
            // Paid by card: its SLA clocks start, and the agency's queue, this case at its end,
            // goes to who has room. Webhooks and the agency's triggers hear of the case in
            // between: a trigger's priority moves the clocks, its assignment comes first.
            if paid {
                crate::sla::started(conn, &notifier, crate::sla::Subject::case(&row))?;
            }
            notifier.notify(conn, &row, Event::CaseCreated, &[], None, None, None)?;
            if paid {
                crate::rules::serve_queue(conn, &notifier, &row.agency_id, capacity, "case_paid")?;
            }
            let view = reload_card(conn, &viewer, &row.id)?;
            Ok(Created {
                location: Some(format!("/v1/cases/{}", view.id)),
                version: Some(view.version),
                body: view,
            })
        };
        Ok(Authorized { user_id, create })
    })
    .await
}

/// `me`, `none` or a user id.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum AssigneeParam {
    Keyword(AssigneeKeyword),
    User(UserId),
}

/// A user's id.
// Its pattern keeps `me` and `none` from reading as ids too in `AssigneeParam`'s `oneOf`,
// which takes exactly one.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[schema(
    value_type = String,
    format = Uuid,
    pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)]
pub struct UserId(pub Uuid);

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AssigneeKeyword {
    Me,
    None,
}

impl AssigneeParam {
    /// The user it names (`me` is the caller), or nobody.
    fn filter(self, caller_id: &str) -> AssigneeFilter {
        match self {
            AssigneeParam::Keyword(AssigneeKeyword::Me) => AssigneeFilter::User(caller_id.into()),
            AssigneeParam::Keyword(AssigneeKeyword::None) => AssigneeFilter::Nobody,
            AssigneeParam::User(id) => AssigneeFilter::User(id.0.to_string()),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListCasesQuery {
    /// Only these statuses (repeat the parameter for several).
    #[serde(default)]
    #[param(style = Form, explode)]
    pub status: Vec<CaseStatus>,
    /// `me` (the caller), `none` (nobody: the "to assign" view) or a user id.
    #[param(value_type = Option<AssigneeParam>, example = "me")]
    pub assignee: Option<AssigneeParam>,
    /// Who delegated the case to its operator: `me` (the "delegated" view: the cases the caller
    /// handed to another operator, until someone takes them, the new operator included),
    /// `none` (cases nobody delegated) or a user id. Agency and platform staff only (403).
    #[param(value_type = Option<AssigneeParam>, example = "me")]
    pub delegated_by: Option<AssigneeParam>,
    /// Only this client's cases.
    pub client_id: Option<Uuid>,
    /// Only this agency's cases (useful to platform staff; others see one agency anyway).
    pub agency_id: Option<Uuid>,
    /// Only cases bought from this service.
    pub service_id: Option<Uuid>,
    /// Only these priorities (repeat the parameter for several).
    #[serde(default)]
    #[param(style = Form, explode)]
    pub priority: Vec<Priority>,
    /// Only cases whose SLA is in these states (repeat the parameter for several):
    /// `breached` and `at_risk` are the SLA views.
    #[serde(default)]
    #[param(style = Form, explode)]
    pub sla: Vec<SlaState>,
    /// Created at or after this instant (RFC 3339).
    #[serde(default, deserialize_with = "crate::api::instant_opt")]
    pub created_from: Option<DateTime<Utc>>,
    /// Created before this instant (RFC 3339).
    #[serde(default, deserialize_with = "crate::api::instant_opt")]
    pub created_to: Option<DateTime<Utc>>,
    /// Only cases with one of these tags (repeat the parameter for several, at most 20; each 1–40
    /// letters that are not upper-case, digits, `-` or `_`, else 400). Staff only: a client's list takes none
    /// (403), as clients are not shown tags.
    #[serde(default)]
    #[param(style = Form, explode, max_items = 20, value_type = Vec<Tag>)]
    pub tag: Vec<String>,
    /// Text contained in the number or the title, case-insensitively for ASCII letters (1–100 characters, not only spaces).
    // "Not only spaces": a character outside Unicode's White_Space, the set `trim` strips, listed
    // because `\s` means something else in JavaScript's and Python's regexes.
    #[param(
        min_length = 1,
        max_length = 100,
        pattern = "[^\\t-\\r \\x85\\xA0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]"
    )]
    pub q: Option<String>,
    /// `newest` (the default) or `oldest` first, by when the case was bought. A cursor is of
    /// its order: sent with the other one it is 400 `invalid_cursor` (the `Link` keeps `sort`).
    pub sort: Option<CaseOrder>,
    #[param(minimum = 1, maximum = 100, default = 25)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

code_enum! {
    /// The order of the case list.
    CaseOrder {
        Newest = "newest",
        Oldest = "oldest",
    }
}

impl CaseOrder {
    /// A cursor's key: the last id of its page, marked when the page was oldest first, so that
    /// no cursor is read in the other order (it would page back over what was seen).
    fn key(self, id: &str) -> String {
        match self {
            CaseOrder::Newest => id.to_owned(),
            CaseOrder::Oldest => format!("oldest_{id}"),
        }
    }

    /// The id a cursor's key of this order holds; 400 for another order's, or any other key.
    fn resume_after(self, key: &str) -> Result<String, ApiError> {
        let id = match self {
            CaseOrder::Newest => Some(key),
            CaseOrder::Oldest => key.strip_prefix("oldest_"),
        };
        id.filter(|id| is_row_id(id))
            .map(str::to_owned)
            .ok_or_else(invalid_cursor)
    }
}

/// List cases
///
/// The cases the caller may see, newest first (`sort=oldest` for the other way), with keyset
/// pagination (`next_cursor` and a `Link` header): platform staff see all; agency staff their
/// agency's; agents the cases they are assigned to while `in_progress` or `suspended`; clients
/// their own. Filters combine. Labels follow `Accept-Language`. Roles: any user.
#[utoipa::path(
    tag = "cases",
    operation_id = "list_cases",
    params(ListCasesQuery, AcceptLanguage),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "One page of cases", body = Page<CaseSummary>,
            headers(("Link" = String, description = "`<…>; rel=\"next\"` when another page follows"),
                ("Vary" = String, description = "`accept-language`: the labels follow it"))),
        (status = 403, description = "A client filtered by `tag` (clients are not shown tags), or a client or an agent by `delegated_by` (the agency's own view)"),
    )
)]
#[get("/v1/cases")]
pub async fn list_cases(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: Token,
    query: Query<ListCasesQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.0;
    let order = query.sort.unwrap_or(CaseOrder::Newest);
    let mut page = PageRequest::keyed(query.limit, query.cursor.as_deref())?;
    page.after = page.after.map(|key| order.resume_after(&key)).transpose()?;
    if query
        .q
        .as_ref()
        .is_some_and(|q| q.trim().is_empty() || q.chars().count() > 100)
    {
        return Err(crate::http::fallback::invalid_query(
            "`q` must be 1–100 characters, not only spaces".into(),
        ));
    }
    if query.tag.len() > crate::domain::TAGS_MAX
        || query
            .tag
            .iter()
            .any(|t| crate::domain::tag_problem(t).is_some())
    {
        return Err(crate::http::fallback::invalid_query(
            "`tag`: at most 20, each of 1–40 letters that are not upper-case, digits, `-` or `_`"
                .into(),
        ));
    }
    let language = i18n::requested(&req);
    // The page is one statement; the unread counts are live counts, as on the card.
    let (rows, unread, page, reader) = db::read_latest(&state.pool, move |conn| {
        let caller = token.user(conn)?;
        let viewer = Viewer::asking(&caller, language);
        if viewer.role == Role::Client && !query.tag.is_empty() {
            return Err(ApiError::Forbidden(
                "Clients are not shown tags, nor filter by them.".into(),
            ));
        }
        if matches!(viewer.role, Role::Client | Role::Agent) && query.delegated_by.is_some() {
            return Err(ApiError::Forbidden(
                "Who handed a case to whom is the agency's: `delegated_by` is for agency and \
                 platform staff."
                    .into(),
            ));
        }
        let tags = query.tag;
        let filter = CaseFilter {
            statuses: query.status.iter().map(|s| s.as_str()).collect(),
            priorities: query.priority.iter().map(|p| p.as_str()).collect(),
            sla_states: query.sla.iter().map(|s| s.as_str()).collect(),
            assignee: query.assignee.map(|a| a.filter(&caller.id)),
            delegated_by: query.delegated_by.map(|a| a.filter(&caller.id)),
            client_id: query.client_id.map(|id| id.to_string()),
            agency_id: query.agency_id.map(|id| id.to_string()),
            service_id: query.service_id.map(|id| id.to_string()),
            created_from: query.created_from.map(|t| t.naive_utc()),
            created_to: query.created_to.map(|t| t.naive_utc()),
            q: query.q.map(|q| q.trim().to_owned()),
            tags,
            oldest_first: order == CaseOrder::Oldest,
        };
        let rows = repo::cases::list(
            conn,
            &viewer.scope,
            &filter,
            page.after.as_deref(),
            page.fetch(),
        )?;
        // One grouped query for the whole page.
        let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
        let unread = crate::api::messages::unread_for(conn, &viewer, &ids)?;
        Ok((rows, unread, page, (viewer.locale, viewer.role)))
    })
    .await?;
    let keyed = rows.into_iter().map(|r| (order.key(&r.id), r)).collect();
    let page = page.page(
        keyed,
        |(key, _)| key,
        |(_, r)| {
            let n = unread.get(&r.id).copied().unwrap_or(0);
            CaseSummary::new(r, reader, n)
        },
    );
    Ok(i18n::varies_by_language(page_response(&req, page)))
}

/// Get a case (the case card)
///
/// Everything about one case the caller may see, with the actions they may take now. Client
/// identity is shown to agency and platform callers only. Answers 304 when `If-None-Match`
/// names the current version. Roles: any user who can see the case (404 otherwise).
#[utoipa::path(
    tag = "cases",
    operation_id = "get_case",
    params(("id" = Uuid, Path, description = "Case id"),
           AcceptLanguage),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The case card", body = CaseView, headers(("ETag" = String, description = "Its version"),
            ("Vary" = String, description = "`accept-language`: the labels follow it"))),
        (status = 304, description = "Unchanged since the `If-None-Match` version", headers(("ETag" = String, description = "Its version"),
            ("Vary" = String, description = "`accept-language`"))),
        (status = 404, description = "No such case, or not one the caller can see"),
    )
)]
#[get("/v1/cases/{id}")]
pub async fn get_case(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: Token,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let language = i18n::requested(&req);
    let id = id.into_inner().to_string();
    // The caller's check and the card need not share a snapshot; the card is one statement.
    let view = db::read_latest(&state.pool, move |conn| {
        let viewer = Viewer::asking(&token.user(conn)?, language);
        visible_card(conn, &viewer, &id)
    })
    .await?;
    Ok(i18n::varies_by_language(versioned_response(
        &req,
        view.version,
        &view,
    )))
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"priority": "high"}))]
pub struct UpdateCase {
    /// Agency staff, platform staff, and the client while `in_approval`.
    #[serde(default, deserialize_with = "crate::api::trimmed_opt")]
    #[validate(length(min = 3, max = 200))]
    #[schema(min_length = 3, max_length = 200)]
    pub title: Option<String>,
    /// Agency staff, platform staff, and the client while `in_approval`.
    #[serde(default, deserialize_with = "crate::api::trimmed_opt")]
    #[validate(length(min = 10, max = 10000))]
    #[schema(min_length = 10, max_length = 10000)]
    pub description: Option<String>,
    /// Agency and platform staff only.
    pub priority: Option<Priority>,
    /// Agency and platform staff only: the case's whole list of tags, at most 20 (triggers add
    /// no more), each once, of 1 to 40 letters that are not upper-case, digits, `-` or `_`.
    #[schema(max_items = 20, value_type = Option<BTreeSet<Tag>>)]
    pub tags: Option<Vec<String>>,
    /// Read-only fields: sending any of them is 422 `read_only_field`.
    #[serde(flatten)]
    #[schema(ignore)]
    pub read_only: ReadOnlyCaseFields,
}

/// A case's tags as stored (a JSON array), each checked and once.
fn tags_json(tags: &[String]) -> Result<String, ApiError> {
    if tags.len() > crate::domain::TAGS_MAX {
        return Err(ApiError::invalid_field(
            "/tags",
            "too_long",
            format!("at most {} tags", crate::domain::TAGS_MAX),
        ));
    }
    let mut errors = Vec::new();
    for (i, tag) in tags.iter().enumerate() {
        let pointer = format!("/tags/{i}");
        if let Some(problem) = crate::domain::tag_problem(tag) {
            errors.push(FieldError::new(pointer, "invalid_value", problem));
        } else if tags[..i].contains(tag) {
            errors.push(FieldError::new(
                pointer,
                "repeated",
                "each tag at most once",
            ));
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    serde_json::to_string(tags).map_err(ApiError::internal)
}

/// Members of the card that PATCH cannot change (transitions, assignment and the server own them).
#[derive(Debug, Default, Deserialize)]
pub struct ReadOnlyCaseFields {
    #[serde(default, deserialize_with = "nullable")]
    status: Option<Option<serde_json::Value>>,
    #[serde(default, deserialize_with = "nullable")]
    number: Option<Option<serde_json::Value>>,
    #[serde(default, deserialize_with = "nullable")]
    agency: Option<Option<serde_json::Value>>,
    #[serde(default, deserialize_with = "nullable")]
    agency_id: Option<Option<serde_json::Value>>,
    #[serde(default, deserialize_with = "nullable")]
    client: Option<Option<serde_json::Value>>,
    #[serde(default, deserialize_with = "nullable")]
    client_id: Option<Option<serde_json::Value>>,
    #[serde(default, deserialize_with = "nullable")]
    service: Option<Option<serde_json::Value>>,
    #[serde(default, deserialize_with = "nullable")]
    service_id: Option<Option<serde_json::Value>>,
    #[serde(default, deserialize_with = "nullable")]
    assignee: Option<Option<serde_json::Value>>,
    #[serde(default, deserialize_with = "nullable")]
    assignee_id: Option<Option<serde_json::Value>>,
    #[serde(default, deserialize_with = "nullable")]
    payment_method: Option<Option<serde_json::Value>>,
    #[serde(default, deserialize_with = "nullable")]
    payment_state: Option<Option<serde_json::Value>>,
    #[serde(default, deserialize_with = "nullable")]
    disputed: Option<Option<serde_json::Value>>,
    #[serde(default, deserialize_with = "nullable")]
    resolution: Option<Option<serde_json::Value>>,
    #[serde(default, deserialize_with = "nullable")]
    version: Option<Option<serde_json::Value>>,
    #[serde(default, deserialize_with = "nullable")]
    id: Option<Option<serde_json::Value>>,
}

impl ReadOnlyCaseFields {
    fn sent(&self) -> Vec<&'static str> {
        [
            ("status", self.status.is_some()),
            ("number", self.number.is_some()),
            ("agency", self.agency.is_some()),
            ("agency_id", self.agency_id.is_some()),
            ("client", self.client.is_some()),
            ("client_id", self.client_id.is_some()),
            ("service", self.service.is_some()),
            ("service_id", self.service_id.is_some()),
            ("assignee", self.assignee.is_some()),
            ("assignee_id", self.assignee_id.is_some()),
            ("payment_method", self.payment_method.is_some()),
            ("payment_state", self.payment_state.is_some()),
            ("disputed", self.disputed.is_some()),
            ("resolution", self.resolution.is_some()),
            ("version", self.version.is_some()),
            ("id", self.id.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, sent)| sent.then_some(name))
        .collect()
    }
}

/// Update a case
///
/// Changes title, description and priority. Agency staff (own agency) and platform staff change
/// all three while the case is not terminal; the client changes title and description of their
/// own case while it is `in_approval`; agents never (403). Status, number, agency, client, service,
/// assignee, payment and resolution are read-only here (422, `read_only_field` in `errors` at each
/// one sent); unknown members
/// are 400. Honours `If-Match` (412 when stale). Roles: agency, platform, client.
#[utoipa::path(
    tag = "cases",
    operation_id = "update_case",
    params(
        ("id" = Uuid, Path, description = "Case id"),
        IfMatch,
        AcceptLanguage,
    ),
    request_body = UpdateCase,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Updated", body = CaseView, headers(("ETag" = String, description = "The new version"))),
        (status = 403, description = "Agents never edit cases; clients never change the priority"),
        (status = 404, description = "No such case, or not one the caller can see"),
        (status = 409, description = "The case's status no longer allows this change (`wrong_state`, with `allowed_actions`)"),
        (status = 412, description = "`If-Match` is stale"),
        (status = 422, description = "A member breaks a rule, or is read-only"),
    )
)]
#[patch("/v1/cases/{id}")]
pub async fn update_case(
    req: HttpRequest,
    if_match: IfMatch,
    state: web::Data<AppState>,
    token: Token,
    id: web::Path<Uuid>,
    body: ValidJson<UpdateCase>,
) -> Result<HttpResponse, ApiError> {
    let input = body.0;
    let read_only = input.read_only.sent();
    if !read_only.is_empty() {
        return Err(ApiError::validation(
            read_only
                .into_iter()
                .map(|name| {
                    FieldError::new(
                        format!("/{name}"),
                        "read_only_field",
                        "cannot be changed here",
                    )
                })
                .collect(),
        ));
    }
    let asking = Asking::new(token, &req);
    let id = id.into_inner().to_string();
    let notifier = state.notifier.clone();
    let view = db::write(&state.pool, move |conn| {
        let Asked { viewer, actor, .. } = asking.resolve(conn)?;
        let current = find_visible(conn, &viewer, &id)?;
        if viewer.role == Role::Agent {
            return Err(ApiError::Forbidden("Your role may not edit cases.".into()));
        }
        if viewer.role == Role::Client && (input.priority.is_some() || input.tags.is_some()) {
            return Err(ApiError::Forbidden(
                "Your role may not change the priority or the tags.".into(),
            ));
        }
        let tags = match &input.tags {
            Some(tags) => Some(tags_json(tags)?),
            None => None,
        };
        if_match.check(current.version)?;
        let status = current.status();
        let editable: Vec<CaseStatus> = workflow::STATES
            .iter()
            .filter(|s| match viewer.role {
                Role::Client => s.client_edits,
                _ => !s.terminal,
            })
            .map(|s| s.status)
            .collect();
        if !editable.contains(&status) {
            return Err(wrong_state(
                &viewer,
                &current,
                format!("A case in `{status}` cannot be edited by your role."),
            ));
        }
        let changes = CaseChanges {
            title: input.title,
            description: input.description,
            priority: input.priority.map(|p| p.as_str().to_owned()),
            tags,
            ..CaseChanges::default()
        };
        let audit = Change::case(&id, "update").fields(vec![
            ("title", Some(current.title.clone()), changes.title.clone()),
            (
                "description",
                Some(current.description.clone()),
                changes.description.clone(),
            ),
            (
                "priority",
                Some(current.priority.clone()),
                changes.priority.clone(),
            ),
            ("tags", Some(current.tags.clone()), changes.tags.clone()),
        ]);
        if !audit.is_empty() {
            if !repo::cases::update(conn, &id, current.version, &editable, &changes)? {
                return Err(lost_race(conn, &viewer, &id, &editable, &if_match));
            }
            repo::audit::append(conn, &actor, audit)?;
        }
        if let Some(tags) = &input.tags {
            let before = current.tags();
            repo::cases::set_tags(conn, &current, &before, tags)?;
        }
        if let Some(priority) = input.priority.filter(|p| *p != current.priority()) {
            let case = crate::sla::Subject::case(&current);
            crate::sla::reprioritized(conn, &notifier, case, priority)?;
        }
        reload_card(conn, &viewer, &id)
    })
    .await?;
    Ok(HttpResponse::Ok()
        .insert_header(("ETag", etag(view.version)))
        .json(view))
}
