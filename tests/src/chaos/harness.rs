//! Test-side helpers for driving `chaos-mcp`: spawning it in its own process group (killed as a
//! group on drop), connecting an rmcp client over its pipes, capturing stderr, tapping stdout,
//! and a client handler that reports `tools/list_changed`.

use std::{
    path::Path,
    process::{ExitStatus, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use rmcp::{
    model::{CallToolRequestParams, CallToolResult, ClientRequest, PingRequest, ServerResult},
    service::{ClientInitializeError, NotificationContext, Peer, RunningService},
    ClientHandler, RoleClient, ServiceError, ServiceExt,
};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    process::{Child, ChildStderr, ChildStdin, ChildStdout, Command},
    sync::mpsc,
};

/// A running `chaos-mcp` child in its own process group. Dropping it SIGKILLs the whole group
/// (grandchildren included) and the child.
#[derive(Debug)]
pub struct ChaosProcess {
    pub child: Child,
    pid: u32,
    pub stdin: Option<ChildStdin>,
    pub stdout: Option<ChildStdout>,
    pub stderr: Option<ChildStderr>,
}

impl ChaosProcess {
    /// A command for `bin` with `args`: all stdio piped, its own process group, killed on drop.
    pub fn command_for(bin: impl AsRef<Path>, args: &[&str]) -> Command {
        let mut command = Command::new(bin.as_ref());
        command
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .process_group(0);
        command
    }

    /// [`Self::command_for`] with the binary found by [`crate::chaos_bin`].
    pub fn command(args: &[&str]) -> Command {
        Self::command_for(crate::chaos_bin(), args)
    }

    /// Spawn [`Self::command`].
    pub fn spawn(args: &[&str]) -> std::io::Result<Self> {
        Self::spawn_command(Self::command(args))
    }

    /// Spawn a prepared command (it should use `process_group(0)`: drop kills the group).
    pub fn spawn_command(mut command: Command) -> std::io::Result<Self> {
        let mut child = command.spawn()?;
        let pid = child
            .id()
            .ok_or_else(|| std::io::Error::other("child has no pid"))?;
        Ok(Self {
            stdin: child.stdin.take(),
            stdout: child.stdout.take(),
            stderr: child.stderr.take(),
            child,
            pid,
        })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    fn take_pipes(&mut self) -> Option<(ChildStdout, ChildStdin)> {
        Some((self.stdout.take()?, self.stdin.take()?))
    }

    fn pipes_taken() -> ClientInitializeError {
        ClientInitializeError::ConnectionClosed("chaos-mcp stdin/stdout already taken".into())
    }

    /// Connect a do-nothing rmcp client over the child's stdin/stdout.
    pub async fn connect(
        &mut self,
    ) -> Result<RunningService<RoleClient, ()>, ClientInitializeError> {
        self.connect_with(()).await
    }

    /// Connect `handler` as an rmcp client over the child's stdin/stdout.
    pub async fn connect_with<H: ClientHandler>(
        &mut self,
        handler: H,
    ) -> Result<RunningService<RoleClient, H>, ClientInitializeError> {
        let (stdout, stdin) = self.take_pipes().ok_or_else(Self::pipes_taken)?;
        handler.serve((stdout, stdin)).await
    }

    /// Like [`Self::connect_with`], but every raw stdout line is also sent to the returned
    /// receiver before the client parses it (to see garbage the client ignores).
    pub async fn connect_tapped<H: ClientHandler>(
        &mut self,
        handler: H,
    ) -> Result<
        (
            RunningService<RoleClient, H>,
            mpsc::UnboundedReceiver<String>,
        ),
        ClientInitializeError,
    > {
        let (stdout, stdin) = self.take_pipes().ok_or_else(Self::pipes_taken)?;
        let (client_side, mut tap_side) = tokio::io::duplex(1 << 20);
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let _ = tx.send(line.clone());
                let mut framed = line.into_bytes();
                framed.push(b'\n');
                if tap_side.write_all(&framed).await.is_err() {
                    break;
                }
            }
        });
        let running = handler.serve((client_side, stdin)).await?;
        Ok((running, rx))
    }

    /// Start collecting the child's stderr in the background.
    ///
    /// # Panics
    ///
    /// If stderr was not piped or was already taken.
    pub fn capture_stderr(&mut self) -> StderrCapture {
        StderrCapture::start(self.stderr.take().expect("chaos-mcp stderr is piped"))
    }

    /// Wait for the child to exit, at most `timeout`.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        tokio::time::timeout(timeout, self.child.wait())
            .await
            .ok()
            .and_then(Result::ok)
    }

    /// Send `signal` to the child itself.
    pub fn signal(&self, signal: i32) -> std::io::Result<()> {
        crate::send_signal(self.pid, signal)
    }

    /// SIGKILL the child's whole process group (grandchildren included) and the child.
    pub fn kill_all(&mut self) {
        crate::kill_process_group(self.pid);
        let _ = self.child.start_kill();
    }
}

impl Drop for ChaosProcess {
    fn drop(&mut self) {
        self.kill_all();
    }
}

/// The stderr of a child, collected by a background task.
#[derive(Debug, Clone)]
pub struct StderrCapture {
    buf: Arc<Mutex<Vec<u8>>>,
    eof: Arc<std::sync::atomic::AtomicBool>,
}

impl StderrCapture {
    pub fn start(mut stderr: ChildStderr) -> Self {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let eof = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let capture = Self {
            buf: buf.clone(),
            eof: eof.clone(),
        };
        tokio::spawn(async move {
            let mut chunk = vec![0u8; 64 * 1024];
            loop {
                match stderr.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .extend_from_slice(&chunk[..n]),
                }
            }
            eof.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        capture
    }

    /// Bytes read so far.
    pub fn len(&self) -> usize {
        self.buf.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether stderr reached end of file.
    pub fn at_eof(&self) -> bool {
        self.eof.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Everything read so far, lossily decoded.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.buf.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }

    /// Wait until the text read so far satisfies `predicate`, at most `timeout`.
    pub async fn wait_for(&self, timeout: Duration, predicate: impl Fn(&str) -> bool) -> bool {
        crate::wait_until(timeout, || predicate(&self.text())).await
    }

    /// Wait until at least `bytes` bytes have been read, at most `timeout`.
    pub async fn wait_for_len(&self, timeout: Duration, bytes: usize) -> bool {
        crate::wait_until(timeout, || self.len() >= bytes).await
    }
}

/// A client handler that reports each `notifications/tools/list_changed` on a channel.
#[derive(Debug, Clone)]
pub struct ToolListWatcher {
    tx: mpsc::UnboundedSender<()>,
}

impl ToolListWatcher {
    pub fn new() -> (Self, mpsc::UnboundedReceiver<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self { tx }, rx)
    }
}

impl ClientHandler for ToolListWatcher {
    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        let _ = self.tx.send(());
    }
}

/// Call `name` with a JSON object of arguments.
///
/// # Panics
///
/// If `arguments` is not a JSON object.
pub async fn call(
    peer: &Peer<RoleClient>,
    name: &str,
    arguments: serde_json::Value,
) -> Result<CallToolResult, ServiceError> {
    let serde_json::Value::Object(arguments) = arguments else {
        panic!("tool arguments must be a JSON object");
    };
    peer.call_tool(CallToolRequestParams::new(name.to_owned()).with_arguments(arguments))
        .await
}

/// The concatenated text content of a tool result.
pub fn result_text(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|block| block.as_text().map(|t| t.text.as_str()))
        .collect::<Vec<_>>()
        .join("")
}

/// Send a `ping` request.
pub async fn ping(peer: &Peer<RoleClient>) -> Result<ServerResult, ServiceError> {
    peer.send_request(ClientRequest::PingRequest(PingRequest::default()))
        .await
}
