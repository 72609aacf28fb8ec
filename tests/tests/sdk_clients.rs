//! Real SDK clients of both protocol eras through the gateway (DESIGN §17): the official
//! TypeScript SDK 1.x and 2.x (`tests/support/ts_client.mjs`; 2.x in its default legacy mode and
//! with version negotiation `auto`, which speaks 2026-07-28), and the official Python
//! SDK 2.x (`tests/support/sdk_client.py`, installed by `scripts/install-test-servers.sh`) in
//! its default mode, which probes `server/discover` and speaks 2026-07-28, and in its legacy
//! mode (the initialize handshake), over streamable HTTP (`run --serve`) and over
//! `serve --stdio` attached to that instance, in front of server-everything (a handshake-era
//! server) over stdio. Each lists tools, calls one, calls one with progress, reads a resource,
//! gets a prompt, and answers the server's elicitation and sampling during a call (in
//! 2026-07-28 through the gateway's input-required bridge); the SDK validates every result against its era's schema (a 2026-07-28
//! result without `resultType` is an error there).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

fn python() -> PathBuf {
    let python = mcpvisor_tests::servers_dir().join("pysdk/bin/python");
    assert!(
        python.exists(),
        "the Python SDK is missing at {}: run `bash scripts/install-test-servers.sh`",
        python.display()
    );
    python
}

fn client_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("support/sdk_client.py")
}

/// `mcpvisor run --serve` with server-everything as `every`.
fn instance() -> mcpvisor_tests::RunServe {
    mcpvisor_tests::RunServe::start(&serde_json::json!({"mcpServers": {"every": {
        "command": "node", "args": [
            "-r", mcpvisor_tests::loopback_preload(),
            mcpvisor_tests::node_server("server-everything"), "stdio"]}}}))
}

/// Runs an SDK client script (`what`, for messages): the JSON of its last line (it fails on
/// any error, and so does the test).
fn client_json(mut cmd: Command, what: &str) -> Value {
    let out = cmd
        .env_remove("MCPVISOR_STATE_DIR")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {what}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{what} failed: {:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("not the client's JSON ({e}): {stdout}"))
}

/// The Python client in `mode` against `target`: what it saw.
fn run_client(mode: &str, target: &[&str]) -> Value {
    let mut cmd = Command::new(python());
    cmd.arg(client_script()).arg(mode).args(target);
    client_json(cmd, &format!("the Python SDK client ({mode}, {target:?})"))
}

fn assert_served(seen: &Value, version: &str) {
    if version == "2026-07-28" {
        // A request without elicitation in its client capabilities, whose server asks for it:
        // MissingRequiredClientCapability, naming it.
        assert_eq!(seen["undeclared"]["code"], -32021, "{seen}");
        assert!(
            seen["undeclared"]["data"]["requiredCapabilities"]["elicitation"].is_object(),
            "{seen}"
        );
    }
    assert_eq!(seen["version"], version, "{seen}");
    assert_listed_and_echoed(seen);
    // Every step of the server's progress, under the client's own token, before the result.
    assert_eq!(
        seen["progress"],
        serde_json::json!([1.0, 2.0, 3.0]),
        "{seen}"
    );
    assert_eq!(
        seen["read_uri"], "demo://resource/static/document/architecture.md",
        "{seen}"
    );
    assert_eq!(seen["prompt_messages"], 1, "{seen}");
    // The server asked its client mid-call: as requests on the session (handshake era) or as
    // input-required results and a retry (2026-07-28, bridged by the gateway); the server
    // saw the client's own answers.
    assert_eq!(
        seen["asked"],
        serde_json::json!(["elicitation", "sampling"]),
        "{seen}"
    );
    assert_answered_the_servers_questions(seen);
}

/// The server's elicitation and sampling got the client's own answers.
fn assert_answered_the_servers_questions(seen: &Value) {
    assert!(
        seen["elicited"].as_str().unwrap().contains("Name: Ada"),
        "{seen}"
    );
    assert!(
        seen["sampled"]
            .as_str()
            .unwrap()
            .contains("sampled-by-the-client"),
        "{seen}"
    );
}

fn stdio_target<'a>(bin: &'a str, state: &'a Path) -> Vec<&'a str> {
    vec![
        bin,
        "--state-dir",
        state.to_str().unwrap(),
        "serve",
        "--stdio",
    ]
}

#[test]
fn python_sdk_of_both_eras_lists_calls_reads_prompts_and_answers_servers_over_http_and_stdio() {
    let instance = instance();
    let bin = mcpvisor_tests::mcpvisor_bin().to_str().unwrap().to_owned();
    // The new era: server/discover, then self-contained requests.
    assert_served(&run_client("auto", &[&instance.url]), "2026-07-28");
    assert_served(
        &run_client("auto", &stdio_target(&bin, &instance.state)),
        "2026-07-28",
    );
    // The handshake era, forced.
    assert_served(&run_client("legacy", &[&instance.url]), "2025-11-25");
    assert_served(
        &run_client("legacy", &stdio_target(&bin, &instance.state)),
        "2025-11-25",
    );
}

/// The official TypeScript SDK (`tests/support/ts_client.mjs`) in `mode` against `target`.
fn run_ts_client(mode: &str, target: &[&str]) -> Value {
    let dir = mcpvisor_tests::servers_dir().join("tssdk");
    assert!(
        dir.join("node_modules/@modelcontextprotocol/client")
            .exists(),
        "the TypeScript SDK is missing at {}: run `bash scripts/install-test-servers.sh`",
        dir.display()
    );
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("support/ts_client.mjs");
    let mut cmd = Command::new("node");
    cmd.arg(script)
        .arg(mode)
        .args(target)
        .env("TSSDK_DIR", &dir);
    client_json(
        cmd,
        &format!("the TypeScript SDK client ({mode}, {target:?})"),
    )
}

/// What every SDK client must have seen: `every__echo` listed, and it and the long-running
/// tool called without an error.
fn assert_listed_and_echoed(seen: &Value) {
    let tools: Vec<&str> = seen["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(tools.contains(&"every__echo"), "{seen}");
    assert_eq!(seen["echo"], "Echo: hi", "{seen}");
    assert_eq!(seen["echo_is_error"], false, "{seen}");
    assert_eq!(seen["long_is_error"], false, "{seen}");
}

/// What every TypeScript client must have seen, in its era.
fn assert_ts_served(seen: &Value, era: &str, over_http: bool) {
    assert_eq!(seen["era"], era, "{seen}");
    assert_listed_and_echoed(seen);
    let progress: Vec<f64> = seen["progress"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_f64)
        .collect();
    if over_http {
        assert_eq!(progress, [1.0, 2.0, 3.0], "{seen}");
    } else {
        // Over stdio the SDK's client drops a progress notification that arrives in the same
        // read as its call's answer (seen against server-everything directly too): every step
        // it kept, in order.
        assert!(!progress.is_empty(), "{seen}");
        assert!(
            progress
                .iter()
                .enumerate()
                .all(|(i, p)| *p == (i + 1) as f64),
            "{seen}"
        );
    }
    assert!(
        seen["read_uri"].as_str().unwrap().contains("static"),
        "{seen}"
    );
    assert!(
        seen["prompt"].as_str().unwrap().contains("simple prompt"),
        "{seen}"
    );
    assert_answered_the_servers_questions(seen);
}

#[test]
fn typescript_sdk_1_and_2_of_both_eras_list_call_read_prompt_and_answer_servers() {
    let instance = instance();
    let bin = mcpvisor_tests::mcpvisor_bin().to_str().unwrap().to_owned();
    let mut stdio = vec!["--"];
    stdio.extend(stdio_target(&bin, &instance.state));
    for (mode, era) in [
        ("v1", "legacy"),
        ("v2-legacy", "legacy"),
        ("v2-auto", "modern"),
    ] {
        let seen = run_ts_client(mode, &[&instance.url]);
        assert_ts_served(&seen, era, true);
        if mode == "v2-auto" {
            assert_eq!(seen["version"], "2026-07-28", "{seen}");
        }
        assert_ts_served(&run_ts_client(mode, &stdio), era, false);
    }
}
