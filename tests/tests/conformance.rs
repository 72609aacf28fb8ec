//! The official MCP conformance suite (npm `@modelcontextprotocol/conformance`, run on the Node 22
//! that `scripts/install-test-servers.sh` installs) against mcpvisor as a client: the suite starts
//! its scenario's server and runs `tests/conformance/client.sh URL`, which drives the real
//! `mcpvisor` CLI one-shot (an embedded supervisor with that server as its one service).
//!
//! Client scenarios run: `initialize`, `tools_call`, `sse-retry`. Not run:
//! `elicitation-sep1034-client-defaults` (mcpvisor answers no elicitation yet: issue 12) and the
//! `auth/*` scenarios (no OAuth yet).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("workspace root")
}

fn suite_bin(root: &Path) -> PathBuf {
    let bin = root.join(".test-servers/conformance/node_modules/.bin");
    assert!(
        bin.join("conformance").exists() && bin.join("node").exists(),
        "the conformance suite is missing in {}: run `bash scripts/install-test-servers.sh`",
        bin.display()
    );
    bin
}

/// Runs one client scenario; panics with the suite's output unless it passed.
fn client_scenario(scenario: &str) {
    // One scenario at a time: `sse-retry` measures the client's reconnect timing, which two
    // cores shared by three suites and three supervisors would blur.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let root = root();
    let suite = suite_bin(&root);
    // The suite's `#!/usr/bin/env node` must find Node 22 first.
    let path = format!(
        "{}:{}",
        suite.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let started = Instant::now();
    let out = Command::new(suite.join("conformance"))
        .args(["client", "--scenario", scenario, "--timeout", "60000"])
        .arg("--command")
        .arg(format!(
            "bash {}",
            root.join("tests/conformance/client.sh").display()
        ))
        .env("PATH", path)
        .env("MCPVISOR_BIN", mcpvisor_tests::mcpvisor_bin())
        .env("NO_COLOR", "1")
        .current_dir(&root)
        .output()
        .expect("run the conformance suite");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && format!("{stdout}{stderr}").contains("OVERALL: PASSED"),
        "conformance client scenario {scenario} failed ({:?}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(started.elapsed() < Duration::from_secs(120));
}

#[test]
fn conformance_client_initialize() {
    client_scenario("initialize");
}

#[test]
fn conformance_client_tools_call() {
    client_scenario("tools_call");
}

#[test]
fn conformance_client_sse_retry() {
    client_scenario("sse-retry");
}
