//! What the Store answers: status, info, listings, logs, calls, probes, events, metrics and
//! the configuration. Queries go to the registry (or straight to a service's handle for a
//! call); none waits on a server.

use super::*;
use mcpvisor_service_actor::{CallControl, CallError, ServiceHandle};

impl Store {
    /// Waits until every report sent so far has reached the registry: reports go service →
    /// root → registry, each hop in order, so a round trip through both is a barrier. Used
    /// after waiting on a state so that what the registry answers next agrees with it.
    pub(crate) fn registry(&self) -> Result<ActorRef<RegistryMsg>, StoreError> {
        self.inner.shared.registry()
    }

    /// A service's state.
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), mcpvisor_supervisor::StoreError> {
    /// # use mcpvisor_supervisor::{Store, StoreOptions, Wait};
    /// # use serde_json::json;
    /// # let store = Store::open(StoreOptions::new()).await?;
    /// use mcpvisor_supervisor::model::ServiceState;
    /// store.add_service(json!({"name": "time", "command": "uvx", "disabled": true}), Wait::None).await?;
    /// assert_eq!(store.get_service_status("time").await?, ServiceState::NotStarted);
    /// # store.shutdown().await;
    /// # Ok(()) }
    /// ```
    pub async fn get_service_status(&self, name: &str) -> Result<ServiceState, StoreError> {
        let id = self.id(name)?;
        // The state the root recorded and published (what waits and every query agree on).
        if let Some(rx) = self.inner.shared.observed(&id) {
            return Ok(*rx.borrow());
        }
        match self.inner.shared.handle(&id) {
            Some(h) => Ok(h.state()),
            None => Err(self
                .get_service_info(name)
                .await
                .err()
                .unwrap_or_else(|| StoreError::gone("service vanished"))),
        }
    }

    /// The last `lines` lines the service wrote to stderr (the ring keeps about 64 KiB).
    /// ```no_run
    /// # async fn demo(store: mcpvisor_supervisor::Store) -> Result<(), mcpvisor_supervisor::StoreError> {
    /// for line in store.service_logs("time", 20)? {
    ///     eprintln!("time: {line}");
    /// }
    /// # Ok(()) }
    /// ```
    pub fn service_logs(&self, name: &str, lines: usize) -> Result<Vec<String>, StoreError> {
        let id = self.id(name)?;
        read(&self.inner.shared.stderr)
            .get(&id)
            .map(|r| r.tail(lines))
            .ok_or_else(|| {
                StoreError::Lookup(LookupError::UnknownService {
                    name: name.to_owned(),
                    suggestions: Vec::new(),
                })
            })
    }

    /// Everything about a service: config (secrets redacted), state and reason, tools count,
    /// pid, restarts, last error, stderr tail, metrics.
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), mcpvisor_supervisor::StoreError> {
    /// # use mcpvisor_supervisor::{Store, StoreOptions, Wait};
    /// # use serde_json::json;
    /// # let store = Store::open(StoreOptions::new()).await?;
    /// store
    ///     .add_service(
    ///         json!({"name": "api", "url": "http://127.0.0.1:9/mcp",
    ///                "headers": {"Authorization": "Bearer secret"}, "disabled": true}),
    ///         Wait::None,
    ///     )
    ///     .await?;
    /// let info = store.get_service_info("api").await?;
    /// assert_eq!(info.transport.as_str(), "streamable-http");
    /// assert!(!serde_json::to_string(&info).unwrap().contains("secret"), "secrets are redacted");
    /// # store.shutdown().await;
    /// # Ok(()) }
    /// ```
    pub async fn get_service_info(&self, name: &str) -> Result<ServiceView, StoreError> {
        let scope = self.scope.clone();
        let name = name.to_owned();
        ractor::call!(self.registry()?, |reply| RegistryMsg::Get {
            scope,
            name,
            reply
        })
        .map_err(StoreError::gone)?
        .map_err(StoreError::Lookup)
    }

    /// Every service in this scope.
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), mcpvisor_supervisor::StoreError> {
    /// # use mcpvisor_supervisor::{Store, StoreOptions, Wait};
    /// # use serde_json::json;
    /// # let store = Store::open(StoreOptions::new()).await?;
    /// store.add_service(json!({"name": "time", "command": "uvx", "disabled": true}), Wait::None).await?;
    /// for view in store.list_services().await? {
    ///     println!("{} {} restarts={}", view.name, view.state, view.restarts);
    /// }
    /// # store.shutdown().await;
    /// # Ok(()) }
    /// ```
    pub async fn list_services(&self) -> Result<Vec<ServiceView>, StoreError> {
        let scope = self.scope.clone();
        ractor::call!(self.registry()?, |reply| RegistryMsg::List { scope, reply })
            .map_err(StoreError::gone)
    }

    /// Every tool in this scope, namespaced `service__tool`. Last-known tools of services not
    /// connected yet are included, marked stale.
    /// ```no_run
    /// # async fn demo(store: mcpvisor_supervisor::Store) -> Result<(), mcpvisor_supervisor::StoreError> {
    /// for tool in store.list_tools().await? {
    ///     println!("{}{}", tool.name, if tool.stale { " (stale)" } else { "" });
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn list_tools(&self) -> Result<Vec<ToolEntry>, StoreError> {
        let scope = self.scope.clone();
        ractor::call!(self.registry()?, |reply| RegistryMsg::ListTools {
            scope,
            reply
        })
        .map_err(StoreError::gone)
    }

    /// The tools that best match `query` (what they should do, in a few words), best first,
    /// at most `limit`: ranked by BM25 over each tool's name, its service's, title,
    /// description and parameters ([`crate::ToolSearch`], as the gateway's `search_tools`).
    /// ```no_run
    /// # async fn f(store: mcpvisor_supervisor::Store) -> Result<(), mcpvisor_supervisor::StoreError> {
    /// for t in store.search_tools("read a file", 5).await? {
    ///     println!("{}: {}", t.name, t.tool.description.unwrap_or_default());
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn search_tools(
        &self,
        query: &str,
        limit: usize,
    ) -> Result<Vec<ToolEntry>, StoreError> {
        let tools = self.list_tools().await?;
        let index = mcpvisor_registry_actor::ToolSearch::new(
            tools
                .iter()
                .enumerate()
                .map(|(i, t)| (i, t, t.name.as_str())),
        );
        let mut found = index.search(query, limit);
        // In rank order, each taken once.
        let mut out = Vec::with_capacity(found.len());
        let mut tools: Vec<Option<ToolEntry>> = tools.into_iter().map(Some).collect();
        for i in found.drain(..) {
            if let Some(t) = tools.get_mut(i).and_then(Option::take) {
                out.push(t);
            }
        }
        Ok(out)
    }

    /// Calls a tool by namespaced (`service__tool`) or unique bare name. Runs concurrently
    /// with every other call; fails fast when the service is not up; `timeout` overrides the
    /// service's `timeouts.call` and sends `notifications/cancelled` when it fires.
    /// ```no_run
    /// # async fn demo(store: mcpvisor_supervisor::Store) -> Result<(), mcpvisor_supervisor::StoreError> {
    /// use std::time::Duration;
    /// let args = serde_json::json!({"timezone": "Europe/Paris"});
    /// let out = store
    ///     .call_tool("time__get_current_time", args.as_object().cloned(), Some(Duration::from_secs(5)))
    ///     .await?;
    /// println!("{}", out.result);
    /// # Ok(()) }
    /// ```
    pub async fn call_tool(
        &self,
        name: &str,
        arguments: Option<Map<String, Value>>,
        timeout: Option<Duration>,
    ) -> Result<CallOutcome, StoreError> {
        self.call_tool_with(name, arguments, timeout, &CallControl::default())
            .await
    }

    /// [`call_tool`](Self::call_tool) with a [`CallControl`]: `cancel` abandons the call (the
    /// server is sent `notifications/cancelled`; the call fails with
    /// [`crate::CallError::Cancelled`]) and `progress` receives the server's progress
    /// notifications for it. The gateway relays a client's cancellation and progress this way.
    /// ```no_run
    /// # async fn demo(store: mcpvisor_supervisor::Store) -> Result<(), mcpvisor_supervisor::StoreError> {
    /// use mcpvisor_supervisor::CallControl;
    /// let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    /// let control = CallControl { progress: Some(tx), ..Default::default() };
    /// let printer = tokio::spawn(async move {
    ///     while let Some(p) = rx.recv().await {
    ///         println!("{} of {:?}: {:?}", p.progress, p.total, p.message);
    ///     }
    /// });
    /// store.call_tool_with("build__compile", None, None, &control).await?;
    /// drop(control);
    /// let _ = printer.await;
    /// # Ok(()) }
    /// ```
    pub async fn call_tool_with(
        &self,
        name: &str,
        arguments: Option<Map<String, Value>>,
        timeout: Option<Duration>,
        control: &CallControl,
    ) -> Result<CallOutcome, StoreError> {
        let (handle, tool) = self.tool_target(name).await?;
        Ok(handle
            .call_tool_with(&tool, arguments, timeout, control)
            .await?)
    }

    /// [`call_tool_with`](Self::call_tool_with) for a relay that has the call as JSON (the
    /// gateway): `arguments` go to the server as they came and its result comes back as it
    /// came (without rmcp's typed model on a stdio server's connection).
    pub async fn call_tool_raw(
        &self,
        name: &str,
        arguments: Option<&serde_json::value::RawValue>,
        timeout: Option<Duration>,
        control: &CallControl,
    ) -> Result<Box<serde_json::value::RawValue>, StoreError> {
        let (handle, tool) = self.tool_target(name).await?;
        Ok(handle
            .call_tool_raw(&tool, arguments, timeout, control)
            .await?)
    }

    /// The service a tool `name` of this scope calls, and the server's own name for the tool;
    /// a service calls may start is started (and waited for) first.
    async fn tool_target(&self, name: &str) -> Result<(ServiceHandle, String), StoreError> {
        if !matches!(self.scope, Scope::All) {
            let route = read(&self.inner.shared.routes)
                .get(&(self.agent(), name.to_owned()))
                .cloned();
            if let Some((id, tool)) = route {
                if let Some(handle) = self.inner.shared.handle(&id) {
                    self.wake(&id).await?;
                    return Ok((handle, tool));
                }
            }
        }
        let resolve = || async {
            let scope = self.scope.clone();
            let n = name.to_owned();
            ractor::call!(self.registry()?, |reply| RegistryMsg::ResolveTool {
                scope,
                name: n,
                reply
            })
            .map_err(StoreError::gone)
        };
        let target = match resolve().await? {
            // A lazy service still learning its tools: wait for it like any first call.
            Err(LookupError::ServiceNotUp {
                service,
                state: ServiceState::Starting | ServiceState::NotStarted,
                ..
            }) if self.id(&service).is_ok() => {
                self.wake(&self.id(&service)?).await?;
                resolve().await??
            }
            other => other?,
        };
        self.wake(&target.service).await?;
        let handle = self
            .inner
            .shared
            .handle(&target.service)
            .ok_or_else(|| StoreError::gone("service removed during the call"))?;
        Ok((handle, target.tool))
    }

    /// A call to a service calls may start (`start: lazy`, or stopped after `idle_stop`):
    /// starts it — once, however many calls ask at the same time — and waits until it is up,
    /// within its `timeouts.connect` (plus its parked dependencies'). Any other service is
    /// left as it is: a call to it fails fast when it is not up.
    pub(super) async fn wake(&self, id: &ServiceId) -> Result<(), StoreError> {
        let Some(rx) = self.inner.shared.observed(id) else {
            return Ok(());
        };
        let now = *rx.borrow();
        if !matches!(
            now,
            ServiceState::Idle
                | ServiceState::Starting
                | ServiceState::Stopping
                | ServiceState::NotStarted
        ) {
            return Ok(());
        }
        let asked = id.clone();
        let Some(limit) = ractor::call!(self.inner.root, |reply| RootMsg::Demand {
            id: asked,
            reply
        })
        .map_err(StoreError::gone)?
        else {
            return Ok(());
        };
        let settled = wait_observed(rx, limit, |s| {
            s.is_up()
                || matches!(
                    s,
                    ServiceState::Reconnecting
                        | ServiceState::Unreachable
                        | ServiceState::Failed
                        | ServiceState::Stopped
                )
        })
        .await;
        match settled {
            Ok(()) => Ok(()),
            Err(state) => Err(StoreError::Call(CallError::NotUp {
                service: id.to_string(),
                state,
                reason: format!(
                    "started for this call, not up within {} (timeouts.connect)",
                    humantime::format_duration(limit)
                ),
            })),
        }
    }

    /// Probes every service of this scope now; not-connected services answer `ok: false`.
    /// ```no_run
    /// # async fn demo(store: mcpvisor_supervisor::Store) -> Result<(), mcpvisor_supervisor::StoreError> {
    /// for (name, probe) in store.check_services().await? {
    ///     println!("{name}: {probe:?}");
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn check_services(&self) -> Result<Vec<(String, ProbeOutcome)>, StoreError> {
        let actors = ractor::call!(self.inner.root, |reply| RootMsg::Actors { reply })
            .map_err(StoreError::gone)?;
        let probes = actors
            .into_iter()
            .filter(|(id, _)| self.scope.contains(id))
            .map(|(id, a)| async move {
                let out = ractor::call_t!(
                    a,
                    ServiceMsg::Check,
                    ms(mcpvisor_model::defaults::CHECK_WAIT)
                )
                .map_err(StoreError::gone);
                (self.scope.name_of(&id), out)
            });
        let mut out = Vec::new();
        for (name, r) in futures_join_all(probes).await {
            out.push((name, r?));
        }
        Ok(out)
    }

    /// Every event from now on: transitions, tool changes, config changes, persistence errors.
    /// A subscription survives any internal actor's respawn; a slow subscriber loses the oldest events and is told how many.
    /// ```no_run
    /// # async fn demo(store: mcpvisor_supervisor::Store) -> Result<(), mcpvisor_supervisor::StoreError> {
    /// let mut events = store.subscribe().await?;
    /// while let Some(event) = events.next().await {
    ///     println!("{event:?}");
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn subscribe(&self) -> Result<EventStream, StoreError> {
        Ok(EventStream::from(self.inner.shared.events.subscribe()))
    }

    /// Per-service metrics: availability, probe and call latency percentiles, calls, errors,
    /// restarts, transitions.
    /// ```no_run
    /// # async fn demo(store: mcpvisor_supervisor::Store) -> Result<(), mcpvisor_supervisor::StoreError> {
    /// for (name, m) in store.metrics().await? {
    ///     println!("{name}: {} calls, {} errors", m.calls, m.call_errors);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn metrics(&self) -> Result<Vec<(String, MetricsSnapshot)>, StoreError> {
        Ok(self
            .list_services()
            .await?
            .into_iter()
            .map(|v| (v.name, v.metrics))
            .collect())
    }

    /// The current configuration (as it would be written to the config file).
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), mcpvisor_supervisor::StoreError> {
    /// # use mcpvisor_supervisor::{Store, StoreOptions, Wait};
    /// # use serde_json::json;
    /// # let store = Store::open(StoreOptions::new()).await?;
    /// store.add_service(json!({"name": "time", "command": "uvx", "disabled": true}), Wait::None).await?;
    /// let config = store.config().await?;
    /// assert!(config.services.keys().any(|n| n.as_str() == "time"));
    /// # store.shutdown().await;
    /// # Ok(()) }
    /// ```
    pub async fn config(&self) -> Result<ServicesConfig, StoreError> {
        ractor::call!(self.inner.root, |reply| RootMsg::Config { reply }).map_err(StoreError::gone)
    }
}
