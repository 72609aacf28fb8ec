//! The servers' own requests — `roots/list`, `sampling/createMessage`, `elicitation/create`
//! (DESIGN §14) — and who answers them: a [`ServerRequests`] handler the embedding program or
//! the gateway registers on the Store, shared by every service through the [`Relay`].
//!
//! A service declares `roots`, `sampling` and `elicitation` in its `initialize` only when the
//! relay says they can be answered ([`Relay::declares`]): a server must not be told it may ask
//! what nobody answers. Each request is bounded in time; without a handler it is answered with
//! a JSON-RPC error naming what is missing.
// Roots, sampling and elicitation-by-request are deprecated from protocol 2026-07-28
// (SEP-2577); servers of 2025-11-25 — the revision mcpvisor speaks upstream — use them.
#![allow(deprecated)]

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use mcpvisor_model::ServiceId;
use rmcp::model::{
    CreateMessageRequestParams, CreateMessageResult, ElicitRequestParams, ElicitResult,
    ListRootsResult,
};
use rmcp::ErrorData;

/// What a handler's answer is.
pub type Answer<T> = Pin<Box<dyn Future<Output = Result<T, ErrorData>> + Send>>;

/// Answers servers' requests for the Store. `service` is the asking service.
pub trait ServerRequests: Send + Sync + 'static {
    /// `roots/list`.
    fn list_roots(&self, service: &ServiceId) -> Answer<ListRootsResult>;
    /// `sampling/createMessage`.
    fn create_message(
        &self,
        service: &ServiceId,
        params: CreateMessageRequestParams,
    ) -> Answer<CreateMessageResult>;
    /// `elicitation/create`.
    fn create_elicitation(
        &self,
        service: &ServiceId,
        params: ElicitRequestParams,
    ) -> Answer<ElicitResult>;
}

#[derive(Default)]
struct Inner {
    handler: RwLock<Option<Arc<dyn ServerRequests>>>,
    declares: AtomicBool,
}

/// The Store's one slot for a [`ServerRequests`] handler (cheap to clone).
#[derive(Clone, Default)]
pub struct Relay {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("declares", &self.declares())
            .field("handler", &self.handler().is_some())
            .finish()
    }
}

impl Relay {
    /// A relay that declares the capabilities from the start (`declares`), so servers
    /// connecting before a handler is registered may already ask.
    pub fn new(declares: bool) -> Self {
        let r = Relay::default();
        r.inner.declares.store(declares, Ordering::Relaxed);
        r
    }

    /// Registers (or removes) the handler; registering one makes later connections declare
    /// the capabilities.
    pub fn set_handler(&self, handler: Option<Arc<dyn ServerRequests>>) {
        if handler.is_some() {
            self.inner.declares.store(true, Ordering::Relaxed);
        }
        *self
            .inner
            .handler
            .write()
            .unwrap_or_else(|p| p.into_inner()) = handler;
    }

    /// Whether connections declare `roots`, `sampling` and `elicitation`.
    pub fn declares(&self) -> bool {
        self.inner.declares.load(Ordering::Relaxed)
    }

    /// The handler, if one is registered.
    pub fn handler(&self) -> Option<Arc<dyn ServerRequests>> {
        self.inner
            .handler
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// The error a request gets when nobody can answer it.
pub fn unanswered(service: &ServiceId, what: &str) -> ErrorData {
    ErrorData::new(
        rmcp::model::ErrorCode::METHOD_NOT_FOUND,
        format!("mcpvisor: no client can answer {what} for service '{service}' now"),
        None,
    )
}
