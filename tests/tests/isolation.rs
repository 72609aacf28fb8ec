//! Each server gets only what it needs (issue "Isolation"): its environment. The real
//! `mcpvisor` binary, started with a secret in its own environment, runs server-everything
//! (whose `get-env` tool answers its whole environment): the secret is not there unless the
//! service's `env_inherit` names it; the default set and the service's own `env` are.

use std::process::Stdio;

use serde_json::{json, Value};

/// `mcpvisor call TOOL` in one-shot mode on `config`, with `SECRET` in mcpvisor's environment:
/// the environment the server saw.
fn server_env(config: &Value, tool: &str) -> Value {
    let dir = tempfile::Builder::new().prefix("iso").tempdir().unwrap();
    let file = dir.path().join("mcp.json");
    std::fs::write(&file, config.to_string()).unwrap();
    let out = std::process::Command::new(mcpvisor_tests::mcpvisor_bin())
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .arg("--config")
        .arg(&file)
        .args(["call", tool, "--json"])
        .env_remove("MCPVISOR_STATE_DIR")
        .env("MCPVISOR_TEST_SECRET", "s3cret-of-the-shell")
        .env("MCPVISOR_TEST_NAMED", "named-one")
        .env("LC_TIME", "C")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let text = answer["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("{answer}"));
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn everything(extra: Value) -> Value {
    let mut service = json!({"command": "node", "args": [
        "-r", mcpvisor_tests::loopback_preload(),
        mcpvisor_tests::node_server("server-everything"), "stdio"]});
    for (k, v) in extra.as_object().unwrap() {
        service[k] = v.clone();
    }
    json!({"mcpServers": {"every": service}})
}

#[test]
fn a_secret_of_the_supervisors_environment_reaches_a_server_only_when_named() {
    // By default: the default set and its own env, not the secret.
    let seen = server_env(
        &everything(json!({"env": {"OWN": "mine"}})),
        "every__get-env",
    );
    assert!(seen.get("MCPVISOR_TEST_SECRET").is_none(), "{seen}");
    assert!(seen.get("MCPVISOR_TEST_NAMED").is_none(), "{seen}");
    assert_eq!(seen["OWN"], "mine", "{seen}");
    assert_eq!(seen["LC_TIME"], "C", "{seen}");
    assert!(seen.get("PATH").is_some(), "{seen}");
    // Named: that one, still not the other.
    let seen = server_env(
        &everything(json!({"env_inherit": ["MCPVISOR_TEST_NAMED"]})),
        "every__get-env",
    );
    assert_eq!(seen["MCPVISOR_TEST_NAMED"], "named-one", "{seen}");
    assert!(seen.get("MCPVISOR_TEST_SECRET").is_none(), "{seen}");
    // "all": everything, as before.
    let seen = server_env(&everything(json!({"env_inherit": "all"})), "every__get-env");
    assert_eq!(
        seen["MCPVISOR_TEST_SECRET"], "s3cret-of-the-shell",
        "{seen}"
    );
}
