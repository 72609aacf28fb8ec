//! An HTTP session's tool calls answered without rmcp's session machinery (DESIGN §12: call
//! p50 ≤ 0.5 ms through the gateway over streamable HTTP). rmcp's stateful server passes a
//! request through the session's worker, the session's serve loop and a handler task, and its
//! answer back the same way: some six task hops per call. Here the session manager
//! ([`crate::sessions::Sessions`]) hands a `tools/call` it can route at once — a session
//! initialized on a protocol before 2026-07-28, a tool of the endpoint's cached view whose
//! service is up, plain params — to [`HttpCalls`], which makes it in a task of its own with
//! [`crate::fast::answer`] (a dropped connection is not a cancellation) and sends its events on
//! the response stream; the server's result goes back as it came. rmcp has already checked
//! everything about the request by then (Host, Origin, Accept, the session, the protocol
//! version header).
//!
//! What such a call keeps of the session's: the in-flight bound, `gateway.hold`, the client's
//! `notifications/cancelled` (and a closed session) cancelling it at the server, the server's
//! own requests routed to this client while the call runs (on its GET stream, as for every
//! call of the session), its progress under the client's token on the response stream before
//! the answer, and the same answers for every failure.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures::Stream;
use mcpvisor_supervisor::CallProgress;
use rmcp::model::{
    CancelledNotification, CancelledNotificationParam, ClientJsonRpcMessage, ClientNotification,
    ClientRequest, CustomResult, ProgressNotification, ProgressNotificationParam, ProgressToken,
    ProtocolVersion, RequestId, ServerJsonRpcMessage, ServerNotification, ServerResult,
};
use rmcp::service::{Peer, RoleServer};
use rmcp::transport::common::server_side_http::ServerSseMessage;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::session::{SessionId, SessionManager};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::core::{Core, Endpoint, Routed};
use crate::fast::{answer, Answer, Call};

/// Tells [`crate::Session::initialize`] which HTTP session it is (put on the `initialize`
/// request by the session manager).
#[derive(Debug, Clone)]
pub(crate) struct SessionKey(pub(crate) SessionId);

/// One endpoint's HTTP sessions whose calls can be answered here.
pub(crate) struct HttpCalls {
    core: Arc<Core>,
    endpoint: Endpoint,
    clients: Mutex<HashMap<SessionId, Arc<Client>>>,
    next: AtomicU64,
    /// rmcp's session manager, told of sessions in use (`touch`).
    manager: std::sync::OnceLock<Arc<LocalSessionManager>>,
    /// What `Client::touched` counts from.
    base: std::time::Instant,
}

/// An initialized session's client.
struct Client {
    peer: Peer<RoleServer>,
    /// The session's bound on calls in flight (shared with its [`crate::Session`]).
    in_flight: Arc<Semaphore>,
    /// Calls answered here and in flight: the client's id → the call's number and what
    /// cancels it.
    calls: Mutex<HashMap<RequestId, (u64, CancellationToken)>>,
    /// When rmcp's session worker was last shown the session is in use (seconds from
    /// `HttpCalls::base`).
    touched: AtomicU64,
    /// Cancelled when the session closes: every call's token is a child of it (so a call
    /// starting as the session closes is cancelled too).
    closed: CancellationToken,
}

impl Client {
    fn lock_calls(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<RequestId, (u64, CancellationToken)>> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl HttpCalls {
    pub(crate) fn new(core: Arc<Core>, endpoint: Endpoint) -> Arc<HttpCalls> {
        Arc::new(HttpCalls {
            core,
            endpoint,
            clients: Mutex::default(),
            next: AtomicU64::new(0),
            manager: std::sync::OnceLock::new(),
            base: std::time::Instant::now(),
        })
    }

    /// The session manager whose sessions these are.
    pub(crate) fn attach(&self, manager: Arc<LocalSessionManager>) {
        let _ = self.manager.set(manager);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SessionId, Arc<Client>>> {
        self.clients.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Session `id` is initialized on `version` with `peer`: its calls are answered here from
    /// now on, if that protocol's results are the servers' as they are (before 2026-07-28,
    /// which adds `resultType`).
    pub(crate) fn initialized(
        &self,
        id: SessionId,
        peer: Peer<RoleServer>,
        in_flight: Arc<Semaphore>,
        version: &ProtocolVersion,
    ) {
        if !crate::era::stateless(Some(version)) {
            let client = Client {
                peer,
                in_flight,
                calls: Mutex::default(),
                touched: AtomicU64::new(self.base.elapsed().as_secs()),
                closed: CancellationToken::new(),
            };
            let mut clients = self.lock();
            // Sessions that ended without being closed (expired, their loop gone) go.
            clients.retain(|_, c| {
                let live = !c.peer.is_transport_closed();
                if !live {
                    c.closed.cancel();
                }
                live
            });
            clients.insert(id, Arc::new(client));
        }
    }

    /// Session `id` is closed: its calls here are cancelled (the servers are told), as rmcp
    /// does with a closed session's requests.
    pub(crate) fn closed(&self, id: &SessionId) {
        let client = self.lock().remove(id);
        if let Some(client) = client {
            client.closed.cancel();
        }
    }

    /// The client's `notifications/cancelled` for a call answered here cancels it (rmcp is
    /// told too, and ignores an id it does not know).
    pub(crate) fn cancel(&self, id: &SessionId, message: &ClientJsonRpcMessage) {
        let ClientJsonRpcMessage::Notification(n) = message else {
            return;
        };
        let ClientNotification::CancelledNotification(CancelledNotification { params, .. }) =
            &n.notification
        else {
            return;
        };
        let Some(request) = &params.request_id else {
            return;
        };
        let client = self.lock().get(id).cloned();
        if let Some(client) = client {
            if let Some((_, token)) = client.lock_calls().get(request) {
                token.cancel();
            }
        }
    }

    /// `message` on session `id`, if it is a call that can be answered now: the response's
    /// one event, made as the stream is polled.
    pub(crate) fn take(
        self: &Arc<Self>,
        id: &SessionId,
        message: &ClientJsonRpcMessage,
    ) -> Option<Answering> {
        let ClientJsonRpcMessage::Request(request) = message else {
            return None;
        };
        let ClientRequest::CallToolRequest(call) = &request.request else {
            return None;
        };
        let params = &call.params;
        if params.input_responses.is_some() || params.request_state.is_some() {
            return None;
        }
        // `_meta` is kept in the request's extensions (as rmcp reads it). A request naming its
        // own protocol version is rmcp's to check.
        let meta = rmcp::model::GetMeta::get_meta(&request.request);
        if meta.protocol_version().is_some() {
            return None;
        }
        let token = meta.get_progress_token();
        let client = self.lock().get(id).cloned()?;
        if client.peer.is_transport_closed() {
            self.lock().remove(id);
            return None;
        }
        let view = self.core.cached(&self.endpoint)?;
        let offered = view.find(&params.name).filter(|o| o.up)?;
        let arguments = match &params.arguments {
            Some(a) => Some(serde_json::value::to_raw_value(a).ok()?),
            None => None,
        };
        let request_id = request.id.clone();
        let raw_id = serde_json::value::to_raw_value(&request_id).ok()?;
        let slot = client.in_flight.clone().try_acquire_owned().ok()?;
        let cancel = client.closed.child_token();
        let serial = self.next.fetch_add(1, Ordering::Relaxed);
        client
            .lock_calls()
            .insert(request_id.clone(), (serial, cancel.clone()));
        let call = Call {
            serial,
            id: raw_id,
            routed: Routed::from(offered),
            arguments,
            token: token.clone(),
            cancel,
            _slot: slot,
        };
        self.core.relayed.fetch_add(1, Ordering::Relaxed);
        // The call runs in a task of its own, not on the response stream: a client whose
        // connection drops has not cancelled it (the transport spec: it may resume, or send
        // `notifications/cancelled`), and its session's end still cancels it.
        let (events, answering) = tokio::sync::mpsc::unbounded_channel();
        self.touch(id, &client);
        tokio::spawn(
            self.clone()
                .run(id.clone(), client, call, request_id, events),
        );
        Some(Answering(answering))
    }

    /// Makes `call` for session `id`'s `client` and sends its events: progress, then the
    /// answer (none for a call the client cancelled).
    async fn run(
        self: Arc<Self>,
        id: SessionId,
        client: Arc<Client>,
        call: Call,
        request_id: RequestId,
        events: UnboundedSender<ServerSseMessage>,
    ) {
        let (progress, mut updates) = match &call.token {
            Some(_) => {
                let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
                (Some(tx), Some(rx))
            }
            None => (None, None),
        };
        let made = answer(
            &self.core,
            &self.endpoint,
            &call,
            crate::relay::Caller::session(client.peer.clone(), &client.in_flight),
            progress,
        );
        tokio::pin!(made);
        let outcome = loop {
            tokio::select! {
                biased;
                Some(p) = async { updates.as_mut()?.recv().await } => {
                    if let Some(token) = &call.token {
                        let _ = events.send(progress_event(token, p));
                        self.touch(&id, &client);
                    }
                }
                r = &mut made => break r,
            }
        };
        // Every progress notification goes out before the answer.
        if let (Some(rx), Some(token)) = (&mut updates, &call.token) {
            while let Ok(p) = rx.try_recv() {
                let _ = events.send(progress_event(token, p));
            }
        }
        {
            let mut mine = client.lock_calls();
            if mine
                .get(&request_id)
                .is_some_and(|(n, _)| *n == call.serial)
            {
                mine.remove(&request_id);
            }
        }
        self.touch(&id, &client);
        if outcome.is_err() && call.cancel.is_cancelled() {
            // Cancelled by the client (or its session closed): not answered, as rmcp drops its
            // handler's answer to a cancelled request.
            return;
        }
        let message = match outcome {
            Ok(Answer::Raw(result)) => {
                match serde_json::from_str::<serde_json::Value>(result.get()) {
                    Ok(v) => ServerJsonRpcMessage::response(
                        ServerResult::CustomResult(CustomResult(v)),
                        request_id,
                    ),
                    Err(e) => ServerJsonRpcMessage::error(
                        rmcp::ErrorData::internal_error(
                            format!("the server's answer is not JSON: {e}"),
                            None,
                        ),
                        Some(request_id),
                    ),
                }
            }
            Ok(Answer::Typed(mut result)) => {
                // A client before 2026-07-28 gets results without `resultType`.
                result.result_type = None;
                ServerJsonRpcMessage::response(ServerResult::CallToolResult(result), request_id)
            }
            Err(e) => ServerJsonRpcMessage::error(e, Some(request_id)),
        };
        let _ = events.send(ServerSseMessage::from_message(message));
    }

    /// Session `id` is in use: rmcp's session worker, which closes a session after
    /// `keep_alive` (5 min) without an event and never sees the calls answered here, is sent
    /// one (at most once a minute; a `notifications/cancelled` for no request, which the
    /// session ignores).
    fn touch(&self, id: &SessionId, client: &Client) {
        let now = self.base.elapsed().as_secs();
        let last = client.touched.load(Ordering::Relaxed);
        if now.saturating_sub(last) < TOUCH_EVERY_S
            || client
                .touched
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let Some(manager) = self.manager.get().cloned() else {
            return;
        };
        let id = id.clone();
        tokio::spawn(async move {
            let nothing = CancelledNotificationParam::new(None, Some("mcpvisor: in use".into()));
            let note = ClientJsonRpcMessage::notification(
                ClientNotification::CancelledNotification(CancelledNotification::new(nothing)),
            );
            let _ = manager.accept_message(&id, note).await;
        });
    }
}

/// How often a session in use is shown to rmcp's session worker, in seconds.
const TOUCH_EVERY_S: u64 = 60;

/// The response stream of a call answered here: the server's progress on it (under the
/// client's token), then its answer.
pub(crate) struct Answering(UnboundedReceiver<ServerSseMessage>);

impl Stream for Answering {
    type Item = ServerSseMessage;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<ServerSseMessage>> {
        self.get_mut().0.poll_recv(cx)
    }
}

fn progress_event(token: &ProgressToken, p: CallProgress) -> ServerSseMessage {
    let mut param = ProgressNotificationParam::new(token.clone(), p.progress);
    param.total = p.total;
    param.message = p.message;
    let note = ServerNotification::ProgressNotification(ProgressNotification::new(param));
    ServerSseMessage::from_message(ServerJsonRpcMessage::notification(note))
}
