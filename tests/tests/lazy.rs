//! Lazy start and idle stop (issue 14, DESIGN §16), against real chaos servers: a lazy service
//! learns its tools once and is then `idle` with them listed; concurrent first calls start it
//! once; after `idle_stop` without calls it is stopped into `idle` (its process group gone, its
//! tools listed, no restart counted) and the next call starts it again; dependencies start
//! first and are not idle-stopped under a running dependent; a later run lists the last-known
//! tools without starting anything.

use std::collections::HashSet;
use std::time::Duration;

use mcpvisor_model::{Event, ServiceState};
use mcpvisor_supervisor::{EventStream, Store};
use mcpvisor_tests::{chaos_bin, deadline, wait_until};
use serde_json::{json, Value};

use ServiceState as S;

const LONG: Duration = Duration::from_secs(20);

fn chaos(extra: Value) -> Value {
    let mut v = json!({
        "command": chaos_bin().to_string_lossy(),
        "health": {"interval": "5s", "timeout": "2s"},
        "backoff": {"initial": "20ms", "max": "200ms"},
        "timeouts": {"shutdown": "300ms"}
    });
    if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    v
}

async fn open(dir: &std::path::Path, services: Value) -> Store {
    mcpvisor_tests::open_store_in(dir, &json!({ "mcpServers": services })).await
}

/// The `pids` tool's answer: (pid, pgid) of the server that answered.
async fn pids(store: &Store, tool: &str) -> (u64, u64) {
    let out = store.call_tool(tool, None, None).await.unwrap();
    let text = out.result["content"][0]["text"]
        .as_str()
        .unwrap()
        .to_owned();
    let v: Value = serde_json::from_str(&text).unwrap();
    (v["pid"].as_u64().unwrap(), v["pgid"].as_u64().unwrap())
}

/// Whether any process is left in process group `pgid` (signal 0 to the group).
fn group_alive(pgid: u64) -> bool {
    let Ok(pgid) = i32::try_from(pgid) else {
        return false;
    };
    // SAFETY: kill(2) with signal 0 only checks for existence.
    unsafe { libc::kill(-pgid, 0) == 0 }
}

/// Every transition on `events` until `name` enters `to` (panics after `within`).
async fn transitions_until(
    events: &mut EventStream,
    name: &str,
    to: S,
    within: Duration,
) -> Vec<(String, S, S, String)> {
    deadline(within, &format!("{name} → {to}"), async {
        let mut seen = Vec::new();
        loop {
            match events.next().await {
                Some(Event::StateChanged {
                    service,
                    from,
                    to: t,
                    reason,
                    ..
                }) => {
                    let done = service.to_string() == name && t == to;
                    seen.push((service.to_string(), from, t, reason));
                    if done {
                        return seen;
                    }
                }
                Some(_) => {}
                None => panic!("event stream ended; so far {seen:?}"),
            }
        }
    })
    .await
}

#[tokio::test]
async fn sixteen_concurrent_first_calls_start_a_lazy_server_once_and_all_get_answers() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), json!({"svc": chaos(json!({"start": "lazy"}))})).await;
    // No tools known yet: started once to learn them, then idle with them listed.
    store.wait_for(&["svc"], S::Idle, LONG).await.unwrap();
    let info = store.get_service_info("svc").await.unwrap();
    assert_eq!(info.pid, None, "idle: no process");
    assert!(info.reason.contains("tools learned"), "{}", info.reason);
    let tools = store.list_tools().await.unwrap();
    assert!(tools.iter().any(|t| t.name == "svc__pids"), "{tools:?}");

    let mut events = store.subscribe().await.unwrap();
    let calls = (0..16).map(|_| {
        let s = store.clone();
        tokio::spawn(async move { pids(&s, "svc__pids").await })
    });
    let mut answered = HashSet::new();
    for c in calls {
        let (pid, _) = deadline(LONG, "a first call", c).await.unwrap();
        answered.insert(pid);
    }
    assert_eq!(
        answered.len(),
        1,
        "one server answered all 16: {answered:?}"
    );
    let seen = transitions_until(&mut events, "svc", S::Healthy, LONG).await;
    let starts = seen
        .iter()
        .filter(|(_, _, to, _)| *to == S::Starting)
        .count();
    assert_eq!(starts, 1, "started once: {seen:?}");
    let info = store.get_service_info("svc").await.unwrap();
    assert_eq!(info.state, S::Healthy);
    assert_eq!(info.restarts, 0, "a start for a call is not a restart");
    assert_eq!(info.metrics.calls, 16);
    store.shutdown().await;
}

#[tokio::test]
async fn after_idle_stop_without_calls_the_group_is_gone_the_tools_stay_and_the_next_call_restarts_it(
) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(
        dir.path(),
        json!({"svc": chaos(json!({"idle_stop": "600ms"}))}),
    )
    .await;
    store.wait_for(&["svc"], S::Healthy, LONG).await.unwrap();
    let mut events = store.subscribe().await.unwrap();
    // A call longer than the window keeps it running: it is never stopped under a call.
    let slow = store
        .call_tool(
            "svc__sleep",
            json!({"ms": 900}).as_object().cloned(),
            Some(LONG),
        )
        .await
        .unwrap();
    assert!(!slow.is_error, "{slow:?}");
    let (pid, pgid) = pids(&store, "svc__pids").await;
    let seen = transitions_until(&mut events, "svc", S::Idle, LONG).await;
    let states: Vec<(S, S)> = seen.iter().map(|(_, f, t, _)| (*f, *t)).collect();
    assert_eq!(
        states,
        [(S::Healthy, S::Stopping), (S::Stopping, S::Idle)],
        "{seen:?}"
    );
    let reason = &seen[1].3;
    assert!(
        reason.contains("no calls for 600ms (idle_stop)"),
        "{reason}"
    );
    assert!(
        wait_until(LONG, || !group_alive(pgid)).await,
        "the idle server's process group {pgid} is gone"
    );
    let info = store.get_service_info("svc").await.unwrap();
    assert_eq!((info.state, info.pid, info.restarts), (S::Idle, None, 0));
    assert!(
        info.last_error.is_none(),
        "not a crash: {:?}",
        info.last_error
    );
    let tools = store.list_tools().await.unwrap();
    assert!(tools.iter().any(|t| t.name == "svc__echo"), "{tools:?}");

    // The next call starts it again and is answered by a new server.
    let out = store
        .call_tool(
            "svc__echo",
            json!({"text": "back"}).as_object().cloned(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(out.result["content"][0]["text"], "back");
    let (new_pid, _) = pids(&store, "svc__pids").await;
    assert_ne!(new_pid, pid);
    let info = store.get_service_info("svc").await.unwrap();
    assert_eq!((info.state, info.restarts), (S::Healthy, 0));
    assert_eq!(Some(u32::try_from(new_pid).unwrap()), info.pid);
    store.shutdown().await;
}

#[tokio::test]
async fn a_lazy_service_starts_its_dependency_first_which_is_not_idle_stopped_while_it_runs() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(
        dir.path(),
        json!({
            "db": chaos(json!({"start": "lazy", "idle_stop": "300ms"})),
            "app": chaos(json!({"start": "lazy", "idle_stop": "1500ms", "depends_on": ["db"]}))
        }),
    )
    .await;
    store.wait_for(&["db", "app"], S::Idle, LONG).await.unwrap();

    let mut events = store.subscribe().await.unwrap();
    let out = store
        .call_tool(
            "app__echo",
            json!({"text": "hi"}).as_object().cloned(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(out.result["content"][0]["text"], "hi");
    let started: Vec<String> = transitions_until(&mut events, "app", S::Healthy, LONG)
        .await
        .into_iter()
        .filter(|(_, _, to, _)| *to == S::Starting)
        .map(|(s, ..)| s)
        .collect();
    assert_eq!(started, ["db", "app"], "the dependency starts first");

    // db's window (300 ms) passes several times while app runs: db stays up, and goes idle
    // only after app did.
    let seen = transitions_until(&mut events, "db", S::Idle, LONG).await;
    let idle_order: Vec<&str> = seen
        .iter()
        .filter(|(_, _, to, _)| *to == S::Idle)
        .map(|(s, ..)| s.as_str())
        .collect();
    assert_eq!(idle_order, ["app", "db"], "{seen:?}");
    let db_down = seen
        .iter()
        .position(|(s, _, to, _)| s == "db" && *to == S::Stopping)
        .unwrap();
    let app_idle = seen
        .iter()
        .position(|(s, _, to, _)| s == "app" && *to == S::Idle)
        .unwrap();
    assert!(
        app_idle < db_down,
        "db stopped only once app was idle: {seen:?}"
    );
    store.shutdown().await;
}

#[tokio::test]
async fn a_later_run_lists_a_lazy_services_last_known_tools_without_starting_it() {
    let dir = tempfile::tempdir().unwrap();
    let services = json!({"svc": chaos(json!({"start": "lazy"}))});
    let store = open(dir.path(), services.clone()).await;
    store.wait_for(&["svc"], S::Idle, LONG).await.unwrap();
    store.shutdown().await;

    let store = open(dir.path(), services).await;
    let mut events = store.subscribe().await.unwrap();
    // Idle from the start: no learning start.
    assert_eq!(store.get_service_status("svc").await.unwrap(), S::Idle);
    let info = store.get_service_info("svc").await.unwrap();
    assert_eq!(info.pid, None);
    assert!(
        info.reason.contains("starts on its first call"),
        "{}",
        info.reason
    );
    let tools = store.list_tools().await.unwrap();
    assert!(tools.iter().any(|t| t.name == "svc__echo"), "{tools:?}");
    let views = store
        .wait_settled(None, false, LONG, |_, _| {})
        .await
        .unwrap();
    assert_eq!(views[0].state, S::Idle, "idle is an outcome");
    // The first call starts it.
    let out = store
        .call_tool("echo", json!({"text": "x"}).as_object().cloned(), None)
        .await
        .unwrap();
    assert_eq!(out.result["content"][0]["text"], "x");
    let seen = transitions_until(&mut events, "svc", S::Healthy, LONG).await;
    assert_eq!(seen[0].1, S::Idle, "{seen:?}");
    store.shutdown().await;
}

#[tokio::test]
async fn a_stop_by_hand_of_an_idle_service_is_respected_by_calls() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), json!({"svc": chaos(json!({"start": "lazy"}))})).await;
    store.wait_for(&["svc"], S::Idle, LONG).await.unwrap();
    store.stop_service("svc", false).await.unwrap();
    assert_eq!(store.get_service_status("svc").await.unwrap(), S::Stopped);
    let err = store
        .call_tool("svc__echo", json!({"text": "x"}).as_object().cloned(), None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("stopped"), "{err}");
    assert_eq!(store.get_service_status("svc").await.unwrap(), S::Stopped);
    store.start_service("svc").await.unwrap();
    store.wait_for(&["svc"], S::Healthy, LONG).await.unwrap();
    store.shutdown().await;
}
