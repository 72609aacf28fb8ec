//! The pure core's behaviour: records, transitions, views, the tool index and scopes.

use std::time::Duration;

use mcpvisor_model::defaults::MAX_TOOL_NAME_LEN;
use mcpvisor_model::{AgentId, ServiceConfig, ToolInfo};
use serde_json::json;

use super::*;

fn name(s: &str) -> ServiceName {
    ServiceName::parse(s).unwrap()
}

fn store(s: &str) -> ServiceId {
    ServiceId::global(name(s))
}

fn agent_id(agent: &str, s: &str) -> ServiceId {
    ServiceId::agent(name(agent), name(s))
}

fn agent(a: &str) -> Scope {
    Scope::Agent(AgentId::parse(a).unwrap())
}

fn spec(s: &str) -> ServiceSpec {
    let raw = json!({"command": "node", "args": ["server.js"], "env": {"TOKEN": "secret"}});
    ServiceSpec {
        name: name(s),
        raw: raw.as_object().unwrap().clone(),
        config: ServiceConfig::stdio("node", ["server.js"]),
    }
}

fn tool(n: &str) -> ToolInfo {
    ToolInfo {
        name: n.to_owned(),
        description: Some(format!("the {n} tool")),
        input_schema: Default::default(),
        raw: json!({"name": n}),
    }
}

fn tools(names: &[&str]) -> ToolList {
    names.iter().map(|n| tool(n)).collect()
}

/// A registry holding `services` (id, tool names), all `healthy`.
fn registry_with(sep: &str, services: &[(ServiceId, &[&str])]) -> Registry {
    let mut r = Registry::new(sep);
    let now = Moment::now();
    for (id, names) in services {
        r.upsert(
            id.clone(),
            spec(id.name.as_str()),
            ServiceState::Healthy,
            LogRing::default(),
            ServiceMetrics::default(),
            now,
        );
        r.set_tools(id, tools(names), None, false, now.wall);
    }
    r
}

fn listed(r: &Registry, scope: &Scope) -> Vec<String> {
    r.list_tools(scope).into_iter().map(|t| t.name).collect()
}

#[test]
fn tools_are_listed_and_resolved_by_namespaced_name() {
    let r = registry_with(
        "__",
        &[
            (store("git"), &["status", "log"]),
            (store("time"), &["now"]),
        ],
    );
    assert_eq!(
        listed(&r, &Scope::Store),
        vec!["git__status", "git__log", "time__now"]
    );
    let t = r.resolve_tool(&Scope::Store, "git__log").unwrap();
    assert_eq!(
        t,
        ToolTarget {
            service: store("git"),
            tool: "log".into(),
            state: ServiceState::Healthy
        }
    );
}

#[test]
fn a_unique_bare_name_resolves() {
    let r = registry_with(
        "__",
        &[(store("git"), &["status"]), (store("time"), &["now"])],
    );
    let t = r.resolve_tool(&Scope::Store, "now").unwrap();
    assert_eq!((t.service, t.tool.as_str()), (store("time"), "now"));
}

#[test]
fn an_ambiguous_bare_name_lists_the_namespaced_candidates() {
    let r = registry_with("__", &[(store("a"), &["echo"]), (store("b"), &["echo"])]);
    assert_eq!(
        r.resolve_tool(&Scope::Store, "echo"),
        Err(LookupError::AmbiguousTool {
            name: "echo".into(),
            candidates: vec!["a__echo".into(), "b__echo".into()],
        })
    );
    // The namespaced names still resolve.
    assert_eq!(
        r.resolve_tool(&Scope::Store, "b__echo").unwrap().service,
        store("b")
    );
}

#[test]
fn an_unknown_tool_suggests_close_names() {
    let r = registry_with(
        "__",
        &[(
            store("everything"),
            &["echo", "add", "longRunningOperation"],
        )],
    );
    match r.resolve_tool(&Scope::Store, "everything__ecco") {
        Err(LookupError::UnknownTool { name, suggestions }) => {
            assert_eq!(name, "everything__ecco");
            assert_eq!(
                suggestions.first().map(String::as_str),
                Some("everything__echo")
            );
            assert!(suggestions.len() <= 3);
        }
        other => panic!("expected UnknownTool, got {other:?}"),
    }
    match r.resolve_tool(&Scope::Store, "eccho") {
        Err(LookupError::UnknownTool { suggestions, .. }) => {
            assert!(suggestions.contains(&"echo".to_string()), "{suggestions:?}")
        }
        other => panic!("expected UnknownTool, got {other:?}"),
    }
    match r.resolve_tool(&Scope::Store, "zzzzzzzzzzzzzz") {
        Err(LookupError::UnknownTool { suggestions, .. }) => assert!(suggestions.is_empty()),
        other => panic!("expected UnknownTool, got {other:?}"),
    }
}

#[test]
fn an_empty_scope_answers_unknown_tool() {
    let r = Registry::default();
    assert!(matches!(
        r.resolve_tool(&Scope::Store, "x"),
        Err(LookupError::UnknownTool { .. })
    ));
    assert!(r.list_tools(&Scope::All).is_empty());
}

#[test]
fn the_separator_is_configurable() {
    let r = registry_with(".", &[(store("git"), &["status"])]);
    assert_eq!(r.separator(), ".");
    assert_eq!(listed(&r, &Scope::Store), vec!["git.status"]);
    assert!(r.resolve_tool(&Scope::Store, "git.status").is_ok());
    assert!(r.resolve_tool(&Scope::Store, "git__status").is_err());
}

#[test]
fn long_tool_names_are_shortened_and_resolve_both_ways() {
    let long = format!("very_long_tool_{}", "x".repeat(70));
    let r = registry_with("__", &[(store("svc"), &[long.as_str(), "short"])]);
    let names = listed(&r, &Scope::Store);
    assert!(
        names.iter().all(|n| n.len() <= MAX_TOOL_NAME_LEN),
        "{names:?}"
    );
    assert_eq!(names[1], "svc__short");
    let short = &names[0];
    assert_ne!(short, &format!("svc__{long}"));
    // Deterministic: another registry (another process, another run) lists the same name.
    let again = registry_with("__", &[(store("svc"), &[long.as_str()])]);
    assert_eq!(&listed(&again, &Scope::Store)[0], short);
    for n in [short.clone(), format!("svc__{long}"), long.clone()] {
        let t = r.resolve_tool(&Scope::Store, &n).unwrap();
        assert_eq!(t.tool, long, "resolving {n}");
    }
}

#[test]
fn two_agents_with_the_same_local_name_see_only_their_own_tools() {
    let r = registry_with(
        "__",
        &[
            (agent_id("alice", "db"), &["query"]),
            (agent_id("bob", "db"), &["drop"]),
        ],
    );
    assert_eq!(listed(&r, &agent("alice")), vec!["db__query"]);
    assert_eq!(listed(&r, &agent("bob")), vec!["db__drop"]);
    let t = r.resolve_tool(&agent("alice"), "db__query").unwrap();
    assert_eq!(t.service, agent_id("alice", "db"));
    assert!(r.resolve_tool(&agent("alice"), "db__drop").is_err());
    assert!(r.resolve_tool(&agent("alice"), "drop").is_err());
    // Suggestions never leak another scope's names.
    if let Err(LookupError::UnknownTool { suggestions, .. }) =
        r.resolve_tool(&agent("alice"), "db__dro")
    {
        assert!(
            !suggestions.iter().any(|s| s.contains("drop")),
            "{suggestions:?}"
        );
    }
    assert!(r.resolve_tool(&agent("carol"), "db__query").is_err());
}

#[test]
fn the_store_scope_does_not_see_agent_services() {
    let r = registry_with(
        "__",
        &[
            (store("web"), &["fetch"]),
            (agent_id("alice", "db"), &["query"]),
        ],
    );
    assert_eq!(listed(&r, &Scope::Store), vec!["web__fetch"]);
    assert!(r.resolve_tool(&Scope::Store, "query").is_err());
    assert!(r.resolve_tool(&Scope::Store, "db__query").is_err());
    let names: Vec<String> = r
        .list(&Scope::Store, Instant::now())
        .into_iter()
        .map(|v| v.name)
        .collect();
    assert_eq!(names, vec!["web"]);
    assert!(r.get(&Scope::Store, "db", Instant::now()).is_err());
    // ... and an agent does not see the store's services.
    assert!(r.get(&agent("alice"), "web", Instant::now()).is_err());
    assert!(r.resolve_tool(&agent("alice"), "fetch").is_err());
}

#[test]
fn the_all_scope_sees_everything_by_display_id() {
    let r = registry_with(
        "__",
        &[
            (store("db"), &["query"]),
            (agent_id("alice", "db"), &["query"]),
            (agent_id("bob", "db"), &["drop"]),
        ],
    );
    let now = Instant::now();
    let names: Vec<String> = r
        .list(&Scope::All, now)
        .into_iter()
        .map(|v| v.name)
        .collect();
    assert_eq!(names, vec!["db", "alice/db", "bob/db"]);
    assert_eq!(
        listed(&r, &Scope::All),
        vec!["db__query", "alice/db__query", "bob/db__drop"]
    );
    assert_eq!(
        r.resolve_tool(&Scope::All, "alice/db__query")
            .unwrap()
            .service,
        agent_id("alice", "db")
    );
    assert_eq!(
        r.resolve_tool(&Scope::All, "drop").unwrap().service,
        agent_id("bob", "db")
    );
    assert!(matches!(
        r.resolve_tool(&Scope::All, "query"),
        Err(LookupError::AmbiguousTool { candidates, .. }) if candidates.len() == 2
    ));
    assert_eq!(
        r.get(&Scope::All, "bob/db", now).unwrap().id,
        agent_id("bob", "db")
    );
    assert_eq!(r.get(&Scope::All, "db", now).unwrap().id, store("db"));
    assert_eq!(r.snapshot(now).len(), 3);
}

#[test]
fn an_unknown_service_suggests_names_of_its_scope_only() {
    let r = registry_with(
        "__",
        &[(store("memory"), &[]), (agent_id("alice", "memo"), &[])],
    );
    match r.get(&Scope::Store, "memroy", Instant::now()) {
        Err(LookupError::UnknownService { name, suggestions }) => {
            assert_eq!(name, "memroy");
            assert_eq!(suggestions, vec!["memory".to_string()]);
        }
        other => panic!("expected UnknownService, got {other:?}"),
    }
    // Not even a valid name: still a lookup error, never a panic.
    assert!(r.get(&Scope::All, "a/b/c", Instant::now()).is_err());
    assert!(r.get(&Scope::Store, "", Instant::now()).is_err());
}

#[test]
fn upsert_adds_then_updates_with_config_events() {
    let mut r = Registry::default();
    let t0 = Moment::now();
    let id = store("db");
    let ev = r.upsert(
        id.clone(),
        spec("db"),
        ServiceState::Starting,
        LogRing::default(),
        ServiceMetrics::default(),
        t0,
    );
    assert!(matches!(
        &ev[..],
        [Event::ConfigChanged {
            change: ConfigChange::Added,
            ..
        }]
    ));
    assert_eq!(r.record(&id).unwrap().reason, "registered");
    r.set_tools(&id, tools(&["q"]), None, false, t0.wall);

    let same = r.upsert(
        id.clone(),
        spec("db"),
        ServiceState::Starting,
        LogRing::default(),
        ServiceMetrics::default(),
        t0,
    );
    assert!(matches!(
        &same[..],
        [Event::ConfigChanged {
            change: ConfigChange::Updated,
            ..
        }]
    ));

    let disabled = r.upsert(
        id.clone(),
        spec("db"),
        ServiceState::NotStarted,
        LogRing::default(),
        ServiceMetrics::default(),
        t0,
    );
    match &disabled[..] {
        [Event::ConfigChanged {
            change: ConfigChange::Updated,
            ..
        }, Event::StateChanged {
            from, to, reason, ..
        }] => {
            assert_eq!(
                (*from, *to),
                (ServiceState::Starting, ServiceState::NotStarted)
            );
            assert_eq!(reason, "config updated");
        }
        other => panic!("unexpected events {other:?}"),
    }
    assert_eq!(r.len(), 1);
    assert_eq!(
        r.record(&id).unwrap().tools.len(),
        1,
        "tools kept until re-listed"
    );
}

#[test]
fn transitions_update_state_reason_and_last_error() {
    let mut r = registry_with("__", &[(store("db"), &[])]);
    let id = store("db");
    let t0 = Instant::now();
    let ev = r
        .set_state(
            &id,
            ServiceState::Healthy,
            ServiceState::Reconnecting,
            "child exited".into(),
            Timestamp(5),
            t0,
        )
        .unwrap();
    assert_eq!(
        ev,
        Event::StateChanged {
            service: id.clone(),
            from: ServiceState::Healthy,
            to: ServiceState::Reconnecting,
            reason: "child exited".into(),
            at: Timestamp(5),
        }
    );
    r.set_state(
        &id,
        ServiceState::Reconnecting,
        ServiceState::Healthy,
        "reconnected".into(),
        Timestamp(6),
        t0,
    );
    let v = r
        .get(&Scope::Store, "db", t0 + Duration::from_millis(1500))
        .unwrap();
    assert_eq!(v.state, ServiceState::Healthy);
    assert_eq!(v.reason, "reconnected");
    assert_eq!(
        v.last_error.as_deref(),
        Some("child exited"),
        "kept after recovery"
    );
    assert_eq!(v.state_for_ms, 1500);
    for (to, why) in [
        (ServiceState::Unreachable, "gave up"),
        (ServiceState::Failed, "crash loop"),
    ] {
        r.set_state(&id, ServiceState::Healthy, to, why.into(), Timestamp(7), t0);
        assert_eq!(r.record(&id).unwrap().last_error.as_deref(), Some(why));
    }
    r.set_state(
        &id,
        ServiceState::Failed,
        ServiceState::Stopped,
        "stopped".into(),
        Timestamp(8),
        t0,
    );
    assert_eq!(
        r.record(&id).unwrap().last_error.as_deref(),
        Some("crash loop")
    );
}

#[test]
fn reports_about_unknown_services_change_nothing() {
    let mut r = Registry::default();
    let id = store("ghost");
    assert!(r
        .set_state(
            &id,
            ServiceState::Starting,
            ServiceState::Healthy,
            "x".into(),
            Timestamp(1),
            Instant::now()
        )
        .is_none());
    assert!(r
        .set_tools(&id, tools(&["t"]), None, false, Timestamp(1))
        .is_none());
    assert!(!r.set_process(&id, Some(1), 1, None));
    assert!(r.remove(&id, Timestamp(1)).is_none());
    assert!(r.is_empty());
    assert!(r.resolve_tool(&Scope::Store, "t").is_err());
}

#[test]
fn a_tools_update_replaces_the_old_tools_in_the_index() {
    let mut r = registry_with("__", &[(store("svc"), &["old", "kept"])]);
    let id = store("svc");
    let info = ServerInfo {
        name: "srv".into(),
        version: "1".into(),
        ..Default::default()
    };
    let ev = r
        .set_tools(
            &id,
            tools(&["kept", "new"]),
            Some(info.clone()),
            true,
            Timestamp(9),
        )
        .unwrap();
    assert_eq!(
        ev,
        Event::ToolsChanged {
            service: id.clone(),
            count: 2,
            at: Timestamp(9)
        }
    );
    assert!(r.resolve_tool(&Scope::Store, "old").is_err());
    assert!(r.resolve_tool(&Scope::Store, "svc__old").is_err());
    assert!(r.resolve_tool(&Scope::Store, "new").is_ok());
    assert!(r.list_tools(&Scope::Store).iter().all(|t| t.stale));
    // No server info in an update keeps the known one.
    r.set_tools(&id, tools(&["kept"]), None, false, Timestamp(10));
    assert_eq!(r.record(&id).unwrap().server, Some(info));
}

#[test]
fn remove_forgets_the_service_and_its_tools() {
    let mut r = registry_with(
        "__",
        &[(store("a"), &["echo"]), (agent_id("alice", "b"), &["echo"])],
    );
    let ev = r.remove(&agent_id("alice", "b"), Timestamp(3)).unwrap();
    assert!(matches!(
        ev,
        Event::ConfigChanged {
            change: ConfigChange::Removed,
            ..
        }
    ));
    assert!(r.resolve_tool(&agent("alice"), "b__echo").is_err());
    assert!(r.resolve_tool(&Scope::All, "alice/b__echo").is_err());
    assert_eq!(
        r.resolve_tool(&Scope::All, "echo").unwrap().service,
        store("a")
    );
    assert_eq!(
        r.scope_index_count(),
        1,
        "the emptied agent index is dropped"
    );
    r.remove(&store("a"), Timestamp(4));
    assert_eq!(r.scope_index_count(), 0);
    assert!(r.list_tools(&Scope::All).is_empty());
}

#[test]
fn views_redact_secrets_and_carry_stderr_only_when_asked() {
    let mut r = Registry::default();
    let stderr = LogRing::default();
    for i in 0..30 {
        stderr.push_line(&format!("line {i}"));
    }
    let id = store("db");
    r.upsert(
        id.clone(),
        spec("db"),
        ServiceState::Starting,
        stderr,
        ServiceMetrics::default(),
        Moment::now(),
    );
    r.set_process(&id, Some(4242), 3, None);
    let now = Instant::now();
    let got = r.get(&Scope::Store, "db", now).unwrap();
    assert_eq!(got.config["env"]["TOKEN"], "***");
    assert_eq!(got.stderr_tail.len(), STDERR_TAIL_LINES);
    assert_eq!(got.stderr_tail.last().map(String::as_str), Some("line 29"));
    assert_eq!((got.pid, got.restarts), (Some(4242), 3));
    assert_eq!(got.transport, mcpvisor_model::TransportKind::Stdio);
    let listed = &r.list(&Scope::Store, now)[0];
    assert!(listed.stderr_tail.is_empty());
    let json = serde_json::to_value(listed).unwrap();
    for field in [
        "name",
        "state",
        "transport",
        "tools",
        "restarts",
        "last_error",
    ] {
        assert!(json.get(field).is_some(), "status --json needs {field}");
    }
    assert_eq!(json["transport"], "stdio");
}

#[test]
fn resolving_reports_the_services_current_state() {
    let mut r = registry_with("__", &[(store("db"), &["q"])]);
    let id = store("db");
    r.set_state(
        &id,
        ServiceState::Healthy,
        ServiceState::Reconnecting,
        "eof".into(),
        Timestamp(1),
        Instant::now(),
    );
    let t = r.resolve_tool(&Scope::Store, "db__q").unwrap();
    assert_eq!(t.state, ServiceState::Reconnecting);
}
