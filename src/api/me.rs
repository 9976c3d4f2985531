//! The caller's own profile.

use actix_web::{HttpResponse, get, web};

use crate::api::users::UserView;
use crate::app::AppState;
use crate::auth::AuthUser;
use crate::db;
use crate::errors::ApiError;
use crate::repo;

/// The caller
///
/// The authenticated user: role, agency, admin flag, locale and, for clients, their identity.
/// Roles: any user.
#[utoipa::path(
    tag = "users",
    operation_id = "get_me",
    security(("bearer" = [])),
    responses((status = 200, description = "The caller", body = UserView))
)]
#[get("/v1/me")]
pub async fn get_me(
    state: web::Data<AppState>,
    caller: AuthUser,
) -> Result<HttpResponse, ApiError> {
    let user = db::read(&state.pool, move |conn| {
        Ok(repo::users::find_active(conn, &caller.id)?)
    })
    .await?
    .ok_or_else(|| ApiError::NotFound("The caller no longer exists.".into()))?;
    Ok(HttpResponse::Ok().json(UserView::new(user, true)))
}
