use std::process::ExitCode;

use actix_web::web;
use clap::Parser;
use dossier::app::{self, AppState};
use dossier::cli::{self, Cli, Command};
use dossier::config::{Environment, Settings};
use dossier::db;

// mimalloc rather than glibc's malloc: allocation was a fifth of a card request's CPU in the
// benchmark's profile (bench/RESULTS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit code for an invalid setting: reported before any port is bound.
const CONFIG_ERROR: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    if let Some(Command::Openapi) = cli.command {
        print!("{}", dossier::openapi::spec_json());
        return ExitCode::SUCCESS;
    }
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("configuration error: {e}");
            return ExitCode::from(CONFIG_ERROR);
        }
    };
    match run(cli.command.unwrap_or(Command::Serve), settings) {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, message)) => {
            eprintln!("error: {message}");
            ExitCode::from(code)
        }
    }
}

fn run(command: Command, settings: Settings) -> Result<(), (u8, String)> {
    let failed = |m: String| (1, m);
    match command {
        Command::Openapi => unreachable!("handled before settings are read"),
        Command::Migrate => {
            let pool =
                db::build_pool(&settings.database_url, 1, settings.db_limits).map_err(failed)?;
            let mut conn = pool
                .get()
                .map_err(|e| failed(format!("cannot reach the database: {e}")))?;
            db::run_migrations(&mut conn).map_err(failed)?;
            log::info!("migrations applied");
            Ok(())
        }
        Command::CreateUser {
            email,
            password,
            role,
            agency_id,
            admin,
            name,
            locale,
        } => {
            let pool =
                db::build_pool(&settings.database_url, 1, settings.db_limits).map_err(failed)?;
            let mut conn = pool
                .get()
                .map_err(|e| failed(format!("cannot reach the database: {e}")))?;
            db::run_migrations(&mut conn).map_err(failed)?;
            let input = cli::new_user_input(email, password, role, agency_id, admin, name, locale);
            let id = cli::create_user(&mut conn, &input).map_err(|m| (CONFIG_ERROR, m))?;
            println!("{id}");
            Ok(())
        }
        Command::Serve => serve(settings),
    }
}

#[actix_web::main]
async fn serve(settings: Settings) -> Result<(), (u8, String)> {
    if settings.jwt_secret_is_ephemeral {
        log::warn!(
            "DOSSIER_JWT_SECRET is not set: using a random secret for this process only \
             (tokens die with it). Set it, or DOSSIER_ENV=production refuses to start."
        );
    }
    if settings.environment == Environment::Development {
        log::info!("running in development mode");
    }
    let bind = settings.bind;
    let state = AppState::new(settings).map_err(|m| (CONFIG_ERROR, m))?;
    let state = web::block(move || state.prepare().map(|_| state))
        .await
        .map_err(|e| (1, e.to_string()))?
        .map_err(|m| (1, m))?;
    let listener = std::net::TcpListener::bind(bind)
        .map_err(|e| (1, format!("cannot listen on {bind}: {e}")))?;
    log::info!("listening on http://{bind} (API docs at /docs)");
    let state = web::Data::new(state);
    dossier::mailer::spawn(state.clone());
    dossier::rules::spawn(state.clone());
    dossier::webhooks::spawn(state.clone());
    dossier::housekeeping::spawn(state.clone());
    db::spawn_checkpoints(&state.pool);
    if state.settings.live_relay {
        dossier::live::relay::spawn(&state.settings.database_url)
            .map_err(|e| (1, format!("cannot start the live relay: {e}")))?;
    }
    app::serve(state, listener, None)
        .map_err(|e| (1, e.to_string()))?
        .await
        .map_err(|e| (1, e.to_string()))
}
