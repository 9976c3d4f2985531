//! The HTTP handlers, one module per resource. Each handler is registered once, in
//! [`routes`], for both serving and the OpenAPI document.

pub mod agencies;
pub mod auth;
pub mod me;
pub mod operations;
pub mod users;

use serde::{Deserialize, Deserializer};

pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(operations::live)
        .service(operations::ready)
        .service(operations::metrics)
        .service(auth::create_token)
        .service(auth::refresh_token)
        .service(me::get_me)
        .service(agencies::list_agencies)
        .service(agencies::create_agency)
        .service(agencies::get_agency)
        .service(agencies::update_agency)
        .service(users::list_users)
        .service(users::create_user)
        .service(users::get_user)
        .service(users::update_user);
}

/// For PATCH bodies: tells "absent" (`None`) from "null" (`Some(None)`).
pub fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// RFC 3339 in UTC with a `Z`, as API.md asks.
pub fn timestamp(t: chrono::NaiveDateTime) -> chrono::DateTime<chrono::Utc> {
    t.and_utc()
}
