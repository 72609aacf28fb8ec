use std::time::{Duration, Instant};

use mcpvisor_model::env::MapEnv;
use mcpvisor_model::{resolve_service, ServiceName};
use proptest::prelude::*;
use serde_json::json;

use super::*;
use ServiceState as S;

fn id(name: &str) -> ServiceId {
    ServiceId::global(ServiceName::parse(name).expect("valid name"))
}

fn spec(name: &str, deps: &[&str]) -> ServiceSpec {
    spec_with(name, deps, json!({}))
}

/// A spec with `extra` fields (`start`, `idle_stop`, ...).
fn spec_with(name: &str, deps: &[&str], extra: serde_json::Value) -> ServiceSpec {
    let mut raw = json!({"command": "x", "depends_on": deps});
    if let (Some(o), Some(e)) = (raw.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    let raw = raw.as_object().cloned().unwrap_or_default();
    resolve_service(
        name,
        &raw,
        &Default::default(),
        &Default::default(),
        &MapEnv::default(),
    )
    .expect("valid spec")
}

fn starts(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Start(id) => Some(id.name.to_string()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_dependent_waits_with_a_structured_blocker_and_starts_once_its_dependency_is_up() {
    let mut f = Fleet::default();
    let now = Instant::now();
    f.insert(id("db"), &spec("db", &[]), true, false);
    f.insert(id("app"), &spec("app", &["db"]), true, false);
    let a = f.evaluate(now);
    assert_eq!(starts(&a), ["db"]);
    let app = f.get(&id("app")).unwrap();
    assert_eq!(
        app.blocked_by,
        [Blocker {
            service: "db".into(),
            state: S::NotStarted
        }]
    );
    assert_eq!(app.row.reason, "waiting for db (not_started)");
    // Same state, new reason: a reason observation, never a transition to itself.
    assert!(a.iter().all(|x| !matches!(
        x,
        Action::Observed(_, Observation::Transition { from, to, .. }) if from == to
    )));
    f.observe(&id("db"), S::Starting, "start".into(), now);
    assert!(starts(&f.evaluate(now)).is_empty());
    assert_eq!(
        f.get(&id("app")).unwrap().row.reason,
        "waiting for db (starting)"
    );
    f.observe(&id("db"), S::Healthy, "up".into(), now);
    assert_eq!(starts(&f.evaluate(now)), ["app"]);
    assert!(f.get(&id("app")).unwrap().blocked_by.is_empty());
}

#[test]
fn a_panicking_actor_is_respawned_within_its_intensity_then_failed_until_started() {
    let mut f = Fleet::default();
    let now = Instant::now();
    f.insert(id("svc"), &spec("svc", &[]), true, false);
    f.evaluate(now);
    // Default intensity: 5 restarts within 60 s.
    for i in 0..5 {
        let a = f.actor_down(&id("svc"), "panicked", now);
        assert!(a.contains(&Action::Respawn(id("svc"))), "down {i}: {a:?}");
        let a = f.actor_up(&id("svc"), now);
        assert_eq!(starts(&a), ["svc"]);
    }
    let a = f.actor_down(&id("svc"), "panicked", now);
    assert!(!a.contains(&Action::Respawn(id("svc"))));
    assert_eq!(f.state(&id("svc")), S::Failed);
    // A start by hand revives it with a fresh window.
    f.want(&id("svc"), true, now);
    assert!(!f.get(&id("svc")).unwrap().alive);
    let a = f.actor_up(&id("svc"), now);
    assert_eq!(starts(&a), ["svc"]);
    let a = f.actor_down(&id("svc"), "panicked", now + Duration::from_secs(1));
    assert!(a.contains(&Action::Respawn(id("svc"))));
}

#[test]
fn nothing_starts_once_shutdown_began_and_a_stopped_actor_is_not_respawned() {
    let mut f = Fleet::default();
    let now = Instant::now();
    f.insert(id("svc"), &spec("svc", &[]), true, false);
    f.shutting_down = true;
    assert!(f.evaluate(now).is_empty());
    assert!(f.actor_down(&id("svc"), "stopped", now).is_empty());
}

#[test]
fn settled_means_up_failed_once_not_wanted_or_held_back_by_a_settled_dependency() {
    let mut f = Fleet::default();
    let now = Instant::now();
    f.insert(id("db"), &spec("db", &[]), true, false);
    f.insert(id("api"), &spec("api", &["db"]), true, false);
    f.insert(id("off"), &spec("off", &[]), false, false);
    let none = std::collections::HashSet::new();
    f.evaluate(now);
    assert_eq!(f.settled(&none), [id("off")].into());
    f.observe(&id("db"), S::Starting, "start".into(), now);
    f.evaluate(now);
    assert!(!f.settled(&none).contains(&id("api")));
    // db fails once: db has an outcome, and so has api, held back by it.
    f.observe(&id("db"), S::Reconnecting, "exit 1".into(), now);
    f.evaluate(now);
    let done = f.settled(&none);
    assert!(
        done.contains(&id("db")) && done.contains(&id("api")),
        "{done:?}"
    );
    // db up: api starts, and is not settled until it is up or fails.
    f.observe(&id("db"), S::Healthy, "up".into(), now);
    assert_eq!(starts(&f.evaluate(now)), ["api"]);
    f.observe(&id("api"), S::Starting, "start".into(), now);
    assert!(!f.settled(&none).contains(&id("api")));
    // Stopped is no outcome for a service just asked to start.
    f.observe(&id("db"), S::Stopped, "stopped".into(), now);
    assert!(f.settled(&none).contains(&id("db")));
    assert!(!f.settled(&[id("db")].into()).contains(&id("db")));
}

fn wakes(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Wake(id) => Some(id.name.to_string()),
            _ => None,
        })
        .collect()
}

fn idle_stops(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::IdleStop(id) => Some(id.name.to_string()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_lazy_service_with_known_tools_is_idle_until_a_call_demands_it_once() {
    let mut f = Fleet::default();
    let now = Instant::now();
    f.insert(
        id("svc"),
        &spec_with("svc", &[], json!({"start": "lazy"})),
        true,
        true,
    );
    assert_eq!(f.state(&id("svc")), S::Idle);
    assert!(f.evaluate(now).is_empty(), "nothing starts it but a call");
    assert!(f.settled(&HashSet::new()).contains(&id("svc")));
    let wait = f.demand(&id("svc"));
    assert_eq!(wait, Some(Duration::from_secs(30)), "its timeouts.connect");
    assert_eq!(wakes(&f.evaluate(now)), ["svc"]);
    // A second call while it starts: it is not started again.
    assert!(f.demand(&id("svc")).is_some());
    assert!(f.evaluate(now).is_empty());
    // An eager service without idle_stop is never started by a call.
    f.insert(id("eager"), &spec("eager", &[]), true, false);
    assert_eq!(f.demand(&id("eager")), None);
}

#[test]
fn a_lazy_service_without_known_tools_is_started_to_learn_them_then_stopped_into_idle() {
    let mut f = Fleet::default();
    let now = Instant::now();
    f.insert(
        id("svc"),
        &spec_with("svc", &[], json!({"start": "lazy"})),
        true,
        false,
    );
    assert_eq!(starts(&f.evaluate(now)), ["svc"]);
    f.observe(&id("svc"), S::Starting, "start".into(), now);
    let a = f.observe(&id("svc"), S::Healthy, "up".into(), now);
    assert_eq!(idle_stops(&a), ["svc"]);
    f.observe(&id("svc"), S::Stopping, "stop requested".into(), now);
    assert_eq!(
        f.get(&id("svc")).unwrap().row.reason,
        "lazy: tools learned: stopping"
    );
    f.observe(&id("svc"), S::Stopped, "stopped".into(), now);
    assert_eq!(f.state(&id("svc")), S::Idle);
    assert_eq!(
        f.get(&id("svc")).unwrap().row.reason,
        "lazy: tools learned; the next call starts it"
    );
}

#[test]
fn an_idle_stop_is_refused_while_a_dependent_runs_and_a_demand_starts_dependencies_first() {
    let mut f = Fleet::default();
    let now = Instant::now();
    let idle = json!({"idle_stop": "10m"});
    f.insert(id("db"), &spec_with("db", &[], idle.clone()), true, false);
    f.insert(id("app"), &spec_with("app", &["db"], idle), true, false);
    assert_eq!(starts(&f.evaluate(now)), ["db"]);
    f.observe(&id("db"), S::Healthy, "up".into(), now);
    assert_eq!(starts(&f.evaluate(now)), ["app"]);
    f.observe(&id("app"), S::Healthy, "up".into(), now);
    assert!(f.idle_due(&id("db")).is_empty(), "app runs on it");
    assert_eq!(idle_stops(&f.idle_due(&id("app"))), ["app"]);
    f.observe(&id("app"), S::Stopping, "stop requested".into(), now);
    f.observe(&id("app"), S::Stopped, "stopped".into(), now);
    assert_eq!(f.state(&id("app")), S::Idle);
    assert!(f
        .get(&id("app"))
        .unwrap()
        .row
        .reason
        .contains("no calls for 10m (idle_stop)"));
    assert_eq!(idle_stops(&f.idle_due(&id("db"))), ["db"]);
    f.observe(&id("db"), S::Stopped, "stopped".into(), now);
    assert_eq!(f.state(&id("db")), S::Idle);
    // A call to app: db is unparked with it, and starts first; the wait covers both.
    assert_eq!(f.demand(&id("app")), Some(Duration::from_secs(60)));
    let a = f.evaluate(now);
    assert_eq!(wakes(&a), ["db"], "app waits for db");
    f.observe(&id("db"), S::Healthy, "up".into(), now);
    assert_eq!(wakes(&f.evaluate(now)), ["app"]);
}

#[test]
fn an_eager_dependent_starts_its_lazy_dependency() {
    let mut f = Fleet::default();
    let now = Instant::now();
    f.insert(
        id("db"),
        &spec_with("db", &[], json!({"start": "lazy"})),
        true,
        true,
    );
    f.insert(id("app"), &spec("app", &["db"]), true, false);
    let a = f.evaluate(now);
    assert_eq!(wakes(&a), ["db"]);
    assert!(starts(&a).is_empty());
}

#[test]
fn a_stop_by_hand_of_an_idle_service_makes_it_stopped_and_calls_no_longer_start_it() {
    let mut f = Fleet::default();
    let now = Instant::now();
    f.insert(
        id("svc"),
        &spec_with("svc", &[], json!({"start": "lazy"})),
        true,
        true,
    );
    f.want(&id("svc"), false, now);
    assert_eq!(f.state(&id("svc")), S::Stopped);
    assert_eq!(f.demand(&id("svc")), None);
    // A start by hand starts it (a plain start, not a wake).
    f.want(&id("svc"), true, now);
    assert_eq!(starts(&f.evaluate(now)), ["svc"]);
}

#[test]
fn a_call_during_an_idle_stop_waits_for_idle_then_a_wake_and_shutdown_or_respec_end_parking() {
    let mut f = Fleet::default();
    let now = Instant::now();
    f.insert(
        id("svc"),
        &spec_with("svc", &[], json!({"idle_stop": "1m"})),
        true,
        false,
    );
    assert_eq!(starts(&f.evaluate(now)), ["svc"]);
    f.observe(&id("svc"), S::Healthy, "up".into(), now);
    assert_eq!(idle_stops(&f.idle_due(&id("svc"))), ["svc"]);
    f.observe(&id("svc"), S::Stopping, "stop requested".into(), now);
    // A call now: woken, and the stop under way still ends in `idle` (not a real `stopped`).
    assert!(f.demand(&id("svc")).is_some());
    assert_eq!(wakes(&f.evaluate(now)), ["svc"]);
    f.observe(&id("svc"), S::Stopped, "stopped".into(), now);
    assert_eq!(f.state(&id("svc")), S::Idle);
    // No longer on demand: a parked service runs like any other.
    f.observe(&id("svc"), S::Healthy, "up".into(), now);
    assert_eq!(idle_stops(&f.idle_due(&id("svc"))), ["svc"]);
    f.observe(&id("svc"), S::Stopped, "stopped".into(), now);
    f.respec(&id("svc"), &spec("svc", &[]));
    assert_eq!(starts(&f.evaluate(now)), ["svc"]);
    // Shutting down: calls start nothing (and do not wait for it).
    f.shutting_down = true;
    assert_eq!(f.demand(&id("svc")), None);
}

#[derive(Debug, Clone)]
enum Op {
    Report(usize, u8),
    Want(usize, bool),
    Down(usize),
    Up(usize),
    Wait(u16),
    Demand(usize),
    IdleDue(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0usize..4, 0u8..10).prop_map(|(i, s)| Op::Report(i, s)),
        (0usize..4).prop_map(Op::Demand),
        (0usize..4).prop_map(Op::IdleDue),
        (0usize..4, any::<bool>()).prop_map(|(i, w)| Op::Want(i, w)),
        (0usize..4).prop_map(Op::Down),
        (0usize..4).prop_map(Op::Up),
        (0u16..20_000).prop_map(Op::Wait),
    ]
}

const STATES: [S; 10] = [
    S::NotStarted,
    S::Starting,
    S::Healthy,
    S::Warning,
    S::Reconnecting,
    S::Unreachable,
    S::Stopping,
    S::Stopped,
    S::Failed,
    S::Idle,
];

proptest! {
    /// Over any sequence of inputs, some services lazy or idle-stopping: no service is
    /// started (or woken) while a dependency does not meet its condition; none is
    /// idle-stopped while a dependent runs; no transition from a state to itself; `failed` by
    /// actor deaths only after more than `max_restarts` of them within the window.
    #[test]
    fn the_fleet_keeps_its_invariants(
        deps in proptest::collection::vec(proptest::collection::vec(any::<bool>(), 4), 4),
        modes in proptest::collection::vec((any::<bool>(), any::<bool>(), any::<bool>()), 4),
        ops in proptest::collection::vec(op(), 1..120),
    ) {
        let names = ["a", "b", "c", "d"];
        let mut f = Fleet::default();
        let mut now = Instant::now();
        for (i, n) in names.iter().enumerate() {
            // Only on earlier services: no cycles.
            let d: Vec<&str> = (0..i).filter(|j| deps[i][*j]).map(|j| names[j]).collect();
            let (lazy, idle, known) = modes[i];
            let mut extra = serde_json::Map::new();
            if lazy { extra.insert("start".into(), json!("lazy")); }
            if idle { extra.insert("idle_stop".into(), json!("1m")); }
            f.insert(id(n), &spec_with(n, &d, serde_json::Value::Object(extra)), true, known);
        }
        let mut downs: Vec<Vec<Instant>> = vec![Vec::new(); 4];
        let mut actions = f.evaluate(now);
        for o in ops {
            let mut check_failed = None;
            match o {
                Op::Report(i, s) => {
                    actions.extend(f.observe(&id(names[i]), STATES[s as usize], "r".into(), now));
                    actions.extend(f.evaluate(now));
                }
                Op::Want(i, w) => {
                    if w && f.get(&id(names[i])).is_some_and(|m| !m.alive) { downs[i].clear(); }
                    actions.extend(f.want(&id(names[i]), w, now));
                    actions.extend(f.evaluate(now));
                }
                Op::Down(i) => {
                    if f.get(&id(names[i])).is_some_and(|m| m.alive) {
                        downs[i].push(now);
                        check_failed = Some(i);
                        actions.extend(f.actor_down(&id(names[i]), "panicked", now));
                    }
                }
                Op::Up(i) => {
                    if f.get(&id(names[i])).is_some_and(|m| !m.alive) {
                        actions.extend(f.actor_up(&id(names[i]), now));
                    }
                }
                Op::Wait(ms) => now += Duration::from_millis(u64::from(ms)),
                Op::Demand(i) => {
                    let _ = f.demand(&id(names[i]));
                    actions.extend(f.evaluate(now));
                }
                Op::IdleDue(i) => actions.extend(f.idle_due(&id(names[i]))),
            }
            for a in actions.drain(..) {
                match a {
                    Action::IdleStop(s) => {
                        for (d, m) in f.iter() {
                            let runs = matches!(m.row.state, S::Starting | S::Healthy | S::Warning | S::Reconnecting | S::Unreachable);
                            prop_assert!(!(runs && m.deps.iter().any(|(x, _)| *x == s)),
                                "{} idle-stopped while {} ({}) runs on it", s, d, m.row.state);
                        }
                    }
                    Action::Start(s) | Action::Wake(s) => {
                        for (d, cond) in &f.get(&s).unwrap().deps {
                            prop_assert!(meets(f.state(d), *cond),
                                "{} started while {} is {}", s, d, f.state(d));
                        }
                    }
                    Action::Observed(s, Observation::Transition { from, to, .. }) => {
                        prop_assert_ne!(from, to, "{} transition to itself", s);
                        if let (S::Failed, Some(i)) = (to, check_failed) {
                            let within = Duration::from_secs(60);
                            let recent = downs[i].iter().filter(|t| now.duration_since(**t) < within).count();
                            prop_assert!(recent > 5, "failed after {recent} deaths in the window");
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}
