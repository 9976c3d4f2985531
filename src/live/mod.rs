//! Wakes the parts of the server that wait for data to change.
//!
//! - Every committed write transaction bumps a counter, which the e-mail worker waits on.
//! - A write that brings a server rule's next firing forward (a case starts waiting for its
//!   client, a ticket is resolved, an SLA clock starts or resumes) bumps another once it
//!   committed ([`will_wake_rules`]), which the rules' worker waits on (`rules`).
//! - A write that queued webhook deliveries bumps a third ([`will_wake_webhooks`]), which the
//!   webhook worker waits on.
//! - A notification stream waits for its own user only: the writes that notify someone name
//!   their recipients ([`will_notify`], collected per write on its database thread by
//!   `db::write` and the SQLite writer) and, once committed, wake those users' streams from that
//!   thread ([`notified`]). Waking every stream at every commit made each open stream read the
//!   database at every write of the whole platform.
//!
//! On PostgreSQL the streams' wakes also reach the other API nodes ([`relay`]); the workers'
//! need not: the node that wrote runs the work it queued, and every worker looks again in a
//! while for what another node added.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, watch};

pub mod relay;

// Process-wide: `db::write` has no application state to reach them through, and there is
// exactly one database per process.
static COMMITS: LazyLock<watch::Sender<u64>> = LazyLock::new(|| watch::channel(0).0);
static AWAITING: LazyLock<watch::Sender<u64>> = LazyLock::new(|| watch::channel(0).0);
static DELIVERIES: LazyLock<watch::Sender<u64>> = LazyLock::new(|| watch::channel(0).0);
static STREAMS: LazyLock<Mutex<HashMap<String, Vec<Arc<Notify>>>>> =
    LazyLock::new(Default::default);

thread_local! {
    /// Whom the write running on this thread wakes, for [`wake`] after its commit.
    static WAKES: RefCell<Wakes> = const {
        RefCell::new(Wakes { users: Vec::new(), rules: false, webhooks: false })
    };
}

/// Called after every committed write transaction.
pub fn committed() {
    COMMITS.send_modify(|n| *n = n.wrapping_add(1));
}

/// A receiver that wakes at the next commit.
pub fn subscribe() -> watch::Receiver<u64> {
    COMMITS.subscribe()
}

/// How long a worker sleeps to wake at `at` (at once when it has passed), at most `longest`:
/// work another node adds meanwhile is found by the next look.
pub fn time_until(at: Option<chrono::NaiveDateTime>, longest: Duration) -> Duration {
    at.map_or(longest, |at| {
        (at - crate::db::now())
            .to_std()
            .unwrap_or(Duration::ZERO)
            .min(longest)
    })
}

/// The loop of a worker that drains rows as they fall due (the mail outbox, webhook
/// deliveries): `work` runs while `next_due` says a row is due; otherwise the worker sleeps
/// until the next one is (at most `idle`) or `wakes` says a commit may have queued more. Ends
/// with the process's wake channel.
pub async fn drain<Work, Fut>(
    pool: &crate::db::Pool,
    mut wakes: watch::Receiver<u64>,
    worker: &str,
    idle: Duration,
    next_due: fn(
        &mut crate::db::DbConnection,
    ) -> diesel::QueryResult<Option<chrono::NaiveDateTime>>,
    mut work: Work,
) where
    Work: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    loop {
        // Forget the wakes seen so far (our own commits' included) before looking for work: only
        // later ones wake us, and none falls between the look and the wait. The look is a read,
        // so a busy server's commits cost the worker one indexed query each, never a write.
        wakes.borrow_and_update();
        let wait = match crate::db::read(pool, move |conn| Ok(next_due(conn)?)).await {
            Ok(at) => time_until(at, idle),
            Err(e) => {
                log::error!("{worker} cannot read its outbox: {e}");
                idle
            }
        };
        if wait.is_zero() {
            work().await;
            continue;
        }
        tokio::select! {
            changed = wakes.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// A receiver that wakes when a committed write brought a rule's next firing forward
/// ([`will_wake_rules`]).
pub fn subscribe_waits() -> watch::Receiver<u64> {
    AWAITING.subscribe()
}

/// One stream's registration for its user's notifications; dropping it ends it.
pub struct Listener {
    user_id: String,
    wake: Arc<Notify>,
}

impl Listener {
    /// Returns once the user has been notified since the last return: a wake that comes while
    /// the stream is not waiting is kept, so none falls between its read and its wait.
    pub async fn notified(&self) {
        self.wake.notified().await;
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let mut streams = STREAMS.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(mine) = streams.get_mut(&self.user_id) {
            mine.retain(|wake| !Arc::ptr_eq(wake, &self.wake));
            if mine.is_empty() {
                streams.remove(&self.user_id);
            }
        }
    }
}

/// Registers a stream of `user_id`, unless they already hold `max` open (`None`): each open
/// stream costs a connection and a read at every notification, so one user (or a leaked token)
/// cannot hold an unbounded number.
pub fn listen(user_id: &str, max: usize) -> Option<Listener> {
    let wake = Arc::new(Notify::new());
    let mut streams = STREAMS.lock().unwrap_or_else(|e| e.into_inner());
    let mine = streams.entry(user_id.to_owned()).or_default();
    if mine.len() >= max {
        return None;
    }
    mine.push(Arc::clone(&wake));
    Some(Listener {
        user_id: user_id.to_owned(),
        wake,
    })
}

/// Whom a write wakes once it committed: the live streams of the users it notified, the
/// rules' worker when a rule may now fire sooner than it planned to wake, and the webhook
/// worker when there is something to post.
#[derive(Debug, Default)]
pub struct Wakes {
    users: Vec<String>,
    rules: bool,
    webhooks: bool,
}

/// Remembers that the write running on this thread notifies these users.
pub fn will_notify<'a>(user_ids: impl IntoIterator<Item = &'a str>) {
    WAKES.with_borrow_mut(|w| w.users.extend(user_ids.into_iter().map(str::to_owned)));
}

/// The users the write running on this thread has notified so far.
fn notified_so_far() -> Vec<String> {
    WAKES.with_borrow(|w| w.users.clone())
}

/// Remembers that the write running on this thread brought a rule's next firing forward (a
/// case waits for its client's confirmation, a ticket was resolved, an SLA clock started or
/// resumed): the rules' worker wakes once it committed.
pub fn will_wake_rules() {
    WAKES.with_borrow_mut(|w| w.rules = true);
}

/// Remembers that the write running on this thread queued webhook deliveries.
pub fn will_wake_webhooks() {
    WAKES.with_borrow_mut(|w| w.webhooks = true);
}

/// A receiver that wakes when a committed write queued webhook deliveries.
pub fn subscribe_webhooks() -> watch::Receiver<u64> {
    DELIVERIES.subscribe()
}

/// Runs one write's `work` and hands back, with its outcome, whom it wakes.
pub fn collecting<T>(work: impl FnOnce() -> T) -> (T, Wakes) {
    WAKES.take();
    let out = work();
    (out, WAKES.take())
}

/// Wakes the streams of the users a committed write notified, and the rules' worker if asked.
pub fn wake(wakes: &Wakes) {
    if wakes.rules {
        AWAITING.send_modify(|n| *n = n.wrapping_add(1));
    }
    if wakes.webhooks {
        DELIVERIES.send_modify(|n| *n = n.wrapping_add(1));
    }
    wake_streams_of(&wakes.users);
}

/// Wakes the open streams of these users.
fn wake_streams_of(users: &[String]) {
    if users.is_empty() {
        return;
    }
    let streams = STREAMS.lock().unwrap_or_else(|e| e.into_inner());
    for stream in users.iter().filter_map(|u| streams.get(u)).flatten() {
        stream.notify_one();
    }
}

/// Wakes every open stream: each reads what it has not sent yet.
fn wake_every_stream() {
    let streams = STREAMS.lock().unwrap_or_else(|e| e.into_inner());
    for stream in streams.values().flatten() {
        stream.notify_one();
    }
}
