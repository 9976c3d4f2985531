//! The command line: `serve` (the default), `migrate`, `create-user`, `openapi`.

use clap::{Parser, Subcommand};

use crate::api::users::{CreateUser, check_new_user, user_changes};
use crate::config::BootstrapAdmin;
use crate::db::{self, DbConnection};
use crate::domain::{Locale, Role};
use crate::errors::ApiError;
use crate::repo;

#[derive(Debug, Parser)]
#[command(
    name = "dossier",
    version,
    about = "Dossier, the case-management REST API"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply migrations and serve the API (the default).
    Serve,
    /// Apply pending migrations and exit.
    Migrate,
    /// Create a user (applies migrations first). For the first platform admin:
    /// `dossier create-user --email E --password P --role platform --admin`.
    CreateUser {
        #[arg(long)]
        email: String,
        #[arg(long, env = "DOSSIER_NEW_USER_PASSWORD", hide_env_values = true)]
        password: String,
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// Required for agency and agent users.
        #[arg(long)]
        agency_id: Option<uuid::Uuid>,
        #[arg(long)]
        admin: bool,
        /// Display name; defaults to the part of the e-mail before `@`.
        #[arg(long)]
        name: Option<String>,
        #[arg(long, value_parser = parse_locale, default_value = "en")]
        locale: Locale,
    },
    /// Print the OpenAPI document.
    Openapi,
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::from_code(s).ok_or_else(|| "expected platform, agency, agent or client".into())
}

fn parse_locale(s: &str) -> Result<Locale, String> {
    Locale::from_code(s).ok_or_else(|| "expected en, it, es or pl".into())
}

/// Validates and inserts a user outside any request, with the same rules as `POST /v1/users`.
pub fn create_user(conn: &mut DbConnection, input: &CreateUser) -> Result<String, String> {
    use validator::Validate;
    input.validate().map_err(|e| {
        crate::http::extract::validation_errors(&e)
            .iter()
            .map(|f| format!("{}: {}", f.pointer.trim_start_matches('/'), f.detail))
            .collect::<Vec<_>>()
            .join("; ")
    })?;
    let hash = crate::auth::password::hash(&input.password).map_err(|e| e.to_string())?;
    db::in_write_transaction(conn, |conn| {
        let user = check_new_user(conn, None, input, hash)?;
        repo::users::insert(conn, &user)?;
        repo::audit::append_from_command_line(conn, user_changes("create", None, &user))?;
        Ok::<_, ApiError>(user.id)
    })
    .map_err(|e| match e {
        ApiError::Unprocessable { errors, .. } => errors
            .iter()
            .map(|e| format!("{}: {}", e.pointer.trim_start_matches('/'), e.detail))
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    })
}

pub fn new_user_input(
    email: String,
    password: String,
    role: Role,
    agency_id: Option<uuid::Uuid>,
    admin: bool,
    name: Option<String>,
    locale: Locale,
) -> CreateUser {
    // Trimmed before the rules apply, as the API's names are: a blank one is refused.
    let name = name
        .map(|n| n.trim().to_owned())
        .unwrap_or_else(|| email.split('@').next().unwrap_or(&email).to_owned());
    CreateUser {
        email,
        name,
        password,
        role,
        agency_id,
        admin,
        locale,
        id_document_type: None,
        id_document_number: None,
        account_number: None,
        capacity: None,
    }
}

/// Creates the platform admin named by `DOSSIER_BOOTSTRAP_ADMIN_*` when no user exists yet.
pub fn bootstrap_admin(conn: &mut DbConnection, admin: &BootstrapAdmin) -> Result<(), String> {
    if repo::users::count(conn).map_err(|e| e.to_string())? > 0 {
        return Ok(());
    }
    let input = new_user_input(
        admin.email.clone(),
        admin.password.clone(),
        Role::Platform,
        None,
        true,
        None,
        Locale::En,
    );
    match create_user(conn, &input) {
        Ok(_) => {
            log::info!("created the bootstrap platform admin {}", input.email);
            Ok(())
        }
        // Another node created it first.
        Err(e) if e.contains("e-mail") && repo::users::count(conn).unwrap_or(0) > 0 => Ok(()),
        Err(e) => Err(format!("DOSSIER_BOOTSTRAP_ADMIN_EMAIL/PASSWORD: {e}")),
    }
}
