//! Liveness, readiness and metrics, for load balancers and Prometheus.

use actix_web::{HttpResponse, get, web};
use diesel::connection::SimpleConnection;
use serde::Serialize;
use utoipa::ToSchema;

use crate::app::AppState;
use crate::errors::ApiError;
use crate::live::relay::RelayStatus;

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"status": "ok"}))]
pub struct HealthStatus {
    /// `ok`.
    pub status: String,
}

/// Liveness
///
/// The process is up and serving HTTP; touches nothing else. Roles: anyone (no token).
#[utoipa::path(tag = "operations", operation_id = "health_live", responses((status = 200, description = "The process serves HTTP", body = HealthStatus)))]
#[get("/health/live")]
pub async fn live() -> HttpResponse {
    HttpResponse::Ok().json(HealthStatus {
        status: "ok".into(),
    })
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"status": "ok", "live_relay": "listening"}))]
pub struct ReadyStatus {
    /// `ok`.
    pub status: String,
    /// The live streams' relay across API nodes (PostgreSQL): `reconnecting` while its
    /// connection is opened or replaced, when this node's streams miss other nodes' wakes.
    /// Not a reason to take the node out of service: requests are served, and the streams
    /// catch up once it listens again.
    pub live_relay: RelayStatus,
}

/// Readiness
///
/// Pings the database. Answers 503 while it cannot be reached and 200 again as soon as it can,
/// without a restart. Also tells where the live streams' relay stands. Roles: anyone (no token).
#[utoipa::path(
    tag = "operations",
    operation_id = "health_ready",
    responses(
        (status = 200, description = "The database answers", body = ReadyStatus),
        (status = 503, description = "The database cannot be reached"),
    )
)]
#[get("/health/ready")]
pub async fn ready(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let pool = state.pool.clone();
    web::block(move || -> Result<(), ApiError> {
        let mut conn = pool.get_timeout(std::time::Duration::from_secs(2))?;
        conn.batch_execute("SELECT 1")
            .map_err(|e| ApiError::Unavailable(e.to_string()))
    })
    .await??;
    Ok(HttpResponse::Ok().json(ReadyStatus {
        status: "ok".into(),
        live_relay: crate::live::relay::status(),
    }))
}

/// Metrics
///
/// Prometheus text format: `dossier_http_requests_total` and
/// `dossier_http_request_duration_seconds` by method, route and status, and the database pool's
/// `dossier_db_pool_connections`, `dossier_db_pool_idle_connections`, `dossier_db_pool_max_connections`.
/// Roles: anyone (no token; keep it off the public network).
#[utoipa::path(
    tag = "operations",
    operation_id = "metrics",
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain; version=0.0.4", body = String,
        example = json!("# TYPE dossier_http_requests_total counter\ndossier_http_requests_total{method=\"GET\",route=\"/v1/cases/{id}\",status=\"200\"} 1024\n")))
)]
#[get("/metrics")]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render(&state.pool))
}
