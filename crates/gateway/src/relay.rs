//! Servers' own requests through the gateway (DESIGN §14): `sampling/createMessage`,
//! `elicitation/create` and `roots/list` of a service go to the client whose call to that
//! service is in flight — only if that client declared the capability; otherwise the server
//! gets a JSON-RPC error saying so. When calls of two different clients to one service are in
//! flight, whose call asks cannot be told (a stdio server's request names no call): the
//! request is refused, saying why, never sent to either client. A handshake-era client
//! is sent the request on its session; a 2026-07-28 client has no session to send it on, so
//! its call is answered with an input-required result instead (`crate::bridge`), the
//! capability read from the call's own `_meta`. `roots/list` outside a call goes to the most
//! recently connected client of an endpoint that sees the service and declared roots.
// Roots and sampling are deprecated from protocol 2026-07-28 (SEP-2577); the servers behind
// the gateway speak 2025-11-25 and clients of that revision answer them.
#![allow(deprecated)]

use std::sync::{Arc, Mutex, Weak};

use mcpvisor_model::ServiceId;
use mcpvisor_supervisor::{Answer, ServerRequests};
use rmcp::model::{
    ClientCapabilities, CreateMessageRequest, CreateMessageRequestParams, CreateMessageResult,
    ElicitRequest, ElicitRequestParams, ElicitResult, ErrorCode, InputRequest, ListRootsRequest,
    ListRootsResult,
};
use rmcp::service::{Peer, RoleServer, ServiceError};
use rmcp::ErrorData;

use crate::core::Core;

/// Who made a call: where its server's requests go.
#[derive(Clone)]
pub(crate) enum Caller {
    /// A handshake-era client: asked on its session. `client` tells sessions apart.
    Session {
        peer: Peer<RoleServer>,
        client: usize,
    },
    /// A 2026-07-28 client's call: what the server asks becomes an input-required result.
    Bridge(Arc<crate::bridge::Asker>),
}

impl Caller {
    /// A session's client, known by its session's in-flight bound (one per session, shared
    /// by every way its calls are made: relayed, answered outside rmcp, through rmcp).
    pub(crate) fn session(
        peer: Peer<RoleServer>,
        in_flight: &Arc<tokio::sync::Semaphore>,
    ) -> Caller {
        Caller::Session {
            peer,
            client: Arc::as_ptr(in_flight) as usize,
        }
    }

    /// Which client this is (two callers of one client are the same).
    fn client(&self) -> usize {
        match self {
            Caller::Session { client, .. } => *client,
            Caller::Bridge(a) => Arc::as_ptr(a) as usize,
        }
    }

    fn gone(&self) -> bool {
        match self {
            Caller::Session { peer, .. } => peer.is_transport_closed(),
            Caller::Bridge(a) => a.gone(),
        }
    }

    /// What the client declared it can answer.
    fn capabilities(&self) -> Option<ClientCapabilities> {
        match self {
            Caller::Session { peer, .. } => peer.peer_info().map(|i| i.capabilities.clone()),
            Caller::Bridge(a) => Some(a.capabilities.clone()),
        }
    }
}

/// Calls in flight through the gateway: which client called which service.
#[derive(Default)]
pub(crate) struct Callers {
    next: std::sync::atomic::AtomicU64,
    calls: Mutex<Vec<(u64, ServiceId, Caller)>>,
}

/// Removes its call from [`Callers`] when dropped.
pub(crate) struct CallerGuard {
    callers: Arc<Callers>,
    id: u64,
}

impl Drop for CallerGuard {
    fn drop(&mut self) {
        self.callers
            .calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(id, _, _)| *id != self.id);
    }
}

impl Callers {
    /// `caller` calls `service` until the guard is dropped.
    pub(crate) fn enter(self: &Arc<Self>, service: ServiceId, caller: Caller) -> CallerGuard {
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((id, service, caller));
        CallerGuard {
            callers: self.clone(),
            id,
        }
    }

    /// The client whose call to `service` is in flight: `Ok(None)` if none is, `Err` if
    /// calls of more than one client are (whose call asks cannot be told).
    pub(crate) fn caller_of(&self, service: &ServiceId) -> Result<Option<Caller>, Ambiguous> {
        let calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
        let mut live = calls
            .iter()
            .rev()
            .filter(|(_, s, c)| s == service && !c.gone())
            .map(|(_, _, c)| c);
        let Some(latest) = live.next() else {
            return Ok(None);
        };
        if live.any(|c| c.client() != latest.client()) {
            return Err(Ambiguous);
        }
        Ok(Some(latest.clone()))
    }
}

/// Calls of several clients to one service are in flight.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Ambiguous;

impl Callers {}

/// The gateway as the Store's answerer of servers' requests.
pub(crate) struct GatewayRelay {
    pub(crate) core: Weak<Core>,
}

fn refused(service: &ServiceId, what: &str, why: &str) -> ErrorData {
    ErrorData::new(
        ErrorCode::METHOD_NOT_FOUND,
        format!("mcpvisor: {what} from service '{service}' cannot be answered: {why}"),
        None,
    )
}

fn forwarded(e: ServiceError) -> ErrorData {
    match e {
        ServiceError::McpError(e) => e,
        other => ErrorData::internal_error(format!("the client did not answer: {other}"), None),
    }
}

impl GatewayRelay {
    /// The client to ask for `service`: the caller of a call in flight, else (roots only)
    /// the latest connected client that sees it.
    fn client(&self, service: &ServiceId, any_client: bool) -> Result<Option<Caller>, Ambiguous> {
        let Some(core) = self.core.upgrade() else {
            return Ok(None);
        };
        if let Some(c) = core.callers.caller_of(service)? {
            return Ok(Some(c));
        }
        if !any_client {
            return Ok(None);
        }
        let clients = core.clients.lock().unwrap_or_else(|p| p.into_inner());
        let found = clients
            .iter()
            .rev()
            .filter(|(e, p, _)| !p.is_transport_closed() && crate::surface::sees(e, service))
            .find(|(_, p, _)| {
                p.peer_info()
                    .is_some_and(|i| i.capabilities.roots.is_some())
            })
            .map(|(_, p, _)| Caller::Session {
                peer: p.clone(),
                client: 0,
            });
        Ok(found)
    }
}

impl GatewayRelay {
    /// Asks the client chosen for `service` — with `ask` on its session, or `input` as an
    /// input-required result — if it declared the capability `cap` names (`has`), else
    /// refuses saying what is missing.
    #[allow(clippy::too_many_arguments)]
    fn ask<T: serde::de::DeserializeOwned + Send + 'static, Fut>(
        &self,
        service: &ServiceId,
        what: &'static str,
        cap: &'static str,
        has: fn(&rmcp::model::ClientCapabilities) -> bool,
        any_client: bool,
        ask: impl FnOnce(Peer<RoleServer>) -> Fut + Send + 'static,
        input: InputRequest,
    ) -> Answer<T>
    where
        Fut: std::future::Future<Output = Result<T, ServiceError>> + Send,
    {
        let caller = self.client(service, any_client);
        let service = service.clone();
        Box::pin(async move {
            let Ok(caller) = caller else {
                let why = "calls of more than one client to it are in flight, and which of \
                           them asks cannot be told: it is asked of none";
                return Err(refused(&service, what, why));
            };
            let Some(caller) = caller else {
                let why = if any_client {
                    format!("no connected client declared {cap}")
                } else {
                    "no client call to it is in flight".to_owned()
                };
                return Err(refused(&service, what, &why));
            };
            if caller.capabilities().is_none_or(|c| !has(&c)) {
                if let Caller::Bridge(asker) = &caller {
                    asker.missing(&service.to_string(), cap);
                }
                let why = format!("the calling client did not declare {cap}");
                return Err(refused(&service, what, &why));
            }
            match caller {
                Caller::Session { peer, .. } => ask(peer).await.map_err(forwarded),
                Caller::Bridge(asker) => {
                    let answer = asker.ask(input).await?;
                    serde_json::from_value(answer).map_err(|e| {
                        ErrorData::invalid_params(
                            format!("mcpvisor: the client's answer to {what} is not one: {e}"),
                            None,
                        )
                    })
                }
            }
        })
    }
}

impl ServerRequests for GatewayRelay {
    fn list_roots(&self, service: &ServiceId) -> Answer<ListRootsResult> {
        self.ask(
            service,
            "roots/list",
            "roots",
            |c| c.roots.is_some(),
            true,
            |p| async move { p.list_roots().await },
            InputRequest::ListRoots(ListRootsRequest::default()),
        )
    }

    fn create_message(
        &self,
        service: &ServiceId,
        params: CreateMessageRequestParams,
    ) -> Answer<CreateMessageResult> {
        self.ask(
            service,
            "sampling/createMessage",
            "sampling",
            |c| c.sampling.is_some(),
            false,
            {
                let params = params.clone();
                |p| async move { p.create_message(params).await }
            },
            InputRequest::CreateMessage(CreateMessageRequest::new(params)),
        )
    }

    fn create_elicitation(
        &self,
        service: &ServiceId,
        params: ElicitRequestParams,
    ) -> Answer<ElicitResult> {
        self.ask(
            service,
            "elicitation/create",
            "elicitation",
            |c| c.elicitation.is_some(),
            false,
            {
                let params = params.clone();
                |p| async move { p.create_elicitation(params).await }
            },
            InputRequest::Elicitation(ElicitRequest::new(params)),
        )
    }
}
