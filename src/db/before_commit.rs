//! Work a write keeps for its last step, just before it commits.
//!
//! Every write appends to the one audit chain, whose head row each writer must lock. On
//! PostgreSQL that lock is held to the commit, so whatever the request does after taking it,
//! every statement a round trip, the other writers wait for: posting messages at c=16, nearly
//! every backend stood in `Lock:transactionid` (bench/RESULTS.md, twenty-fourth session).
//! Taken last, the lock is held for the chain's own statements and the commit alone.

use std::cell::RefCell;

use diesel::QueryResult;

use super::DbConnection;

type Hook = Box<dyn FnOnce(&mut DbConnection) -> QueryResult<()>>;

thread_local! {
    /// The hooks of the write running on this thread (`None`: no write is being run by
    /// [`run_hooks_last`], so a hook runs at once).
    static HOOKS: RefCell<Option<Vec<Hook>>> = const { RefCell::new(None) };
}

/// Runs `hook` as the last step of the write this thread is running through
/// [`run_hooks_last`], or at once outside one (the CLI, a test's seeding).
pub fn before_commit(
    conn: &mut DbConnection,
    hook: impl FnOnce(&mut DbConnection) -> QueryResult<()> + 'static,
) -> QueryResult<()> {
    let mut hook: Option<Hook> = Some(Box::new(hook));
    HOOKS.with_borrow_mut(|hooks| {
        if let Some(hooks) = hooks {
            hooks.extend(hook.take());
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
    struct Scope(Option<Vec<Hook>>);
    impl Drop for Scope {
        fn drop(&mut self) {
            HOOKS.set(self.0.take());
        }
    }
    let _scope = Scope(HOOKS.replace(Some(Vec::new())));
    let value = work(conn)?;
    // A hook that registers another runs it at once: the scope is over.
    for hook in HOOKS.take().unwrap_or_default() {
        hook(conn)?;
    }
    Ok(value)
}
