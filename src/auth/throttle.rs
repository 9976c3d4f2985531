//! Throttling of failed logins, per account and per client address.
//!
//! Counts live in this process: with several API nodes each one throttles on its own, so the
//! effective limit is the configured one times the number of nodes (still a hard ceiling).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::LoginThrottle as Limits;

/// Entries are pruned when the table grows past this many keys.
const PRUNE_THRESHOLD: usize = 10_000;

struct Window {
    failures: u32,
    /// Attempts whose password is being checked now.
    pending: u32,
    started: Instant,
}

pub struct LoginThrottle {
    limits: Limits,
    windows: Mutex<HashMap<String, Window>>,
}

/// A login attempt under way, counted as pending until it is settled; dropped unsettled (the
/// request went away), it just stops counting.
pub struct Attempt<'a> {
    throttle: &'a LoginThrottle,
    keys: [(String, u32); 2],
    settled: bool,
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

    /// The address a login is counted against: the TCP peer's, or, when the peer is one of
    /// the trusted proxies, the client's as they recorded it in `X-Forwarded-For`. Each proxy
    /// appends the address it heard from, so the client is the rightmost entry that is not one
    /// of ours; what a client writes into the header itself stays to the left of it.
    pub fn client_address(&self, peer: Option<IpAddr>, forwarded_for: &[String]) -> String {
        let trusted = |ip: &IpAddr| self.limits.trusted_proxies.iter().any(|n| n.contains(ip));
        // A dual-stack listener sees IPv4 peers as `::ffff:a.b.c.d`.
        let Some(mut client) = peer.map(|ip| ip.to_canonical()) else {
            return String::new();
        };
        if trusted(&client) {
            let entries = forwarded_for.iter().rev().flat_map(|h| h.rsplit(','));
            for entry in entries {
                match forwarded_ip(entry.trim()).map(|ip| ip.to_canonical()) {
                    Some(ip) => {
                        client = ip;
                        if !trusted(&ip) {
                            break;
                        }
                    }
                    None => break,
                }
            }
        }
        match client {
            // One subscriber usually holds a whole /64: counted per address, its 2^64 of them
            // would each get their own failures.
            IpAddr::V6(v6) => {
                let network = u128::from(v6) & !(u64::MAX as u128);
                format!("{}/64", std::net::Ipv6Addr::from(network))
            }
            IpAddr::V4(v4) => v4.to_string(),
        }
    }

    fn windows(&self) -> std::sync::MutexGuard<'_, HashMap<String, Window>> {
        self.windows.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts an attempt, or `Err(seconds)` while the account or the address has used up its
    /// failures. Attempts still being checked count against the limit too, so attempts sent at
    /// once cannot all pass before the first of them fails (then the wait is a second).
    pub fn attempt(&self, email: &str, address: &str) -> Result<Attempt<'_>, u64> {
        let mut windows = self.windows();
        let now = Instant::now();
        let window = self.limits.window;
        if windows.len() > PRUNE_THRESHOLD {
            windows.retain(|_, w| w.pending > 0 || w.started + window > now);
        }
        let keys = Self::keys(email, address);
        let mut wait = Duration::ZERO;
        for (key, which) in &keys {
            let Some(w) = windows.get_mut(key) else {
                continue;
            };
            if w.started + window <= now {
                w.failures = 0;
                w.started = now;
            }
            let limit = self.limit(*which);
            if w.failures >= limit {
                wait = wait.max(w.started + window - now);
            } else if w.failures + w.pending >= limit {
                wait = wait.max(Duration::from_secs(1));
            }
        }
        if !wait.is_zero() {
            return Err(wait.as_secs().max(1));
        }
        for (key, _) in &keys {
            windows
                .entry(key.clone())
                .or_insert(Window {
                    failures: 0,
                    pending: 0,
                    started: now,
                })
                .pending += 1;
        }
        Ok(Attempt {
            throttle: self,
            keys,
            settled: false,
        })
    }
}

enum Outcome {
    Failed,
    Succeeded,
    Abandoned,
}

impl Attempt<'_> {
    /// A wrong password, an unknown e-mail or a deactivated account: one more failure for both.
    pub fn failed(mut self) {
        self.settle(Outcome::Failed);
    }

    /// A successful login clears the account's failures; the address keeps its own.
    pub fn succeeded(mut self) {
        self.settle(Outcome::Succeeded);
    }

    fn settle(&mut self, outcome: Outcome) {
        self.settled = true;
        let mut windows = self.throttle.windows();
        let now = Instant::now();
        for (key, which) in &self.keys {
            let Some(w) = windows.get_mut(key) else {
                continue;
            };
            w.pending = w.pending.saturating_sub(1);
            match outcome {
                Outcome::Failed => {
                    if w.started + self.throttle.limits.window <= now {
                        w.failures = 0;
                        w.started = now;
                    }
                    w.failures += 1;
                }
                Outcome::Succeeded if *which == 0 => w.failures = 0,
                Outcome::Succeeded | Outcome::Abandoned => {}
            }
        }
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.settle(Outcome::Abandoned);
        }
    }
}

/// An `X-Forwarded-For` entry's address: some proxies write the port too (`203.0.113.5:4711`,
/// `[2001:db8::1]:4711`). Read without it, those clients would all count as the proxy.
fn forwarded_ip(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .or_else(|_| entry.parse::<std::net::SocketAddr>().map(|s| s.ip()))
        .ok()
}
