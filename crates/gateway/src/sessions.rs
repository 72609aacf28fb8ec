//! HTTP sessions: rmcp's local session manager, with ids of 256 random bits (rmcp's own are
//! UUIDv4, 122 bits; DESIGN §13 asks for at least 128), a bound on how many live at once, and
//! each session's event streams gated by the revision it negotiated ([`crate::era::Revision`]:
//! no SSE priming event or `retry` field to a client before 2025-11-25).

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures::Stream;
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::transport::streamable_http_server::session::local::{
    create_local_session, LocalSessionManager, LocalSessionManagerError, LocalSessionWorker,
};
use rmcp::transport::streamable_http_server::session::{
    EventStore, RestoreOutcome, ServerSseMessage, SessionId, SessionManager,
};
use rmcp::transport::WorkerTransport;

use crate::era::Revision;
use crate::fast_http::{HttpCalls, SessionKey};

/// Why a session could not be served.
#[derive(Debug, thiserror::Error)]
pub enum SessionsError {
    /// The bound on live sessions is reached.
    #[error("too many sessions (at most {0}); close one or try later")]
    Full(usize),
    /// rmcp's session manager failed.
    #[error(transparent)]
    Local(#[from] LocalSessionManagerError),
}

/// rmcp's [`LocalSessionManager`] with long random ids and a session bound; the tool calls
/// it can route at once are answered by [`HttpCalls`] instead of the session's serve loop.
pub struct Sessions {
    inner: Arc<LocalSessionManager>,
    max: usize,
    calls: Arc<HttpCalls>,
    /// The revision each initialized session negotiated.
    revisions: Mutex<HashMap<SessionId, Revision>>,
}

impl Sessions {
    /// At most `max` live sessions.
    pub(crate) fn new(max: usize, calls: Arc<HttpCalls>) -> Sessions {
        let inner = Arc::new(LocalSessionManager::default());
        calls.attach(inner.clone());
        Sessions {
            inner,
            max,
            calls,
            revisions: Mutex::default(),
        }
    }

    /// What session `id`'s streams may carry (a session not initialized yet: the newest).
    fn revision(&self, id: &SessionId) -> Revision {
        let revisions = self.revisions.lock().unwrap_or_else(|p| p.into_inner());
        revisions.get(id).copied().unwrap_or(Revision::NEWEST)
    }
}

/// A session's event stream as its revision defines it: before 2025-11-25 no priming event
/// (an event without data, which a client of 2025-06-18 fails to parse) and no `retry`.
struct Gated<S> {
    inner: S,
    priming: bool,
}

impl<S> Gated<S> {
    fn new(inner: S, revision: Revision) -> Gated<S> {
        Gated {
            inner,
            priming: revision.sse_priming(),
        }
    }
}

impl<S: Stream<Item = ServerSseMessage> + Unpin> Stream for Gated<S> {
    type Item = ServerSseMessage;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            match Pin::new(&mut self.inner).poll_next(cx) {
                Poll::Ready(Some(mut event)) if !self.priming => {
                    if event.message.is_none() {
                        continue;
                    }
                    event.retry = None;
                    return Poll::Ready(Some(event));
                }
                other => return other,
            }
        }
    }
}

/// 256 random bits, hex.
fn new_id() -> SessionId {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Arc::from(hex)
}

impl SessionManager for Sessions {
    type Error = SessionsError;
    type Transport = WorkerTransport<LocalSessionWorker>;

    async fn create_session(&self) -> Result<(SessionId, Self::Transport), Self::Error> {
        let mut sessions = self.inner.sessions.write().await;
        if sessions.len() >= self.max {
            return Err(SessionsError::Full(self.max));
        }
        let id = new_id();
        let (handle, worker) = create_local_session(id.clone(), self.inner.session_config.clone());
        sessions.insert(id.clone(), handle);
        Ok((id, WorkerTransport::spawn(worker)))
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        mut message: ClientJsonRpcMessage,
    ) -> Result<ServerJsonRpcMessage, Self::Error> {
        // The session's handler learns which session it is (for `HttpCalls`).
        if let ClientJsonRpcMessage::Request(r) = &mut message {
            use rmcp::model::GetExtensions;
            r.request.extensions_mut().insert(SessionKey(id.clone()));
        }
        let answer = self.inner.initialize_session(id, message).await?;
        if let ServerJsonRpcMessage::Response(r) = &answer {
            if let rmcp::model::ServerResult::InitializeResult(init) = &r.result {
                let mut revisions = self.revisions.lock().unwrap_or_else(|p| p.into_inner());
                revisions.insert(id.clone(), Revision::of(&init.protocol_version));
            }
        }
        Ok(answer)
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, Self::Error> {
        Ok(self.inner.has_session(id).await?)
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
        self.calls.closed(id);
        self.revisions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        Ok(self.inner.close_session(id).await?)
    }

    async fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        let revision = self.revision(id);
        if let Some(answering) = self.calls.take(id, &message) {
            return Ok(Gated::new(
                futures::future::Either::Left(answering),
                revision,
            ));
        }
        let stream = Box::pin(self.inner.create_stream(id, message).await?);
        Ok(Gated::new(futures::future::Either::Right(stream), revision))
    }

    async fn accept_message(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<(), Self::Error> {
        self.calls.cancel(id, &message);
        Ok(self.inner.accept_message(id, message).await?)
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        let stream = Box::pin(self.inner.create_standalone_stream(id).await?);
        Ok(Gated::new(stream, self.revision(id)))
    }

    async fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        let stream = Box::pin(self.inner.resume(id, last_event_id).await?);
        Ok(Gated::new(stream, self.revision(id)))
    }

    async fn restore_session(
        &self,
        id: SessionId,
    ) -> Result<RestoreOutcome<Self::Transport>, Self::Error> {
        Ok(self.inner.restore_session(id).await?)
    }

    fn event_store(&self) -> Option<Arc<dyn EventStore>> {
        self.inner.event_store()
    }
}
