//! The caller's own profile.

use actix_web::{HttpResponse, get, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::api::presence::PresenceView;
use crate::api::users::UserView;
use crate::app::AppState;
use crate::auth::Token;
use crate::db;
use crate::errors::ApiError;

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
