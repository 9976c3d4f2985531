//! One diesel codebase over SQLite and PostgreSQL: the connection enum, the pool, migrations.

pub mod schema;

use std::path::Path;
use std::time::Duration;

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sqlite::SqliteConnection;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::errors::ApiError;

pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
pub const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// The engine is chosen at run time by `DATABASE_URL`; queries are written once against this.
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Postgresql(PgConnection),
    Sqlite(SqliteConnection),
}

pub type Pool = r2d2::Pool<ConnectionManager>;
pub type PooledConnection = r2d2::PooledConnection<ConnectionManager>;

/// A parsed `DATABASE_URL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// `postgres://…` or `postgresql://…`, handed to libpq as is.
    Postgres(String),
    /// `sqlite://path/to/file.db` (relative) or `sqlite:///abs/path.db`; the path of the file.
    Sqlite(String),
}

impl DatabaseUrl {
    pub fn parse(url: &str) -> Result<DatabaseUrl, String> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(DatabaseUrl::Postgres(url.to_owned()))
        } else if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err("sqlite:// needs a file path, e.g. sqlite://data/dossier.db".into());
            }
            Ok(DatabaseUrl::Sqlite(path.to_owned()))
        } else {
            Err("expected a postgres://, postgresql:// or sqlite:// URL".into())
        }
    }
}

/// Opens connections of the engine named by the URL (diesel's own manager would try each
/// engine in turn, and SQLite accepts any string as a file name).
#[derive(Debug, Clone)]
pub struct ConnectionManager {
    url: DatabaseUrl,
}

impl r2d2::ManageConnection for ConnectionManager {
    type Connection = DbConnection;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<DbConnection, Self::Error> {
        let conn = match &self.url {
            DatabaseUrl::Postgres(url) => DbConnection::Postgresql(
                PgConnection::establish(url).map_err(diesel::r2d2::Error::ConnectionError)?,
            ),
            DatabaseUrl::Sqlite(path) => {
                let mut conn = SqliteConnection::establish(path)
                    .map_err(diesel::r2d2::Error::ConnectionError)?;
                // WAL lets readers run beside the writer; busy_timeout queues writers instead of
                // failing them with SQLITE_BUSY.
                // mmap: pages come straight from the OS page cache instead of a read() call each
                // into every connection's own cache (twice the card's throughput in the
                // benchmark). Mapped pages count in RSS once per connection, but they are the
                // file's page cache, not the process's memory.
                conn.batch_execute(
                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                     PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000; \
                     PRAGMA mmap_size = 268435456;",
                )
                .map_err(diesel::r2d2::Error::QueryError)?;
                DbConnection::Sqlite(conn)
            }
        };
        Ok(conn)
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), Self::Error> {
        conn.batch_execute("SELECT 1")
            .map_err(diesel::r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut DbConnection) -> bool {
        <DbConnection as Connection>::TransactionManager::is_broken_transaction_manager(conn)
    }
}

/// Builds the pool without connecting: a database that is down at start shows up as 503s and
/// a failing readiness probe, not as a crash loop.
pub fn build_pool(url: &str, size: u32) -> Result<Pool, String> {
    let url = DatabaseUrl::parse(url)?;
    if let DatabaseUrl::Sqlite(path) = &url
        && let Some(dir) = Path::new(path).parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    // No `SELECT 1` before every checkout (two per request): a connection that broke shows up
    // as an error on its next use and is then discarded (`has_broken`).
    let pool = r2d2::Pool::builder()
        .max_size(size)
        .test_on_check_out(false)
        .min_idle(Some(0))
        .connection_timeout(Duration::from_secs(3))
        .build_unchecked(ConnectionManager { url });
    Ok(pool)
}

/// Applies the pending migrations of the connection's engine.
pub fn run_migrations(conn: &mut DbConnection) -> Result<(), String> {
    let result = match conn {
        DbConnection::Postgresql(c) => c.run_pending_migrations(POSTGRES_MIGRATIONS).map(|_| ()),
        DbConnection::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS).map(|_| ()),
    };
    result.map_err(|e| format!("migration failed: {e}"))
}

/// Runs a request's writes on actix's blocking pool (never on the event loop) in one
/// transaction: they land together or not at all. On SQLite the transaction starts with
/// `BEGIN IMMEDIATE`, so two writers queue on `busy_timeout` instead of failing on a lock upgrade.
pub async fn write<T, F>(pool: &Pool, work: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&mut DbConnection) -> Result<T, ApiError> + Send + 'static,
{
    let result = on_blocking_pool(pool, |conn| in_write_transaction(conn, work)).await;
    if result.is_ok() {
        crate::live::committed();
    }
    result
}

/// Runs read-only work on the blocking pool, in one (deferred) transaction so every query of
/// the request sees the same snapshot.
pub async fn read<T, F>(pool: &Pool, work: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&mut DbConnection) -> Result<T, ApiError> + Send + 'static,
{
    on_blocking_pool(pool, |conn| conn.transaction(work)).await
}

async fn on_blocking_pool<T, F>(pool: &Pool, work: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&mut DbConnection) -> Result<T, ApiError> + Send + 'static,
{
    let pool = pool.clone();
    actix_web::web::block(move || {
        let mut conn = pool.get()?;
        work(&mut conn)
    })
    .await?
}

/// The write transaction itself, for callers that already hold a connection (the CLI).
pub fn in_write_transaction<T, E, F>(conn: &mut DbConnection, work: F) -> Result<T, E>
where
    E: From<diesel::result::Error>,
    F: FnOnce(&mut DbConnection) -> Result<T, E>,
{
    type Manager = <DbConnection as Connection>::TransactionManager;
    match conn {
        DbConnection::Sqlite(c) => {
            AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")?
        }
        DbConnection::Postgresql(_) => Manager::begin_transaction(conn)?,
    }
    match work(conn) {
        Ok(value) => {
            Manager::commit_transaction(conn)?;
            Ok(value)
        }
        Err(e) => {
            // The original error matters more than a failed rollback, which breaks the
            // connection and makes the pool discard it.
            let _ = Manager::rollback_transaction(conn);
            Err(e)
        }
    }
}

/// The current time at the precision both engines store (microseconds).
pub fn now() -> chrono::NaiveDateTime {
    use chrono::SubsecRound;
    chrono::Utc::now().naive_utc().trunc_subsecs(6)
}
