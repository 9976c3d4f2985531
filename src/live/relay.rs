//! Live wakes across API nodes (DESIGN.md "Data and scale": live notifications fan out through
//! PostgreSQL `LISTEN/NOTIFY`). Once the relay runs ([`spawn`]), a write that notifies users
//! sends their ids on the `dossier_live` channel inside its own transaction, so PostgreSQL
//! delivers them when it commits and never for a rollback. Every node listens on a connection
//! of its own and wakes its streams of those users; the writing node wakes its own itself.
//! SQLite serves one node: nothing is sent.
//!
//! PostgreSQL commits the transactions that notify one at a time (a lock of the whole server
//! from the queueing of the notifications to the commit's end).

use std::collections::HashSet;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::Text;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::db::{DatabaseUrl, DbConnection};

const CHANNEL: &str = "dossier_live";
/// PostgreSQL refuses a payload of 8 000 bytes or more: past this many users (≈ 40 bytes
/// each), the other nodes wake every stream instead.
const MAX_USERS: usize = 150;
/// How often the listening connection looks for what arrived: libpq hands over what it has
/// read without waiting, so this bounds a relayed wake's delay.
const POLL: Duration = Duration::from_millis(50);
/// How often an idle listening connection is checked: a dead one is replaced.
const CHECK: Duration = Duration::from_secs(30);
/// The pause before connecting again after the listening connection failed.
const RETRY: Duration = Duration::from_secs(1);

/// This process, so it skips what it sent itself.
static NODE: LazyLock<String> = LazyLock::new(|| uuid::Uuid::now_v7().to_string());
/// Whether the relay runs: writes send only then (`DOSSIER_LIVE_RELAY`).
static RUNNING: AtomicBool = AtomicBool::new(false);
/// Whether the listening connection is up; between a failure and its replacement, other nodes'
/// wakes are missed (every stream reads once when it is back).
static LISTENING: AtomicBool = AtomicBool::new(false);
/// libpq's keepalives and send timeout for the listening connection: a network that stops
/// answering fails it within about half a minute, not TCP's quarter of an hour.
const KEEPALIVES: &str = "keepalives=1&keepalives_idle=10&keepalives_interval=5\
                          &keepalives_count=3&tcp_user_timeout=30000&connect_timeout=10";

/// Where the relay stands, for readiness and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RelayStatus {
    /// Not running: SQLite, or `DOSSIER_LIVE_RELAY=false`.
    Off,
    /// Listening for the other nodes' wakes.
    Listening,
    /// Its connection is being opened, or replaced after a failure.
    Reconnecting,
}

impl RelayStatus {
    pub const ALL: [RelayStatus; 3] = [
        RelayStatus::Off,
        RelayStatus::Listening,
        RelayStatus::Reconnecting,
    ];

    /// As serialized, for the metric's label.
    pub fn as_str(self) -> &'static str {
        match self {
            RelayStatus::Off => "off",
            RelayStatus::Listening => "listening",
            RelayStatus::Reconnecting => "reconnecting",
        }
    }
}

pub fn status() -> RelayStatus {
    match (
        RUNNING.load(Ordering::Relaxed),
        LISTENING.load(Ordering::Relaxed),
    ) {
        (false, _) => RelayStatus::Off,
        (true, true) => RelayStatus::Listening,
        (true, false) => RelayStatus::Reconnecting,
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Relayed {
    node: String,
    /// The users to wake; empty with `all`.
    #[serde(default)]
    users: Vec<String>,
    #[serde(default)]
    all: bool,
}

/// Sends the users the write running on this thread notified to the other nodes, inside its
/// transaction (PostgreSQL only).
pub fn send(conn: &mut DbConnection) -> QueryResult<()> {
    let DbConnection::Postgresql(pg) = conn else {
        return Ok(());
    };
    if !RUNNING.load(Ordering::Relaxed) {
        return Ok(());
    }
    let users: HashSet<String> = super::notified_so_far().into_iter().collect();
    if users.is_empty() {
        return Ok(());
    }
    let all = users.len() > MAX_USERS;
    let relayed = Relayed {
        node: NODE.clone(),
        users: if all {
            Vec::new()
        } else {
            users.into_iter().collect()
        },
        all,
    };
    let payload = serde_json::to_string(&relayed)
        .map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))?;
    diesel::sql_query("SELECT pg_notify($1, $2)")
        .bind::<Text, _>(CHANNEL)
        .bind::<Text, _>(payload)
        .execute(pg)
        .map(drop)
}

/// Listens for the other nodes' wakes on a thread of its own, for as long as the process
/// runs (PostgreSQL only).
pub fn spawn(database_url: &str) -> std::io::Result<()> {
    let Ok(DatabaseUrl::Postgres(url)) = DatabaseUrl::parse(database_url) else {
        return Ok(());
    };
    let separator = if url.contains('?') { '&' } else { '?' };
    let url = format!("{url}{separator}{KEEPALIVES}");
    RUNNING.store(true, Ordering::Relaxed);
    std::thread::Builder::new()
        .name("live-relay".into())
        .spawn(move || {
            loop {
                // A panic (a bug) must not end the thread with the flag still `listening`:
                // it counts as a failure, and the relay listens again.
                match std::panic::catch_unwind(|| listen(&url)) {
                    Ok(Err(e)) => log::warn!("live relay: {e}; listening again in {RETRY:?}"),
                    Err(_) => log::error!("live relay panicked; listening again in {RETRY:?}"),
                    Ok(Ok(never)) => match never {},
                }
                LISTENING.store(false, Ordering::Relaxed);
                std::thread::sleep(RETRY);
            }
        })
        .map(drop)
}

/// Listens until the connection fails. Every stream is woken once listening starts: what
/// other nodes sent while this one did not listen is lost, and the streams read to catch up.
fn listen(url: &str) -> Result<std::convert::Infallible, Box<dyn std::error::Error>> {
    let mut conn = PgConnection::establish(url)?;
    conn.batch_execute(&format!("LISTEN {CHANNEL}"))?;
    LISTENING.store(true, Ordering::Relaxed);
    super::wake_every_stream();
    let mut checked = Instant::now();
    loop {
        for notification in conn.notifications_iter() {
            received(&notification?.payload);
        }
        if checked.elapsed() >= CHECK {
            conn.batch_execute("SELECT 1")?;
            checked = Instant::now();
        }
        std::thread::sleep(POLL);
    }
}

fn received(payload: &str) {
    let relayed: Relayed = match serde_json::from_str(payload) {
        Ok(relayed) => relayed,
        Err(e) => return log::warn!("live relay: unreadable payload ({e})"),
    };
    if relayed.node == *NODE {
        return;
    }
    if relayed.all {
        super::wake_every_stream();
    } else {
        super::wake_streams_of(&relayed.users);
    }
}
