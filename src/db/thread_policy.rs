//! Reading threads give way to the event loops.
//!
//! A read hands its work to a blocking-pool thread and wakes it. By default Linux lets the
//! woken thread preempt the event loop on the spot: 0.84 preemptions of an event loop and 1.64
//! context switches per card. As `SCHED_BATCH` threads they never preempt on wake-up; they run
//! on the next free core or at the next tick and find the jobs queued meanwhile (0.50 and 1.05
//! per card). Their share of the CPU is unchanged. A blocking-pool thread keeps the policy for
//! whatever it runs later (a password hash, a PostgreSQL write), which suits such work too.
//! SQLite's writer keeps the normal policy: every write waits for its commits, and as a batch
//! thread its messages' p99 rose (9.6 to 10.9 ms, 8.3 to 9.4 ms in interleaved runs).

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
