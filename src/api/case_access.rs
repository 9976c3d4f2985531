//! How handlers reach a case: the caller's view of cases (`Viewer`), the case as they may see
//! it (404 otherwise), the locks and version moves of writes on it, and the 409s and 412s of a
//! case that moved on meanwhile. Every case-scoped resource goes through here.

use actix_web::{HttpRequest, HttpResponse};
use serde::Serialize;
use uuid::Uuid;

use crate::api::{Asked, Asking};
use crate::app::AppState;
use crate::auth::{AuthUser, Token};
use crate::db::{self, DbConnection};
use crate::domain::{CaseStatus, Locale, Role};
use crate::errors::{AllowedActions, ApiError};
use crate::http::extract::IfMatch;
use crate::http::idempotency::{self, Authorized, Created, IdempotencyKey};
use crate::repo;
use crate::repo::audit::Actor;
use crate::repo::cases::{CaseChanges, CaseRow, CaseScope};
use crate::workflow::AllowedAction;

/// How a caller looks at cases: what they see, in which language, as whom.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub user_id: String,
    pub role: Role,
    pub scope: CaseScope,
    pub locale: Locale,
}

impl Viewer {
    /// For a caller looked up inside the handler's transaction, with the language the request
    /// asked for (`i18n::requested`), else the caller's own.
    pub fn asking(caller: &AuthUser, language: Option<Locale>) -> Viewer {
        Viewer {
            user_id: caller.id.clone(),
            role: caller.role,
            scope: CaseScope::of(caller.role, &caller.id, caller.agency_id.as_deref()),
            locale: language.unwrap_or(caller.locale),
        }
    }
}

pub fn case_not_found() -> ApiError {
    ApiError::NotFound("No such case, or not one you can see.".into())
}

/// The case as `viewer` may see it, or 404.
pub fn find_visible(
    conn: &mut DbConnection,
    viewer: &Viewer,
    id: &str,
) -> Result<CaseRow, ApiError> {
    repo::cases::find(conn, &viewer.scope, id)?.ok_or_else(case_not_found)
}

/// In one read: the caller looked up and the case as they may see it (404 otherwise), then
/// `read` of what the request asks of it.
pub async fn read_on_case<T, F>(
    state: &AppState,
    req: &HttpRequest,
    token: Token,
    case_id: Uuid,
    read: F,
) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&mut DbConnection, &Viewer, CaseRow) -> Result<T, ApiError> + Send + 'static,
{
    let asking = Asking::new(token, req);
    let case_id = case_id.to_string();
    db::read(&state.pool, move |conn| {
        let Asked { viewer, .. } = asking.resolve(conn)?;
        let case = find_visible(conn, &viewer, &case_id)?;
        read(conn, &viewer, case)
    })
    .await
}

/// The id of a case a body names at `pointer`, if `viewer` may see it: 422 `case_unavailable`
/// otherwise (a body refers to the case; it does not ask for it, so no 404).
pub fn visible_case_id(
    conn: &mut DbConnection,
    viewer: &Viewer,
    id: Uuid,
    pointer: &str,
) -> Result<String, ApiError> {
    match find_visible(conn, viewer, &id.to_string()) {
        Ok(case) => Ok(case.id),
        Err(ApiError::NotFound(_)) => Err(ApiError::invalid_field(
            pointer,
            "case_unavailable",
            "no case you can see has this id",
        )),
        Err(e) => Err(e),
    }
}

/// Creates something on a case under `Idempotency-Key` ([`idempotency::create`]): the caller
/// is looked up and the case must be visible to them (404) before a replay; `create` runs, with
/// every other rule, only for a first request.
pub async fn create_on_case<I, T, F>(
    state: &AppState,
    req: &HttpRequest,
    key: IdempotencyKey,
    input: I,
    asking: Asking,
    case_id: String,
    create: F,
) -> Result<HttpResponse, ApiError>
where
    I: Serialize + Send + 'static,
    T: Serialize + Send + 'static,
    F: FnOnce(&mut DbConnection, &Viewer, &Actor, CaseRow, I) -> Result<Created<T>, ApiError>
        + Send
        + 'static,
{
    idempotency::create(state, req, key, input, move |conn| {
        let Asked {
            caller,
            viewer,
            actor,
        } = asking.resolve(conn)?;
        let case = find_visible(conn, &viewer, &case_id)?;
        Ok(Authorized {
            user_id: caller.id,
            create: move |conn: &mut DbConnection, input: I| {
                create(conn, &viewer, &actor, case, input)
            },
        })
    })
    .await
}

/// `case` as it stands under a share lock on its row (`repo::cases::share_lock`), for a write
/// that adds to the case without changing it and notifies nobody (a notification runs the
/// agency's triggers, which may change it: [`update_locked`]): read again where the lock was taken
/// (PostgreSQL), as read before elsewhere (SQLite's single writer already serializes writes).
pub fn share_locked(
    conn: &mut DbConnection,
    viewer: &Viewer,
    case: CaseRow,
) -> Result<CaseRow, ApiError> {
    if repo::cases::share_lock(conn, &case.id)? {
        find_visible(conn, viewer, &case.id)
    } else {
        Ok(case)
    }
}

/// [`share_locked`] with the lock of a write that may change the case or its SLA clocks (an
/// agency's answer stops the first-response clock; any write that notifies runs the agency's
/// triggers): two such writes queue, where two share locks would deadlock upgrading.
pub fn update_locked(
    conn: &mut DbConnection,
    viewer: &Viewer,
    case: CaseRow,
) -> Result<CaseRow, ApiError> {
    if repo::cases::update_lock(conn, &case.id)? {
        find_visible(conn, viewer, &case.id)
    } else {
        Ok(case)
    }
}

/// Moves the case to its next version while it is still in the status it was read in, for a
/// change the card shows (an open request, a survey, the required data): the new version is
/// its `ETag`. A transition that commits meanwhile (PostgreSQL) makes this write 409, so
/// nothing is asked, answered, cancelled, rated or filled in a status that no longer allows it.
/// `if_match` is the caller's precondition, for the 412 a lost race may be.
pub fn touch(
    conn: &mut DbConnection,
    viewer: &Viewer,
    case: &CaseRow,
    if_match: &IfMatch,
) -> Result<i64, ApiError> {
    let statuses = [case.status()];
    let changes = CaseChanges::default();
    if !repo::cases::update(conn, &case.id, case.version, &statuses, &changes)? {
        return Err(lost_race(conn, viewer, &case.id, &statuses, if_match));
    }
    Ok(case.version + 1)
}

/// The 409 for a change the case's status no longer allows, with what the caller may do now.
pub fn wrong_state(viewer: &Viewer, case: &CaseRow, detail: String) -> ApiError {
    ApiError::WrongState {
        detail,
        allowed_actions: AllowedActions::Case(AllowedAction::list(
            viewer.role,
            case.status(),
            case.disputed,
            viewer.locale,
        )),
    }
}

/// Why a conditional update found the case moved on (PostgreSQL: a concurrent request
/// committed between our read and our write): 412 for `If-Match` callers, 409 with the
/// now-allowed actions when the status moved, 409 `concurrent_update` otherwise.
pub fn lost_race(
    conn: &mut DbConnection,
    viewer: &Viewer,
    id: &str,
    allowed: &[CaseStatus],
    if_match: &IfMatch,
) -> ApiError {
    match find_visible(conn, viewer, id) {
        Err(e) => e,
        Ok(now) if !if_match.is_set() && !allowed.contains(&now.status()) => wrong_state(
            viewer,
            &now,
            format!("The case moved to `{}` meanwhile.", now.status),
        ),
        Ok(now) => if_match.lost_race(now.version, "case"),
    }
}
