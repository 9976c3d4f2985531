//! Agencies: created and managed by platform staff; their own staff may read them.

use actix_web::{HttpRequest, HttpResponse, get, patch, post, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use validator::Validate;

use crate::api::{Asked, Asking, nullable, timestamp};
use crate::app::AppState;
use crate::auth::{AuthUser, Token};
use crate::db::{self, DbConnection};
use crate::errors::ApiError;
use crate::http::extract::{
    IfMatch, Page, PageRequest, Query, ValidJson, etag, page_response, versioned_response,
};
use crate::http::idempotency::{self, Authorized, Created, IdempotencyKey};
use crate::repo;
use crate::repo::agencies::{AgencyChanges, AgencyRow};
use crate::repo::audit::Change;

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0193a6f1-0a1b-7c2d-8e3f-405162738495",
    "name": "Agenzia Investigativa Rossi",
    "contact_email": "info@agenzia-rossi.example",
    "active": true,
    "version": 1,
    "created_at": "2026-11-22T09:00:00Z",
    "updated_at": "2026-11-22T09:00:00Z"
}))]
pub struct AgencyView {
    #[schema(format = "uuid")]
    pub id: String,
    pub name: String,
    #[schema(format = "email")]
    pub contact_email: Option<String>,
    /// Staff of an inactive agency cannot log in.
    pub active: bool,
    pub version: i64,
    #[serde(serialize_with = "crate::api::rfc3339")]
    pub created_at: chrono::DateTime<chrono::Utc>,
    #[serde(serialize_with = "crate::api::rfc3339")]
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

impl From<AgencyRow> for AgencyView {
    fn from(row: AgencyRow) -> Self {
        AgencyView {
            id: row.id,
            name: row.name,
            contact_email: row.contact_email,
            active: row.active,
            version: row.version,
            created_at: timestamp(row.created_at),
            updated_at: timestamp(row.updated_at),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Agenzia Investigativa Rossi", "contact_email": "info@agenzia-rossi.example"}))]
pub struct CreateAgency {
    /// Unique among agencies.
    #[serde(deserialize_with = "crate::api::trimmed")]
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    #[validate(email, length(max = 254))]
    #[schema(format = "email", max_length = 254)]
    pub contact_email: Option<String>,
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"active": false}))]
pub struct UpdateAgency {
    #[serde(default, deserialize_with = "crate::api::trimmed_opt")]
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "nullable")]
    #[validate(email, length(max = 254))]
    #[schema(format = "email", max_length = 254)]
    pub contact_email: Option<Option<String>>,
    /// `false` locks the agency's staff and agents out.
    pub active: Option<bool>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListAgenciesQuery {
    /// Page size, 1–100.
    #[param(minimum = 1, maximum = 100, default = 25)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

fn require_platform(caller: &AuthUser) -> Result<(), ApiError> {
    caller.require(caller.is_platform(), "manage agencies")
}

fn agency_not_found() -> ApiError {
    ApiError::NotFound("No such agency, or not yours.".into())
}

/// List agencies
///
/// Newest first. Roles: platform.
#[utoipa::path(
    tag = "agencies",
    operation_id = "list_agencies",
    params(ListAgenciesQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "One page of agencies", body = Page<AgencyView>,
            headers(("Link" = String, description = "`<…>; rel=\"next\"` when another page follows"))),
        (status = 403, description = "Only platform staff list agencies"),
    )
)]
#[get("/v1/agencies")]
pub async fn list_agencies(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: Token,
    query: Query<ListAgenciesQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = PageRequest::new(query.limit, query.cursor.as_deref())?;
    let (rows, page) = db::read(&state.pool, move |conn| {
        require_platform(&token.user(conn)?)?;
        let rows = repo::agencies::list(conn, page.after.as_deref(), page.fetch())?;
        Ok((rows, page))
    })
    .await?;
    Ok(page_response(
        &req,
        page.page(rows, |r| &r.id, AgencyView::from),
    ))
}

/// Create an agency
///
/// Accepts `Idempotency-Key` (as `POST /v1/cases`). Roles: platform.
#[utoipa::path(
    tag = "agencies",
    operation_id = "create_agency",
    request_body = CreateAgency,
    params(IdempotencyKey),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = AgencyView,
            headers(("Location" = String, description = "The new agency's URL"), ("ETag" = String, description = "Its version"))),
        (status = 403, description = "Only platform staff create agencies"),
        (status = 409, description = "The name is taken (`agency_name_taken`)"),
    )
)]
#[post("/v1/agencies")]
pub async fn create_agency(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: Token,
    key: IdempotencyKey,
    body: ValidJson<CreateAgency>,
) -> Result<HttpResponse, ApiError> {
    let asking = Asking::new(token, &req);
    idempotency::create(&state, &req, key, body.0, move |conn| {
        let Asked { caller, actor, .. } = asking.resolve(conn)?;
        require_platform(&caller)?;
        let create = move |conn: &mut DbConnection, input: CreateAgency| {
            let now = db::now();
            let row = AgencyRow {
                id: repo::new_id(),
                name: input.name.trim().to_owned(),
                contact_email: input.contact_email.map(|e| e.trim().to_lowercase()),
                active: true,
                version: 1,
                created_at: now,
                updated_at: now,
            };
            repo::agencies::insert(conn, &row)?;
            repo::audit::append(conn, &actor, agency_changes("create", None, &row))?;
            Ok(Created {
                location: Some(format!("/v1/agencies/{}", row.id)),
                version: Some(row.version),
                body: AgencyView::from(row),
            })
        };
        Ok(Authorized {
            user_id: caller.id,
            create,
        })
    })
    .await
}

/// Get an agency
///
/// Platform staff read any agency; agency staff and agents read their own (another agency is
/// 404). Answers 304 when `If-None-Match` names the current version. Roles: platform, agency,
/// agent.
#[utoipa::path(
    tag = "agencies",
    operation_id = "get_agency",
    params(("id" = Uuid, Path, description = "Agency id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The agency", body = AgencyView, headers(("ETag" = String, description = "Its version"))),
        (status = 304, description = "Unchanged since the `If-None-Match` version"),
        (status = 403, description = "Clients read no agencies here"),
        (status = 404, description = "No such agency, or not the caller's"),
    )
)]
#[get("/v1/agencies/{id}")]
pub async fn get_agency(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: Token,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner().to_string();
    let row = db::read(&state.pool, move |conn| {
        let caller = token.user(conn)?;
        caller.require(
            caller.is_platform() || caller.role.belongs_to_agency(),
            "read agencies",
        )?;
        if !caller.is_platform() && caller.agency_id.as_deref() != Some(id.as_str()) {
            return Err(agency_not_found());
        }
        repo::agencies::find(conn, &id)?.ok_or_else(agency_not_found)
    })
    .await?;
    let version = row.version;
    Ok(versioned_response(&req, version, &AgencyView::from(row)))
}

/// Update an agency
///
/// Renames it, changes its contact, or (de)activates it. Deactivating it ends every session of
/// its staff (refresh and access tokens alike, 401 from their next request on) and sets them
/// `offline`; a reactivation brings none back: they log in again. Honours `If-Match` (412
/// when stale). Roles: platform.
#[utoipa::path(
    tag = "agencies",
    operation_id = "update_agency",
    params(
        ("id" = Uuid, Path, description = "Agency id"),
        IfMatch,
    ),
    request_body = UpdateAgency,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Updated", body = AgencyView, headers(("ETag" = String, description = "The new version"))),
        (status = 403, description = "Only platform staff change agencies"),
        (status = 404, description = "No such agency"),
        (status = 409, description = "The name is taken (`agency_name_taken`)"),
        (status = 412, description = "`If-Match` is stale"),
        (status = 422, description = "A member breaks a rule"),
    )
)]
#[patch("/v1/agencies/{id}")]
pub async fn update_agency(
    req: HttpRequest,
    if_match: IfMatch,
    state: web::Data<AppState>,
    token: Token,
    id: web::Path<Uuid>,
    body: ValidJson<UpdateAgency>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner().to_string();
    let input = body.0;
    let asking = Asking::new(token, &req);
    let row = db::write(&state.pool, move |conn| {
        let Asked { caller, actor, .. } = asking.resolve(conn)?;
        require_platform(&caller)?;
        let current = repo::agencies::find(conn, &id)?.ok_or_else(agency_not_found)?;
        if_match.check(current.version)?;
        let changes = AgencyChanges {
            name: input.name.map(|n| n.trim().to_owned()),
            contact_email: input
                .contact_email
                .map(|e| e.map(|e| e.trim().to_lowercase())),
            active: input.active,
        };
        let deactivating = input.active == Some(false);
        if deactivating {
            // Its staff go offline below: the queue's lock comes first, before any row, as for
            // each user a write logs out (`lock_queue`), or the two could wait on each other.
            repo::presence::lock_queue(conn, &id)?;
        }
        if !repo::agencies::update(conn, &id, current.version, &changes)? {
            return Err(if_match.lost_race(current.version, "agency"));
        }
        // Reactivating the agency must not bring its staff's old sessions back: their refresh
        // tokens end, and the access tokens issued so far carry an epoch that is now old.
        if deactivating {
            repo::refresh_tokens::revoke_agency(conn, &id)?;
            repo::agencies::end_sessions(conn, &id)?;
            // No session left for its staff: offline.
            let everyone = repo::presence::Whose::Agency(&id);
            repo::presence::go_offline(conn, everyone, db::now())?;
            // What its webhooks were still to hear stays untold (they hear nothing new either).
            let why = crate::webhooks::AGENCY_DEACTIVATED;
            repo::webhooks::end_pending_of_agency(conn, &id, why)?;
        }
        let after = repo::agencies::find(conn, &id)?.ok_or_else(agency_not_found)?;
        repo::audit::append(
            conn,
            &actor,
            agency_changes("update", Some(&current), &after),
        )?;
        Ok(after)
    })
    .await?;
    Ok(HttpResponse::Ok()
        .insert_header(("ETag", etag(row.version)))
        .json(AgencyView::from(row)))
}

/// The audit rows of an agency going from `before` (none: just created) to `after`, one per
/// field that moved; platform admins and the agency's admins read them.
fn agency_changes(action: &str, before: Option<&AgencyRow>, after: &AgencyRow) -> Vec<Change> {
    let fields = |a: &AgencyRow| {
        [
            ("name", Some(a.name.clone())),
            ("contact_email", a.contact_email.clone()),
            ("active", Some(a.active.to_string())),
        ]
    };
    let change = Change::outside_cases("agency", &after.id, Some(&after.id), action);
    change.moved(before.map(fields), fields(after))
}
