//! Pure bookkeeping of failed writes: when to report, when to say "recovered", how long to wait
//! before the next try. No clocks, no I/O: the actor feeds it results and acts on the answers.

use std::time::Duration;

use mcpvisor_model::{backoff_delay, BackoffConfig};

/// Default first retry delay after a failed write.
pub const DEFAULT_RETRY_INITIAL: Duration = mcpvisor_model::defaults::PERSIST_RETRY_INITIAL;
/// Default longest retry delay after failed writes.
pub const DEFAULT_RETRY_MAX: Duration = mcpvisor_model::defaults::PERSIST_RETRY_MAX;
/// Default coalescing window: changes arriving within it are written together.
pub const DEFAULT_COALESCE: Duration = mcpvisor_model::defaults::PERSIST_COALESCE;

/// How failed writes are retried: `initial`, doubling, capped at `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delay after the first failure.
    pub initial: Duration,
    /// Longest delay.
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial: DEFAULT_RETRY_INITIAL,
            max: DEFAULT_RETRY_MAX,
        }
    }
}

impl RetryPolicy {
    /// The delay after `failures` consecutive failures (1-based): `initial * 2^(failures-1)`,
    /// capped at `max`.
    ///
    /// ```
    /// use mcpvisor_persistence_actor::RetryPolicy;
    /// use std::time::Duration;
    /// let p = RetryPolicy::default();
    /// assert_eq!(p.delay(1), Duration::from_secs(1));
    /// assert_eq!(p.delay(3), Duration::from_secs(4));
    /// assert_eq!(p.delay(40), Duration::from_secs(30));
    /// ```
    pub fn delay(&self, failures: u32) -> Duration {
        let cfg = BackoffConfig {
            initial: self.initial,
            max: self.max.max(self.initial),
            factor: 2.0,
            jitter: 0.0,
            ..BackoffConfig::default()
        };
        backoff_delay(&cfg, failures.max(1), 0.5)
    }
}

/// The failure streak of one file. A streak starts at a failure after a success (or at start)
/// and ends at the next success.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FailureStreak {
    failures: u32,
    reported: Option<String>,
}

impl FailureStreak {
    /// Records a failure with `reason`. True when it must be reported: the first failure of a
    /// streak, or a failure for a different reason than the one last reported.
    pub(crate) fn failed(&mut self, reason: &str) -> bool {
        self.failures = self.failures.saturating_add(1);
        if self.reported.as_deref() == Some(reason) {
            return false;
        }
        self.reported = Some(reason.to_owned());
        true
    }

    /// Records a success. True when it ends a streak (report "recovered").
    pub(crate) fn succeeded(&mut self) -> bool {
        let was_failing = self.failures > 0;
        *self = FailureStreak::default();
        was_failing
    }

    /// Consecutive failures so far (0 when the last write succeeded).
    pub(crate) fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_from_initial_up_to_max() {
        let p = RetryPolicy::default();
        let secs: Vec<u64> = (1..=8).map(|n| p.delay(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(p.delay(0), Duration::from_secs(1));
        assert_eq!(p.delay(u32::MAX), Duration::from_secs(30));
        let fast = RetryPolicy {
            initial: Duration::from_millis(20),
            max: Duration::from_millis(50),
        };
        assert_eq!(fast.delay(2), Duration::from_millis(40));
        assert_eq!(fast.delay(3), Duration::from_millis(50));
    }

    #[test]
    fn a_streak_is_reported_once_and_recovered_once() {
        let mut s = FailureStreak::default();
        assert!(!s.succeeded(), "success without failure is no recovery");
        assert!(s.failed("disk full"));
        assert!(!s.failed("disk full"));
        assert!(!s.failed("disk full"));
        assert_eq!(s.failures(), 3);
        assert!(s.failed("read-only"), "a different reason is reported");
        assert!(!s.failed("read-only"));
        assert!(s.succeeded());
        assert!(!s.succeeded());
        assert_eq!(s.failures(), 0);
        assert!(s.failed("disk full"), "a new streak is reported again");
    }
}
