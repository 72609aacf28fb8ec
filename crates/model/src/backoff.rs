//! Pure time arithmetic: the reconnect schedule and the restart-intensity window. Time is passed
//! in, randomness too, so both are tested exhaustively without clocks.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::config::{BackoffConfig, IntensityConfig};

/// The delay before reconnect attempt `attempt` (1-based): `initial * factor^(attempt-1)`,
/// capped at `max`, spread by `jitter` using `unit_random` in `[0, 1)` (0.5 = no spread).
/// The result never exceeds `max * (1 + jitter)` and is never negative.
///
/// ```
/// use mcpvisor_model::{backoff_delay, BackoffConfig};
/// use std::time::Duration;
/// let b = BackoffConfig { jitter: 0.0, ..BackoffConfig::default() };
/// assert_eq!(backoff_delay(&b, 1, 0.5), Duration::from_millis(250));
/// assert_eq!(backoff_delay(&b, 3, 0.5), Duration::from_secs(1));
/// assert_eq!(backoff_delay(&b, 50, 0.5), Duration::from_secs(30));
/// ```
pub fn backoff_delay(cfg: &BackoffConfig, attempt: u32, unit_random: f64) -> Duration {
    let exp = attempt.saturating_sub(1).min(1000) as i32;
    let base = cfg.initial.as_secs_f64() * cfg.factor.powi(exp);
    let capped = if base.is_finite() {
        base.min(cfg.max.as_secs_f64())
    } else {
        cfg.max.as_secs_f64()
    };
    let r = if unit_random.is_finite() {
        unit_random.clamp(0.0, 1.0)
    } else {
        0.5
    };
    let spread = 1.0 + cfg.jitter * (2.0 * r - 1.0);
    Duration::try_from_secs_f64((capped * spread).max(0.0)).unwrap_or(cfg.max)
}

/// What the intensity window says about one more restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartVerdict {
    /// Within limits: restart.
    Restart,
    /// More than `max_restarts` within `within`: give up (`failed`).
    GiveUp,
}

/// The restart-intensity window of OTP: remembers restart times within `within`.
#[derive(Debug, Clone)]
pub struct RestartWindow {
    cfg: IntensityConfig,
    times: VecDeque<Instant>,
}

impl RestartWindow {
    /// An empty window.
    pub fn new(cfg: IntensityConfig) -> Self {
        RestartWindow {
            cfg,
            times: VecDeque::new(),
        }
    }

    /// Records a restart wanted at `now` and says whether it may happen. A refused restart is
    /// still recorded, so a service kept in a loop stays refused until the window drains.
    pub fn record(&mut self, now: Instant) -> RestartVerdict {
        while let Some(first) = self.times.front() {
            if now.saturating_duration_since(*first) >= self.cfg.within {
                self.times.pop_front();
            } else {
                break;
            }
        }
        self.times.push_back(now);
        if self.times.len() > self.cfg.max_restarts as usize {
            RestartVerdict::GiveUp
        } else {
            RestartVerdict::Restart
        }
    }

    /// Forgets every restart (after a manual start).
    pub fn reset(&mut self) {
        self.times.clear();
    }

    /// Restarts currently inside the window.
    pub fn len(&self) -> usize {
        self.times.len()
    }

    /// Whether no restart is inside the window.
    pub fn is_empty(&self) -> bool {
        self.times.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(jitter: f64) -> BackoffConfig {
        BackoffConfig {
            jitter,
            ..BackoffConfig::default()
        }
    }

    #[test]
    fn delays_grow_by_factor_and_cap_at_max() {
        let b = cfg(0.0);
        let ms: Vec<u128> = (1..=10)
            .map(|a| backoff_delay(&b, a, 0.5).as_millis())
            .collect();
        assert_eq!(
            ms,
            vec![250, 500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]
        );
        assert_eq!(backoff_delay(&b, u32::MAX, 0.5), Duration::from_secs(30));
    }

    #[test]
    fn jitter_spreads_within_bounds() {
        let b = cfg(0.2);
        assert_eq!(backoff_delay(&b, 1, 0.0), Duration::from_millis(200));
        assert_eq!(backoff_delay(&b, 1, 1.0), Duration::from_millis(300));
        for i in 0..=100 {
            let d = backoff_delay(&b, 4, i as f64 / 100.0);
            assert!(
                d >= Duration::from_millis(1600) && d <= Duration::from_millis(2400),
                "{d:?}"
            );
        }
        // Garbage randomness never panics.
        let _ = backoff_delay(&b, 1, f64::NAN);
        let _ = backoff_delay(&b, 1, -3.0);
    }

    #[test]
    fn zero_initial_means_immediate_retries() {
        let b = BackoffConfig {
            initial: Duration::ZERO,
            ..cfg(0.2)
        };
        assert_eq!(backoff_delay(&b, 5, 0.9), Duration::ZERO);
    }

    #[test]
    fn more_than_max_restarts_within_the_period_gives_up() {
        let t0 = Instant::now();
        let mut w = RestartWindow::new(IntensityConfig {
            max_restarts: 3,
            within: Duration::from_secs(10),
        });
        for i in 0..3 {
            assert_eq!(
                w.record(t0 + Duration::from_secs(i)),
                RestartVerdict::Restart
            );
        }
        assert_eq!(
            w.record(t0 + Duration::from_secs(3)),
            RestartVerdict::GiveUp
        );
    }

    #[test]
    fn restarts_spread_over_time_never_give_up() {
        let t0 = Instant::now();
        let mut w = RestartWindow::new(IntensityConfig {
            max_restarts: 2,
            within: Duration::from_secs(10),
        });
        for i in 0..100u64 {
            assert_eq!(
                w.record(t0 + Duration::from_secs(6 * i)),
                RestartVerdict::Restart,
                "restart {i}"
            );
        }
        assert!(w.len() <= 2);
    }

    #[test]
    fn zero_max_restarts_refuses_the_first() {
        let mut w = RestartWindow::new(IntensityConfig {
            max_restarts: 0,
            within: Duration::from_secs(1),
        });
        assert_eq!(w.record(Instant::now()), RestartVerdict::GiveUp);
        w.reset();
        assert!(w.is_empty());
    }
}
