//! The caller's own profile.

use actix_web::{HttpRequest, HttpResponse, get, patch, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::Validate;

use crate::api::presence::PresenceView;
use crate::api::users::{UserView, user_changes};
use crate::api::{Asked, Asking};
use crate::app::AppState;
use crate::auth::Token;
use crate::db;
use crate::domain::{Locale, Role};
use crate::errors::ApiError;
use crate::http::extract::ValidJson;
use crate::repo;
use crate::repo::users::{UserChanges, UserScope};

/// The caller, with their presence.
#[derive(Debug, Serialize, ToSchema)]
pub struct MeView {
    #[serde(flatten)]
    pub user: UserView,
    /// Staff only (`null` for clients); set with `PUT /v1/me/presence`.
    pub presence: Option<PresenceView>,
}

/// The caller
///
/// The authenticated user: role, agency, admin flag, locale, presence (staff) and, for
/// clients, their identity. Roles: any user.
#[utoipa::path(
    tag = "users",
    operation_id = "get_me",
    security(("bearer" = [])),
    responses((status = 200, description = "The caller", body = MeView))
)]
#[get("/v1/me")]
pub async fn get_me(state: web::Data<AppState>, token: Token) -> Result<HttpResponse, ApiError> {
    // The profile is the caller's row: read once, not once to authenticate and again here.
    let (user, presence) = db::read(&state.pool, move |conn| {
        let user = token.profile(conn)?;
        let presence = PresenceView::of(conn, &user.id, user.role())?;
        Ok((user, presence))
    })
    .await?;
    Ok(HttpResponse::Ok().json(MeView {
        user: UserView::new(user, true, state.settings.operator_capacity),
        presence,
    }))
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"locale": "pl"}))]
pub struct UpdateMe {
    /// Staff only: a client's name is their managers' to change.
    #[serde(default, deserialize_with = "crate::api::trimmed_opt")]
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    /// The language of the caller's notifications, e-mails and (without `Accept-Language`)
    /// labels.
    pub locale: Option<Locale>,
}

/// Change your profile
///
/// Any user changes their own language (`locale`), and staff their name: the notifications
/// and e-mails written from then on, and the labels of answers without `Accept-Language`, are
/// in it. A client's name is part of the identity their agencies see (422 `not_allowed`);
/// other members of an account are their managers' (`PATCH /v1/users/{id}`); the password
/// changes at `PUT /v1/me/password`. Values equal to the current ones change nothing (the
/// version stays). Audited (`user` `update`) when something changes. Roles: any user.
#[utoipa::path(
    tag = "users",
    operation_id = "update_me",
    request_body = UpdateMe,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller, as changed", body = MeView),
        (status = 409, description = "The account changed while this request ran (`concurrent_update`)"),
        (status = 422, description = "A member breaks a rule"),
    )
)]
#[patch("/v1/me")]
pub async fn update_me(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: Token,
    body: ValidJson<UpdateMe>,
) -> Result<HttpResponse, ApiError> {
    let input = body.0;
    let asking = Asking::new(token, &req);
    let (user, presence) = db::write(&state.pool, move |conn| {
        let Asked { caller, actor, .. } = asking.resolve(conn)?;
        // A client's name is part of the identity their agencies checked: their managers'.
        if caller.role == Role::Client && input.name.is_some() {
            return Err(ApiError::invalid_field(
                "/name",
                "not_allowed",
                "a client's name is changed by the platform's staff",
            ));
        }
        let before = repo::users::find(conn, &UserScope::All, &caller.id)?
            .ok_or_else(|| ApiError::internal("the caller's row vanished"))?;
        // Only what differs: an app that sends its language at every start moves nothing.
        let changes = UserChanges {
            name: input.name.filter(|name| *name != before.name),
            locale: input
                .locale
                .map(|l| l.as_str().to_owned())
                .filter(|locale| *locale != before.locale),
            ..UserChanges::default()
        };
        let user = match changes.name.is_some() || changes.locale.is_some() {
            // Nothing new: nothing written, the version stays.
            false => before,
            true => {
                if !repo::users::update(conn, &caller.id, before.version, &changes)? {
                    return Err(ApiError::Conflict {
                        code: "concurrent_update",
                        detail: "Your account changed while this request ran; try again.".into(),
                    });
                }
                let after = repo::users::find(conn, &UserScope::All, &caller.id)?
                    .ok_or_else(|| ApiError::internal("the caller's row vanished"))?;
                repo::audit::append(conn, &actor, user_changes("update", Some(&before), &after))?;
                after
            }
        };
        let presence = PresenceView::of(conn, &user.id, user.role())?;
        Ok((user, presence))
    })
    .await?;
    Ok(HttpResponse::Ok().json(MeView {
        user: UserView::new(user, true, state.settings.operator_capacity),
        presence,
    }))
}
