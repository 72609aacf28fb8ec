//! Waiting for services to settle: come up, or fail at least once, or be held back for good.
//!
//! Commands that start services (`run`'s start-up view, one-shots, `add`, `start`) wait until
//! each service they care about has *settled*: it is up (`healthy`/`warning`), or it has
//! failed at least once (`reconnecting`, `unreachable`, `failed`), or it is not going to start
//! (disabled, or waiting for a dependency that has settled without coming up). Waiting for
//! "healthy" alone would hang until the deadline on a broken server; waiting for a settled
//! state answers as soon as the outcome is known. Every wait has a deadline.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use mcpvisor_model::{Event, ServiceState, ServicesConfig};
use mcpvisor_supervisor::{EventStream, ServiceView, Store, StoreError};
use tokio::time::Instant;

/// How often the views are re-read even when no event arrives.
const POLL: Duration = Duration::from_millis(200);

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

/// The names among `views` that have settled. A service in `expect_running` that is
/// `stopped` has not settled yet (it was just asked to start).
pub fn settled(
    views: &[ServiceView],
    infos: &HashMap<String, SpecInfo>,
    expect_running: &HashSet<String>,
) -> HashSet<String> {
    let by_name: HashMap<&str, &ServiceView> = views.iter().map(|v| (v.name.as_str(), v)).collect();
    let mut done: HashSet<String> = HashSet::new();
    // A fixed point: a dependent settles once a dependency settled without coming up. Each
    // round settles at least one more service or stops, so it ends within views.len() rounds.
    for _ in 0..=views.len() {
        let mut changed = false;
        for v in views {
            if done.contains(&v.name) {
                continue;
            }
            let info = infos.get(&v.name).cloned().unwrap_or_default();
            let now = match v.state {
                ServiceState::Healthy
                | ServiceState::Warning
                | ServiceState::Reconnecting
                | ServiceState::Unreachable
                | ServiceState::Failed => true,
                // Asked to start: settled once it moved, or if a dependency holds it back.
                ServiceState::Stopped => {
                    !expect_running.contains(&v.name) || held_back(&info, &done, &by_name)
                }
                ServiceState::Starting | ServiceState::Stopping => false,
                ServiceState::NotStarted => {
                    info.disabled
                        || (v.reason.starts_with("waiting for")
                            && held_back(&info, &done, &by_name))
                }
            };
            if now {
                done.insert(v.name.clone());
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    done
}

/// Whether a dependency of the service has settled without coming up.
fn held_back(
    info: &SpecInfo,
    done: &HashSet<String>,
    by_name: &HashMap<&str, &ServiceView>,
) -> bool {
    info.deps
        .iter()
        .any(|d| done.contains(d) && by_name.get(d.as_str()).is_some_and(|dv| !dv.state.is_up()))
}

/// Where a wait stands, for progress displays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// Services waited for.
    pub total: usize,
    /// Of those, how many are up.
    pub up: usize,
    /// Of those, how many have settled.
    pub settled: usize,
    /// Names not settled yet.
    pub pending: Vec<String>,
}

impl Progress {
    /// "2/3 healthy" and what is still pending.
    pub fn line(&self) -> String {
        let mut s = format!("{}/{} healthy", self.up, self.total);
        if !self.pending.is_empty() {
            s.push_str(&format!(" (waiting for {})", self.pending.join(", ")));
        }
        s
    }
}

/// Waits until every service of `names` (every service when `None`) has settled, or until
/// `deadline`; returns the last views of those services (a name not registered yet has no
/// view). `progress` is called whenever the picture changes.
pub async fn wait_settled(
    store: &Store,
    names: Option<&[String]>,
    expect_running: bool,
    deadline: Instant,
    mut progress: impl FnMut(&Progress, &[ServiceView]),
) -> Result<Vec<ServiceView>, StoreError> {
    let all = store.all_scopes();
    let mut events = all.subscribe().await.ok();
    let infos = spec_infos(&all.config().await?);
    let mut last: Option<Progress> = None;
    loop {
        let views = all.list_services().await?;
        let wanted: Vec<String> = match names {
            Some(n) => n.to_vec(),
            None => views.iter().map(|v| v.name.clone()).collect(),
        };
        let expect: HashSet<String> = if expect_running {
            wanted.iter().cloned().collect()
        } else {
            HashSet::new()
        };
        let done = settled(&views, &infos, &expect);
        let mine: Vec<ServiceView> = views
            .into_iter()
            .filter(|v| wanted.contains(&v.name))
            .collect();
        let p = Progress {
            total: wanted.len(),
            up: mine.iter().filter(|v| v.state.is_up()).count(),
            settled: wanted.iter().filter(|n| done.contains(*n)).count(),
            pending: wanted
                .iter()
                .filter(|n| !done.contains(*n))
                .cloned()
                .collect(),
        };
        if last.as_ref() != Some(&p) {
            progress(&p, &mine);
            last = Some(p.clone());
        }
        if p.pending.is_empty() || Instant::now() >= deadline {
            return Ok(mine);
        }
        wake(&mut events, deadline).await;
    }
}

/// Returns at the next event, after [`POLL`], or at `deadline`, whichever comes first.
async fn wake(events: &mut Option<EventStream>, deadline: Instant) {
    let until = (Instant::now() + POLL).min(deadline);
    match events {
        Some(stream) => {
            tokio::select! {
                e = stream.next() => {
                    if e.is_none() {
                        // The registry was replaced: fall back to polling.
                        *events = None;
                    }
                }
                _ = tokio::time::sleep_until(until) => {}
            }
        }
        None => tokio::time::sleep_until(until).await,
    }
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

    fn view(name: &str, state: ServiceState, reason: &str) -> ServiceView {
        serde_json::from_value(serde_json::json!({
            "id": {"name": name}, "name": name, "state": state, "reason": reason,
            "transport": "stdio", "tools": 0, "tools_stale": false, "restarts": 0,
            "pid": null, "last_error": null, "config": {}, "server": null,
            "metrics": serde_json::to_value(mcpvisor_model::MetricsSnapshot::default()).unwrap(),
            "state_for_ms": 0
        }))
        .unwrap()
    }

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
    fn up_or_failed_once_is_settled_starting_is_not() {
        let views = [
            view("db", ServiceState::Healthy, ""),
            view("api", ServiceState::Starting, ""),
            view("off", ServiceState::NotStarted, "disabled"),
        ];
        let done = settled(&views, &infos(), &HashSet::new());
        assert!(done.contains("db") && done.contains("off"));
        assert!(!done.contains("api"));
        let views = [view("api", ServiceState::Reconnecting, "exit 1")];
        assert!(settled(&views, &infos(), &HashSet::new()).contains("api"));
    }

    #[test]
    fn a_dependent_settles_once_its_dependency_settled_down() {
        let waiting = view(
            "api",
            ServiceState::NotStarted,
            "waiting for db (reconnecting)",
        );
        let done = settled(
            &[
                view("db", ServiceState::Reconnecting, "exit 1"),
                waiting.clone(),
            ],
            &infos(),
            &HashSet::new(),
        );
        assert!(done.contains("api"));
        // Its dependency came up an instant ago: the dependent is about to start.
        let done = settled(
            &[view("db", ServiceState::Healthy, ""), waiting],
            &infos(),
            &HashSet::new(),
        );
        assert!(!done.contains("api"));
        // Just registered, not started yet.
        let fresh = [view("db", ServiceState::NotStarted, "registered")];
        assert!(settled(&fresh, &infos(), &HashSet::new()).is_empty());
    }

    #[test]
    fn stopped_is_not_settled_for_a_service_just_asked_to_start() {
        let views = [view("db", ServiceState::Stopped, "stopped")];
        assert!(settled(&views, &infos(), &HashSet::new()).contains("db"));
        let expect: HashSet<String> = ["db".to_owned()].into();
        assert!(settled(&views, &infos(), &expect).is_empty());
        // ... unless a stopped dependency holds it back.
        let views = [
            view("db", ServiceState::Stopped, "stopped"),
            view("api", ServiceState::Stopped, "stopped"),
        ];
        let expect: HashSet<String> = ["api".to_owned()].into();
        assert!(settled(&views, &infos(), &expect).contains("api"));
    }

    #[test]
    fn dependencies_are_followed_transitively() {
        let mut n = with_dependencies(&["api".into()], &infos());
        n.sort();
        assert_eq!(n, ["api", "db"]);
    }
}
