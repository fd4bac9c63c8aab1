//! Retry timing: exponential backoff with full jitter, bounded by an
//! overall deadline.

use std::time::Duration;

use rand::Rng;

/// How a client retries a failed send.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Wait before the first retry (default 50 ms).
    pub initial_backoff: Duration,
    /// Longest wait between two tries (default 2 s).
    pub max_backoff: Duration,
    /// Growth of the wait per retry (default 2).
    pub multiplier: f64,
    /// Overall time for one send, retries included (default 30 s).
    pub deadline: Duration,
    /// Randomise each wait within `[0, backoff]` (default true), so that
    /// clients failed over together do not retry together.
    pub jitter: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
            multiplier: 2.0,
            deadline: Duration::from_secs(30),
            jitter: true,
        }
    }
}

impl RetryPolicy {
    /// The ceiling of the wait before retry number `retry` (0 for the
    /// first): `initial * multiplier^retry`, capped at `max_backoff`.
    pub fn ceiling(&self, retry: u32) -> Duration {
        let factor = self.multiplier.max(1.0).powi(retry.min(64) as i32);
        let secs = self.initial_backoff.as_secs_f64() * factor;
        Duration::from_secs_f64(secs.min(self.max_backoff.as_secs_f64()))
    }

    /// The wait before retry number `retry`: the ceiling, or with jitter a
    /// uniform draw from `[0, ceiling]`.
    pub fn backoff(&self, retry: u32) -> Duration {
        let ceiling = self.ceiling(retry);
        if self.jitter && !ceiling.is_zero() {
            rand::rng().random_range(Duration::ZERO..=ceiling)
        } else {
            ceiling
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceiling_grows_exponentially_then_caps() {
        let policy = RetryPolicy::default();
        let ms: Vec<u128> = (0..8).map(|r| policy.ceiling(r).as_millis()).collect();
        assert_eq!(ms, [50, 100, 200, 400, 800, 1600, 2000, 2000]);
        assert_eq!(policy.ceiling(u32::MAX), Duration::from_secs(2));
    }

    #[test]
    fn jitter_stays_within_the_ceiling_and_varies() {
        let policy = RetryPolicy::default();
        let waits: Vec<Duration> = (0..200).map(|_| policy.backoff(3)).collect();
        assert!(waits.iter().all(|w| *w <= Duration::from_millis(400)));
        let distinct: std::collections::HashSet<_> = waits.iter().collect();
        assert!(distinct.len() > 50, "jitter should spread the waits");
        let exact = RetryPolicy {
            jitter: false,
            ..policy
        };
        assert_eq!(exact.backoff(3), Duration::from_millis(400));
    }

    #[test]
    fn a_multiplier_below_one_never_shrinks_the_wait() {
        let policy = RetryPolicy {
            multiplier: 0.5,
            ..RetryPolicy::default()
        };
        assert_eq!(policy.ceiling(5), Duration::from_millis(50));
    }
}
