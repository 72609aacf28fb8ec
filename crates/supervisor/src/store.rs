//! [`Store`]: the embedding surface. A cloneable handle to a running supervision tree.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mcpvisor_model::env::{Env, ProcessEnv};
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
use crate::owner;
use crate::reaper;
use crate::root::{lock, read, AddReport, RootActor, RootArgs, RootMsg, Shared};

/// How long `add_service` waits after registering.
/// ```no_run
/// # async fn demo(store: mcpvisor_supervisor::Store) -> Result<(), mcpvisor_supervisor::StoreError> {
/// use mcpvisor_supervisor::Wait;
/// use serde_json::json;
/// let time = json!({"name": "time", "command": "uvx", "args": ["mcp-server-time"]});
/// store.add_service(time, Wait::For(std::time::Duration::from_secs(10))).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Wait {
    /// Return after phase 1 (registered, `starting`).
    #[default]
    None,
    /// Wait up to this long for the new services to be up (or to fail).
    For(Duration),
    /// Wait up to each service's `timeouts.connect`.
    Auto,
    /// Wait until each new service's outcome is known — up, failed at least once, or held
    /// back by a dependency that settled without coming up — up to the longest
    /// `timeouts.connect` among them (see [`Store::wait_settled`]).
    Settled,
}

/// How far a [`Store::wait_settled`] got: `up` of `total` are up, `settled` have a known
/// outcome, `pending` (names) do not yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// Services waited for.
    pub total: usize,
    /// Of them, up (`healthy`/`warning`).
    pub up: usize,
    /// Of them, with a known outcome.
    pub settled: usize,
    /// Those without one yet, by name.
    pub pending: Vec<String>,
}

impl Progress {
    /// "2/3 healthy (waiting for git)".
    pub fn line(&self) -> String {
        let mut s = format!("{}/{} healthy", self.up, self.total);
        if !self.pending.is_empty() {
            s.push_str(&format!(" (waiting for {})", self.pending.join(", ")));
        }
        s
    }
}

/// How to open a [`Store`].
#[derive(Clone)]
pub struct StoreOptions {
    /// Config file to load and keep up to date; `None` keeps the config in memory only.
    pub config_path: Option<PathBuf>,
    /// State dir for the state file (last-known tools, process groups for reaping); `None`
    /// keeps no state file.
    pub state_dir: Option<PathBuf>,
    /// Initial services when there is no config file (or it does not exist yet).
    pub config: Option<ServicesConfig>,
    /// Where `${VAR}`s come from.
    pub env: Arc<dyn Env + Send + Sync>,
    /// Start services at open (default true).
    pub autostart: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            config_path: None,
            state_dir: None,
            config: None,
            env: Arc::new(ProcessEnv),
            autostart: true,
        }
    }
}

impl StoreOptions {
    /// In-memory options with no file.
    /// ```
    /// use mcpvisor_supervisor::StoreOptions;
    /// let options = StoreOptions::new();
    /// assert!(options.config_path.is_none() && options.state_dir.is_none() && options.autostart);
    /// ```
    pub fn new() -> Self {
        Self::default()
    }
    /// Loads and persists `path`.
    /// ```
    /// use mcpvisor_supervisor::StoreOptions;
    /// let options = StoreOptions::new().config_file("mcp.json");
    /// assert_eq!(options.config_path.as_deref(), Some(std::path::Path::new("mcp.json")));
    /// ```
    pub fn config_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.config_path = Some(path.into());
        self
    }
    /// Uses `dir` for the state file.
    /// ```
    /// use mcpvisor_supervisor::StoreOptions;
    /// let options = StoreOptions::new().state_dir("/var/lib/mcpvisor");
    /// assert!(options.state_dir.is_some());
    /// ```
    pub fn state_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.state_dir = Some(dir.into());
        self
    }
    /// Starts from this config (when no file is given or it does not exist).
    /// ```
    /// use mcpvisor_supervisor::{model, StoreOptions};
    /// let text = r#"{"mcpServers": {"time": {"command": "uvx", "args": ["mcp-server-time"]}}}"#;
    /// let config = model::parse_str(text, &model::env::ProcessEnv).expect("valid config");
    /// let options = StoreOptions::new().with_config(config);
    /// assert_eq!(options.config.map(|c| c.services.len()), Some(1));
    /// ```
    pub fn with_config(mut self, config: ServicesConfig) -> Self {
        self.config = Some(config);
        self
    }
    /// Uses this environment for `${VAR}` expansion.
    /// ```
    /// use mcpvisor_supervisor::{model::env::MapEnv, StoreOptions};
    /// // `${TOKEN}` in the config now expands from this map, not from the process environment.
    /// let options = StoreOptions::new().env(MapEnv::from_pairs([("TOKEN", "secret")]));
    /// # let _ = options;
    /// ```
    pub fn env(mut self, env: impl Env + Send + Sync + 'static) -> Self {
        self.env = Arc::new(env);
        self
    }
}

struct Inner {
    root: ActorRef<RootMsg>,
    shared: Arc<Shared>,
    closed: Mutex<bool>,
    /// The claim on the state dir, released once shut down (or dropped).
    claim: Mutex<Option<owner::OwnerClaim>>,
}

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
        });
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
        };
        let (root, _) = Actor::spawn(None, RootActor, args)
            .await
            .map_err(StoreError::gone)?;
        Ok(Store {
            inner: Arc::new(Inner {
                root,
                shared,
                closed: Mutex::new(false),
                claim: Mutex::new(claim),
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

    /// Waits until every report sent so far has reached the registry: reports go service →
    /// root → registry, each hop in order, so a round trip through both is a barrier. Used
    /// after waiting on a state so that what the registry answers next agrees with it.
    fn registry(&self) -> Result<ActorRef<RegistryMsg>, StoreError> {
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
        if !matches!(self.scope, Scope::All) {
            let route = read(&self.inner.shared.routes)
                .get(&(self.agent(), name.to_owned()))
                .cloned();
            if let Some((id, tool)) = route {
                if let Some(handle) = self.inner.shared.handle(&id) {
                    return Ok(handle.call_tool(&tool, arguments, timeout).await?);
                }
            }
        }
        let scope = self.scope.clone();
        let n = name.to_owned();
        let target = ractor::call!(self.registry()?, |reply| RegistryMsg::ResolveTool {
            scope,
            name: n,
            reply
        })
        .map_err(StoreError::gone)??;
        let handle = self
            .inner
            .shared
            .handle(&target.service)
            .ok_or_else(|| StoreError::gone("service removed during the call"))?;
        Ok(handle.call_tool(&target.tool, arguments, timeout).await?)
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

    /// Waits until each named service is in `state` (`healthy` also accepts `warning`).
    /// ```no_run
    /// # async fn demo(store: mcpvisor_supervisor::Store) -> Result<(), mcpvisor_supervisor::StoreError> {
    /// use mcpvisor_supervisor::{model::ServiceState, StoreError};
    /// use std::time::Duration;
    /// match store.wait_for(&["time", "memory"], ServiceState::Healthy, Duration::from_secs(30)).await {
    ///     Ok(()) => println!("both up"),
    ///     Err(StoreError::WaitTimeout { waiting }) => println!("still waiting for {waiting:?}"),
    ///     Err(e) => return Err(e),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn wait_for(
        &self,
        names: &[&str],
        state: ServiceState,
        timeout: Duration,
    ) -> Result<(), StoreError> {
        let mut waits = Vec::new();
        for n in names {
            let id = self.id(n)?;
            let Some(rx) = self.inner.shared.observed(&id) else {
                return Err(StoreError::Lookup(LookupError::UnknownService {
                    name: (*n).to_owned(),
                    suggestions: Vec::new(),
                }));
            };
            let pred = move |s: ServiceState| {
                s == state || (state == ServiceState::Healthy && s == ServiceState::Warning)
            };
            waits.push(async move { ((*n).to_owned(), wait_observed(rx, timeout, pred).await) });
        }
        // All at once: the timeout bounds the whole wait, not each service.
        let waiting: Vec<(String, ServiceState)> = futures_join_all(waits)
            .await
            .into_iter()
            .filter_map(|(n, r)| r.err().map(|now| (n, now)))
            .collect();
        if waiting.is_empty() {
            Ok(())
        } else {
            Err(StoreError::WaitTimeout { waiting })
        }
    }

    /// Waits until every service of `names` (all of this scope's when `None`) has a known
    /// outcome: up, failed at least once (`reconnecting`, `unreachable`, `failed`), not asked
    /// to run, or held back by a dependency that settled without coming up — at most
    /// `timeout`. `expect_running`: the services were just asked to start, so `stopped` is not
    /// an outcome yet. `progress` is called whenever the count changes. Returns the services'
    /// views as they are then (check their states: a timeout is no error).
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), mcpvisor_supervisor::StoreError> {
    /// # use mcpvisor_supervisor::{Store, StoreOptions, Wait};
    /// # use serde_json::json;
    /// # let store = Store::open(StoreOptions::new()).await?;
    /// store.add_service(json!({"name": "off", "command": "x", "disabled": true}), Wait::None).await?;
    /// let views = store
    ///     .wait_settled(None, false, std::time::Duration::from_secs(5), |p, _| println!("{}", p.line()))
    ///     .await?;
    /// assert_eq!(views[0].state, mcpvisor_supervisor::model::ServiceState::NotStarted);
    /// # store.shutdown().await;
    /// # Ok(()) }
    /// ```
    pub async fn wait_settled(
        &self,
        names: Option<&[String]>,
        expect_running: bool,
        timeout: Duration,
        mut progress: impl FnMut(&Progress, &[ServiceView]),
    ) -> Result<Vec<ServiceView>, StoreError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut events = self.subscribe().await?;
        let mut last: Option<Progress> = None;
        loop {
            let views = self.list_services().await?;
            let wanted: Vec<String> = match names {
                Some(n) => n.to_vec(),
                None => views.iter().map(|v| v.name.clone()).collect(),
            };
            let mine: Vec<ServiceView> = views
                .into_iter()
                .filter(|v| wanted.contains(&v.name))
                .collect();
            let expect = if expect_running {
                mine.iter().map(|v| v.id.clone()).collect()
            } else {
                Default::default()
            };
            let done = ractor::call!(self.inner.root, |reply| RootMsg::Settled {
                expect_running: expect,
                reply
            })
            .map_err(StoreError::gone)?;
            let pending: Vec<String> = wanted
                .iter()
                .filter(|n| !mine.iter().any(|v| &v.name == *n && done.contains(&v.id)))
                .cloned()
                .collect();
            let p = Progress {
                total: wanted.len(),
                up: mine.iter().filter(|v| v.state.is_up()).count(),
                settled: wanted.len() - pending.len(),
                pending,
            };
            if last.as_ref() != Some(&p) {
                progress(&p, &mine);
                last = Some(p.clone());
            }
            if p.pending.is_empty() || tokio::time::Instant::now() >= deadline {
                return Ok(mine);
            }
            // Woken by any event, or re-read every SETTLE_POLL at the latest.
            let until =
                (tokio::time::Instant::now() + mcpvisor_model::defaults::SETTLE_POLL).min(deadline);
            tokio::select! {
                _ = events.next() => {}
                _ = tokio::time::sleep_until(until) => {}
            }
        }
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

/// Whether a service just added has settled: up, or given up on for now.
fn settled_after_add(s: ServiceState) -> bool {
    s.is_up()
        || matches!(
            s,
            ServiceState::Failed | ServiceState::Unreachable | ServiceState::Stopped
        )
}

/// Waits up to `limit` until the published state satisfies `pred`; `Err(state now)` if not.
/// The root publishes a state only after the registry was told, so once this returns every
/// query agrees with it.
async fn wait_observed(
    mut rx: tokio::sync::watch::Receiver<ServiceState>,
    limit: Duration,
    pred: impl Fn(ServiceState) -> bool,
) -> Result<(), ServiceState> {
    let ok = matches!(
        tokio::time::timeout(limit, rx.wait_for(|s| pred(*s))).await,
        Ok(Ok(_))
    );
    if ok {
        Ok(())
    } else {
        Err(*rx.borrow())
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

/// What `add_service` accepts.
/// ```
/// use mcpvisor_supervisor::ServiceInput;
/// use serde_json::json;
/// let _value: ServiceInput = json!({"name": "time", "command": "uvx"}).into();
/// let _text: ServiceInput = r#"{"mcpServers": {"time": {"command": "uvx"}}}"#.into();
/// let _file: ServiceInput = "services.json".into(); // read when added
/// ```
#[derive(Debug, Clone)]
pub enum ServiceInput {
    /// A JSON value of any accepted form.
    Json(Value),
    /// JSON text, or a path to a file holding JSON.
    Text(String),
}

impl ServiceInput {
    fn into_value(self) -> Result<Value, StoreError> {
        match self {
            ServiceInput::Json(v) => Ok(v),
            ServiceInput::Text(t) => {
                let trimmed = t.trim_start();
                let text = if trimmed.starts_with('{') || trimmed.starts_with('[') {
                    t
                } else {
                    std::fs::read_to_string(&t).map_err(|e| {
                        StoreError::Config(ConfigErrors(vec![ConfigError::Io {
                            path: t.clone(),
                            message: e.to_string(),
                        }]))
                    })?
                };
                serde_json::from_str(&text).map_err(|e| {
                    StoreError::Config(ConfigErrors(vec![ConfigError::Syntax {
                        line: e.line(),
                        column: e.column(),
                        message: e.to_string(),
                    }]))
                })
            }
        }
    }
}

impl From<Value> for ServiceInput {
    fn from(v: Value) -> Self {
        ServiceInput::Json(v)
    }
}

impl From<&str> for ServiceInput {
    fn from(s: &str) -> Self {
        ServiceInput::Text(s.to_owned())
    }
}

impl From<String> for ServiceInput {
    fn from(s: String) -> Self {
        ServiceInput::Text(s)
    }
}
