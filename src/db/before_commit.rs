//! Work a write keeps for its last step, just before it commits.
//!
//! A write that records audit rows appends them to the one audit chain, whose head row it must
//! lock. On PostgreSQL that lock is held to the commit, so whatever the request did after taking
//! it, every statement a round trip, the other writers waited for: posting messages at c=16,
//! nearly every backend stood in `Lock:transactionid` (bench/RESULTS.md, twenty-fourth
//! session). Taken last, the lock is held for the chain's own statements and the commit.
//!
//! What a write keeps is batched by its type and what runs it: those items run together in one
//! call, so a transition that appends its fields and then a storyline event moves the head once.

use std::any::Any;
use std::cell::RefCell;

use diesel::QueryResult;

use super::{DbConnection, open_levels};

/// Runs the items of one type that a write kept, in the order they were kept.
pub type RunBatch<T> = fn(&mut DbConnection, Vec<T>) -> QueryResult<()>;

/// The items of one type a write has kept, and what runs them.
struct Batch<T> {
    items: Vec<T>,
    run: RunBatch<T>,
}

/// A [`Batch`] of any type, as the scope holds it.
trait KeptBatch {
    fn run(self: Box<Self>, conn: &mut DbConnection) -> QueryResult<()>;
    fn as_any(&mut self) -> &mut dyn Any;
}

impl<T: 'static> KeptBatch for Batch<T> {
    fn run(self: Box<Self>, conn: &mut DbConnection) -> QueryResult<()> {
        (self.run)(conn, self.items)
    }

    fn as_any(&mut self) -> &mut dyn Any {
        self
    }
}

/// The batches of the write running on this thread, and the transaction level its work runs at.
struct Scope {
    level: u32,
    batches: Vec<Box<dyn KeptBatch>>,
}

thread_local! {
    /// `None` when no write is being run by [`run_kept_last`] on this thread.
    static SCOPE: RefCell<Option<Scope>> = const { RefCell::new(None) };
}

/// Keeps `item` for the last step of the write this thread is running through
/// [`run_kept_last`], where `run` gets it with every other item kept with the same `run`.
/// Anywhere else `run` gets it alone, at once: outside such a write, and inside
/// a savepoint of one, whose rollback must undo what `run` writes.
pub fn before_commit<T: 'static>(
    conn: &mut DbConnection,
    item: T,
    run: RunBatch<T>,
) -> QueryResult<()> {
    let level = open_levels(conn);
    let mut item = Some(item);
    SCOPE.with_borrow_mut(|scope| {
        let Some(scope) = scope.as_mut().filter(|scope| scope.level == level) else {
            return;
        };
        let kept = scope
            .batches
            .iter_mut()
            .filter_map(|batch| batch.as_any().downcast_mut::<Batch<T>>())
            // Equal addresses may also be two functions the compiler merged: identical code, so
            // either runs the batch; one function seen at two addresses only splits it.
            .find(|batch| std::ptr::fn_addr_eq(batch.run, run));
        match kept {
            Some(batch) => batch.items.extend(item.take()),
            None => scope.batches.push(Box::new(Batch {
                items: item.take().into_iter().collect(),
                run,
            })),
        }
    });
    match item {
        Some(item) => run(conn, vec![item]),
        None => Ok(()),
    }
}

/// Runs `work`, then the batches it kept, in the order of their first items, on the same
/// connection and inside the same transaction. When `work` or a batch fails (or panics) the
/// batches left are dropped unrun, and the caller rolls the whole write back.
pub fn run_kept_last<T, E, F>(conn: &mut DbConnection, work: F) -> Result<T, E>
where
    E: From<diesel::result::Error>,
    F: FnOnce(&mut DbConnection) -> Result<T, E>,
{
    /// Ends the scope however `work` ends, a panic included, giving back the enclosing one.
    struct Restore(Option<Scope>);
    impl Drop for Restore {
        fn drop(&mut self) {
            SCOPE.set(self.0.take());
        }
    }
    let scope = Scope {
        level: open_levels(conn),
        batches: Vec::new(),
    };
    let _restore = Restore(SCOPE.replace(Some(scope)));
    let value = work(conn)?;
    // A batch whose run keeps another item runs that item at once: the scope is over.
    let batches = SCOPE.take().map_or_else(Vec::new, |scope| scope.batches);
    for batch in batches {
        batch.run(conn)?;
    }
    Ok(value)
}
