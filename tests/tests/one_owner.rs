//! One owner for the fleet's state (issue 9): subscriptions outlive actor respawns, a respawn
//! changes no state, reason or error and emits no transition from a state to itself, a
//! returned wait means every query agrees, several services are waited for together, and a
//! state dir has one owner.

use std::time::{Duration, Instant};

use mcpvisor_model::{Event, ServiceState};
use mcpvisor_supervisor::{EventStream, Store, StoreError, StoreOptions, Wait};
use mcpvisor_tests::{chaos_bin, deadline, eventually, kill_pid, pid_alive};
use serde_json::{json, Value};

use ServiceState as S;

const LONG: Duration = Duration::from_secs(20);

fn chaos(extra: &[&str]) -> Value {
    json!({
        "command": chaos_bin().to_string_lossy(),
        "args": extra,
        "health": {"interval": "200ms", "timeout": "500ms"},
        "backoff": {"initial": "20ms", "max": "200ms"},
        "timeouts": {"shutdown": "300ms"}
    })
}

async fn pid_of(store: &Store, name: &str) -> u32 {
    let end = Instant::now() + LONG;
    while Instant::now() < end {
        if let Some(pid) = store.get_service_info(name).await.ok().and_then(|v| v.pid) {
            return pid;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{name} has no pid")
}

/// Events until a transition of `name` into `to` (panics after `within`), all of them.
async fn events_until(events: &mut EventStream, within: Duration, name: &str, to: S) -> Vec<Event> {
    let end = Instant::now() + within;
    let mut seen = Vec::new();
    loop {
        let left = end.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, events.next()).await {
            Ok(Some(e)) => {
                let done = matches!(&e, Event::StateChanged { service, to: t, .. }
                    if service.to_string() == name && *t == to);
                seen.push(e);
                if done {
                    return seen;
                }
            }
            Ok(None) => panic!("the event stream ended; events so far: {seen:?}"),
            Err(_) => panic!("no transition of {name} to {to}; events so far: {seen:?}"),
        }
    }
}

fn same_state_transitions(events: &[Event]) -> Vec<&Event> {
    events
        .iter()
        .filter(|e| matches!(e, Event::StateChanged { from, to, .. } if from == to))
        .collect()
}

#[tokio::test]
async fn a_subscription_and_every_reason_survive_registry_and_persistence_respawns() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        StoreOptions::new()
            .config_file(dir.path().join("mcp.json"))
            .state_dir(dir.path().join("state")),
    )
    .await
    .unwrap();
    let mut events = store.subscribe().await.unwrap();
    store
        .add_service(json!({"mcpServers": {"svc": chaos(&[])}}), Wait::Auto)
        .await
        .unwrap();
    // One crash, so the service has a last error to keep.
    kill_pid(pid_of(&store, "svc").await);
    events_until(&mut events, LONG, "svc", S::Reconnecting).await;
    events_until(&mut events, LONG, "svc", S::Healthy).await;
    let before = store.get_service_info("svc").await.unwrap();
    assert!(before.last_error.is_some(), "{before:?}");

    store.inject_registry_death().unwrap();
    let back = eventually(LONG, || async { store.list_services().await.is_ok() }).await;
    assert!(back, "the registry did not come back");
    store.inject_persistence_death().unwrap();
    let after = deadline(LONG, "status", store.get_service_info("svc"))
        .await
        .unwrap();
    assert_eq!(
        (
            &after.reason,
            &after.last_error,
            after.state,
            after.restarts
        ),
        (
            &before.reason,
            &before.last_error,
            before.state,
            before.restarts
        ),
        "a respawn changed what status says"
    );

    // The same subscription sees the next crash, and nothing in between pretended a transition.
    kill_pid(pid_of(&store, "svc").await);
    let seen = events_until(&mut events, LONG, "svc", S::Reconnecting).await;
    assert!(
        same_state_transitions(&seen).is_empty(),
        "transitions from a state to itself: {seen:?}"
    );
    store.shutdown().await;
}

#[tokio::test]
async fn a_returned_wait_or_stop_means_every_query_agrees() {
    let store = Store::open(StoreOptions::new()).await.unwrap();
    store
        .add_service(
            json!({"name": "svc", "args": [], "command": chaos_bin().to_string_lossy()}),
            Wait::None,
        )
        .await
        .unwrap();
    for round in 0..10 {
        store.wait_for(&["svc"], S::Healthy, LONG).await.unwrap();
        let info = store.get_service_info("svc").await.unwrap();
        assert_eq!(
            info.state,
            S::Healthy,
            "round {round}: status behind wait_for"
        );
        assert!(!store.list_tools().await.unwrap().is_empty());
        store.stop_service("svc", false).await.unwrap();
        let listed = store.list_services().await.unwrap();
        assert_eq!(
            listed[0].state,
            S::Stopped,
            "round {round}: list behind stop_service"
        );
        assert_eq!(store.get_service_status("svc").await.unwrap(), S::Stopped);
        store.start_service("svc").await.unwrap();
    }
    store.shutdown().await;
}

#[tokio::test]
async fn several_services_are_waited_for_together_and_auto_uses_the_connect_timeout() {
    let store = Store::open(StoreOptions::new()).await.unwrap();
    // Three servers that take 5 s to start: waiting 600 ms for them must take ~600 ms, not 3x.
    let slow = chaos(&["--startup-delay-ms", "5000"]);
    let started = Instant::now();
    store
        .add_service(
            json!({"mcpServers": {"a": slow, "b": slow, "c": slow}}),
            Wait::For(Duration::from_millis(600)),
        )
        .await
        .unwrap();
    let took = started.elapsed();
    assert!(took < Duration::from_millis(1500), "add waited {took:?}");

    let started = Instant::now();
    let err = store
        .wait_for(&["a", "b", "c"], S::Healthy, Duration::from_millis(600))
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(1500),
        "wait_for waited {took:?}"
    );
    match err {
        StoreError::WaitTimeout { waiting } => assert_eq!(waiting.len(), 3, "{waiting:?}"),
        other => panic!("expected a wait timeout, got {other}"),
    }

    // Auto waits up to the service's own timeouts.connect (700 ms here), not a fixed 35 s.
    let mut auto = chaos(&["--startup-delay-ms", "5000"]);
    auto["timeouts"]["connect"] = json!("700ms");
    auto["name"] = json!("d");
    let started = Instant::now();
    store.add_service(auto, Wait::Auto).await.unwrap();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(650) && took < Duration::from_secs(3),
        "Auto waited {took:?}"
    );
    store.shutdown().await;
}

#[tokio::test]
async fn a_second_store_on_a_used_state_dir_is_refused_and_touches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let first = Store::open(StoreOptions::new().state_dir(&state))
        .await
        .unwrap();
    first
        .add_service(json!({"mcpServers": {"svc": chaos(&[])}}), Wait::Auto)
        .await
        .unwrap();
    let pid = pid_of(&first, "svc").await;
    let err = Store::open(StoreOptions::new().state_dir(&state))
        .await
        .expect_err("a second owner of the state dir");
    let text = err.to_string();
    assert!(
        text.contains(&state.display().to_string()) && text.contains("in use"),
        "unclear error: {text}"
    );
    assert!(
        pid_alive(pid),
        "the second open killed the first one's server"
    );
    let info = first.get_service_info("svc").await.unwrap();
    assert_eq!(
        (info.state, info.restarts, info.pid),
        (S::Healthy, 0, Some(pid))
    );
    first.shutdown().await;
    // Once the first owner is gone, the dir can be opened again.
    let again = Store::open(StoreOptions::new().state_dir(&state))
        .await
        .unwrap();
    again.shutdown().await;
}

#[tokio::test]
async fn a_server_no_record_names_is_still_found_and_reaped_by_the_next_owner() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    // A run that spawned this server and was SIGKILLed before writing its record: the only
    // trace is the mark in the server's environment (what every spawned server carries).
    let store = Store::open(StoreOptions::new().state_dir(&state))
        .await
        .unwrap();
    store
        .add_service(json!({"mcpServers": {"svc": chaos(&[])}}), Wait::Auto)
        .await
        .unwrap();
    let pid = pid_of(&store, "svc").await;
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let mark = format!(
        "MCPVISOR_OWNER={}",
        std::fs::canonicalize(&state).unwrap().display()
    );
    assert!(
        environ.split(|b| *b == 0).any(|kv| kv == mark.as_bytes()),
        "the server does not carry {mark}"
    );
    store.shutdown().await;

    use std::os::unix::process::CommandExt;
    let mut orphan = std::process::Command::new("sleep")
        .arg("1000")
        .env("MCPVISOR_OWNER", std::fs::canonicalize(&state).unwrap())
        .process_group(0)
        .spawn()
        .unwrap();
    let orphan_pid = orphan.id();
    let marked = eventually(LONG, || async {
        std::fs::read(format!("/proc/{orphan_pid}/environ"))
            .is_ok_and(|env| env.split(|b| *b == 0).any(|kv| kv == mark.as_bytes()))
    })
    .await;
    assert!(marked, "the stand-in orphan does not carry {mark}");
    let next = Store::open(StoreOptions::new().state_dir(&state))
        .await
        .unwrap();
    // Reaped during open: the SIGKILL is sent before open returns; collect the exit status.
    let status = deadline(LONG, "orphan exit", async {
        loop {
            if let Ok(Some(s)) = orphan.try_wait() {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        status.signal(),
        Some(9),
        "pid {orphan_pid} was not SIGKILLed"
    );
    next.shutdown().await;
}

#[tokio::test]
async fn a_removed_service_leaves_no_process_record_in_the_state_file() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let store = Store::open(StoreOptions::new().state_dir(&state))
        .await
        .unwrap();
    store
        .add_service(
            json!({"mcpServers": {"gone": chaos(&[]), "kept": chaos(&[])}}),
            Wait::Auto,
        )
        .await
        .unwrap();
    let kept = pid_of(&store, "kept").await;
    store.remove_service("gone").await.unwrap();
    // Drop without shutdown: the state file then holds what a killed run would leave.
    let flushed = eventually(LONG, || async {
        let text = std::fs::read_to_string(state.join("state.json")).unwrap_or_default();
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let services: Vec<String> = v["processes"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|r| r["service"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        services == ["kept"]
    })
    .await;
    assert!(
        flushed,
        "the state file still names the removed service's process"
    );
    assert!(pid_alive(kept));
    store.shutdown().await;
}

#[tokio::test]
async fn apply_reconciles_to_a_desired_config_touching_only_what_changed() {
    let store = Store::open(StoreOptions::new()).await.unwrap();
    let cfg = |v: Value| {
        mcpvisor_model::parse_str(&v.to_string(), &mcpvisor_model::env::MapEnv::default()).unwrap()
    };
    let first = cfg(json!({"mcpServers": {"keep": chaos(&[]), "gone": chaos(&[])}}));
    let mut lines = store.apply(&first).await.unwrap();
    lines.sort();
    assert_eq!(lines, ["added gone", "added keep"]);
    store
        .wait_for(&["keep", "gone"], S::Healthy, LONG)
        .await
        .unwrap();
    let kept = pid_of(&store, "keep").await;
    let second =
        cfg(json!({"mcpServers": {"keep": chaos(&[]), "fresh": chaos(&["--tools", "2"])}}));
    let mut lines = store.apply(&second).await.unwrap();
    lines.sort();
    assert_eq!(lines, ["added fresh", "removed gone"]);
    assert!(
        store.apply(&second).await.unwrap().is_empty(),
        "applied twice"
    );
    assert_eq!(
        pid_of(&store, "keep").await,
        kept,
        "an untouched service was restarted"
    );
    store.shutdown().await;
}

#[tokio::test]
async fn wait_settled_returns_once_a_dependent_is_held_back_by_a_broken_dependency() {
    let store = Store::open(StoreOptions::new()).await.unwrap();
    let mut broken = chaos(&[]);
    broken["command"] = json!("/nonexistent/mcp-server");
    let mut app = chaos(&[]);
    app["depends_on"] = json!(["db"]);
    let started = Instant::now();
    store
        .add_service(
            json!({"mcpServers": {"db": broken, "app": app}}),
            Wait::Settled,
        )
        .await
        .unwrap();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "Settled waited {took:?}");
    let app = store.get_service_info("app").await.unwrap();
    assert_eq!(app.state, S::NotStarted);
    assert!(app.reason.starts_with("waiting for db ("), "{}", app.reason);
    assert_ne!(store.get_service_status("db").await.unwrap(), S::Healthy);
    store.shutdown().await;
}

#[tokio::test]
async fn a_burst_of_list_changed_is_coalesced_and_the_newest_list_wins() {
    let store = Store::open(StoreOptions::new()).await.unwrap();
    store
        .add_service(json!({"mcpServers": {"svc": chaos(&[])}}), Wait::Auto)
        .await
        .unwrap();
    let lists_before = store
        .service_logs("svc", usize::MAX)
        .unwrap()
        .iter()
        .filter(|l| l.ends_with("tools/list"))
        .count();
    const N: usize = 40;
    let adds = (0..N).map(|i| {
        let store = store.clone();
        async move {
            let args = json!({"action": "add_tool", "name": format!("t{i}")});
            store
                .call_tool("svc__chaos", args.as_object().cloned(), None)
                .await
        }
    });
    for r in futures::future::join_all(adds).await {
        assert!(!r.unwrap().is_error);
    }
    let all_listed = eventually(LONG, || async {
        let tools = store.list_tools().await.unwrap_or_default();
        (0..N).all(|i| tools.iter().any(|t| t.name == format!("svc__t{i}")))
    })
    .await;
    assert!(all_listed, "the newest tool list never arrived");
    let lists = store
        .service_logs("svc", usize::MAX)
        .unwrap()
        .iter()
        .filter(|l| l.ends_with("tools/list"))
        .count()
        - lists_before;
    assert!(
        lists < N / 4,
        "{lists} re-lists for {N} notifications: not coalesced"
    );
    store.shutdown().await;
}

/// A settled wait over many services returns views that agree with the verdict: none of them
/// still `starting` (seen in `run` at 300 services: "ready: 251/300 healthy" listing services
/// the supervisor already had up, because the views were read before the verdict).
#[tokio::test]
async fn a_settled_wait_over_many_services_returns_views_that_agree() {
    let store = Store::open(StoreOptions::new()).await.unwrap();
    let batch: Vec<Value> = (0..150)
        .map(|i| {
            let mut s = chaos(&[]);
            s["name"] = json!(format!("s{i}"));
            s
        })
        .collect();
    store
        .add_service(Value::Array(batch), Wait::None)
        .await
        .unwrap();
    let views = store
        .wait_settled(None, false, LONG, |_, _| {})
        .await
        .unwrap();
    assert_eq!(views.len(), 150);
    let unsettled: Vec<String> = views
        .iter()
        .filter(|v| !v.state.is_up())
        .map(|v| format!("{}: {}", v.name, v.state))
        .collect();
    assert!(unsettled.is_empty(), "returned while {unsettled:?}");
    store.shutdown().await;
}
