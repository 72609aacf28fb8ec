//! [`ServiceHandle`]: the cloneable way in to one service for callers. Tool calls go straight to
//! the live MCP peer from the caller's own task — they never queue in the actor's mailbox — so a
//! slow call blocks neither probes nor other calls.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use mcpvisor_model::{ServiceId, ServiceMetrics, ServiceState};
use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CallToolResult, ClientRequest, ServerResult,
};
use rmcp::service::{RoleClient, ServiceError};
use rmcp::Peer;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use tokio::sync::watch;

/// The result of a tool call.
#[derive(Debug, Clone, PartialEq)]
pub struct CallOutcome {
    /// Whether the tool reported an error (`isError`).
    pub is_error: bool,
    /// The whole `CallToolResult` as JSON (`content`, `structuredContent`, ...).
    pub result: Value,
}

/// What a caller can do to a call in flight.
#[derive(Debug, Clone, Default)]
pub struct CallControl {
    /// Cancelled → the call is abandoned and the server told (`notifications/cancelled`).
    pub cancel: Option<tokio_util::sync::CancellationToken>,
    /// Receives the server's progress notifications for this call, in order.
    pub progress: Option<tokio::sync::mpsc::UnboundedSender<CallProgress>>,
}

/// One `notifications/progress` of a call.
#[derive(Debug, Clone, PartialEq)]
pub struct CallProgress {
    /// Progress so far (increases).
    pub progress: f64,
    /// The total, if known.
    pub total: Option<f64>,
    /// What is happening.
    pub message: Option<String>,
}

/// Why a tool call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallError {
    /// The service is not `healthy`/`warning`.
    #[error("service '{service}' is {state}, not accepting calls ({reason})")]
    NotUp {
        /// The service.
        service: String,
        /// Its state.
        state: ServiceState,
        /// Why it is in that state.
        reason: String,
    },
    /// No answer within the timeout; `notifications/cancelled` was sent.
    #[error("call of '{tool}' on service '{service}' timed out after {}; the request was cancelled", humantime::format_duration(*after))]
    Timeout {
        /// The service.
        service: String,
        /// The tool.
        tool: String,
        /// The timeout.
        after: Duration,
    },
    /// The server answered with a JSON-RPC error (unknown tool, bad arguments, ...).
    #[error("service '{service}' rejected the call of '{tool}': {message} (code {code})")]
    Rejected {
        /// The service.
        service: String,
        /// The tool.
        tool: String,
        /// JSON-RPC error code.
        code: i32,
        /// Its message.
        message: String,
    },
    /// The connection broke during the call.
    #[error("service '{service}': connection failed during the call of '{tool}': {message}")]
    Transport {
        /// The service.
        service: String,
        /// The tool.
        tool: String,
        /// What happened.
        message: String,
    },
    /// The caller cancelled the call; the server was sent `notifications/cancelled`.
    #[error("call of '{tool}' on service '{service}' was cancelled by the caller")]
    Cancelled {
        /// The service.
        service: String,
        /// The tool.
        tool: String,
    },
}

#[derive(Debug)]
struct Live {
    state: ServiceState,
    reason: String,
    peer: Option<Peer<RoleClient>>,
}

#[derive(Debug)]
struct Shared {
    id: ServiceId,
    name: String,
    live: RwLock<Live>,
    state_tx: watch::Sender<ServiceState>,
    call_timeout_ms: AtomicU64,
    metrics: ServiceMetrics,
    /// Told when a call fails on the transport (refused, reset, closed): a loss of the
    /// connection the actor must hear of at once.
    on_lost: HookSlot,
    /// The calls in flight that want the server's `notifications/progress`, by token.
    progress: crate::progress::ProgressRoutes,
    /// Calls relayed as JSON on a stdio connection.
    raw: crate::raw::RawCalls,
    /// Calls in flight and the last one's end (`idle_stop`).
    activity: Arc<crate::activity::Activity>,
    /// Resources subscribed to (the server's URIs), made again after a reconnect.
    subscriptions: std::sync::Mutex<std::collections::BTreeSet<String>>,
    /// Who answers the server's own requests (the Store's relay).
    relay: RwLock<crate::relay::Relay>,
    /// Where its OAuth tokens are kept (remote services with a state dir).
    token_file: RwLock<Option<std::path::PathBuf>>,
}

#[derive(Default)]
struct HookSlot(RwLock<Option<LossHook>>);

impl std::fmt::Debug for HookSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HookSlot")
    }
}

/// What a call reports a transport failure to.
pub type LossHook = Arc<dyn Fn(String) + Send + Sync>;

/// A cloneable handle to one service: its state, and tool calls.
#[derive(Debug, Clone)]
pub struct ServiceHandle {
    shared: Arc<Shared>,
}

impl ServiceHandle {
    /// A handle for service `id` whose calls time out after `call_timeout` by default and are
    /// counted in `metrics`.
    pub fn new(id: ServiceId, call_timeout: Duration, metrics: ServiceMetrics) -> Self {
        let (state_tx, _) = watch::channel(ServiceState::NotStarted);
        ServiceHandle {
            shared: Arc::new(Shared {
                name: id.to_string(),
                id,
                live: RwLock::new(Live {
                    state: ServiceState::NotStarted,
                    reason: "registered".into(),
                    peer: None,
                }),
                state_tx,
                call_timeout_ms: AtomicU64::new(ms(call_timeout)),
                metrics,
                on_lost: HookSlot::default(),
                progress: Default::default(),
                raw: Default::default(),
                activity: Default::default(),
                subscriptions: Default::default(),
                relay: Default::default(),
                token_file: Default::default(),
            }),
        }
    }

    /// Sets who answers the server's own requests (the Store does, at registration).
    pub fn set_relay(&self, relay: crate::relay::Relay) {
        *self.shared.relay.write().unwrap_or_else(|p| p.into_inner()) = relay;
    }

    /// Sets where the service's OAuth tokens are kept.
    pub fn set_token_file(&self, file: Option<std::path::PathBuf>) {
        *self
            .shared
            .token_file
            .write()
            .unwrap_or_else(|p| p.into_inner()) = file;
    }

    /// Where the service's OAuth tokens are kept, if anywhere.
    pub fn token_file(&self) -> Option<std::path::PathBuf> {
        self.shared
            .token_file
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Who answers the server's own requests.
    pub fn relay(&self) -> crate::relay::Relay {
        self.shared
            .relay
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Records a subscription to `uri` (`on`) or its end.
    pub fn remember_subscription(&self, uri: &str, on: bool) {
        let mut s = self
            .shared
            .subscriptions
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if on {
            s.insert(uri.to_owned());
        } else {
            s.remove(uri);
        }
    }

    /// The resources subscribed to.
    pub fn subscriptions(&self) -> Vec<String> {
        self.shared
            .subscriptions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    /// When the service last had calls.
    pub fn activity(&self) -> &Arc<crate::activity::Activity> {
        &self.shared.activity
    }

    /// The calls that want their progress: each connection's transport tap delivers to them.
    pub(crate) fn progress_routes(&self) -> crate::progress::ProgressRoutes {
        self.shared.progress.clone()
    }

    /// The calls relayed as JSON: each stdio connection's transport answers them.
    pub(crate) fn raw_calls(&self) -> crate::raw::RawCalls {
        self.shared.raw.clone()
    }

    /// The service's id.
    pub fn id(&self) -> &ServiceId {
        &self.shared.id
    }

    /// The current state.
    pub fn state(&self) -> ServiceState {
        *self.shared.state_tx.borrow()
    }

    /// A receiver that sees every state change (latest value semantics).
    pub fn watch_state(&self) -> watch::Receiver<ServiceState> {
        self.shared.state_tx.subscribe()
    }

    /// Waits until `pred(state)` holds or `timeout` passes; returns the last state seen.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        pred: impl Fn(ServiceState) -> bool,
    ) -> Result<ServiceState, ServiceState> {
        let mut rx = self.watch_state();
        let res = tokio::time::timeout(timeout, rx.wait_for(|s| pred(*s))).await;
        match res {
            Ok(Ok(s)) => Ok(*s),
            _ => Err(self.state()),
        }
    }

    /// The metrics counters.
    pub fn metrics(&self) -> &ServiceMetrics {
        &self.shared.metrics
    }

    /// Changes the default call timeout.
    pub fn set_call_timeout(&self, t: Duration) {
        self.shared.call_timeout_ms.store(ms(t), Ordering::Relaxed);
    }

    /// Sets the state callers see. The actor does this on every transition; the supervisor
    /// does it when the actor itself is gone (panicked, or given up on).
    pub fn set_state(&self, state: ServiceState, reason: &str) {
        {
            let mut l = self.shared.live.write().unwrap_or_else(|p| p.into_inner());
            l.state = state;
            l.reason = reason.to_owned();
            if !state.is_up() {
                l.peer = None;
            }
        }
        self.shared.state_tx.send_replace(state);
    }

    /// Sets or clears the live peer calls go to (clearing it also clears the loss hook).
    pub fn set_peer(&self, peer: Option<Peer<RoleClient>>) {
        if peer.is_none() {
            self.set_loss_hook(None);
        } else {
            self.shared.raw.connected();
        }
        self.shared
            .live
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .peer = peer;
    }

    /// Sets what a call failing on the transport reports to (the live connection's actor).
    pub fn set_loss_hook(&self, hook: Option<LossHook>) {
        *self
            .shared
            .on_lost
            .0
            .write()
            .unwrap_or_else(|p| p.into_inner()) = hook;
    }

    /// The live peer a call goes to. A connection that ended before the actor has heard of it
    /// (the instant after a server dies) is not up either: the call is not sent, and can be
    /// made again once [`wait_callable`](Self::wait_callable) says so.
    fn peer(&self) -> Result<Peer<RoleClient>, CallError> {
        let l = self.shared.live.read().unwrap_or_else(|p| p.into_inner());
        match (&l.peer, l.state.is_up()) {
            (Some(p), true) if !p.is_transport_closed() => Ok(p.clone()),
            // Ended, or let go by the actor an instant before its state says so.
            (_, true) => {
                drop(l);
                Err(self.ended("its connection has just ended"))
            }
            _ => Err(CallError::NotUp {
                service: self.shared.name.clone(),
                state: l.state,
                reason: l.reason.clone(),
            }),
        }
    }

    /// A call not sent because the live connection has ended (`detail`): the actor is told at
    /// once, and the service is coming back (or will say it is not).
    fn ended(&self, detail: &str) -> CallError {
        self.report_lost(detail);
        CallError::NotUp {
            service: self.shared.name.clone(),
            state: ServiceState::Reconnecting,
            reason: format!("{detail}; the call was not sent"),
        }
    }

    /// Tells the live connection's actor its connection is lost (`detail`).
    fn report_lost(&self, detail: &str) {
        let hook = self
            .shared
            .on_lost
            .0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(hook) = hook {
            hook(detail.to_owned());
        }
    }

    /// Whether a call would go out now: up, on a connection that has not ended.
    fn callable(&self) -> bool {
        let l = self.shared.live.read().unwrap_or_else(|p| p.into_inner());
        l.state.is_up()
            && l.peer.as_ref().is_some_and(|p| !p.is_transport_closed())
            && !self.shared.raw.ended()
    }

    /// Waits until a call would go out — up, on a live connection (not the one that has just
    /// ended while the state still reads up) — or `timeout` passes; returns the state then.
    pub async fn wait_callable(&self, timeout: Duration) -> Result<(), ServiceState> {
        let mut rx = self.watch_state();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            rx.borrow_and_update();
            if self.callable() {
                return Ok(());
            }
            // The actor's next transition (down, then up on a new connection) wakes this.
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                _ => return Err(self.state()),
            }
        }
    }

    /// The capabilities the server declared in `initialize`, while connected.
    pub fn capabilities(&self) -> Option<rmcp::model::ServerCapabilities> {
        let l = self.shared.live.read().unwrap_or_else(|p| p.into_inner());
        l.peer
            .as_ref()
            .and_then(|p| p.peer_info().map(|i| i.capabilities.clone()))
    }

    /// Any other request to the server (`resources/read`, `prompts/get`, ...), named `what` in
    /// errors: fails fast when the service is not up, counts as a use for `idle_stop`, and is
    /// bounded by the service's `timeouts.call`.
    pub async fn request<T, F, Fut>(&self, what: &str, f: F) -> Result<T, CallError>
    where
        F: FnOnce(Peer<RoleClient>) -> Fut,
        Fut: std::future::Future<Output = Result<T, ServiceError>>,
    {
        let peer = self.peer()?;
        let _busy = self.shared.activity.begin();
        let timeout = self.call_timeout(None);
        match tokio::time::timeout(timeout, f(peer)).await {
            Err(_) => Err(CallError::Timeout {
                service: self.shared.name.clone(),
                tool: what.to_owned(),
                after: timeout,
            }),
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.map_error(what, timeout, e)),
        }
    }

    /// Calls `tool` with `arguments`. Fails fast when the service is not up. `timeout` overrides
    /// the service's `timeouts.call`; on timeout `notifications/cancelled` is sent to the server.
    pub async fn call_tool(
        &self,
        tool: &str,
        arguments: Option<Map<String, Value>>,
        timeout: Option<Duration>,
    ) -> Result<CallOutcome, CallError> {
        self.call_tool_with(tool, arguments, timeout, &CallControl::default())
            .await
    }

    /// [`call_tool`](Self::call_tool) with [`CallControl`]: a token that abandons the call
    /// (the server is sent `notifications/cancelled`; the call fails with
    /// [`CallError::Cancelled`]) and a channel for the server's progress on it.
    pub async fn call_tool_with(
        &self,
        tool: &str,
        arguments: Option<Map<String, Value>>,
        timeout: Option<Duration>,
        control: &CallControl,
    ) -> Result<CallOutcome, CallError> {
        let r = self
            .call_tool_result(tool, arguments, timeout, control)
            .await?;
        Ok(CallOutcome {
            is_error: r.is_error.unwrap_or(false),
            result: serde_json::to_value(&r).unwrap_or(Value::Null),
        })
    }

    /// The typed call: the server's result as rmcp reads it ([`call_tool_with`] and
    /// [`call_tool_raw`]'s way to a remote server).
    ///
    /// [`call_tool_with`]: Self::call_tool_with
    /// [`call_tool_raw`]: Self::call_tool_raw
    async fn call_tool_result(
        &self,
        tool: &str,
        arguments: Option<Map<String, Value>>,
        timeout: Option<Duration>,
        control: &CallControl,
    ) -> Result<CallToolResult, CallError> {
        let peer = self.peer()?;
        let _busy = self.shared.activity.begin();
        let timeout = self.call_timeout(timeout);
        let mut params = CallToolRequestParams::new(tool.to_owned());
        params.arguments = arguments;
        let request = ClientRequest::CallToolRequest(CallToolRequest::new(params));
        let started = Instant::now();
        let progress = control
            .progress
            .as_ref()
            .map(|tx| (&self.shared.progress, tx));
        let result = crate::connection::bounded_request(
            &peer,
            request,
            timeout,
            control.cancel.as_ref(),
            progress,
        )
        .await;
        let outcome = match result {
            Ok(ServerResult::CallToolResult(r)) => Ok(r),
            Ok(other) => Err(CallError::Transport {
                service: self.shared.name.clone(),
                tool: tool.to_owned(),
                message: format!(
                    "unexpected response {}",
                    serde_json::to_string(&other).unwrap_or_default()
                ),
            }),
            Err(e) => Err(self.map_error(tool, timeout, e)),
        };
        let failed = !matches!(&outcome, Ok(r) if r.is_error != Some(true));
        self.shared.metrics.record_call(started.elapsed(), failed);
        outcome
    }

    /// [`call_tool_with`](Self::call_tool_with) for a relay: `arguments` go to the server
    /// as they came and its `result` comes back as it came, not through rmcp's typed model
    /// (on a stdio connection; a remote server's goes the typed way and is encoded). Same
    /// timeout, cancellation, progress, metrics and errors.
    pub async fn call_tool_raw(
        &self,
        tool: &str,
        arguments: Option<&RawValue>,
        timeout: Option<Duration>,
        control: &CallControl,
    ) -> Result<Box<RawValue>, CallError> {
        self.peer()?;
        let mut pending = match self.shared.raw.begin() {
            Ok(Some(pending)) => pending,
            Ok(None) => return self.typed_as_raw(tool, arguments, timeout, control).await,
            Err(()) => return Err(self.ended("its connection has just ended")),
        };
        let _busy = self.shared.activity.begin();
        let timeout = self.call_timeout(timeout);
        let started = Instant::now();
        let id = pending.id;
        // Progress comes the usual way (the transport's progress tap), under our token.
        let _route = control.progress.as_ref().map(|tx| {
            self.shared
                .progress
                .route(crate::raw::progress_token(id), tx)
        });
        let line = crate::raw::request_line(id, tool, arguments, control.progress.is_some());
        let writer = pending.writer.clone();
        let exchange = async {
            // Outstanding from before the write: a caller gone during it (the write finishes
            // in a task of its own) still has the server told.
            pending.outstanding = true;
            if writer.send_line(line).await.is_err() {
                // Nothing of it reached a server that read it: not sent.
                pending.outstanding = false;
                return Ok(None);
            }
            let cancelled = async {
                match &control.cancel {
                    Some(c) => c.cancelled().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = &mut pending.reply => r.map(Some).map_err(|_| ServiceError::TransportClosed),
                _ = cancelled => {
                    let reason = "cancelled by the caller";
                    let _ = writer.send_line(crate::raw::cancel_line(id, reason)).await;
                    Err(ServiceError::Cancelled { reason: Some(reason.to_owned()) })
                }
            }
        };
        let result = match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok(None)) => {
                pending.connection_ended();
                return Err(self.ended("its connection ended before the call went out"));
            }
            Ok(Ok(Some(r))) => Ok(r),
            Ok(Err(e)) => Err(e),
            Err(_) => {
                let cancel = crate::raw::cancel_line(id, "timed out");
                let grace = mcpvisor_model::defaults::CANCEL_GRACE;
                let _ = tokio::time::timeout(grace, writer.send_line(cancel)).await;
                Err(ServiceError::Timeout { timeout })
            }
        };
        // Answered, or the server told it is cancelled (not by `pending`'s drop).
        pending.outstanding = false;
        let outcome = match result {
            Ok(crate::raw::Reply::Result(r)) => Ok(r),
            Ok(crate::raw::Reply::Error(e)) => {
                Err(self.map_error(tool, timeout, ServiceError::McpError(e)))
            }
            Err(e) => Err(self.map_error(tool, timeout, e)),
        };
        let failed = !matches!(&outcome, Ok(r) if !crate::raw::is_error(r));
        self.shared.metrics.record_call(started.elapsed(), failed);
        outcome
    }

    /// [`call_tool_raw`](Self::call_tool_raw) where there is no stdio connection to relay on
    /// (a remote server): the typed call, its result encoded.
    async fn typed_as_raw(
        &self,
        tool: &str,
        arguments: Option<&RawValue>,
        timeout: Option<Duration>,
        control: &CallControl,
    ) -> Result<Box<RawValue>, CallError> {
        let arguments = arguments
            .map(|a| serde_json::from_str(a.get()))
            .transpose()
            .map_err(|e| CallError::Rejected {
                service: self.shared.name.clone(),
                tool: tool.to_owned(),
                code: rmcp::model::ErrorCode::INVALID_PARAMS.0,
                message: format!("the arguments are not a JSON object: {e}"),
            })?;
        let r = self
            .call_tool_result(tool, arguments, timeout, control)
            .await?;
        serde_json::value::to_raw_value(&r).map_err(|e| CallError::Transport {
            service: self.shared.name.clone(),
            tool: tool.to_owned(),
            message: format!("cannot encode the result: {e}"),
        })
    }

    /// `timeout`, else the service's `timeouts.call`.
    fn call_timeout(&self, timeout: Option<Duration>) -> Duration {
        timeout.unwrap_or_else(|| {
            Duration::from_millis(self.shared.call_timeout_ms.load(Ordering::Relaxed))
        })
    }

    fn map_error(&self, tool: &str, timeout: Duration, e: ServiceError) -> CallError {
        let service = self.shared.name.clone();
        let tool = tool.to_owned();
        match e {
            ServiceError::Timeout { .. } => CallError::Timeout {
                service,
                tool,
                after: timeout,
            },
            ServiceError::Cancelled { .. } => CallError::Cancelled { service, tool },
            ServiceError::McpError(err) => CallError::Rejected {
                service,
                tool,
                code: err.code.0,
                message: err.message.to_string(),
            },
            other => {
                let mut message = crate::diagnose::service_error(&other);
                if let Some(challenge) = crate::diagnose::insufficient_scope(&other) {
                    // The connection is fine; this request wants a token with more scope. The
                    // next `mcpvisor login` asks for what the server named.
                    if let Some(file) = self.token_file() {
                        crate::oauth::save_challenge(&file, &challenge);
                        message =
                            format!("{message}: run `mcpvisor login {service}` to sign in for it");
                    }
                } else if matches!(
                    other,
                    ServiceError::TransportClosed | ServiceError::TransportSend(_)
                ) {
                    self.report_lost(&message);
                }
                CallError::Transport {
                    service,
                    tool,
                    message,
                }
            }
        }
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
