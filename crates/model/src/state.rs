//! Service states (DESIGN §4) and the coarse status other tools show.

use serde::{Deserialize, Serialize};

/// The state of one service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceState {
    /// Registered, not asked to run (disabled, or waiting for dependencies).
    NotStarted,
    /// Spawning / connecting / initialize / listing tools.
    Starting,
    /// Connected; the last probe answered in time.
    Healthy,
    /// `warn_after` consecutive probe failures, still connected.
    Warning,
    /// Connection lost or `reconnect_after` probe failures; backoff retries under way.
    Reconnecting,
    /// `max_attempts` used up; retried slowly every `unreachable_retry`, never abandoned.
    Unreachable,
    /// Stop requested.
    Stopping,
    /// Stopped (on request, or a transient/temporary exit that is not restarted).
    Stopped,
    /// Restart intensity exceeded; only a manual start revives it.
    Failed,
    /// Not running, by design: a lazy service not called yet, or one stopped after
    /// `idle_stop` without calls. Its tools stay listed; the next call starts it.
    Idle,
}

/// The coarse status of MCPStore-like tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CoarseStatus {
    /// Not started.
    NotStarted,
    /// Starting.
    Starting,
    /// Up.
    Running,
    /// Down and being retried, or failed.
    Error,
    /// Stopping.
    Stopping,
    /// Stopped.
    Stopped,
}

impl ServiceState {
    /// Every state, in lifecycle order.
    pub const ALL: [ServiceState; 10] = [
        ServiceState::NotStarted,
        ServiceState::Starting,
        ServiceState::Healthy,
        ServiceState::Warning,
        ServiceState::Reconnecting,
        ServiceState::Unreachable,
        ServiceState::Stopping,
        ServiceState::Stopped,
        ServiceState::Failed,
        ServiceState::Idle,
    ];

    /// The coarse status.
    pub fn coarse(self) -> CoarseStatus {
        match self {
            ServiceState::NotStarted => CoarseStatus::NotStarted,
            ServiceState::Starting => CoarseStatus::Starting,
            ServiceState::Healthy | ServiceState::Warning => CoarseStatus::Running,
            ServiceState::Reconnecting | ServiceState::Unreachable | ServiceState::Failed => {
                CoarseStatus::Error
            }
            ServiceState::Stopping => CoarseStatus::Stopping,
            ServiceState::Stopped | ServiceState::Idle => CoarseStatus::Stopped,
        }
    }

    /// Whether tool calls are accepted (`healthy` or `warning`).
    pub fn is_up(self) -> bool {
        matches!(self, ServiceState::Healthy | ServiceState::Warning)
    }

    /// How time in this state counts for availability: `Some(true)` available (up),
    /// `Some(false)` unavailable (starting, down, failed, stopping), `None` not at all — not
    /// asked to run: `not_started`, `stopped` and `idle` (a lazy service is not "down" while
    /// nobody calls it).
    pub fn availability(self) -> Option<bool> {
        match self {
            ServiceState::Healthy | ServiceState::Warning => Some(true),
            ServiceState::Starting
            | ServiceState::Reconnecting
            | ServiceState::Unreachable
            | ServiceState::Stopping
            | ServiceState::Failed => Some(false),
            ServiceState::NotStarted | ServiceState::Stopped | ServiceState::Idle => None,
        }
    }

    /// The snake_case name (`not_started`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceState::NotStarted => "not_started",
            ServiceState::Starting => "starting",
            ServiceState::Healthy => "healthy",
            ServiceState::Warning => "warning",
            ServiceState::Reconnecting => "reconnecting",
            ServiceState::Unreachable => "unreachable",
            ServiceState::Stopping => "stopping",
            ServiceState::Stopped => "stopped",
            ServiceState::Failed => "failed",
            ServiceState::Idle => "idle",
        }
    }

    /// Parses a snake_case name.
    pub fn parse(s: &str) -> Option<ServiceState> {
        ServiceState::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

impl std::fmt::Display for ServiceState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coarse_status_follows_the_design_table() {
        use CoarseStatus as C;
        use ServiceState as S;
        let table = [
            (S::NotStarted, C::NotStarted),
            (S::Starting, C::Starting),
            (S::Healthy, C::Running),
            (S::Warning, C::Running),
            (S::Reconnecting, C::Error),
            (S::Unreachable, C::Error),
            (S::Stopping, C::Stopping),
            (S::Stopped, C::Stopped),
            (S::Failed, C::Error),
            (S::Idle, C::Stopped),
        ];
        for (s, c) in table {
            assert_eq!(s.coarse(), c, "{s}");
        }
    }

    #[test]
    fn names_round_trip_through_serde_and_parse() {
        for s in ServiceState::ALL {
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
            assert_eq!(ServiceState::parse(s.as_str()), Some(s));
        }
    }
}
