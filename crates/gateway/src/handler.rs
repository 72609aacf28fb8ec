//! One client session: the MCP server a client talks to. `tools/list` is the endpoint's view;
//! `tools/call` goes through the Store to the service that offers the tool, holding for a
//! service that is coming back, never retrying a call whose server died under it.

use std::sync::Arc;

use mcpvisor_model::ServiceState;
use mcpvisor_supervisor::{CallError, CallProgress, StoreError};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, CompleteRequestParams, CompleteResult,
    ContentBlock, ErrorCode, GetPromptRequestParams, GetPromptResponse, Implementation,
    ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult, ListToolsResult,
    PaginatedRequestParams, ReadResourceRequestParams, ReadResourceResponse, ResourceContents,
    ServerConfig, SubscribeRequestParams, UnsubscribeRequestParams,
};
use rmcp::service::{NotificationContext, RequestContext, RoleServer};
use rmcp::{ErrorData as McpError, ServerHandler};
use tokio::sync::Semaphore;

use crate::core::{coming_back, tool_of, Core, Endpoint, Routed};
use crate::era::{name_resource, Complete};

/// The gateway as one client session sees it.
#[derive(Clone)]
pub struct Session {
    pub(crate) core: Arc<Core>,
    pub(crate) endpoint: Endpoint,
    /// Calls in flight in this session (bounded: DESIGN §13).
    pub(crate) in_flight: Arc<Semaphore>,
    /// The lowest log severity this client wants (`logging/setLevel`).
    pub(crate) log_level: Arc<std::sync::atomic::AtomicU8>,
    /// A byte-stream session's relay of calls as JSON (`crate::fast`), told when the client
    /// is initialized.
    pub(crate) relay: Option<Arc<crate::fast::Relay>>,
    /// An HTTP session's calls answered without rmcp's session machinery
    /// (`crate::fast_http`), told when the client is initialized.
    pub(crate) http_calls: Option<Arc<crate::fast_http::HttpCalls>>,
    /// Under `tools: "dynamic"`, the tools this session's searches found (listed to it).
    pub(crate) found: Arc<std::sync::Mutex<std::collections::BTreeSet<String>>>,
}

impl Session {
    pub(crate) fn new(core: Arc<Core>, endpoint: Endpoint) -> Session {
        Session {
            core,
            endpoint,
            in_flight: Arc::new(Semaphore::new(crate::MAX_CALLS_IN_FLIGHT)),
            log_level: Arc::default(),
            relay: None,
            http_calls: None,
            found: Arc::default(),
        }
    }
}

pub(crate) fn tool_error(text: String) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(text)])
}

/// What a client is answered for a call that failed: a tool error naming the service, or the
/// server's own JSON-RPC error.
pub(crate) fn call_failure(service: &str, e: StoreError) -> Result<CallToolResult, McpError> {
    match e {
        StoreError::Call(CallError::Rejected { code, message, .. }) => {
            Err(McpError::new(ErrorCode(code), message, None))
        }
        StoreError::Call(CallError::Transport { message, .. }) => Ok(tool_error(format!(
            "service '{service}' lost its server during the call ({message}); the call was \
             not retried (it may or may not have taken effect)"
        ))),
        StoreError::Call(CallError::Cancelled { .. }) => Err(cancelled()),
        e => Ok(tool_error(e.to_string())),
    }
}

fn internal(e: StoreError) -> McpError {
    McpError::internal_error(e.to_string(), None)
}

impl Session {
    /// The tool `name` names: from the cached view, else a fresh one; a name of a service that
    /// is still starting waits for it (its tools are not listed yet).
    async fn resolve(
        &self,
        store: &mcpvisor_supervisor::Store,
        name: &str,
        context: &RequestContext<RoleServer>,
    ) -> Result<Option<Routed>, McpError> {
        let cached = self
            .core
            .cached_view(&self.endpoint)
            .await
            .map_err(internal)?;
        if let Some(o) = cached.find(name) {
            return Ok(Some(Routed::from(o)));
        }
        let fresh = self.core.view(&self.endpoint).await.map_err(internal)?;
        if let Some(o) = fresh.find(name) {
            return Ok(Some(Routed::from(o)));
        }
        let Some(service) = self.starting_owner(store, name).await else {
            return Ok(None);
        };
        let names = [service.as_str()];
        tokio::select! {
            _ = store.wait_for(&names, ServiceState::Healthy, self.core.hold()) => {}
            _ = context.ct.cancelled() => return Err(cancelled()),
        }
        let view = self.core.view(&self.endpoint).await.map_err(internal)?;
        Ok(view.find(name).map(Routed::from))
    }

    /// The service a not-yet-listed tool name (`service__tool`) belongs to, if that service is
    /// starting or coming back.
    async fn starting_owner(
        &self,
        store: &mcpvisor_supervisor::Store,
        name: &str,
    ) -> Option<String> {
        let separator = &self.core.naming.separator;
        let services = store.list_services().await.ok()?;
        services
            .into_iter()
            .filter(|s| coming_back(s.state))
            .map(|s| s.name)
            .filter(|s| {
                name.strip_prefix(s.as_str())
                    .is_some_and(|rest| rest.starts_with(separator.as_str()))
            })
            .max_by_key(String::len)
    }
}

impl Session {
    /// The endpoint's Store and where a subscription to `uri` goes.
    pub(crate) async fn subscription_target(
        &self,
        uri: &str,
    ) -> Result<
        (
            mcpvisor_supervisor::Store,
            mcpvisor_model::ServiceId,
            String,
        ),
        McpError,
    > {
        let store = self.core.scoped(&self.endpoint).map_err(internal)?;
        let (service, original) = store
            .subscription_target(uri)
            .await
            .map_err(surface_error)?;
        Ok((store, service, original))
    }
}

impl Session {
    /// `tools: "dynamic"`: the tools a search answered join this session's list; when any is
    /// new, the client is told (`list_changed`, after the answer).
    fn list_found(&self, answer: &CallToolResult, context: &RequestContext<RoleServer>) {
        let names: Vec<String> = answer
            .structured_content
            .as_ref()
            .and_then(|v| v["tools"].as_array())
            .map(|tools| {
                tools
                    .iter()
                    .filter_map(|t| t["name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let added = {
            let mut found = self.found.lock().unwrap_or_else(|p| p.into_inner());
            let mut added = false;
            for n in names {
                added |= found.insert(n);
            }
            added
        };
        if added {
            let peer = context.peer.clone();
            tokio::spawn(async move {
                tokio::task::yield_now().await;
                let _ = peer.notify_tool_list_changed().await;
            });
        }
    }
}

impl ServerHandler for Session {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(crate::surface::capabilities(&self.core))
            .with_server_info(Implementation::new("mcpvisor", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "mcpvisor: a supervised fleet of MCP servers as one. Tools and prompts are named \
             service__name; resource URIs are the servers' own, or mcpvisor://service/URI where \
             two services offer the same one.",
            )
    }

    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        {
            let mut clients = self.core.clients.lock().unwrap_or_else(|p| p.into_inner());
            clients.retain(|(_, peer, _)| !peer.is_transport_closed());
            clients.push((
                self.endpoint.clone(),
                context.peer.clone(),
                self.log_level.clone(),
            ));
        }
    }

    async fn initialize(
        &self,
        request: rmcp::model::InitializeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::InitializeResult, McpError> {
        context.peer.set_peer_info(request.clone());
        let result = self.negotiate_initialize(&request)?;
        // Before the answer goes out (no request of the client's can come before it): calls
        // are relayed from the first, against the endpoint's view cached now.
        if let Some(relay) = &self.relay {
            let _ = self.core.cached_view(&self.endpoint).await;
            relay.initialized(context.peer, &result.protocol_version);
        } else if let (Some(calls), Some(key)) = (
            &self.http_calls,
            context.extensions.get::<crate::fast_http::SessionKey>(),
        ) {
            let _ = self.core.cached_view(&self.endpoint).await;
            calls.initialized(
                key.0.clone(),
                context.peer,
                self.in_flight.clone(),
                &result.protocol_version,
            );
        }
        Ok(result)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        self.core.started().await;
        let view = self.core.view(&self.endpoint).await.map_err(internal)?;
        self.core.remember(&self.endpoint, &view);
        let mut tools = if view.searched() {
            crate::search::meta_tools()
        } else {
            Vec::new()
        };
        tools.extend(view.listed(self.core.config.down_tools).filter_map(tool_of));
        // `tools: "dynamic"`: what this session's searches found, while the view has it.
        if view.searched() && self.core.dynamic(&self.endpoint) {
            let found = self.found.lock().unwrap_or_else(|p| p.into_inner()).clone();
            let listed: std::collections::BTreeSet<String> =
                tools.iter().map(|t| t.name.to_string()).collect();
            tools.extend(
                found
                    .iter()
                    .filter(|n| !listed.contains(*n))
                    .filter_map(|n| view.find(n))
                    .filter_map(tool_of),
            );
        }
        let mut result = ListToolsResult::with_all_items(tools);
        // `max_tools` cut the list: the client is told, and how to reach every tool.
        if let Some((listed, of)) = view.cut(self.core.config.down_tools) {
            let mut meta = serde_json::Map::new();
            meta.insert(
                "io.mcpvisor/cut".into(),
                serde_json::json!({
                    "listed": listed, "of": of,
                    "why": format!(
                        "gateway.endpoints.{}.max_tools is {listed}: {} more tools are callable \
                         by name; tools: \"search\" finds every one",
                        self.endpoint.key(), of - listed
                    ),
                }),
            );
            result.meta = Some(rmcp::model::MetaObject(meta));
        }
        Ok(result)
    }

    async fn call_tool(
        &self,
        mut request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        // `tools: "search"`: the meta-tools are the gateway's own; `call_tool` becomes the call
        // of the tool it names, on the same path as any call.
        let view = self
            .core
            .cached_view(&self.endpoint)
            .await
            .map_err(internal)?;
        if view.searched() {
            match request.name.as_ref() {
                crate::search::SEARCH_TOOL => {
                    // Indexing a large view takes milliseconds: off the runtime's workers.
                    let down = self.core.config.down_tools;
                    let arguments = request.arguments.clone();
                    let found = tokio::task::spawn_blocking(move || {
                        let index = view.search_index(down);
                        crate::search::answer(&view.all, &index, arguments.as_ref())
                    })
                    .await
                    .map_err(|e| McpError::internal_error(e.to_string(), None))?;
                    if self.core.dynamic(&self.endpoint) {
                        self.list_found(&found, &context);
                    }
                    return Ok(found.into());
                }
                crate::search::CALL_TOOL => {
                    request = crate::search::unwrap_call(request)
                        .map_err(|why| McpError::invalid_params(why, None))?;
                }
                _ => {}
            }
        }
        // A 2026-07-28 client's retry of a call its server asked something during
        // (`crate::bridge`): the answers go to the server, the same call goes on.
        if let Some(state) = &request.request_state {
            let responses = request.input_responses.clone().unwrap_or_default();
            let running = self.core.bridges.resume(state, &request.name, &responses)?;
            let (service, tool) = running.named();
            let round = self.core.bridges.round(running, &context.ct).await;
            return rounded(round, &service, &tool);
        }
        let stateless = crate::era::stateless(context.protocol_version().as_ref());
        let Ok(_slot) = self.in_flight.clone().try_acquire_owned() else {
            return Err(McpError::new(
                ErrorCode::INTERNAL_ERROR,
                format!(
                    "too many calls in flight in this session (at most {})",
                    crate::MAX_CALLS_IN_FLIGHT
                ),
                None,
            ));
        };
        let name = request.name.as_ref();
        let store = self.core.scoped(&self.endpoint).map_err(internal)?;
        let Some(routed) = self.resolve(&store, name, &context).await? else {
            return Err(McpError::invalid_params(
                format!("unknown tool '{name}' at {}", self.endpoint),
                None,
            ));
        };
        let service = routed.service.name.to_string();
        // The cached view says up: call at once (a service that went down meanwhile answers
        // NotUp without the call being made, and is waited for). Else ask the Store.
        if !routed.up {
            let state = store.get_service_status(&service).await.map_err(internal)?;
            if let Some(refusal) = hold(&self.core, &store, &service, state, &context.ct).await? {
                return Ok(refusal.into());
            }
        }
        // The client's `notifications/cancelled` fires `context.ct`: the server is told too.
        // The server's progress goes to the client under the client's own token, if it gave one.
        let (progress, relay) = match context.meta.get_progress_token() {
            Some(token) => {
                let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
                let relay = tokio::spawn(relay_progress(rx, token, context.peer.clone()));
                (Some(tx), Some(relay))
            }
            None => (None, None),
        };
        let arguments = request
            .arguments
            .as_ref()
            .map(serde_json::value::to_raw_value)
            .transpose()
            .map_err(|e| McpError::invalid_params(e.to_string(), None))?;
        let mut call = crate::fast::Call {
            serial: 0,
            id: serde_json::value::to_raw_value(&context.id)
                .map_err(|e| McpError::internal_error(e.to_string(), None))?,
            routed,
            arguments,
            token: None,
            cancel: context.ct.clone(),
            _slot,
        };
        if stateless {
            // No session to ask the client on: what the server asks meanwhile becomes an
            // input-required result, and the call outlives this request (`crate::bridge`).
            let capabilities = context.client_capabilities().unwrap_or_default();
            let cancel = tokio_util::sync::CancellationToken::new();
            call.cancel = cancel.clone();
            let (core, endpoint) = (self.core.clone(), self.endpoint.clone());
            let tool = call.routed.name.clone();
            let named = (service.as_str(), tool.as_str());
            let running =
                crate::bridge::Running::start(named, capabilities, cancel, |asker| async move {
                    let caller = crate::relay::Caller::Bridge(asker);
                    let answered =
                        crate::fast::answer(&core, &endpoint, &call, caller, progress).await;
                    if let Some(relay) = relay {
                        let _ = relay.await;
                    }
                    answered
                });
            let round = self.core.bridges.round(running, &context.ct).await;
            return rounded(round, &service, name);
        }
        // The same call as a relayed one (a service not up is held for), its result read into
        // rmcp's type here.
        let answered = crate::fast::answer(
            &self.core,
            &self.endpoint,
            &call,
            crate::relay::Caller::session(context.peer.clone(), &self.in_flight),
            progress,
        )
        .await;
        if let Some(relay) = relay {
            // Every progress notification goes out before the result.
            let _ = relay.await;
        }
        response(answered, &service, &call.routed.name)
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        self.core.started().await;
        let store = self.core.scoped(&self.endpoint).map_err(internal)?;
        let list = store.list_resources().await.map_err(internal)?;
        Ok(ListResourcesResult::with_all_items(
            list.into_iter().map(|r| r.resource).collect(),
        ))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        self.core.started().await;
        let store = self.core.scoped(&self.endpoint).map_err(internal)?;
        let list = store.list_resource_templates().await.map_err(internal)?;
        Ok(ListResourceTemplatesResult::with_all_items(
            list.into_iter().map(|t| t.template).collect(),
        ))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        let store = self.core.scoped(&self.endpoint).map_err(internal)?;
        match store.read_resource(&request.uri).await {
            Ok(mut read) => {
                // Contents carry the server's URIs: under a namespaced read they are given back
                // namespaced the same way (the one asked for exactly as asked).
                if request.uri.starts_with(mcpvisor_supervisor::NAMESPACED_URI) {
                    if let Ok((_, original)) = store.resource_target(&request.uri).await {
                        let prefix = request
                            .uri
                            .strip_suffix(original.as_str())
                            .unwrap_or(mcpvisor_supervisor::NAMESPACED_URI)
                            .to_owned();
                        for c in &mut read.contents {
                            match c {
                                ResourceContents::TextResourceContents { uri, .. }
                                | ResourceContents::BlobResourceContents { uri, .. } => {
                                    *uri = format!("{prefix}{uri}");
                                }
                                #[allow(unreachable_patterns)]
                                _ => {}
                            }
                        }
                    }
                }
                Ok(read.completed().into())
            }
            Err(e) => Err(name_resource(surface_error(e), &request.uri)),
        }
    }

    // Resource subscriptions are how clients of protocol 2025-11-25 and older follow a
    // resource; `listen` replaces them from 2026-07-28.
    #[allow(deprecated)]
    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        let (store, service, original) = self.subscription_target(&request.uri).await?;
        store
            .subscribe_resource(&request.uri)
            .await
            .map_err(surface_error)?;
        let mut subs = self
            .core
            .subscribers
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        subs.push(crate::surface::Subscriber {
            session: self.log_level.clone(),
            service,
            original,
            exposed: request.uri,
            peer: context.peer,
        });
        Ok(())
    }

    // 2026-07-28 clients follow lists and resources on one stream (`crate::listen`).
    fn accepted_subscription_filter(
        &self,
        requested: &rmcp::model::SubscriptionFilter,
    ) -> Option<rmcp::model::SubscriptionFilter> {
        Some(requested.clone())
    }

    async fn listen(&self, context: rmcp::service::SubscriptionContext) -> Result<(), McpError> {
        crate::listen::listen(self, context).await;
        Ok(())
    }

    #[allow(deprecated)]
    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        let (store, service, original) = self.subscription_target(&request.uri).await?;
        let others = {
            let mut subs = self
                .core
                .subscribers
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            // This client's subscription goes (matched by its session's transport).
            let mine = subs
                .iter()
                .position(|s| s.exposed == request.uri && Arc::ptr_eq(&s.session, &self.log_level));
            if let Some(i) = mine {
                subs.remove(i);
            }
            drop(subs);
            crate::listen::followed(&self.core, &service, &original)
        };
        // The server's subscription ends with the last client's.
        if !others {
            store
                .unsubscribe_resource(&request.uri)
                .await
                .map_err(surface_error)?;
        }
        Ok(())
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, McpError> {
        self.core.started().await;
        let store = self.core.scoped(&self.endpoint).map_err(internal)?;
        let list = store.list_prompts().await.map_err(internal)?;
        // Prompt names follow the tools' rules (charset, budget, collisions; DESIGN §13).
        let offers: Vec<crate::names::Offer> = list
            .iter()
            .map(|p| crate::names::Offer {
                service: p.service.clone(),
                tool: p.original.clone(),
            })
            .collect();
        let exposed = crate::names::expose(&self.core.naming, &offers);
        let mut names = self
            .core
            .prompt_names
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        names.retain(|(e, _), _| *e != self.endpoint);
        let mut prompts = Vec::with_capacity(list.len());
        for (entry, name) in list.into_iter().zip(exposed) {
            let mut prompt = entry.prompt;
            names.insert((self.endpoint.clone(), name.clone()), prompt.name.clone());
            prompt.name = name;
            prompts.push(prompt);
        }
        prompts.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(ListPromptsResult::with_all_items(prompts))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, McpError> {
        let store = self.core.scoped(&self.endpoint).map_err(internal)?;
        let name = self.core.prompt_name(&self.endpoint, &request.name);
        store
            .get_prompt(&name, request.arguments)
            .await
            .map(|p| p.completed().into())
            .map_err(surface_error)
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, McpError> {
        let store = self.core.scoped(&self.endpoint).map_err(internal)?;
        let mut request = request;
        if let rmcp::model::Reference::Prompt(p) = &mut request.r#ref {
            p.name = self.core.prompt_name(&self.endpoint, &p.name);
        }
        store
            .complete(request)
            .await
            .map(Complete::completed)
            .map_err(surface_error)
    }

    // Logging is deprecated from protocol 2026-07-28 (SEP-2577); clients of earlier revisions
    // still set their level.
    #[allow(deprecated)]
    async fn set_level(
        &self,
        request: rmcp::model::SetLevelRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        let level = serde_json::to_value(request.level)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        self.log_level.store(
            mcpvisor_model::log_severity(&level),
            std::sync::atomic::Ordering::Relaxed,
        );
        Ok(())
    }
}

/// A Store error of the surface beyond tools as a JSON-RPC error: unknown names and URIs are
/// the client's (invalid params), a server's own refusal keeps its code, the rest is internal.
fn surface_error(e: StoreError) -> McpError {
    match e {
        StoreError::UnknownResource { .. } => {
            McpError::new(ErrorCode::RESOURCE_NOT_FOUND, e.to_string(), None)
        }
        StoreError::UnknownPrompt { .. } | StoreError::Lookup(_) => {
            McpError::invalid_params(e.to_string(), None)
        }
        StoreError::Call(CallError::Rejected { code, .. }) => {
            McpError::new(ErrorCode(code), e.to_string(), None)
        }
        other => McpError::internal_error(other.to_string(), None),
    }
}

/// A call's answer as the client's result: the server's result read into rmcp's type (with
/// `resultType`), or the failure.
fn response(
    answered: Result<crate::fast::Answer, McpError>,
    service: &str,
    tool: &str,
) -> Result<CallToolResponse, McpError> {
    let service = service.to_owned();
    match answered? {
        crate::fast::Answer::Typed(result) => Ok(result.completed().into()),
        crate::fast::Answer::Raw(raw) => match serde_json::from_str::<CallToolResult>(raw.get()) {
            Ok(result) => Ok(result.completed().into()),
            Err(e) => {
                let e = StoreError::Call(CallError::Transport {
                    service: service.clone(),
                    tool: tool.to_owned(),
                    message: format!("the server's answer is not a tool result: {e}"),
                });
                call_failure(&service, e).map(Into::into)
            }
        },
    }
}

/// A bridged call's round as the client's result.
fn rounded(
    round: Result<crate::bridge::Round, McpError>,
    service: &str,
    tool: &str,
) -> Result<CallToolResponse, McpError> {
    match round? {
        crate::bridge::Round::Done(answer) => response(Ok(answer), service, tool),
        crate::bridge::Round::Input(input) => Ok(CallToolResponse::InputRequired(input)),
    }
}

/// For a service in `state` (not up): `None` once it is back within `gateway.hold`, else
/// the tool error to answer (the call was not made).
pub(crate) async fn hold(
    core: &Core,
    store: &mcpvisor_supervisor::Store,
    service: &str,
    state: ServiceState,
    cancel: &tokio_util::sync::CancellationToken,
) -> Result<Option<CallToolResult>, McpError> {
    if state.is_up() {
        return Ok(None);
    }
    if !coming_back(state) {
        return Ok(Some(tool_error(format!(
            "service '{service}' is {state}: the call was not made"
        ))));
    }
    let hold = core.hold();
    let waited = tokio::select! {
        w = store.wait_callable(service, hold) => w,
        _ = cancel.cancelled() => return Err(cancelled()),
    };
    if waited.is_ok() {
        return Ok(None);
    }
    let now = store.get_service_status(service).await.unwrap_or(state);
    Ok(Some(tool_error(format!(
        "service '{service}' is {now}: not back within {} (gateway.hold); the call was not \
         made",
        humantime_secs(hold)
    ))))
}

pub(crate) fn cancelled() -> McpError {
    McpError::new(ErrorCode::INTERNAL_ERROR, "cancelled by the client", None)
}

fn humantime_secs(d: std::time::Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// Sends the server's progress to the client, as `notifications/progress` with its token.
async fn relay_progress(
    mut updates: tokio::sync::mpsc::UnboundedReceiver<CallProgress>,
    token: rmcp::model::ProgressToken,
    peer: rmcp::service::Peer<RoleServer>,
) {
    while let Some(p) = updates.recv().await {
        let mut param = rmcp::model::ProgressNotificationParam::new(token.clone(), p.progress);
        param.total = p.total;
        param.message = p.message;
        if peer.notify_progress(param).await.is_err() {
            return;
        }
    }
}
