//! Tests of the `chaos-mcp` fault-injection server itself: every fault must observably happen.
//!
//! Every process is spawned through [`ChaosProcess`] in its own process group; dropping it
//! SIGKILLs the group (grandchildren included). Waits are bounded by deadlines.

use std::{
    os::unix::process::ExitStatusExt,
    time::{Duration, Instant},
};

use mcpvisor_tests::{
    chaos::{
        args::{DEFAULT_GARBAGE, LATE_TOOL},
        harness::{call, ping, result_text},
    },
    chaos_bin, deadline, kill_pid, pid_alive, process_group, wait_for_pid_exit, ChaosProcess,
    StderrCapture, ToolListWatcher,
};
use rmcp::{model::ErrorCode, transport::StreamableHttpClientTransport, ServiceError, ServiceExt};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

const BIN: &str = env!("CARGO_BIN_EXE_chaos-mcp");
/// Upper bound for anything that is expected to happen.
const T: Duration = Duration::from_secs(3);
/// Window in which something is expected *not* to happen.
const QUIET: Duration = Duration::from_millis(400);

fn spawn(args: &[&str]) -> ChaosProcess {
    ChaosProcess::spawn_command(ChaosProcess::command_for(BIN, args)).expect("spawn chaos-mcp")
}

/// Spawn with stderr drained into a capture (so logging never blocks the server).
fn spawn_drained(args: &[&str]) -> (ChaosProcess, StderrCapture) {
    let mut process = spawn(args);
    let stderr = process.capture_stderr();
    (process, stderr)
}

fn tool_names(tools: &[rmcp::model::Tool]) -> Vec<String> {
    tools.iter().map(|tool| tool.name.to_string()).collect()
}

fn is_tool_error(result: &rmcp::model::CallToolResult) -> bool {
    result.is_error == Some(true)
}

#[tokio::test]
async fn helpers_find_binary_and_processes() {
    let found = chaos_bin().canonicalize().unwrap();
    assert_eq!(found, std::path::Path::new(BIN).canonicalize().unwrap());
    assert!(pid_alive(std::process::id()));
    assert!(!pid_alive(u32::MAX - 1));
}

#[tokio::test]
async fn basic_tools_behave() {
    let (mut process, _stderr) = spawn_drained(&[]);
    let client = deadline(T, "initialize", process.connect()).await.unwrap();

    let info = client.peer_info().expect("server info");
    assert_eq!(info.server_info.as_ref().unwrap().name, "chaos-mcp");
    assert_eq!(
        info.capabilities.tools.as_ref().unwrap().list_changed,
        Some(true)
    );

    let tools = deadline(T, "list tools", client.list_all_tools())
        .await
        .unwrap();
    let names = tool_names(&tools);
    for expected in ["echo", "add", "sleep", "fail", "pids", "chaos"] {
        assert!(
            names.contains(&expected.to_owned()),
            "{expected} in {names:?}"
        );
    }
    for tool in &tools {
        assert_eq!(tool.input_schema.get("type"), Some(&json!("object")));
    }

    let echo = call(&client, "echo", json!({"text": "hello"}))
        .await
        .unwrap();
    assert!(!is_tool_error(&echo));
    assert_eq!(result_text(&echo), "hello");

    let add = call(&client, "add", json!({"a": 2, "b": 3})).await.unwrap();
    assert_eq!(result_text(&add), "5");
    let add = call(&client, "add", json!({"a": 1.5, "b": 2}))
        .await
        .unwrap();
    assert_eq!(result_text(&add), "3.5");

    let start = Instant::now();
    let slept = call(&client, "sleep", json!({"ms": 60})).await.unwrap();
    assert!(start.elapsed() >= Duration::from_millis(60));
    assert_eq!(result_text(&slept), "slept 60");

    let fail = call(&client, "fail", json!({"message": "boom"}))
        .await
        .unwrap();
    assert!(is_tool_error(&fail));
    assert_eq!(result_text(&fail), "boom");
    let fail = call(&client, "fail", json!({})).await.unwrap();
    assert!(is_tool_error(&fail));

    // Bad arguments are tool errors, not crashes.
    for (tool, args) in [
        ("add", json!({"a": "x", "b": 1})),
        ("add", json!({"a": 1})),
        ("echo", json!({})),
        ("echo", json!({"text": 5})),
        ("sleep", json!({"ms": -1})),
        ("chaos", json!({})),
        ("chaos", json!({"action": "no-such-action"})),
        ("chaos", json!({"action": "stderr_flood", "bytes": "many"})),
    ] {
        let result = call(&client, tool, args.clone()).await.unwrap();
        assert!(
            is_tool_error(&result),
            "{tool} {args} should be a tool error"
        );
    }
    // An unknown tool is a protocol error.
    assert!(matches!(
        call(&client, "no_such_tool", json!({})).await,
        Err(ServiceError::McpError(_))
    ));
    // Still alive and answering.
    assert!(ping(&client).await.is_ok());
    let echo = call(&client, "echo", json!({"text": "still here"}))
        .await
        .unwrap();
    assert_eq!(result_text(&echo), "still here");
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn synthetic_tools_are_listed_and_echo_their_arguments() {
    let (mut process, _stderr) = spawn_drained(&["--tools", "5"]);
    let client = deadline(T, "initialize", process.connect()).await.unwrap();
    let names = tool_names(&client.list_all_tools().await.unwrap());
    for i in 0..5 {
        assert!(
            names.contains(&format!("tool_{i}")),
            "tool_{i} in {names:?}"
        );
    }
    assert!(!names.contains(&"tool_5".to_owned()));
    let args = json!({"text": "x", "n": 1});
    let result = call(&client, "tool_3", args.clone()).await.unwrap();
    assert!(!is_tool_error(&result));
    let echoed: Value = serde_json::from_str(&result_text(&result)).unwrap();
    assert_eq!(echoed, args);
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn exit_at_start_exits_with_code_before_reading() {
    let (mut process, stderr) = spawn_drained(&["--exit-at-start", "7"]);
    let status = process.wait_exit(T).await.expect("exited");
    assert_eq!(status.code(), Some(7));
    let mut out = Vec::new();
    process
        .stdout
        .take()
        .unwrap()
        .read_to_end(&mut out)
        .await
        .unwrap();
    assert!(out.is_empty(), "nothing on stdout");
    assert!(stderr.wait_for(T, |s| s.contains("exiting at start")).await);
}

#[tokio::test]
async fn exit_after_calls_closes_transport_after_n_calls() {
    let (mut process, stderr) = spawn_drained(&["--exit-after-calls", "2", "--exit-code", "5"]);
    let client = deadline(T, "initialize", process.connect()).await.unwrap();
    for i in 0..2 {
        let result = call(&client, "echo", json!({"text": format!("call {i}")}))
            .await
            .unwrap_or_else(|e| panic!("call {i}: {e}; stderr: {}", stderr.text()));
        assert_eq!(result_text(&result), format!("call {i}"));
    }
    // The third call is never answered: the transport closes instead.
    let third = deadline(T, "third call", call(&client, "echo", json!({"text": "3"}))).await;
    assert!(third.is_err(), "third call must fail, got {third:?}");
    deadline(T, "client sees the transport close", client.waiting())
        .await
        .unwrap();
    let status = process.wait_exit(T).await.expect("exited");
    assert_eq!(status.code(), Some(5));
}

#[tokio::test]
async fn exit_action_exits_now_with_code() {
    let (mut process, _stderr) = spawn_drained(&[]);
    let client = deadline(T, "initialize", process.connect()).await.unwrap();
    let result = deadline(
        T,
        "exit call",
        call(&client, "chaos", json!({"action": "exit", "code": 9})),
    )
    .await;
    assert!(result.is_err(), "exit now never answers, got {result:?}");
    let status = process.wait_exit(T).await.expect("exited");
    assert_eq!(status.code(), Some(9));
}

#[tokio::test]
async fn exit_action_after_response() {
    let (mut process, _stderr) = spawn_drained(&[]);
    let client = deadline(T, "initialize", process.connect()).await.unwrap();
    let result = call(
        &client,
        "chaos",
        json!({"action": "exit", "code": 4, "after_response": true}),
    )
    .await
    .unwrap();
    assert!(!is_tool_error(&result));
    deadline(T, "transport closes", client.waiting())
        .await
        .unwrap();
    let status = process.wait_exit(T).await.expect("exited");
    assert_eq!(status.code(), Some(4));
}

#[tokio::test]
async fn exit_after_ms_exits_on_its_own() {
    let (mut process, _stderr) = spawn_drained(&["--exit-after-ms", "150", "--exit-code", "6"]);
    let _client = deadline(T, "initialize", process.connect()).await.unwrap();
    let status = process.wait_exit(T).await.expect("exited");
    assert_eq!(status.code(), Some(6));
}

async fn assert_hung(client: &rmcp::service::Peer<rmcp::RoleClient>, pid: u32) {
    assert!(
        tokio::time::timeout(QUIET, ping(client)).await.is_err(),
        "ping must not be answered"
    );
    assert!(
        tokio::time::timeout(QUIET, client.list_all_tools())
            .await
            .is_err(),
        "tools/list must not be answered"
    );
    assert!(pid_alive(pid));
}

#[tokio::test]
async fn hang_after_calls_stops_answering_everything() {
    let (mut process, stderr) = spawn_drained(&["--hang-after-calls", "1"]);
    let pid = process.pid();
    let client = deadline(T, "initialize", process.connect()).await.unwrap();
    assert!(ping(&client).await.is_ok());
    let result = call(&client, "echo", json!({"text": "last"}))
        .await
        .unwrap();
    assert_eq!(result_text(&result), "last");
    assert_hung(&client, pid).await;

    // Closing stdin does not wake a hung server: it stays alive until killed.
    drop(client);
    assert!(stderr.wait_for(T, |s| s.contains("stdin closed")).await);
    assert!(process.wait_exit(QUIET).await.is_none(), "still running");
    assert!(pid_alive(pid));
    process.kill_all();
    let status = process.wait_exit(T).await.expect("killed");
    assert_eq!(status.signal(), Some(libc::SIGKILL));
}

#[tokio::test]
async fn hang_action_stops_answering_ping() {
    let (mut process, _stderr) = spawn_drained(&[]);
    let pid = process.pid();
    let client = deadline(T, "initialize", process.connect()).await.unwrap();
    assert!(ping(&client).await.is_ok());
    let result = call(&client, "chaos", json!({"action": "hang"}))
        .await
        .unwrap();
    assert_eq!(result_text(&result), "hanging");
    assert_hung(&client, pid).await;
}

#[tokio::test]
async fn hang_at_start_never_answers_initialize() {
    let (mut process, _stderr) = spawn_drained(&["--hang-at-start"]);
    let pid = process.pid();
    assert!(
        tokio::time::timeout(QUIET, process.connect())
            .await
            .is_err(),
        "initialize must not be answered"
    );
    assert!(pid_alive(pid));
}

#[tokio::test]
async fn close_stdout_action_gives_eof_while_process_lives() {
    let (mut process, stderr) = spawn_drained(&[]);
    let pid = process.pid();
    let client = deadline(T, "initialize", process.connect()).await.unwrap();
    let result = call(&client, "chaos", json!({"action": "close_stdout"}))
        .await
        .unwrap();
    assert!(!is_tool_error(&result));
    deadline(T, "client sees EOF", client.waiting())
        .await
        .unwrap();
    assert!(pid_alive(pid), "process must outlive its stdout");
    // The client is gone (stdin closed too), and the process still lives.
    assert!(
        stderr
            .wait_for(T, |s| s.contains("keeps this process alive"))
            .await
    );
    assert!(process.wait_exit(QUIET).await.is_none());
    assert!(pid_alive(pid));
}

#[tokio::test]
async fn close_stdout_at_start_fails_initialize_while_process_lives() {
    let (mut process, _stderr) = spawn_drained(&["--close-stdout-after-calls", "0"]);
    let pid = process.pid();
    let connect = deadline(T, "initialize fails", process.connect()).await;
    assert!(connect.is_err(), "initialize must see EOF");
    assert!(pid_alive(pid));
    assert!(process.wait_exit(QUIET).await.is_none());
}

#[tokio::test]
async fn close_stdout_after_calls() {
    let (mut process, _stderr) = spawn_drained(&["--close-stdout-after-calls", "1"]);
    let pid = process.pid();
    let client = deadline(T, "initialize", process.connect()).await.unwrap();
    let result = call(&client, "echo", json!({"text": "one"})).await.unwrap();
    assert_eq!(result_text(&result), "one");
    deadline(T, "client sees EOF", client.waiting())
        .await
        .unwrap();
    assert!(pid_alive(pid));
}

#[tokio::test]
async fn garbage_at_start_is_the_first_stdout_line() {
    // Raw stdout, no client: the very first line is the garbage.
    let (mut process, _stderr) = spawn_drained(&["--garbage-at-start"]);
    let mut lines = BufReader::new(process.stdout.take().unwrap()).lines();
    let first = deadline(T, "first stdout line", lines.next_line())
        .await
        .unwrap()
        .expect("a line");
    assert_eq!(first, DEFAULT_GARBAGE);
    assert!(serde_json::from_str::<Value>(&first).is_err());
    drop(process);

    // With a client: the garbage is on the wire, and the server works anyway.
    let (mut process, _stderr) = spawn_drained(&["--garbage-at-start", "--garbage-text", "junk!"]);
    let (client, mut raw) = deadline(T, "initialize", process.connect_tapped(()))
        .await
        .unwrap();
    assert_eq!(raw.recv().await.as_deref(), Some("junk!"));
    let result = call(&client, "echo", json!({"text": "ok"})).await.unwrap();
    assert_eq!(result_text(&result), "ok");
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn garbage_action_writes_a_raw_line_and_server_keeps_working() {
    let (mut process, _stderr) = spawn_drained(&[]);
    let (client, mut raw) = deadline(T, "initialize", process.connect_tapped(()))
        .await
        .unwrap();
    let result = call(
        &client,
        "chaos",
        json!({"action": "garbage", "text": "GARBAGE-123 not json"}),
    )
    .await
    .unwrap();
    assert!(!is_tool_error(&result));
    let seen = deadline(T, "garbage line on stdout", async {
        while let Some(line) = raw.recv().await {
            if line == "GARBAGE-123 not json" {
                return true;
            }
        }
        false
    })
    .await;
    assert!(seen);
    let result = call(&client, "echo", json!({"text": "after garbage"}))
        .await
        .unwrap();
    assert_eq!(result_text(&result), "after garbage");
    client.cancel().await.unwrap();
}

fn flood_lines(text: &str) -> usize {
    text.lines()
        .filter(|line| line.starts_with("chaos-mcp flood "))
        .count()
}

#[tokio::test]
async fn stderr_flood_at_start_writes_all_bytes() {
    // 1_000_000 bytes = 15_625 lines of 64 bytes.
    let (mut process, stderr) = spawn_drained(&["--stderr-flood", "1000000"]);
    assert!(stderr.wait_for_len(T, 1_000_000).await);
    assert!(stderr.wait_for(T, |s| flood_lines(s) == 15_625).await);
    // Drained, the server works.
    let client = deadline(T, "initialize", process.connect()).await.unwrap();
    assert!(ping(&client).await.is_ok());
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn stderr_flood_action_writes_all_bytes() {
    let (mut process, stderr) = spawn_drained(&[]);
    let client = deadline(T, "initialize", process.connect()).await.unwrap();
    let result = call(
        &client,
        "chaos",
        json!({"action": "stderr_flood", "bytes": 200_000}),
    )
    .await
    .unwrap();
    assert!(!is_tool_error(&result));
    assert!(stderr.wait_for(T, |s| flood_lines(s) == 3_125).await);
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn undrained_stderr_flood_blocks_the_server_until_drained() {
    let mut process = spawn(&["--stderr-flood", "4000000"]);
    let (stdout, stdin) = (
        process.stdout.take().unwrap(),
        process.stdin.take().unwrap(),
    );
    let mut connect = tokio::spawn(async move { ().serve((stdout, stdin)).await });
    assert!(
        tokio::time::timeout(QUIET, &mut connect).await.is_err(),
        "initialize must block while stderr is full"
    );
    let stderr = process.capture_stderr();
    let client = deadline(T, "initialize after draining", connect)
        .await
        .unwrap()
        .unwrap();
    assert!(stderr.wait_for_len(T, 4_000_000).await);
    let result = call(&client, "echo", json!({"text": "unblocked"}))
        .await
        .unwrap();
    assert_eq!(result_text(&result), "unblocked");
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn stderr_lines_at_start_and_by_action() {
    let (mut process, stderr) = spawn_drained(&["--stderr-lines", "5"]);
    assert!(stderr.wait_for(T, |s| s.contains("log line 4")).await);
    assert_eq!(stderr.text().matches("log line ").count(), 5);
    let client = deadline(T, "initialize", process.connect()).await.unwrap();
    call(
        &client,
        "chaos",
        json!({"action": "stderr_lines", "count": 3}),
    )
    .await
    .unwrap();
    assert!(
        stderr
            .wait_for(T, |s| s.matches("log line ").count() == 8)
            .await
    );
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn sigterm_kills_by_default() {
    let (mut process, _stderr) = spawn_drained(&[]);
    let _client = deadline(T, "initialize", process.connect()).await.unwrap();
    process.signal(libc::SIGTERM).unwrap();
    let status = process.wait_exit(T).await.expect("terminated");
    assert_eq!(status.signal(), Some(libc::SIGTERM));
}

async fn assert_survives_sigterm(
    process: &mut ChaosProcess,
    client: &rmcp::service::Peer<rmcp::RoleClient>,
) {
    process.signal(libc::SIGTERM).unwrap();
    assert!(process.wait_exit(QUIET).await.is_none(), "SIGTERM ignored");
    let result = call(client, "echo", json!({"text": "alive"}))
        .await
        .unwrap();
    assert_eq!(result_text(&result), "alive");
    process.signal(libc::SIGKILL).unwrap();
    let status = process.wait_exit(T).await.expect("killed");
    assert_eq!(status.signal(), Some(libc::SIGKILL));
}

#[tokio::test]
async fn ignore_sigterm_flag_survives_sigterm() {
    let (mut process, _stderr) = spawn_drained(&["--ignore-sigterm"]);
    let client = deadline(T, "initialize", process.connect()).await.unwrap();
    assert_survives_sigterm(&mut process, &client).await;
}

#[tokio::test]
async fn log_ignored_sigterm_flag_survives_sigterm_and_says_so() {
    let (mut process, stderr) = spawn_drained(&["--log-ignored-sigterm"]);
    let client = deadline(T, "initialize", process.connect()).await.unwrap();
    assert!(!stderr.text().contains("SIGTERM received"));
    assert_survives_sigterm(&mut process, &client).await;
    assert!(
        stderr
            .wait_for(T, |s| s.contains("SIGTERM received, ignored"))
            .await,
        "{}",
        stderr.text()
    );
}

#[tokio::test]
async fn ignore_sigterm_action_survives_sigterm() {
    let (mut process, _stderr) = spawn_drained(&[]);
    let client = deadline(T, "initialize", process.connect()).await.unwrap();
    call(&client, "chaos", json!({"action": "ignore_sigterm"}))
        .await
        .unwrap();
    assert_survives_sigterm(&mut process, &client).await;
}

#[tokio::test]
async fn grandchild_outlives_sigkilled_parent() {
    let (mut process, stderr) = spawn_drained(&["--spawn-grandchild"]);
    let pid = process.pid();
    let client = deadline(T, "initialize", process.connect()).await.unwrap();
    let pids: Value = serde_json::from_str(&result_text(
        &call(&client, "pids", json!({})).await.unwrap(),
    ))
    .unwrap();
    assert_eq!(pids["pid"], json!(pid));
    assert_eq!(pids["ppid"], json!(std::process::id()));
    assert_eq!(
        pids["pgid"],
        json!(pid),
        "harness puts chaos-mcp in its own group"
    );
    let grandchild = u32::try_from(pids["grandchild"].as_u64().expect("grandchild pid")).unwrap();
    assert_eq!(pids["grandchildren"], json!([grandchild]));
    assert!(pid_alive(grandchild));
    assert_eq!(process_group(grandchild), Some(pid));
    assert!(
        stderr
            .wait_for(T, |s| s.contains(&format!("grandchild pid {grandchild}")))
            .await
    );

    // SIGKILL only the parent: the grandchild is orphaned, not killed.
    process.signal(libc::SIGKILL).unwrap();
    process.wait_exit(T).await.expect("parent killed");
    assert!(!pid_alive(pid));
    assert!(pid_alive(grandchild), "grandchild outlives its parent");

    kill_pid(grandchild);
    assert!(wait_for_pid_exit(grandchild, T).await);
}

#[tokio::test]
async fn spawn_grandchild_action_reports_a_live_pid() {
    let (mut process, _stderr) = spawn_drained(&[]);
    let client = deadline(T, "initialize", process.connect()).await.unwrap();
    let reply: Value = serde_json::from_str(&result_text(
        &call(&client, "chaos", json!({"action": "spawn_grandchild"}))
            .await
            .unwrap(),
    ))
    .unwrap();
    let grandchild = u32::try_from(reply["grandchild"].as_u64().unwrap()).unwrap();
    assert!(pid_alive(grandchild));
    let pids: Value = serde_json::from_str(&result_text(
        &call(&client, "pids", json!({})).await.unwrap(),
    ))
    .unwrap();
    assert_eq!(pids["grandchild"], json!(grandchild));
    // Killing the group (as the harness does on drop) takes the grandchild too.
    process.kill_all();
    assert!(wait_for_pid_exit(grandchild, T).await);
}

#[tokio::test]
async fn startup_delay_delays_initialize() {
    let start = Instant::now();
    let (mut process, _stderr) = spawn_drained(&["--startup-delay-ms", "400"]);
    let client = deadline(T, "initialize", process.connect()).await.unwrap();
    assert!(
        start.elapsed() >= Duration::from_millis(400),
        "initialize took {:?}",
        start.elapsed()
    );
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn tool_list_changes_are_notified() {
    let (mut process, _stderr) = spawn_drained(&[]);
    let (watcher, mut changed) = ToolListWatcher::new();
    let client = deadline(T, "initialize", process.connect_with(watcher))
        .await
        .unwrap();

    let result = call(
        &client,
        "chaos",
        json!({"action": "add_tool", "name": "dyn_tool"}),
    )
    .await
    .unwrap();
    assert!(!is_tool_error(&result));
    deadline(T, "list_changed after add", changed.recv())
        .await
        .unwrap();
    let names = tool_names(&client.list_all_tools().await.unwrap());
    assert!(names.contains(&"dyn_tool".to_owned()), "{names:?}");
    let echoed = call(&client, "dyn_tool", json!({"text": "x"}))
        .await
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&result_text(&echoed)).unwrap(),
        json!({"text": "x"})
    );

    // Adding it twice, removing `chaos` or an unknown tool: tool errors, no notification.
    for args in [
        json!({"action": "add_tool", "name": "dyn_tool"}),
        json!({"action": "remove_tool", "name": "chaos"}),
        json!({"action": "remove_tool", "name": "nope"}),
    ] {
        assert!(is_tool_error(&call(&client, "chaos", args).await.unwrap()));
    }

    let result = call(
        &client,
        "chaos",
        json!({"action": "remove_tool", "name": "dyn_tool"}),
    )
    .await
    .unwrap();
    assert!(!is_tool_error(&result));
    deadline(T, "list_changed after remove", changed.recv())
        .await
        .unwrap();
    assert!(
        changed.try_recv().is_err(),
        "exactly one notification per change"
    );
    let names = tool_names(&client.list_all_tools().await.unwrap());
    assert!(!names.contains(&"dyn_tool".to_owned()));
    assert!(call(&client, "dyn_tool", json!({})).await.is_err());
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn add_tool_after_calls_flag_notifies() {
    let (mut process, _stderr) = spawn_drained(&["--add-tool-after-calls", "1"]);
    let (watcher, mut changed) = ToolListWatcher::new();
    let client = deadline(T, "initialize", process.connect_with(watcher))
        .await
        .unwrap();
    assert!(!tool_names(&client.list_all_tools().await.unwrap()).contains(&LATE_TOOL.to_owned()));
    call(&client, "echo", json!({"text": "1"})).await.unwrap();
    deadline(T, "list_changed", changed.recv()).await.unwrap();
    assert!(tool_names(&client.list_all_tools().await.unwrap()).contains(&LATE_TOOL.to_owned()));
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn no_ping_answers_method_not_found() {
    let (mut process, _stderr) = spawn_drained(&["--no-ping"]);
    let client = deadline(T, "initialize", process.connect()).await.unwrap();
    match deadline(T, "ping", ping(&client)).await {
        Err(ServiceError::McpError(error)) => assert_eq!(error.code, ErrorCode::METHOD_NOT_FOUND),
        other => panic!("expected method-not-found, got {other:?}"),
    }
    // The tools/list fallback works.
    assert!(!client.list_all_tools().await.unwrap().is_empty());
    // And the action toggles it.
    call(
        &client,
        "chaos",
        json!({"action": "no_ping", "enabled": false}),
    )
    .await
    .unwrap();
    assert!(ping(&client).await.is_ok());
    call(&client, "chaos", json!({"action": "no_ping"}))
        .await
        .unwrap();
    assert!(ping(&client).await.is_err());
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn http_mode_prints_address_and_serves() {
    let (mut process, _stderr) = spawn_drained(&["--http", "127.0.0.1:0", "--tools", "2"]);
    let mut lines = BufReader::new(process.stdout.take().unwrap()).lines();
    let url = deadline(T, "address line", lines.next_line())
        .await
        .unwrap()
        .expect("address line");
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    assert!(url.ends_with("/mcp"), "{url}");
    let port: u16 = url["http://127.0.0.1:".len()..url.len() - "/mcp".len()]
        .parse()
        .unwrap();
    assert_ne!(port, 0);

    // rmcp's own reqwest client needs a default TLS provider (mcpvisor installs ring).
    mcpvisor_service_actor::install_default_tls_provider();
    let transport = StreamableHttpClientTransport::from_uri(url.as_str());
    let client = deadline(T, "initialize over HTTP", ().serve(transport))
        .await
        .unwrap();
    let names = tool_names(
        &deadline(T, "list tools", client.list_all_tools())
            .await
            .unwrap(),
    );
    assert!(names.contains(&"echo".to_owned()) && names.contains(&"tool_1".to_owned()));
    let result = deadline(
        T,
        "echo",
        call(&client, "echo", json!({"text": "over http"})),
    )
    .await
    .unwrap();
    assert_eq!(result_text(&result), "over http");
    let _ = deadline(T, "close client", client.cancel()).await;
}

#[tokio::test]
async fn http_mode_refuses_non_loopback_addresses() {
    let (mut process, stderr) = spawn_drained(&["--http", "0.0.0.0:0"]);
    let status = process.wait_exit(T).await.expect("exited");
    assert_eq!(status.code(), Some(2));
    assert!(stderr.wait_for(T, |s| s.contains("non-loopback")).await);
}
