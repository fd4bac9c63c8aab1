//! Request rate limits, per stream or per token: one token bucket per key,
//! refilled at the configured rate, holding at most one second's worth
//! (the burst).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::error::ApiError;

/// The buckets of every stream (or token) that has been seen since start.
#[derive(Debug)]
pub(crate) struct RateLimits {
    per_second: u32,
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    refilled: Instant,
}

impl RateLimits {
    /// Buckets that let `per_second` requests through per second.
    pub(crate) fn new(per_second: u32) -> Self {
        Self {
            per_second,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request's token for `key` now, refusing with
    /// [`ApiError::RateLimited`] naming `what` (`stream "NAME"`,
    /// `token "ID"`) when the bucket is empty.
    pub(crate) fn admit(&self, key: &str, what: impl FnOnce() -> String) -> Result<(), ApiError> {
        self.take(key, Instant::now())
            .map_err(|wait| ApiError::RateLimited {
                limited: what(),
                per_second: self.per_second,
                retry_after: wait.as_secs().max(1),
            })
    }

    /// Takes one request's token for `key` at `now`; on refusal, the time
    /// until the next token.
    pub(crate) fn take(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let rate = f64::from(self.per_second);
        let mut buckets = self.buckets.lock();
        let bucket = match buckets.get_mut(key) {
            Some(b) => b,
            None => buckets.entry(key.to_owned()).or_insert(Bucket {
                tokens: rate,
                refilled: now,
            }),
        };
        let elapsed = now.saturating_duration_since(bucket.refilled).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(rate);
        bucket.refilled = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_at_the_limit_then_refill() {
        let limits = RateLimits::new(5);
        let t0 = Instant::now();
        for _ in 0..5 {
            limits.take("s", t0).unwrap();
        }
        let wait = limits.take("s", t0).unwrap_err();
        assert!(wait > Duration::from_millis(150) && wait <= Duration::from_millis(200));
        // Another stream has its own bucket.
        limits.take("other", t0).unwrap();
        // A fifth of a second later, one more passes, and only one.
        let t1 = t0 + Duration::from_millis(200);
        limits.take("s", t1).unwrap();
        limits.take("s", t1).unwrap_err();
        // Idle time never banks more than one second's worth.
        let t2 = t1 + Duration::from_secs(60);
        for _ in 0..5 {
            limits.take("s", t2).unwrap();
        }
        limits.take("s", t2).unwrap_err();
    }
}
