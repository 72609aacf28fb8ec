//! Each server gets only what it needs (issue "Isolation"): its environment. The real
//! `mcpvisor` binary, started with a secret in its own environment, runs server-everything
//! (whose `get-env` tool answers its whole environment): the secret is not there unless the
//! service's `env_inherit` names it; the default set and the service's own `env` are.

use serde_json::{json, Value};

/// `mcpvisor call TOOL` in one-shot mode on `config`, with `SECRET` in mcpvisor's environment:
/// the environment the server saw.
fn server_env(config: &Value, tool: &str) -> Value {
    let (code, answer) = call(config, tool, &json!({}));
    assert_eq!(code, Some(0), "{answer}");
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

/// `mcpvisor call TOOL --args ARGS` in one-shot mode on `config`, with a secret, a name to
/// inherit and a locale variable in mcpvisor's environment: (exit code, its JSON).
fn call(config: &Value, tool: &str, args: &Value) -> (Option<i32>, Value) {
    let dir = tempfile::Builder::new().prefix("iso").tempdir().unwrap();
    let file = dir.path().join("mcp.json");
    std::fs::write(&file, config.to_string()).unwrap();
    let (code, stdout, stderr) = mcpvisor_tests::finished(
        mcpvisor_tests::mcpvisor_on(&dir.path().join("state"))
            .arg("--config")
            .arg(&file)
            .args(["call", tool, "--json", "--args", &args.to_string()])
            .env("MCPVISOR_TEST_SECRET", "s3cret-of-the-shell")
            .env("MCPVISOR_TEST_NAMED", "named-one")
            .env("LC_TIME", "C"),
    );
    let v = serde_json::from_str(&stdout)
        .unwrap_or_else(|_| json!({"stdout": stdout, "stderr": stderr}));
    (code, v)
}

/// A loopback HTTP listener answering every request with a small file, for at most 60 s and
/// 16 connections; returns its URL and how many requests reached it.
fn loopback_file_server() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://127.0.0.1:{}/file.txt",
        listener.local_addr().unwrap().port()
    );
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = hits.clone();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let end = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let mut served = 0;
        while std::time::Instant::now() < end && served < 16 {
            match listener.accept() {
                Ok((mut s, _)) => {
                    served += 1;
                    counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let _ = s.set_nonblocking(false);
                    let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(5)));
                    let mut buf = [0u8; 4096];
                    let _ = s.read(&mut buf);
                    let _ = s.write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello",
                    );
                }
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
            }
        }
    });
    (url, hits)
}

#[test]
fn a_server_with_sandbox_network_none_reaches_nothing_and_still_serves() {
    let (url, hits) = loopback_file_server();
    let fetch = json!({"name": "f.gz", "data": url, "outputType": "resource"});
    // Unsandboxed, the server fetches from the loopback listener.
    let (code, open) = call(
        &everything(json!({})),
        "every__gzip-file-as-resource",
        &fetch,
    );
    assert_eq!(code, Some(0), "{open}");
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1);
    // In its own network namespace: the same fetch fails, nothing reached the listener, and
    // its other tools still answer.
    let sandboxed = everything(json!({"sandbox": {"network": "none"}}));
    let (code, shut) = call(&sandboxed, "every__gzip-file-as-resource", &fetch);
    assert_eq!(code, Some(1), "{shut}");
    assert_eq!(shut["is_error"], true, "{shut}");
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1);
    let (code, echo) = call(&sandboxed, "every__echo", &json!({"message": "boxed"}));
    assert_eq!(code, Some(0), "{echo}");
    assert_eq!(
        echo["result"]["content"][0]["text"], "Echo: boxed",
        "{echo}"
    );
}
