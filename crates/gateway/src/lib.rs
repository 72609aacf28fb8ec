//! # mcpvisor-gateway
//!
//! The supervised fleet as one MCP server (DESIGN §13): agents and IDEs connect to one endpoint
//! and see the tools of every service, named `service__tool` within the limits clients enforce;
//! each call goes through the [`Store`] to the service that offers the tool. Served over
//! streamable HTTP (`/mcp`, `/agents/<id>/mcp`, [`Gateway::router`]) and over any byte stream
//! (stdio, a Unix socket: [`Gateway::serve_stream`]).
//!
//! **Invariants:** one fleet however many clients connect (sessions never start servers); a
//! name collision never fails anything; a call whose server died under it fails with a tool
//! error and is never retried; a call to a service that is coming back waits at most
//! `gateway.hold`; clients whose view changed get `notifications/tools/list_changed`.
#![warn(missing_docs)]

mod bridge;
mod core;
mod era;
mod fast;
mod fast_http;
mod handler;
mod http;
mod listen;
pub mod names;
mod notify;
mod ops;
mod relay;
mod search;
pub use search::meta_tools;
mod sessions;
mod surface;

use std::net::SocketAddr;
use std::sync::Arc;

use mcpvisor_service_actor::stdio::{AnyRead, LeanStdio};
use mcpvisor_supervisor::{Store, StoreError};
use rmcp::ServiceExt;
use tokio::io::{AsyncRead, AsyncWrite};

pub use crate::core::Endpoint;
pub use crate::handler::Session;
pub use crate::http::HttpOptions;
pub use crate::ops::ops_router;

pub(crate) const MAX_SESSIONS: usize = mcpvisor_model::defaults::GATEWAY_MAX_SESSIONS;
pub(crate) const MAX_CALLS_IN_FLIGHT: usize = mcpvisor_model::defaults::GATEWAY_MAX_CALLS_IN_FLIGHT;
pub(crate) const MAX_BODY_BYTES: usize = mcpvisor_model::defaults::GATEWAY_MAX_BODY_BYTES;

/// What can go wrong setting up or serving the gateway.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// A non-loopback address without a bearer token.
    #[error(
        "serving on {0} (not loopback) needs a bearer token: set MCPVISOR_GATEWAY_TOKEN or pass \
         --token-file"
    )]
    TokenRequired(SocketAddr),
    /// The Store refused (shut down, unknown agent).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The socket failed.
    #[error("gateway I/O failed: {0}")]
    Io(#[from] std::io::Error),
    /// The client's MCP session could not start.
    #[error("the client's MCP session failed to start: {0}")]
    Session(String),
}

/// Serves `/metrics`, `/healthz` and `/readyz` for `store` on `listener` until `cancel` fires
/// (`run --metrics ADDR`; the gateway's own port serves them too).
pub async fn serve_ops(
    listener: tokio::net::TcpListener,
    store: Store,
    cancel: tokio_util::sync::CancellationToken,
) -> Result<(), GatewayError> {
    axum::serve(listener, ops_router(store))
        .with_graceful_shutdown(async move { cancel.cancelled().await })
        .await?;
    Ok(())
}

/// The gateway of one Store. Cheap to clone; every clone serves the same fleet.
#[derive(Clone)]
pub struct Gateway {
    core: Arc<core::Core>,
}

impl Gateway {
    /// A gateway over `store` (its config's `gateway` section and tool separator). Starts the
    /// task that tells clients of list changes; it ends when the Store shuts down.
    pub async fn new(store: Store) -> Result<Gateway, GatewayError> {
        let config = store.config().await?;
        let core = Arc::new(core::Core::new(
            store,
            &config.supervisor.tool_separator,
            config.gateway.clone(),
        ));
        tokio::spawn(notify::follow(core.clone()));
        // Servers' own requests go to the client whose call is in flight.
        core.store
            .set_server_requests(Some(Arc::new(relay::GatewayRelay {
                core: Arc::downgrade(&core),
            })));
        Ok(Gateway { core })
    }

    /// The axum router serving `/mcp` and `/agents/<id>/mcp` under `options`' security rules.
    pub fn router(&self, options: &HttpOptions) -> Result<axum::Router, GatewayError> {
        http::router(self.core.clone(), options)
    }

    /// Serves HTTP on `listener` until `options.cancel` fires.
    pub async fn serve_http(
        &self,
        listener: tokio::net::TcpListener,
        options: HttpOptions,
    ) -> Result<(), GatewayError> {
        let router = self.router(&options)?;
        let cancel = options.cancel.clone();
        // An answer goes out in several small writes (headers, events, the last chunk): with
        // Nagle's algorithm each waits for the client's delayed ACK (40 ms on Linux) on a
        // kept-alive connection.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(listener, router)
            .with_graceful_shutdown(async move { cancel.cancelled().await })
            .await?;
        Ok(())
    }

    /// How many byte-stream clients' tool calls were relayed as JSON (without rmcp's typed
    /// model, `serve --stdio`'s fast path) since the gateway was made; the others went
    /// through rmcp (a call that had to wait for its tool or service, a client of protocol
    /// 2026-07-28, params beyond name, arguments and a progress token).
    pub fn relayed_calls(&self) -> u64 {
        self.core.relayed.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// One client over a byte stream (newline-delimited JSON-RPC, as MCP's stdio transport):
    /// returns when the client closes it.
    pub async fn serve_stream<R, W>(
        &self,
        endpoint: Endpoint,
        read: R,
        write: W,
    ) -> Result<(), GatewayError>
    where
        R: AsyncRead + Send + Unpin + 'static,
        W: AsyncWrite + Send + Unpin + 'static,
    {
        if let Endpoint::Agent(id) = &endpoint {
            self.core.store.for_agent(id)?;
        }
        let mut session = Session::new(self.core.clone(), endpoint.clone());
        let write: fast::ClientWrite = Box::new(write);
        let lean = LeanStdio::new("client", AnyRead::new(read), write);
        let relay = fast::Relay::new(
            self.core.clone(),
            endpoint,
            session.in_flight.clone(),
            lean.writer(),
        );
        let lean = lean.with_tap(Arc::new(fast::Tap(relay.clone())));
        session.relay = Some(relay.clone());
        let running = session
            .serve(lean)
            .await
            .map_err(|e| GatewayError::Session(e.to_string()))?;
        let _ = running.waiting().await;
        relay.close();
        Ok(())
    }
}
