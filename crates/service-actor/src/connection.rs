//! Establishing and watching one connection: spawn (or dial), `initialize`, first `tools/list`,
//! then a monitor task that notices the end of the connection at once (child exit, EOF, closed
//! session) and carries out the stop sequence when asked. Everything here runs in tasks that
//! report back to the actor by message; nothing blocks the actor.

use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use mcpvisor_model::{Endpoint, LogRing, ServerInfo, ServiceConfig, ToolInfo, ToolList};
use nix::sys::signal::Signal;
use ractor::ActorRef;
use rmcp::model::{ClientRequest, ErrorCode, PingRequest, ServerResult};
use rmcp::service::{PeerRequestOptions, RoleClient, RunningService, ServiceError};
use rmcp::{Peer, ServiceExt};
use tokio::process::Child;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::actor::ServiceMsg;
use crate::client_handler::Client;
use crate::machine::{EndCause, ExitInfo};
use crate::process::{self, group_alive, signal_group, GroupGuard, ProcessIdentity, SpawnSpec};

type Running = RunningService<RoleClient, Client>;

/// A connection that reached `initialize` + `tools/list`.
pub struct Established {
    /// Generation.
    pub gen: u64,
    /// The peer for requests.
    pub peer: Peer<RoleClient>,
    /// Server identity.
    pub server: ServerInfo,
    /// Tools.
    pub tools: ToolList,
    /// Pid (= process group) of a stdio server.
    pub pid: Option<u32>,
    /// Its identity, for reaping after a crash.
    pub identity: Option<ProcessIdentity>,
    /// Stop requests to the monitor: `false` graceful, `true` force.
    pub stop: mpsc::Sender<bool>,
}

/// How a timed-out connect attempt's reason begins.
const NO_ANSWER: &str = "no answer";

/// Shutdown grace periods.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Grace {
    pub shutdown: Duration,
}

/// Connects generation `gen`. On success the monitor is already running and will send
/// `ServiceMsg::Ended` when the connection ends; on failure everything is cleaned up and the
/// cause is returned.
pub(crate) async fn connect(
    gen: u64,
    service: String,
    config: ServiceConfig,
    ring: LogRing,
    actor: ActorRef<ServiceMsg>,
    cancel: CancellationToken,
    handle: crate::ServiceHandle,
) -> Result<Established, EndCause> {
    let grace = Grace {
        shutdown: config.timeouts.shutdown,
    };
    let token_file = handle.token_file();
    let oauth = config.oauth.clone();
    // Every transport goes through the progress tap (a call's progress in order, before its
    // answer).
    let routes = handle.progress_routes();
    let client = Client {
        actor: actor.clone(),
        gen,
        id: handle.id().clone(),
        relay: handle.relay(),
        roots: config.roots.clone(),
    };
    let deadline = config.timeouts.connect;
    match &config.endpoint {
        Endpoint::Stdio {
            command,
            args,
            env,
            inherit,
            sandbox,
            cwd,
        } => {
            let spec = SpawnSpec {
                command: command.clone(),
                args: args.clone(),
                env: env.clone(),
                inherit: inherit.clone(),
                sandbox: (**sandbox).clone(),
                cwd: cwd.clone(),
            };
            let spawned = process::spawn(&service, &spec).map_err(|e| {
                EndCause::ConnectFailed(match e {
                    process::SpawnError::Sandbox(why) => {
                        format!("cannot start '{command}' in its sandbox: {why}")
                    }
                    process::SpawnError::Io(e)
                        if sandbox.is_set()
                            && e.raw_os_error().is_some_and(|n| n != libc_enoent()) =>
                    {
                        format!(
                            "cannot start '{command}' in its sandbox (this kernel refused a part \
                             of it): {e}"
                        )
                    }
                    process::SpawnError::Io(e) => match e.kind() {
                        std::io::ErrorKind::NotFound => format!(
                            "command '{command}' not found (check the path or PATH, and 'cwd')"
                        ),
                        std::io::ErrorKind::PermissionDenied => {
                            format!("command '{command}' is not executable: {e}")
                        }
                        _ => format!("cannot start '{command}': {e}"),
                    },
                })
            })?;
            let process::Spawned {
                mut child,
                stdin,
                stdout,
                stderr,
                pid,
                guard,
                cgroup,
                sandbox,
            } = spawned;
            let guard = guard.with_cgroup(cgroup);
            tokio::spawn(process::drain_stderr(stderr, ring, service.clone()));
            let identity = process::process_identity(pid);
            let _ = actor.cast(ServiceMsg::Spawned {
                gen,
                pid,
                identity: identity.clone(),
                sandbox,
            });
            let lean = crate::stdio::LeanStdio::new(service.clone(), stdout, stdin);
            let tap = handle.raw_calls().attach(lean.writer());
            let lean = lean.with_tap(tap);
            let init = async {
                let running = client
                    .serve(routes.tap(lean))
                    .await
                    .map_err(|e| format!("initialize failed: {e}"))?;
                let tools = list_tools_paged(running.peer()).await?;
                Ok::<_, String>((running, tools))
            };
            let outcome = tokio::select! {
                r = tokio::time::timeout(deadline, init) => match r {
                    Ok(Ok(ok)) => Ok(ok),
                    Ok(Err(why)) => Err(Some(why)),
                    Err(_) => Err(Some(format!(
                        "no answer to initialize/tools/list within {} (timeouts.connect)",
                        humantime::format_duration(deadline)
                    ))),
                },
                status = child.wait() => {
                    let exit = guard.judge(exit_info(status));
                    teardown(&mut child, guard, true, grace).await;
                    return Err(EndCause::Exited(exit));
                }
                _ = cancel.cancelled() => Err(None),
            };
            match outcome {
                Ok((running, tools)) => {
                    let peer = running.peer().clone();
                    let server = server_info(&running);
                    let (stop_tx, stop_rx) = mpsc::channel(2);
                    tokio::spawn(monitor_stdio(
                        gen, child, guard, running, stop_rx, cancel, actor, grace,
                    ));
                    Ok(Established {
                        gen,
                        peer,
                        server,
                        tools: tools.into_iter().map(tool_info).collect(),
                        pid: Some(pid),
                        identity,
                        stop: stop_tx,
                    })
                }
                Err(why) => {
                    // The failure may be the process dying: its exit status decides the
                    // restart policy, so wait for it up to the shutdown grace (not when the
                    // attempt timed out: that process is alive and hanging).
                    let wait = match &why {
                        Some(w) if !w.starts_with(NO_ANSWER) => grace.shutdown,
                        _ => mcpvisor_model::defaults::CONNECT_EXIT_WAIT,
                    };
                    let exited = tokio::time::timeout(wait, child.wait())
                        .await
                        .ok()
                        .map(|s| guard.judge(exit_info(s)));
                    teardown(&mut child, guard, true, grace).await;
                    Err(match (exited, why) {
                        (Some(exit), _) => EndCause::Exited(exit),
                        (None, None) => EndCause::Cancelled,
                        (None, Some(why)) => EndCause::ConnectFailed(why),
                    })
                }
            }
        }
        Endpoint::Remote {
            transport,
            url,
            headers,
        } => {
            use mcpvisor_model::TransportKind;
            let init = async {
                let running = if *transport == TransportKind::Sse {
                    let (sink, stream) = sse_connect(
                        url,
                        headers,
                        token_file.as_deref(),
                        oauth.as_ref(),
                        deadline,
                        cancel.clone(),
                    )
                    .await?;
                    match client
                        .serve(routes.tap(
                            rmcp::transport::IntoTransport::<RoleClient, _, _>::into_transport((
                                sink, stream,
                            )),
                        ))
                        .await
                    {
                        Ok(running) => running,
                        Err(e) => return Err(crate::diagnose::initialize(&e, url, headers).await),
                    }
                } else {
                    let mut config = rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig::with_uri(
                        url.clone(),
                    )
                    .custom_headers(header_map(headers)?);
                    // A session the server forgot (HTTP 404) is a loss we re-establish
                    // ourselves, as an event, with a fresh tools/list (a server that lost its
                    // sessions may have restarted with other tools); rmcp's silent re-initialize
                    // would hide both. The request that met the 404 fails, never retried.
                    config.reinit_on_expired_session = false;
                    config.retry_config = std::sync::Arc::new(StreamLossPolicy {
                        actor: actor.clone(),
                        gen,
                    });
                    // Headers go through rmcp's config (it owns the MCP ones); the client
                    // brings TLS.
                    let http = crate::http_client::client(&Default::default())?;
                    // Signed in (`mcpvisor login`) or client credentials: the token is sent
                    // and refreshed.
                    let authorized = crate::oauth::authorized_client(
                        url,
                        token_file.as_deref(),
                        oauth.as_ref(),
                        http.clone(),
                    )
                    .await?;
                    let served = match authorized {
                        // rmcp's AuthClient answers a 401 to a live token with one refresh
                        // and one retry, on every request (initialize included).
                        Some(auth) => {
                            client
                                .serve(routes.tap(
                                    rmcp::transport::StreamableHttpClientTransport::with_client(
                                        auth, config,
                                    ),
                                ))
                                .await
                        }
                        None => {
                            client
                                .serve(routes.tap(
                                    rmcp::transport::StreamableHttpClientTransport::with_client(
                                        http, config,
                                    ),
                                ))
                                .await
                        }
                    };
                    match served {
                        Ok(running) => running,
                        Err(e) => return Err(crate::diagnose::initialize(&e, url, headers).await),
                    }
                };
                let tools = list_tools_paged(running.peer()).await?;
                Ok::<_, String>((running, tools))
            };
            let outcome = tokio::select! {
                r = tokio::time::timeout(deadline, init) => match r {
                    Ok(r) => r.map_err(Some),
                    Err(_) => Err(Some(format!("no answer within {} (timeouts.connect)", humantime::format_duration(deadline)))),
                },
                _ = cancel.cancelled() => Err(None),
            };
            match outcome {
                Ok((running, tools)) => {
                    let peer = running.peer().clone();
                    let server = server_info(&running);
                    let (stop_tx, stop_rx) = mpsc::channel(2);
                    tokio::spawn(monitor_remote(gen, running, stop_rx, cancel, actor));
                    Ok(Established {
                        gen,
                        peer,
                        server,
                        tools: tools.into_iter().map(tool_info).collect(),
                        pid: None,
                        identity: None,
                        stop: stop_tx,
                    })
                }
                Err(None) => Err(EndCause::Cancelled),
                Err(Some(why)) => Err(EndCause::ConnectFailed(why)),
            }
        }
    }
}

fn header_map(
    headers: &std::collections::BTreeMap<String, String>,
) -> Result<std::collections::HashMap<http::HeaderName, http::HeaderValue>, String> {
    Ok(crate::http_client::parse_headers(headers)?
        .into_iter()
        .collect())
}

pub(crate) fn exit_info(status: std::io::Result<std::process::ExitStatus>) -> ExitInfo {
    match status {
        Ok(s) => ExitInfo {
            code: s.code(),
            signal: s.signal(),
            over: None,
        },
        Err(_) => ExitInfo {
            code: None,
            signal: None,
            over: None,
        },
    }
}

/// Kills what is left of the group, reaps the leader, waits (bounded) for the group to empty,
/// and only then disarms the guard — a group id is never signalled after it could be reused.
/// Resolves when a forced stop is requested (or the actor is gone).
async fn forced(stop_rx: &mut mpsc::Receiver<bool>) {
    while let Some(false) = stop_rx.recv().await {}
}

async fn teardown(child: &mut Child, mut guard: GroupGuard, force: bool, grace: Grace) {
    let Some(pgid) = guard.pgid() else { return };
    if !force {
        signal_group(pgid, Signal::SIGTERM);
        let _ = tokio::time::timeout(grace.shutdown, child.wait()).await;
    }
    signal_group(pgid, Signal::SIGKILL);
    let _ = child.wait().await;
    // Grandchildren are reaped by init; wait for the group to vanish.
    let start = Instant::now();
    while group_alive(pgid) && start.elapsed() < Duration::from_secs(2) {
        signal_group(pgid, Signal::SIGKILL);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    if !group_alive(pgid) {
        guard.disarm();
    }
}

#[allow(clippy::too_many_arguments)]
async fn monitor_stdio(
    gen: u64,
    mut child: Child,
    guard: GroupGuard,
    running: Running,
    mut stop_rx: mpsc::Receiver<bool>,
    cancel: CancellationToken,
    actor: ActorRef<ServiceMsg>,
    grace: Grace,
) {
    let ct = running.cancellation_token();
    let mut waiting = Box::pin(running.waiting());
    let cause = tokio::select! {
        status = child.wait() => {
            let exit = guard.judge(exit_info(status));
            teardown(&mut child, guard, true, grace).await;
            ct.cancel();
            EndCause::Exited(exit)
        }
        _ = &mut waiting => {
            // Output closed. The end's cause decides the restart policy, so collect the exit
            // status if the process exits within the shutdown grace (a crash closes stdout a
            // moment before the exit is seen); only a process still alive then is `Closed`.
            match tokio::time::timeout(grace.shutdown, child.wait()).await {
                Ok(status) => {
                    let exit = guard.judge(exit_info(status));
                    teardown(&mut child, guard, true, grace).await;
                    EndCause::Exited(exit)
                }
                Err(_) => {
                    teardown(&mut child, guard, true, grace).await;
                    EndCause::Closed("the server closed its stdout".into())
                }
            }
        }
        force = stop_rx.recv() => {
            ct.cancel();
            if !force.unwrap_or(true) {
                // 1. Close stdin (ending the MCP session drops the transport), wait for the
                // exit; 2. SIGTERM the group, wait. A forced stop (or the connection's cancel)
                // arriving meanwhile cuts the waits short.
                let pgid = guard.pgid();
                let graceful = async {
                    let _ = tokio::time::timeout(grace.shutdown, &mut waiting).await;
                    let _ = tokio::time::timeout(grace.shutdown, child.wait()).await;
                    if let Some(pgid) = pgid {
                        signal_group(pgid, Signal::SIGTERM);
                    }
                    let _ = tokio::time::timeout(grace.shutdown, child.wait()).await;
                };
                tokio::select! {
                    _ = graceful => {}
                    _ = forced(&mut stop_rx) => tracing::debug!("forced stop during a graceful stop"),
                    _ = cancel.cancelled() => {}
                }
            }
            // 3. SIGKILL the group (what is left of it).
            teardown(&mut child, guard, true, grace).await;
            EndCause::Cancelled
        }
        _ = cancel.cancelled() => {
            ct.cancel();
            teardown(&mut child, guard, true, grace).await;
            EndCause::Cancelled
        }
    };
    let _ = actor.cast(ServiceMsg::Ended { gen, cause });
}

async fn monitor_remote(
    gen: u64,
    running: Running,
    mut stop_rx: mpsc::Receiver<bool>,
    cancel: CancellationToken,
    actor: ActorRef<ServiceMsg>,
) {
    let ct = running.cancellation_token();
    let mut waiting = Box::pin(running.waiting());
    let cause = tokio::select! {
        _ = &mut waiting => EndCause::Closed("the HTTP session ended".into()),
        _ = stop_rx.recv() => {
            ct.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(2), &mut waiting).await;
            EndCause::Cancelled
        }
        _ = cancel.cancelled() => {
            ct.cancel();
            EndCause::Cancelled
        }
    };
    let _ = actor.cast(ServiceMsg::Ended { gen, cause });
}

fn server_info(running: &Running) -> ServerInfo {
    let Some(info) = running.peer().peer_info() else {
        return ServerInfo::default();
    };
    let v = serde_json::to_value(&*info).unwrap_or_default();
    let s = |p: &str| v.pointer(p).and_then(|x| x.as_str()).map(str::to_owned);
    ServerInfo {
        name: s("/serverInfo/name").unwrap_or_default(),
        version: s("/serverInfo/version").unwrap_or_default(),
        protocol_version: s("/protocolVersion").unwrap_or_default(),
        instructions: s("/instructions"),
    }
}

/// Every page of `tools/list`, at most [`MAX_LIST_PAGES`](mcpvisor_model::defaults::MAX_LIST_PAGES)
/// of them (a cursor that never ends is an error, not a hang). The caller bounds the time.
pub(crate) async fn list_tools_paged(
    peer: &rmcp::Peer<rmcp::service::RoleClient>,
) -> Result<Vec<rmcp::model::Tool>, String> {
    let mut tools = Vec::new();
    let mut cursor = None;
    for _ in 0..mcpvisor_model::defaults::MAX_LIST_PAGES {
        let page = peer
            .list_tools(Some(
                rmcp::model::PaginatedRequestParams::default().with_cursor(cursor),
            ))
            .await
            .map_err(|e| format!("tools/list failed: {}", crate::diagnose::service_error(&e)))?;
        tools.extend(page.tools);
        cursor = page.next_cursor;
        if cursor.is_none() {
            return Ok(tools);
        }
    }
    Err(format!(
        "tools/list failed: more than {} pages",
        mcpvisor_model::defaults::MAX_LIST_PAGES
    ))
}

/// The server's event stream policy: a graceful close is reopened (as the spec wants), but a
/// stream that failed and could not be reopened is the loss of the server: the actor hears of
/// it at once (`TransportLost`) instead of at the next probe.
struct StreamLossPolicy {
    actor: ActorRef<ServiceMsg>,
    gen: u64,
}

impl std::fmt::Debug for StreamLossPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamLossPolicy")
            .field("gen", &self.gen)
            .finish()
    }
}

impl rmcp::transport::common::client_side_sse::SseRetryPolicy for StreamLossPolicy {
    fn retry(&self, current_times: usize) -> Option<Duration> {
        if current_times == 0 {
            return Some(mcpvisor_model::defaults::STREAM_REOPEN_DELAY);
        }
        let _ = self.actor.cast(ServiceMsg::TransportLost {
            gen: self.gen,
            detail: "the server's event stream failed and could not be reopened".into(),
        });
        None
    }
}

/// Converts the SDK's tool into plain data, taking its parts rather than copying them (no
/// second copy of every schema while 1,000 servers connect).
pub(crate) fn tool_info(mut t: rmcp::model::Tool) -> ToolInfo {
    let schema = std::mem::take(&mut t.input_schema);
    let input_schema =
        std::sync::Arc::try_unwrap(schema).unwrap_or_else(|shared| (*shared).clone());
    let name = t.name.to_string();
    let description = t.description.take().map(|d| d.to_string());
    let mut raw = serde_json::to_value(&t).unwrap_or_default();
    // Name, description and schema are kept once, in their own fields.
    if let Some(obj) = raw.as_object_mut() {
        for key in ["name", "description", "inputSchema"] {
            obj.remove(key);
        }
    }
    ToolInfo {
        name,
        description,
        input_schema,
        raw,
    }
}

/// Dials a legacy SSE server. With OAuth tokens (`mcpvisor login`, or the client-credentials
/// grant) and no configured `Authorization` header, the access token of the moment (refreshed
/// first when it is about to expire) goes with the stream and every POST of this connection; a
/// 401 at connect gets one refresh and one more try. A 401 later ends the connection (a loss),
/// and the reconnect gets a fresh token.
async fn sse_connect(
    url: &str,
    headers: &std::collections::BTreeMap<String, String>,
    token_file: Option<&std::path::Path>,
    oauth: Option<&mcpvisor_model::OAuthConfig>,
    deadline: Duration,
    cancel: CancellationToken,
) -> Result<(crate::sse::SseSink, crate::sse::SseMessages), String> {
    let configured = headers
        .keys()
        .any(|k| k.eq_ignore_ascii_case("authorization"));
    let http = crate::http_client::client(&Default::default())?;
    let auth = match configured {
        true => None,
        false => crate::oauth::authorized_client(url, token_file, oauth, http).await?,
    };
    let Some(auth) = auth else {
        return crate::sse::connect(url, headers, deadline, cancel).await;
    };
    let with_token = |token: String| {
        let mut h = headers.clone();
        h.insert("Authorization".into(), format!("Bearer {token}"));
        h
    };
    let token = auth
        .get_access_token()
        .await
        .map_err(|e| format!("no usable OAuth token ({e}): run `mcpvisor login`"))?;
    match crate::sse::connect(url, &with_token(token), deadline, cancel.clone()).await {
        // A 401 answer is worded `UNAUTHORIZED` (`diagnose::status`).
        Err(e) if e == crate::diagnose::UNAUTHORIZED => {
            let refreshed = auth.auth_manager.lock().await.refresh_token().await;
            let fresh = match refreshed {
                Ok(_) => auth.get_access_token().await.ok(),
                Err(_) => None,
            };
            match fresh {
                Some(token) => crate::sse::connect(url, &with_token(token), deadline, cancel).await,
                None => Err(format!(
                    "{e}; the OAuth token was refused and could not be refreshed: run \
                     `mcpvisor login`"
                )),
            }
        }
        other => other,
    }
}

/// ENOENT: a missing command, whatever the sandbox.
fn libc_enoent() -> i32 {
    nix::errno::Errno::ENOENT as i32
}

/// Sends `request` and waits for its answer for at most `timeout` (then rmcp sends
/// `notifications/cancelled`). The whole exchange is bounded too: sending the request or the
/// cancellation can block on a server that stopped reading (a full stdin pipe), so after
/// `timeout` + [`CANCEL_GRACE`](mcpvisor_model::defaults::CANCEL_GRACE) it is abandoned and
/// reported as a timeout. A probe or a call never hangs past its deadline.
/// `cancel` (the caller gave up, e.g. a gateway client's `notifications/cancelled`) stops
/// waiting and tells the server with `notifications/cancelled`.
/// `progress` (the service's progress routes and the caller's channel) gets the server's
/// `notifications/progress` for this request, in order, before the answer.
pub(crate) async fn bounded_request(
    peer: &Peer<RoleClient>,
    request: ClientRequest,
    timeout: Duration,
    cancel: Option<&tokio_util::sync::CancellationToken>,
    progress: Option<(
        &crate::progress::ProgressRoutes,
        &tokio::sync::mpsc::UnboundedSender<crate::handle::CallProgress>,
    )>,
) -> Result<ServerResult, ServiceError> {
    let mut request = request;
    // The connection's transport tap delivers this request's progress to the caller in wire
    // order, before the answer (see `progress`).
    let mut route = progress.map(|(routes, tx)| routes.follow(&mut request, tx));
    let exchange = async {
        let handle = peer
            .send_request_with_option(request, PeerRequestOptions::with_timeout(timeout))
            .await?;
        if let Some(route) = &mut route {
            route.set_token(handle.progress_token.clone());
        }
        let never = std::future::pending::<()>();
        let cancelled = async {
            match cancel {
                Some(c) => c.cancelled().await,
                None => never.await,
            }
        };
        let id = handle.id.clone();
        tokio::select! {
            r = handle.await_response() => r,
            _ = cancelled => {
                let reason = "cancelled by the caller".to_owned();
                let _ = peer
                    .notify_cancelled(rmcp::model::CancelledNotificationParam::new(
                        Some(id),
                        Some(reason.clone()),
                    ))
                    .await;
                Err(ServiceError::Cancelled { reason: Some(reason) })
            }
        }
    };
    let limit = timeout.saturating_add(mcpvisor_model::defaults::CANCEL_GRACE);
    match tokio::time::timeout(limit, exchange).await {
        Ok(result) => result,
        Err(_) => Err(ServiceError::Timeout { timeout }),
    }
}

/// Result of one probe.
#[derive(Debug, Clone)]
pub struct Probe {
    /// Answered in time.
    pub ok: bool,
    /// Failure text.
    pub detail: String,
    /// Round trip.
    pub latency: Duration,
    /// The server answered `ping` with "method not found": use `tools/list` from now on.
    pub ping_unsupported: bool,
    /// The probe failed on the transport (closed, refused, reset), not by a slow answer.
    pub lost: bool,
}

/// One health probe: `ping`, or `tools/list` for servers without ping.
pub(crate) async fn probe(peer: Peer<RoleClient>, timeout: Duration, use_list: bool) -> Probe {
    let started = Instant::now();
    let request = if use_list {
        ClientRequest::ListToolsRequest(Default::default())
    } else {
        ClientRequest::PingRequest(PingRequest::default())
    };
    let res = bounded_request(&peer, request, timeout, None, None).await;
    let latency = started.elapsed();
    match res {
        Ok(ServerResult::EmptyResult(_)) | Ok(ServerResult::ListToolsResult(_)) => Probe {
            ok: true,
            detail: String::new(),
            latency,
            ping_unsupported: false,
            lost: false,
        },
        Ok(_) => Probe {
            ok: true,
            detail: "unexpected probe response".into(),
            latency,
            ping_unsupported: false,
            lost: false,
        },
        Err(ServiceError::McpError(e)) if !use_list && e.code == ErrorCode::METHOD_NOT_FOUND => {
            Probe {
                ok: true,
                detail: "ping not supported; probing with tools/list".into(),
                latency,
                ping_unsupported: true,
                lost: false,
            }
        }
        Err(ServiceError::Timeout { .. }) => Probe {
            ok: false,
            detail: format!(
                "no answer within {} (health.timeout)",
                humantime::format_duration(timeout)
            ),
            latency,
            ping_unsupported: false,
            lost: false,
        },
        Err(e) => Probe {
            ok: false,
            lost: matches!(
                e,
                ServiceError::TransportClosed | ServiceError::TransportSend(_)
            ),
            detail: crate::diagnose::service_error(&e),
            latency,
            ping_unsupported: false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_info_keeps_each_part_once() {
        let tool: rmcp::model::Tool = serde_json::from_value(serde_json::json!({
            "name": "echo",
            "title": "Echo",
            "description": "Echoes its input",
            "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}},
            "annotations": {"readOnlyHint": true}
        }))
        .unwrap();
        let info = tool_info(tool);
        assert_eq!(info.name, "echo");
        assert_eq!(info.description.as_deref(), Some("Echoes its input"));
        assert_eq!(info.input_schema["properties"]["text"]["type"], "string");
        // The rest is kept as sent, without a second copy of the name, description or schema.
        let raw = info.raw.as_object().unwrap();
        assert_eq!(raw["title"], "Echo");
        assert_eq!(raw["annotations"]["readOnlyHint"], true);
        for key in ["name", "description", "inputSchema"] {
            assert!(!raw.contains_key(key), "{key} duplicated in raw");
        }
    }
}
