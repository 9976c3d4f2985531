//! The services catalog: agency admins sell services; every user browses the active ones.

use std::collections::HashSet;

use actix_web::{HttpRequest, HttpResponse, get, patch, post, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use validator::Validate;

use crate::api::{Asked, Asking, timestamp};
use crate::app::AppState;
use crate::auth::{AuthUser, Token};
use crate::db::{self, DbConnection};
use crate::domain::{FieldType, Priority, Role};
use crate::errors::{ApiError, FieldError};
use crate::http::extract::{
    IfMatch, Page, PageRequest, Query, ValidJson, etag, page_response, versioned_response,
};
use crate::http::idempotency::{self, Authorized, Created, IdempotencyKey};
use crate::repo;
use crate::repo::audit::Change;
use crate::repo::services::{ServiceChanges, ServiceFilter, ServiceRow, ServiceScope};

/// One field of a required-data form: what the client must tell the agency.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"key": "subject_name", "label": "Subject's full name", "type": "text", "required": true, "help": "As on their documents"}))]
pub struct FieldDefinition {
    /// Stable machine key: lowercase letters, digits and `_`, starting with a letter (1–64).
    #[schema(pattern = "^[a-z][a-z0-9_]{0,63}$")]
    pub key: String,
    // Not only spaces: a character outside Unicode's White_Space, the set `trim` strips (as the
    // case list's `q`; `\S` means something else in JavaScript's and Python's regexes).
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "[^\\t-\\r \\x85\\xA0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]"
    )]
    pub label: String,
    #[serde(rename = "type")]
    pub field_type: FieldType,
    #[serde(default)]
    #[schema(default = false)]
    pub required: bool,
    /// The choices of a `choice` field (1–50 distinct, 1–200 characters each); only for `choice`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_items = 1, max_items = 50, value_type = Option<BTreeSet<ChoiceOption>>)]
    pub options: Option<Vec<String>>,
    /// Help text shown beside the field (at most 1000 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 1000)]
    pub help: Option<String>,
}

// The spec's item of `options`; the code keeps options as strings, checked by `check_fields`.
/// One choice of a `choice` field: 1 to 200 characters, not only spaces.
#[derive(ToSchema)]
#[schema(
    min_length = 1,
    max_length = 200,
    pattern = "[^\\t-\\r \\x85\\xA0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]",
    example = "Married"
)]
pub struct ChoiceOption(pub String);

pub const MAX_FIELDS: usize = 100;

/// Checks a whole form; errors point at `<base>/<index>/<member>`.
pub fn check_fields(base: &str, fields: &[FieldDefinition]) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if fields.len() > MAX_FIELDS {
        errors.push(FieldError::new(
            base,
            "length",
            format!("at most {MAX_FIELDS} fields"),
        ));
    }
    let mut keys = HashSet::new();
    for (i, f) in fields.iter().enumerate() {
        let at = |member: &str| format!("{base}/{i}/{member}");
        let key_ok = f.key.len() <= 64
            && f.key.starts_with(|c: char| c.is_ascii_lowercase())
            && f.key
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !key_ok {
            errors.push(FieldError::new(
                at("key"),
                "invalid_key",
                "lowercase letters, digits and `_`, starting with a letter, at most 64",
            ));
        } else if !keys.insert(f.key.as_str()) {
            errors.push(FieldError::new(
                at("key"),
                "duplicate_key",
                "another field has this key",
            ));
        }
        if f.label.trim().is_empty() || f.label.chars().count() > 200 {
            errors.push(FieldError::new(
                at("label"),
                "length",
                "characters must be between 1 and 200",
            ));
        }
        if f.help.as_ref().is_some_and(|h| h.chars().count() > 1000) {
            errors.push(FieldError::new(
                at("help"),
                "length",
                "characters must be at most 1000",
            ));
        }
        match (&f.options, f.field_type == FieldType::Choice) {
            (None, true) => errors.push(FieldError::new(
                at("options"),
                "required",
                "a choice field lists its options",
            )),
            (Some(_), false) => errors.push(FieldError::new(
                at("options"),
                "not_allowed",
                "only choice fields have options",
            )),
            (Some(options), true) => {
                let distinct: HashSet<&String> = options.iter().collect();
                let sizes_ok = options
                    .iter()
                    .all(|o| !o.trim().is_empty() && o.chars().count() <= 200);
                if options.is_empty()
                    || options.len() > 50
                    || distinct.len() != options.len()
                    || !sizes_ok
                {
                    errors.push(FieldError::new(
                        at("options"),
                        "invalid_options",
                        "1–50 distinct options of 1–200 characters",
                    ));
                }
            }
            (None, false) => {}
        }
    }
    errors
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AgencySummary {
    #[schema(format = "uuid")]
    pub id: String,
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0193a6f3-1111-7c2d-8e3f-405162738495",
    "agency": {"id": "0193a6f1-0a1b-7c2d-8e3f-405162738495", "name": "Agenzia Investigativa Rossi"},
    "title": "Infidelity investigation",
    "description": "Discreet surveillance for up to five days, with a photo report.",
    "price_minor": 150000,
    "currency": "EUR",
    "active": true,
    "default_priority": "normal",
    "required_data_template": [{"key": "subject_name", "label": "Subject's full name", "type": "text", "required": true}],
    "sla_policy_id": null,
    "version": 1,
    "created_at": "2026-11-22T09:00:00Z",
    "updated_at": "2026-11-22T09:00:00Z"
}))]
pub struct ServiceView {
    #[schema(format = "uuid")]
    pub id: String,
    pub agency: AgencySummary,
    pub title: String,
    pub description: String,
    /// Price in the currency's minor units (cents).
    pub price_minor: i64,
    /// ISO 4217 code.
    pub currency: String,
    /// Inactive services are hidden from the catalog and cannot be bought.
    pub active: bool,
    /// The priority of the cases bought from it.
    pub default_priority: Priority,
    /// Copied onto every case bought from this service as its required-data form.
    pub required_data_template: Vec<FieldDefinition>,
    /// The SLA policy its cases follow; `null`: the agency's default (else the platform's).
    #[schema(format = "uuid")]
    pub sla_policy_id: Option<String>,
    pub version: i64,
    #[serde(serialize_with = "crate::api::rfc3339")]
    pub created_at: chrono::DateTime<chrono::Utc>,
    #[serde(serialize_with = "crate::api::rfc3339")]
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

pub fn template_of(row: &ServiceRow) -> Vec<FieldDefinition> {
    serde_json::from_str(&row.required_data_template).unwrap_or_default()
}

impl ServiceView {
    fn new((row, agency_name): (ServiceRow, String)) -> ServiceView {
        ServiceView {
            required_data_template: template_of(&row),
            default_priority: Priority::from_code(&row.default_priority)
                .unwrap_or(Priority::Normal),
            agency: AgencySummary {
                id: row.agency_id,
                name: agency_name,
            },
            id: row.id,
            title: row.title,
            description: row.description,
            price_minor: row.price_minor,
            currency: row.currency,
            active: row.active,
            sla_policy_id: row.sla_policy_id,
            version: row.version,
            created_at: timestamp(row.created_at),
            updated_at: timestamp(row.updated_at),
        }
    }
}

fn check_currency(currency: &str) -> Result<(), validator::ValidationError> {
    if currency.len() == 3 && currency.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err(validator::ValidationError::new("currency")
            .with_message("must be an ISO 4217 code such as EUR".into()))
    }
}

#[derive(Debug, Serialize, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "title": "Infidelity investigation",
    "description": "Discreet surveillance for up to five days, with a photo report.",
    "price_minor": 150000,
    "currency": "EUR",
    "default_priority": "normal",
    "required_data_template": [{"key": "subject_name", "label": "Subject's full name", "type": "text", "required": true}]
}))]
pub struct CreateService {
    #[serde(deserialize_with = "crate::api::trimmed")]
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub title: String,
    #[serde(deserialize_with = "crate::api::trimmed")]
    #[validate(length(min = 1, max = 10000))]
    #[schema(min_length = 1, max_length = 10000)]
    pub description: String,
    #[serde(deserialize_with = "crate::api::whole_number")]
    #[validate(range(min = 0, max = 1_000_000_000_000i64))]
    #[schema(minimum = 0, maximum = 1_000_000_000_000i64)]
    pub price_minor: i64,
    #[validate(custom(function = "check_currency"))]
    #[schema(pattern = "^[A-Z]{3}$", example = "EUR")]
    pub currency: String,
    #[serde(default = "default_true")]
    #[schema(default = true)]
    pub active: bool,
    #[serde(default = "default_priority")]
    #[schema(default = "normal")]
    pub default_priority: Priority,
    /// The form its cases start with (at most 100 fields).
    #[serde(default)]
    #[schema(max_items = 100)]
    pub required_data_template: Vec<FieldDefinition>,
    /// An SLA policy of the agency's or the platform's (422 `policy_unavailable` otherwise)
    /// that its cases follow ahead of the agency's default.
    pub sla_policy_id: Option<Uuid>,
}

fn default_true() -> bool {
    true
}

fn default_priority() -> Priority {
    Priority::Normal
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"price_minor": 180000, "active": false}))]
pub struct UpdateService {
    #[serde(default, deserialize_with = "crate::api::trimmed_opt")]
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub title: Option<String>,
    #[serde(default, deserialize_with = "crate::api::trimmed_opt")]
    #[validate(length(min = 1, max = 10000))]
    #[schema(min_length = 1, max_length = 10000)]
    pub description: Option<String>,
    #[serde(default, deserialize_with = "crate::api::whole_number_opt")]
    #[validate(range(min = 0, max = 1_000_000_000_000i64))]
    #[schema(minimum = 0, maximum = 1_000_000_000_000i64)]
    pub price_minor: Option<i64>,
    #[validate(custom(function = "check_currency"))]
    #[schema(pattern = "^[A-Z]{3}$")]
    pub currency: Option<String>,
    pub active: Option<bool>,
    pub default_priority: Option<Priority>,
    /// Replaces the template (at most 100 fields); cases already bought keep their own copy.
    #[schema(max_items = 100)]
    pub required_data_template: Option<Vec<FieldDefinition>>,
    /// Another SLA policy for cases bought from now on, or `null` for the agency's default;
    /// cases already bought keep theirs.
    #[serde(default, deserialize_with = "crate::api::nullable")]
    #[schema(value_type = Option<String>, format = "uuid")]
    pub sla_policy_id: Option<Option<Uuid>>,
}

/// The policy `id` if the agency may name it for a service: 422 `policy_unavailable` otherwise.
fn usable_policy(conn: &mut DbConnection, agency_id: &str, id: Uuid) -> Result<String, ApiError> {
    match repo::sla::usable_policy(conn, agency_id, &id.to_string())? {
        Some((policy, _)) => Ok(policy.id),
        None => Err(ApiError::Unprocessable {
            code: "policy_unavailable",
            detail: "The SLA policy is not one of your agency's or the platform's.".into(),
            errors: vec![FieldError::new(
                "/sla_policy_id",
                "policy_unavailable",
                "not an SLA policy of your agency or the platform",
            )],
        }),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListServicesQuery {
    /// Only this agency's services.
    pub agency_id: Option<Uuid>,
    /// Only active (`true`) or inactive (`false`) services; others' inactive ones stay hidden.
    pub active: Option<bool>,
    #[param(minimum = 1, maximum = 100, default = 25)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

fn scope_of(caller: &AuthUser) -> ServiceScope {
    if caller.is_platform() {
        ServiceScope::All
    } else {
        ServiceScope::Catalog {
            own_agency: caller
                .agency_id
                .clone()
                .filter(|_| caller.role == Role::Agency),
        }
    }
}

fn service_not_found() -> ApiError {
    ApiError::NotFound("No such service, or not one you can see.".into())
}

/// The agency an agency admin manages; 403 for everyone else.
fn managed_agency(caller: &AuthUser) -> Result<String, ApiError> {
    match (&caller.agency_id, caller.is_agency_admin()) {
        (Some(agency), true) => Ok(agency.clone()),
        _ => Err(ApiError::Forbidden(
            "Only agency admins create and change services.".into(),
        )),
    }
}

/// List services
///
/// The catalog, newest first: active services of active agencies, with agency and price.
/// Agency staff also see their own agency's inactive services; platform staff see all.
/// Roles: any user.
#[utoipa::path(
    tag = "services",
    operation_id = "list_services",
    params(ListServicesQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "One page of services", body = Page<ServiceView>,
            headers(("Link" = String, description = "`<…>; rel=\"next\"` when another page follows"))),
    )
)]
#[get("/v1/services")]
pub async fn list_services(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: Token,
    query: Query<ListServicesQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = PageRequest::new(query.limit, query.cursor.as_deref())?;
    let filter = ServiceFilter {
        agency_id: query.agency_id.map(|id| id.to_string()),
        active: query.active,
    };
    let (rows, page) = db::read(&state.pool, move |conn| {
        let scope = scope_of(&token.user(conn)?);
        let rows =
            repo::services::list(conn, &scope, &filter, page.after.as_deref(), page.fetch())?;
        Ok((rows, page))
    })
    .await?;
    let page = page.page(rows, |(r, _)| &r.id, ServiceView::new);
    Ok(page_response(&req, page))
}

/// Create a service
///
/// Adds a service to the caller's agency. The required-data template is a list of field
/// definitions with unique keys. Accepts `Idempotency-Key` (as `POST /v1/cases`).
/// Roles: agency admin.
#[utoipa::path(
    tag = "services",
    operation_id = "create_service",
    request_body = CreateService,
    params(IdempotencyKey),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = ServiceView,
            headers(("Location" = String, description = "The new service's URL"), ("ETag" = String, description = "Its version"))),
        (status = 403, description = "The caller is not an agency admin"),
    )
)]
#[post("/v1/services")]
pub async fn create_service(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: Token,
    key: IdempotencyKey,
    body: ValidJson<CreateService>,
) -> Result<HttpResponse, ApiError> {
    let asking = Asking::new(token, &req);
    // The template's rules are checked before the write, the caller's role inside it: a
    // caller who may not create services is told so whatever their template (403 before 422).
    let errors = check_fields("/required_data_template", &body.0.required_data_template);
    idempotency::create(&state, &req, key, body.0, move |conn| {
        let Asked { caller, actor, .. } = asking.resolve(conn)?;
        let agency_id = managed_agency(&caller)?;
        if !errors.is_empty() {
            return Err(ApiError::validation(errors));
        }
        let create = move |conn: &mut DbConnection, input: CreateService| {
            let now = db::now();
            let sla_policy_id = input
                .sla_policy_id
                .map(|id| usable_policy(conn, &agency_id, id))
                .transpose()?;
            let row = ServiceRow {
                id: repo::new_id(),
                agency_id,
                title: input.title,
                description: input.description,
                price_minor: input.price_minor,
                currency: input.currency,
                active: input.active,
                default_priority: input.default_priority.as_str().to_owned(),
                required_data_template: serde_json::to_string(&input.required_data_template)
                    .map_err(ApiError::internal)?,
                version: 1,
                created_at: now,
                updated_at: now,
                sla_policy_id,
            };
            repo::services::insert(conn, &row)?;
            // Every member, as an update logs the ones it moves: the log alone tells what was sold.
            let created = Change::service(&row.id, &row.agency_id, "create");
            repo::audit::append(conn, &actor, created.moved(None, logged_members(&row)))?;
            let view = ServiceView::new(
                repo::services::find(conn, &ServiceScope::All, &row.id)?
                    .ok_or_else(|| ApiError::internal("inserted service vanished"))?,
            );
            Ok(Created {
                location: Some(format!("/v1/services/{}", view.id)),
                version: Some(view.version),
                body: view,
            })
        };
        Ok(Authorized {
            user_id: caller.id,
            create,
        })
    })
    .await
}

/// A service's members as the audit trail names them, in one order: a creation logs each, an
/// update those that moved.
fn logged_members(row: &ServiceRow) -> [(&'static str, Option<String>); 8] {
    [
        ("title", Some(row.title.clone())),
        ("description", Some(row.description.clone())),
        ("price_minor", Some(row.price_minor.to_string())),
        ("currency", Some(row.currency.clone())),
        ("active", Some(row.active.to_string())),
        ("default_priority", Some(row.default_priority.clone())),
        (
            "required_data_template",
            Some(row.required_data_template.clone()),
        ),
        ("sla_policy_id", row.sla_policy_id.clone()),
    ]
}

/// Get a service
///
/// Answers 304 when `If-None-Match` names the current version. Roles: any user (inactive
/// services only for their agency's staff and platform staff).
#[utoipa::path(
    tag = "services",
    operation_id = "get_service",
    params(("id" = Uuid, Path, description = "Service id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The service", body = ServiceView, headers(("ETag" = String, description = "Its version"))),
        (status = 304, description = "Unchanged since the `If-None-Match` version"),
        (status = 404, description = "No such service, or not one the caller can see"),
    )
)]
#[get("/v1/services/{id}")]
pub async fn get_service(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: Token,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner().to_string();
    let found = db::read(&state.pool, move |conn| {
        let scope = scope_of(&token.user(conn)?);
        Ok(repo::services::find(conn, &scope, &id)?)
    })
    .await?
    .ok_or_else(service_not_found)?;
    let view = ServiceView::new(found);
    Ok(versioned_response(&req, view.version, &view))
}

/// Update a service
///
/// Changes any member; cases already bought keep their price and form. Honours `If-Match`
/// (412 when stale). Roles: agency admin of the service's agency.
#[utoipa::path(
    tag = "services",
    operation_id = "update_service",
    params(
        ("id" = Uuid, Path, description = "Service id"),
        IfMatch,
    ),
    request_body = UpdateService,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Updated", body = ServiceView, headers(("ETag" = String, description = "The new version"))),
        (status = 403, description = "The caller is not an agency admin"),
        (status = 404, description = "No such service, or not one of the caller's agency"),
        (status = 412, description = "`If-Match` is stale"),
        (status = 422, description = "A member breaks a rule"),
    )
)]
#[patch("/v1/services/{id}")]
pub async fn update_service(
    req: HttpRequest,
    if_match: IfMatch,
    state: web::Data<AppState>,
    token: Token,
    id: web::Path<Uuid>,
    body: ValidJson<UpdateService>,
) -> Result<HttpResponse, ApiError> {
    let asking = Asking::new(token, &req);
    let id = id.into_inner().to_string();
    let input = body.0;
    let errors = match &input.required_data_template {
        Some(template) => check_fields("/required_data_template", template),
        None => Vec::new(),
    };
    let found = db::write(&state.pool, move |conn| {
        let Asked { caller, actor, .. } = asking.resolve(conn)?;
        let agency_id = managed_agency(&caller)?;
        if !errors.is_empty() {
            return Err(ApiError::validation(errors));
        }
        let (current, _) = repo::services::find(conn, &ServiceScope::All, &id)?
            .filter(|(s, _)| s.agency_id == agency_id)
            .ok_or_else(service_not_found)?;
        if_match.check(current.version)?;
        let template = input
            .required_data_template
            .map(|t| serde_json::to_string(&t))
            .transpose()
            .map_err(ApiError::internal)?;
        let sla_policy_id = match input.sla_policy_id {
            Some(Some(id)) => Some(Some(usable_policy(conn, &agency_id, id)?)),
            Some(None) => Some(None),
            None => None,
        };
        let changes = ServiceChanges {
            title: input.title,
            description: input.description,
            price_minor: input.price_minor,
            currency: input.currency,
            active: input.active,
            default_priority: input.default_priority.map(|p| p.as_str().to_owned()),
            required_data_template: template,
            sla_policy_id,
        };
        if !repo::services::update(conn, &id, current.version, &changes)? {
            return Err(if_match.lost_race(current.version, "service"));
        }
        let found = repo::services::find(conn, &ServiceScope::All, &id)?
            .ok_or_else(|| ApiError::internal("updated service vanished"))?;
        let change = Change::service(&id, &current.agency_id, "update");
        let moved = change.moved(Some(logged_members(&current)), logged_members(&found.0));
        repo::audit::append(conn, &actor, moved)?;
        Ok(found)
    })
    .await?;
    let view = ServiceView::new(found);
    Ok(HttpResponse::Ok()
        .insert_header(("ETag", etag(view.version)))
        .json(view))
}
