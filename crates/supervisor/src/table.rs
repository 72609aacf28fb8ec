//! The fleet's observed state: one [`Row`] per service, owned by the root actor.
//!
//! Every service report lands here first; the registry is a projection of these rows (sent
//! as they change, and copied back whole with [`Row::record`] after a registry respawn), the
//! state file gets its tools and process records from them, and waiters watch the state the
//! root published ([`Row::publish`]) — only after the registry was told — so a returned wait
//! means every query agrees. No transition is recorded from a state to itself: a report that
//! does not change the state only changes the reason, and emits no event.

use std::time::Instant;

use mcpvisor_model::{
    LogRing, ServerInfo, ServiceId, ServiceMetrics, ServiceSpec, ServiceState, ToolList,
};
use mcpvisor_persistence_actor::ProcessRecord;
use mcpvisor_registry_actor::ServiceRecord;
use tokio::sync::watch;

/// What the fleet knows about one service.
pub(crate) struct Row {
    pub state: ServiceState,
    pub reason: String,
    /// The reason of the last entry into `reconnecting`, `unreachable` or `failed`.
    pub last_error: Option<String>,
    pub since: Instant,
    pub server: Option<ServerInfo>,
    pub tools: ToolList,
    /// Last-known tools, not confirmed by a live server.
    pub stale: bool,
    pub pid: Option<u32>,
    /// What of its sandbox applies to the running server.
    pub sandbox: Option<serde_json::Value>,
    pub restarts: u64,
    /// The running server's record for reaping (what the state file holds).
    pub process: Option<ProcessRecord>,
    /// Published state: what waiters see, updated after the registry was told.
    watch: watch::Sender<ServiceState>,
}

/// Whether entering `state` makes its reason the last error.
fn is_error_state(state: ServiceState) -> bool {
    matches!(
        state,
        ServiceState::Reconnecting | ServiceState::Unreachable | ServiceState::Failed
    )
}

impl Row {
    /// A new row in `state` (`not_started` or `starting`).
    pub fn new(state: ServiceState) -> Self {
        Row {
            state,
            reason: "registered".to_owned(),
            last_error: None,
            since: Instant::now(),
            server: None,
            tools: ToolList::from(Vec::new()),
            stale: false,
            pid: None,
            sandbox: None,
            restarts: 0,
            process: None,
            watch: watch::Sender::new(state),
        }
    }

    /// A receiver of the published state.
    pub fn subscribe(&self) -> watch::Receiver<ServiceState> {
        self.watch.subscribe()
    }

    /// Records a report of `to` with `reason`. Returns the previous state when the state
    /// changed (a transition to report), `None` when only the reason did.
    pub fn transition(
        &mut self,
        to: ServiceState,
        reason: String,
        now: Instant,
    ) -> Option<ServiceState> {
        if to == self.state {
            self.reason = reason;
            return None;
        }
        let from = self.state;
        if is_error_state(to) {
            self.last_error = Some(reason.clone());
        }
        self.state = to;
        self.reason = reason;
        self.since = now;
        Some(from)
    }

    /// Makes the current state visible to waiters (call after the registry was told).
    pub fn publish(&self) {
        self.watch.send_if_modified(|s| {
            let changed = *s != self.state;
            *s = self.state;
            changed
        });
    }

    /// The whole row as a registry record (to rebuild a respawned registry).
    pub fn record(
        &self,
        id: &ServiceId,
        spec: &ServiceSpec,
        stderr: &LogRing,
        metrics: &ServiceMetrics,
    ) -> ServiceRecord {
        ServiceRecord {
            id: id.clone(),
            spec: spec.clone(),
            state: self.state,
            reason: self.reason.clone(),
            since: self.since,
            server: self.server.clone(),
            tools: self.tools.clone(),
            tools_stale: self.stale,
            pid: self.pid,
            sandbox: self.sandbox.clone(),
            restarts: self.restarts,
            last_error: self.last_error.clone(),
            stderr: stderr.clone(),
            metrics: metrics.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_of_the_same_state_changes_only_the_reason() {
        let mut row = Row::new(ServiceState::NotStarted);
        let now = Instant::now();
        assert_eq!(
            row.transition(ServiceState::NotStarted, "waiting for db".into(), now),
            None
        );
        assert_eq!(row.reason, "waiting for db");
        assert_eq!(
            row.transition(ServiceState::Starting, "starting".into(), now),
            Some(ServiceState::NotStarted)
        );
    }

    #[test]
    fn only_error_states_set_the_last_error_and_it_survives_recovery() {
        let mut row = Row::new(ServiceState::Starting);
        let now = Instant::now();
        row.transition(ServiceState::Healthy, "connected".into(), now);
        assert_eq!(row.last_error, None);
        row.transition(ServiceState::Reconnecting, "server exited".into(), now);
        row.transition(ServiceState::Healthy, "connected".into(), now);
        assert_eq!(row.last_error.as_deref(), Some("server exited"));
        assert_eq!(row.reason, "connected");
    }

    #[test]
    fn waiters_see_a_state_only_once_published() {
        let mut row = Row::new(ServiceState::Starting);
        let rx = row.subscribe();
        row.transition(ServiceState::Healthy, "connected".into(), Instant::now());
        assert_eq!(*rx.borrow(), ServiceState::Starting);
        row.publish();
        assert_eq!(*rx.borrow(), ServiceState::Healthy);
    }
}
