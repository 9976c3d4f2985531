//! Users: platform staff manage everyone; an agency admin manages its own agency's staff and
//! agents; every other role gets 403.

use actix_web::{HttpRequest, HttpResponse, get, patch, post, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use validator::Validate;

use crate::api::{actor_of, nullable, timestamp};
use crate::app::AppState;
use crate::auth::{AuthUser, Token, password};
use crate::db::{self, DbConnection};
use crate::domain::{Locale, Role};
use crate::errors::{ApiError, FieldError};
use crate::http::extract::{
    IfMatch, Page, PageRequest, Query, ValidJson, page_response, versioned_response,
};
use crate::http::idempotency::{self, Authorized, Created, IdempotencyKey};
use crate::repo;
use crate::repo::audit::Change;
use crate::repo::users::{UserChanges, UserFilter, UserRow, UserScope};

/// A client's identity, shown to platform staff and the agencies working their cases.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientIdentity {
    /// Kind of identity document, e.g. `passport`, `national_id`, `driving_licence`.
    pub id_document_type: Option<String>,
    pub id_document_number: Option<String>,
    /// Bank account (IBAN or other) for refunds.
    pub account_number: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0193a6f2-2c4e-7b51-9d0a-3f1e2a4b5c6d",
    "email": "marta.rossi@agenzia-rossi.example",
    "name": "Marta Rossi",
    "role": "agency",
    "agency_id": "0193a6f1-0a1b-7c2d-8e3f-405162738495",
    "admin": true,
    "locale": "it",
    "active": true,
    "identity": null,
    "capacity": 5,
    "capacity_set": true,
    "version": 1,
    "created_at": "2026-11-22T09:30:00Z",
    "updated_at": "2026-11-22T09:30:00Z"
}))]
pub struct UserView {
    #[schema(format = "uuid")]
    pub id: String,
    /// Stored lower-cased; unique regardless of case.
    pub email: String,
    pub name: String,
    pub role: Role,
    /// Set for `agency` and `agent` users, `null` otherwise.
    #[schema(format = "uuid")]
    pub agency_id: Option<String>,
    /// Platform admin, or agency manager.
    pub admin: bool,
    pub locale: Locale,
    /// Deactivated users cannot log in and their tokens stop working.
    pub active: bool,
    /// Clients only, and only for platform callers and the client themself; otherwise `null`.
    pub identity: Option<ClientIdentity>,
    /// Operators (agency and platform staff): the open work they may hold, shown against their
    /// workload by `GET /v1/presence`; for agency staff, the automatic assignment passes them
    /// over at it (platform staff are not assigned automatically). `null` for agents and
    /// clients.
    pub capacity: Option<i64>,
    /// `true` when `capacity` was set for this person; `false` when it follows the server's
    /// `DOSSIER_OPERATOR_CAPACITY`.
    pub capacity_set: bool,
    /// Increases with every change; the `ETag`.
    pub version: i64,
    #[serde(serialize_with = "crate::api::rfc3339")]
    pub created_at: chrono::DateTime<chrono::Utc>,
    #[serde(serialize_with = "crate::api::rfc3339")]
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

impl UserView {
    /// `default_capacity` is the server's `DOSSIER_OPERATOR_CAPACITY`.
    pub fn new(row: UserRow, show_identity: bool, default_capacity: u32) -> UserView {
        let role = row.role();
        let locale = row.locale();
        let capacity = row.operator_capacity(default_capacity);
        let identity = (show_identity && role == Role::Client).then_some(ClientIdentity {
            id_document_type: row.id_document_type,
            id_document_number: row.id_document_number,
            account_number: row.account_number,
        });
        UserView {
            id: row.id,
            email: row.email,
            name: row.name,
            role,
            agency_id: row.agency_id,
            admin: row.is_admin,
            locale,
            active: row.active,
            identity,
            capacity,
            capacity_set: row.capacity.is_some(),
            version: row.version,
            created_at: timestamp(row.created_at),
            updated_at: timestamp(row.updated_at),
        }
    }
}

#[derive(Debug, Deserialize, Serialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "email": "luca.bianchi@agenzia-rossi.example",
    "name": "Luca Bianchi",
    "password": "a long passphrase of at least 12",
    "role": "agent",
    "agency_id": "0193a6f1-0a1b-7c2d-8e3f-405162738495",
    "locale": "it"
}))]
pub struct CreateUser {
    #[validate(email, length(max = 254))]
    #[schema(format = "email", max_length = 254)]
    pub email: String,
    #[serde(deserialize_with = "crate::api::trimmed")]
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// At least 12 characters.
    #[validate(length(min = 12, max = 1024))]
    #[schema(min_length = 12, max_length = 1024)]
    pub password: String,
    pub role: Role,
    /// Required for `agency` and `agent` users, refused for the others. An agency admin may
    /// omit it (their own agency is used) or name only their own agency.
    pub agency_id: Option<Uuid>,
    #[serde(default)]
    #[schema(default = false)]
    pub admin: bool,
    #[serde(default = "default_locale")]
    #[schema(default = "en")]
    pub locale: Locale,
    /// Clients only.
    #[validate(length(min = 1, max = 50))]
    #[schema(min_length = 1, max_length = 50)]
    pub id_document_type: Option<String>,
    /// Clients only.
    #[validate(length(min = 1, max = 100))]
    #[schema(min_length = 1, max_length = 100)]
    pub id_document_number: Option<String>,
    /// Clients only.
    #[validate(length(min = 1, max = 64))]
    #[schema(min_length = 1, max_length = 64)]
    pub account_number: Option<String>,
    /// Operators only (agency and platform staff), 0–1000: the open work they may hold (see
    /// the user's `capacity`; for agency staff 0 means no case given automatically). Omitted,
    /// it follows the server's `DOSSIER_OPERATOR_CAPACITY`.
    // Left out of the body when omitted, so Idempotency-Keys taken before it existed replay.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::api::whole_number_opt"
    )]
    #[validate(range(max = MAX_CAPACITY))]
    #[schema(minimum = 0, maximum = 1000)]
    pub capacity: Option<u16>,
}

/// The largest capacity one person may be given (the column's CHECK says the same).
const MAX_CAPACITY: u16 = 1000;

/// `/capacity` sent for someone who is not an operator.
fn capacity_not_allowed() -> FieldError {
    FieldError::new(
        "/capacity",
        "not_allowed",
        "only agency and platform staff have a capacity",
    )
}

fn default_locale() -> Locale {
    Locale::En
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Luca Bianchi", "locale": "en", "active": false}))]
pub struct UpdateUser {
    #[validate(email, length(max = 254))]
    #[schema(format = "email", max_length = 254)]
    pub email: Option<String>,
    #[serde(default, deserialize_with = "crate::api::trimmed_opt")]
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    /// Sets a new password and ends every session of the user: refresh tokens revoked, access
    /// tokens issued until now refused. Another user's only: one's own changes at
    /// `PUT /v1/me/password`.
    #[validate(length(min = 12, max = 1024))]
    #[schema(min_length = 12, max_length = 1024)]
    pub password: Option<String>,
    pub admin: Option<bool>,
    pub locale: Option<Locale>,
    /// `false` deactivates: logins fail, tokens stop working, refresh tokens are revoked.
    pub active: Option<bool>,
    /// Clients only; `null` clears it.
    #[serde(default, deserialize_with = "nullable")]
    #[validate(length(min = 1, max = 50))]
    #[schema(min_length = 1, max_length = 50)]
    pub id_document_type: Option<Option<String>>,
    /// Clients only; `null` clears it.
    #[serde(default, deserialize_with = "nullable")]
    #[validate(length(min = 1, max = 100))]
    #[schema(min_length = 1, max_length = 100)]
    pub id_document_number: Option<Option<String>>,
    /// Clients only; `null` clears it.
    #[serde(default, deserialize_with = "nullable")]
    #[validate(length(min = 1, max = 64))]
    #[schema(min_length = 1, max_length = 64)]
    pub account_number: Option<Option<String>>,
    /// Operators only (agency and platform staff), 0–1000; `null` follows the server's
    /// `DOSSIER_OPERATOR_CAPACITY` again. Raised for agency staff, the room it makes goes to
    /// the agency's queue at once.
    #[serde(default, deserialize_with = "crate::api::whole_number_nullable")]
    #[validate(range(max = MAX_CAPACITY))]
    #[schema(minimum = 0, maximum = 1000)]
    pub capacity: Option<Option<u16>>,
    /// Cannot be changed: sending it is 422 `read_only_field`.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(ignore)]
    pub role: Option<Option<serde_json::Value>>,
    /// Cannot be changed: sending it is 422 `read_only_field`.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(ignore)]
    pub agency_id: Option<Option<serde_json::Value>>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListUsersQuery {
    /// Only users with these roles (repeat the parameter for several).
    #[serde(default)]
    #[param(style = Form, explode)]
    pub role: Vec<Role>,
    /// Only users of this agency.
    pub agency_id: Option<Uuid>,
    /// Page size, 1–100.
    #[param(minimum = 1, maximum = 100, default = 25)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// The users `caller` may manage; 403 for roles that may manage none.
fn scope_of(caller: &AuthUser) -> Result<UserScope, ApiError> {
    if caller.is_platform() {
        return Ok(UserScope::All);
    }
    match (&caller.agency_id, caller.is_agency_admin()) {
        (Some(agency), true) => Ok(UserScope::AgencyStaff(agency.clone())),
        _ => Err(ApiError::Forbidden(
            "Only platform staff and agency admins manage users.".into(),
        )),
    }
}

/// Only platform admins make platform admins or change their accounts, and among platform
/// staff only they make or change an agency's admins: otherwise any platform user could raise
/// their own flag, or make an agency admin whose password they know, and read audit logs the
/// admin flag keeps from them (an agency admin still manages their own agency's admins).
fn guard_admins(caller: &AuthUser, role: Role, admin: bool) -> Result<(), ApiError> {
    let platform_side = role == Role::Platform || caller.is_platform();
    if admin && platform_side && !caller.is_platform_admin() {
        return Err(ApiError::Forbidden(
            "Only platform admins make admins or change their accounts.".into(),
        ));
    }
    Ok(())
}

/// Among platform staff only platform admins choose another user's credentials (`what`: set
/// their password or e-mail, create an agency's user with a password): with them, a staff
/// member could log in as an agency's operator or a client and do what their own role may
/// never do (an agency admin still does so for their own agency).
fn guard_credentials(caller: &AuthUser, what: &str) -> Result<(), ApiError> {
    if caller.is_platform() && !caller.is_platform_admin() {
        return Err(ApiError::Forbidden(format!("Only platform admins {what}.")));
    }
    Ok(())
}

/// The admin flag is for staff: an agent's or a client's would mean nothing, yet their tokens
/// and `/v1/me` would say `admin`, which frontends read to show managers' screens.
fn admin_not_allowed() -> FieldError {
    FieldError::new(
        "/admin",
        "not_allowed",
        "only agency and platform staff are admins",
    )
}

fn user_not_found() -> ApiError {
    ApiError::NotFound("No such user, or not one you manage.".into())
}

/// Checks a new user against the rules and the caller's scope; `None` caller is the CLI.
pub fn check_new_user(
    conn: &mut DbConnection,
    caller: Option<&AuthUser>,
    input: &CreateUser,
    password_hash: String,
) -> Result<UserRow, ApiError> {
    let mut agency_id = input.agency_id.map(|id| id.to_string());
    if let Some(caller) = caller {
        guard_admins(caller, input.role, input.admin)?;
        if input.role.belongs_to_agency() {
            guard_credentials(caller, "create an agency's users")?;
        }
    }
    if let Some(caller) = caller.filter(|c| !c.is_platform()) {
        caller.require(
            input.role.belongs_to_agency(),
            "create platform or client users",
        )?;
        match &agency_id {
            Some(id) if Some(id) != caller.agency_id.as_ref() => {
                return Err(ApiError::Forbidden(
                    "Agency admins create users of their own agency only.".into(),
                ));
            }
            _ => agency_id = caller.agency_id.clone(),
        }
    }
    let mut errors = Vec::new();
    match (&agency_id, input.role.belongs_to_agency()) {
        (None, true) => errors.push(FieldError::new(
            "/agency_id",
            "required",
            "agency and agent users need an agency",
        )),
        (Some(_), false) => errors.push(FieldError::new(
            "/agency_id",
            "not_allowed",
            "only agency and agent users belong to an agency",
        )),
        (Some(id), true) if repo::agencies::find(conn, id)?.is_none() => {
            errors.push(FieldError::new(
                "/agency_id",
                "unknown_agency",
                "no agency has this id",
            ));
        }
        _ => {}
    }
    if input.capacity.is_some() && !input.role.is_operator() {
        errors.push(capacity_not_allowed());
    }
    if input.admin && !input.role.is_operator() {
        errors.push(admin_not_allowed());
    }
    if input.role != Role::Client {
        for (pointer, set) in [
            ("/id_document_type", input.id_document_type.is_some()),
            ("/id_document_number", input.id_document_number.is_some()),
            ("/account_number", input.account_number.is_some()),
        ] {
            if set {
                errors.push(FieldError::new(
                    pointer,
                    "not_allowed",
                    "identity fields are for clients only",
                ));
            }
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let now = db::now();
    Ok(UserRow {
        id: repo::new_id(),
        email: input.email.trim().to_lowercase(),
        name: input.name.trim().to_owned(),
        role: input.role.as_str().to_owned(),
        agency_id,
        is_admin: input.admin,
        locale: input.locale.as_str().to_owned(),
        active: true,
        password_hash,
        id_document_type: input.id_document_type.clone(),
        id_document_number: input.id_document_number.clone(),
        account_number: input.account_number.clone(),
        version: 1,
        created_at: now,
        updated_at: now,
        capacity: input.capacity.map(i32::from),
        session_epoch: 0,
    })
}

/// Argon2id is deliberately slow: it runs off the blocking pool ([`password::off_the_pool`]).
pub async fn hash_password(password: String) -> Result<String, ApiError> {
    password::off_the_pool(move || password::hash(&password))
        .await
        .ok_or_else(|| ApiError::internal("the password hashing thread failed"))?
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// List users
///
/// Newest first. Platform staff see everyone; an agency admin sees the agency and agent users
/// of their own agency. Roles: platform, agency admin.
#[utoipa::path(
    tag = "users",
    operation_id = "list_users",
    params(ListUsersQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "One page of users", body = Page<UserView>,
            headers(("Link" = String, description = "`<…>; rel=\"next\"` when another page follows"))),
        (status = 403, description = "The caller's role manages no users"),
    )
)]
#[get("/v1/users")]
pub async fn list_users(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: Token,
    query: Query<ListUsersQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = PageRequest::new(query.limit, query.cursor.as_deref())?;
    let filter = UserFilter {
        roles: query.role.iter().map(|r| r.as_str()).collect(),
        agency_id: query.agency_id.map(|id| id.to_string()),
    };
    let (rows, page, show_identity) = db::read(&state.pool, move |conn| {
        let caller = token.user(conn)?;
        let scope = scope_of(&caller)?;
        let rows = repo::users::list(conn, &scope, &filter, page.after.as_deref(), page.fetch())?;
        Ok((rows, page, caller.is_platform()))
    })
    .await?;
    let capacity = state.settings.operator_capacity;
    let page = page.page(
        rows,
        |r| &r.id,
        |r| UserView::new(r, show_identity, capacity),
    );
    Ok(page_response(&req, page))
}

/// Create a user
///
/// Platform admins create users of any role; other platform staff create clients and platform
/// staff who are not admins; an agency admin creates `agency` and `agent` users of their own
/// agency (admins too); anything else is 403. The e-mail must be
/// unused (case-insensitively). Accepts `Idempotency-Key`: a retry with the same key and body
/// replays the first answer, another body (another password too) is 422. Roles: platform,
/// agency admin.
#[utoipa::path(
    tag = "users",
    operation_id = "create_user",
    request_body = CreateUser,
    params(IdempotencyKey),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = UserView,
            headers(("Location" = String, description = "The new user's URL"), ("ETag" = String, description = "Its version"))),
        (status = 403, description = "The caller may not create this user (an agency admin: only their agency's staff and agents; platform staff other than admins: no admins, no agency users), or their role or admin flag changed while the request ran"),
        (status = 409, description = "The e-mail is taken (`email_taken`)"),
    )
)]
#[post("/v1/users")]
pub async fn create_user(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: AuthUser,
    retry_key: IdempotencyKey,
    body: ValidJson<CreateUser>,
) -> Result<HttpResponse, ApiError> {
    scope_of(&caller)?;
    let actor = actor_of(&caller, &req);
    let mut input = body.0;
    let hash = hash_password(input.password.clone()).await?;
    // Nothing reads the password past its hash: the body goes on with the password's keyed
    // digest in its place, which is all its fingerprint may hold of it.
    let key = state.settings.jwt.keys.private_material();
    input.password = password::keyed_digest(key, &input.password);
    let capacity = state.settings.operator_capacity;
    idempotency::create(&state, &req, retry_key, input, move |conn| {
        still_as_authenticated(conn, &caller, &[])?;
        let user_id = caller.id.clone();
        let create = move |conn: &mut DbConnection, input: CreateUser| {
            let user = check_new_user(conn, Some(&caller), &input, hash)?;
            repo::users::insert(conn, &user)?;
            repo::audit::append(conn, &actor, user_changes("create", None, &user))?;
            let row = repo::users::find(conn, &UserScope::All, &user.id)?
                .ok_or_else(|| ApiError::internal("inserted user vanished"))?;
            Ok(Created {
                location: Some(format!("/v1/users/{}", row.id)),
                version: Some(row.version),
                body: UserView::new(row, true, capacity),
            })
        };
        Ok(Authorized { user_id, create })
    })
    .await
}

/// Get a user
///
/// Answers 304 when `If-None-Match` names the current version. Roles: platform, agency admin
/// (own agency's staff and agents; anyone else is 404).
#[utoipa::path(
    tag = "users",
    operation_id = "get_user",
    params(("id" = Uuid, Path, description = "User id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The user", body = UserView, headers(("ETag" = String, description = "Its version"))),
        (status = 304, description = "Unchanged since the `If-None-Match` version"),
        (status = 403, description = "The caller's role manages no users"),
        (status = 404, description = "No such user, or not one the caller manages"),
    )
)]
#[get("/v1/users/{id}")]
pub async fn get_user(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: Token,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner().to_string();
    let (row, show_identity) = db::read(&state.pool, move |conn| {
        let caller = token.user(conn)?;
        let scope = scope_of(&caller)?;
        let row = repo::users::find(conn, &scope, &id)?.ok_or_else(user_not_found)?;
        Ok((row, caller.is_platform()))
    })
    .await?;
    let version = row.version;
    Ok(versioned_response(
        &req,
        version,
        &UserView::new(row, show_identity, state.settings.operator_capacity),
    ))
}

/// A user's fields the audit trail records with their values.
fn shown_fields(user: &UserRow) -> [(&'static str, Option<String>); 7] {
    [
        ("role", Some(user.role.clone())),
        ("email", Some(user.email.clone())),
        ("name", Some(user.name.clone())),
        ("admin", Some(user.is_admin.to_string())),
        ("locale", Some(user.locale.clone())),
        ("active", Some(user.active.to_string())),
        ("capacity", user.capacity.map(|c| c.to_string())),
    ]
}

/// A user's fields the audit trail names without their values: the password and the client's
/// identity stay out of a log that is kept forever and read by admins.
fn named_fields(user: &UserRow) -> [(&'static str, Option<String>); 4] {
    [
        ("password", Some(user.password_hash.clone())),
        ("id_document_type", user.id_document_type.clone()),
        ("id_document_number", user.id_document_number.clone()),
        ("account_number", user.account_number.clone()),
    ]
}

/// The audit rows of a user going from `before` (none: just created) to `after`, one per field
/// that moved; its agency's admins read them (a client's or platform user's: platform admins).
pub fn user_changes(action: &str, before: Option<&UserRow>, after: &UserRow) -> Vec<Change> {
    let change = Change::outside_cases("user", &after.id, after.agency_id.as_deref(), action);
    let mut rows = change.moved(before.map(shown_fields), shown_fields(after));
    let named = change.moved(before.map(named_fields), named_fields(after));
    rows.extend(named.into_iter().map(Change::without_values));
    rows
}

/// The caller was read before the request's password hash, outside this write: they must still
/// be the active user, in the session, with the role and admin flag their rights came from
/// (two admins locking each other out at once would otherwise both succeed). Their row is
/// locked with `others` on PostgreSQL, so a racing change to either waits.
fn still_as_authenticated(
    conn: &mut DbConnection,
    caller: &AuthUser,
    others: &[&str],
) -> Result<(), ApiError> {
    repo::users::lock_for_update(conn, &[&[caller.id.as_str()], others].concat())?;
    match repo::users::find_active(conn, &caller.id)? {
        None => Err(ApiError::Unauthorized {
            code: "invalid_token",
            detail: "The account was deactivated while this request ran.".into(),
        }),
        Some(now) if now.epochs.sum() != caller.session_epoch => Err(ApiError::Unauthorized {
            code: "invalid_token",
            detail: "Your sessions ended while this request ran.".into(),
        }),
        Some(now) if now.row.role() != caller.role || now.row.is_admin != caller.admin => Err(
            ApiError::Forbidden("Your role or admin flag changed while this request ran.".into()),
        ),
        Some(_) => Ok(()),
    }
}

/// Update a user
///
/// Changes name, e-mail, password, admin flag, locale, active flag, (clients) identity and
/// (agency and platform staff) capacity; an agency operator's capacity raised serves the
/// agency's queue in the same write (rule log trigger `capacity_changed`).
/// `role` and `agency_id` cannot change (422, `read_only_field` in `errors`). Callers cannot
/// deactivate themselves or drop their own admin flag (422, `cannot_lock_out_self` in `errors`).
/// Among platform staff only platform admins make a user an admin, change an admin's account,
/// or set another user's password or e-mail (403); an agency admin does so for their own
/// agency's staff. Agents and clients are never admins (422 `not_allowed`). One's own password
/// changes at `PUT /v1/me/password`, with the current one (here 422 `not_allowed`). Honours
/// `If-Match` (412 when stale).
/// Roles: platform, agency admin (own agency's staff and agents).
#[utoipa::path(
    tag = "users",
    operation_id = "update_user",
    params(
        ("id" = Uuid, Path, description = "User id"),
        IfMatch,
    ),
    request_body = UpdateUser,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Updated", body = UserView, headers(("ETag" = String, description = "The new version"))),
        (status = 403, description = "The caller's role manages no users; the user is (or would become) a platform admin, or the change sets another user's password or e-mail, and the caller is not a platform admin (platform staff); or the caller's role or admin flag changed while the request ran"),
        (status = 404, description = "No such user, or not one the caller manages"),
        (status = 409, description = "The e-mail is taken (`email_taken`)"),
        (status = 412, description = "`If-Match` is stale"),
        (status = 422, description = "A member breaks a rule, or is read-only"),
    )
)]
#[patch("/v1/users/{id}")]
pub async fn update_user(
    req: HttpRequest,
    if_match: IfMatch,
    state: web::Data<AppState>,
    caller: AuthUser,
    id: web::Path<Uuid>,
    body: ValidJson<UpdateUser>,
) -> Result<HttpResponse, ApiError> {
    let scope = scope_of(&caller)?;
    let id = id.into_inner().to_string();
    let input = body.0;
    let mut errors = Vec::new();
    for (pointer, sent) in [
        ("/role", input.role.is_some()),
        ("/agency_id", input.agency_id.is_some()),
    ] {
        if sent {
            errors.push(FieldError::new(
                pointer,
                "read_only_field",
                "cannot be changed",
            ));
        }
    }
    if id == caller.id && input.password.is_some() {
        errors.push(FieldError::new(
            "/password",
            "not_allowed",
            "your own password changes at `PUT /v1/me/password`, with the current one",
        ));
    }
    if id == caller.id && (input.active == Some(false) || input.admin == Some(false)) {
        let pointer = if input.active == Some(false) {
            "/active"
        } else {
            "/admin"
        };
        errors.push(FieldError::new(
            pointer,
            "cannot_lock_out_self",
            "you cannot deactivate yourself or drop your own admin flag",
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let password_hash = match &input.password {
        Some(p) => Some(hash_password(p.clone()).await?),
        None => None,
    };
    let show_identity = caller.is_platform();
    let capacity = state.settings.operator_capacity;
    let notifier = state.notifier.clone();
    let actor = actor_of(&caller, &req);
    let row = db::write(&state.pool, move |conn| {
        // A change that may end an operator's sessions or give them room serves their
        // agency's queue: its lock comes before any row, as in every write that serves it (a
        // payment, going available). Role and agency never change: read here unlocked.
        let may_serve =
            password_hash.is_some() || input.active == Some(false) || input.capacity.is_some();
        let queue = match may_serve {
            true => repo::users::find(conn, &scope, &id)?.and_then(|target| {
                repo::presence::queue_of(target.role(), target.agency_id.as_deref())
                    .map(str::to_owned)
            }),
            false => None,
        };
        if let Some(agency) = &queue {
            repo::presence::lock_queue(conn, agency)?;
        }
        still_as_authenticated(conn, &caller, &[&id])?;
        let current = repo::users::find(conn, &scope, &id)?.ok_or_else(user_not_found)?;
        let admin_before_or_after = current.is_admin || input.admin == Some(true);
        guard_admins(&caller, current.role(), admin_before_or_after)?;
        if id != caller.id && (input.password.is_some() || input.email.is_some()) {
            guard_credentials(&caller, "set another user's password or e-mail")?;
        }
        if_match.check(current.version)?;
        let identity_sent = [
            &input.id_document_type,
            &input.id_document_number,
            &input.account_number,
        ];
        if current.role() != Role::Client && identity_sent.iter().any(|f| f.is_some()) {
            return Err(ApiError::invalid_field(
                "/id_document_type",
                "not_allowed",
                "identity fields are for clients only",
            ));
        }
        if input.capacity.is_some() && !current.role().is_operator() {
            return Err(ApiError::validation(vec![capacity_not_allowed()]));
        }
        if input.admin == Some(true) && !current.role().is_operator() {
            return Err(ApiError::validation(vec![admin_not_allowed()]));
        }
        let logs_out = password_hash.is_some() || input.active == Some(false);
        // Room made for an agency operator goes to the queue now, not at the worker's next pass.
        let raised = match (current.operator_capacity(capacity), input.capacity) {
            (Some(before), Some(new)) => {
                repo::users::effective_capacity(new.map(i32::from), capacity) > before
            }
            _ => false,
        };
        let changes = UserChanges {
            email: input.email.map(|e| e.trim().to_lowercase()),
            name: input.name.map(|n| n.trim().to_owned()),
            is_admin: input.admin,
            locale: input.locale.map(|l| l.as_str().to_owned()),
            active: input.active,
            password_hash,
            id_document_type: input.id_document_type,
            id_document_number: input.id_document_number,
            account_number: input.account_number,
            capacity: input.capacity.map(|c| c.map(i32::from)),
        };
        if !repo::users::update(conn, &id, current.version, &changes)? {
            return Err(if_match.lost_race(current.version, "user"));
        }
        let after = repo::users::find(conn, &UserScope::All, &id)?.ok_or_else(user_not_found)?;
        repo::audit::append(conn, &actor, user_changes("update", Some(&current), &after))?;
        if logs_out {
            crate::api::auth::end_every_session(conn, &id)?;
        }
        if let Some(agency) = queue.filter(|_| raised) {
            crate::rules::serve_queue(conn, &notifier, &agency, capacity, "capacity_changed")?;
        }
        Ok(after)
    })
    .await?;
    Ok(HttpResponse::Ok()
        .insert_header(("ETag", crate::http::extract::etag(row.version)))
        .json(UserView::new(row, show_identity, capacity)))
}
