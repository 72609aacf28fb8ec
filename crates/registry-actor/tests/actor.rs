//! The registry actor as its users see it: messages in, replies and events out.

use std::time::{Duration, Instant};

use mcpvisor_model::defaults::EVENT_BUFFER;
use mcpvisor_model::{
    ConfigChange, Event, LogRing, ServiceConfig, ServiceId, ServiceMetrics, ServiceName,
    ServiceSpec, ServiceState, Timestamp, ToolInfo,
};
use mcpvisor_registry_actor::{
    EventStream, LookupError, RegistryActor, RegistryArgs, RegistryMsg, Scope,
};
use ractor::rpc::CallResult;
use ractor::{call, cast, Actor, ActorRef, RpcReplyPort};
use serde_json::json;
use tokio::task::JoinHandle;
use tokio::time::timeout;

/// Generous: only a registry that blocks misses it.
const DEADLINE: Duration = Duration::from_secs(1);

fn id(name: &str) -> ServiceId {
    ServiceId::global(ServiceName::parse(name).unwrap())
}

fn spec(name: &str) -> ServiceSpec {
    ServiceSpec {
        name: ServiceName::parse(name).unwrap(),
        raw: json!({"command": "node"}).as_object().unwrap().clone(),
        config: ServiceConfig::stdio("node", Vec::<String>::new()),
    }
}

fn tool(name: &str) -> ToolInfo {
    ToolInfo {
        name: name.to_owned(),
        description: None,
        input_schema: json!({"type": "object"}).as_object().unwrap().clone(),
        raw: json!({"name": name}),
    }
}

async fn spawn() -> (ActorRef<RegistryMsg>, JoinHandle<()>) {
    Actor::spawn(None, RegistryActor, RegistryArgs::default())
        .await
        .expect("the registry starts")
}

async fn stop(registry: ActorRef<RegistryMsg>, handle: JoinHandle<()>) {
    registry.stop(None);
    handle.await.expect("the registry stops cleanly");
}

fn upsert(registry: &ActorRef<RegistryMsg>, name: &str) {
    cast!(
        registry,
        RegistryMsg::Upsert {
            spec: spec(name),
            id: id(name),
            state: ServiceState::Starting,
            stderr: LogRing::default(),
            metrics: ServiceMetrics::default(),
        }
    )
    .expect("the registry is alive");
}

/// Asks the registry; fails the test unless it answers within [`DEADLINE`]. Returns the answer
/// and how long it took.
async fn ask<T: Send + 'static>(
    registry: &ActorRef<RegistryMsg>,
    build: impl FnOnce(RpcReplyPort<T>) -> RegistryMsg,
) -> (T, Duration) {
    let started = Instant::now();
    match registry.call(build, Some(DEADLINE)).await {
        Ok(CallResult::Success(answer)) => (answer, started.elapsed()),
        Ok(CallResult::Timeout) => panic!("no answer within {DEADLINE:?}"),
        Ok(CallResult::SenderError) => panic!("the registry dropped the question"),
        Err(e) => panic!("the registry is gone: {e}"),
    }
}

async fn subscribe(registry: &ActorRef<RegistryMsg>) -> EventStream {
    call!(registry, |reply| RegistryMsg::Subscribe { reply }).expect("subscribed")
}

async fn next(events: &mut EventStream) -> Event {
    timeout(DEADLINE, events.next())
        .await
        .expect("an event in time")
        .expect("the registry is alive")
}

#[tokio::test]
async fn state_transitions_reach_a_subscriber_in_order() {
    let (registry, handle) = spawn().await;
    let mut events = subscribe(&registry).await;
    upsert(&registry, "db");
    assert!(matches!(
        next(&mut events).await,
        Event::ConfigChanged { change: ConfigChange::Added, service, .. } if service == id("db")
    ));
    let steps = [
        (ServiceState::Starting, ServiceState::Healthy, "connected"),
        (
            ServiceState::Healthy,
            ServiceState::Reconnecting,
            "child exited: signal 9",
        ),
        (
            ServiceState::Reconnecting,
            ServiceState::Healthy,
            "reconnected",
        ),
    ];
    for (i, (from, to, reason)) in steps.iter().enumerate() {
        cast!(
            registry,
            RegistryMsg::State {
                id: id("db"),
                from: *from,
                to: *to,
                reason: (*reason).to_owned(),
                at: Timestamp(1000 + i as u64),
            }
        )
        .unwrap();
    }
    for (i, (from, to, reason)) in steps.iter().enumerate() {
        assert_eq!(
            next(&mut events).await,
            Event::StateChanged {
                service: id("db"),
                from: *from,
                to: *to,
                reason: (*reason).to_owned(),
                at: Timestamp(1000 + i as u64),
            }
        );
    }
    let view = call!(registry, |reply| RegistryMsg::Get {
        scope: Scope::Store,
        name: "db".into(),
        reply
    })
    .unwrap()
    .unwrap();
    assert_eq!(view.state, ServiceState::Healthy);
    assert_eq!(view.last_error.as_deref(), Some("child exited: signal 9"));
    stop(registry, handle).await;
}

#[tokio::test]
async fn a_subscriber_that_never_reads_does_not_block_the_registry() {
    let (registry, handle) = spawn().await;
    let _never_reads = subscribe(&registry).await;
    let mut reader = subscribe(&registry).await;
    let total = 10 * EVENT_BUFFER;
    for i in 0..total {
        cast!(
            registry,
            RegistryMsg::Publish(Event::PersistenceError {
                path: "mcp.json".into(),
                message: format!("disk full #{i}"),
                at: Timestamp(i as u64),
            })
        )
        .unwrap();
    }
    let (services, took) = ask(&registry, |reply| RegistryMsg::List {
        scope: Scope::All,
        reply,
    })
    .await;
    println!("{total} events fanned out, then a query answered in {took:?}");
    assert!(services.is_empty());
    assert_eq!(
        next(&mut reader).await,
        Event::Lagged {
            missed: (total - EVENT_BUFFER) as u64
        }
    );
    // After the gap, the newest events, in order.
    match next(&mut reader).await {
        Event::PersistenceError { at, .. } => {
            assert_eq!(at, Timestamp((total - EVENT_BUFFER) as u64))
        }
        other => panic!("expected the oldest kept event, got {other:?}"),
    }
    stop(registry, handle).await;
}

#[tokio::test]
async fn queries_answer_with_ten_thousand_tools() {
    let (registry, handle) = spawn().await;
    let (services, per_service) = (100, 100);
    let mut events = subscribe(&registry).await;
    for s in 0..services {
        let name = format!("svc{s}");
        upsert(&registry, &name);
        let tools = (0..per_service)
            .map(|t| tool(&format!("tool{s}_{t}")))
            .chain([tool("common")])
            .collect();
        cast!(
            registry,
            RegistryMsg::Tools {
                id: id(&name),
                tools,
                server: None,
                stale: false
            }
        )
        .unwrap();
    }
    // Wait until the last tools update went through.
    let last = id(&format!("svc{}", services - 1));
    loop {
        if let Event::ToolsChanged { service, .. } = next(&mut events).await {
            if service == last {
                break;
            }
        }
    }
    let total = services * (per_service + 1);

    let (tools, list_tools) = ask(&registry, |reply| RegistryMsg::ListTools {
        scope: Scope::Store,
        reply,
    })
    .await;
    assert_eq!(tools.len(), total);

    let (target, resolve_namespaced) = ask(&registry, |reply| RegistryMsg::ResolveTool {
        scope: Scope::Store,
        name: "svc57__tool57_42".into(),
        reply,
    })
    .await;
    let target = target.expect("a namespaced name resolves");
    assert_eq!(
        (target.service, target.tool.as_str()),
        (id("svc57"), "tool57_42")
    );

    let (bare, resolve_bare) = ask(&registry, |reply| RegistryMsg::ResolveTool {
        scope: Scope::Store,
        name: "tool99_0".into(),
        reply,
    })
    .await;
    assert_eq!(
        bare.expect("a unique bare name resolves").service,
        id("svc99")
    );

    let (ambiguous, resolve_ambiguous) = ask(&registry, |reply| RegistryMsg::ResolveTool {
        scope: Scope::Store,
        name: "common".into(),
        reply,
    })
    .await;
    assert!(
        matches!(ambiguous, Err(LookupError::AmbiguousTool { ref candidates, .. }) if candidates.len() == services)
    );

    let (unknown, resolve_unknown) = ask(&registry, |reply| RegistryMsg::ResolveTool {
        scope: Scope::Store,
        name: "svc57__tool57_4x".into(),
        reply,
    })
    .await;
    assert!(
        matches!(unknown, Err(LookupError::UnknownTool { ref suggestions, .. }) if !suggestions.is_empty())
    );

    let (listed, list) = ask(&registry, |reply| RegistryMsg::List {
        scope: Scope::All,
        reply,
    })
    .await;
    assert_eq!(listed.len(), services);
    assert!(listed.iter().all(|v| v.tools == per_service + 1));

    println!(
        "{total} tools: list_tools {list_tools:?}, resolve namespaced {resolve_namespaced:?}, \
         bare {resolve_bare:?}, ambiguous {resolve_ambiguous:?}, unknown with suggestions \
         {resolve_unknown:?}, list services {list:?}"
    );
    stop(registry, handle).await;
}

#[tokio::test]
async fn remove_forgets_the_service_and_its_tools() {
    let (registry, handle) = spawn().await;
    let mut events = subscribe(&registry).await;
    upsert(&registry, "web");
    cast!(
        registry,
        RegistryMsg::Tools {
            id: id("web"),
            tools: vec![tool("fetch")].into(),
            server: None,
            stale: false
        }
    )
    .unwrap();
    cast!(registry, RegistryMsg::Remove { id: id("web") }).unwrap();
    let kinds: Vec<Event> = vec![
        next(&mut events).await,
        next(&mut events).await,
        next(&mut events).await,
    ];
    assert!(matches!(
        kinds[0],
        Event::ConfigChanged {
            change: ConfigChange::Added,
            ..
        }
    ));
    assert!(matches!(kinds[1], Event::ToolsChanged { count: 1, .. }));
    assert!(matches!(
        kinds[2],
        Event::ConfigChanged {
            change: ConfigChange::Removed,
            ..
        }
    ));

    for name in ["web__fetch", "fetch"] {
        let r = call!(registry, |reply| RegistryMsg::ResolveTool {
            scope: Scope::Store,
            name: name.into(),
            reply
        })
        .unwrap();
        assert!(
            matches!(r, Err(LookupError::UnknownTool { .. })),
            "{name}: {r:?}"
        );
    }
    let tools = call!(registry, |reply| RegistryMsg::ListTools {
        scope: Scope::All,
        reply
    })
    .unwrap();
    assert!(tools.is_empty());
    let got = call!(registry, |reply| RegistryMsg::Get {
        scope: Scope::Store,
        name: "web".into(),
        reply
    })
    .unwrap();
    assert!(matches!(got, Err(LookupError::UnknownService { .. })));
    let snapshot = call!(registry, |reply| RegistryMsg::Snapshot { reply }).unwrap();
    assert!(snapshot.is_empty());
    stop(registry, handle).await;
}

#[tokio::test]
async fn process_reports_show_in_views_and_snapshots() {
    let (registry, handle) = spawn().await;
    upsert(&registry, "db");
    cast!(
        registry,
        RegistryMsg::Process {
            id: id("db"),
            pid: Some(31337),
            restarts: 2,
            sandbox: Some(serde_json::json!({"network": "none"}))
        }
    )
    .unwrap();
    let snapshot = call!(registry, |reply| RegistryMsg::Snapshot { reply }).unwrap();
    assert_eq!(snapshot.len(), 1);
    assert_eq!((snapshot[0].pid, snapshot[0].restarts), (Some(31337), 2));
    assert_eq!(
        snapshot[0].sandbox,
        Some(serde_json::json!({"network": "none"}))
    );
    assert_eq!(snapshot[0].name, "db");
    stop(registry, handle).await;
}

#[tokio::test]
async fn an_empty_tool_separator_is_refused_at_spawn() {
    let args = RegistryArgs {
        tool_separator: String::new(),
        events: None,
    };
    assert!(Actor::spawn(None, RegistryActor, args).await.is_err());
}
