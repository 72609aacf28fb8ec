//! The root supervisor and the Store API: dependency order, intensity, panics, registry death,
//! agent scopes, batch adds, shutdown order, drop, persistence and orphan reaping.

use std::time::{Duration, Instant};

use mcpvisor_model::{Event, ServiceState};
use mcpvisor_supervisor::{EventStream, Store, StoreError, StoreOptions, Wait};
use mcpvisor_tests::{chaos_bin, deadline, eventually, pid_alive, wait_for_pid_exit, wait_until};
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

fn with_deps(mut v: Value, deps: &[&str]) -> Value {
    v["depends_on"] = json!(deps);
    v
}

async fn store() -> Store {
    Store::open(StoreOptions::new()).await.expect("open")
}

/// Collects state transitions `(service, to)` until `done` says stop.
async fn transitions_until(
    events: &mut EventStream,
    within: Duration,
    mut done: impl FnMut(&[(String, S)]) -> bool,
) -> Vec<(String, S)> {
    let mut seen = Vec::new();
    let end = Instant::now() + within;
    while !done(&seen) {
        let left = end.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, events.next()).await {
            Ok(Some(Event::StateChanged {
                service, from, to, ..
            })) if from != to => seen.push((service.to_string(), to)),
            Ok(Some(_)) => {}
            _ => panic!("timed out; transitions so far: {seen:?}"),
        }
    }
    seen
}

fn pos(seen: &[(String, S)], name: &str, state: S) -> usize {
    seen.iter()
        .position(|(n, s)| n == name && *s == state)
        .unwrap_or_else(|| panic!("{name} never reached {state}: {seen:?}"))
}

fn healthy_count(seen: &[(String, S)]) -> usize {
    seen.iter().filter(|(_, s)| *s == S::Healthy).count()
}

#[tokio::test]
async fn a_chain_starts_in_dependency_order_and_stops_in_reverse() {
    let store = store().await;
    let mut events = store.subscribe().await.unwrap();
    let report = store
        .add_service(
            json!({"mcpServers": {
                "app": with_deps(chaos(&[]), &["api"]),
                "api": with_deps(chaos(&["--startup-delay-ms", "100"]), &["db"]),
                "db": chaos(&["--startup-delay-ms", "100"])
            }}),
            Wait::None,
        )
        .await
        .unwrap();
    assert_eq!(report.added.len(), 3);
    let seen = transitions_until(&mut events, LONG, |s| healthy_count(s) == 3).await;
    assert!(
        pos(&seen, "db", S::Healthy) < pos(&seen, "api", S::Starting),
        "{seen:?}"
    );
    assert!(
        pos(&seen, "api", S::Healthy) < pos(&seen, "app", S::Starting),
        "{seen:?}"
    );

    let pids: Vec<u32> = store
        .list_services()
        .await
        .unwrap()
        .iter()
        .filter_map(|v| v.pid)
        .collect();
    assert_eq!(pids.len(), 3);
    let shutdown = store.clone();
    let stopper = tokio::spawn(async move { shutdown.shutdown().await });
    let seen = transitions_until(&mut events, LONG, |s| {
        s.iter().filter(|(_, st)| *st == S::Stopped).count() == 3
    })
    .await;
    deadline(LONG, "shutdown", stopper).await.unwrap();
    assert!(
        pos(&seen, "app", S::Stopped) < pos(&seen, "api", S::Stopping),
        "{seen:?}"
    );
    assert!(
        pos(&seen, "api", S::Stopped) < pos(&seen, "db", S::Stopping),
        "{seen:?}"
    );
    for p in pids {
        assert!(!pid_alive(p), "pid {p} alive after shutdown");
    }
}

#[tokio::test]
async fn a_diamond_starts_the_middle_level_together() {
    let store = store().await;
    let mut events = store.subscribe().await.unwrap();
    store
        .add_service(
            json!({"mcpServers": {
                "top": with_deps(chaos(&[]), &["left", "right"]),
                "left": with_deps(chaos(&[]), &["base"]),
                "right": with_deps(chaos(&[]), &["base"]),
                "base": chaos(&["--startup-delay-ms", "100"])
            }}),
            Wait::None,
        )
        .await
        .unwrap();
    let seen = transitions_until(&mut events, LONG, |s| healthy_count(s) == 4).await;
    let base = pos(&seen, "base", S::Healthy);
    assert!(base < pos(&seen, "left", S::Starting));
    assert!(base < pos(&seen, "right", S::Starting));
    let top = pos(&seen, "top", S::Starting);
    assert!(pos(&seen, "left", S::Healthy) < top && pos(&seen, "right", S::Healthy) < top);
    store.shutdown().await;
}

#[tokio::test]
async fn a_cycle_is_rejected_at_add_time_and_nothing_is_registered() {
    let store = store().await;
    let err = store
        .add_service(
            json!({"mcpServers": {
                "a": with_deps(chaos(&[]), &["b"]),
                "b": with_deps(chaos(&[]), &["a"])
            }}),
            Wait::None,
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("a -> b -> a"), "{err}");
    assert!(store.list_services().await.unwrap().is_empty());
    store.shutdown().await;
}

#[tokio::test]
async fn a_batch_refuses_missing_dependencies_transitively_and_duplicates_in_itself() {
    let store = store().await;
    let mut first = chaos(&[]);
    first["name"] = json!("a");
    let mut again = chaos(&[]);
    again["name"] = json!("a");
    let mut c = with_deps(chaos(&[]), &["missing"]);
    c["name"] = json!("c");
    let mut d = with_deps(chaos(&[]), &["c"]);
    d["name"] = json!("d");
    let mut e = with_deps(chaos(&[]), &["a"]);
    e["name"] = json!("e");
    let report = store
        .add_service(json!([first, c, again, d, e]), Wait::None)
        .await
        .unwrap();
    assert_eq!(report.added, vec!["a", "e"]);
    let failed: Vec<&str> = report.failed.iter().map(|(n, _)| n.as_str()).collect();
    // The duplicate while reading the batch; then c (its dependency is nowhere), then d (its
    // dependency c was refused).
    assert_eq!(failed, vec!["a", "c", "d"], "{:?}", report.failed);
    assert!(
        report.failed[1].1[0].contains("missing"),
        "{:?}",
        report.failed
    );
    assert!(report.failed[2].1[0].contains("'c'"), "{:?}", report.failed);
    let mut names: Vec<String> = store
        .list_services()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    names.sort();
    assert_eq!(names, vec!["a", "e"]);
    store.shutdown().await;
}

#[tokio::test]
async fn a_batch_with_one_bad_entry_adds_the_good_ones() {
    let store = store().await;
    let report = store
        .add_service(
            json!({"mcpServers": {
                "good": chaos(&[]),
                "bad": {"command": "x", "url": "http://127.0.0.1:1/mcp"},
                "also_good": chaos(&[])
            }}),
            Wait::None,
        )
        .await
        .unwrap();
    assert_eq!(report.added, vec!["good", "also_good"]);
    assert_eq!(report.failed.len(), 1);
    assert_eq!(report.failed[0].0, "bad");
    assert!(report.failed[0].1[0].contains("both 'command' and 'url'"));
    store
        .wait_for(&["good", "also_good"], S::Healthy, LONG)
        .await
        .unwrap();
    // A single invalid service is an error naming service and field, and changes nothing.
    let err = store
        .add_service(
            json!({"name": "x", "command": "y", "health": {"interval": "soon"}}),
            Wait::None,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Config(_)));
    assert!(
        err.to_string().contains("'x'") && err.to_string().contains("health.interval"),
        "{err}"
    );
    assert_eq!(store.list_services().await.unwrap().len(), 2);
    // Adding an existing name is refused.
    let err = store
        .add_service(json!({"name": "good", "command": "y"}), Wait::None)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("more than once") || err.to_string().contains("already"),
        "{err}"
    );
    store.shutdown().await;
}

#[tokio::test]
async fn a_blocked_dependent_starts_once_its_dependency_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("db-server");
    let store = store().await;
    let mut db = chaos(&[]);
    db["command"] = json!(link.to_string_lossy());
    db["backoff"] =
        json!({"initial": "20ms", "max": "50ms", "max_attempts": 2, "unreachable_retry": "200ms"});
    store
        .add_service(
            json!({"mcpServers": {"db": db, "app": with_deps(chaos(&[]), &["db"])}}),
            Wait::None,
        )
        .await
        .unwrap();
    store.wait_for(&["db"], S::Unreachable, LONG).await.unwrap();
    let app = store.get_service_info("app").await.unwrap();
    assert_eq!(app.state, S::NotStarted);
    assert!(app.reason.contains("waiting for db"), "{}", app.reason);
    // The dependency recovers: its binary appears.
    std::os::unix::fs::symlink(chaos_bin(), &link).unwrap();
    store
        .wait_for(&["db", "app"], S::Healthy, LONG)
        .await
        .unwrap();
    store.shutdown().await;
}

#[tokio::test]
async fn a_crash_loop_ends_failed_and_a_manual_start_revives_it() {
    let store = store().await;
    let mut cfg = chaos(&["--exit-at-start", "1"]);
    cfg["backoff"] = json!({"initial": "10ms", "max": "50ms"});
    store.add_service(json!({"name": "loop", "command": cfg["command"], "args": cfg["args"], "backoff": cfg["backoff"]}), Wait::None).await.unwrap();
    store.wait_for(&["loop"], S::Failed, LONG).await.unwrap();
    let v = store.get_service_info("loop").await.unwrap();
    assert!(v.last_error.unwrap_or_default().contains("giving up"));
    let restarts = v.restarts;
    // No further spawns while failed.
    assert!(
        !eventually(Duration::from_millis(600), || async {
            store
                .get_service_info("loop")
                .await
                .map(|v| v.restarts)
                .unwrap_or(0)
                != restarts
        })
        .await
    );
    store.start_service("loop").await.unwrap();
    store.wait_for(&["loop"], S::Starting, LONG).await.ok();
    store.wait_for(&["loop"], S::Failed, LONG).await.unwrap();
    store.shutdown().await;
}

#[tokio::test]
async fn a_panicking_service_actor_is_respawned_without_leaking_its_process() {
    let store = store().await;
    store
        .add_service(
            json!({"name": "p", "command": chaos_bin().to_string_lossy()}),
            Wait::Auto,
        )
        .await
        .unwrap();
    let old = store.get_service_info("p").await.unwrap().pid.expect("pid");
    store.inject_actor_panic("p").await.unwrap();
    assert!(
        wait_for_pid_exit(old, LONG).await,
        "old process leaked after the actor panicked"
    );
    assert!(
        eventually(LONG, || async {
            store
                .get_service_info("p")
                .await
                .map(|v| v.state == S::Healthy && v.pid.is_some_and(|p| p != old))
                .unwrap_or(false)
        })
        .await,
        "not healthy again with a new process"
    );
    let out = store
        .call_tool(
            "p__echo",
            json!({"text": "again"}).as_object().cloned(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(out.result["content"][0]["text"], "again");
    store.shutdown().await;
}

#[tokio::test]
async fn a_killed_registry_is_rebuilt_and_answers_the_same() {
    let store = store().await;
    store
        .add_service(
            json!({"mcpServers": {"one": chaos(&["--tools", "2"]), "two": chaos(&[])}}),
            Wait::Auto,
        )
        .await
        .unwrap();
    let mut before: Vec<(String, S, usize)> = store
        .list_services()
        .await
        .unwrap()
        .into_iter()
        .map(|v| (v.name, v.state, v.tools))
        .collect();
    before.sort_by(|a, b| a.0.cmp(&b.0));
    let tools_before = store.list_tools().await.unwrap().len();
    store.inject_registry_death().unwrap();
    let ok = eventually(LONG, || async {
        let mut now: Vec<(String, S, usize)> = match store.list_services().await {
            Ok(v) => v.into_iter().map(|v| (v.name, v.state, v.tools)).collect(),
            Err(_) => return false,
        };
        now.sort_by(|a, b| a.0.cmp(&b.0));
        now == before
    })
    .await;
    assert!(ok, "registry did not come back the same");
    assert_eq!(store.list_tools().await.unwrap().len(), tools_before);
    let out = store
        .call_tool("one__echo", json!({"text": "x"}).as_object().cloned(), None)
        .await
        .unwrap();
    assert!(!out.is_error);
    store.shutdown().await;
}

#[tokio::test]
async fn agent_scopes_isolate_names_and_tools() {
    let store = store().await;
    let bot = store.for_agent("bot").unwrap();
    let other = store.for_agent("other").unwrap();
    bot.add_service(
        json!({"name": "svc", "command": chaos_bin().to_string_lossy()}),
        Wait::Auto,
    )
    .await
    .unwrap();
    other
        .add_service(json!({"name": "svc", "command": chaos_bin().to_string_lossy(), "args": ["--tools", "1"]}), Wait::Auto)
        .await
        .unwrap();
    assert!(
        store.list_services().await.unwrap().is_empty(),
        "store scope sees agent services"
    );
    let bot_tools: Vec<String> = bot
        .list_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    let other_tools: Vec<String> = other
        .list_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert!(bot_tools.contains(&"svc__echo".to_string()));
    assert!(!bot_tools.contains(&"svc__tool_0".to_string()));
    assert!(other_tools.contains(&"svc__tool_0".to_string()));
    let out = bot
        .call_tool(
            "svc__echo",
            json!({"text": "mine"}).as_object().cloned(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(out.result["content"][0]["text"], "mine");
    assert!(store.call_tool("svc__echo", None, None).await.is_err());
    let all: Vec<String> = store
        .all_scopes()
        .list_services()
        .await
        .unwrap()
        .into_iter()
        .map(|v| v.name)
        .collect();
    assert!(all.contains(&"bot/svc".to_string()) && all.contains(&"other/svc".to_string()));
    store.shutdown().await;
}

#[tokio::test]
async fn dropping_the_store_without_shutdown_kills_every_child() {
    let store = store().await;
    store
        .add_service(json!({"name": "d", "command": chaos_bin().to_string_lossy(), "args": ["--spawn-grandchild"]}), Wait::Auto)
        .await
        .unwrap();
    let pid = store.get_service_info("d").await.unwrap().pid.unwrap();
    let out = store.call_tool("d__pids", None, None).await.unwrap();
    let info: Value =
        serde_json::from_str(out.result["content"][0]["text"].as_str().unwrap()).unwrap();
    let grandchild = info["grandchild"].as_u64().unwrap() as u32;
    drop(store);
    assert!(
        wait_for_pid_exit(pid, LONG).await,
        "child survived the dropped store"
    );
    assert!(
        wait_for_pid_exit(grandchild, LONG).await,
        "grandchild survived the dropped store"
    );
}

#[tokio::test]
async fn hand_edits_survive_runtime_changes_and_a_respawned_persistence_actor() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mcp.json");
    let chaos = chaos_bin().to_string_lossy().into_owned();
    std::fs::write(
        &file,
        json!({"mcpServers": {"a": {"command": chaos}}}).to_string(),
    )
    .unwrap();
    let store = Store::open(StoreOptions {
        autostart: false,
        ..StoreOptions::new()
            .config_file(&file)
            .state_dir(dir.path().join("state"))
    })
    .await
    .unwrap();
    // Edited by hand while the store runs: a service and a top-level note.
    std::fs::write(
        &file,
        json!({"note": "by hand", "mcpServers": {"a": {"command": chaos}, "h": {"command": chaos}}})
            .to_string(),
    )
    .unwrap();
    // The persistence actor dies; its successor re-saves the runtime config (which knows
    // nothing of the edit) and must merge, not overwrite.
    store.inject_persistence_death().unwrap();
    store
        .add_service(json!({"name": "b", "command": chaos}), Wait::None)
        .await
        .unwrap();
    let f = file.clone();
    let on_disk = deadline(LONG, "b in the config file", async move {
        loop {
            if let Ok(v) =
                serde_json::from_str::<Value>(&std::fs::read_to_string(&f).unwrap_or_default())
            {
                if v["mcpServers"].get("b").is_some() {
                    return v;
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let names: Vec<&String> = on_disk["mcpServers"].as_object().unwrap().keys().collect();
    assert_eq!(names, ["a", "h", "b"], "{on_disk}");
    assert_eq!(on_disk["note"], "by hand");
    store.shutdown().await;
}

#[tokio::test]
async fn runtime_changes_are_persisted_and_reloaded() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mcp.json");
    std::fs::write(&file, r#"{"$schema": "keep-me", "mcpServers": {}}"#).unwrap();
    let opts = || {
        StoreOptions::new()
            .config_file(&file)
            .state_dir(dir.path().join("state"))
    };
    let store = Store::open(opts()).await.unwrap();
    store.add_service(json!({"name": "kept", "command": chaos_bin().to_string_lossy(), "x-note": "unknown field"}), Wait::Auto).await.unwrap();
    let f = file.clone();
    assert!(
        wait_until(LONG, || std::fs::read_to_string(&f)
            .map(|t| t.contains("\"kept\""))
            .unwrap_or(false))
        .await,
        "config file never got the new service"
    );
    store
        .update_service(
            "kept",
            json!({"command": chaos_bin().to_string_lossy(), "args": ["--tools", "1"]}),
        )
        .await
        .unwrap();
    store.wait_for(&["kept"], S::Healthy, LONG).await.unwrap();
    store.shutdown().await;
    let text = std::fs::read_to_string(&file).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["$schema"], "keep-me");
    assert_eq!(v["mcpServers"]["kept"]["args"], json!(["--tools", "1"]));
    // Reopen: last-known tools answer at once, marked stale, before the reconnect.
    let store = Store::open(StoreOptions {
        autostart: false,
        ..opts()
    })
    .await
    .unwrap();
    let tools = store.list_tools().await.unwrap();
    assert!(
        tools.iter().any(|t| t.name == "kept__tool_0" && t.stale),
        "{tools:?}"
    );
    store.remove_service("kept").await.unwrap();
    store.shutdown().await;
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(v["mcpServers"], json!({}));
}

#[tokio::test]
async fn removing_a_dependency_is_refused_and_changes_nothing() {
    let store = store().await;
    store
        .add_service(
            json!({"mcpServers": {"db": chaos(&[]), "app": with_deps(chaos(&[]), &["db"])}}),
            Wait::None,
        )
        .await
        .unwrap();
    let err = store.remove_service("db").await.unwrap_err();
    assert!(matches!(err, StoreError::InUse { .. }), "{err}");
    assert_eq!(store.list_services().await.unwrap().len(), 2);
    let err = store.remove_service("nope").await.unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
    store.shutdown().await;
}

#[tokio::test]
async fn check_services_probes_now_and_metrics_count_calls() {
    let store = store().await;
    store
        .add_service(
            json!({"name": "m", "command": chaos_bin().to_string_lossy()}),
            Wait::Auto,
        )
        .await
        .unwrap();
    for i in 0..10 {
        store
            .call_tool(
                "echo",
                json!({"text": i.to_string()}).as_object().cloned(),
                None,
            )
            .await
            .unwrap();
    }
    let checks = store.check_services().await.unwrap();
    assert_eq!(checks.len(), 1);
    assert!(checks[0].1.ok);
    let m = store.metrics().await.unwrap();
    assert_eq!(m[0].1.calls, 10);
    assert!(m[0].1.call_latency.p50_ms.is_some());
    let err = store.call_tool("ech", None, None).await.unwrap_err();
    assert!(
        err.to_string().contains("echo"),
        "suggestion missing: {err}"
    );
    store.shutdown().await;
}

#[tokio::test]
async fn reaping_never_signals_a_recycled_pid_but_kills_a_recorded_orphan() {
    use std::os::unix::process::CommandExt;
    let spawn_sleep = || {
        std::process::Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .unwrap()
    };
    let mut stranger = spawn_sleep();
    let mut orphan = spawn_sleep();
    let mut earlier_boot = spawn_sleep();
    // A leader that leaves a member of its group behind and exits (what a server with a
    // grandchild does when a SIGKILLed supervisor closes its stdin).
    let mut leader = std::process::Command::new("sh")
        .args([
            "-c",
            "sleep 30 </dev/null >/dev/null 2>&1 & echo $!; read _ || true",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let left_behind: u32 = {
        use std::io::BufRead;
        let mut line = String::new();
        std::io::BufReader::new(leader.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        line.trim().parse().unwrap()
    };
    let l = mcpvisor_service_actor::process_identity(leader.id()).unwrap();
    let member = mcpvisor_service_actor::process_identity(left_behind).unwrap();
    drop(leader.stdin.take()); // EOF: the leader exits, its member lives on
    assert!(leader.wait().unwrap().success());
    assert!(pid_alive(left_behind));
    let ident = |pid: u32| mcpvisor_service_actor::process_identity(pid).unwrap();
    let (s, o, b) = (
        ident(stranger.id()),
        ident(orphan.id()),
        ident(earlier_boot.id()),
    );
    let dir = tempfile::tempdir().unwrap();
    let state = json!({
        "services": {},
        "processes": [
            // Same pid, but another start time: a recycled id. Must be left alone.
            {"service": "gone", "pid": stranger.id(), "pgid": stranger.id(),
             "start_time_ticks": s.start_time_ticks + 1, "cmdline": s.cmdline},
            // Exactly the recorded process: an orphan of a killed run. Must be reaped, even
            // though its command line changed since (npm rewrites its own).
            {"service": "old", "pid": orphan.id(), "pgid": orphan.id(),
             "start_time_ticks": o.start_time_ticks, "cmdline": ["npm", "exec", "something"],
             "boot_id": mcpvisor_service_actor::boot_id(), "sid": o.sid},
            // Matching pid and start time, but recorded in another boot: left alone.
            {"service": "older", "pid": earlier_boot.id(), "pgid": earlier_boot.id(),
             "start_time_ticks": b.start_time_ticks, "cmdline": b.cmdline,
             "boot_id": "an-earlier-boot", "sid": b.sid},
            // Leader gone, one member of its group left behind: reaped.
            {"service": "vanished", "pid": leader.id(), "pgid": leader.id(),
             "start_time_ticks": l.start_time_ticks, "cmdline": l.cmdline,
             "boot_id": mcpvisor_service_actor::boot_id(), "sid": l.sid}
        ]
    });
    std::fs::write(dir.path().join("state.json"), state.to_string()).unwrap();
    let store = Store::open(StoreOptions::new().state_dir(dir.path()))
        .await
        .unwrap();
    let status = deadline(LONG, "orphan reaped", async {
        loop {
            if let Some(st) = orphan.try_wait().unwrap() {
                return st;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(!status.success());
    // The member left behind is gone too (not our child: checked by pid and start time).
    deadline(LONG, "member left behind reaped", async {
        while mcpvisor_service_actor::process_identity(left_behind)
            .is_some_and(|p| !p.zombie && p.start_time_ticks == member.start_time_ticks)
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(
        stranger.try_wait().unwrap().is_none(),
        "a recycled pid was signalled"
    );
    assert!(
        earlier_boot.try_wait().unwrap().is_none(),
        "a record of another boot was acted on"
    );
    store.shutdown().await;
    stranger.kill().unwrap();
    stranger.wait().unwrap();
    earlier_boot.kill().unwrap();
    earlier_boot.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_calls_across_services_all_answer() {
    let store = store().await;
    store
        .add_service(
            json!({"mcpServers": {"c0": chaos(&[]), "c1": chaos(&[]), "c2": chaos(&[]), "c3": chaos(&[])}}),
            Wait::None,
        )
        .await
        .unwrap();
    store
        .wait_for(&["c0", "c1", "c2", "c3"], S::Healthy, LONG)
        .await
        .unwrap();
    let calls = (0..1000).map(|i| {
        let store = store.clone();
        async move {
            let tool = format!("c{}__echo", i % 4);
            let out = store
                .call_tool(
                    &tool,
                    json!({"text": i.to_string()}).as_object().cloned(),
                    None,
                )
                .await
                .unwrap_or_else(|e| panic!("call {i} failed: {e}"));
            assert_eq!(
                out.result["content"][0]["text"],
                i.to_string(),
                "call {i} got another answer"
            );
        }
    });
    deadline(
        LONG,
        "1,000 concurrent calls",
        futures::future::join_all(calls),
    )
    .await;
    let m = store.metrics().await.unwrap();
    assert_eq!(m.iter().map(|(_, s)| s.calls).sum::<u64>(), 1000);
    assert_eq!(m.iter().map(|(_, s)| s.call_errors).sum::<u64>(), 0);
    store.shutdown().await;
}

#[tokio::test]
async fn disabling_and_re_enabling_through_update_stops_and_starts_it() {
    let store = store().await;
    let cmd = chaos_bin().to_string_lossy().into_owned();
    store
        .add_service(json!({"name": "t", "command": cmd}), Wait::Auto)
        .await
        .unwrap();
    let pid = store.get_service_info("t").await.unwrap().pid.unwrap();
    store
        .update_service("t", json!({"command": cmd, "disabled": true}))
        .await
        .unwrap();
    store.wait_for(&["t"], S::Stopped, LONG).await.unwrap();
    assert!(wait_for_pid_exit(pid, LONG).await);
    store
        .update_service("t", json!({"command": cmd}))
        .await
        .unwrap();
    store.wait_for(&["t"], S::Healthy, LONG).await.unwrap();
    // A service stopped by hand stays stopped across an update that changes nothing essential.
    store.stop_service("t", false).await.unwrap();
    store
        .update_service("t", json!({"command": cmd, "health": {"interval": "5s"}}))
        .await
        .unwrap();
    assert!(
        !eventually(Duration::from_millis(500), || async {
            store
                .get_service_status("t")
                .await
                .map(|s| s != S::Stopped)
                .unwrap_or(true)
        })
        .await,
        "an update restarted a service stopped by hand"
    );
    store.shutdown().await;
}

#[tokio::test]
async fn a_removed_service_never_speaks_for_its_successor() {
    let store = store().await;
    let slow_stop = json!({"name": "r", "command": chaos_bin().to_string_lossy(),
                           "args": ["--ignore-sigterm"], "timeouts": {"shutdown": "300ms"}});
    store
        .add_service(slow_stop.clone(), Wait::Auto)
        .await
        .unwrap();
    let old = store.get_service_info("r").await.unwrap().pid.unwrap();
    // Remove without waiting for the stop, then add the same name at once.
    let s2 = store.clone();
    let removal = tokio::spawn(async move { s2.remove_service("r").await });
    let added = eventually(LONG, || async {
        store
            .add_service(
                json!({"name": "r", "command": chaos_bin().to_string_lossy()}),
                Wait::Auto,
            )
            .await
            .is_ok()
    })
    .await;
    assert!(added);
    removal.await.unwrap().unwrap();
    assert!(wait_for_pid_exit(old, LONG).await);
    // Whatever the old actor reported while stopping, the new one is what the registry shows.
    let v = store.get_service_info("r").await.unwrap();
    assert_eq!(v.state, S::Healthy);
    let new = v.pid.unwrap();
    assert_ne!(new, old);
    assert!(pid_alive(new));
    let out = store
        .call_tool(
            "r__echo",
            json!({"text": "successor"}).as_object().cloned(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(out.result["content"][0]["text"], "successor");
    store.shutdown().await;
}
