//! One diesel codebase over SQLite and PostgreSQL: the connection enum, the pool, migrations.

mod before_commit;
mod built_once;
#[cfg(target_os = "linux")]
mod kept_mapping;
pub mod schema;
mod thread_policy;
mod timestamps;
mod writer;

pub use before_commit::before_commit;
pub use built_once::{BuildOnce, BuiltOnce, built_once, fixed_update};
pub use timestamps::{StoredOptionalTimestamp, StoredTimestamp};

use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::time::Duration;

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::Text;
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

/// The connection pool, and for SQLite its one writer (see [`write`]).
#[derive(Clone)]
pub struct Pool {
    connections: r2d2::Pool<ConnectionManager>,
    sqlite_writer: Option<writer::Writer>,
    /// SQLite's database file.
    sqlite_file: Option<PathBuf>,
}

impl Pool {
    /// Sets `instrumentation` on SQLite's writer connection, between two of its batches (tests
    /// record its statements); no-op on PostgreSQL, whose writes use the pool's connections.
    pub fn instrument_sqlite_writer(
        &self,
        instrumentation: impl diesel::connection::Instrumentation,
    ) -> Result<(), r2d2::Error> {
        if let Some(writer) = &self.sqlite_writer {
            writer.connection()?.set_instrumentation(instrumentation);
        }
        Ok(())
    }
}

/// Everything else is r2d2's pool.
impl Deref for Pool {
    type Target = r2d2::Pool<ConnectionManager>;

    fn deref(&self) -> &Self::Target {
        &self.connections
    }
}

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

/// How long a statement may wait for a lock, and run, before it fails with 503
/// `database_busy` instead of holding its connection (and its caller) indefinitely.
#[derive(Debug, Clone, Copy)]
pub struct DbLimits {
    /// PostgreSQL's `lock_timeout`; SQLite's `busy_timeout` (another process's write lock).
    pub lock_timeout: Duration,
    /// PostgreSQL's `statement_timeout` (SQLite has none).
    pub statement_timeout: Duration,
}

impl Default for DbLimits {
    fn default() -> Self {
        DbLimits {
            lock_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(30),
        }
    }
}

/// Opens connections of the engine named by the URL (diesel's own manager would try each
/// engine in turn, and SQLite accepts any string as a file name).
#[derive(Debug, Clone)]
pub struct ConnectionManager {
    url: DatabaseUrl,
    limits: DbLimits,
    /// The SQLite writer checkpoints only as a fallback; [`spawn_checkpoints`] does it off the
    /// write path.
    writer: bool,
}

/// How much of the database file each SQLite connection maps: SQLite's own ceiling (just under
/// 2 GiB). With 256 MiB, a 1 000 000-case file (2.6 GB) was read beyond that through read()
/// calls and the card cost about 15% more CPU than with it mapped; address space is not memory.
const SQLITE_MMAP_BYTES: u64 = 0x7fff_0000;

/// WAL pages after which the SQLite writer checkpoints itself (SQLite's default is 1 000, which
/// cost a twelfth of its time, fsyncs included). The log only starts over after a checkpoint
/// that copied all of it with no reader inside it: the background's passes ([`spawn_checkpoints`])
/// do so whenever writes pause, and under steady writes never, so then the writer reaches this
/// every few seconds and copies and syncs what the last pass left. It is also the safety net
/// when nothing checkpoints in the background (in-process tests).
const WRITER_AUTOCHECKPOINT_PAGES: u32 = 100_000;
/// The writer's page cache in KiB (SQLite's default is 2 000): it survives from one transaction
/// to the next, so the index pages writes touch stay in memory instead of being read back from
/// the log. Larger costs more than it saves: SQLite walks the cache's hash table at each commit.
const WRITER_CACHE_KIB: u32 = 8 * 1024;

impl r2d2::ManageConnection for ConnectionManager {
    type Connection = DbConnection;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<DbConnection, Self::Error> {
        let conn = match &self.url {
            DatabaseUrl::Postgres(url) => {
                let mut conn =
                    PgConnection::establish(url).map_err(diesel::r2d2::Error::ConnectionError)?;
                conn.batch_execute(&format!(
                    "SET lock_timeout = {}; SET statement_timeout = {}",
                    self.limits.lock_timeout.as_millis(),
                    self.limits.statement_timeout.as_millis()
                ))
                .map_err(diesel::r2d2::Error::QueryError)?;
                DbConnection::Postgresql(conn)
            }
            DatabaseUrl::Sqlite(path) => {
                let mut conn = SqliteConnection::establish(path)
                    .map_err(diesel::r2d2::Error::ConnectionError)?;
                // WAL lets readers run beside the writer; busy_timeout queues writers instead of
                // failing them with SQLITE_BUSY. It comes first: switching a new file to WAL
                // takes a lock that connections opened at the same moment must wait for.
                // mmap: pages come straight from the OS page cache instead of a read() call each
                // into every connection's own cache (twice the card's throughput in the
                // benchmark). Mapped pages count in RSS once per connection, but they are the
                // file's page cache, not the process's memory.
                conn.batch_execute(&format!(
                    "PRAGMA busy_timeout = {}; PRAGMA journal_mode = WAL; \
                     PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; \
                     PRAGMA mmap_size = {SQLITE_MMAP_BYTES};",
                    self.limits.lock_timeout.as_millis()
                ))
                .map_err(diesel::r2d2::Error::QueryError)?;
                if self.writer {
                    // temp_store: each request's savepoint keeps a copy of the pages it changes,
                    // so it can be rolled back alone; past 64 KiB SQLite spilled those copies
                    // into a new file in /var/tmp at each commit, more writes than the commit's
                    // own into the log. In memory they are bounded by the batch (`writer::MAX_BATCH`).
                    conn.batch_execute(&format!(
                        "PRAGMA wal_autocheckpoint = {WRITER_AUTOCHECKPOINT_PAGES}; \
                         PRAGMA cache_size = -{WRITER_CACHE_KIB}; PRAGMA temp_store = MEMORY;"
                    ))
                    .map_err(diesel::r2d2::Error::QueryError)?;
                }
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
pub fn build_pool(url: &str, size: u32, limits: DbLimits) -> Result<Pool, String> {
    let url = DatabaseUrl::parse(url)?;
    #[cfg(target_os = "linux")]
    if matches!(url, DatabaseUrl::Sqlite(_)) {
        kept_mapping::install();
    }
    if let DatabaseUrl::Sqlite(path) = &url
        && let Some(dir) = Path::new(path).parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    // No `SELECT 1` before every checkout (two per request): a connection that broke shows up
    // as an error on its next use and is then discarded (`has_broken`).
    // min_idle = size: r2d2 replaces a discarded connection only to keep `min_idle`, and requests
    // already waiting for one are not woken otherwise, so with fewer they waited out the timeout
    // (503s after a panic, seen in `tests/api/writes.rs` on PostgreSQL).
    let pool_of = |size: u32, writer: bool| {
        r2d2::Pool::builder()
            .max_size(size)
            .test_on_check_out(false)
            .min_idle(Some(size))
            .connection_timeout(Duration::from_secs(3))
            .build_unchecked(ConnectionManager {
                url: url.clone(),
                limits,
                writer,
            })
    };
    let sqlite_writer =
        matches!(url, DatabaseUrl::Sqlite(_)).then(|| writer::Writer::spawn(pool_of(1, true)));
    let sqlite_file = match &url {
        DatabaseUrl::Sqlite(path) => Some(PathBuf::from(path)),
        DatabaseUrl::Postgres(_) => None,
    };
    Ok(Pool {
        connections: pool_of(size, false),
        sqlite_writer,
        sqlite_file,
    })
}

/// Applies the pending migrations of the connection's engine. On PostgreSQL under a session
/// lock: nodes starting together would otherwise all run the first pending migration, and
/// all but one fail ("already exists") and exit. The others wait, then find nothing pending.
/// Neither the wait nor a migration is bound by the connection's [`DbLimits`].
pub fn run_migrations(conn: &mut DbConnection) -> Result<(), String> {
    match conn {
        DbConnection::Postgresql(c) => {
            let lock = "SET lock_timeout = 0; SET statement_timeout = 0; \
                        SELECT pg_advisory_lock(hashtext('dossier:migrations'))";
            // The limits set at connection, put back afterwards.
            let setting = |name| diesel::dsl::sql::<Text>(&format!("current_setting('{name}')"));
            let (lock_timeout, statement_timeout) =
                diesel::select((setting("lock_timeout"), setting("statement_timeout")))
                    .get_result::<(String, String)>(c)
                    .map_err(|e| format!("migration lock: {e}"))?;
            let unlock = format!(
                "SELECT pg_advisory_unlock(hashtext('dossier:migrations')); \
                 SET lock_timeout = '{lock_timeout}'; SET statement_timeout = '{statement_timeout}'"
            );
            c.batch_execute(lock)
                .map_err(|e| format!("migration lock: {e}"))?;
            let result = c.run_pending_migrations(POSTGRES_MIGRATIONS).map(|_| ());
            // Ending the session would free it too; a pooled connection lives on.
            let unlocked = c.batch_execute(&unlock);
            migrated(result).and(unlocked.map_err(|e| format!("migration unlock: {e}")))
        }
        DbConnection::Sqlite(c) => {
            let result = c.run_pending_migrations(SQLITE_MIGRATIONS).map(|_| ());
            if result.is_err() {
                // A migration that runs its own transaction with foreign keys off (010) and
                // failed midway leaves both so: undo them before the connection goes back to
                // the pool. Without an open transaction the ROLLBACK fails, harmlessly.
                let _ = c.batch_execute("ROLLBACK");
                let _ = c.batch_execute("PRAGMA foreign_keys = ON");
            }
            migrated(result)
        }
    }
}

/// A failed migration's error as start-up reports it.
fn migrated(result: Result<(), Box<dyn std::error::Error + Send + Sync>>) -> Result<(), String> {
    result.map_err(|e| format!("migration failed: {e}"))
}

/// Runs a request's writes off the event loop, atomically: they land together or not at all.
/// PostgreSQL: one transaction on actix's blocking pool. SQLite, which has one writer at a
/// time: the writer thread, which commits the writes queued meanwhile together, each request
/// in a savepoint of its own (see [`writer`]); `busy_timeout` only matters for other processes.
pub async fn write<T, F>(pool: &Pool, work: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&mut DbConnection) -> Result<T, ApiError> + Send + 'static,
{
    // The users a write notifies are woken on its database thread once it committed (see
    // `live`), even if this request's future is gone by then.
    let value = match &pool.sqlite_writer {
        Some(writer) => writer.write(work).await,
        None => {
            on_blocking_pool(&pool.connections, |conn| {
                let (out, wakes) = crate::live::collecting(|| in_write_transaction(conn, work));
                if out.is_ok() {
                    crate::live::wake(&wakes);
                }
                out
            })
            .await
        }
    }?;
    crate::live::committed();
    Ok(value)
}

/// Runs read-only work on the blocking pool, in one transaction so every query of `work` sees
/// the same snapshot (see `BEGIN_READ`).
pub async fn read<T, F>(pool: &Pool, work: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&mut DbConnection) -> Result<T, ApiError> + Send + 'static,
{
    on_blocking_pool(&pool.connections, |conn| {
        in_transaction(conn, &BEGIN_READ, work)
    })
    .await
}

/// Runs read-only work whose statements need not share one snapshot: each sees what was
/// committed when it ran. PostgreSQL runs them outside any transaction, two round trips fewer
/// than [`read`] (BEGIN and COMMIT were half of the card's four); nothing refuses a write there,
/// so `work` must only read. SQLite still runs them in one transaction, which costs no round
/// trip and takes the log's read lock once instead of once per statement.
pub async fn read_latest<T, F>(pool: &Pool, work: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&mut DbConnection) -> Result<T, ApiError> + Send + 'static,
{
    on_blocking_pool(&pool.connections, |conn| match conn {
        DbConnection::Sqlite(_) => in_transaction(conn, &BEGIN_READ, work),
        DbConnection::Postgresql(_) => work(conn),
    })
    .await
}

/// On PostgreSQL, makes writes naming the same `key` take turns until the transaction ends
/// (an advisory lock, for what no row stands for; a write may take it again, it holds it
/// already); SQLite's writes take turns already.
pub fn lock_key(conn: &mut DbConnection, key: &str) -> QueryResult<()> {
    if let DbConnection::Postgresql(pg) = conn {
        // `hashtext`, as the SLA defaults' lock was taken before: old and new nodes exclude
        // each other during a rolling deploy.
        diesel::sql_query("SELECT pg_advisory_xact_lock(hashtext($1))")
            .bind::<diesel::sql_types::Text, _>(key)
            .execute(pg)?;
    }
    Ok(())
}

/// Whether the connection is inside a transaction (a [`read_latest`] on PostgreSQL is not).
pub fn in_a_transaction(conn: &mut DbConnection) -> bool {
    open_levels(conn) > 0
}

/// Transactions and savepoints open on the connection (0 when its state is unknown: the next
/// BEGIN or COMMIT then fails).
fn open_levels(conn: &mut DbConnection) -> u32 {
    type Manager = <DbConnection as Connection>::TransactionManager;
    Manager::transaction_manager_status_mut(conn)
        .transaction_depth()
        .ok()
        .flatten()
        .map_or(0, |depth| depth.get())
}

/// Runs `work` in one read snapshot, on a connection with no transaction open: for the part of
/// a [`read_latest`] whose statements must agree.
pub fn in_read_transaction<T, E, F>(conn: &mut DbConnection, work: F) -> Result<T, E>
where
    E: From<diesel::result::Error>,
    F: FnOnce(&mut DbConnection) -> Result<T, E>,
{
    in_transaction(conn, &BEGIN_READ, work)
}

/// Checkpoints SQLite's write-ahead log four times a second on a reader connection, so the
/// writer's commits never stop to copy pages into the database file. PASSIVE: it neither waits
/// for nor blocks anyone.
///
/// Each pass also flushes the pages it copied to disk. SQLite syncs the file only after a pass
/// that copied the whole log, which under steady writes is never this one: the writer then
/// reached its own threshold every second or two, and its checkpoint's fsync flushed everything
/// copied since, 85-115 ms with every write waiting (bench/RESULTS.md, twenty-fifth session).
pub fn spawn_checkpoints(pool: &Pool) {
    let Some(path) = &pool.sqlite_file else {
        return;
    };
    // Opened once and never closed: closing any descriptor of the file drops every POSIX lock
    // this process holds on it, the ones SQLite's connections rely on included.
    let file: Option<&'static std::fs::File> = match std::fs::File::open(path) {
        Ok(file) => Some(Box::leak(Box::new(file))),
        Err(e) => {
            log::warn!("cannot open {} to sync it: {e}", path.display());
            None
        }
    };
    let connections = pool.connections.clone();
    actix_web::rt::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_millis(250));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let done = on_blocking_pool(&connections, |conn| {
                Ok(conn.batch_execute("PRAGMA wal_checkpoint(PASSIVE);")?)
            })
            .await;
            if let Err(e) = done {
                log::warn!("WAL checkpoint failed: {e}");
                continue;
            }
            // Without the connection: reads need it more than a sync that waits on the disk.
            if let Some(file) = file {
                let synced = actix_web::web::block(move || {
                    thread_policy::behind_event_loops();
                    file.sync_data()
                })
                .await;
                if let Ok(Err(e)) = synced {
                    log::warn!("syncing the database file failed: {e}");
                }
            }
        }
    });
}

async fn on_blocking_pool<T, F>(
    pool: &r2d2::Pool<ConnectionManager>,
    work: F,
) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&mut DbConnection) -> Result<T, ApiError> + Send + 'static,
{
    let pool = pool.clone();
    actix_web::web::block(move || {
        thread_policy::behind_event_loops();
        let mut conn = pool.get()?;
        work(&mut conn)
    })
    .await?
}

/// The statement that opens a transaction, per engine.
struct Begin {
    sqlite: &'static str,
    postgres: &'static str,
}

/// A write: SQLite takes the write lock at once, so a write never fails midway on a lock it
/// could not upgrade to.
const BEGIN_WRITE: Begin = Begin {
    sqlite: "BEGIN IMMEDIATE",
    postgres: "BEGIN",
};

/// A read. SQLite's deferred transaction keeps the snapshot of its first read to its end.
/// PostgreSQL's default isolation (READ COMMITTED) takes a new snapshot at every statement, so
/// a card could count an agent its next statement no longer lists: reads ask for REPEATABLE
/// READ, and READ ONLY makes a write slipped into a read fail (not enforced on SQLite).
const BEGIN_READ: Begin = Begin {
    sqlite: "BEGIN",
    postgres: "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
};

/// Opens a transaction on a connection that has none open.
fn begin(conn: &mut DbConnection, begin: &Begin) -> QueryResult<()> {
    match conn {
        DbConnection::Sqlite(c) => AnsiTransactionManager::begin_transaction_sql(c, begin.sqlite),
        DbConnection::Postgresql(c) => {
            AnsiTransactionManager::begin_transaction_sql(c, begin.postgres)
        }
    }
}

/// The write transaction itself, for callers that already hold a connection (the CLI).
pub fn in_write_transaction<T, E, F>(conn: &mut DbConnection, work: F) -> Result<T, E>
where
    E: From<diesel::result::Error>,
    F: FnOnce(&mut DbConnection) -> Result<T, E>,
{
    in_transaction(conn, &BEGIN_WRITE, |conn| {
        before_commit::run_kept_last(conn, |conn| {
            let value = work(conn)?;
            // The other nodes' streams hear of whom it notified when (and if) it commits.
            // Before the batches kept last (the audit chain, which notifies no one), so that
            // the chain's head stays the last lock the write takes.
            crate::live::relay::send(conn)?;
            Ok(value)
        })
    })
}

/// Runs `work` in a new transaction (the connection must have none open); commits on success,
/// rolls back on failure. A panic is not caught: the connection goes back to the pool inside
/// its transaction, and the pool discards it (`has_broken`).
fn in_transaction<T, E, F>(conn: &mut DbConnection, how: &Begin, work: F) -> Result<T, E>
where
    E: From<diesel::result::Error>,
    F: FnOnce(&mut DbConnection) -> Result<T, E>,
{
    type Manager = <DbConnection as Connection>::TransactionManager;
    begin(conn, how)?;
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
    stored_time(chrono::Utc::now())
}

/// A time at the precision both engines store (microseconds). SQLite would keep a caller's
/// nanoseconds as text, so a cursor or an answer cut to microseconds would miss its row.
pub fn stored_time(at: chrono::DateTime<chrono::Utc>) -> chrono::NaiveDateTime {
    use chrono::SubsecRound;
    without_leap_second(at).trunc_subsecs(6)
}

/// A leap second (`…:59:60.5`) as the instant after it (`…:00:00.5` the next minute), as
/// PostgreSQL stores it: chrono keeps it as second 59 with a second and more of nanoseconds,
/// which SQLite's text would keep as `:60`, an instant most clients cannot read.
fn without_leap_second(at: chrono::DateTime<chrono::Utc>) -> chrono::NaiveDateTime {
    use chrono::Timelike;
    let at = at.naive_utc();
    match at.nanosecond().checked_sub(1_000_000_000) {
        Some(nanos) => at
            .with_nanosecond(nanos)
            .and_then(|at| at.checked_add_signed(chrono::Duration::seconds(1)))
            .unwrap_or(at),
        None => at,
    }
}

/// A range filter's bound at the precision both engines store, rounded up to the microsecond:
/// a stored time is before `at` exactly when it is before this, so `from` (inclusive) and `to`
/// (exclusive) keep the same rows on both engines whatever digits the caller sent.
pub fn time_bound(at: chrono::DateTime<chrono::Utc>) -> chrono::NaiveDateTime {
    let stored = stored_time(at);
    if stored == without_leap_second(at) {
        stored
    } else {
        stored + chrono::Duration::microseconds(1)
    }
}
