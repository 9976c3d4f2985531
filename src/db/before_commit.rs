//! Work a write keeps for its last step, just before it commits.
//!
//! A write that records audit rows appends them to the one audit chain, whose head row it must
//! lock. On PostgreSQL that lock is held to the commit, so whatever the request did after taking
//! it, every statement a round trip, the other writers waited for: posting messages at c=16,
//! nearly every backend stood in `Lock:transactionid` (bench/RESULTS.md, twenty-fourth
//! session). Taken last, the lock is held for the chain's own statements and the commit.

use std::cell::RefCell;

use diesel::QueryResult;

use super::{DbConnection, open_levels};

type Hook = Box<dyn FnOnce(&mut DbConnection) -> QueryResult<()>>;

/// The hooks of the write running on this thread, and the transaction level its work runs at.
struct Scope {
    level: u32,
    hooks: Vec<Hook>,
}

thread_local! {
    /// `None` when no write is being run by [`run_hooks_last`] on this thread.
    static SCOPE: RefCell<Option<Scope>> = const { RefCell::new(None) };
}

/// Runs `hook` as the last step of the write this thread is running through
/// [`run_hooks_last`]. Anywhere else it runs at once: outside such a write, and inside a
/// savepoint of one, whose rollback must undo what the hook writes.
pub fn before_commit(
    conn: &mut DbConnection,
    hook: impl FnOnce(&mut DbConnection) -> QueryResult<()> + 'static,
) -> QueryResult<()> {
    let level = open_levels(conn);
    let mut hook: Option<Hook> = Some(Box::new(hook));
    SCOPE.with_borrow_mut(|scope| {
        if let Some(scope) = scope.as_mut().filter(|scope| scope.level == level) {
            scope.hooks.extend(hook.take());
        }
    });
    match hook {
        Some(hook) => hook(conn),
        None => Ok(()),
    }
}

/// Runs `work`, then the hooks it registered, in order, on the same connection and inside the
/// same transaction. When `work` or a hook fails (or panics) the hooks left are dropped unrun,
/// and the caller rolls the whole write back.
pub fn run_hooks_last<T, E, F>(conn: &mut DbConnection, work: F) -> Result<T, E>
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
        hooks: Vec::new(),
    };
    let _restore = Restore(SCOPE.replace(Some(scope)));
    let value = work(conn)?;
    // A hook that registers another runs it at once: the scope is over.
    let hooks = SCOPE.take().map_or_else(Vec::new, |scope| scope.hooks);
    for hook in hooks {
        hook(conn)?;
    }
    Ok(value)
}
