//! The `alerts` section (DESIGN §15): rules on events, each with actions — a command and/or a
//! webhook — rate-limited per rule and service, retried, with a recovery notice.
//!
//! ```jsonc
//! "alerts": {
//!   "down": {"enters": ["unreachable", "failed"], "services": ["db", "api*"],
//!            "command": ["notify-send", "mcpvisor"],
//!            "webhook": {"url": "https://hooks.example/x", "headers": {"Authorization": "Bearer ${HOOK}"}},
//!            "every": "5m", "recovery": true, "retries": 3, "timeout": "10s"},
//!   "flapping": {"restarts": {"more_than": 3, "within": "10m"}, "webhook": "http://127.0.0.1:9000/hook"},
//!   "slow": {"probe_latency": {"over": "500ms"}, "command": "logger -t mcpvisor"}
//! }
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use crate::ServiceState;

/// Every rule, in file order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AlertsConfig {
    /// The rules.
    pub rules: Vec<AlertRule>,
}

/// What makes a rule fire for a service.
#[derive(Debug, Clone, PartialEq)]
pub enum AlertTrigger {
    /// The service enters one of these states; recovered when it is up again.
    Enters(Vec<ServiceState>),
    /// More than `more_than` losses (entries into `reconnecting`) within `within`; recovered
    /// once it is up and a whole `within` passed without another.
    Restarts {
        /// The bound.
        more_than: u32,
        /// The window.
        within: Duration,
    },
    /// A health probe slower than `over` (or failing); recovered at the next probe within it.
    ProbeLatency {
        /// The bound.
        over: Duration,
    },
}

/// A command to run: through `sh -c`, or a program and its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlertCommand {
    /// `sh -c TEXT`.
    Shell(String),
    /// Program and arguments, no shell.
    Argv(Vec<String>),
}

/// A webhook: POST the notice as JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    /// Where (`http://` or `https://`).
    pub url: String,
    /// Extra headers, `${VAR}` expanded.
    pub headers: BTreeMap<String, String>,
}

/// One rule.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRule {
    /// Its name (the key in `alerts`).
    pub name: String,
    /// When it fires.
    pub trigger: AlertTrigger,
    /// Services it watches: names or `*` patterns (`agent/name` for an agent's); all if empty.
    pub services: Vec<String>,
    /// A command run with the notice as JSON on stdin and key fields as `MCPVISOR_*` variables.
    pub command: Option<AlertCommand>,
    /// A webhook POSTed the notice.
    pub webhook: Option<Webhook>,
    /// At most one firing notice per service within this window.
    pub every: Duration,
    /// Send a recovery notice when the service is back.
    pub recovery: bool,
    /// Retries of a failed action (with backoff) before it is given up as an event.
    pub retries: u32,
    /// Deadline of each attempt.
    pub timeout: Duration,
}

impl AlertRule {
    /// Whether the rule watches `service` (as shown: `name` or `agent/name`).
    pub fn watches(&self, service: &str) -> bool {
        self.services.is_empty()
            || self
                .services
                .iter()
                .any(|p| crate::config::glob(p, service))
    }
}
