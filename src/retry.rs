//! When to try a failed step again: the backoff shared by the notice outbox (deliveries
//! and copies of results) and the local backend (recording the end of a run).

use std::time::Duration;

use rand::Rng;

/// Exponential backoff with jitter: the n-th retry waits between half and all of
/// `initial * 2^(n-1)`, capped at `max`. The jitter spreads a burst of failed notices
/// (Multiomix down while many jobs end) so they do not all come back at once.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Backoff {
    /// The wait before retry number `retry` (1 for the first retry).
    pub fn delay(&self, retry: u32) -> Duration {
        let ceiling = self.ceiling(retry);
        let half = ceiling / 2;
        let jitter = rand::thread_rng().gen_range(0..=half.as_millis() as u64);
        half + Duration::from_millis(jitter)
    }

    /// The longest the wait before retry number `retry` can be.
    pub fn ceiling(&self, retry: u32) -> Duration {
        let exponent = retry.saturating_sub(1).min(32);
        self.initial
            .checked_mul(1u32 << exponent.min(31))
            .unwrap_or(self.max)
            .min(self.max)
    }

    /// The wait after a failed attempt: the backoff, or longer when the receiver asked for
    /// it with `Retry-After` (never longer than `max`).
    pub fn after_failure(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        let backoff = self.delay(retry);
        match retry_after {
            Some(asked) => backoff.max(asked.min(self.max)),
            None => backoff,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: Backoff = Backoff {
        initial: Duration::from_secs(5),
        max: Duration::from_secs(600),
    };

    #[test]
    fn the_ceiling_doubles_from_the_initial_wait_up_to_the_maximum() {
        let ceilings: Vec<u64> = (1..=9).map(|n| B.ceiling(n).as_secs()).collect();
        assert_eq!(ceilings, [5, 10, 20, 40, 80, 160, 320, 600, 600]);
        assert_eq!(B.ceiling(1_000), Duration::from_secs(600));
    }

    #[test]
    fn each_delay_lies_between_half_and_all_of_its_ceiling() {
        for retry in 1..12 {
            for _ in 0..50 {
                let d = B.delay(retry);
                let c = B.ceiling(retry);
                assert!(
                    d >= c / 2 && d <= c,
                    "retry {retry}: {d:?} outside [{:?}, {c:?}]",
                    c / 2
                );
            }
        }
    }

    #[test]
    fn retry_after_lengthens_the_wait_but_never_past_the_maximum() {
        let d = B.after_failure(1, Some(Duration::from_secs(120)));
        assert_eq!(d, Duration::from_secs(120));
        let d = B.after_failure(1, Some(Duration::from_secs(86_400)));
        assert_eq!(d, Duration::from_secs(600));
        assert!(B.after_failure(1, Some(Duration::from_secs(0))) >= Duration::from_millis(2_500));
    }
}
