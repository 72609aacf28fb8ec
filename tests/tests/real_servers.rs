//! mcpvisor against real MCP servers nobody here wrote: npm server-everything (stdio and
//! streamable HTTP) and server-memory, PyPI mcp-server-time. They are installed into
//! `.test-servers/` by `scripts/install-test-servers.sh` (run by the README's test command).

use std::time::Duration;

use mcpvisor_model::ServiceState;
use mcpvisor_supervisor::{Store, StoreOptions, Wait};
use mcpvisor_tests::{
    deadline, free_port, node_server, pid_alive, servers_dir, wait_for_pid_exit, HttpServer,
};
use serde_json::{json, Value};

use ServiceState as S;

const LONG: Duration = Duration::from_secs(30);

fn text(out: &Value) -> String {
    out["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

async fn store() -> Store {
    Store::open(StoreOptions::new()).await.unwrap()
}

#[tokio::test]
async fn server_everything_over_stdio_survives_sigkill_with_its_tools() {
    let store = store().await;
    store
        .add_service(
            json!({"name": "everything", "command": "node", "args": [node_server("server-everything"), "stdio"]}),
            Wait::Auto,
        )
        .await
        .unwrap();
    store
        .wait_for(&["everything"], S::Healthy, LONG)
        .await
        .unwrap();
    let info = store.get_service_info("everything").await.unwrap();
    assert!(info.tools >= 5, "only {} tools", info.tools);
    let out = store
        .call_tool(
            "everything__echo",
            json!({"message": "hi"}).as_object().cloned(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(text(&out.result), "Echo: hi");
    // SIGKILL: back with every tool, not zero.
    let pid = info.pid.unwrap();
    mcpvisor_tests::kill_pid(pid);
    assert!(wait_for_pid_exit(pid, LONG).await);
    let mut events = store.subscribe().await.unwrap();
    let _ = deadline(LONG, "reconnect", async {
        loop {
            let v = store.get_service_info("everything").await.unwrap();
            if v.state == S::Healthy && v.pid.is_some_and(|p| p != pid) {
                return v;
            }
            let _ = tokio::time::timeout(Duration::from_millis(200), events.next()).await;
        }
    })
    .await;
    let after = store.get_service_info("everything").await.unwrap();
    assert_eq!(after.tools, info.tools, "tools after restart differ");
    assert_eq!(after.restarts, 1);
    let out = store
        .call_tool(
            "echo",
            json!({"message": "again"}).as_object().cloned(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(text(&out.result), "Echo: again");
    store.shutdown().await;
    assert!(!pid_alive(after.pid.unwrap()));
}

#[tokio::test]
async fn server_memory_and_python_time_server_work_side_by_side() {
    let store = store().await;
    let time = servers_dir().join("venv/bin/mcp-server-time");
    let report = store
        .add_service(
            json!({"mcpServers": {
                "memory": {"command": "node", "args": [node_server("server-memory")],
                           "env": {"MEMORY_FILE_PATH": std::env::temp_dir().join(format!("mcpvisor-memory-{}.jsonl", std::process::id())).to_string_lossy()}},
                "time": {"command": time.to_string_lossy(), "args": ["--local-timezone", "UTC"]}
            }}),
            Wait::Auto,
        )
        .await
        .unwrap();
    assert_eq!(report.added.len(), 2, "{report:?}");
    store
        .wait_for(&["memory", "time"], S::Healthy, LONG)
        .await
        .unwrap();
    let tools: Vec<String> = store
        .list_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert!(
        tools.contains(&"memory__read_graph".to_string()),
        "{tools:?}"
    );
    assert!(
        tools.contains(&"time__get_current_time".to_string()),
        "{tools:?}"
    );
    let out = store
        .call_tool("memory__read_graph", None, None)
        .await
        .unwrap();
    assert!(!out.is_error, "{}", out.result);
    let out = store
        .call_tool(
            "time__get_current_time",
            json!({"timezone": "UTC"}).as_object().cloned(),
            None,
        )
        .await
        .unwrap();
    assert!(!out.is_error);
    assert!(text(&out.result).contains("UTC"), "{}", out.result);
    store.shutdown().await;
}

/// A remote server-everything (`mode`: `streamableHttp` or `sse`) is supervised as service
/// `name` at `path`: healthy with its tools, calls work, it goes away (`reconnecting`, calls
/// fail fast) and returns on the same port (`healthy` again, calls work). Probes run every
/// 30 s: the loss must be seen through the connection itself, within a second of the SIGKILL.
async fn remote_server_goes_away_and_returns(mode: &str, name: &str, path: &str, transport: &str) {
    let port = free_port();
    let server = HttpServer::start_mode(port, mode).await;
    let store = store().await;
    let mut events = store.subscribe().await.unwrap();
    store
        .add_service(
            json!({"name": name, "url": format!("http://127.0.0.1:{port}{path}"),
                   "health": {"interval": "30s", "timeout": "1s"},
                   "backoff": {"initial": "50ms", "max": "300ms"}}),
            Wait::Auto,
        )
        .await
        .unwrap();
    store.wait_for(&[name], S::Healthy, LONG).await.unwrap();
    let info = store.get_service_info(name).await.unwrap();
    assert_eq!(info.transport.as_str(), transport);
    assert!(info.tools >= 5, "{}", info.tools);
    let echo = format!("{name}__echo");
    let out = store
        .call_tool(
            &echo,
            json!({"message": "over the wire"}).as_object().cloned(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(text(&out.result), "Echo: over the wire");
    let killed = std::time::Instant::now();
    server.kill().await;
    mcpvisor_tests::next_transition_to(&mut events, S::Reconnecting, LONG).await;
    let took = killed.elapsed();
    eprintln!("{mode} server SIGKILLed → reconnecting event: {took:?}");
    assert!(took < Duration::from_secs(1), "reconnecting after {took:?}");
    let err = store.call_tool(&echo, None, None).await.unwrap_err();
    assert!(err.to_string().contains("reconnecting"), "{err}");
    let server = HttpServer::start_mode(port, mode).await;
    store.wait_for(&[name], S::Healthy, LONG).await.unwrap();
    let out = store
        .call_tool(&echo, json!({"message": "back"}).as_object().cloned(), None)
        .await
        .unwrap();
    assert_eq!(text(&out.result), "Echo: back");
    store.shutdown().await;
    server.kill().await;
}

#[tokio::test]
async fn streamable_http_server_goes_away_and_returns() {
    remote_server_goes_away_and_returns("streamableHttp", "remote", "/mcp", "streamable-http")
        .await;
}

#[tokio::test]
async fn legacy_sse_server_is_supervised_too() {
    remote_server_goes_away_and_returns("sse", "legacy", "/sse", "sse").await;
}
