//! The caller's own profile.

use actix_web::{HttpResponse, get, web};

use crate::api::users::UserView;
use crate::app::AppState;
use crate::auth::Token;
use crate::db;
use crate::errors::ApiError;

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
pub async fn get_me(state: web::Data<AppState>, token: Token) -> Result<HttpResponse, ApiError> {
    // The profile is the caller's row: read once, not once to authenticate and again here.
    let user = db::read(&state.pool, move |conn| token.profile(conn)).await?;
    Ok(HttpResponse::Ok().json(UserView::new(user, true)))
}
