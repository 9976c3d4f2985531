//! Throttling of failed logins, per account and per client address.
//!
//! Counts live in this process: with several API nodes each one throttles on its own, so the
//! effective limit is the configured one times the number of nodes (still a hard ceiling).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::LoginThrottle as Limits;

/// Entries are pruned when the table grows past this many keys.
const PRUNE_THRESHOLD: usize = 10_000;

struct Window {
    failures: u32,
    started: Instant,
}

pub struct LoginThrottle {
    limits: Limits,
    windows: Mutex<HashMap<String, Window>>,
}

impl LoginThrottle {
    pub fn new(limits: Limits) -> Self {
        LoginThrottle {
            limits,
            windows: Mutex::new(HashMap::new()),
        }
    }

    fn keys(email: &str, address: &str) -> [(String, u32); 2] {
        [
            (format!("account:{email}"), 0),
            (format!("address:{address}"), 1),
        ]
    }

    fn limit(&self, which: u32) -> u32 {
        if which == 0 {
            self.limits.max_failures_per_account
        } else {
            self.limits.max_failures_per_address
        }
    }

    /// `Err(seconds)` while the account or the address has used up its failures.
    pub fn check(&self, email: &str, address: &str) -> Result<(), u64> {
        let windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let mut wait = Duration::ZERO;
        for (key, which) in Self::keys(email, address) {
            if let Some(w) = windows.get(&key) {
                let ends = w.started + self.limits.window;
                if w.failures >= self.limit(which) && ends > now {
                    wait = wait.max(ends - now);
                }
            }
        }
        if wait.is_zero() {
            Ok(())
        } else {
            Err(wait.as_secs().max(1))
        }
    }

    pub fn record_failure(&self, email: &str, address: &str) {
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if windows.len() > PRUNE_THRESHOLD {
            let window = self.limits.window;
            windows.retain(|_, w| w.started + window > now);
        }
        for (key, _) in Self::keys(email, address) {
            let w = windows.entry(key).or_insert(Window {
                failures: 0,
                started: now,
            });
            if w.started + self.limits.window <= now {
                *w = Window {
                    failures: 0,
                    started: now,
                };
            }
            w.failures += 1;
        }
    }

    /// A successful login clears the account's count (the address keeps its own).
    pub fn record_success(&self, email: &str) {
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        windows.remove(&format!("account:{email}"));
    }
}
