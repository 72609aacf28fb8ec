//! Each server gets only what it needs (issue "Isolation"), through the real `mcpvisor`
//! binary. Its environment: started with a secret in its own environment, mcpvisor runs
//! server-everything (whose `get-env` tool answers its whole environment): the secret is not
//! there unless the service's `env_inherit` names it. Its sandbox: chaos-mcp tries to read,
//! write, fork, open and allocate past what its `sandbox` gives and is refused — or killed,
//! with the reason, and restarted — and real servers (server-filesystem, server-memory by npx,
//! mcp-server-time) still serve their tools inside one.

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
    // From a file only its owner may read: there, and not where the file is readable by all.
    let dir = tempfile::Builder::new().prefix("envf").tempdir().unwrap();
    let file = dir.path().join("server.env");
    std::fs::write(&file, "FROM_FILE=kept-in-a-file\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let seen = server_env(&everything(json!({"env_file": file})), "every__get-env");
    assert_eq!(seen["FROM_FILE"], "kept-in-a-file", "{seen}");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, refused) = call(
        &everything(json!({"env_file": file})),
        "every__get-env",
        &json!({}),
    );
    assert_ne!(code, Some(0));
    assert!(refused.to_string().contains("chmod 600"), "{refused}");
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
    // A loopback of its own is not the host's: the listener is out of reach there too.
    let own_loopback = everything(json!({"sandbox": {"network": "loopback"}}));
    let (code, shut) = call(&own_loopback, "every__gzip-file-as-resource", &fetch);
    assert_eq!(code, Some(1), "{shut}");
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1);
    let (code, echo) = call(&sandboxed, "every__echo", &json!({"message": "boxed"}));
    assert_eq!(code, Some(0), "{echo}");
    assert_eq!(
        echo["result"]["content"][0]["text"], "Echo: boxed",
        "{echo}"
    );
}

/// chaos-mcp as service `c` with `sandbox`.
fn chaos(sandbox: Value) -> Value {
    json!({"mcpServers": {"c": {
        "command": mcpvisor_tests::chaos_bin(), "sandbox": sandbox}}})
}

/// The text of a one-shot `c__chaos` call with `args`: (tool error?, text).
fn chaos_call(config: &Value, args: Value) -> (bool, String) {
    let (code, answer) = call(config, "c__chaos", &args);
    let text = answer["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("{args}: {answer}"))
        .to_owned();
    (code != Some(0), text)
}

/// Folders `names` made in `dir`.
fn folders<const N: usize>(dir: &std::path::Path, names: [&str; N]) -> [std::path::PathBuf; N] {
    names.map(|n| {
        let d = dir.join(n);
        std::fs::create_dir(&d).unwrap();
        d
    })
}

#[test]
fn a_server_reads_and_writes_only_what_its_filesystem_sandbox_lists() {
    let dir = tempfile::Builder::new().prefix("fsbox").tempdir().unwrap();
    let [readable, writable, secret] = folders(dir.path(), ["readable", "writable", "secret"]);
    std::fs::write(readable.join("doc.txt"), "for the server").unwrap();
    std::fs::write(secret.join("key"), "not for the server").unwrap();
    let config = chaos(json!({"filesystem": {"read": [readable], "write": [writable]}}));
    let path = |p: &std::path::Path| p.to_string_lossy().into_owned();
    // Its read list: read.
    let (err, got) = chaos_call(
        &config,
        json!({"action": "read_file", "path": path(&readable.join("doc.txt"))}),
    );
    assert_eq!((err, got.as_str()), (false, "for the server"));
    // Outside it, a file its user could read: refused by the kernel.
    let (err, got) = chaos_call(
        &config,
        json!({"action": "read_file", "path": path(&secret.join("key"))}),
    );
    assert!(err && got.contains("Permission denied"), "{got}");
    // Its write list: written.
    let (err, got) = chaos_call(
        &config,
        json!({"action": "write_file", "path": path(&writable.join("out.txt"))}),
    );
    assert!(!err, "{got}");
    assert_eq!(
        std::fs::read_to_string(writable.join("out.txt")).unwrap(),
        "written"
    );
    // Read-only and unlisted folders: nothing written.
    for target in [readable.join("out.txt"), secret.join("out.txt")] {
        let (err, got) = chaos_call(
            &config,
            json!({"action": "write_file", "path": path(&target)}),
        );
        assert!(err && got.contains("Permission denied"), "{got}");
        assert!(!target.exists(), "{}", target.display());
    }
    // A listed path that is not there is the config's mistake, named, and nothing starts.
    let (code, answer) = call(
        &chaos(json!({"filesystem": {"read": [dir.path().join("nowhere")]}})),
        "c__echo",
        &json!({"text": "x"}),
    );
    assert_ne!(code, Some(0));
    assert!(
        answer.to_string().contains("sandbox.filesystem.read")
            && answer.to_string().contains("does not exist"),
        "{answer}"
    );
}

#[test]
fn a_server_cannot_fork_or_open_files_past_its_limits() {
    let config = chaos(json!({"processes": 16, "open_files": 40}));
    let (err, got) = chaos_call(&config, json!({"action": "fork", "count": 64}));
    assert!(!err, "{got}");
    let forked: Value = serde_json::from_str(&got).unwrap();
    // Its own threads count too: fewer than 16 children, then the kernel's refusal.
    let started = forked["started"].as_u64().unwrap();
    assert!(started < 16, "{forked}");
    assert!(
        forked["error"]
            .as_str()
            .is_some_and(|e| e.contains("Resource temporarily unavailable")),
        "{forked}"
    );
    let (err, got) = chaos_call(&config, json!({"action": "open_files", "count": 200}));
    assert!(!err, "{got}");
    let opened: Value = serde_json::from_str(&got).unwrap();
    assert!(opened["opened"].as_u64().unwrap() < 40, "{opened}");
    assert!(
        opened["error"]
            .as_str()
            .is_some_and(|e| e.contains("Too many open files")),
        "{opened}"
    );
    // Unsandboxed, the same asks succeed.
    let (_, got) = chaos_call(&chaos(json!(null)), json!({"action": "fork", "count": 20}));
    assert_eq!(serde_json::from_str::<Value>(&got).unwrap()["started"], 20);
}

/// `status --json` of the instance at `state`: its one service.
fn status_of(state: &std::path::Path) -> Value {
    let (code, out, err) =
        mcpvisor_tests::finished(mcpvisor_tests::mcpvisor_on(state).args(["status", "--json"]));
    assert_eq!(code, Some(0), "{err}");
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let services = v.get("services").cloned().unwrap_or(v);
    services[0].clone()
}

/// The cgroups an instance with pid `pid` made, in every hierarchy.
fn cgroups_of(pid: u32) -> Vec<std::path::PathBuf> {
    let prefix = format!("mcpvisor-{pid}-");
    let mut found = Vec::new();
    let mut dirs = vec![std::path::PathBuf::from("/sys/fs/cgroup")];
    // A bounded walk: the hierarchies and a few levels of groups.
    for _ in 0..6 {
        let mut next = Vec::new();
        for d in dirs {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    if e.file_name().to_string_lossy().starts_with(&prefix) {
                        found.push(e.path());
                    }
                    next.push(e.path());
                }
            }
        }
        dirs = next;
    }
    found
}

/// `c__chaos` allocating `mib` MiB in the instance at `state`: (exit code, stdout, stderr).
fn allocate(state: &std::path::Path, mib: u64) -> (Option<i32>, String, String) {
    mcpvisor_tests::finished(mcpvisor_tests::mcpvisor_on(state).args([
        "call",
        "c__chaos",
        "--args",
        &json!({"action": "allocate", "mib": mib}).to_string(),
    ]))
}

#[test]
fn a_server_over_its_memory_limit_is_killed_with_the_reason_and_restarted() {
    let instance = mcpvisor_tests::RunServe::start(&chaos(
        json!({"memory": "64MiB", "cpu": 0.5, "best_effort": true}),
    ));
    let before = status_of(&instance.state);
    // Half a core: in its cgroup where one could be made, else said to be missing.
    match before["sandbox"]["cpu"]["enforced_by"].as_str() {
        Some("cgroup v1") | Some("cgroup v2") => {
            let quota = cgroups_of(instance.pid()).iter().find_map(|d| {
                std::fs::read_to_string(d.join("cpu.cfs_quota_us"))
                    .or_else(|_| std::fs::read_to_string(d.join("cpu.max")))
                    .ok()
            });
            let quota = quota.expect("a cpu group");
            assert!(quota.trim_start().starts_with("50000"), "{quota}");
        }
        _ => assert!(
            before["sandbox"]["missing"].to_string().contains("cpu"),
            "{before}"
        ),
    }
    // `check` shows it beside the probe.
    let (code, out, _) = mcpvisor_tests::finished(
        mcpvisor_tests::mcpvisor_on(&instance.state).args(["check", "--json"]),
    );
    assert_eq!(code, Some(0), "{out}");
    let rows: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(rows[0]["sandbox"], before["sandbox"], "{out}");
    let first_pid = before["pid"].as_u64().expect("a running server");
    assert_eq!(before["sandbox"]["memory"]["limit"], "64 MiB", "{before}");
    let by = before["sandbox"]["memory"]["enforced_by"].clone();
    assert!(
        by.as_str()
            .is_some_and(|b| b.starts_with("cgroup") || b.starts_with("rlimit")),
        "{before}"
    );
    // Past the limit: the call fails, the server is gone.
    let (code, _, _) = allocate(&instance.state, 256);
    assert_ne!(code, Some(0));
    // Back up, the kill its last error in words, counted as a restart.
    let end = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let after = loop {
        let s = status_of(&instance.state);
        if s["restarts"].as_u64() >= Some(1) && s["state"] == "healthy" {
            break s;
        }
        assert!(std::time::Instant::now() < end, "not back within 30 s: {s}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    if by.as_str().is_some_and(|b| b.starts_with("cgroup")) {
        assert_eq!(
            after["last_error"], "server killed: over its memory limit of 64 MiB (signal 9)",
            "{after}"
        );
    }
    assert_ne!(after["pid"].as_u64(), Some(first_pid));
    assert!(
        !std::path::Path::new(&format!("/proc/{first_pid}")).exists(),
        "the killed server's process is gone"
    );
    // Under its limit it serves.
    let (code, out, _) = allocate(&instance.state, 16);
    assert_eq!(code, Some(0), "{out}");
    let pid = instance.pid();
    let live_groups = cgroups_of(pid);
    drop(instance);
    // Stopped: no process, no group left.
    let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !cgroups_of(pid).is_empty() && std::time::Instant::now() < end {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(
        cgroups_of(pid),
        Vec::<std::path::PathBuf>::new(),
        "was {live_groups:?}"
    );
    assert!(!std::path::Path::new(&format!("/proc/{}", after["pid"])).exists());
}

#[test]
fn real_servers_serve_their_tools_inside_a_filesystem_and_network_sandbox() {
    let dir = tempfile::Builder::new()
        .prefix("realbox")
        .tempdir()
        .unwrap();
    let [files, other, memory] = folders(dir.path(), ["files", "other", "memory"]);
    std::fs::write(files.join("f.txt"), "in the listed folder").unwrap();
    std::fs::write(
        other.join("o.txt"),
        "in a folder it was given but not the sandbox",
    )
    .unwrap();
    let modules = mcpvisor_tests::servers_dir().join("node_modules");
    let config = json!({"mcpServers": {
        "fs": {"command": "node", "args": [mcpvisor_tests::node_server("server-filesystem"), files, other],
               "sandbox": {"filesystem": {"read": [modules], "write": [files]}, "network": "none"}},
        // Through npx (run from the folder it is installed in, offline): npm itself runs in
        // the sandbox with the node preset (its config, its cache and logs in ~/.npm).
        "memory": {"command": "npx", "args": ["--offline", "mcp-server-memory"],
                   "cwd": mcpvisor_tests::servers_dir(),
                   "env": {"MEMORY_FILE_PATH": memory.join("graph.jsonl")},
                   "sandbox": {"filesystem": {"presets": ["node"], "read": [mcpvisor_tests::servers_dir()],
                                              "write": [memory]}, "network": "none"}},
        "time": {"command": mcpvisor_tests::servers_dir().join("venv/bin/mcp-server-time"),
                 "sandbox": {"filesystem": {"presets": ["python"]}, "network": "none"}}
    }});
    let text = |answer: &Value| {
        answer["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    };
    let (code, read) = call(
        &config,
        "fs__read_text_file",
        &json!({"path": files.join("f.txt")}),
    );
    assert_eq!(
        (code, text(&read).as_str()),
        (Some(0), "in the listed folder"),
        "{read}"
    );
    let (code, wrote) = call(
        &config,
        "fs__write_file",
        &json!({"path": files.join("new.txt"), "content": "made"}),
    );
    assert_eq!(code, Some(0), "{wrote}");
    assert_eq!(
        std::fs::read_to_string(files.join("new.txt")).unwrap(),
        "made"
    );
    // The server itself allows `other`; its sandbox does not.
    let (code, refused) = call(
        &config,
        "fs__read_text_file",
        &json!({"path": other.join("o.txt")}),
    );
    assert_eq!(code, Some(1), "{refused}");
    assert!(text(&refused).contains("EACCES"), "{refused}");
    let (code, made) = call(
        &config,
        "memory__create_entities",
        &json!({"entities": [{"name": "boxed", "entityType": "t", "observations": ["o"]}]}),
    );
    assert_eq!(code, Some(0), "{made}");
    assert!(std::fs::read_to_string(memory.join("graph.jsonl"))
        .unwrap()
        .contains("boxed"));
    let (code, now) = call(
        &config,
        "time__get_current_time",
        &json!({"timezone": "Europe/Paris"}),
    );
    assert_eq!(code, Some(0), "{now}");
    assert!(text(&now).contains("Europe/Paris"), "{now}");
}

#[test]
fn a_sandboxed_server_cannot_drive_mcpvisor_through_its_sockets() {
    // Two chaos servers in one instance: `free` unsandboxed, `boxed` with a sandbox.
    let instance = mcpvisor_tests::RunServe::start(&json!({"mcpServers": {
        "free": {"command": mcpvisor_tests::chaos_bin()},
        "boxed": {"command": mcpvisor_tests::chaos_bin(), "sandbox": {"open_files": 512}}}}));
    let ask = |service: &str, socket: &str, line: &str| {
        let (code, out, err) = mcpvisor_tests::finished(
            mcpvisor_tests::mcpvisor_on(&instance.state).args([
                "call",
                &format!("{service}__chaos"),
                "--args",
                &json!({"action": "unix_request", "text": line,
                        "path": instance.state.join(socket)})
                .to_string(),
            ]),
        );
        assert_eq!(code, Some(0), "{out} {err}");
        out
    };
    let ping = r#"{"cmd": "ping"}"#;
    // The control socket answers the unsandboxed server (so the request is a real one)...
    assert!(ask("free", "mcpvisor.sock", ping).contains("\"pid\""));
    // ...and refuses the sandboxed one, in words.
    let refused = ask("boxed", "mcpvisor.sock", ping);
    assert!(
        refused.contains("a sandboxed server may not use"),
        "{refused}"
    );
    // The gateway's socket: the unsandboxed server is answered its initialize, the sandboxed
    // one is closed on without a word (no tools of the fleet through it).
    let initialize = format!(
        "mcpvisor-gateway default\n{}",
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "chaos", "version": "0"}}})
    );
    assert!(ask("free", "gateway.sock", &initialize).contains("\"serverInfo\""));
    let (code, out, _) = mcpvisor_tests::finished(
        mcpvisor_tests::mcpvisor_on(&instance.state).args([
            "call",
            "boxed__chaos",
            "--json",
            "--args",
            &json!({"action": "unix_request", "text": initialize,
                    "path": instance.state.join("gateway.sock")})
            .to_string(),
        ]),
    );
    // Closed unread: an empty answer, or — as the close meets the write — the reset of the
    // data it did not read, or a broken pipe.
    let closed = ["Connection reset", "Broken pipe"];
    assert!(
        !out.contains("serverInfo") && (code == Some(0) || closed.iter().any(|c| out.contains(c))),
        "{out}"
    );
}
