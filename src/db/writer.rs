//! SQLite's writer: one thread, one connection, and group commit.
//!
//! SQLite lets one transaction write at a time, and a commit costs about as much as the work
//! before it (every page the transaction touched goes to the write-ahead log). So requests'
//! writes queue here, and the thread runs whatever has queued up in one transaction, each
//! request's work inside a savepoint of its own: a request that fails rolls back to its
//! savepoint alone, and the others commit together. A request hears its outcome only after
//! the commit, so nothing it was told about can be lost. Queued writers are served in order,
//! without `busy_timeout`'s sleep-and-poll, and the connection's page cache stays warm because
//! no other connection of this process writes.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;

use diesel::connection::TransactionManager;
use diesel::prelude::*;

use super::{ConnectionManager, DbConnection, open_levels};
use crate::errors::ApiError;

/// Most requests in one transaction: bounds how long the first of them waits for the commit.
const MAX_BATCH: usize = 64;

type Manager = <DbConnection as Connection>::TransactionManager;

/// What runs a request's work on the writer's connection (or hears why no transaction could
/// be opened) and, when the work succeeded, what tells the request how the commit went.
type Job = Box<dyn FnOnce(Result<&mut DbConnection, ApiError>) -> Option<Delivery> + Send>;
type Delivery = Box<dyn FnOnce(Result<(), String>) + Send>;

/// The queue to the writer thread; the thread ends when the last clone is dropped.
#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Job>,
    /// The thread's pool of one connection, which it takes for each batch.
    connection: r2d2::Pool<ConnectionManager>,
}

impl Writer {
    pub fn spawn(connection: r2d2::Pool<ConnectionManager>) -> Writer {
        let (jobs, queue) = mpsc::channel::<Job>();
        let kept = connection.clone();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || {
                while let Ok(first) = queue.recv() {
                    let mut batch = vec![first];
                    batch.extend(queue.try_iter().take(MAX_BATCH - 1));
                    run_batch(&connection, batch);
                }
            })
            .expect("the operating system refused to start the SQLite writer thread");
        Writer {
            jobs,
            connection: kept,
        }
    }

    /// The writer's connection, between two batches.
    pub(super) fn connection(&self) -> Result<super::PooledConnection, r2d2::Error> {
        self.connection.get()
    }

    /// Runs `work` in the next transaction and returns its result once that has committed.
    pub async fn write<T, F>(&self, work: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConnection) -> Result<T, ApiError> + Send + 'static,
    {
        let (reply, outcome) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let conn = match conn {
                Ok(conn) => conn,
                Err(e) => {
                    let _ = reply.send(Err(e));
                    return None;
                }
            };
            // The users this work notified, and the rules' worker if asked, wake once the batch
            // committed (`live`).
            let (outcome, wakes) = crate::live::collecting(|| in_savepoint(conn, work));
            match outcome {
                Ok(value) => Some(Box::new(move |committed: Result<(), String>| {
                    if committed.is_ok() {
                        crate::live::wake(&wakes);
                    }
                    let _ = reply.send(committed.map(|()| value).map_err(ApiError::internal));
                })),
                Err(e) => {
                    let _ = reply.send(Err(e));
                    None
                }
            }
        });
        self.jobs
            .send(job)
            .map_err(|_| ApiError::internal("the SQLite writer thread has stopped"))?;
        outcome
            .await
            .map_err(|_| ApiError::internal("the SQLite writer dropped a request"))?
    }
}

/// One request's work in a savepoint; a panic is caught, rolled back and reported as a 500
/// so the thread and the other requests of the batch carry on.
fn in_savepoint<T, F>(conn: &mut DbConnection, work: F) -> Result<T, ApiError>
where
    F: FnOnce(&mut DbConnection) -> Result<T, ApiError>,
{
    Manager::begin_transaction(conn)?;
    let result = match catch_unwind(AssertUnwindSafe(|| {
        super::before_commit::run_kept_last(&mut *conn, work)
    })) {
        Ok(Ok(value)) => {
            return Manager::commit_transaction(conn)
                .map(|()| value)
                .map_err(ApiError::from);
        }
        Ok(Err(e)) => Err(e),
        Err(_) => Err(ApiError::internal(
            "a write panicked; its changes were rolled back",
        )),
    };
    // Back to the batch's own level: a panic inside a nested transaction leaves its savepoint
    // open too, and the batch's commit would then only release it.
    while open_levels(conn) > 1 {
        Manager::rollback_transaction(conn)?;
    }
    result
}

fn run_batch(pool: &r2d2::Pool<ConnectionManager>, batch: Vec<Job>) {
    let mut conn = match pool.get() {
        Ok(conn) => conn,
        Err(e) => {
            log::error!("SQLite writer has no connection: {e}");
            let why = e.to_string();
            return batch
                .into_iter()
                .for_each(|job| drop(job(Err(ApiError::Unavailable(why.clone())))));
        }
    };
    let conn: &mut DbConnection = &mut conn;
    // Another process holding the write lock past `busy_timeout`: 503 `database_busy`.
    if let Err(e) = super::begin(conn, &super::BEGIN_WRITE) {
        log::error!("SQLite writer could not begin a transaction: {e}");
        let busy = matches!(ApiError::from(e), ApiError::Busy(_));
        let failed = || match busy {
            true => ApiError::Busy("database is locked".into()),
            false => ApiError::Unavailable("no write transaction could be opened".into()),
        };
        return batch.into_iter().for_each(|job| drop(job(Err(failed()))));
    }
    let deliveries: Vec<Delivery> = batch
        .into_iter()
        .filter_map(|job| job(Ok(&mut *conn)))
        .collect();
    let committed = match Manager::commit_transaction(conn) {
        Ok(()) => Ok(()),
        Err(e) => {
            // A failed rollback marks the connection broken and the pool replaces it.
            let _ = Manager::rollback_transaction(conn);
            log::error!(
                "SQLite writer could not commit {} writes: {e}",
                deliveries.len()
            );
            Err(format!("the write could not be committed: {e}"))
        }
    };
    for deliver in deliveries {
        deliver(committed.clone());
    }
}
