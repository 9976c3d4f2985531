//! A limit on each user's writes (`POST`, `PUT`, `PATCH`, `DELETE`) per minute, so that one
//! account cannot flood a case, an agency's queue or the platform's staff with work and
//! notifications. Reads are not counted; failed logins have their own throttle.
//!
//! Counts live in this process, as the login throttle's do: with several API nodes each one
//! limits on its own.

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota};

/// Users whose allowance is whole again are forgotten at most this often.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

pub struct WriteLimit {
    limiter: Option<DefaultKeyedRateLimiter<String>>,
    pruned: Mutex<Instant>,
}

impl WriteLimit {
    /// `per_minute` writes a minute for each user, all at once if they like; 0: no limit.
    pub fn new(per_minute: u32) -> WriteLimit {
        WriteLimit {
            limiter: NonZeroU32::new(per_minute)
                .map(|n| governor::RateLimiter::keyed(Quota::per_minute(n))),
            pruned: Mutex::new(Instant::now()),
        }
    }

    /// Counts a write by `user_id`: `Err` with the whole seconds to wait once their allowance is
    /// spent. Keyed by the user alone, not their session: a new login does not start afresh.
    pub fn check(&self, user_id: &str) -> Result<(), u64> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        self.prune(limiter);
        limiter.check_key(&user_id.to_owned()).map_err(|not_until| {
            let wait = not_until.wait_time_from(limiter.clock().now());
            (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
        })
    }

    /// Forgets the users whose allowance is whole again, once a minute at most.
    fn prune(&self, limiter: &DefaultKeyedRateLimiter<String>) {
        let Ok(mut pruned) = self.pruned.try_lock() else {
            return;
        };
        if pruned.elapsed() >= PRUNE_EVERY {
            *pruned = Instant::now();
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}
