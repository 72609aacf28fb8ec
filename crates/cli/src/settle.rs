//! Waiting for services to settle, for the commands that start services (`run`'s start-up
//! view, one-shots, `add`, `start`): what *settled* means is the supervisor's to decide
//! (`Store::wait_settled`, from the fleet core's structured blockers); this module only picks
//! which services a command waits for and for how long.

use std::collections::HashMap;
use std::time::Duration;

use mcpvisor_model::{Event, ServiceState, ServicesConfig};
pub use mcpvisor_supervisor::Progress;
use mcpvisor_supervisor::{ServiceView, Store, StoreError};
use tokio::time::Instant;

/// What settling needs to know of a service's config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpecInfo {
    /// Registered but never started.
    pub disabled: bool,
    /// Its dependencies, by display name (`name` or `agent/name`).
    pub deps: Vec<String>,
    /// Its connect timeout.
    pub connect: Duration,
}

/// [`SpecInfo`] of every service of `config`, by display name.
pub fn spec_infos(config: &ServicesConfig) -> HashMap<String, SpecInfo> {
    let mut out = HashMap::new();
    for s in config.services.values() {
        out.insert(
            s.name.to_string(),
            SpecInfo {
                disabled: s.config.disabled,
                deps: s
                    .config
                    .depends_on
                    .iter()
                    .map(|d| d.name.to_string())
                    .collect(),
                connect: s.config.timeouts.connect,
            },
        );
    }
    for (agent, a) in &config.agents {
        for s in a.services.values() {
            out.insert(
                format!("{agent}/{}", s.name),
                SpecInfo {
                    disabled: s.config.disabled,
                    deps: s
                        .config
                        .depends_on
                        .iter()
                        .map(|d| format!("{agent}/{}", d.name))
                        .collect(),
                    connect: s.config.timeouts.connect,
                },
            );
        }
    }
    out
}

/// Display names of `names` and everything they depend on, transitively.
pub fn with_dependencies(names: &[String], infos: &HashMap<String, SpecInfo>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut todo: Vec<String> = names.to_vec();
    // Each name is expanded once, so this ends after at most `infos.len()` expansions.
    while let Some(n) = todo.pop() {
        if out.contains(&n) {
            continue;
        }
        if let Some(i) = infos.get(&n) {
            todo.extend(i.deps.iter().cloned());
        }
        out.push(n);
    }
    out
}

/// Waits until every service of `names` (every service when `None`) has settled, or until
/// `deadline`; returns the last views of those services (a name not registered yet has no
/// view). `progress` is called whenever the picture changes.
pub async fn wait_settled(
    store: &Store,
    names: Option<&[String]>,
    expect_running: bool,
    deadline: Instant,
    progress: impl FnMut(&Progress, &[ServiceView]),
) -> Result<Vec<ServiceView>, StoreError> {
    let timeout = deadline.saturating_duration_since(Instant::now());
    store
        .all_scopes()
        .wait_settled(names, expect_running, timeout, progress)
        .await
}

/// The deadline for services to come up: the longest connect timeout among `names` (all when
/// `None`) plus a margin, at most `cap`.
pub fn connect_deadline(
    infos: &HashMap<String, SpecInfo>,
    names: Option<&[String]>,
    cap: Duration,
) -> Instant {
    let longest = infos
        .iter()
        .filter(|(n, _)| names.is_none_or(|ns| ns.contains(n)))
        .map(|(_, i)| i.connect)
        .max()
        .unwrap_or(mcpvisor_model::defaults::TIMEOUT_CONNECT);
    Instant::now() + (longest + Duration::from_secs(5)).min(cap)
}

/// Whether an event is a state transition into a state worth telling at once.
pub fn is_trouble(e: &Event) -> bool {
    matches!(
        e,
        Event::StateChanged {
            to: ServiceState::Reconnecting | ServiceState::Unreachable | ServiceState::Failed,
            ..
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcpvisor_model::env::MapEnv;
    use mcpvisor_model::parse_str;

    fn infos() -> HashMap<String, SpecInfo> {
        let cfg = parse_str(
            r#"{"mcpServers": {
                "db": {"command": "x"},
                "api": {"command": "x", "depends_on": ["db"]},
                "off": {"command": "x", "disabled": true}
            }}"#,
            &MapEnv::default(),
        )
        .unwrap();
        spec_infos(&cfg)
    }

    #[test]
    fn dependencies_are_followed_transitively() {
        let mut n = with_dependencies(&["api".into()], &infos());
        n.sort();
        assert_eq!(n, ["api", "db"]);
    }
}
