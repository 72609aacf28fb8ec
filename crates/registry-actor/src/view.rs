//! What the registry answers with: scopes, service and tool views, lookup errors.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use mcpvisor_model::{
    AgentId, MetricsSnapshot, ServerInfo, ServiceId, ServiceState, ToolInfo, TransportKind,
};

/// Which services a query sees, and how it names them.
///
/// A name looked up in one scope never finds a service of another scope.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// The store's own services (those without an agent), by their names.
    Store,
    /// One agent's services only, by their local names (tools as `local__tool`).
    Agent(AgentId),
    /// Every service, named by its display id (`name` or `agent/name`); for status listings.
    All,
}

impl Scope {
    /// Whether `id` belongs to this scope.
    pub fn contains(&self, id: &ServiceId) -> bool {
        match self {
            Scope::Store => id.agent.is_none(),
            Scope::Agent(a) => id.agent.as_ref() == Some(a),
            Scope::All => true,
        }
    }

    /// The name `id` goes by in this scope: its local name, or its display id in [`Scope::All`].
    pub fn name_of(&self, id: &ServiceId) -> String {
        match self {
            Scope::All => id.to_string(),
            Scope::Store | Scope::Agent(_) => id.name.to_string(),
        }
    }
}

/// A summary of one service, as listings and `get_service_info` show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceView {
    /// The service's identity.
    pub id: ServiceId,
    /// Its name in the scope asked about (`name`, or `agent/name` in [`Scope::All`]).
    pub name: String,
    /// Its state.
    pub state: ServiceState,
    /// Why it is in that state.
    pub reason: String,
    /// How mcpvisor talks to it.
    pub transport: TransportKind,
    /// How many tools it offers.
    pub tools: usize,
    /// Whether the tools are last-known ones not yet confirmed by the live server.
    pub tools_stale: bool,
    /// Re-establishments of the process or connection after the first.
    pub restarts: u64,
    /// The child's process id (stdio services that are running).
    pub pid: Option<u32>,
    /// What of its sandbox applies to the running server: per part, its limit and what
    /// enforces it (`landlock`, `cgroup v1`, `cgroup v2`, `rlimit`), and what this machine
    /// could not give (`missing`, with `best_effort`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<Value>,
    /// The reason of the last transition to `reconnecting`, `unreachable` or `failed`.
    pub last_error: Option<String>,
    /// Its config as written, with `env` and `headers` values redacted.
    pub config: Map<String, Value>,
    /// The server's identity from `initialize`, once connected.
    pub server: Option<ServerInfo>,
    /// The last lines of its stderr (up to [`STDERR_TAIL_LINES`]); filled only by `Get`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stderr_tail: Vec<String>,
    /// Its counters and latencies.
    pub metrics: MetricsSnapshot,
    /// Milliseconds spent in the current state.
    pub state_for_ms: u64,
    /// Calls start it (`start: lazy` or an `idle_stop`): while `idle` — and on its way up or
    /// down between calls — its tools stay listed.
    #[serde(default)]
    pub on_demand: bool,
}

/// Lines of stderr a `Get` view carries.
pub const STDERR_TAIL_LINES: usize = 20;

/// One tool as `list_tools` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolEntry {
    /// The namespaced name to call it by (`service__tool`, shortened if over 64 characters).
    pub name: String,
    /// The service offering it.
    pub service: ServiceId,
    /// The tool as the server lists it (its own name in `tool.name`).
    pub tool: ToolInfo,
    /// Whether it is a last-known tool not yet confirmed by the live server.
    pub stale: bool,
}

/// Where a tool call goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolTarget {
    /// The service offering the tool.
    pub service: ServiceId,
    /// The server's own name for the tool.
    pub tool: String,
    /// The service's state now (a call to a service that is not up should fail fast naming it).
    pub state: ServiceState,
}

/// A name that does not resolve in the scope asked about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LookupError {
    /// No service of that name in this scope.
    #[error("no service named {name:?}{}; list services to see every name", did_you_mean(.suggestions))]
    UnknownService {
        /// The name asked for.
        name: String,
        /// Up to 3 close names.
        suggestions: Vec<String>,
    },
    /// No tool of that name in this scope.
    #[error("no tool named {name:?}{}; list tools to see every name", did_you_mean(.suggestions))]
    UnknownTool {
        /// The name asked for.
        name: String,
        /// Up to 3 close names (namespaced or bare).
        suggestions: Vec<String>,
    },
    /// A namespaced tool name of a service that is not connected, so its tools are not known.
    #[error("service {service:?} is {state}{}: its tools are not known until it connects", reason_suffix(.reason))]
    ServiceNotUp {
        /// The service.
        service: String,
        /// Its state.
        state: ServiceState,
        /// Why (the state's reason, e.g. the last connection error).
        reason: String,
    },
    /// A bare tool name offered by several services.
    #[error("the tool name {name:?} is offered by several services; call it by one of: {}", .candidates.join(", "))]
    AmbiguousTool {
        /// The name asked for.
        name: String,
        /// The namespaced names to use instead.
        candidates: Vec<String>,
    },
}

fn reason_suffix(reason: &str) -> String {
    if reason.is_empty() {
        String::new()
    } else {
        format!(" ({reason})")
    }
}

fn did_you_mean(suggestions: &[String]) -> String {
    if suggestions.is_empty() {
        String::new()
    } else {
        format!(" (did you mean {}?)", suggestions.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_errors_name_the_thing_and_the_way_out() {
        let e = LookupError::UnknownTool {
            name: "eccho".into(),
            suggestions: vec!["echo".into(), "a__echo".into()],
        };
        assert_eq!(
            e.to_string(),
            "no tool named \"eccho\" (did you mean echo, a__echo?); list tools to see every name"
        );
        let e = LookupError::AmbiguousTool {
            name: "echo".into(),
            candidates: vec!["a__echo".into(), "b__echo".into()],
        };
        assert!(e.to_string().ends_with("one of: a__echo, b__echo"));
        let e = LookupError::UnknownService {
            name: "x".into(),
            suggestions: vec![],
        };
        assert_eq!(
            e.to_string(),
            "no service named \"x\"; list services to see every name"
        );
    }

    #[test]
    fn scope_names_are_local_except_in_all() {
        let a = AgentId::parse("bot").unwrap();
        let id = ServiceId::agent(a.clone(), mcpvisor_model::ServiceName::parse("db").unwrap());
        assert_eq!(Scope::Agent(a.clone()).name_of(&id), "db");
        assert_eq!(Scope::All.name_of(&id), "bot/db");
        assert!(Scope::Agent(a).contains(&id));
        assert!(!Scope::Store.contains(&id));
        assert!(Scope::All.contains(&id));
    }
}
