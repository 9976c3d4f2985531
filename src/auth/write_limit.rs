//! A limit on each user's writes (`POST`, `PUT`, `PATCH`, `DELETE`) per minute, so that one
//! account cannot flood a case, an agency's queue or the platform's staff with work and
//! notifications. Reads are not counted; failed logins have their own throttle.
//!
//! Counts live in this process, as the login throttle's do: with several API nodes each one
//! limits on its own.

use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

/// Users are forgotten once their allowance is whole again, when the table grows past this.
const PRUNE_THRESHOLD: usize = 10_000;

pub struct WriteLimit(Option<DefaultKeyedRateLimiter<String>>);

impl WriteLimit {
    /// `per_minute` writes a minute for each user, all of them at once if they like; 0: no limit.
    pub fn new(per_minute: u32) -> WriteLimit {
        WriteLimit(
            NonZeroU32::new(per_minute).map(|n| governor::RateLimiter::keyed(Quota::per_minute(n))),
        )
    }

    /// Counts a write by `user_id`: `Err` with the whole seconds to wait once their allowance is
    /// spent.
    pub fn check(&self, user_id: &str) -> Result<(), u64> {
        let Some(limiter) = &self.0 else {
            return Ok(());
        };
        if limiter.len() > PRUNE_THRESHOLD {
            limiter.retain_recent();
        }
        limiter.check_key(&user_id.to_owned()).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
        })
    }
}
