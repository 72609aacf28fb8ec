//! The `chaos-mcp` request handler, its shared fault state, the stdio hang gate and the hooked
//! stdout writer that runs "after the response" actions.

use std::{
    borrow::Cow,
    pin::Pin,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
    task::{ready, Context, Poll},
    time::Duration,
};

use rmcp::{
    model::{
        CallToolRequestParams, CallToolResponse, CallToolResult, ClientNotification, ClientRequest,
        ContentBlock, Implementation, InitializeRequestParams, InitializeResult, JsonObject,
        ListToolsResult, PaginatedRequestParams, PingRequestMethod, ProtocolVersion, RequestId,
        ServerCapabilities, ServerConfig, ServerResult, Tool,
    },
    service::{NotificationContext, RequestContext},
    ErrorData as McpError, Peer, RoleServer, ServerHandler, Service,
};
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::{
    args::{Args, LATE_TOOL},
    faults,
    tools::{self, ToolArgs},
};

/// Something to do once the response being produced has reached stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostAction {
    Exit(i32),
    CloseStdout,
}

/// Fault state shared by every handler instance (one per HTTP session, one in stdio mode).
#[derive(Debug)]
pub struct Shared {
    pub args: Args,
    stdio: bool,
    calls: AtomicU64,
    hung: AtomicBool,
    exiting: AtomicBool,
    stay_alive: AtomicBool,
    no_ping: AtomicBool,
    /// HTTP mode: set by `forget_sessions`; the next request makes every session seen so far
    /// unknown (404), as a server that expired or lost them.
    pub forget_sessions: AtomicBool,
    tools: Mutex<Vec<Tool>>,
    grandchildren: Mutex<Vec<u32>>,
    /// Actions waiting for the response with this JSON-RPC id to be written (stdio).
    pending: Mutex<Vec<(serde_json::Value, PostAction)>>,
    has_pending: AtomicBool,
    /// Actions whose response has been written, to run at the next completed flush.
    armed: Mutex<Vec<PostAction>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    pub fn new(args: Args, stdio: bool) -> Self {
        let tools = tools::initial_tools(args.tools);
        let no_ping = args.no_ping;
        Self {
            args,
            stdio,
            calls: AtomicU64::new(0),
            hung: AtomicBool::new(false),
            exiting: AtomicBool::new(false),
            stay_alive: AtomicBool::new(false),
            no_ping: AtomicBool::new(no_ping),
            forget_sessions: AtomicBool::new(false),
            tools: Mutex::new(tools),
            grandchildren: Mutex::new(Vec::new()),
            pending: Mutex::new(Vec::new()),
            has_pending: AtomicBool::new(false),
            armed: Mutex::new(Vec::new()),
        }
    }

    pub fn add_grandchildren(&self, pids: &[u32]) {
        lock(&self.grandchildren).extend_from_slice(pids);
    }

    /// Whether a fault (hang, closed stdout) must keep the process alive after stdin closes.
    pub fn stay_alive(&self) -> bool {
        self.stay_alive.load(Ordering::SeqCst)
    }

    pub fn set_hung(&self) {
        self.stay_alive.store(true, Ordering::SeqCst);
        self.hung.store(true, Ordering::SeqCst);
        chaos_log!("hanging: no request will be answered any more");
    }

    pub fn is_hung(&self) -> bool {
        self.hung.load(Ordering::SeqCst)
    }

    /// Await forever if the server hangs.
    pub async fn wait_if_hung(&self) {
        if self.is_hung() {
            std::future::pending::<()>().await;
        }
    }

    pub fn close_stdout_now(&self) {
        self.stay_alive.store(true, Ordering::SeqCst);
        if let Err(error) = faults::close_stdout() {
            chaos_log!("could not close stdout: {error}");
        }
    }

    fn run_action(&self, action: PostAction) {
        match action {
            PostAction::Exit(code) => {
                chaos_log!("exiting with code {code}");
                std::process::exit(code);
            }
            PostAction::CloseStdout => self.close_stdout_now(),
        }
    }

    fn has_pending(&self) -> bool {
        self.has_pending.load(Ordering::SeqCst)
    }

    /// A complete line was written to stdout: arm the actions waiting for its id.
    fn line_written(&self, line: &[u8]) {
        #[derive(serde::Deserialize)]
        struct Frame {
            id: Option<serde_json::Value>,
        }
        let Ok(Frame { id: Some(id) }) = serde_json::from_slice::<Frame>(line) else {
            return;
        };
        let mut pending = lock(&self.pending);
        let mut armed = lock(&self.armed);
        pending.retain(|(waiting_for, action)| {
            if *waiting_for == id {
                armed.push(*action);
                false
            } else {
                true
            }
        });
        self.has_pending
            .store(!pending.is_empty(), Ordering::SeqCst);
    }

    /// stdout was flushed: run the armed actions.
    fn flushed(&self) {
        let actions = std::mem::take(&mut *lock(&self.armed));
        for action in actions {
            self.run_action(action);
        }
    }

    /// Run `action` once the response to request `id` is out: in stdio mode, at the first
    /// completed flush after that response's line was written (5 s fallback); in HTTP mode,
    /// 100 ms from now.
    fn schedule(self: &Arc<Self>, id: &RequestId, action: PostAction) {
        if matches!(action, PostAction::Exit(_)) {
            self.exiting.store(true, Ordering::SeqCst);
        }
        let id = serde_json::to_value(id).unwrap_or_default();
        let delay = if self.stdio {
            lock(&self.pending).push((id.clone(), action));
            self.has_pending.store(true, Ordering::SeqCst);
            Duration::from_secs(5)
        } else {
            Duration::from_millis(100)
        };
        let shared = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            if shared.stdio {
                let still_waiting = {
                    let mut pending = lock(&shared.pending);
                    let before = pending.len();
                    pending.retain(|(waiting_for, a)| !(*waiting_for == id && *a == action));
                    before != pending.len()
                };
                if !still_waiting {
                    return;
                }
                chaos_log!("response never written; running {action:?} anyway");
            }
            shared.run_action(action);
        });
    }

    fn tool_exists(&self, name: &str) -> bool {
        lock(&self.tools).iter().any(|tool| tool.name == name)
    }

    fn add_tool(&self, name: &str) -> Result<(), String> {
        if name.is_empty() {
            return Err("add_tool: `name` must not be empty".into());
        }
        let mut tools = lock(&self.tools);
        if tools.iter().any(|tool| tool.name == name) {
            return Err(format!("add_tool: tool `{name}` already exists"));
        }
        tools.push(tools::echo_args_tool(name));
        chaos_log!("added tool {name}");
        Ok(())
    }

    fn remove_tool(&self, name: &str) -> Result<(), String> {
        if name == "chaos" {
            return Err("remove_tool: the `chaos` tool cannot be removed".into());
        }
        let mut tools = lock(&self.tools);
        let before = tools.len();
        tools.retain(|tool| tool.name != name);
        if tools.len() == before {
            return Err(format!("remove_tool: no tool named `{name}`"));
        }
        chaos_log!("removed tool {name}");
        Ok(())
    }
}

async fn notify_list_changed(peer: &Peer<RoleServer>) {
    if let Err(error) = peer.notify_tool_list_changed().await {
        chaos_log!("could not send tools/list_changed: {error}");
    }
}

/// The MCP handler. Cheap to clone; all state lives in [`Shared`].
#[derive(Debug, Clone)]
pub struct ChaosServer {
    shared: Arc<Shared>,
}

type ToolOutcome = Result<CallToolResult, String>;

fn text(s: impl Into<String>) -> ToolOutcome {
    Ok(CallToolResult::success(vec![ContentBlock::text(s)]))
}

impl ChaosServer {
    pub fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// Faults triggered by the number of answered calls.
    fn after_call(&self, n: u64, context: &RequestContext<RoleServer>) {
        let (id, peer) = (&context.id, &context.peer);
        let shared = &self.shared;
        if shared.args.exit_after_calls == Some(n) {
            chaos_log!("call #{n} answered: exiting (--exit-after-calls)");
            shared.schedule(id, PostAction::Exit(shared.args.exit_code));
        }
        if shared.args.hang_after_calls == Some(n) {
            shared.set_hung();
        }
        if shared.args.close_stdout_after_calls == Some(n) {
            shared.schedule(id, PostAction::CloseStdout);
        }
        if shared.args.add_tool_after_calls == Some(n) && shared.add_tool(LATE_TOOL).is_ok() {
            let peer = peer.clone();
            tokio::spawn(async move { notify_list_changed(&peer).await });
        }
    }

    async fn dispatch(
        &self,
        name: &str,
        args: &JsonObject,
        context: &RequestContext<RoleServer>,
    ) -> ToolOutcome {
        let a = ToolArgs::new(name, args);
        match name {
            "echo" => text(a.str("text")?),
            "add" => text(tools::add_numbers(a.number("a")?, a.number("b")?)),
            "sleep" => {
                let ms = a.u64("ms")?;
                // `steps`: report progress that many times while sleeping (to the caller's
                // progress token, if it gave one).
                let steps = a.opt_u64("steps")?.unwrap_or(0);
                let token = context.meta.get_progress_token();
                let work = async {
                    if steps == 0 {
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                        return;
                    }
                    for i in 1..=steps {
                        tokio::time::sleep(Duration::from_millis(ms / steps)).await;
                        if let Some(token) = &token {
                            let mut p = rmcp::model::ProgressNotificationParam::new(
                                token.clone(),
                                i as f64,
                            );
                            p.total = Some(steps as f64);
                            p.message = Some(format!("step {i} of {steps}"));
                            let _ = context.peer.notify_progress(p).await;
                        }
                    }
                };
                tokio::select! {
                    _ = work => {}
                    _ = context.ct.cancelled() => {
                        // The client sent notifications/cancelled for this request.
                        chaos_log!("sleep cancelled by the client after a cancel notification");
                        return Err("cancelled".to_owned());
                    }
                }
                chaos_log!("slept {ms} ms to the end");
                text(format!("slept {ms}"))
            }
            "fail" => {
                let message = a
                    .opt_str("message")?
                    .unwrap_or("chaos-mcp: requested failure");
                Ok(CallToolResult::error(vec![ContentBlock::text(message)]))
            }
            "pids" => text(self.pids_json().to_string()),
            "chaos" => self.chaos(&a, context).await,
            _ => text(serde_json::Value::Object(args.clone()).to_string()),
        }
    }

    fn pids_json(&self) -> serde_json::Value {
        let (pid, ppid, pgid) = faults::own_ids();
        let grandchildren = lock(&self.shared.grandchildren).clone();
        json!({
            "pid": pid,
            "ppid": ppid,
            "pgid": pgid,
            "grandchild": grandchildren.first(),
            "grandchildren": grandchildren,
        })
    }

    async fn chaos(&self, a: &ToolArgs<'_>, context: &RequestContext<RoleServer>) -> ToolOutcome {
        let shared = &self.shared;
        let peer = &context.peer;
        let action = a.str("action")?;
        match action {
            "exit" => {
                let code = a.opt_i32("code")?.unwrap_or(1);
                if a.opt_bool("after_response")?.unwrap_or(false) {
                    shared.schedule(&context.id, PostAction::Exit(code));
                    text(format!("exiting with code {code} after this response"))
                } else {
                    chaos_log!("exiting now with code {code}");
                    std::process::exit(code);
                }
            }
            "request_id" => text(serde_json::to_string(&context.id).unwrap_or_default()),
            "hang" => {
                shared.set_hung();
                text("hanging")
            }
            "close_stdout" => {
                if shared.stdio {
                    shared.schedule(&context.id, PostAction::CloseStdout);
                    text("closing stdout after this response")
                } else {
                    shared.close_stdout_now();
                    text("closed stdout")
                }
            }
            "garbage" => {
                let line = a.opt_str("text")?.unwrap_or(shared.args.garbage_line());
                if line.contains('\n') {
                    return Err("chaos garbage: `text` must be a single line".into());
                }
                faults::write_garbage(line).map_err(|e| format!("chaos garbage: {e}"))?;
                text("wrote garbage")
            }
            "stderr_flood" => {
                let bytes = a.u64("bytes")?;
                faults::stderr_flood(bytes);
                text(format!("flooding stderr with {bytes} bytes"))
            }
            "stderr_lines" => {
                let count = a.u64("count")?;
                faults::stderr_lines(count);
                text(format!("wrote {count} lines to stderr"))
            }
            "ignore_sigterm" => {
                faults::ignore_sigterm();
                text("ignoring SIGTERM")
            }
            "spawn_grandchild" => {
                let keep_stdio = a.opt_bool("keep_stdio")?.unwrap_or(false);
                let pid = faults::spawn_grandchild(keep_stdio)
                    .map_err(|e| format!("chaos spawn_grandchild: {e}"))?;
                shared.add_grandchildren(&[pid]);
                text(json!({ "grandchild": pid }).to_string())
            }
            "read_file" => std::fs::read_to_string(a.str("path")?)
                .map_err(|e| format!("refused: {e}"))
                .and_then(text),
            "write_file" => {
                let path = a.str("path")?;
                std::fs::write(path, a.opt_str("text")?.unwrap_or("written"))
                    .map_err(|e| format!("refused: {e}"))?;
                text(format!("wrote {path}"))
            }
            "allocate" => {
                let mib = a.u64("mib")?;
                let kept = faults::allocate(mib);
                text(format!("allocated {kept} MiB"))
            }
            "fork" => text(faults::fork_children(a.u64("count")?).to_string()),
            "unix_request" => {
                faults::unix_request(a.str("path")?, a.opt_str("text")?.unwrap_or(""))
                    .map_err(|e| format!("refused: {e}"))
                    .and_then(text)
            }
            "open_files" => text(faults::open_files(a.u64("count")?).to_string()),
            "add_tool" => {
                let name = a.str("name")?;
                shared.add_tool(name)?;
                notify_list_changed(peer).await;
                text(format!("added tool {name}"))
            }
            "remove_tool" => {
                let name = a.str("name")?;
                shared.remove_tool(name)?;
                notify_list_changed(peer).await;
                text(format!("removed tool {name}"))
            }
            "no_ping" => {
                let enabled = a.opt_bool("enabled")?.unwrap_or(true);
                shared.no_ping.store(enabled, Ordering::SeqCst);
                text(format!("no_ping = {enabled}"))
            }
            "forget_sessions" => {
                shared.forget_sessions.store(true, Ordering::SeqCst);
                text("sessions forgotten: their next request gets 404")
            }
            other => Err(format!(
                "chaos: unknown action `{other}` (expected one of {})",
                tools::ACTIONS.join(", ")
            )),
        }
    }
}

impl ServerHandler for ChaosServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tool_list_changed()
                .build(),
        )
        .with_server_info(Implementation::new("chaos-mcp", env!("CARGO_PKG_VERSION")))
        .with_instructions("Fault-injecting MCP server for tests; see the `chaos` tool.")
    }

    async fn initialize(
        &self,
        request: InitializeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<InitializeResult, McpError> {
        self.shared.wait_if_hung().await;
        chaos_log!(
            "initialize from {} {} (protocol {})",
            request.client_info.name,
            request.client_info.version,
            request.protocol_version
        );
        context.peer.set_peer_info(request.clone());
        self.negotiate_initialize(&request)
    }

    async fn ping(&self, _context: RequestContext<RoleServer>) -> Result<(), McpError> {
        self.shared.wait_if_hung().await;
        chaos_log!("ping");
        if self.shared.no_ping.load(Ordering::SeqCst) {
            return Err(McpError::method_not_found::<PingRequestMethod>());
        }
        Ok(())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        self.shared.wait_if_hung().await;
        chaos_log!("tools/list");
        Ok(ListToolsResult::with_all_items(
            lock(&self.shared.tools).clone(),
        ))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let shared = &self.shared;
        shared.wait_if_hung().await;
        let n = shared.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let name = request.name.as_ref();
        chaos_log!("tools/call #{n} {name}");
        if shared.exiting.load(Ordering::SeqCst) {
            // The process is about to exit; never answer.
            std::future::pending::<()>().await;
        }
        let result = if shared.tool_exists(name) {
            let args = request.arguments.clone().unwrap_or_default();
            Ok(self
                .dispatch(name, &args, &context)
                .await
                .unwrap_or_else(|message| CallToolResult::error(vec![ContentBlock::text(message)]))
                .into())
        } else {
            Err(McpError::invalid_params(
                format!("unknown tool: {name}"),
                None,
            ))
        };
        self.after_call(n, &context);
        result
    }
}

/// Wraps the handler for stdio so that a hang blocks *every* request, including those rmcp
/// would answer without consulting the handler.
pub struct Gate(pub ChaosServer);

impl Service<RoleServer> for Gate {
    async fn handle_request(
        &self,
        request: ClientRequest,
        context: RequestContext<RoleServer>,
    ) -> Result<ServerResult, McpError> {
        self.0.shared.wait_if_hung().await;
        Service::<RoleServer>::handle_request(&self.0, request, context).await
    }

    async fn handle_notification(
        &self,
        notification: ClientNotification,
        context: NotificationContext<RoleServer>,
    ) -> Result<(), McpError> {
        Service::<RoleServer>::handle_notification(&self.0, notification, context).await
    }

    fn get_info(&self) -> ServerConfig {
        ServerHandler::get_info(&self.0)
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        ServerHandler::supported_protocol_versions(&self.0)
    }
}

/// Stdout for the stdio transport: watches the frames written for the responses that
/// scheduled [`PostAction`]s, and runs those actions once a flush has completed after them.
pub struct HookedStdout {
    inner: tokio::io::Stdout,
    shared: Arc<Shared>,
    line: Vec<u8>,
}

impl HookedStdout {
    pub fn new(inner: tokio::io::Stdout, shared: Arc<Shared>) -> Self {
        Self {
            inner,
            shared,
            line: Vec::new(),
        }
    }

    fn scan(&mut self, written: &[u8]) {
        if !self.shared.has_pending() {
            self.line.clear();
            return;
        }
        let mut rest = written;
        while let Some(newline) = rest.iter().position(|&b| b == b'\n') {
            self.line.extend_from_slice(&rest[..newline]);
            self.shared.line_written(&self.line);
            self.line.clear();
            rest = &rest[newline + 1..];
        }
        self.line.extend_from_slice(rest);
    }
}

impl AsyncWrite for HookedStdout {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let written = ready!(Pin::new(&mut self.inner).poll_write(cx, buf))?;
        self.scan(&buf[..written]);
        Poll::Ready(Ok(written))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let result = ready!(Pin::new(&mut self.inner).poll_flush(cx));
        if result.is_ok() {
            self.shared.flushed();
        }
        Poll::Ready(result)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Stdin for the stdio transport: logs `stdin closed` once when it reaches end of file.
pub struct HookedStdin {
    inner: tokio::io::Stdin,
    eof_logged: bool,
}

impl HookedStdin {
    pub fn new(inner: tokio::io::Stdin) -> Self {
        Self {
            inner,
            eof_logged: false,
        }
    }
}

impl AsyncRead for HookedStdin {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let had_room = buf.remaining() > 0;
        let result = ready!(Pin::new(&mut self.inner).poll_read(cx, buf));
        if result.is_ok() && had_room && buf.filled().len() == before && !self.eof_logged {
            self.eof_logged = true;
            chaos_log!("stdin closed");
        }
        Poll::Ready(result)
    }
}
