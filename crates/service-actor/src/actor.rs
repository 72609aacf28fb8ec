//! The service actor: a thin shell that feeds the [`Machine`] and carries out its actions.
//!
//! Shape (as every mcpvisor actor): unit struct [`ServiceActor`], messages [`ServiceMsg`],
//! arguments [`ServiceArgs`], private state.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mcpvisor_model::{
    LogRing, ServerInfo, ServiceConfig, ServiceId, ServiceMetrics, ServiceState, Timestamp,
    ToolList,
};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::Instrument;

use crate::connection::{self, Established, Probe};
use crate::handle::ServiceHandle;
use crate::machine::{Action, EndCause, Input, Machine, MachineConfig};
use crate::process::ProcessIdentity;

/// What a service tells whoever it reports to (the registry, the persistence actor, tests).
#[derive(Debug, Clone, PartialEq)]
pub enum ServiceReport {
    /// A state transition.
    State {
        /// The service.
        id: ServiceId,
        /// Previous state.
        from: ServiceState,
        /// New state.
        to: ServiceState,
        /// Why.
        reason: String,
        /// When.
        at: Timestamp,
    },
    /// The tool list (after every connect and every `tools/list_changed`; and the last-known
    /// one, `stale`, when re-reported while not connected).
    Tools {
        /// The service.
        id: ServiceId,
        /// The tools.
        tools: ToolList,
        /// Server identity.
        server: ServerInfo,
        /// Last-known, not live: the service is not connected now.
        stale: bool,
    },
    /// Something the server told (a resource update, a list change, a log message), as the
    /// event to publish.
    Notice(mcpvisor_model::Event),
    /// No call for `idle_stop` while up: the root decides whether it is stopped into `idle`.
    Idle {
        /// The service.
        id: ServiceId,
    },
    /// The server process changed: started (`pid` and identity set) or gone (`None`).
    Process {
        /// The service.
        id: ServiceId,
        /// Pid (= process group id) of the running server.
        pid: Option<u32>,
        /// Its identity for safe reaping.
        identity: Option<ProcessIdentity>,
        /// Re-establishments so far.
        restarts: u64,
        /// What of its sandbox applies, if it has one (while it runs).
        sandbox: Option<serde_json::Value>,
    },
}

/// Where reports go. Called from the actor's task: it must not block.
pub type ReportSink = Arc<dyn Fn(ServiceReport) + Send + Sync>;

/// Result of a probe asked for with [`ServiceMsg::Check`].
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeOutcome {
    /// Whether the server answered in time (always false when it is not connected).
    pub ok: bool,
    /// Round-trip time.
    pub latency: Duration,
    /// State after the probe.
    pub state: ServiceState,
    /// Failure text, or empty.
    pub detail: String,
}

/// Messages of the service actor. The hidden variants are the actor's own internal messages
/// (tasks reporting back), not a non-exhaustive marker.
#[allow(clippy::manual_non_exhaustive)]
pub enum ServiceMsg {
    /// Start (or revive from `failed`/`stopped`).
    Start,
    /// Start for a call (a lazy or idle service): not counted as a restart.
    Wake,
    /// Stop; replies once `stopped` (process group gone).
    Stop {
        /// Skip the graceful steps.
        force: bool,
        /// Answered when stopped.
        reply: Option<RpcReplyPort<()>>,
    },
    /// Stop then start.
    Restart,
    /// Probe now.
    Check(RpcReplyPort<ProbeOutcome>),
    /// Replace health/backoff/timeout settings (no reconnect).
    Reconfigure(Box<ServiceConfig>),
    /// Current tools and server info.
    GetTools(RpcReplyPort<(ToolList, ServerInfo)>),
    /// Fault injection for tests: the actor panics while handling this.
    #[cfg(feature = "fault-injection")]
    PanicForTest,
    // ---- internal ----
    /// A server process was spawned for connection `gen` (reported before `initialize`, so a
    /// server that hangs while starting is known, shown and reapable).
    #[doc(hidden)]
    Spawned {
        /// Generation.
        gen: u64,
        /// Its pid (= process group).
        pid: u32,
        /// Its identity.
        identity: Option<ProcessIdentity>,
        /// What of its sandbox applies, if it has one.
        sandbox: Option<serde_json::Value>,
    },
    /// A connect attempt finished.
    #[doc(hidden)]
    Connected(u64, Result<Box<Established>, EndCause>),
    /// A connection ended.
    #[doc(hidden)]
    Ended {
        /// Generation.
        gen: u64,
        /// Why.
        cause: EndCause,
    },
    /// The server announced a tools change.
    #[doc(hidden)]
    ToolsChanged {
        /// Generation.
        gen: u64,
    },
    /// Connection `gen` failed on its transport (a call was refused or reset, or the server's
    /// event stream failed and could not be reopened).
    #[doc(hidden)]
    TransportLost {
        /// Generation.
        gen: u64,
        /// What failed.
        detail: String,
    },
    /// A re-list finished.
    #[doc(hidden)]
    ToolsListed {
        /// Generation.
        gen: u64,
        /// The tools, or why not.
        tools: Result<ToolList, String>,
    },
    /// A notification from the server beyond tools.
    #[doc(hidden)]
    Server(ServerNotice),
    /// Idle timer (`idle_stop`).
    #[doc(hidden)]
    IdleTick {
        /// Generation.
        gen: u64,
    },
    /// Probe timer.
    #[doc(hidden)]
    ProbeTick {
        /// Generation.
        gen: u64,
    },
    /// A probe finished.
    #[doc(hidden)]
    ProbeDone {
        /// Generation.
        gen: u64,
        /// Result.
        probe: Probe,
        /// Whoever asked with `Check`.
        reply: Option<RpcReplyPort<ProbeOutcome>>,
    },
    /// Backoff timer.
    #[doc(hidden)]
    RetryDue {
        /// Timer id.
        timer: u64,
    },
}

/// A server's notification beyond tools, as the connection's client handler forwards it.
#[derive(Debug, Clone)]
pub enum ServerNotice {
    /// `notifications/resources/updated` for this URI.
    ResourceUpdated(String),
    /// `notifications/resources/list_changed` (`resources`) or `prompts/list_changed`
    /// (`prompts`).
    ListChanged(&'static str),
    /// `notifications/message`.
    Log {
        /// Level.
        level: String,
        /// Logger.
        logger: Option<String>,
        /// Data.
        data: serde_json::Value,
    },
}

/// Spawn arguments.
pub struct ServiceArgs {
    /// Identity.
    pub id: ServiceId,
    /// Resolved config.
    pub config: ServiceConfig,
    /// The handle callers use (kept by the caller across actor restarts).
    pub handle: ServiceHandle,
    /// Stderr tail.
    pub stderr: LogRing,
    /// Where reports go.
    pub sink: ReportSink,
    /// Start at once (otherwise wait for [`ServiceMsg::Start`]).
    pub autostart: bool,
}

/// The service actor.
pub struct ServiceActor;

enum Conn {
    Connecting {
        gen: u64,
        cancel: CancellationToken,
    },
    Live {
        gen: u64,
        peer: rmcp::Peer<rmcp::service::RoleClient>,
        stop: mpsc::Sender<bool>,
    },
}

/// The actor's state.
pub struct State {
    id: ServiceId,
    name: String,
    config: ServiceConfig,
    machine: Machine,
    handle: ServiceHandle,
    metrics: ServiceMetrics,
    stderr: LogRing,
    sink: ReportSink,
    conn: Option<Conn>,
    tools: ToolList,
    server: ServerInfo,
    pid: Option<u32>,
    identity: Option<ProcessIdentity>,
    /// What of its sandbox applies to the running server.
    sandbox: Option<serde_json::Value>,
    use_list_probe: bool,
    /// Generation of the periodic probe running now, if any.
    probe_in_flight: Option<u64>,
    /// Generation of the re-list running now, if any: one at a time, so an older list never
    /// overwrites a newer one.
    relist_in_flight: Option<u64>,
    /// A `tools/list_changed` arrived while a re-list ran: list once more when it ends (any
    /// number of notifications meanwhile coalesce into this one re-list).
    relist_again: bool,
    state_since: Instant,
    stop_waiters: Vec<RpcReplyPort<()>>,
    /// Cancels every connection task when the state is dropped (stop, kill or panic).
    root: CancellationToken,
    _drop: DropGuard,
    span: tracing::Span,
}

impl Actor for ServiceActor {
    type Msg = ServiceMsg;
    type State = State;
    type Arguments = ServiceArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<ServiceMsg>,
        args: ServiceArgs,
    ) -> Result<State, ActorProcessingErr> {
        let root = CancellationToken::new();
        let name = args.id.to_string();
        let span = tracing::info_span!("service", service = %name);
        args.handle.set_call_timeout(args.config.timeouts.call);
        let metrics = args.handle.metrics().clone();
        let state = State {
            machine: Machine::new(MachineConfig::from(&args.config)),
            id: args.id,
            name,
            config: args.config,
            handle: args.handle,
            metrics,
            stderr: args.stderr,
            sink: args.sink,
            conn: None,
            tools: ToolList::from(Vec::new()),
            server: ServerInfo::default(),
            pid: None,
            identity: None,
            sandbox: None,
            use_list_probe: false,
            probe_in_flight: None,
            relist_in_flight: None,
            relist_again: false,
            state_since: Instant::now(),
            stop_waiters: Vec::new(),
            _drop: root.clone().drop_guard(),
            root,
            span,
        };
        if args.autostart && !state.config.disabled {
            let _ = myself.cast(ServiceMsg::Start);
        }
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<ServiceMsg>,
        msg: ServiceMsg,
        state: &mut State,
    ) -> Result<(), ActorProcessingErr> {
        let span = state.span.clone();
        async move {
            state.on_message(&myself, msg);
        }
        .instrument(span)
        .await;
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<ServiceMsg>,
        state: &mut State,
    ) -> Result<(), ActorProcessingErr> {
        // Kills every process group of this service (monitors see the cancellation).
        state.root.cancel();
        state.handle.set_peer(None);
        Ok(())
    }
}

impl State {
    fn feed(&mut self, myself: &ActorRef<ServiceMsg>, input: Input) {
        let actions = self
            .machine
            .handle(input, Instant::now(), rand::random::<f64>());
        for a in actions {
            self.act(myself, a);
        }
    }

    fn on_message(&mut self, myself: &ActorRef<ServiceMsg>, msg: ServiceMsg) {
        match msg {
            ServiceMsg::Start => self.feed(myself, Input::Start),
            ServiceMsg::Wake => self.feed(myself, Input::Wake),
            ServiceMsg::Server(notice) => {
                let service = self.id.clone();
                let at = mcpvisor_model::Timestamp::now();
                let event = match notice {
                    ServerNotice::ResourceUpdated(uri) => {
                        mcpvisor_model::Event::ResourceUpdated { service, uri, at }
                    }
                    ServerNotice::ListChanged(list) => mcpvisor_model::Event::ListChanged {
                        service,
                        list: list.to_owned(),
                        at,
                    },
                    ServerNotice::Log {
                        level,
                        logger,
                        data,
                    } => {
                        // Kept beside its stderr, for `logs`.
                        let text = match &data {
                            serde_json::Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        let from = logger
                            .as_deref()
                            .map(|l| format!(" {l}:"))
                            .unwrap_or_default();
                        self.stderr
                            .push_line(&format!("[log {level}]{from} {text}"));
                        mcpvisor_model::Event::ServerLog {
                            service,
                            level,
                            logger,
                            data,
                            at,
                        }
                    }
                };
                (self.sink)(ServiceReport::Notice(event));
            }
            ServiceMsg::IdleTick { gen } => {
                let Some(window) = self.config.idle_stop else {
                    return;
                };
                if self.machine.live_gen() != Some(gen) {
                    return;
                }
                // One timer per window of inactivity: nothing wakes an idle-stop service
                // more often than its `idle_stop`.
                let next = match self.handle.activity().idle_left(window) {
                    Some(left) => left,
                    None => {
                        if self.machine.state().is_up() {
                            (self.sink)(ServiceReport::Idle {
                                id: self.id.clone(),
                            });
                        }
                        window
                    }
                };
                myself.send_after(next, move || ServiceMsg::IdleTick { gen });
            }
            ServiceMsg::Stop { force, reply } => {
                if let Some(r) = reply {
                    self.stop_waiters.push(r);
                }
                self.feed(myself, Input::Stop { force });
                self.answer_stop_waiters();
            }
            ServiceMsg::Restart => {
                self.feed(myself, Input::Stop { force: false });
                self.feed(myself, Input::Start);
            }
            ServiceMsg::Check(reply) => match &self.conn {
                Some(Conn::Live { gen, peer, .. }) => {
                    self.spawn_probe(myself, *gen, peer.clone(), Some(reply));
                }
                _ => {
                    let _ = reply.send(ProbeOutcome {
                        ok: false,
                        latency: Duration::ZERO,
                        state: self.machine.state(),
                        detail: format!("not connected ({})", self.machine.state()),
                    });
                }
            },
            ServiceMsg::Reconfigure(cfg) => {
                self.machine.set_config(MachineConfig::from(&*cfg));
                self.handle.set_call_timeout(cfg.timeouts.call);
                let arm = cfg.idle_stop.filter(|_| self.config.idle_stop.is_none());
                self.config = *cfg;
                // An idle_stop given to a running service starts counting now.
                if let (Some(window), Some(gen)) = (arm, self.machine.live_gen()) {
                    self.handle.activity().touch();
                    myself.send_after(window, move || ServiceMsg::IdleTick { gen });
                }
            }
            ServiceMsg::GetTools(reply) => {
                let _ = reply.send((self.tools.clone(), self.server.clone()));
            }
            #[cfg(feature = "fault-injection")]
            ServiceMsg::PanicForTest => panic!("fault injection: service actor panic requested"),
            ServiceMsg::Spawned {
                gen,
                pid,
                identity,
                sandbox,
            } => {
                if matches!(&self.conn, Some(Conn::Connecting { gen: g, .. }) if *g == gen) {
                    self.pid = Some(pid);
                    self.identity = identity.clone();
                    self.sandbox = sandbox;
                    self.report_process(Some(pid), identity);
                }
            }
            ServiceMsg::Connected(gen, result) => self.on_connected(myself, gen, result),
            ServiceMsg::Ended { gen, cause } => {
                if matches!(&self.conn, Some(Conn::Live { gen: g, .. } | Conn::Connecting { gen: g, .. }) if *g == gen)
                {
                    self.conn = None;
                    self.handle.set_peer(None);
                    self.pid = None;
                    self.identity = None;
                    self.sandbox = None;
                    self.report_process(None, None);
                }
                tracing::debug!(gen, ?cause, "connection ended");
                self.feed(myself, Input::Ended { gen, cause });
                self.answer_stop_waiters();
            }
            ServiceMsg::ToolsChanged { gen } => {
                if self.relist_in_flight == Some(gen) {
                    self.relist_again = true;
                } else {
                    self.spawn_relist(myself, gen);
                }
            }
            ServiceMsg::ToolsListed { gen, tools } => {
                if self.relist_in_flight == Some(gen) {
                    self.relist_in_flight = None;
                }
                if self.machine.live_gen() == Some(gen) {
                    match tools {
                        Ok(tools) => {
                            self.tools = tools;
                            self.report_tools(false);
                        }
                        Err(why) => tracing::warn!(%why, "re-listing tools after list_changed"),
                    }
                }
                if std::mem::take(&mut self.relist_again) {
                    self.spawn_relist(myself, gen);
                }
            }
            ServiceMsg::ProbeTick { gen } => {
                if let Some(Conn::Live { gen: g, peer, .. }) = &self.conn {
                    if *g == gen && self.probe_in_flight != Some(gen) {
                        self.probe_in_flight = Some(gen);
                        self.spawn_probe(myself, gen, peer.clone(), None);
                    }
                }
            }
            ServiceMsg::ProbeDone { gen, probe, reply } => {
                if reply.is_none() && self.probe_in_flight == Some(gen) {
                    self.probe_in_flight = None;
                }
                self.metrics.record_probe(probe.latency, probe.ok);
                if probe.ping_unsupported {
                    self.use_list_probe = true;
                }
                let live = self.machine.live_gen() == Some(gen);
                let input = if probe.lost {
                    // A transport error is a loss, not a slow answer. A stdio server's
                    // monitor reports the end itself, with the exit status that decides
                    // the restart policy; a remote one is reconnected at once.
                    (self.config.transport() != mcpvisor_model::TransportKind::Stdio).then(|| {
                        Input::Lost {
                            gen,
                            detail: probe.detail.clone(),
                        }
                    })
                } else {
                    Some(Input::Probe {
                        gen,
                        ok: probe.ok,
                        detail: probe.detail.clone(),
                    })
                };
                if let Some(input) = input {
                    self.feed(myself, input);
                }
                if let Some(r) = reply {
                    let _ = r.send(ProbeOutcome {
                        ok: probe.ok,
                        latency: probe.latency,
                        state: self.machine.state(),
                        detail: probe.detail,
                    });
                } else if live && self.machine.live_gen() == Some(gen) {
                    let interval = self.config.health.interval;
                    myself.send_after(interval, move || ServiceMsg::ProbeTick { gen });
                }
            }
            ServiceMsg::RetryDue { timer } => self.feed(myself, Input::RetryDue { timer }),
            ServiceMsg::TransportLost { gen, detail } => {
                // A stdio server's monitor reports its end itself, with the exit status.
                if self.config.transport() != mcpvisor_model::TransportKind::Stdio {
                    tracing::debug!(gen, %detail, "transport lost");
                    self.feed(myself, Input::Lost { gen, detail });
                }
            }
        }
    }

    /// Re-lists the tools of connection `gen` in a task, bounded by `timeouts.connect` and
    /// [`MAX_LIST_PAGES`](mcpvisor_model::defaults::MAX_LIST_PAGES).
    fn spawn_relist(&mut self, myself: &ActorRef<ServiceMsg>, gen: u64) {
        let Some(Conn::Live { gen: g, peer, .. }) = &self.conn else {
            return;
        };
        if *g != gen {
            return;
        }
        self.relist_in_flight = Some(gen);
        let peer = peer.clone();
        let me = myself.clone();
        let limit = self.config.timeouts.connect;
        tokio::spawn(async move {
            let tools = match tokio::time::timeout(limit, connection::list_tools_paged(&peer)).await
            {
                Ok(Ok(tools)) => Ok(tools.into_iter().map(connection::tool_info).collect()),
                Ok(Err(why)) => Err(why),
                Err(_) => Err(format!(
                    "tools/list: no answer within {} (timeouts.connect)",
                    humantime::format_duration(limit)
                )),
            };
            let _ = me.cast(ServiceMsg::ToolsListed { gen, tools });
        });
    }

    fn spawn_probe(
        &self,
        myself: &ActorRef<ServiceMsg>,
        gen: u64,
        peer: rmcp::Peer<rmcp::service::RoleClient>,
        reply: Option<RpcReplyPort<ProbeOutcome>>,
    ) {
        let me = myself.clone();
        let timeout = self.config.health.timeout;
        let use_list = self.use_list_probe;
        tokio::spawn(async move {
            let probe = connection::probe(peer, timeout, use_list).await;
            let _ = me.cast(ServiceMsg::ProbeDone { gen, probe, reply });
        });
    }

    fn on_connected(
        &mut self,
        myself: &ActorRef<ServiceMsg>,
        gen: u64,
        result: Result<Box<Established>, EndCause>,
    ) {
        match result {
            Ok(est) => {
                let current =
                    matches!(&self.conn, Some(Conn::Connecting { gen: g, .. }) if *g == gen);
                if !current {
                    // Abandoned while connecting: tear it down; its monitor reports the end.
                    let _ = est.stop.try_send(true);
                    return;
                }
                let est = *est;
                self.conn = Some(Conn::Live {
                    gen,
                    peer: est.peer.clone(),
                    stop: est.stop,
                });
                self.use_list_probe = false;
                self.tools = est.tools;
                self.server = est.server;
                self.handle.set_peer(Some(est.peer.clone()));
                let me = myself.clone();
                self.handle
                    .set_loss_hook(Some(std::sync::Arc::new(move |detail: String| {
                        let _ = me.cast(ServiceMsg::TransportLost { gen, detail });
                    })));
                self.pid = est.pid;
                self.identity = est.identity.clone();
                self.report_process(est.pid, est.identity);
                self.report_tools(false);
                // The log level the config asks for, at every connection.
                let wants_level = self.config.log_level.clone().filter(|_| {
                    est.peer
                        .peer_info()
                        .is_some_and(|i| i.capabilities.logging.is_some())
                });
                if let Some(level) = wants_level {
                    let peer = est.peer.clone();
                    tokio::spawn(async move {
                        // Logging is deprecated from 2026-07-28 (SEP-2577); upstreams speak
                        // 2025-11-25.
                        #[allow(deprecated)]
                        let set = match serde_json::from_value(serde_json::json!({"level": level}))
                        {
                            Ok(params) => peer.set_level(params).await.map_err(|e| e.to_string()),
                            Err(e) => Err(e.to_string()),
                        };
                        if let Err(e) = set {
                            tracing::warn!("setting the log level: {e}");
                        }
                    });
                }
                // Subscriptions outlive a reconnect: made again on the new connection.
                for uri in self.handle.subscriptions() {
                    let peer = est.peer.clone();
                    tokio::spawn(async move {
                        let params = rmcp::model::SubscribeRequestParams::new(uri);
                        // Upstreams speak 2025-11-25 (we propose it), where subscribe is current.
                        #[allow(deprecated)]
                        let subscribed = peer.subscribe(params).await;
                        if let Err(e) = subscribed {
                            tracing::warn!("resubscribing after a reconnect: {e}");
                        }
                    });
                }
                let detail = format!(
                    "connected to {} {}, {} tools",
                    if self.server.name.is_empty() {
                        "server"
                    } else {
                        &self.server.name
                    },
                    self.server.version,
                    self.tools.len()
                );
                self.feed(myself, Input::Connected { gen, detail });
            }
            Err(cause) => {
                if matches!(&self.conn, Some(Conn::Connecting { gen: g, .. }) if *g == gen) {
                    self.conn = None;
                    if self.pid.take().is_some() {
                        self.identity = None;
                        self.report_process(None, None);
                    }
                }
                self.feed(myself, Input::Ended { gen, cause });
                self.answer_stop_waiters();
            }
        }
    }

    fn act(&mut self, myself: &ActorRef<ServiceMsg>, action: Action) {
        match action {
            Action::Transition { from, to, reason } => {
                let now = Instant::now();
                self.metrics
                    .record_transition(from.availability(), now.duration_since(self.state_since));
                self.state_since = now;
                tracing::info!(from = %from, to = %to, %reason, "transition");
                self.handle.set_state(to, &reason);
                // Reported before any stop waiter is answered: a waiter's next message to the
                // root arrives after this report.
                (self.sink)(ServiceReport::State {
                    id: self.id.clone(),
                    from,
                    to,
                    reason,
                    at: Timestamp::now(),
                });
                if to == ServiceState::Stopped && self.conn.is_none() {
                    // Even if a queued start follows at once, this stop is done.
                    for w in self.stop_waiters.drain(..) {
                        let _ = w.send(());
                    }
                }
            }
            Action::Connect { gen, restart } => {
                if restart {
                    self.metrics.record_restart();
                }
                let cancel = self.root.child_token();
                self.conn = Some(Conn::Connecting {
                    gen,
                    cancel: cancel.clone(),
                });
                let me = myself.clone();
                let cfg = self.config.clone();
                let ring = self.stderr.clone();
                let name = self.name.clone();
                let span = self.span.clone();
                let handle = self.handle.clone();
                tokio::spawn(
                    async move {
                        let r =
                            connection::connect(gen, name, cfg, ring, me.clone(), cancel, handle)
                                .await;
                        let _ = me.cast(ServiceMsg::Connected(gen, r.map(Box::new)));
                    }
                    .instrument(span),
                );
            }
            Action::Disconnect { gen, force } => {
                self.handle.set_peer(None);
                match &self.conn {
                    Some(Conn::Connecting { gen: g, cancel }) if *g == gen => cancel.cancel(),
                    Some(Conn::Live { gen: g, stop, .. }) if *g == gen => {
                        let _ = stop.try_send(force);
                    }
                    _ => {}
                }
            }
            Action::ScheduleRetry { timer, after } => {
                tracing::debug!(?after, "retry scheduled");
                myself.send_after(after, move || ServiceMsg::RetryDue { timer });
            }
            Action::StartProbes { gen } => {
                let interval = self.config.health.interval;
                myself.send_after(interval, move || ServiceMsg::ProbeTick { gen });
                if let Some(window) = self.config.idle_stop {
                    // The window runs from the connection: a service woken for a call is not
                    // stopped before that call begins.
                    self.handle.activity().touch();
                    myself.send_after(window, move || ServiceMsg::IdleTick { gen });
                }
            }
        }
    }

    fn answer_stop_waiters(&mut self) {
        if matches!(
            self.machine.state(),
            ServiceState::Stopped | ServiceState::NotStarted | ServiceState::Failed
        ) && self.conn.is_none()
        {
            for w in self.stop_waiters.drain(..) {
                let _ = w.send(());
            }
        }
    }

    /// Reports the tools; `stale` when they are the last-known ones of a service that is not
    /// connected now.
    fn report_tools(&self, stale: bool) {
        (self.sink)(ServiceReport::Tools {
            id: self.id.clone(),
            tools: self.tools.clone(),
            server: self.server.clone(),
            stale,
        });
    }

    fn report_process(&self, pid: Option<u32>, identity: Option<ProcessIdentity>) {
        (self.sink)(ServiceReport::Process {
            id: self.id.clone(),
            pid,
            identity,
            restarts: self.metrics.restarts(),
            sandbox: self.sandbox.clone(),
        });
    }
}
