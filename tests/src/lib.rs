//! mcpvisor's fault-injection integration suite: the `chaos-mcp` server ([`chaos`]) and
//! support helpers shared by the integration tests of this package.
//!
//! Process helpers here are Linux-specific (they read `/proc`).

pub mod chaos;

use std::{
    future::Future,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

pub use chaos::harness::{ChaosProcess, StderrCapture, ToolListWatcher};

/// Path of the `chaos-mcp` binary built next to the running test executable.
///
/// `CARGO_BIN_EXE_chaos-mcp` only exists when compiling this package's integration tests, so
/// this looks for the binary beside `current_exe()` (`target/<profile>/deps/<test>` →
/// `target/<profile>/chaos-mcp`). `CHAOS_MCP_BIN` overrides the lookup.
///
/// # Panics
///
/// If the binary is not there (build it with `cargo build -p mcpvisor-tests --bin chaos-mcp`).
pub fn chaos_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("CHAOS_MCP_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("current_exe");
    let mut dir = exe
        .parent()
        .expect("the test executable has a parent directory")
        .to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let bin = dir.join(format!("chaos-mcp{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "chaos-mcp not found at {}; build it with `cargo build -p mcpvisor-tests --bin chaos-mcp`",
        bin.display()
    );
    bin
}

/// The `mcpvisor` binary beside the test executable (`target/<profile>/mcpvisor`), built first
/// if it is not there (`cargo test --workspace` builds it; `cargo test -p mcpvisor-tests` does
/// not). `MCPVISOR_BIN` overrides the lookup.
pub fn mcpvisor_bin() -> &'static Path {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("MCPVISOR_BIN") {
            return PathBuf::from(p);
        }
        let exe = std::env::current_exe().expect("current_exe");
        let mut dir = exe.parent().expect("exe dir").to_path_buf();
        if dir.ends_with("deps") {
            dir.pop();
        }
        let bin = dir.join(format!("mcpvisor{}", std::env::consts::EXE_SUFFIX));
        if !bin.exists() {
            let profile = dir
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("debug")
                .to_owned();
            let target_dir = dir.parent().expect("target dir").to_path_buf();
            let mut build = std::process::Command::new(option_env!("CARGO").unwrap_or("cargo"));
            build
                .args(["build", "-q", "-p", "mcpvisor-cli", "--bin", "mcpvisor"])
                .arg("--target-dir")
                .arg(&target_dir);
            match profile.as_str() {
                "debug" => {}
                "release" => {
                    build.arg("--release");
                }
                other => {
                    build.args(["--profile", other]);
                }
            }
            let status = build.status().expect("run cargo build for mcpvisor");
            assert!(status.success(), "building mcpvisor failed");
        }
        assert!(bin.exists(), "mcpvisor not found at {}", bin.display());
        bin
    })
}

/// The state letter of `/proc/<pid>/stat` (`R`, `S`, `D`, `Z`, `T`, ...), `None` if no such
/// process.
pub fn process_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may itself contain spaces or parentheses.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().next()?.chars().next()
}

/// Whether `pid` is a live process: it exists and is neither a zombie nor dead.
pub fn pid_alive(pid: u32) -> bool {
    matches!(process_state(pid), Some(state) if state != 'Z' && state != 'X' && state != 'x')
}

/// The process group of `pid`, from `/proc/<pid>/stat`.
pub fn process_group(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    // Fields after the name: state, ppid, pgrp.
    rest.split_whitespace().nth(2)?.parse().ok()
}

/// Send `signal` to `pid`.
pub fn send_signal(pid: u32, signal: i32) -> std::io::Result<()> {
    let pid = i32::try_from(pid).map_err(std::io::Error::other)?;
    // SAFETY: kill(2) has no memory-safety requirements.
    if unsafe { libc::kill(pid, signal) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// SIGKILL every process in process group `pgid`; a missing group is not an error.
pub fn kill_process_group(pgid: u32) {
    if let Ok(pgid) = i32::try_from(pgid) {
        if pgid > 1 {
            // SAFETY: killpg(2) has no memory-safety requirements.
            unsafe {
                libc::killpg(pgid, libc::SIGKILL);
            }
        }
    }
}

/// SIGKILL `pid` if it is alive; errors (already gone) are ignored.
pub fn kill_pid(pid: u32) {
    if pid_alive(pid) {
        let _ = send_signal(pid, libc::SIGKILL);
    }
}

/// Poll `condition` every 5 ms until it holds (true) or `timeout` passes (false).
pub async fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Wait until `pid` is no longer alive (gone or zombie).
pub async fn wait_for_pid_exit(pid: u32, timeout: Duration) -> bool {
    wait_until(timeout, || !pid_alive(pid)).await
}

/// Polls an async condition every 10 ms until it holds (true) or `within` passes (false).
pub async fn eventually<F, Fut>(within: Duration, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let end = Instant::now() + within;
    loop {
        if cond().await {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Run `future` with a deadline, panicking with `what` if it elapses.
pub async fn deadline<T>(timeout: Duration, what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(timeout, future).await {
        Ok(value) => value,
        Err(_) => panic!("timed out after {timeout:?}: {what}"),
    }
}

/// Calls `tool` with `args` (a JSON object) through an MCP client; panics if the call fails.
pub async fn mcp_call(
    peer: &rmcp::Peer<rmcp::RoleClient>,
    tool: &str,
    args: serde_json::Value,
) -> rmcp::model::CallToolResult {
    let params = rmcp::model::CallToolRequestParams::new(tool.to_owned())
        .with_arguments(args.as_object().cloned().expect("arguments are an object"));
    peer.call_tool(params).await.expect("call")
}

/// The names of the tools `peer` lists, in its order.
pub async fn tool_names(peer: &rmcp::Peer<rmcp::RoleClient>) -> Vec<String> {
    peer.list_all_tools()
        .await
        .expect("tools/list")
        .into_iter()
        .map(|t| t.name.to_string())
        .collect()
}

/// The first text content of a tool result ("" if none).
pub fn first_text(r: &rmcp::model::CallToolResult) -> String {
    r.content
        .first()
        .and_then(|c| c.as_text())
        .map(|t| t.text.clone())
        .unwrap_or_default()
}

/// The reason of the next transition (of any service) into `to` on `events`; panics after
/// `within` or if the stream ends.
pub async fn next_transition_to(
    events: &mut mcpvisor_supervisor::EventStream,
    to: mcpvisor_model::ServiceState,
    within: Duration,
) -> String {
    deadline(within, &format!("a transition to {to}"), async {
        loop {
            match events.next().await {
                Some(mcpvisor_model::Event::StateChanged {
                    to: state, reason, ..
                }) if state == to => return reason,
                Some(_) => {}
                None => panic!("event stream ended"),
            }
        }
    })
    .await
}

// ---- real servers installed by scripts/install-test-servers.sh ----

/// The directory the real test servers are installed in (panics with the fix if missing).
pub fn servers_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.test-servers");
    assert!(
        dir.join("node_modules").exists() && dir.join("venv").exists(),
        "real test servers missing in {}; run `bash scripts/install-test-servers.sh` (the README's test command does)",
        dir.display()
    );
    dir
}

pub fn node_server(pkg: &str) -> String {
    servers_dir()
        .join("node_modules/@modelcontextprotocol")
        .join(pkg)
        .join("dist/index.js")
        .to_string_lossy()
        .into_owned()
}

pub fn loopback_preload() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("support/loopback.cjs")
        .to_string_lossy()
        .into_owned()
}

/// A server-everything streamable HTTP server on a loopback port, killed on drop.
pub struct HttpServer {
    child: tokio::process::Child,
}

impl HttpServer {
    pub async fn start_mode(port: u16, mode: &str) -> HttpServer {
        let mut child = tokio::process::Command::new("node")
            .arg("-r")
            .arg(loopback_preload())
            .arg(node_server("server-everything"))
            .arg(mode)
            .env("PORT", port.to_string())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        // Drain its log, and consider it ready once the port accepts connections.
        use tokio::io::AsyncBufReadExt;
        let stderr = child.stderr.take().unwrap();
        let mut lines = tokio::io::BufReader::new(stderr).lines();
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        deadline(Duration::from_secs(30), "http server listening", async {
            while tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_err()
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        HttpServer { child }
    }

    pub async fn kill(mut self) {
        let _ = self.child.kill().await;
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Writes `config` to `dir/mcp.json` and opens a Store on it with the state dir `dir/state`.
pub async fn open_store_in(dir: &Path, config: &serde_json::Value) -> mcpvisor_supervisor::Store {
    std::fs::write(
        dir.join("mcp.json"),
        serde_json::to_vec(config).expect("config as JSON"),
    )
    .expect("write mcp.json");
    mcpvisor_supervisor::Store::open(
        mcpvisor_supervisor::StoreOptions::new()
            .config_file(dir.join("mcp.json"))
            .state_dir(dir.join("state")),
    )
    .await
    .expect("open the store")
}

/// `mcpvisor run --serve 127.0.0.1:0` on `config` in a state dir of its own, ready (its
/// `ready:` line printed); stopped on drop (SIGTERM, then SIGKILL after 20 s).
/// The real `mcpvisor` binary on the state dir `state` (never the caller's
/// `MCPVISOR_STATE_DIR`), stdin closed.
pub fn mcpvisor_on(state: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(mcpvisor_bin());
    cmd.arg("--state-dir")
        .arg(state)
        .env_remove("MCPVISOR_STATE_DIR")
        .stdin(std::process::Stdio::null());
    cmd
}

/// `cmd` run to its end: (exit code, stdout, stderr).
pub fn finished(cmd: &mut std::process::Command) -> (Option<i32>, String, String) {
    let out = cmd.output().expect("run the command");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub struct RunServe {
    child: std::process::Child,
    /// The gateway's URL (`http://127.0.0.1:PORT/mcp`).
    pub url: String,
    /// The instance's state dir (`serve --stdio --state-dir` attaches to it).
    pub state: PathBuf,
    _dir: tempfile::TempDir,
}

impl RunServe {
    /// The instance's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn start(config: &serde_json::Value) -> RunServe {
        use std::io::BufRead;
        let dir = tempfile::Builder::new().prefix("mcpv").tempdir().unwrap();
        let file = dir.path().join("mcp.json");
        std::fs::write(&file, config.to_string()).unwrap();
        let state = dir.path().join("state");
        let mut child = std::process::Command::new(mcpvisor_bin())
            .arg("--state-dir")
            .arg(&state)
            .arg("run")
            .arg("--config")
            .arg(&file)
            .args(["--serve", "127.0.0.1:0"])
            .env_remove("MCPVISOR_STATE_DIR")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn mcpvisor run --serve");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut url = None;
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if let Some(rest) = line.strip_prefix("gateway: ") {
                    url = rest.split_whitespace().next().map(str::to_owned);
                }
                if line.starts_with("ready: ") {
                    let _ = tx.send(url.clone());
                }
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(60))
            .ok()
            .flatten()
            .expect("mcpvisor run --serve printed its gateway and became ready");
        RunServe {
            child,
            url,
            state,
            _dir: dir,
        }
    }
}

impl Drop for RunServe {
    fn drop(&mut self) {
        let _ = send_signal(self.child.id(), libc::SIGTERM);
        let end = std::time::Instant::now() + Duration::from_secs(20);
        while std::time::Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
