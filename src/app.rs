//! Assembles the application: state, routes, middleware, the server. Shared by `main` and
//! the tests, so both run exactly the same app.

use std::sync::Arc;

use actix_cors::Cors;
use actix_web::body::BoxBody;
use actix_web::dev::{Server, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use utoipa_swagger_ui::SwaggerUi;

use crate::auth::jwt::Tokens;
use crate::auth::throttle::LoginThrottle;
use crate::auth::write_limit::WriteLimit;
use crate::config::Settings;
use crate::db::{self, Pool};
use crate::events::Notifier;
use crate::http::fallback::{self, RouteTable};
use crate::http::metrics::Metrics;
use crate::http::middleware;
use crate::sealing::Sealer;
use crate::storage::Blobs;

pub struct AppState {
    pub settings: Settings,
    pub pool: Pool,
    pub tokens: Tokens,
    pub throttle: LoginThrottle,
    pub writes: WriteLimit,
    pub metrics: Metrics,
    pub blobs: Blobs,
    pub notifier: Notifier,
    pub sealer: Arc<Sealer>,
}

impl AppState {
    pub fn new(settings: Settings) -> Result<AppState, String> {
        let pool = db::build_pool(
            &settings.database_url,
            settings.db_pool_size,
            settings.db_limits,
        )?;
        let tokens = Tokens::new(&settings.jwt)?;
        let blobs = Blobs::new(&settings.storage)?;
        let sealer = Arc::new(Sealer::new(&settings.secrets)?);
        Ok(AppState {
            blobs,
            sealer,
            notifier: Notifier::new(&settings),
            throttle: LoginThrottle::new(settings.login_throttle.clone()),
            writes: WriteLimit::new(settings.writes_per_minute),
            metrics: Metrics::new(),
            settings,
            pool,
            tokens,
        })
    }

    /// Applies migrations, creates the bootstrap admin and seals the webhooks' secrets with the
    /// current key: what must happen before serving. A secret no configured key opens stops
    /// the start, rather than every delivery of its webhook later.
    pub fn prepare(&self) -> Result<(), String> {
        let mut conn = self
            .pool
            .get()
            .map_err(|e| format!("cannot reach the database: {e}"))?;
        db::run_migrations(&mut conn)?;
        if let Some(admin) = &self.settings.bootstrap_admin {
            crate::cli::bootstrap_admin(&mut conn, admin)?;
        }
        let resealed = db::in_write_transaction(&mut conn, |conn| {
            crate::repo::webhooks::reseal_secrets(conn, &self.sealer, db::now())
        })
        .map_err(|e| format!("cannot seal the webhooks' secrets: {e}"))?;
        if resealed > 0 {
            log::info!("stored {resealed} webhook(s)' secrets anew under the current key");
        }
        Ok(())
    }
}

fn cors(settings: &Settings) -> Cors {
    let mut cors = Cors::default()
        .allowed_methods(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"])
        .allowed_headers([
            "authorization",
            "content-type",
            "if-match",
            "if-none-match",
            "idempotency-key",
            "x-request-id",
            "accept-language",
            "last-event-id",
        ])
        .expose_headers([
            "etag",
            "location",
            "link",
            "retry-after",
            "x-request-id",
            "www-authenticate",
            "idempotent-replayed",
            // A page's script downloads with its token, by `fetch`: the name is in here.
            "content-disposition",
        ])
        .max_age(3600);
    for origin in &settings.cors_origins {
        // Bearer tokens, not cookies: "*" never comes with credentials.
        cors = if origin == "*" {
            cors.allow_any_origin()
        } else {
            cors.allowed_origin(origin)
        };
    }
    cors
}

/// The whole application, ready for `HttpServer` or an in-process test.
pub fn build_app(
    state: web::Data<AppState>,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<BoxBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let (app, spec) = crate::openapi::with_routes(App::new());
    let routes = web::Data::new(RouteTable::from_spec(&spec));
    let json_limit = state.settings.json_limit_bytes;
    let cors = cors(&state.settings);
    app.app_data(state)
        .app_data(routes)
        .app_data(fallback::json_config(json_limit))
        .app_data(fallback::path_config())
        .service(SwaggerUi::new("/docs/{_:.*}").url("/openapi.json", spec))
        .default_service(web::to(fallback::not_found))
        .wrap(cors)
        .wrap(from_fn(middleware::observe))
}

/// Starts serving on `listener`. SIGTERM and SIGINT stop it gracefully: it stops accepting,
/// lets requests in flight finish (up to 30 s), then returns.
pub fn serve(
    state: web::Data<AppState>,
    listener: std::net::TcpListener,
    workers: Option<usize>,
) -> std::io::Result<Server> {
    // Blocking threads in all: as many as there are pooled connections. More would only park
    // waiting for a connection and be woken for it (a tenth of the card's CPU went to that),
    // each with its stack and allocator heap (under load actix's default of 512 per worker
    // let resident memory pass 200 MB).
    let workers =
        workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let blocking_threads = (state.settings.db_pool_size as usize).div_ceil(workers);
    let server = HttpServer::new(move || build_app(state.clone()))
        .workers(workers)
        .worker_max_blocking_threads(blocking_threads)
        .shutdown_timeout(30);
    Ok(server.listen(listener)?.run())
}
