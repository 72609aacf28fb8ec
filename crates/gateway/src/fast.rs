//! A byte-stream client's tool calls relayed as the JSON they came in (DESIGN §12: through
//! `serve --stdio`, ≥ 0.7× a bare client's throughput). The session's transport shows every
//! line to [`Relay`] first; a `tools/call` it can route at once — an initialized client of a
//! protocol before 2026-07-28, a tool of the endpoint's cached view whose service is up, plain
//! params — is taken off the line here: its arguments go to the server as they came
//! ([`mcpvisor_supervisor::Store::call_tool_raw`]) and the server's result goes back as it
//! came, without rmcp's typed model on either side. Anything else — other requests, a call
//! that must wait for its tool or its service, the newer protocol — goes to the [`Session`]
//! through rmcp as before.
//!
//! What a relayed call keeps of the session's: the in-flight bound, `gateway.hold` for a
//! service that went down meanwhile, the client's progress token and `notifications/cancelled`,
//! the server's own requests routed to this client while the call runs, and the same answers
//! for every failure ([`crate::handler::call_failure`]).
//!
//! [`Session`]: crate::Session

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use mcpvisor_service_actor::stdio::{LineTap, LineWriter};
use mcpvisor_supervisor::{CallControl, CallError, CallProgress, StoreError};
use rmcp::model::{CallToolResult, ProgressNotificationParam, ProgressToken, ProtocolVersion};
use rmcp::service::{Peer, RoleServer};
use rmcp::ErrorData as McpError;
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::io::AsyncWrite;
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::bridge::Round;
use crate::core::{Core, Endpoint, Routed};
use crate::handler::{call_failure, hold};

/// The client's end of a byte stream.
pub(crate) type ClientWrite = Box<dyn AsyncWrite + Send + Unpin>;

/// One byte-stream session's relayed calls.
pub(crate) struct Relay {
    core: Arc<Core>,
    endpoint: Endpoint,
    /// The session's bound on calls in flight (shared with its [`crate::Session`]).
    in_flight: Arc<Semaphore>,
    /// The client, once initialized on a protocol whose results need no rewriting.
    peer: OnceLock<Peer<RoleServer>>,
    writer: LineWriter<ClientWrite>,
    /// Relayed calls in flight: the client's id (as it wrote it) → the call's number and what
    /// cancels it.
    calls: Mutex<HashMap<String, (u64, CancellationToken)>>,
    /// Numbers the relayed calls (a client reusing an id keeps each call's entry its own).
    next: std::sync::atomic::AtomicU64,
}

/// A `tools/call` request as far as relaying it goes; any other member (a task, other `_meta`)
/// and it goes through rmcp instead.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CallPeek<'a> {
    #[serde(borrow)]
    jsonrpc: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    id: &'a RawValue,
    #[serde(borrow)]
    method: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    params: CallParams<'a>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CallParams<'a> {
    #[serde(borrow)]
    name: std::borrow::Cow<'a, str>,
    #[serde(borrow, default)]
    arguments: Option<&'a RawValue>,
    #[serde(rename = "_meta", borrow, default)]
    meta: Option<Meta<'a>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Meta<'a> {
    #[serde(rename = "progressToken", borrow, default)]
    progress_token: Option<&'a RawValue>,
    /// A 2026-07-28 request says who asks, in every request.
    #[serde(rename = "io.modelcontextprotocol/protocolVersion", borrow, default)]
    protocol_version: Option<std::borrow::Cow<'a, str>>,
    #[serde(rename = "io.modelcontextprotocol/clientInfo", borrow, default)]
    client_info: Option<&'a RawValue>,
    #[serde(rename = "io.modelcontextprotocol/clientCapabilities", borrow, default)]
    client_capabilities: Option<&'a RawValue>,
    #[serde(rename = "io.modelcontextprotocol/logLevel", borrow, default)]
    _log_level: Option<&'a RawValue>,
}

/// Whom a relayed call answers, by era.
enum Era {
    /// A handshake-era client, on its session.
    Session(Peer<RoleServer>),
    /// A 2026-07-28 request: what its server asks becomes an input-required result
    /// (`crate::bridge`), and its result carries `resultType`.
    Stateless(rmcp::model::ClientCapabilities),
}

#[derive(Deserialize)]
struct CancelPeek<'a> {
    #[serde(borrow)]
    method: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    params: CancelParams<'a>,
}

#[derive(Deserialize)]
struct CancelParams<'a> {
    #[serde(rename = "requestId", borrow)]
    request_id: &'a RawValue,
}

/// The request a `notifications/cancelled` line cancels (its id as written); nothing for any
/// other line, whatever it holds.
fn cancelled_request(line: &[u8]) -> Option<&str> {
    let c = serde_json::from_slice::<CancelPeek>(line).ok()?;
    (c.method == "notifications/cancelled").then(|| c.params.request_id.get())
}

/// A relayed call's parts, owned.
pub(crate) struct Call {
    pub(crate) serial: u64,
    pub(crate) id: Box<RawValue>,
    pub(crate) routed: Routed,
    pub(crate) arguments: Option<Box<RawValue>>,
    pub(crate) token: Option<ProgressToken>,
    pub(crate) cancel: CancellationToken,
    pub(crate) _slot: OwnedSemaphorePermit,
}

/// The [`LineTap`] of a session's transport.
pub(crate) struct Tap(pub(crate) Arc<Relay>);

impl LineTap for Tap {
    /// The client closed its end: the relayed calls still running answer first (each holds an
    /// in-flight slot until its answer is written).
    fn closing(&self) -> Option<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>> {
        let slots = self.0.in_flight.clone();
        Some(Box::pin(async move {
            let all = u32::try_from(crate::MAX_CALLS_IN_FLIGHT).unwrap_or(u32::MAX);
            let _ = slots.acquire_many_owned(all).await;
        }))
    }

    fn claim(&self, line: &[u8]) -> bool {
        if memchr::memmem::find(line, b"\"tools/call\"").is_some() {
            return self.0.start(line);
        }
        if memchr::memmem::find(line, b"notifications/cancelled").is_some() {
            // Seen, not taken: rmcp ignores an id it does not know.
            self.0.cancel(line);
        }
        false
    }
}

impl Relay {
    pub(crate) fn new(
        core: Arc<Core>,
        endpoint: Endpoint,
        in_flight: Arc<Semaphore>,
        writer: LineWriter<ClientWrite>,
    ) -> Arc<Relay> {
        Arc::new(Relay {
            core,
            endpoint,
            in_flight,
            peer: OnceLock::new(),
            writer,
            calls: Mutex::default(),
            next: Default::default(),
        })
    }

    /// The client is initialized on `version`: calls may be relayed from now on, if that
    /// protocol's results are the servers' as they are (before 2026-07-28, which adds
    /// `resultType`).
    pub(crate) fn initialized(&self, peer: Peer<RoleServer>, version: &ProtocolVersion) {
        if !crate::era::stateless(Some(version)) {
            let _ = self.peer.set(peer);
        }
    }

    /// The client is gone: its relayed calls are cancelled (the servers are told), as rmcp
    /// does with a closed session's requests.
    pub(crate) fn close(&self) {
        for (_, token) in self.lock_calls().values() {
            token.cancel();
        }
    }

    /// Takes `line` if it is a call that can be relayed now, and starts it.
    fn start(self: &Arc<Self>, line: &[u8]) -> bool {
        let Ok(call) = serde_json::from_slice::<CallPeek>(line) else {
            return false;
        };
        // A request naming its own revision is of 2026-07-28 (complete, or rmcp's to answer);
        // any other, of an initialized handshake-era session.
        let era = match call
            .params
            .meta
            .as_ref()
            .map(|m| (&m.protocol_version, m.client_info, m.client_capabilities))
        {
            Some((Some(version), Some(_), Some(caps))) => {
                if version.as_ref() != ProtocolVersion::V_2026_07_28.as_str() {
                    return false;
                }
                match serde_json::from_str(caps.get()) {
                    Ok(caps) => Era::Stateless(caps),
                    Err(_) => return false,
                }
            }
            Some((Some(_), _, _)) => return false,
            _ => match self.peer.get() {
                Some(peer) => Era::Session(peer.clone()),
                None => return false,
            },
        };
        let id = call.id.get().as_bytes();
        let plain_id = matches!(id.first(), Some(b'"' | b'-' | b'0'..=b'9'));
        let object_args = call
            .params
            .arguments
            .is_none_or(|a| a.get().starts_with('{'));
        if call.jsonrpc != "2.0" || call.method != "tools/call" || !plain_id || !object_args {
            return false;
        }
        let token = match call.params.meta.as_ref().and_then(|m| m.progress_token) {
            Some(t) => match serde_json::from_str::<ProgressToken>(t.get()) {
                Ok(t) => Some(t),
                Err(_) => return false,
            },
            None => None,
        };
        let Some(view) = self.core.cached(&self.endpoint) else {
            return false;
        };
        let Some(offered) = view.find(&call.params.name).filter(|o| o.up) else {
            return false;
        };
        let Ok(slot) = self.in_flight.clone().try_acquire_owned() else {
            return false;
        };
        let cancel = CancellationToken::new();
        let serial = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.lock_calls()
            .insert(call.id.get().to_owned(), (serial, cancel.clone()));
        let call = Call {
            serial,
            id: call.id.to_owned(),
            routed: Routed::from(offered),
            arguments: call.params.arguments.map(RawValue::to_owned),
            token,
            cancel,
            _slot: slot,
        };
        self.core
            .relayed
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tokio::spawn(self.clone().relay(call, era));
        true
    }

    /// The client's `notifications/cancelled` for a relayed call cancels it (that method only:
    /// another message naming a `requestId` cancels nothing).
    fn cancel(&self, line: &[u8]) {
        if let Some(id) = cancelled_request(line) {
            if let Some((_, token)) = self.lock_calls().get(id) {
                token.cancel();
            }
        }
    }

    /// This session's client as the caller of a call.
    fn caller(&self, peer: Peer<RoleServer>) -> crate::relay::Caller {
        crate::relay::Caller::session(peer, &self.in_flight)
    }

    fn lock_calls(&self) -> std::sync::MutexGuard<'_, HashMap<String, (u64, CancellationToken)>> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn relay(self: Arc<Self>, call: Call, era: Era) {
        let (id, serial, cancel) = (call.id.clone(), call.serial, call.cancel.clone());
        let stateless = matches!(era, Era::Stateless(_));
        let answer = match era {
            Era::Session(peer) => {
                let caller = self.caller(peer);
                self.answer(&call, caller).await.map(Round::Done)
            }
            Era::Stateless(capabilities) => {
                let (service, tool) = (
                    call.routed.service.name.to_string(),
                    call.routed.name.clone(),
                );
                let me = self.clone();
                // The bridge may end the call itself (a capability the request lacks): on a
                // token of its own, under the client's.
                let mut call = call;
                call.cancel = cancel.child_token();
                let running = crate::bridge::Running::start(
                    (&service, &tool),
                    capabilities,
                    call.cancel.clone(),
                    move |asker| async move {
                        me.answer(&call, crate::relay::Caller::Bridge(asker)).await
                    },
                );
                // The client's `notifications/cancelled` cancels the call itself.
                let round = CancellationToken::new();
                self.core.bridges.round(running, &round).await
            }
        };
        {
            let mut calls = self.lock_calls();
            if calls.get(id.get()).is_some_and(|(n, _)| *n == serial) {
                calls.remove(id.get());
            }
        }
        if answer.is_err() && cancel.is_cancelled() {
            // Cancelled by the client (or its session ended): a cancelled request is not
            // answered (as rmcp drops its handler's answer to one).
            return;
        }
        let mut line = Vec::with_capacity(64);
        line.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
        line.extend_from_slice(id.get().as_bytes());
        let encoded = match answer {
            Ok(Round::Done(Answer::Raw(result))) => {
                line.extend_from_slice(br#","result":"#);
                if stateless {
                    crate::era::complete_raw(&mut line, &result);
                } else {
                    line.extend_from_slice(result.get().as_bytes());
                }
                Ok(())
            }
            Ok(Round::Done(Answer::Typed(mut result))) => {
                // A client before 2026-07-28 gets results without `resultType`, a 2026 one
                // with it.
                use crate::era::Complete;
                if stateless {
                    result = result.completed();
                } else {
                    result.result_type = None;
                }
                line.extend_from_slice(br#","result":"#);
                serde_json::to_writer(&mut line, &result)
            }
            Ok(Round::Input(input)) => {
                line.extend_from_slice(br#","result":"#);
                serde_json::to_writer(&mut line, &input)
            }
            Err(e) => {
                line.extend_from_slice(br#","error":"#);
                serde_json::to_writer(&mut line, &e)
            }
        };
        if encoded.is_err() {
            tracing::warn!("a relayed call's answer could not be encoded");
            line.clear();
            line.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
            line.extend_from_slice(id.get().as_bytes());
            line.extend_from_slice(
                br#","error":{"code":-32603,"message":"the answer could not be encoded"}"#,
            );
        }
        line.extend_from_slice(b"}\n");
        if let Err(e) = self.writer.write_line(&line).await {
            tracing::debug!("the client is gone before its answer: {e}");
        }
    }

    /// [`answer`], the server's progress written to the client meanwhile, and all of it
    /// before the answer.
    async fn answer(&self, call: &Call, caller: crate::relay::Caller) -> Result<Answer, McpError> {
        let Some(_) = &call.token else {
            return answer(&self.core, &self.endpoint, call, caller, None).await;
        };
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let made = answer(&self.core, &self.endpoint, call, caller, Some(tx));
        tokio::pin!(made);
        let answered = loop {
            tokio::select! {
                biased;
                Some(p) = rx.recv() => self.progress(call, p).await,
                r = &mut made => break r,
            }
        };
        while let Ok(p) = rx.try_recv() {
            self.progress(call, p).await;
        }
        answered
    }

    /// A server's progress on `call`, to the client under the client's token.
    async fn progress(&self, call: &Call, p: CallProgress) {
        let Some(token) = &call.token else {
            return;
        };
        let mut param = ProgressNotificationParam::new(token.clone(), p.progress);
        param.total = p.total;
        param.message = p.message;
        let mut line = br#"{"jsonrpc":"2.0","method":"notifications/progress","params":"#.to_vec();
        if serde_json::to_writer(&mut line, &param).is_ok() {
            line.extend_from_slice(b"}\n");
            let _ = self.writer.write_line(&line).await;
        }
    }
}

/// Makes `call` for a client (`peer`) of `endpoint` — relayed, or a session's through rmcp —
/// holding once for a service that went down meanwhile: the server's result as it came, or
/// what the client is answered instead. The server's progress on it goes to
/// `progress` (the caller's to pass on under the client's token).
pub(crate) async fn answer(
    core: &Core,
    endpoint: &Endpoint,
    call: &Call,
    caller: crate::relay::Caller,
    progress: Option<UnboundedSender<CallProgress>>,
) -> Result<Answer, McpError> {
    let store = core
        .scoped(endpoint)
        .map_err(|e| McpError::internal_error(e.to_string(), None))?;
    let service = call.routed.service.name.to_string();
    let control = CallControl {
        cancel: Some(call.cancel.clone()),
        progress,
    };
    // While it runs, the server's own requests (sampling, elicitation, roots) come to this
    // client.
    let _caller = core.callers.enter(call.routed.service.clone(), caller);
    let arguments = call.arguments.as_deref();
    let make = || store.call_tool_raw(&call.routed.name, arguments, None, &control);
    let mut outcome = make().await;
    if let Err(StoreError::Call(CallError::NotUp { state, .. })) = &outcome {
        // Not made: safe to make once the service is back (within the hold).
        match hold(core, &store, &service, *state, &call.cancel).await? {
            Some(refusal) => return Ok(Answer::Typed(refusal)),
            None => outcome = make().await,
        }
    }
    match outcome {
        Ok(raw) => Ok(Answer::Raw(raw)),
        Err(e) => call_failure(&service, e).map(Answer::Typed),
    }
}

/// What a relayed call answers.
pub(crate) enum Answer {
    /// The server's result, as it came.
    Raw(Box<RawValue>),
    /// Ours (a failure, or a refusal after the hold).
    Typed(CallToolResult),
}

#[cfg(test)]
mod tests {
    use super::cancelled_request;

    #[test]
    fn only_a_cancellation_cancels() {
        let cancel =
            br#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":7}}"#;
        assert_eq!(cancelled_request(cancel), Some("7"));
        let other = br#"{"jsonrpc":"2.0","method":"notifications/message","params":{"requestId":7,"data":"notifications/cancelled"}}"#;
        assert_eq!(cancelled_request(other), None);
        assert_eq!(cancelled_request(b"not json"), None);
    }
}
