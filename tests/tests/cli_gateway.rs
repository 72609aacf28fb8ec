//! The gateway through the real `mcpvisor` binary: `run --serve` over HTTP, `serve --stdio`
//! attaching to a running instance (many clients, one fleet), and `serve --stdio --config`
//! starting the background instance when none runs (it outlives its clients; `shutdown` stops
//! it).

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use mcpvisor_tests::{chaos_bin, deadline, mcpvisor_bin, pid_alive, send_signal};
use rmcp::model::CallToolResult;
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::ServiceExt;
use serde_json::{json, Value};
use tokio::io::AsyncBufReadExt;

const LONG: Duration = Duration::from_secs(30);

type Client = RunningService<RoleClient, ()>;

fn write_config(dir: &Path) -> std::path::PathBuf {
    let config = dir.join("mcp.json");
    let chaos = |extra: &[&str]| {
        json!({"command": chaos_bin().to_string_lossy(), "args": extra,
               "timeouts": {"shutdown": "300ms"}})
    };
    std::fs::write(
        &config,
        json!({"mcpServers": {"a": chaos(&[]), "b": chaos(&[])}}).to_string(),
    )
    .unwrap();
    config
}

fn mcpvisor(dir: &Path) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(mcpvisor_bin());
    c.arg("--state-dir")
        .arg(dir.join("state"))
        .env_remove("MCPVISOR_STATE_DIR")
        .env_remove("MCPVISOR_GATEWAY_TOKEN")
        .env_remove("RUST_LOG")
        .current_dir(dir)
        .kill_on_drop(true);
    c
}

/// `mcpvisor serve --stdio ARGS` as an rmcp client's child process.
async fn stdio_client(dir: &Path, extra: &[&str]) -> Client {
    let mut cmd = mcpvisor(dir);
    cmd.arg("serve").arg("--stdio").args(extra);
    let (transport, _stderr) = TokioChildProcess::builder(cmd)
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn serve --stdio");
    deadline(
        LONG,
        "initialize through serve --stdio",
        ().serve(transport),
    )
    .await
    .expect("initialize")
}

async fn call(client: &Client, tool: &str, args: Value) -> CallToolResult {
    mcpvisor_tests::mcp_call(client, tool, args).await
}

fn text(r: &CallToolResult) -> String {
    mcpvisor_tests::first_text(r)
}

async fn pid_via(client: &Client, tool: &str) -> u64 {
    let out: Value = serde_json::from_str(&text(&call(client, tool, json!({})).await)).unwrap();
    out["pid"].as_u64().expect("pid")
}

#[tokio::test]
async fn run_serves_http_and_stdio_clients_attach_to_the_one_fleet() {
    mcpvisor_service_actor::install_default_tls_provider();
    let dir = tempfile::Builder::new().prefix("mcpv").tempdir().unwrap();
    let config = write_config(dir.path());
    let mut run = mcpvisor(dir.path())
        .arg("run")
        .arg("--config")
        .arg(&config)
        .args(["--serve", "127.0.0.1:0", "--metrics", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(run.stdout.take().unwrap()).lines();
    let (metrics, url) = deadline(LONG, "the metrics and gateway lines of run", async {
        let mut metrics = None;
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.strip_prefix("metrics: ") {
                metrics = rest.split_whitespace().next().map(str::to_owned);
            }
            if let Some(rest) = line.strip_prefix("gateway: ") {
                let url = rest.split_whitespace().next().unwrap().to_owned();
                return (metrics.expect("the metrics line comes first"), url);
            }
        }
        panic!("run ended without a gateway line")
    })
    .await;
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

    let http = ().serve(StreamableHttpClientTransport::from_uri(url)).await.unwrap();
    // Services may still be starting: the call holds for them (gateway.hold).
    let via_http = pid_via(&http, "a__pids").await;
    let one = stdio_client(dir.path(), &[]).await;
    let two = stdio_client(dir.path(), &[]).await;
    let tools = one.list_all_tools().await.unwrap();
    assert!(tools.iter().any(|t| t.name == "b__echo"), "{tools:?}");
    assert_eq!(
        text(&call(&two, "b__echo", json!({"text": "hi"})).await),
        "hi"
    );
    // Three clients, one server process for `a`.
    assert_eq!(pid_via(&one, "a__pids").await, via_http);
    assert_eq!(pid_via(&two, "a__pids").await, via_http);

    // The metrics listener counts the calls made through every client.
    let text = reqwest::get(&metrics).await.unwrap().text().await.unwrap();
    let calls_of_a = text
        .lines()
        .find(|l| l.starts_with("mcpvisor_service_calls_total{service=\"a\"}"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(calls_of_a.ends_with(" 3"), "{calls_of_a}");
    let ready = reqwest::get(metrics.replace("/metrics", "/readyz"))
        .await
        .unwrap();
    assert_eq!(ready.status().as_u16(), 200);

    one.cancel().await.unwrap();
    two.cancel().await.unwrap();
    http.cancel().await.unwrap();
    send_signal(run.id().unwrap(), libc::SIGTERM).unwrap();
    let status = deadline(LONG, "run stops", run.wait()).await.unwrap();
    assert!(status.success(), "{status:?}");
    assert!(!pid_alive(u32::try_from(via_http).unwrap()));
    assert!(!dir.path().join("state/gateway.sock").exists());
}

/// The background instance a first `serve --stdio --config` started: stopped by `mcpvisor
/// shutdown` when the test ends, however it ends.
struct Background<'a>(&'a Path);

impl Background<'_> {
    /// `mcpvisor ARGS` on the test's state dir, to its end: (exit code, stdout, stderr).
    fn cli(&self, args: &[&str]) -> (Option<i32>, String, String) {
        mcpvisor_tests::finished(mcpvisor_tests::mcpvisor_on(&self.0.join("state")).args(args))
    }

    /// Pids of the background instances on this state dir, from the process table.
    fn instances(&self) -> Vec<u32> {
        let state = self.0.join("state");
        let state = state.to_str().unwrap();
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
                args.contains(&b"--background".as_slice())
                    && args.contains(&state.as_bytes())
                    && pid_alive(*pid)
            })
            .collect()
    }
}

impl Drop for Background<'_> {
    fn drop(&mut self) {
        let _ = self.cli(&["shutdown"]);
    }
}

#[tokio::test]
async fn serve_stdio_with_a_config_starts_a_background_instance_that_outlives_its_client() {
    let dir = tempfile::Builder::new().prefix("mcpv").tempdir().unwrap();
    let config = write_config(dir.path());
    let background = Background(dir.path());
    let first = stdio_client(dir.path(), &["--config", config.to_str().unwrap()]).await;
    assert_eq!(
        text(&call(&first, "a__echo", json!({"text": "first"})).await),
        "first"
    );
    let pid = u32::try_from(pid_via(&first, "a__pids").await).unwrap();
    let instances = background.instances();
    assert_eq!(instances.len(), 1, "{instances:?}");
    // Its own session and process group, apart from the client that started it.
    let instance = instances[0];
    assert_eq!(mcpvisor_tests::process_group(instance), Some(instance));
    // A second client attaches to it.
    let second = stdio_client(dir.path(), &[]).await;
    assert_eq!(pid_via(&second, "a__pids").await, u64::from(pid));
    // The client that started the fleet quits: the fleet stays, the second client goes on.
    first.cancel().await.unwrap();
    assert_eq!(
        text(&call(&second, "a__echo", json!({"text": "still here"})).await),
        "still here"
    );
    assert_eq!(pid_via(&second, "a__pids").await, u64::from(pid));
    assert!(pid_alive(instance));
    let (code, out, err) = background.cli(&["status"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("started in the background by `serve --stdio`"),
        "{out}"
    );
    assert!(out.contains("mcpvisor.log"), "{out}");
    // `shutdown` stops it: its servers, itself, its sockets.
    let (code, out, err) = background.cli(&["shutdown"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("stopped"), "{out}");
    assert!(
        !pid_alive(pid),
        "the fleet's server {pid} outlived shutdown"
    );
    assert!(
        mcpvisor_tests::wait_for_pid_exit(instance, LONG).await,
        "the instance {instance} outlived shutdown"
    );
    assert!(!dir.path().join("state/gateway.sock").exists());
    assert!(!dir.path().join("state/mcpvisor.sock").exists());
    second.cancel().await.unwrap();
    // With nothing running, `shutdown` says so.
    let (code, _, err) = background.cli(&["shutdown"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("no mcpvisor is running"), "{err}");
}

#[tokio::test]
async fn four_first_clients_at_once_make_one_instance_and_leave_no_orphan() {
    let dir = tempfile::Builder::new().prefix("mcpv").tempdir().unwrap();
    let config = write_config(dir.path());
    let background = Background(dir.path());
    let with_config = ["--config", config.to_str().unwrap()];
    let (a, b, c, d) = tokio::join!(
        stdio_client(dir.path(), &with_config),
        stdio_client(dir.path(), &with_config),
        stdio_client(dir.path(), &with_config),
        stdio_client(dir.path(), &with_config),
    );
    let mut pids = Vec::new();
    for client in [&a, &b, &c, &d] {
        pids.push(pid_via(client, "a__pids").await);
    }
    assert!(pids.iter().all(|p| *p == pids[0]), "{pids:?}");
    let instances = background.instances();
    assert_eq!(instances.len(), 1, "{instances:?}");
    for client in [a, b, c, d] {
        client.cancel().await.unwrap();
    }
    let (code, out, err) = background.cli(&["shutdown"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let server = u32::try_from(pids[0]).unwrap();
    assert!(!pid_alive(server), "the server {server} outlived shutdown");
    assert!(
        mcpvisor_tests::wait_until(LONG, || background.instances().is_empty()).await,
        "{:?}",
        background.instances()
    );
}

/// `gateway.idle_exit`: a background instance whose last client left stops by itself (its
/// servers too), saying why in its log.
#[tokio::test]
async fn a_background_instance_with_idle_exit_stops_once_its_last_client_left() {
    let dir = tempfile::Builder::new().prefix("mcpv").tempdir().unwrap();
    let config = dir.path().join("mcp.json");
    std::fs::write(
        &config,
        json!({"mcpServers": {"a": {"command": chaos_bin().to_string_lossy(),
                                    "timeouts": {"shutdown": "300ms"}}},
               "gateway": {"idle_exit": "1s"}})
        .to_string(),
    )
    .unwrap();
    let background = Background(dir.path());
    let client = stdio_client(dir.path(), &["--config", config.to_str().unwrap()]).await;
    let pid = u32::try_from(pid_via(&client, "a__pids").await).unwrap();
    let instances = background.instances();
    assert_eq!(instances.len(), 1, "{instances:?}");
    client.cancel().await.unwrap();
    assert!(
        mcpvisor_tests::wait_until(LONG, || background.instances().is_empty()).await,
        "the idle instance did not stop"
    );
    assert!(!pid_alive(pid), "its server {pid} outlived it");
    let log = std::fs::read_to_string(dir.path().join("state/mcpvisor.log")).unwrap();
    assert!(log.contains("no client attached for 1s"), "{log}");
}

/// A cold start through `serve --stdio --config` (what a client's entry runs on a fresh
/// login): the client's first `tools/list` shows every eager server's tools — real servers
/// that take a while to start — not the empty list of a fleet still starting; the first
/// prompts and resources lists too.
#[tokio::test]
async fn a_cold_start_lists_every_eager_servers_tools_in_the_first_list() {
    let dir = tempfile::Builder::new().prefix("mcpv").tempdir().unwrap();
    let config = dir.path().join("mcp.json");
    let node = |pkg: &str, extra: &[&str]| {
        let mut args = vec![
            mcpvisor_tests::loopback_preload(),
            mcpvisor_tests::node_server(pkg),
        ];
        args.insert(0, "-r".into());
        args.extend(extra.iter().map(|s| s.to_string()));
        json!({"command": "node", "args": args})
    };
    std::fs::write(
        &config,
        json!({"mcpServers": {
            "every": node("server-everything", &["stdio"]),
            "memory": node("server-memory", &[]),
        }})
        .to_string(),
    )
    .unwrap();
    let _background = Background(dir.path());
    let client = stdio_client(dir.path(), &["--config", config.to_str().unwrap()]).await;
    let first = client.list_tools(None).await.unwrap().tools;
    let names: Vec<&str> = first.iter().map(|t| t.name.as_ref()).collect();
    assert!(names.contains(&"every__echo"), "{names:?}");
    assert!(names.contains(&"memory__read_graph"), "{names:?}");
    let prompts = client.list_prompts(None).await.unwrap().prompts;
    assert!(
        prompts.iter().any(|p| p.name == "every__simple-prompt"),
        "{prompts:?}"
    );
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn serve_stdio_with_nothing_running_and_no_config_says_what_to_do() {
    let dir = tempfile::Builder::new().prefix("mcpv").tempdir().unwrap();
    let out = mcpvisor(dir.path())
        .args(["serve", "--stdio"])
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no mcpvisor instance runs on"), "{err}");
    assert!(err.contains("--config"), "{err}");
}
