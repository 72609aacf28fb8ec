//! [`Activity`]: when a service last had calls, for `idle_stop` (DESIGN §16).
//!
//! Every call holds an [`ActivityGuard`] while it runs; a service is idle for a window when no
//! call is in flight and the last one ended at least that window ago. Times are tokio's, so
//! the rule is tested on tokio's paused clock.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// Calls in flight and the end of the last one.
#[derive(Debug)]
pub struct Activity {
    in_flight: AtomicUsize,
    last: Mutex<Instant>,
}

impl Default for Activity {
    fn default() -> Self {
        Activity {
            in_flight: AtomicUsize::new(0),
            last: Mutex::new(Instant::now()),
        }
    }
}

/// Held by a call while it runs; its drop marks the call's end.
#[derive(Debug)]
pub struct ActivityGuard(Arc<Activity>);

impl Drop for ActivityGuard {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Activity {
    /// A call begins; it counts until the guard is dropped.
    pub fn begin(self: &Arc<Self>) -> ActivityGuard {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        ActivityGuard(self.clone())
    }

    /// Marks activity now (a connection came up, a call ended).
    pub fn touch(&self) {
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    /// Calls in flight now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// `None` when idle for `window` (no call in flight, the last one ended at least `window`
    /// ago); otherwise how long until it could be (the whole window while calls run).
    pub fn idle_left(&self, window: Duration) -> Option<Duration> {
        if self.in_flight() > 0 {
            return Some(window);
        }
        let last = *self.last.lock().unwrap_or_else(|p| p.into_inner());
        let quiet = Instant::now().saturating_duration_since(last);
        (quiet < window).then(|| window - quiet)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_secs(600);

    #[tokio::test(start_paused = true)]
    async fn idle_only_after_a_whole_window_without_calls() {
        let a = Arc::new(Activity::default());
        assert_eq!(a.idle_left(WINDOW), Some(WINDOW));
        tokio::time::advance(Duration::from_secs(599)).await;
        assert_eq!(a.idle_left(WINDOW), Some(Duration::from_secs(1)));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(a.idle_left(WINDOW), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_in_flight_is_never_idle_and_its_end_restarts_the_window() {
        let a = Arc::new(Activity::default());
        let call = a.begin();
        tokio::time::advance(WINDOW * 3).await;
        assert_eq!(a.in_flight(), 1);
        assert_eq!(
            a.idle_left(WINDOW),
            Some(WINDOW),
            "a long call keeps it busy"
        );
        tokio::time::advance(Duration::from_secs(5)).await;
        drop(call);
        assert_eq!(a.in_flight(), 0);
        tokio::time::advance(Duration::from_secs(300)).await;
        assert_eq!(a.idle_left(WINDOW), Some(Duration::from_secs(300)));
        tokio::time::advance(Duration::from_secs(300)).await;
        assert_eq!(a.idle_left(WINDOW), None);
    }

    #[tokio::test(start_paused = true)]
    async fn touch_restarts_the_window() {
        let a = Arc::new(Activity::default());
        tokio::time::advance(WINDOW).await;
        assert_eq!(a.idle_left(WINDOW), None);
        a.touch();
        assert_eq!(a.idle_left(WINDOW), Some(WINDOW));
    }
}
