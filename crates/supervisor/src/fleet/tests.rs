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
    let raw = json!({"command": "x", "depends_on": deps})
        .as_object()
        .cloned()
        .unwrap_or_default();
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
    f.insert(id("db"), &spec("db", &[]), true);
    f.insert(id("app"), &spec("app", &["db"]), true);
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
    f.insert(id("svc"), &spec("svc", &[]), true);
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
    f.want(&id("svc"), true);
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
    f.insert(id("svc"), &spec("svc", &[]), true);
    f.shutting_down = true;
    assert!(f.evaluate(now).is_empty());
    assert!(f.actor_down(&id("svc"), "stopped", now).is_empty());
}

#[test]
fn settled_means_up_failed_once_not_wanted_or_held_back_by_a_settled_dependency() {
    let mut f = Fleet::default();
    let now = Instant::now();
    f.insert(id("db"), &spec("db", &[]), true);
    f.insert(id("api"), &spec("api", &["db"]), true);
    f.insert(id("off"), &spec("off", &[]), false);
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

#[derive(Debug, Clone)]
enum Op {
    Report(usize, u8),
    Want(usize, bool),
    Down(usize),
    Up(usize),
    Wait(u16),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0usize..4, 0u8..9).prop_map(|(i, s)| Op::Report(i, s)),
        (0usize..4, any::<bool>()).prop_map(|(i, w)| Op::Want(i, w)),
        (0usize..4).prop_map(Op::Down),
        (0usize..4).prop_map(Op::Up),
        (0u16..20_000).prop_map(Op::Wait),
    ]
}

const STATES: [S; 9] = [
    S::NotStarted,
    S::Starting,
    S::Healthy,
    S::Warning,
    S::Reconnecting,
    S::Unreachable,
    S::Stopping,
    S::Stopped,
    S::Failed,
];

proptest! {
    /// Over any sequence of inputs: no service is started while a dependency does not meet
    /// its condition; no transition from a state to itself; `failed` by actor deaths only
    /// after more than `max_restarts` of them within the window.
    #[test]
    fn the_fleet_keeps_its_invariants(
        deps in proptest::collection::vec(proptest::collection::vec(any::<bool>(), 4), 4),
        ops in proptest::collection::vec(op(), 1..120),
    ) {
        let names = ["a", "b", "c", "d"];
        let mut f = Fleet::default();
        let mut now = Instant::now();
        for (i, n) in names.iter().enumerate() {
            // Only on earlier services: no cycles.
            let d: Vec<&str> = (0..i).filter(|j| deps[i][*j]).map(|j| names[j]).collect();
            f.insert(id(n), &spec(n, &d), true);
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
                    f.want(&id(names[i]), w);
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
            }
            for a in actions.drain(..) {
                match a {
                    Action::Start(s) => {
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
