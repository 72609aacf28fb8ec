//! [`Store`]: the embedding surface. A cloneable handle to a running supervision tree.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use mcpvisor_model::{
    split_services, AgentId, ConfigError, ConfigErrors, MetricsSnapshot, ServiceId, ServiceName,
    ServiceState, ServicesConfig,
};
use mcpvisor_persistence_actor::{
    load_config_known, load_state, KnownCell, LoadError, PersistenceMsg,
};
use mcpvisor_registry_actor::{
    EventStream, LookupError, RegistryMsg, Scope, ServiceView, ToolEntry,
};
use mcpvisor_service_actor::{CallOutcome, ProbeOutcome, ServiceMsg};
use ractor::{Actor, ActorRef};
use serde_json::{Map, Value};

use crate::error::StoreError;
pub use crate::options::{Progress, ServiceInput, StoreOptions, Wait};
use waits::{settled_after_add, wait_observed};

mod queries;
mod surface;
mod waits;
use crate::owner;
use crate::reaper;
use crate::root::{lock, read, AddReport, RootActor, RootArgs, RootMsg, Shared};
pub use surface::{PromptEntry, ResourceEntry, TemplateEntry, NAMESPACED_URI};

struct Inner {
    root: ActorRef<RootMsg>,
    shared: Arc<Shared>,
    closed: Mutex<bool>,
    /// The claim on the state dir, released once shut down (or dropped).
    claim: Mutex<Option<owner::OwnerClaim>>,
    /// Offered resource URI (per agent scope) → its service and the server's own URI, from
    /// the last listing.
    resource_routes: Mutex<ResourceRoutes>,
    /// The tool separator (also between a service and its prompts).
    separator: String,
}

type ResourceRoutes = std::collections::HashMap<(Option<AgentId>, String), (ServiceId, String)>;

impl Drop for Inner {
    fn drop(&mut self) {
        let closed = *lock(&self.closed);
        if !closed {
            // No shutdown(): kill every child process group now, synchronously.
            let pgids = lock(&self.shared.pgids);
            for pgid in pgids.keys() {
                reaper::kill_group_now(*pgid);
            }
            self.root.stop(Some("store dropped".into()));
        }
    }
}

/// A handle to a running supervision tree: register, control and call MCP servers.
///
/// ```no_run
/// # async fn demo() -> Result<(), mcpvisor_supervisor::StoreError> {
/// use mcpvisor_supervisor::{Store, StoreOptions, Wait};
/// use serde_json::json;
/// let store = Store::open(StoreOptions::new()).await?;
/// store
///     .add_service(json!({"name": "time", "command": "uvx", "args": ["mcp-server-time"]}), Wait::Auto)
///     .await?;
/// for tool in store.list_tools().await? {
///     println!("{}", tool.name);
/// }
/// store.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
    scope: Scope,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("scope", &self.scope).finish()
    }
}

impl Store {
    /// Loads the config (if any), reaps process groups a killed previous run left behind
    /// (only those provably still that run's: same boot, same pid and start time), spawns the tree and
    /// starts services in dependency order. Returns once every service is registered.
    /// ```no_run
    /// # async fn demo() -> Result<(), mcpvisor_supervisor::StoreError> {
    /// use mcpvisor_supervisor::{Store, StoreOptions};
    /// let store = Store::open(
    ///     StoreOptions::new().config_file("mcp.json").state_dir("/tmp/mcpvisor-state"),
    /// )
    /// .await?;
    /// println!("{} services", store.list_services().await?.len());
    /// store.shutdown().await;
    /// # Ok(()) }
    /// ```
    pub async fn open(options: StoreOptions) -> Result<Store, StoreError> {
        mcpvisor_service_actor::install_default_tls_provider();
        let mut config = options.config.clone().unwrap_or_default();
        // What the file held as loaded: the persistence actor merges later runtime changes
        // into any edit made by hand after this point.
        let known_config: KnownCell = Default::default();
        if let Some(path) = &options.config_path {
            match load_config_known(path, &*options.env) {
                Ok((c, known)) => {
                    config = c;
                    *known_config
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = known;
                }
                Err(LoadError::NotFound { .. }) => {}
                Err(LoadError::Config { errors, .. }) => return Err(StoreError::Config(errors)),
                Err(e) => {
                    return Err(StoreError::Load {
                        path: path.display().to_string(),
                        message: e.to_string(),
                    })
                }
            }
        }
        // Three pipes per stdio server: a desktop's default soft limit stops near 300.
        if let Some((limit, _)) = crate::limits::raise_fd_limit() {
            if let Some(warning) = crate::limits::check(&config, limit) {
                tracing::warn!("{warning}");
            }
        }
        let mut stale_tools = Vec::new();
        let mut old_process_owners: Vec<String> = Vec::new();
        // One owner per state dir: a second one is refused before anything is reaped.
        let claim = match &options.state_dir {
            Some(dir) => Some(owner::claim(dir)?),
            None => None,
        };
        if let Some(claim) = &claim {
            // Servers a killed owner spawned but never recorded carry the dir's mark.
            let marked = owner::reap_marked(&claim.mark);
            if marked > 0 {
                tracing::warn!(marked, "killed unrecorded servers left by a previous run");
            }
        }
        if let Some(dir) = &options.state_dir {
            let (snapshot, problem) = load_state(dir);
            if let Some(p) = problem {
                tracing::warn!("state file ignored: {p}");
            }
            let reaped = reaper::reap(&snapshot.processes);
            old_process_owners = snapshot
                .processes
                .iter()
                .map(|r| r.service.clone())
                .collect();
            if reaped > 0 {
                tracing::warn!(reaped, "killed process groups left by a previous run");
            }
            for (name, snap) in snapshot.services {
                if let Some(id) = parse_id(&name) {
                    stale_tools.push((id, snap.tools));
                }
            }
        }
        let shared = Arc::new(Shared {
            handles: Default::default(),
            stderr: Default::default(),
            pgids: Default::default(),
            registry: Default::default(),
            persistence: Default::default(),
            routes: Default::default(),
            events: tokio::sync::broadcast::channel(mcpvisor_model::defaults::EVENT_BUFFER).0,
            observed: Default::default(),
            relay: {
                let relay = mcpvisor_service_actor::relay::Relay::new(
                    options.relay_server_requests || options.server_requests.is_some(),
                );
                relay.set_handler(options.server_requests.clone());
                relay
            },
        });
        // Subscribed before anything starts: no event an alert rule watches is missed.
        let alerts = (!config.alerts.rules.is_empty()).then(|| {
            (
                crate::alerts::AlertBook::new(config.alerts.rules.clone()),
                shared.events.subscribe(),
            )
        });
        let separator = config.supervisor.tool_separator.clone();
        let args = RootArgs {
            config,
            config_path: options.config_path.clone(),
            state_dir: options.state_dir.clone(),
            env: options.env.clone(),
            shared: shared.clone(),
            autostart: options.autostart,
            stale_tools,
            // The previous run's records were reaped: the root forgets them before anything
            // starts (this run records its own).
            reaped_owners: old_process_owners,
            known_config,
            owner_mark: claim.as_ref().map(|c| c.mark.clone()),
            token_dir: options
                .token_dir
                .clone()
                .or_else(|| options.state_dir.as_ref().map(|d| d.join("oauth"))),
        };
        let (root, _) = Actor::spawn(None, RootActor, args)
            .await
            .map_err(StoreError::gone)?;
        if let Some((book, events)) = alerts {
            tokio::spawn(crate::alerts::run(book, events, Arc::downgrade(&shared)));
        }
        Ok(Store {
            inner: Arc::new(Inner {
                root,
                shared,
                closed: Mutex::new(false),
                claim: Mutex::new(claim),
                resource_routes: Mutex::default(),
                separator,
            }),
            scope: Scope::Store,
        })
    }

    /// The same store seen by agent `agent`: it sees and manages only its own services, by
    /// their local names.
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), mcpvisor_supervisor::StoreError> {
    /// # use mcpvisor_supervisor::{Store, StoreOptions, Wait};
    /// # use serde_json::json;
    /// # let store = Store::open(StoreOptions::new()).await?;
    /// let alice = store.for_agent("alice")?;
    /// alice
    ///     .add_service(json!({"name": "notes", "command": "notes-mcp", "disabled": true}), Wait::None)
    ///     .await?;
    /// // Alice sees her `notes`; the store scope does not.
    /// assert_eq!(alice.list_services().await?[0].name, "notes");
    /// assert!(store.list_services().await?.is_empty());
    /// # store.shutdown().await;
    /// # Ok(()) }
    /// ```
    pub fn for_agent(&self, agent: &str) -> Result<Store, StoreError> {
        let id = AgentId::parse(agent).map_err(|e| {
            StoreError::Config(ConfigErrors(vec![ConfigError::InvalidName {
                service: format!("agents.{agent}"),
                reason: e.to_string(),
            }]))
        })?;
        Ok(Store {
            inner: self.inner.clone(),
            scope: Scope::Agent(id),
        })
    }

    /// The store seen across every scope (services named `name` or `agent/name`), as status
    /// listings show it.
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), mcpvisor_supervisor::StoreError> {
    /// # use mcpvisor_supervisor::{Store, StoreOptions, Wait};
    /// # use serde_json::json;
    /// # let store = Store::open(StoreOptions::new()).await?;
    /// let off = json!({"name": "notes", "command": "notes-mcp", "disabled": true});
    /// store.add_service(off.clone(), Wait::None).await?;
    /// store.for_agent("alice")?.add_service(off, Wait::None).await?;
    /// let names: Vec<String> =
    ///     store.all_scopes().list_services().await?.into_iter().map(|v| v.name).collect();
    /// assert_eq!(names.len(), 2);
    /// assert!(names.contains(&"notes".to_string()) && names.contains(&"alice/notes".to_string()));
    /// # store.shutdown().await;
    /// # Ok(()) }
    /// ```
    pub fn all_scopes(&self) -> Store {
        Store {
            inner: self.inner.clone(),
            scope: Scope::All,
        }
    }

    fn agent(&self) -> Option<AgentId> {
        match &self.scope {
            Scope::Agent(a) => Some(a.clone()),
            _ => None,
        }
    }

    fn id(&self, name: &str) -> Result<ServiceId, StoreError> {
        if let Scope::All = self.scope {
            if let Some(id) = parse_id(name) {
                return Ok(id);
            }
        }
        let n = ServiceName::parse(name).map_err(|_| {
            StoreError::Lookup(LookupError::UnknownService {
                name: name.to_owned(),
                suggestions: Vec::new(),
            })
        })?;
        Ok(ServiceId {
            agent: self.agent(),
            name: n,
        })
    }

    /// Registers one or many services (any input form of the config: `{"name":..}`,
    /// `{"mcpServers": {...}}`, a map, a list, JSON text or a file path). Returns after phase 1
    /// — registered and `starting` — unless `wait` says otherwise. A batch reports each entry
    /// refused with its reasons; one bad entry never blocks the good ones. A single invalid
    /// service is an error and changes nothing.
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), mcpvisor_supervisor::StoreError> {
    /// # use mcpvisor_supervisor::{Store, StoreOptions, Wait};
    /// # use serde_json::json;
    /// # let store = Store::open(StoreOptions::new()).await?;
    /// // A batch in `mcpServers` form: the bad entry is refused with its reason, the good one added.
    /// let report = store
    ///     .add_service(
    ///         json!({"mcpServers": {
    ///             "time": {"command": "uvx", "args": ["mcp-server-time"], "disabled": true},
    ///             "broken": {"command": "x", "url": "http://127.0.0.1:1/mcp"}
    ///         }}),
    ///         Wait::None,
    ///     )
    ///     .await?;
    /// assert_eq!(report.added, ["time"]);
    /// assert_eq!(report.failed[0].0, "broken");
    /// # store.shutdown().await;
    /// # Ok(()) }
    /// ```
    pub async fn add_service(
        &self,
        input: impl Into<ServiceInput>,
        wait: Wait,
    ) -> Result<AddReport, StoreError> {
        let value = input.into().into_value()?;
        let entries = split_services(value)?;
        let agent = self.agent();
        let items = entries
            .into_iter()
            .map(|(n, m)| (agent.clone(), n, m))
            .collect();
        let report = ractor::call!(self.inner.root, |reply| RootMsg::Add { items, reply })
            .map_err(StoreError::gone)??;
        if wait == Wait::Settled {
            let config = self.config().await?;
            let mut limit = Duration::ZERO;
            for n in &report.added {
                let id = self.id(n.rsplit('/').next().unwrap_or(n))?;
                let connect = config_of(&config, &id)
                    .map(|s| s.config.timeouts.connect)
                    .unwrap_or(mcpvisor_model::defaults::TIMEOUT_CONNECT);
                limit = limit.max(connect);
            }
            let names: Vec<String> = report
                .added
                .iter()
                .map(|n| n.rsplit('/').next().unwrap_or(n).to_owned())
                .collect();
            self.wait_settled(Some(&names), true, limit, |_, _| {})
                .await?;
        } else if wait != Wait::None {
            // Every service is waited for at once (never one after another), each up to the
            // limit: `For`'s duration, or its own `timeouts.connect` for `Auto`.
            let config = match wait {
                Wait::Auto => Some(self.config().await?),
                _ => None,
            };
            let mut waits = Vec::new();
            for n in &report.added {
                let id = self.id(n.rsplit('/').next().unwrap_or(n))?;
                let limit = match (wait, &config) {
                    (Wait::For(d), _) => d,
                    (_, Some(c)) => config_of(c, &id)
                        .map(|s| s.config.timeouts.connect)
                        .unwrap_or(mcpvisor_model::defaults::TIMEOUT_CONNECT),
                    _ => Duration::ZERO,
                };
                if let Some(rx) = self.inner.shared.observed(&id) {
                    waits.push(wait_observed(rx, limit, settled_after_add));
                }
            }
            futures_join_all(waits).await;
        }
        Ok(report)
    }

    /// Stops a service (its process group is gone when this returns) and forgets it and its
    /// tools. Refused while other services depend on it.
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), mcpvisor_supervisor::StoreError> {
    /// # use mcpvisor_supervisor::{Store, StoreOptions, Wait};
    /// # use serde_json::json;
    /// # let store = Store::open(StoreOptions::new()).await?;
    /// store.add_service(json!({"name": "time", "command": "uvx", "disabled": true}), Wait::None).await?;
    /// store.remove_service("time").await?;
    /// assert!(store.get_service_info("time").await.is_err());
    /// # store.shutdown().await;
    /// # Ok(()) }
    /// ```
    pub async fn remove_service(&self, name: &str) -> Result<(), StoreError> {
        let id = self.id(name)?;
        let done = ractor::call!(self.inner.root, |reply| RootMsg::Remove { id, reply })
            .map_err(StoreError::gone)??;
        // The root stops it either way; this waits until its process group is gone.
        let _ = done.await;
        Ok(())
    }

    /// Replaces a service's config (`raw` as it would be written in `mcpServers`). Restarts it
    /// only when where or how it runs changed (command, args, env, cwd, url, headers,
    /// transport); probe, backoff and timeout changes apply live. Returns whether it restarted.
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), mcpvisor_supervisor::StoreError> {
    /// # use mcpvisor_supervisor::{Store, StoreOptions, Wait};
    /// # use serde_json::json;
    /// # let store = Store::open(StoreOptions::new()).await?;
    /// store.add_service(json!({"name": "time", "command": "uvx", "disabled": true}), Wait::None).await?;
    /// // Only the probe interval changes: applied live, no restart.
    /// let restarted = store
    ///     .update_service("time", json!({"command": "uvx", "disabled": true, "health": {"interval": "10s"}}))
    ///     .await?;
    /// assert!(!restarted);
    /// # store.shutdown().await;
    /// # Ok(()) }
    /// ```
    pub async fn update_service(&self, name: &str, raw: Value) -> Result<bool, StoreError> {
        let id = self.id(name)?;
        let Value::Object(raw) = raw else {
            return Err(StoreError::Config(ConfigErrors(vec![
                ConfigError::InvalidValue {
                    service: name.to_owned(),
                    field: String::new(),
                    expected: "an object with \"command\" or \"url\"".into(),
                    found: "another JSON value".into(),
                },
            ])));
        };
        ractor::call!(self.inner.root, |reply| RootMsg::Update { id, raw, reply })
            .map_err(StoreError::gone)?
    }

    /// Starts (or revives from `failed`) a service; dependencies still gate it.
    /// ```no_run
    /// # async fn demo(store: mcpvisor_supervisor::Store) -> Result<(), mcpvisor_supervisor::StoreError> {
    /// use mcpvisor_supervisor::model::ServiceState;
    /// use std::time::Duration;
    /// store.start_service("time").await?;
    /// store.wait_for(&["time"], ServiceState::Healthy, Duration::from_secs(30)).await?;
    /// # Ok(()) }
    /// ```
    pub async fn start_service(&self, name: &str) -> Result<(), StoreError> {
        let id = self.id(name)?;
        ractor::call!(self.inner.root, |reply| RootMsg::Want {
            id,
            wanted: true,
            reply
        })
        .map_err(StoreError::gone)??;
        Ok(())
    }

    /// Stops a service: stdin closed, `timeouts.shutdown`, SIGTERM to the group, the same
    /// wait, SIGKILL to the group; `force` goes straight to SIGKILL. Returns once it is stopped.
    /// ```no_run
    /// # async fn demo(store: mcpvisor_supervisor::Store) -> Result<(), mcpvisor_supervisor::StoreError> {
    /// store.stop_service("time", false).await?; // graceful: stdin, SIGTERM, then SIGKILL
    /// store.stop_service("stuck", true).await?; // SIGKILL the group now
    /// # Ok(()) }
    /// ```
    pub async fn stop_service(&self, name: &str, force: bool) -> Result<(), StoreError> {
        let id = self.id(name)?;
        let actor = ractor::call!(self.inner.root, |reply| RootMsg::Want {
            id,
            wanted: false,
            reply
        })
        .map_err(StoreError::gone)??;
        if let Some(a) = actor {
            ractor::call!(a, |r| ServiceMsg::Stop {
                force,
                reply: Some(r)
            })
            .map_err(StoreError::gone)?;
            // The actor answered once stopped; return once the root recorded it too.
            if let Some(rx) = self.inner.shared.observed(&self.id(name)?) {
                let _ = wait_observed(rx, mcpvisor_model::defaults::STOP_RECORD_WAIT, |s| {
                    matches!(
                        s,
                        ServiceState::Stopped | ServiceState::NotStarted | ServiceState::Failed
                    )
                })
                .await;
            }
        }
        Ok(())
    }

    /// Stops then starts a service.
    /// ```no_run
    /// # async fn demo(store: mcpvisor_supervisor::Store) -> Result<(), mcpvisor_supervisor::StoreError> {
    /// store.restart_service("time").await?;
    /// # Ok(()) }
    /// ```
    pub async fn restart_service(&self, name: &str) -> Result<(), StoreError> {
        self.stop_service(name, false).await?;
        self.start_service(name).await
    }

    /// Sets (or removes) who answers the servers' own requests (`roots/list`,
    /// `sampling/createMessage`, `elicitation/create`). Servers connected while nobody could
    /// answer were not told they may ask (unless opened with
    /// [`StoreOptions::relay_server_requests`]); they learn it at their next connection.
    /// ```no_run
    /// # async fn demo(store: mcpvisor_supervisor::Store, handler: std::sync::Arc<dyn mcpvisor_supervisor::ServerRequests>) {
    /// store.set_server_requests(Some(handler));
    /// # }
    /// ```
    pub fn set_server_requests(
        &self,
        handler: Option<Arc<dyn mcpvisor_service_actor::relay::ServerRequests>>,
    ) {
        self.inner.shared.relay.set_handler(handler);
    }

    /// SIGKILLs every live server process group at once, without the graceful steps (for a
    /// second Ctrl-C while `shutdown` waits). Synchronous; services then see their processes
    /// die like any crash, unless the store is shutting down.
    /// ```no_run
    /// # async fn demo(store: mcpvisor_supervisor::Store) -> Result<(), mcpvisor_supervisor::StoreError> {
    /// // A second Ctrl-C while a graceful shutdown waits on a stuck server:
    /// store.kill_all();
    /// # Ok(()) }
    /// ```
    pub fn kill_all(&self) {
        let pgids = lock(&self.inner.shared.pgids);
        for pgid in pgids.keys() {
            reaper::kill_group_now(*pgid);
        }
        let _ = self.inner.root.cast(RootMsg::ForceStopAll);
    }

    /// Fault injection for tests: makes a service's actor panic.
    #[cfg(feature = "fault-injection")]
    pub async fn inject_actor_panic(&self, name: &str) -> Result<(), StoreError> {
        let id = self.id(name)?;
        let actors = ractor::call!(self.inner.root, |reply| RootMsg::Actors { reply })
            .map_err(StoreError::gone)?;
        if let Some((_, a)) = actors.into_iter().find(|(i, _)| *i == id) {
            let _ = a.cast(ServiceMsg::PanicForTest);
        }
        Ok(())
    }

    /// Fault injection for tests: kills the registry actor.
    #[cfg(feature = "fault-injection")]
    pub fn inject_registry_death(&self) -> Result<(), StoreError> {
        self.registry()?.kill();
        Ok(())
    }

    /// Fault injection for tests: kills the persistence actor.
    #[cfg(feature = "fault-injection")]
    pub fn inject_persistence_death(&self) -> Result<(), StoreError> {
        match self.inner.shared.persistence() {
            Some(p) => {
                p.kill();
                Ok(())
            }
            None => Err(StoreError::gone("no persistence actor")),
        }
    }

    /// Stops every service in reverse dependency order and returns once every process is
    /// gone; flushes the config and state files.
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), mcpvisor_supervisor::StoreError> {
    /// use mcpvisor_supervisor::{Store, StoreOptions};
    /// let store = Store::open(StoreOptions::new()).await?;
    /// store.shutdown().await;
    /// assert!(store.list_services().await.is_err(), "the tree is gone");
    /// # Ok(()) }
    /// ```
    pub async fn shutdown(&self) {
        if let Ok(levels) = ractor::call!(self.inner.root, |reply| RootMsg::StopLevels { reply }) {
            for level in levels {
                let stops = level.into_iter().map(|(_, a)| async move {
                    let _ = ractor::call_t!(
                        a,
                        |r| ServiceMsg::Stop {
                            force: false,
                            reply: Some(r)
                        },
                        ms(mcpvisor_model::defaults::SHUTDOWN_STOP_WAIT)
                    );
                });
                futures_join_all(stops).await;
            }
        }
        let persistence = self.inner.shared.persistence();
        if let Some(p) = persistence {
            // Reports of the stops pass through the root first.
            let _ = ractor::call!(self.inner.root, |reply| RootMsg::Sync { reply });
            let _ = ractor::call_t!(
                p,
                PersistenceMsg::Flush,
                ms(mcpvisor_model::defaults::SHUTDOWN_FLUSH_WAIT)
            );
        }
        // Only now: a shutdown cut short still leaves `Drop` to kill what is left.
        *lock(&self.inner.closed) = true;
        let _ = self
            .inner
            .root
            .stop_and_wait(
                Some("shutdown".into()),
                Some(mcpvisor_model::defaults::SHUTDOWN_ROOT_WAIT),
            )
            .await;
        // Every group is gone: the state dir is free for the next owner.
        lock(&self.inner.claim).take();
    }
}

/// `d` in whole milliseconds, as ractor's timed calls take it.
fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The spec of `id` in `config`.
fn config_of<'a>(
    config: &'a ServicesConfig,
    id: &ServiceId,
) -> Option<&'a mcpvisor_model::ServiceSpec> {
    match &id.agent {
        None => config.services.get(&id.name),
        Some(a) => config.agents.get(a)?.services.get(&id.name),
    }
}

async fn futures_join_all<F: std::future::Future>(
    futs: impl IntoIterator<Item = F>,
) -> Vec<F::Output> {
    futures::future::join_all(futs).await
}

fn parse_id(display: &str) -> Option<ServiceId> {
    match display.split_once('/') {
        Some((a, n)) => Some(ServiceId::agent(
            AgentId::parse(a).ok()?,
            ServiceName::parse(n).ok()?,
        )),
        None => Some(ServiceId::global(ServiceName::parse(display).ok()?)),
    }
}
