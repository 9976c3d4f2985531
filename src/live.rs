//! Wakes live streams when data changes. Every committed write transaction bumps a counter;
//! each open notification stream waits on it and then reads the database for its user, so a
//! stream never misses a row however the write reached the database.
//!
//! One process only: several API nodes would relay commits through PostgreSQL
//! `LISTEN/NOTIFY` into this same counter (not built yet).

use std::sync::LazyLock;

use tokio::sync::watch;

// A process-wide signal: `db::write` has no application state to reach it through, and there is
// exactly one database per process.
static COMMITS: LazyLock<watch::Sender<u64>> = LazyLock::new(|| watch::channel(0).0);

/// Called after every committed write transaction.
pub fn committed() {
    COMMITS.send_modify(|n| *n = n.wrapping_add(1));
}

/// A receiver that wakes at the next commit.
pub fn subscribe() -> watch::Receiver<u64> {
    COMMITS.subscribe()
}
