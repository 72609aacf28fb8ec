//! HTTP sessions: rmcp's local session manager, with ids of 256 random bits (rmcp's own are
//! UUIDv4, 122 bits; DESIGN §13 asks for at least 128) and a bound on how many live at once.

use std::sync::Arc;

use futures::Stream;
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::transport::streamable_http_server::session::local::{
    create_local_session, LocalSessionManager, LocalSessionManagerError, LocalSessionWorker,
};
use rmcp::transport::streamable_http_server::session::{
    EventStore, RestoreOutcome, ServerSseMessage, SessionId, SessionManager,
};
use rmcp::transport::WorkerTransport;

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
}

impl Sessions {
    /// At most `max` live sessions.
    pub(crate) fn new(max: usize, calls: Arc<HttpCalls>) -> Sessions {
        let inner = Arc::new(LocalSessionManager::default());
        calls.attach(inner.clone());
        Sessions { inner, max, calls }
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
        Ok(self.inner.initialize_session(id, message).await?)
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, Self::Error> {
        Ok(self.inner.has_session(id).await?)
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
        self.calls.closed(id);
        Ok(self.inner.close_session(id).await?)
    }

    async fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        if let Some(answering) = self.calls.take(id, &message) {
            return Ok(futures::future::Either::Left(answering));
        }
        Ok(futures::future::Either::Right(
            self.inner.create_stream(id, message).await?,
        ))
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
        Ok(self.inner.create_standalone_stream(id).await?)
    }

    async fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        Ok(self.inner.resume(id, last_event_id).await?)
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
