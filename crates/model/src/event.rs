//! Events: every state transition, tools change, config change and persistence error.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::name::{AgentId, ServiceName};
use crate::state::ServiceState;

/// A service's identity across scopes: a store-level service, or an agent's own service.
/// Shown as `name` or `agent/name`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ServiceId {
    /// The owning agent, or `None` for the store's own services.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentId>,
    /// The name within its scope.
    pub name: ServiceName,
}

impl ServiceId {
    /// A store-level service.
    pub fn global(name: ServiceName) -> Self {
        ServiceId { agent: None, name }
    }
    /// An agent's service.
    pub fn agent(agent: AgentId, name: ServiceName) -> Self {
        ServiceId {
            agent: Some(agent),
            name,
        }
    }
}

impl std::fmt::Display for ServiceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.agent {
            Some(a) => write!(f, "{a}/{}", self.name),
            None => write!(f, "{}", self.name),
        }
    }
}

/// Wall-clock time as milliseconds since the Unix epoch (serialized as a number).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// Now.
    pub fn now() -> Self {
        Self::from(SystemTime::now())
    }
    /// RFC 3339 text with milliseconds, UTC.
    pub fn rfc3339(self) -> String {
        humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(self.0)).to_string()
    }
}

impl From<SystemTime> for Timestamp {
    fn from(t: SystemTime) -> Self {
        Timestamp(
            t.duration_since(UNIX_EPOCH)
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
                .unwrap_or(0),
        )
    }
}

/// What changed in the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConfigChange {
    /// Registered.
    Added,
    /// Forgotten.
    Removed,
    /// Its config changed.
    Updated,
}

/// One event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// A state transition.
    StateChanged {
        /// The service.
        service: ServiceId,
        /// The previous state.
        from: ServiceState,
        /// The new state.
        to: ServiceState,
        /// Why (human text).
        reason: String,
        /// When.
        at: Timestamp,
    },
    /// The service's tool list changed.
    ToolsChanged {
        /// The service.
        service: ServiceId,
        /// How many tools it has now.
        count: usize,
        /// When.
        at: Timestamp,
    },
    /// A service was added, removed or updated.
    ConfigChanged {
        /// The service.
        service: ServiceId,
        /// What happened.
        change: ConfigChange,
        /// When.
        at: Timestamp,
    },
    /// Writing the config or state file failed (the runtime keeps serving).
    PersistenceError {
        /// The file.
        path: String,
        /// The operating system's reason.
        message: String,
        /// When.
        at: Timestamp,
    },
    /// A write that had failed before succeeded.
    PersistenceRecovered {
        /// The file.
        path: String,
        /// When.
        at: Timestamp,
    },
    /// A server says a resource it was subscribed to changed (`notifications/resources/updated`).
    ResourceUpdated {
        /// The service.
        service: ServiceId,
        /// The resource's URI as the server wrote it.
        uri: String,
        /// When.
        at: Timestamp,
    },
    /// A server says its resources (`resources`) or prompts (`prompts`) changed.
    ListChanged {
        /// The service.
        service: ServiceId,
        /// `resources` or `prompts`.
        list: String,
        /// When.
        at: Timestamp,
    },
    /// A server's log message (`notifications/message`).
    ServerLog {
        /// The service.
        service: ServiceId,
        /// Its level (`debug` … `emergency`).
        level: String,
        /// The logger, if the server named one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        logger: Option<String>,
        /// What it logged.
        data: serde_json::Value,
        /// When.
        at: Timestamp,
    },
    /// An alert notice was delivered by one of its rule's actions.
    AlertSent {
        /// The rule.
        rule: String,
        /// The service it is about (`name` or `agent/name`).
        service: String,
        /// `firing` or `recovered`.
        notice: String,
        /// `command` or `webhook`.
        action: String,
        /// Attempts it took.
        attempts: u32,
        /// When.
        at: Timestamp,
    },
    /// An alert action failed every attempt; supervision goes on.
    AlertFailed {
        /// The rule.
        rule: String,
        /// The service it is about.
        service: String,
        /// `firing` or `recovered`.
        notice: String,
        /// `command` or `webhook`.
        action: String,
        /// The last attempt's error.
        error: String,
        /// Attempts made.
        attempts: u32,
        /// When.
        at: Timestamp,
    },
    /// This subscriber was too slow and lost this many events.
    Lagged {
        /// Events lost.
        missed: u64,
    },
}

impl Event {
    /// The service the event is about, if any.
    pub fn service(&self) -> Option<&ServiceId> {
        match self {
            Event::StateChanged { service, .. }
            | Event::ToolsChanged { service, .. }
            | Event::ConfigChanged { service, .. } => Some(service),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_change_serializes_with_from_to_reason_and_time() {
        let e = Event::StateChanged {
            service: ServiceId::global(ServiceName::parse("db").unwrap()),
            from: ServiceState::Healthy,
            to: ServiceState::Reconnecting,
            reason: "child exited: signal 9".into(),
            at: Timestamp(1_700_000_000_123),
        };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["kind"], "state_changed");
        assert_eq!(v["service"]["name"], "db");
        assert_eq!(v["from"], "healthy");
        assert_eq!(v["to"], "reconnecting");
        assert_eq!(v["at"], 1_700_000_000_123u64);
        assert_eq!(
            Timestamp(1_700_000_000_123).rfc3339(),
            "2023-11-14T22:13:20.123Z"
        );
        let back: Event = serde_json::from_value(v).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn agent_services_display_with_their_agent() {
        let id = ServiceId::agent(
            ServiceName::parse("bot").unwrap(),
            ServiceName::parse("db").unwrap(),
        );
        assert_eq!(id.to_string(), "bot/db");
    }
}
