//! Our MCP client handler for one connection: what the server tells (tool, resource and prompt
//! list changes, resource updates, log messages, progress) goes to the service actor or the
//! call that asked; what the server asks (`roots/list`, `sampling/createMessage`,
//! `elicitation/create`) is answered by the service's configured roots or the Store's relay,
//! within a deadline; `initialize` declares only what can be answered.

use ractor::ActorRef;
use rmcp::service::{NotificationContext, RoleClient};
use rmcp::ClientHandler;

use crate::actor::{ServerNotice, ServiceMsg};
use crate::relay::{unanswered, Relay};

/// Our MCP client: forwards `notifications/tools/list_changed` to the actor.
pub(crate) struct Client {
    pub(crate) actor: ActorRef<ServiceMsg>,
    pub(crate) gen: u64,
    /// The service, and who answers its server's own requests.
    pub(crate) id: mcpvisor_model::ServiceId,
    pub(crate) relay: Relay,
    /// Roots from the service's config: answered here, without asking anyone.
    pub(crate) roots: Vec<String>,
}

impl Client {
    /// Runs `answer` (the handler's) within `limit`; without a handler, the error.
    async fn relayed<T>(
        &self,
        what: &str,
        limit: std::time::Duration,
        answer: impl FnOnce(std::sync::Arc<dyn crate::relay::ServerRequests>) -> crate::relay::Answer<T>,
    ) -> Result<T, rmcp::ErrorData> {
        let Some(handler) = self.relay.handler() else {
            return Err(unanswered(&self.id, what));
        };
        match tokio::time::timeout(limit, answer(handler)).await {
            Ok(r) => r,
            Err(_) => Err(rmcp::ErrorData::internal_error(
                format!(
                    "mcpvisor: {what} for service '{}' got no answer within {}",
                    self.id,
                    humantime::format_duration(limit)
                ),
                None,
            )),
        }
    }
}

// Roots, sampling and logging are deprecated from protocol 2026-07-28 (SEP-2577); upstreams
// speak 2025-11-25 (mcpvisor proposes it), where they are current.
#[allow(deprecated)]
impl ClientHandler for Client {
    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        let _ = self.actor.cast(ServiceMsg::ToolsChanged { gen: self.gen });
    }

    async fn on_resource_updated(
        &self,
        params: rmcp::model::ResourceUpdatedNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        let _ = self
            .actor
            .cast(ServiceMsg::Server(ServerNotice::ResourceUpdated(
                params.uri,
            )));
    }

    async fn on_resource_list_changed(&self, _context: NotificationContext<RoleClient>) {
        let _ = self
            .actor
            .cast(ServiceMsg::Server(ServerNotice::ListChanged("resources")));
    }

    async fn on_prompt_list_changed(&self, _context: NotificationContext<RoleClient>) {
        let _ = self
            .actor
            .cast(ServiceMsg::Server(ServerNotice::ListChanged("prompts")));
    }

    async fn on_logging_message(
        &self,
        params: rmcp::model::LoggingMessageNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        let level = serde_json::to_value(params.level)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_else(|| "info".into());
        let _ = self.actor.cast(ServiceMsg::Server(ServerNotice::Log {
            level,
            logger: params.logger,
            data: params.data,
        }));
    }

    async fn list_roots(
        &self,
        _context: rmcp::service::RequestContext<RoleClient>,
    ) -> Result<rmcp::model::ListRootsResult, rmcp::ErrorData> {
        if !self.roots.is_empty() {
            let roots: Vec<serde_json::Value> = self
                .roots
                .iter()
                .map(|uri| serde_json::json!({"uri": uri}))
                .collect();
            return serde_json::from_value(serde_json::json!({ "roots": roots }))
                .map_err(|e| rmcp::ErrorData::internal_error(e.to_string(), None));
        }
        let id = self.id.clone();
        self.relayed("roots/list", mcpvisor_model::defaults::ROOTS_TIMEOUT, |h| {
            h.list_roots(&id)
        })
        .await
    }

    async fn create_message(
        &self,
        params: rmcp::model::CreateMessageRequestParams,
        _context: rmcp::service::RequestContext<RoleClient>,
    ) -> Result<rmcp::model::CreateMessageResult, rmcp::ErrorData> {
        let id = self.id.clone();
        self.relayed(
            "sampling/createMessage",
            mcpvisor_model::defaults::SERVER_REQUEST_TIMEOUT,
            |h| h.create_message(&id, params),
        )
        .await
    }

    async fn create_elicitation(
        &self,
        request: rmcp::model::ElicitRequestParams,
        _context: rmcp::service::RequestContext<RoleClient>,
    ) -> Result<rmcp::model::ElicitResult, rmcp::ErrorData> {
        let id = self.id.clone();
        self.relayed(
            "elicitation/create",
            mcpvisor_model::defaults::SERVER_REQUEST_TIMEOUT,
            |h| h.create_elicitation(&id, request),
        )
        .await
    }

    fn get_info(&self) -> rmcp::model::ClientConfig {
        let mut info = rmcp::model::ClientConfig::default();
        // Declared only when somebody can answer (DESIGN §14).
        let mut declared = serde_json::Map::new();
        if self.relay.declares() || !self.roots.is_empty() {
            declared.insert("roots".into(), serde_json::json!({}));
        }
        if self.relay.declares() {
            declared.insert("sampling".into(), serde_json::json!({}));
            declared.insert("elicitation".into(), serde_json::json!({}));
        }
        if let Ok(caps) = serde_json::from_value(serde_json::Value::Object(declared)) {
            info.capabilities = caps;
        }
        info.client_info.name = "mcpvisor".into();
        info.client_info.version = env!("CARGO_PKG_VERSION").into();
        // The handshake is `initialize`: propose the newest revision that has one (rmcp's
        // default, 2026-07-28, replaced it with `server/discover`); a server answers with the
        // revision it speaks, older ones included.
        info.protocol_version = rmcp::model::ProtocolVersion::LATEST_WITH_INITIALIZE;
        info
    }
}
