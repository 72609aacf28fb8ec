//! Wiring of the gateway (crate `mcpvisor-gateway`): `run` serves it on a Unix socket in the
//! state dir (and over HTTP with `--serve`); `serve --stdio` is what an MCP client's
//! `mcpServers` entry runs — it attaches to that socket, so every client shares one fleet. Given
//! `--config` with no instance running, it starts `mcpvisor run` as the state dir's background
//! instance (detached: its own session, its log in the state dir) and attaches to it like every
//! later client, so the fleet outlives the client that started it (`mcpvisor shutdown` stops
//! it).
//!
//! The socket speaks MCP's stdio framing (newline-delimited JSON-RPC) after one preamble line,
//! `mcpvisor-gateway <endpoint>`, naming the endpoint (`default` or `agent:<id>`). Only the
//! socket's owner can connect (mode 0600).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mcpvisor_gateway::{Endpoint, Gateway, HttpOptions};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;

use crate::error::{CliError, CliResult};
use crate::paths;

const PREAMBLE: &str = "mcpvisor-gateway";
/// How long a connection may take to send its preamble.
const PREAMBLE_WAIT: Duration = Duration::from_secs(5);

fn preamble(endpoint: &Endpoint) -> String {
    match endpoint {
        Endpoint::Default => format!("{PREAMBLE} default\n"),
        Endpoint::Agent(id) => format!("{PREAMBLE} agent:{id}\n"),
    }
}

fn parse_preamble(line: &str) -> Option<Endpoint> {
    match line.trim_end().strip_prefix(PREAMBLE)?.trim() {
        "default" => Some(Endpoint::Default),
        other => other
            .strip_prefix("agent:")
            .filter(|id| !id.is_empty())
            .map(|id| Endpoint::Agent(id.to_owned())),
    }
}

/// Binds the gateway socket of `state_dir` (mode 0600). The caller holds the state dir's lock,
/// so a socket file already there was left by a dead instance.
pub fn bind_socket(state_dir: &Path) -> CliResult<(PathBuf, UnixListener)> {
    let path = paths::gateway_socket_path(state_dir)?;
    if path.exists() {
        let _ = std::fs::remove_file(&path);
    }
    let listener = crate::server::bind_private(&path)?;
    Ok((path, listener))
}

/// Serves the gateway on `listener` until `cancel` fires: one MCP session per connection,
/// counted in `attached` while it lasts.
pub async fn serve_socket(
    listener: UnixListener,
    gateway: Gateway,
    cancel: CancellationToken,
    attached: Arc<AtomicUsize>,
) {
    /// One attached client, counted until its connection ends.
    struct Attached(Arc<AtomicUsize>);
    impl Drop for Attached {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }
    loop {
        let stream = tokio::select! {
            _ = cancel.cancelled() => return,
            accepted = listener.accept() => match accepted {
                // A sandboxed server does not reach the fleet's tools through the gateway's
                // socket either (its network sandbox says what else it reaches).
                Ok((stream, _)) if crate::server::from_a_sandbox(&stream) => continue,
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!("gateway socket: accept failed: {e}");
                    continue;
                }
            },
        };
        let gateway = gateway.clone();
        let cancel = cancel.clone();
        attached.fetch_add(1, Ordering::SeqCst);
        let counted = Attached(attached.clone());
        tokio::spawn(async move {
            let _counted = counted;
            let (read, write) = stream.into_split();
            let mut read = BufReader::new(read);
            let mut line = String::new();
            let got = tokio::time::timeout(PREAMBLE_WAIT, read.read_line(&mut line)).await;
            let Some(endpoint) = got
                .ok()
                .and_then(|r| r.ok())
                .and_then(|_| parse_preamble(&line))
            else {
                tracing::warn!("gateway socket: a connection without a valid preamble was closed");
                return;
            };
            tokio::select! {
                _ = cancel.cancelled() => {}
                r = gateway.serve_stream(endpoint, read, write) => {
                    if let Err(e) = r {
                        tracing::warn!("gateway socket: {e}");
                    }
                }
            }
        });
    }
}

/// Fires `stop` once no client has been attached for `after` (`gateway.idle_exit` of a
/// background instance).
pub async fn exit_when_idle(attached: Arc<AtomicUsize>, after: Duration, stop: CancellationToken) {
    let tick = (after / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
    let mut idle_since = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(tick) => {}
        }
        if attached.load(Ordering::SeqCst) > 0 {
            idle_since = tokio::time::Instant::now();
        } else if idle_since.elapsed() >= after {
            crate::output::log(&format!(
                "no client attached for {}: stopping (gateway.idle_exit)",
                humantime::format_duration(after)
            ));
            stop.cancel();
            return;
        }
    }
}

/// The HTTP gateway's options: loopback rules, the token from `--token-file` or
/// `MCPVISOR_GATEWAY_TOKEN`.
pub fn http_options(
    bind: std::net::SocketAddr,
    token_file: Option<&Path>,
) -> CliResult<HttpOptions> {
    let mut options = HttpOptions::new(bind);
    options.token = match token_file {
        Some(f) => Some(
            std::fs::read_to_string(f)
                .map_err(|e| {
                    CliError::bad_input(format!("cannot read --token-file {}: {e}", f.display()))
                })?
                .trim()
                .to_owned(),
        ),
        None => std::env::var("MCPVISOR_GATEWAY_TOKEN")
            .ok()
            .map(|t| t.trim().to_owned()),
    }
    .filter(|t| !t.is_empty());
    if !bind.ip().is_loopback() && options.token.is_none() {
        return Err(CliError::bad_input(format!(
            "--serve {bind} is not loopback: a bearer token is required (MCPVISOR_GATEWAY_TOKEN \
             or --token-file)"
        )));
    }
    Ok(options)
}

/// `serve --stdio`: attach to the instance on `state_dir`, else (with `config`) start one there
/// in the background and attach to it.
pub async fn serve_stdio(
    state_dir: PathBuf,
    config: Option<PathBuf>,
    agent: Option<String>,
) -> CliResult<()> {
    let endpoint = match agent {
        Some(id) => Endpoint::Agent(id),
        None => Endpoint::Default,
    };
    let socket = paths::gateway_socket_path(&state_dir)?;
    if let Ok(stream) = UnixStream::connect(&socket).await {
        return attach(stream, &endpoint).await;
    }
    let Some(config) = config else {
        return Err(CliError::failed(format!(
            "no mcpvisor instance runs on {}: start `mcpvisor run --config FILE` there, or \
             give `serve --stdio` a --config to start one in the background",
            state_dir.display()
        )));
    };
    let stream = start_background(&config, &state_dir, &socket).await?;
    attach(stream, &endpoint).await
}

/// How long a first client waits for the background instance to listen.
const BACKGROUND_WAIT: Duration = Duration::from_secs(60);

/// No instance runs on `state_dir`: starts `mcpvisor run --config CONFIG --background` there —
/// its own session and process group, stdin closed, its output appended to the state dir's
/// log — and connects once it listens. First clients starting at once each start one: the
/// state dir's lock lets one run and the others exit at once, and every client attaches to
/// the one that runs.
async fn start_background(config: &Path, state_dir: &Path, socket: &Path) -> CliResult<UnixStream> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    use std::os::unix::process::CommandExt;
    let cannot = |what: &str, e: std::io::Error| {
        CliError::failed(format!(
            "cannot start the background instance ({what}): {e}"
        ))
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(state_dir)
        .map_err(|e| cannot(&format!("create {}", state_dir.display()), e))?;
    let log_path = paths::log_path(state_dir);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&log_path)
        .map_err(|e| cannot(&format!("open {}", log_path.display()), e))?;
    let exe = std::env::current_exe().map_err(|e| cannot("find mcpvisor's own binary", e))?;
    let config = std::path::absolute(config).map_err(|e| cannot("the config path", e))?;
    let state = std::path::absolute(state_dir).map_err(|e| cannot("the state dir", e))?;
    // The fleet is every client's: it runs in its config's folder (relative paths in the config
    // mean the same for every client), not in the first client's.
    let home = config
        .parent()
        .filter(|p| p.is_dir())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| state.clone());
    let spawn =
        || -> CliResult<std::sync::mpsc::Receiver<std::io::Result<std::process::ExitStatus>>> {
            let mut cmd = std::process::Command::new(&exe);
            cmd.arg("--state-dir")
                .arg(&state)
                .arg("--config")
                .arg(&config)
                .args(["run", "--background"])
                .current_dir(&home)
                // The first client's service manager is not the fleet's.
                .env_remove("NOTIFY_SOCKET")
                .stdin(std::process::Stdio::null())
                .stdout(log.try_clone().map_err(|e| cannot("its log", e))?)
                .stderr(log.try_clone().map_err(|e| cannot("its log", e))?);
            // SAFETY: only setsid(2), which is async-signal-safe, runs between fork and exec.
            unsafe {
                cmd.pre_exec(|| {
                    nix::unistd::setsid()
                        .map(|_| ())
                        .map_err(std::io::Error::from)
                });
            }
            let mut child = cmd.spawn().map_err(|e| cannot("spawn", e))?;
            // Reaped here if it ends while this client runs (it lost the state dir to another
            // first client's, or failed); if this client ends first, init adopts it.
            let (exited_tx, exited) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let _ = exited_tx.send(child.wait());
            });
            Ok(exited)
        };
    let mut exited = spawn()?;
    // An instance that was stopping (its socket gone, its lock still held) makes ours exit at
    // once; once the lock is free, another is started, a few times at most.
    let mut respawns = 0;
    let end = std::time::Instant::now() + BACKGROUND_WAIT;
    let mut ours_exited = None;
    loop {
        if let Ok(stream) = UnixStream::connect(socket).await {
            return Ok(stream);
        }
        if let Ok(status) = exited.try_recv() {
            ours_exited = Some(status);
        }
        // Ours ended and no other instance holds the state dir: none is coming.
        let nobody = ours_exited.is_some() && !crate::server::claimed(state_dir);
        if nobody && respawns < 3 {
            respawns += 1;
            ours_exited = None;
            exited = spawn()?;
            continue;
        }
        if nobody || std::time::Instant::now() > end {
            let how = match ours_exited {
                Some(Ok(status)) => format!("it exited ({status})"),
                Some(Err(e)) => format!("it could not be waited for: {e}"),
                None => format!("it did not listen within {}s", BACKGROUND_WAIT.as_secs()),
            };
            return Err(CliError::failed(format!(
                "the background instance for {} did not start: {how}; its log, {}, ends:\n{}",
                state_dir.display(),
                log_path.display(),
                log_tail(&log_path, 20)
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The last `lines` lines of the file at `path` (empty if it cannot be read).
fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Pipes stdin → the instance and the instance → stdout until either side ends.
async fn attach(stream: UnixStream, endpoint: &Endpoint) -> CliResult<()> {
    let (mut from_fleet, mut to_fleet) = stream.into_split();
    to_fleet.write_all(preamble(endpoint).as_bytes()).await?;
    let up = async {
        let mut stdin = tokio::io::stdin();
        let _ = tokio::io::copy(&mut stdin, &mut to_fleet).await;
        let _ = to_fleet.shutdown().await;
    };
    let down = async {
        let mut stdout = tokio::io::stdout();
        let copied = tokio::io::copy(&mut from_fleet, &mut stdout).await;
        let _ = stdout.flush().await;
        copied
    };
    tokio::pin!(up, down);
    tokio::select! {
        // The client closed stdin: let the instance finish answering, then end.
        _ = &mut up => { let _ = down.await; Ok(()) }
        // The instance closed the connection (it stopped): the client must know.
        r = &mut down => match r {
            Ok(_) => Err(CliError::failed("the mcpvisor instance closed the connection (stopped?)")),
            Err(e) => Err(CliError::failed(format!("the connection to the mcpvisor instance failed: {e}"))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn an_idle_background_instance_stops_after_idle_exit_and_not_while_a_client_is_attached()
    {
        let attached = Arc::new(AtomicUsize::new(1));
        let stop = CancellationToken::new();
        let watch = tokio::spawn(exit_when_idle(
            attached.clone(),
            Duration::from_secs(60),
            stop.clone(),
        ));
        // Attached for ten minutes: never.
        tokio::time::sleep(Duration::from_secs(600)).await;
        assert!(!stop.is_cancelled());
        // Detached: not before a minute, then at once.
        attached.store(0, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(50)).await;
        assert!(!stop.is_cancelled());
        tokio::time::sleep(Duration::from_secs(12)).await;
        assert!(stop.is_cancelled());
        watch.await.unwrap();
    }

    #[test]
    fn the_preamble_names_the_endpoint() {
        for e in [Endpoint::Default, Endpoint::Agent("bot".into())] {
            assert_eq!(parse_preamble(&preamble(&e)), Some(e));
        }
        assert_eq!(parse_preamble("{\"jsonrpc\":\"2.0\"}\n"), None);
        assert_eq!(parse_preamble("mcpvisor-gateway agent:\n"), None);
    }
}
