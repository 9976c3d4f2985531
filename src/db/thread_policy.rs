//! Database threads give way to the event loops.
//!
//! A database call hands its work to another thread and wakes it. By default Linux lets the
//! woken thread preempt the event loop on the spot, so every request switched threads about
//! twice more than it needed: the event loop stopped mid-batch, the database thread ran one
//! job, and the event loop was switched back in to answer it. As `SCHED_BATCH` threads they
//! never preempt on wake-up; they run on the next free core or at the next tick, and find the
//! jobs queued meanwhile waiting for them. Their share of the CPU is unchanged.

use std::cell::Cell;

thread_local! {
    static DONE: Cell<bool> = const { Cell::new(false) };
}

/// Marks the calling thread as a batch thread, once per thread. Best effort: where the
/// platform has no such policy or refuses it, the thread keeps the default one.
pub fn behind_event_loops() {
    if DONE.replace(true) {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: `param` outlives the call; 0 means the calling thread.
        let refused = unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) } != 0;
        if refused {
            log::debug!("SCHED_BATCH refused: {}", std::io::Error::last_os_error());
        }
    }
}
