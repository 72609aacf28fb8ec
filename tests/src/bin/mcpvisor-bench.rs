//! mcpvisor's benchmarks (DESIGN §12): each scenario measured for mcpvisor and, where it
//! applies, for a bare rmcp client doing the same work with no supervision, in one run.
//!
//! ```text
//! bash scripts/install-test-servers.sh
//! cargo run --release -p mcpvisor-tests --bin mcpvisor-bench -- all
//! ```
//! Scenarios: `start`, `call`, `search` (tool search over 1,000 and 10,000 tools), `sandbox` (spawn to tools in a sandbox beside without one; the
//! "bare" column is the same server unsandboxed), `throughput`, `kill`, `rss`, `idle`, `add`, `rss-cli`,
//! `gateway` (with `gateway-eras`, also alone: 2026-07-28 clients beside handshake-era ones), `gateway-rss` (the real `mcpvisor run --serve`), `lazy` (or `all`), and `scale` (not in `all`: N = 100, 300, 1,000 — `BENCH_SCALE=100,300`
//! to choose; meant for `--server chaos`).
//! The MCP server is npm server-everything over stdio (`--server chaos` uses the workspace's
//! chaos server instead). `rss-cli` measures the real `mcpvisor run` process (the release
//! binary next to this one: `cargo build --release -p mcpvisor-cli` first) with 30 services.

#[path = "../bench/gateway.rs"]
mod gateway;
#[path = "../bench/lazy.rs"]
mod lazy;
#[path = "../bench/scale.rs"]
mod scale;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mcpvisor_model::{Event, ServiceState};
use mcpvisor_supervisor::{Store, StoreOptions, Wait};
use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::transport::TokioChildProcess;
use rmcp::{RoleClient, ServiceExt};
use serde_json::{json, Map, Value};

struct Server {
    /// What `--server` named: `everything` or `chaos`.
    kind: String,
    command: String,
    args: Vec<String>,
    tool: &'static str,
    arguments: Map<String, Value>,
}

fn server(kind: &str) -> Server {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    if kind == "chaos" {
        let exe = std::env::current_exe().expect("current exe");
        let bin = exe.with_file_name("chaos-mcp");
        return Server {
            kind: kind.to_owned(),
            command: bin.to_string_lossy().into_owned(),
            args: vec![],
            tool: "echo",
            arguments: json!({"text": "hi"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        };
    }
    let js = root
        .join(".test-servers/node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    if !js.exists() {
        eprintln!("server-everything not installed: run `bash scripts/install-test-servers.sh`");
        std::process::exit(2);
    }
    Server {
        kind: kind.to_owned(),
        command: "node".into(),
        args: vec![js.to_string_lossy().into_owned(), "stdio".into()],
        tool: "echo",
        arguments: json!({"message": "hi"})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    }
}

fn service_json(s: &Server, name: &str) -> Value {
    json!({"name": name, "command": s.command, "args": s.args})
}

async fn bare_client(s: &Server) -> RunningService<RoleClient, ()> {
    let mut cmd = tokio::process::Command::new(&s.command);
    cmd.args(&s.args);
    let (t, _) = TokioChildProcess::builder(cmd)
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    ().serve(t).await.expect("initialize")
}

/// `n` bare clients started all at once, each with its tools listed: the bare side of a cold
/// start.
async fn bare_clients(s: &Server, n: usize) -> Vec<RunningService<RoleClient, ()>> {
    futures::future::join_all((0..n).map(|_| async {
        let c = bare_client(s).await;
        let tools = c.peer().list_all_tools().await.expect("tools");
        assert!(!tools.is_empty());
        c
    }))
    .await
}

fn pct(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() as f64 - 1.0) * q).round() as usize]
}

fn row(what: &str, ours: f64, bare: Option<f64>, unit: &str, target: &str) {
    match bare {
        Some(b) => println!(
            "{what:<44} {ours:>10.3} {unit:<4} bare {b:>10.3} {unit:<4} ratio {:>5.2}   target {target}",
            ours / b
        ),
        None => println!("{what:<44} {ours:>10.3} {unit:<4} {:>27}   target {target}", ""),
    }
}

/// Adds `n` services `{prefix}0..` as one batch and waits until all are healthy; returns
/// their names.
async fn start_many(store: &Store, s: &Server, prefix: &str, n: usize) -> Vec<String> {
    let names: Vec<String> = (0..n).map(|i| format!("{prefix}{i}")).collect();
    let batch: Vec<Value> = names.iter().map(|name| service_json(s, name)).collect();
    store
        .add_service(Value::Array(batch), Wait::None)
        .await
        .expect("add");
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    store
        .wait_for(&refs, ServiceState::Healthy, Duration::from_secs(120))
        .await
        .expect("healthy");
    names
}

async fn open() -> Store {
    Store::open(StoreOptions::new()).await.expect("open store")
}

async fn cold_start(s: &Server, n: usize) {
    // Bare: N clients concurrently, initialize + tools/list each.
    let t = Instant::now();
    let clients = bare_clients(s, n).await;
    let bare = t.elapsed().as_secs_f64() * 1000.0;
    for c in clients {
        let _ = c.cancel().await;
    }
    // Ours.
    let store = open().await;
    let t = Instant::now();
    start_many(&store, s, "s", n).await;
    let ours = t.elapsed().as_secs_f64() * 1000.0;
    assert!(store.list_tools().await.expect("tools").len() >= n);
    store.shutdown().await;
    row(
        &format!("cold start of {n} servers -> tools listed"),
        ours,
        Some(bare),
        "ms",
        "<= 1.10x bare",
    );
}

/// Spawn to tools listed for one server in a full sandbox (filesystem with the `node` preset
/// and its package folder, `network: "none"`, memory, process and open-file limits) beside the
/// same server unsandboxed, one at a time, alternating, through the same store.
async fn sandbox_start(s: &Server) {
    const ROUNDS: usize = 40;
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let read = if s.kind == "chaos" {
        vec![]
    } else {
        vec![root.join(".test-servers/node_modules")]
    };
    // `BENCH_SANDBOX='{"network": "none"}'` measures one part alone.
    let sandbox = std::env::var("BENCH_SANDBOX")
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_else(|| {
            json!({
                "filesystem": {"read": read, "presets": ["node"]},
                "network": "none", "memory": "512MiB", "processes": 256, "open_files": 1024,
            })
        });
    println!("sandbox: {sandbox}");
    let store = open().await;
    let start = |name: String, sandboxed: bool| {
        let store = &store;
        let mut svc = service_json(s, &name);
        if sandboxed {
            svc["sandbox"] = sandbox.clone();
        }
        async move {
            let t = Instant::now();
            store.add_service(svc, Wait::None).await.expect("add");
            store
                .wait_for(
                    &[name.as_str()],
                    ServiceState::Healthy,
                    Duration::from_secs(60),
                )
                .await
                .expect("healthy");
            let ms = t.elapsed().as_secs_f64() * 1000.0;
            store.remove_service(&name).await.expect("remove");
            ms
        }
    };
    // One of each first (node's and the kernel's caches warm for both).
    start("warm-bare".into(), false).await;
    start("warm-boxed".into(), true).await;
    let (mut bare, mut boxed) = (Vec::new(), Vec::new());
    for i in 0..ROUNDS {
        if i % 2 == 0 {
            bare.push(start(format!("bare{i}"), false).await);
            boxed.push(start(format!("boxed{i}"), true).await);
        } else {
            boxed.push(start(format!("boxed{i}"), true).await);
            bare.push(start(format!("bare{i}"), false).await);
        }
    }
    store.shutdown().await;
    row(
        "sandboxed server spawn -> tools (p50)",
        pct(&mut boxed, 0.5),
        Some(pct(&mut bare, 0.5)),
        "ms",
        "<= 1.05x unsandboxed",
    );
}

/// Tool search (`ToolSearch`, what `search_tools` and `Store::search_tools` rank with): query
/// p50/p99 over 1,000 and 10,000 indexed tools, and the time to index them.
fn search_bench() {
    use mcpvisor_supervisor::{ToolEntry, ToolSearch};
    const VERBS: &[&str] = &[
        "read", "write", "list", "create", "delete", "update", "search", "get", "send", "move",
        "copy", "fetch", "run", "query", "open", "close", "start", "stop", "merge", "sum",
    ];
    const NOUNS: &[&str] = &[
        "file",
        "issue",
        "branch",
        "message",
        "page",
        "table",
        "image",
        "user",
        "repository",
        "database",
        "channel",
        "event",
        "note",
        "folder",
        "commit",
        "record",
        "document",
        "task",
        "ticket",
        "invoice",
        "calendar",
        "contact",
        "comment",
        "label",
        "release",
    ];
    for n in [1_000usize, 10_000] {
        let tools: Vec<ToolEntry> = (0..n)
            .map(|i| {
                let (v, o) = (VERBS[i % VERBS.len()], NOUNS[(i / VERBS.len()) % NOUNS.len()]);
                let service = format!("svc{}", i / 50);
                serde_json::from_value(json!({
                    "name": format!("{service}__{v}_{o}_{i}"),
                    "service": {"name": service},
                    "tool": {"name": format!("{v}_{o}_{i}"),
                             "description": format!("{v} a {o} of the {service} service, by id or by name"),
                             "input_schema": {"type": "object", "properties": {
                                 "id": {"type": "string", "description": format!("the {o}'s id")}}},
                             "raw": {}},
                    "stale": false
                }))
                .expect("a tool entry")
            })
            .collect();
        let t = Instant::now();
        let index = ToolSearch::new(
            tools
                .iter()
                .enumerate()
                .map(|(i, t)| (i, t, t.name.as_str())),
        );
        let build = t.elapsed().as_secs_f64() * 1000.0;
        let queries = [
            "read a file",
            "send a message to a channel",
            "delete the branch",
            "list calendar events",
            "merge a release",
        ];
        let mut ms = Vec::new();
        for i in 0..2_000 {
            let q = queries[i % queries.len()];
            let t = Instant::now();
            let found = index.search(q, 5);
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
            assert!(!found.is_empty());
        }
        row(
            &format!("search_tools over {n} tools: query p50"),
            pct(&mut ms, 0.5),
            None,
            "ms",
            "-",
        );
        row(
            &format!("search_tools over {n} tools: query p99"),
            pct(&mut ms, 0.99),
            None,
            "ms",
            "p99 < 1 ms at 10,000",
        );
        row(
            &format!("search_tools: index {n} tools"),
            build,
            None,
            "ms",
            "-",
        );
    }
}

async fn call_latency(s: &Server) {
    const N: usize = 2000;
    const WARM_UP: usize = 200;
    // Both set up first, then warmed up and measured call by call in turn, so drift (CPU
    // frequency, the other load on the machine, node's JIT) hits both sides alike.
    let bare_c = bare_client(s).await;
    let store = open().await;
    store
        .add_service(service_json(s, "svc"), Wait::Auto)
        .await
        .expect("add");
    let name = format!("svc__{}", s.tool);
    let bare_call = || async {
        let t = Instant::now();
        let p = CallToolRequestParams::new(s.tool).with_arguments(s.arguments.clone());
        bare_c.peer().call_tool(p).await.expect("call");
        t.elapsed().as_secs_f64() * 1000.0
    };
    let our_call = || async {
        let t = Instant::now();
        store
            .call_tool(&name, Some(s.arguments.clone()), None)
            .await
            .expect("call");
        t.elapsed().as_secs_f64() * 1000.0
    };
    for _ in 0..WARM_UP {
        bare_call().await;
        our_call().await;
    }
    let mut bare = Vec::with_capacity(N);
    let mut ours = Vec::with_capacity(N);
    for i in 0..N {
        // Alternate which side goes first, too.
        if i % 2 == 0 {
            bare.push(bare_call().await);
            ours.push(our_call().await);
        } else {
            ours.push(our_call().await);
            bare.push(bare_call().await);
        }
    }
    let _ = bare_c.cancel().await;
    store.shutdown().await;
    let (b50, o50) = (pct(&mut bare, 0.5), pct(&mut ours, 0.5));
    row(
        "call_tool p50, sequential",
        o50,
        Some(b50),
        "ms",
        "<= 1.10x bare",
    );
    row(
        "call_tool p99, sequential",
        pct(&mut ours, 0.99),
        Some(pct(&mut bare, 0.99)),
        "ms",
        "-",
    );
}

async fn throughput(s: &Server) {
    const IN_FLIGHT: usize = 16;
    let window = Duration::from_secs(3);
    let bare_c = Arc::new(bare_client(s).await);
    let done = Arc::new(AtomicU64::new(0));
    let t = Instant::now();
    let tasks: Vec<_> = (0..IN_FLIGHT)
        .map(|_| {
            let c = bare_c.clone();
            let d = done.clone();
            let args = s.arguments.clone();
            let tool = s.tool;
            tokio::spawn(async move {
                while t.elapsed() < window {
                    let p = CallToolRequestParams::new(tool).with_arguments(args.clone());
                    c.peer().call_tool(p).await.expect("call");
                    d.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for x in tasks {
        let _ = x.await;
    }
    let bare = done.load(Ordering::Relaxed) as f64 / t.elapsed().as_secs_f64();
    if let Ok(c) = Arc::try_unwrap(bare_c) {
        let _ = c.cancel().await;
    }
    let store = open().await;
    store
        .add_service(service_json(s, "svc"), Wait::Auto)
        .await
        .expect("add");
    let name = Arc::new(format!("svc__{}", s.tool));
    let done = Arc::new(AtomicU64::new(0));
    let t = Instant::now();
    let tasks: Vec<_> = (0..IN_FLIGHT)
        .map(|_| {
            let st = store.clone();
            let d = done.clone();
            let args = s.arguments.clone();
            let name = name.clone();
            tokio::spawn(async move {
                while t.elapsed() < window {
                    st.call_tool(&name, Some(args.clone()), None)
                        .await
                        .expect("call");
                    d.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for x in tasks {
        let _ = x.await;
    }
    let ours = done.load(Ordering::Relaxed) as f64 / t.elapsed().as_secs_f64();
    store.shutdown().await;
    row(
        "throughput, 16 calls in flight (calls/s)",
        ours,
        Some(bare),
        "/s",
        ">= 0.90x bare",
    );
}

async fn kill_recovery(s: &Server) {
    // Ten services, each SIGKILLed once: every kill meets the default backoff from its start
    // (repeated kills of one service within `reset_after` rightly back off further).
    let store = open().await;
    let names = start_many(&store, s, "k", 10).await;
    let mut to_reconnecting = Vec::new();
    let mut to_healthy = Vec::new();
    for name in &names {
        let before = store.get_service_info(name).await.expect("info");
        let pid = before.pid.expect("pid");
        let mut events = store.subscribe().await.expect("subscribe");
        let t = Instant::now();
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        loop {
            match tokio::time::timeout(Duration::from_secs(30), events.next()).await {
                Ok(Some(Event::StateChanged { service, to, .. }))
                    if service.name.as_str() == name =>
                {
                    match to {
                        ServiceState::Reconnecting => {
                            to_reconnecting.push(t.elapsed().as_secs_f64() * 1000.0)
                        }
                        ServiceState::Healthy => {
                            to_healthy.push(t.elapsed().as_secs_f64() * 1000.0);
                            break;
                        }
                        _ => {}
                    }
                }
                Ok(Some(_)) => {}
                _ => panic!("no recovery after killing pid {pid}"),
            }
        }
        let info = store.get_service_info(name).await.expect("info");
        assert_eq!(
            info.tools, before.tools,
            "restarted server reports other tools"
        );
    }
    store.shutdown().await;
    row(
        "SIGKILL -> reconnecting event (median of 10)",
        pct(&mut to_reconnecting, 0.5),
        None,
        "ms",
        "< 20 ms",
    );
    row(
        "SIGKILL -> reconnecting event (max of 10)",
        pct(&mut to_reconnecting, 1.0),
        None,
        "ms",
        "-",
    );
    row(
        "SIGKILL -> healthy, tools listed (median)",
        pct(&mut to_healthy, 0.5),
        None,
        "ms",
        "< 600 ms",
    );
    row(
        "SIGKILL -> healthy, tools listed (max)",
        pct(&mut to_healthy, 1.0),
        None,
        "ms",
        "-",
    );
}

fn own_status(field: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Clock ticks a second in `/proc/*/stat` (USER_HZ: 100 on Linux).
fn clock_ticks_per_second() -> f64 {
    100.0
}

fn own_cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit(')').next().unwrap_or_default();
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = f.get(11).and_then(|x| x.parse().ok()).unwrap_or(0);
    let stime: u64 = f.get(12).and_then(|x| x.parse().ok()).unwrap_or(0);
    utime + stime
}

async fn thirty(s: &Server) -> Store {
    let n: usize = std::env::var("BENCH_SERVICES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let store = open().await;
    start_many(&store, s, "s", n).await;
    store
}

async fn rss_and_idle(s: &Server, rss: bool, idle: bool) {
    let base = own_status("VmRSS:").unwrap_or(0) as f64 / 1024.0;
    let store = thirty(s).await;
    if rss {
        let kb = own_status("VmHWM:").unwrap_or(0) as f64;
        row(
            "supervisor peak RSS, 30 services",
            kb / 1024.0,
            None,
            "MiB",
            "<= 15 MiB",
        );
        row(
            "RSS of the process before the store opened",
            base,
            None,
            "MiB",
            "-",
        );
    }
    if idle {
        let secs = 10.0;
        let t0 = own_cpu_ticks();
        tokio::time::sleep(Duration::from_secs_f64(secs)).await;
        let ticks = (own_cpu_ticks() - t0) as f64;
        row(
            "supervisor idle CPU, 30 services (% of a core)",
            100.0 * ticks / clock_ticks_per_second() / secs,
            None,
            "%",
            "< 0.5 %",
        );
    }
    store.shutdown().await;
}

/// The real supervisor process: `mcpvisor run` on a config of 30 services, its peak RSS
/// (`VmHWM`) read from `/proc` once it reports every service healthy.
/// A `/proc/<pid>/status` field given in kB (`VmHWM:`, `RssAnon:`, ...), in MiB.
fn proc_status_mib(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(f64::NAN)
        / 1024.0
}

/// The real `mcpvisor run` (the release binary next to this one) supervising `config`, with
/// `extra` arguments; stopped with SIGTERM by [`RunProcess::stop`].
struct RunProcess {
    child: tokio::process::Child,
    pid: u32,
    /// The binary and the state dir it runs on (for client commands against it).
    bin: std::path::PathBuf,
    state: std::path::PathBuf,
    /// Its stdout, line by line.
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    _dir: tempfile::TempDir,
}

impl RunProcess {
    /// Starts it; `None` (having said why, for scenario `what`) without the release binary.
    async fn start(what: &str, config: Value, extra: &[&str]) -> Option<RunProcess> {
        use tokio::io::AsyncBufReadExt;
        let exe = std::env::current_exe().expect("current exe");
        let bin = exe.with_file_name("mcpvisor");
        if !bin.exists() {
            eprintln!(
                "{what}: {} not found; run `cargo build --release -p mcpvisor-cli` first",
                bin.display()
            );
            return None;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("mcp.json");
        std::fs::write(&file, config.to_string()).expect("config");
        let mut child = tokio::process::Command::new(&bin)
            .arg("run")
            .arg("--config")
            .arg(&file)
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .args(extra)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn mcpvisor run");
        let pid = child.id().expect("pid");
        let stdout = child.stdout.take().expect("stdout");
        Some(RunProcess {
            child,
            pid,
            state: dir.path().join("state"),
            bin,
            lines: tokio::io::BufReader::new(stdout).lines(),
            _dir: dir,
        })
    }

    /// Wall time (ms) of the client command `args` against it, a new process each time: p50 of
    /// `n` runs, its output read in full.
    async fn client_ms(&self, args: &[&str], n: usize) -> f64 {
        let mut ms = Vec::with_capacity(n);
        for _ in 0..n {
            let t = Instant::now();
            let out = tokio::process::Command::new(&self.bin)
                .args(args)
                .arg("--state-dir")
                .arg(&self.state)
                .output()
                .await
                .expect("run the client");
            assert!(out.status.success(), "mcpvisor {args:?} failed");
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        pct(&mut ms, 0.5)
    }

    /// Reads its output until `pick` returns something (or the output ends, or `limit`).
    async fn wait_for<T>(
        &mut self,
        limit: Duration,
        mut pick: impl FnMut(&str) -> Option<T>,
    ) -> Option<T> {
        let lines = &mut self.lines;
        let read = async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(v) = pick(&line) {
                    return Some(v);
                }
            }
            None
        };
        tokio::time::timeout(limit, read).await.ok().flatten()
    }

    /// SIGTERM, then its exit (bounded).
    async fn stop(mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await;
    }
}

async fn rss_cli(s: &Server) {
    let n: usize = std::env::var("BENCH_SERVICES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let services: Map<String, Value> = (0..n)
        .map(|i| {
            let spec = json!({"command": s.command, "args": s.args});
            (format!("s{i}"), spec)
        })
        .collect();
    let Some(mut run) = RunProcess::start("rss-cli", json!({ "mcpServers": services }), &[]).await
    else {
        return;
    };
    let ready = format!("ready: {n}/{n} healthy");
    if run
        .wait_for(Duration::from_secs(300), |l| {
            l.contains(&ready).then_some(())
        })
        .await
        .is_none()
    {
        eprintln!("rss-cli: mcpvisor run did not report {ready}");
        return;
    }
    // Let the first probes and the state-file write happen.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let field = |f: &str| proc_status_mib(run.pid, f);
    let bare = bare_holder_rss(s, n).await;
    row(
        &format!("`mcpvisor run` peak RSS, {n} services"),
        field("VmHWM:"),
        bare,
        "MiB",
        if n >= 1000 {
            "<= 64 MiB"
        } else {
            "<= 15 MiB at 30"
        },
    );
    row(
        "  resident now: file-backed (code)",
        field("RssFile:"),
        None,
        "MiB",
        "-",
    );
    row(
        "  resident now: anonymous (heap, stacks)",
        field("RssAnon:"),
        None,
        "MiB",
        "-",
    );
    row(
        &format!("`mcpvisor status --json` of {n}, wall p50"),
        run.client_ms(&["status", "--json"], 21).await,
        None,
        "ms",
        "< 50 ms at 1,000",
    );
    row(
        &format!("`mcpvisor status` (table) of {n}, wall p50"),
        run.client_ms(&["status"], 21).await,
        None,
        "ms",
        "-",
    );
    run.stop().await;
}

/// The peak RSS of a bare rmcp client holding `n` servers with their tools listed, in a process
/// of its own (this binary, `hold-bare N`): what the same connections cost without supervision.
async fn bare_holder_rss(s: &Server, n: usize) -> Option<f64> {
    use tokio::io::AsyncBufReadExt;
    let exe = std::env::current_exe().ok()?;
    let mut child = tokio::process::Command::new(exe)
        .arg("--server")
        .arg(&s.kind)
        .arg("hold-bare")
        .arg(n.to_string())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .ok()?;
    let pid = child.id()?;
    let mut lines = tokio::io::BufReader::new(child.stdout.take()?).lines();
    let ready = tokio::time::timeout(Duration::from_secs(300), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.starts_with("ready") {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    let rss = ready.then(|| proc_status_mib(pid, "VmHWM:"));
    drop(child.stdin.take());
    let _ = tokio::time::timeout(Duration::from_secs(30), child.wait()).await;
    rss
}

/// `hold-bare N`: N bare rmcp clients started concurrently, tools listed, then held until stdin
/// closes (for [`bare_holder_rss`]).
async fn hold_bare(s: &Server, n: usize) {
    use tokio::io::AsyncReadExt;
    scale::raise_nofile();
    let clients = bare_clients(s, n).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    println!("ready: {}", clients.len());
    let _ = tokio::io::stdin().read(&mut [0u8; 1]).await;
    futures::future::join_all(clients.into_iter().map(|c| c.cancel())).await;
}

async fn add_latency() {
    let store = open().await;
    let mut lat = Vec::with_capacity(1000);
    for i in 0..1000 {
        let v = json!({"name": format!("svc{i}"), "command": "true", "disabled": true});
        let t = Instant::now();
        store.add_service(v, Wait::None).await.expect("add");
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let mut last: Vec<f64> = lat[900..].to_vec();
    row(
        "add_service phase 1 p50 (1,000 adds)",
        pct(&mut lat, 0.5),
        None,
        "ms",
        "-",
    );
    row(
        "add_service phase 1 p99 at ~1,000 services",
        pct(&mut last, 0.99),
        None,
        "ms",
        "p99 < 1 ms",
    );
    store.shutdown().await;
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let kind = args
        .iter()
        .position(|a| a == "--server")
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| "everything".into());
    let what: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| !a.starts_with("--") && *a != kind)
        .collect();
    let all = what.is_empty() || what.contains(&"all");
    let want = |w: &str| all || what.contains(&w);
    let s = server(&kind);
    if let ["hold-bare", n] = what.as_slice() {
        hold_bare(&s, n.parse().unwrap_or(0)).await;
        return;
    }
    println!("mcpvisor bench, server: {} {}", s.command, s.args.join(" "));
    // First: the peak RSS is a high-water mark of this process, so nothing else may have run.
    if want("rss") || want("idle") {
        rss_and_idle(&s, want("rss"), want("idle")).await;
    }
    if want("rss-cli") {
        rss_cli(&s).await;
    }
    if want("add") {
        add_latency().await;
    }
    if want("start") {
        cold_start(&s, 10).await;
        cold_start(&s, 30).await;
    }
    if want("call") {
        call_latency(&s).await;
    }
    if want("sandbox") {
        sandbox_start(&s).await;
    }
    if want("search") {
        search_bench();
    }
    if want("throughput") {
        throughput(&s).await;
    }
    if want("kill") {
        kill_recovery(&s).await;
    }
    if want("gateway") {
        gateway::gateway(&s).await;
        gateway::gateway_eras(&s).await;
        gateway::kill_same_session(&s).await;
    } else if want("gateway-eras") {
        gateway::gateway_eras(&s).await;
    }
    if want("gateway-rss") {
        gateway::process_rss(&s).await;
    }
    if want("lazy") {
        lazy::lazy(&s).await;
    }
    if what.contains(&"scale") {
        scale::scale(&s).await;
    }
}
