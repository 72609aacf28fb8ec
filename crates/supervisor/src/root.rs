//! The root supervisor actor: owns the configuration, spawns and links the registry, the
//! persistence actor and one service actor per service, starts services in dependency order,
//! respawns what dies, and routes service reports to the registry and the state file.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;

use indexmap::IndexMap;
use mcpvisor_model::env::Env;
use mcpvisor_model::{
    resolve_service, AgentId, ConfigError, ConfigErrors, DependencyGraph, Event, LogRing,
    ServiceId, ServiceMetrics, ServiceName, ServiceSpec, ServiceState, ServicesConfig, Timestamp,
};
use mcpvisor_persistence_actor::{
    KnownCell, PersistenceActor, PersistenceArgs, PersistenceMsg, ProcessRecord,
};
use mcpvisor_registry_actor::{RegistryActor, RegistryArgs, RegistryMsg};
use mcpvisor_service_actor::{ServiceActor, ServiceArgs, ServiceHandle, ServiceMsg, ServiceReport};
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use serde_json::{Map, Value};
use tokio::sync::{broadcast, watch};

use crate::error::StoreError;
use crate::fleet::{Action as FleetAction, Fleet, Observation};

/// State shared between the root actor and every [`crate::Store`] clone, read without a
/// mailbox hop.
pub(crate) struct Shared {
    /// Call handles by service.
    pub handles: RwLock<HashMap<ServiceId, ServiceHandle>>,
    /// Stderr tails by service.
    pub stderr: RwLock<HashMap<ServiceId, LogRing>>,
    /// Live process groups (pid = pgid → service), for killing on drop without a runtime.
    pub pgids: Mutex<HashMap<u32, ServiceId>>,
    /// The current registry.
    pub registry: RwLock<Option<ActorRef<RegistryMsg>>>,
    /// The current persistence actor.
    pub persistence: RwLock<Option<ActorRef<PersistenceMsg>>>,
    /// Namespaced tool name → (service, the server's tool name), per scope: the fast path of
    /// `call_tool` (no mailbox hop). Bare, shortened and unknown names go to the registry.
    pub routes: RwLock<HashMap<Route, (ServiceId, String)>>,
    /// The event channel: the Store's, handed to every registry spawned, so a subscription
    /// survives a registry respawn.
    pub events: broadcast::Sender<Event>,
    /// Each service's state as the root published it (after the registry was told).
    pub observed: RwLock<HashMap<ServiceId, watch::Receiver<ServiceState>>>,
}

/// A namespaced tool name within a scope (`None` = the store's own services).
pub(crate) type Route = (Option<AgentId>, String);

/// Reads `l`, even if a panicking thread poisoned it (the data is plain maps and refs).
pub(crate) fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

/// Writes `l`, even if poisoned.
pub(crate) fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

/// Locks `m`, even if poisoned.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    pub(crate) fn registry(&self) -> Result<ActorRef<RegistryMsg>, StoreError> {
        read(&self.registry)
            .clone()
            .ok_or_else(|| StoreError::gone("registry not running"))
    }
    pub(crate) fn persistence(&self) -> Option<ActorRef<PersistenceMsg>> {
        read(&self.persistence).clone()
    }
    pub(crate) fn handle(&self, id: &ServiceId) -> Option<ServiceHandle> {
        read(&self.handles).get(id).cloned()
    }
    pub(crate) fn observed(&self, id: &ServiceId) -> Option<watch::Receiver<ServiceState>> {
        read(&self.observed).get(id).cloned()
    }
}

/// One entry to add: scope, name as written, object as written.
pub(crate) type NewEntry = (Option<AgentId>, String, Map<String, Value>);

/// What a batch add did.
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), mcpvisor_supervisor::StoreError> {
/// use mcpvisor_supervisor::{Store, StoreOptions, Wait};
/// use serde_json::json;
/// let store = Store::open(StoreOptions::new()).await?;
/// let report = store
///     .add_service(
///         json!([{"name": "a", "command": "a-mcp", "disabled": true}, {"name": "Bad Name!", "command": "b"}]),
///         Wait::None,
///     )
///     .await?;
/// assert_eq!(report.added, ["a"]);
/// assert_eq!(report.failed.len(), 1);
/// store.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct AddReport {
    /// Services registered (now `starting`, or `not_started` if disabled or waiting for
    /// dependencies).
    pub added: Vec<String>,
    /// Entries refused, each with every reason.
    pub failed: Vec<(String, Vec<String>)>,
}

/// A service and its actor.
pub(crate) type Member = (ServiceId, ActorRef<ServiceMsg>);

/// Messages of the root actor.
pub(crate) enum RootMsg {
    Add {
        items: Vec<NewEntry>,
        reply: RpcReplyPort<Result<AddReport, StoreError>>,
    },
    /// Forgets a service; its actor is stopped by the root (the reply's receiver says when
    /// its process group is gone).
    Remove {
        id: ServiceId,
        reply: RpcReplyPort<Result<tokio::sync::oneshot::Receiver<()>, StoreError>>,
    },
    Update {
        id: ServiceId,
        raw: Map<String, Value>,
        reply: RpcReplyPort<Result<bool, StoreError>>,
    },
    /// Marks a service wanted (start) or not (stop) and returns its actor.
    Want {
        id: ServiceId,
        wanted: bool,
        reply: RpcReplyPort<Result<Option<ActorRef<ServiceMsg>>, StoreError>>,
    },
    /// Actors in stop order (dependents first), by level.
    StopLevels {
        reply: RpcReplyPort<Vec<Vec<Member>>>,
    },
    /// All actors of a scope.
    Actors {
        reply: RpcReplyPort<Vec<Member>>,
    },
    /// The current configuration.
    Config {
        reply: RpcReplyPort<ServicesConfig>,
    },
    Report(u64, ServiceReport),
    Publish(Event),
    /// Stop every service at once (SIGKILL) and start nothing any more.
    ForceStopAll,
    /// A removed service's actor is gone with its process group: forget its process records
    /// (unless a service of that name was added again, which keeps its own).
    Forget {
        id: ServiceId,
    },
    /// The services whose outcome is known (see `Fleet::settled`).
    Settled {
        expect_running: std::collections::HashSet<ServiceId>,
        reply: RpcReplyPort<std::collections::HashSet<ServiceId>>,
    },
    /// Answers once every message sent before it was handled (a barrier).
    Sync {
        reply: RpcReplyPort<()>,
    },
}

pub(crate) struct RootArgs {
    pub config: ServicesConfig,
    pub config_path: Option<std::path::PathBuf>,
    pub state_dir: Option<std::path::PathBuf>,
    pub env: Arc<dyn Env + Send + Sync>,
    pub shared: Arc<Shared>,
    pub autostart: bool,
    pub stale_tools: Vec<(ServiceId, mcpvisor_model::ToolList)>,
    /// Services whose process records (of a previous run, reaped) are forgotten before any
    /// service starts, so a record of this run is never wiped by a late clean-up.
    pub reaped_owners: Vec<String>,
    /// The config file as last read or written, shared with every persistence actor spawned
    /// (a respawned one continues from it).
    pub known_config: KnownCell,
    /// The mark every spawned server carries in its environment (`MCPVISOR_OWNER`), so a
    /// later owner of the state dir finds it even if it was never recorded.
    pub owner_mark: Option<String>,
}

struct Entry {
    /// Epoch of the current actor (see `RootState::next_epoch`).
    epoch: u64,
    spec: ServiceSpec,
    handle: ServiceHandle,
    stderr: LogRing,
    actor: Option<ActorRef<ServiceMsg>>,
}

pub(crate) struct RootState {
    boot_id: String,
    /// Every supervision decision and the observed-state table.
    fleet: Fleet,
    /// Spawn counter: reports carry the epoch of the actor that sent them, so a removed
    /// actor still stopping never speaks for a new service of the same name.
    next_epoch: u64,
    config: ServicesConfig,
    entries: IndexMap<ServiceId, Entry>,
    args: RootArgs,
    persist: bool,
}

pub(crate) struct RootActor;

fn id_of(agent: &Option<AgentId>, name: ServiceName) -> ServiceId {
    ServiceId {
        agent: agent.clone(),
        name,
    }
}

impl Actor for RootActor {
    type Msg = RootMsg;
    type State = RootState;
    type Arguments = RootArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<RootMsg>,
        args: RootArgs,
    ) -> Result<RootState, ActorProcessingErr> {
        let mut state = RootState {
            boot_id: mcpvisor_service_actor::boot_id(),
            fleet: Fleet::default(),
            next_epoch: 0,
            config: args.config.clone(),
            entries: IndexMap::new(),
            persist: args.config_path.is_some() || args.state_dir.is_some(),
            args,
        };
        state.spawn_registry(&myself).await?;
        if state.persist {
            state.spawn_persistence(&myself).await?;
            for service in std::mem::take(&mut state.args.reaped_owners) {
                state.to_state_file(PersistenceMsg::SetProcesses {
                    service,
                    records: Vec::new(),
                });
            }
        }
        let mut all: Vec<(ServiceId, ServiceSpec)> = state
            .config
            .services
            .values()
            .map(|s| (ServiceId::global(s.name.clone()), s.clone()))
            .collect();
        for (agent, a) in &state.config.agents {
            for s in a.services.values() {
                all.push((ServiceId::agent(agent.clone(), s.name.clone()), s.clone()));
            }
        }
        let autostart = state.args.autostart;
        for (id, spec) in all {
            state.register(&myself, id, spec, autostart).await?;
        }
        for (id, tools) in std::mem::take(&mut state.args.stale_tools) {
            if let Some(m) = state.fleet.get_mut(&id) {
                m.row.tools = tools.clone();
                m.row.stale = true;
                state.set_routes(&id, &tools);
                state.to_registry(RegistryMsg::Tools {
                    id,
                    tools,
                    server: None,
                    stale: true,
                });
            }
        }
        state.evaluate();
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<RootMsg>,
        msg: RootMsg,
        state: &mut RootState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            RootMsg::Add { items, reply } => {
                let r = state.add(&myself, items).await;
                let _ = reply.send(r);
            }
            RootMsg::Remove { id, reply } => {
                let me = myself.clone();
                let r = state.remove(&id).map(|actor| {
                    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
                    tokio::spawn(async move {
                        if let Some(a) = actor {
                            let _ = ractor::call!(a, |r| ServiceMsg::Stop {
                                force: false,
                                reply: Some(r)
                            });
                            a.stop(Some("removed".into()));
                        }
                        let _ = me.cast(RootMsg::Forget { id });
                        let _ = done_tx.send(());
                    });
                    done_rx
                });
                let _ = reply.send(r);
            }
            RootMsg::Update { id, raw, reply } => {
                let r = state.update(&id, raw);
                let _ = reply.send(r);
            }
            RootMsg::Want { id, wanted, reply } => {
                if !state.entries.contains_key(&id) {
                    let _ = reply.send(Err(unknown(&id, &state.entries)));
                    return Ok(());
                }
                state.fleet.want(&id, wanted);
                let dead = state.entries.get(&id).is_some_and(|e| e.actor.is_none());
                if wanted && dead {
                    // Revive a service given up on after panics.
                    if let Some(spec) = state.entries.get(&id).map(|e| e.spec.clone()) {
                        state.spawn_service(&myself, id.clone(), &spec).await?;
                        let actions = state.fleet.actor_up(&id, Instant::now());
                        state.carry_out(actions);
                    }
                } else if wanted {
                    state.evaluate();
                }
                let _ = reply.send(Ok(state.entries.get(&id).and_then(|e| e.actor.clone())));
            }
            RootMsg::StopLevels { reply } => {
                state.fleet.shutting_down = true;
                let _ = reply.send(state.stop_levels());
            }
            RootMsg::Actors { reply } => {
                let all = state
                    .entries
                    .iter()
                    .filter_map(|(id, e)| e.actor.clone().map(|a| (id.clone(), a)))
                    .collect();
                let _ = reply.send(all);
            }
            RootMsg::Config { reply } => {
                let _ = reply.send(state.config.clone());
            }
            RootMsg::Report(epoch, r) => {
                let current = r_id(&r)
                    .and_then(|id| state.entries.get(id))
                    .is_some_and(|e| e.epoch == epoch);
                if current {
                    state.on_report(r);
                }
            }
            RootMsg::ForceStopAll => {
                state.fleet.shutting_down = true;
                for e in state.entries.values() {
                    if let Some(a) = &e.actor {
                        let _ = a.cast(ServiceMsg::Stop {
                            force: true,
                            reply: None,
                        });
                    }
                }
            }
            RootMsg::Forget { id } => {
                if !state.entries.contains_key(&id) {
                    state.to_state_file(PersistenceMsg::SetProcesses {
                        service: id.to_string(),
                        records: Vec::new(),
                    });
                }
            }
            RootMsg::Settled {
                expect_running,
                reply,
            } => {
                let _ = reply.send(state.fleet.settled(&expect_running));
            }
            RootMsg::Sync { reply } => {
                let _ = reply.send(());
            }
            RootMsg::Publish(e) => state.to_registry(RegistryMsg::Publish(e)),
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<RootMsg>,
        evt: SupervisionEvent,
        state: &mut RootState,
    ) -> Result<(), ActorProcessingErr> {
        match evt {
            SupervisionEvent::ActorFailed(cell, err) => {
                state
                    .on_child_down(&myself, cell, format!("panicked: {err}"))
                    .await?;
            }
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                let why = reason.unwrap_or_else(|| "stopped".into());
                state.on_child_down(&myself, cell, why).await?;
            }
            _ => {}
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<RootMsg>,
        state: &mut RootState,
    ) -> Result<(), ActorProcessingErr> {
        for e in state.entries.values() {
            if let Some(a) = &e.actor {
                a.stop(Some("supervisor stopping".into()));
            }
        }
        Ok(())
    }
}

fn r_id(r: &ServiceReport) -> Option<&ServiceId> {
    match r {
        ServiceReport::State { id, .. }
        | ServiceReport::Tools { id, .. }
        | ServiceReport::Process { id, .. } => Some(id),
    }
}

fn unknown(id: &ServiceId, entries: &IndexMap<ServiceId, Entry>) -> StoreError {
    let names: Vec<String> = entries
        .keys()
        .filter(|k| k.agent == id.agent)
        .map(|k| k.name.to_string())
        .collect();
    StoreError::Lookup(mcpvisor_registry_actor::LookupError::UnknownService {
        name: id.name.to_string(),
        suggestions: mcpvisor_model::suggest(id.name.as_str(), names.iter().map(String::as_str), 3),
    })
}

impl RootState {
    fn to_registry(&self, msg: RegistryMsg) {
        if let Ok(r) = self.args.shared.registry() {
            let _ = r.cast(msg);
        }
    }

    fn to_persistence(&self, msg: PersistenceMsg) {
        if let Some(p) = self.args.shared.persistence() {
            let _ = p.cast(msg);
        }
    }

    /// State-file messages go out only when there is a state dir.
    fn to_state_file(&self, msg: PersistenceMsg) {
        if self.args.state_dir.is_some() {
            self.to_persistence(msg);
        }
    }

    fn save_config(&self) {
        if self.args.config_path.is_some() {
            self.to_persistence(PersistenceMsg::SaveConfig(Box::new(self.config.clone())));
        }
    }

    async fn spawn_registry(
        &mut self,
        myself: &ActorRef<RootMsg>,
    ) -> Result<(), ActorProcessingErr> {
        let args = RegistryArgs {
            tool_separator: self.config.supervisor.tool_separator.clone(),
            events: Some(self.args.shared.events.clone()),
        };
        let (r, _) = Actor::spawn_linked(None, RegistryActor, args, myself.get_cell()).await?;
        *write(&self.args.shared.registry) = Some(r);
        Ok(())
    }

    async fn spawn_persistence(
        &mut self,
        myself: &ActorRef<RootMsg>,
    ) -> Result<(), ActorProcessingErr> {
        let me = myself.clone();
        // Without a state dir no state message is ever sent (`to_state_file`); the actor is
        // then pointed at the config's own directory, which it only reads.
        let config_path = self
            .args
            .config_path
            .clone()
            .unwrap_or_else(|| std::path::PathBuf::from("mcp.json"));
        let state_dir = self.args.state_dir.clone().unwrap_or_else(|| {
            config_path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .map(std::path::Path::to_path_buf)
                .unwrap_or_else(|| std::path::PathBuf::from("."))
        });
        let args = PersistenceArgs::new(config_path, state_dir, move |e| {
            let _ = me.cast(RootMsg::Publish(e));
        })
        .with_env(self.args.env.clone())
        .with_known(self.args.known_config.clone());
        let (p, _) = Actor::spawn_linked(None, PersistenceActor, args, myself.get_cell()).await?;
        *write(&self.args.shared.persistence) = Some(p);
        Ok(())
    }

    /// Registers a resolved service in every place and spawns its actor (not started).
    async fn register(
        &mut self,
        myself: &ActorRef<RootMsg>,
        id: ServiceId,
        spec: ServiceSpec,
        wanted: bool,
    ) -> Result<(), ActorProcessingErr> {
        let handle = ServiceHandle::new(
            id.clone(),
            spec.config.timeouts.call,
            ServiceMetrics::default(),
        );
        let stderr = LogRing::default();
        write(&self.args.shared.handles).insert(id.clone(), handle.clone());
        write(&self.args.shared.stderr).insert(id.clone(), stderr.clone());
        self.fleet.insert(id.clone(), &spec, wanted);
        if let Some(m) = self.fleet.get(&id) {
            write(&self.args.shared.observed).insert(id.clone(), m.row.subscribe());
        }
        self.entries.insert(
            id.clone(),
            Entry {
                epoch: 0,
                spec: spec.clone(),
                handle,
                stderr,
                actor: None,
            },
        );
        self.upsert_to_registry(&id);
        self.spawn_service(myself, id, &spec).await
    }

    async fn spawn_service(
        &mut self,
        myself: &ActorRef<RootMsg>,
        id: ServiceId,
        spec: &ServiceSpec,
    ) -> Result<(), ActorProcessingErr> {
        let Some(entry) = self.entries.get(&id) else {
            return Ok(());
        };
        let me = myself.clone();
        let shared = self.args.shared.clone();
        self.next_epoch += 1;
        let epoch = self.next_epoch;
        let last_pid: Arc<Mutex<Option<u32>>> = Arc::default();
        let args = ServiceArgs {
            id: id.clone(),
            config: self.actor_config(spec),
            handle: entry.handle.clone(),
            stderr: entry.stderr.clone(),
            sink: Arc::new(move |r: ServiceReport| {
                if let ServiceReport::Process { id, pid, .. } = &r {
                    // Live groups by pid: this actor only ever adds or removes its own.
                    let mut g = lock(&shared.pgids);
                    let mut last = lock(&last_pid);
                    if let Some(old) = last.take() {
                        g.remove(&old);
                    }
                    if let Some(p) = pid {
                        g.insert(*p, id.clone());
                        *last = Some(*p);
                    }
                }
                let _ = me.cast(RootMsg::Report(epoch, r));
            }),
            autostart: false,
        };
        let (actor, _) = Actor::spawn_linked(None, ServiceActor, args, myself.get_cell()).await?;
        if let Some(e) = self.entries.get_mut(&id) {
            e.actor = Some(actor);
            e.epoch = epoch;
        }
        Ok(())
    }

    async fn add(
        &mut self,
        myself: &ActorRef<RootMsg>,
        items: Vec<NewEntry>,
    ) -> Result<AddReport, StoreError> {
        let mut report = AddReport::default();
        let mut accepted: Vec<(ServiceId, ServiceSpec)> = Vec::new();
        let single = items.len() == 1;
        let mut all_errors = Vec::new();
        for (agent, name, raw) in items {
            let shown = match &agent {
                Some(a) => format!("{a}/{name}"),
                None => name.clone(),
            };
            let spec = match resolve_service(
                &name,
                &raw,
                &self.config.defaults,
                &self.config.supervisor,
                &*self.args.env,
            ) {
                Ok(s) => s,
                Err(e) => {
                    report
                        .failed
                        .push((shown, e.iter().map(ToString::to_string).collect()));
                    all_errors.extend(e.0);
                    continue;
                }
            };
            let id = id_of(&agent, spec.name.clone());
            if self.entries.contains_key(&id) || accepted.iter().any(|(i, _)| *i == id) {
                let e = ConfigError::DuplicateName {
                    service: shown.clone(),
                };
                report
                    .failed
                    .push((shown, vec![format!("{e}; use update_service to change it")]));
                all_errors.push(e);
                continue;
            }
            accepted.push((id, spec));
        }
        // Dependencies: checked per scope against existing services plus this batch.
        let mut rejected: Vec<ServiceId> = Vec::new();
        loop {
            let mut bad = Vec::new();
            for (id, spec) in &accepted {
                if rejected.contains(id) {
                    continue;
                }
                let scope_specs = self
                    .entries
                    .iter()
                    .filter(|(k, _)| k.agent == id.agent)
                    .map(|(_, e)| &e.spec)
                    .chain(
                        accepted
                            .iter()
                            .filter(|(k, _)| k.agent == id.agent && !rejected.contains(k))
                            .map(|(_, s)| s),
                    );
                let graph = DependencyGraph::from_specs(scope_specs);
                let errs: Vec<ConfigError> = graph
                    .check()
                    .into_iter()
                    .filter(|e| match e {
                        ConfigError::UnknownDependency { service, .. } => {
                            service == spec.name.as_str()
                        }
                        ConfigError::DependencyCycle { cycle, .. } => {
                            cycle.iter().any(|c| c == spec.name.as_str())
                        }
                        _ => false,
                    })
                    .collect();
                if !errs.is_empty() {
                    bad.push((id.clone(), errs));
                }
            }
            if bad.is_empty() {
                break;
            }
            for (id, errs) in bad {
                report.failed.push((
                    id.to_string(),
                    errs.iter().map(ToString::to_string).collect(),
                ));
                all_errors.extend(errs);
                rejected.push(id);
            }
        }
        accepted.retain(|(id, _)| !rejected.contains(id));
        if accepted.is_empty() && (single || !all_errors.is_empty()) && !all_errors.is_empty() {
            return Err(StoreError::Config(ConfigErrors(all_errors)));
        }
        for (id, spec) in accepted {
            // Config first (phase 1), then persistence and connection in the background.
            self.config_insert(&id, &spec);
            report.added.push(id.to_string());
            self.register(myself, id, spec, true)
                .await
                .map_err(StoreError::gone)?;
        }
        self.save_config();
        self.evaluate();
        Ok(report)
    }

    /// Puts `spec` into the configuration, in its scope (replacing one of the same name).
    fn config_insert(&mut self, id: &ServiceId, spec: &ServiceSpec) {
        let services = match &id.agent {
            None => &mut self.config.services,
            Some(a) => &mut self.config.agents.entry(a.clone()).or_default().services,
        };
        services.insert(spec.name.clone(), spec.clone());
    }

    /// The config a service actor runs with: the spec's, plus the owner mark in a stdio
    /// server's environment.
    fn actor_config(&self, spec: &ServiceSpec) -> mcpvisor_model::ServiceConfig {
        let mut config = spec.config.clone();
        if let (Some(mark), mcpvisor_model::Endpoint::Stdio { env, .. }) =
            (&self.args.owner_mark, &mut config.endpoint)
        {
            env.insert(crate::owner::OWNER_ENV.to_owned(), mark.clone());
        }
        config
    }

    fn scope_graph(&self, agent: &Option<AgentId>) -> DependencyGraph {
        DependencyGraph::from_specs(
            self.entries
                .iter()
                .filter(|(k, _)| k.agent == *agent)
                .map(|(_, e)| &e.spec),
        )
    }

    fn remove(&mut self, id: &ServiceId) -> Result<Option<ActorRef<ServiceMsg>>, StoreError> {
        if !self.entries.contains_key(id) {
            return Err(unknown(id, &self.entries));
        }
        let dependents: Vec<String> = self
            .scope_graph(&id.agent)
            .dependents(&id.name)
            .iter()
            .map(ToString::to_string)
            .collect();
        if !dependents.is_empty() {
            return Err(StoreError::InUse {
                service: id.to_string(),
                dependents,
            });
        }
        let entry = self.entries.shift_remove(id);
        self.fleet.remove(id);
        self.set_routes(id, &[]);
        match &id.agent {
            None => {
                self.config.services.shift_remove(&id.name);
            }
            Some(a) => {
                if let Some(ag) = self.config.agents.get_mut(a) {
                    ag.services.shift_remove(&id.name);
                }
            }
        }
        write(&self.args.shared.handles).remove(id);
        write(&self.args.shared.stderr).remove(id);
        write(&self.args.shared.observed).remove(id);
        self.to_registry(RegistryMsg::Remove { id: id.clone() });
        self.to_state_file(PersistenceMsg::RemoveService {
            service: id.to_string(),
        });
        self.save_config();
        Ok(entry.and_then(|e| e.actor))
    }

    fn update(&mut self, id: &ServiceId, raw: Map<String, Value>) -> Result<bool, StoreError> {
        let Some(entry) = self.entries.get(id) else {
            return Err(unknown(id, &self.entries));
        };
        let spec = resolve_service(
            id.name.as_str(),
            &raw,
            &self.config.defaults,
            &self.config.supervisor,
            &*self.args.env,
        )?;
        // The new dependencies must be valid in the scope.
        let others = self
            .entries
            .iter()
            .filter(|(k, _)| k.agent == id.agent && *k != id)
            .map(|(_, e)| &e.spec);
        let errs: Vec<ConfigError> =
            DependencyGraph::from_specs(others.chain(std::iter::once(&spec)))
                .check()
                .into_iter()
                .filter(|e| match e {
                    ConfigError::UnknownDependency { service, .. } => service == id.name.as_str(),
                    ConfigError::DependencyCycle { .. } => true,
                    _ => false,
                })
                .collect();
        if !errs.is_empty() {
            return Err(StoreError::Config(ConfigErrors(errs)));
        }
        let old = &entry.spec.config;
        let restart = old.endpoint != spec.config.endpoint;
        let changed = *old != spec.config || entry.spec.raw != spec.raw;
        if !changed {
            return Ok(false);
        }
        let actor = entry.actor.clone();
        let was_disabled = entry.spec.config.disabled;
        self.config_insert(id, &spec);
        if let Some(e) = self.entries.get_mut(id) {
            e.spec = spec.clone();
        }
        self.fleet.respec(id, &spec);
        if spec.config.disabled {
            // Disabled: stop it and let a later enable start it again.
            self.fleet.want(id, false);
        } else if was_disabled {
            self.fleet.want(id, true);
        }
        // Otherwise `wanted` stays as it was: an update never starts a service the user
        // stopped.
        self.upsert_to_registry(id);
        if let Some(a) = &actor {
            let _ = a.cast(ServiceMsg::Reconfigure(Box::new(self.actor_config(&spec))));
            if spec.config.disabled {
                let _ = a.cast(ServiceMsg::Stop {
                    force: false,
                    reply: None,
                });
            } else if restart && self.fleet.get(id).is_some_and(|m| m.started) {
                let _ = a.cast(ServiceMsg::Restart);
            }
        }
        self.save_config();
        self.evaluate();
        Ok(restart)
    }

    fn stop_levels(&self) -> Vec<Vec<Member>> {
        let mut agents: Vec<Option<AgentId>> = vec![None];
        for k in self.entries.keys() {
            if !agents.contains(&k.agent) {
                agents.push(k.agent.clone());
            }
        }
        let mut levels: Vec<Vec<Member>> = Vec::new();
        for agent in agents {
            let g = self.scope_graph(&agent);
            for (depth, level) in g.start_levels().into_iter().enumerate() {
                if levels.len() <= depth {
                    levels.resize_with(depth + 1, Vec::new);
                }
                for name in level {
                    let id = id_of(&agent, name);
                    if let Some(a) = self.entries.get(&id).and_then(|e| e.actor.clone()) {
                        levels[depth].push((id, a));
                    }
                }
            }
        }
        levels.reverse();
        levels
    }

    /// Starts every wanted, not yet started service whose dependencies meet their condition;
    /// records why the others wait (the fleet core decides).
    fn evaluate(&mut self) {
        let actions = self.fleet.evaluate(Instant::now());
        self.carry_out(actions);
    }

    /// Carries out the fleet core's actions (a respawn is carried out by `on_child_down`).
    fn carry_out(&mut self, actions: Vec<FleetAction>) {
        for action in actions {
            match action {
                FleetAction::Start(id) => {
                    if let Some(a) = self.entries.get(&id).and_then(|e| e.actor.clone()) {
                        let _ = a.cast(ServiceMsg::Start);
                    }
                }
                FleetAction::Observed(id, obs) => self.tell_observed(id, obs),
                FleetAction::Respawn(id) => {
                    tracing::error!(service = %id, "respawn outside on_child_down ignored");
                }
            }
        }
    }

    /// Tells the registry what the fleet observed, then publishes the row to waiters — in
    /// that order, so a waiter's next query sees it.
    fn tell_observed(&mut self, id: ServiceId, obs: Observation) {
        let msg = match obs {
            Observation::Transition { from, to, reason } => RegistryMsg::State {
                id: id.clone(),
                from,
                to,
                reason,
                at: Timestamp::now(),
            },
            Observation::Reason(reason) => {
                // A waiting service's call fails naming what it waits for.
                if let Some(e) = self.entries.get(&id) {
                    if e.handle.state() == ServiceState::NotStarted
                        && self.fleet.state(&id) == ServiceState::NotStarted
                    {
                        e.handle.set_state(ServiceState::NotStarted, &reason);
                    }
                }
                RegistryMsg::Reason {
                    id: id.clone(),
                    reason,
                }
            }
        };
        self.to_registry(msg);
        if let Some(m) = self.fleet.get(&id) {
            m.row.publish();
        }
    }

    /// Records a service's report of `to` in the fleet's table and tells everyone.
    fn observe_state(&mut self, id: &ServiceId, to: ServiceState, reason: String) {
        let actions: Vec<FleetAction> = self
            .fleet
            .observe(id, to, reason, Instant::now())
            .into_iter()
            .collect();
        self.carry_out(actions);
    }

    fn on_report(&mut self, r: ServiceReport) {
        match r {
            ServiceReport::State {
                id, to, reason, at, ..
            } => {
                if !self.entries.contains_key(&id) {
                    return;
                }
                let _ = at;
                self.observe_state(&id, to, reason);
                self.evaluate();
            }
            ServiceReport::Tools {
                id,
                tools,
                server,
                stale,
            } => {
                let Some(m) = self.fleet.get_mut(&id) else {
                    return;
                };
                m.row.tools = tools.clone();
                m.row.server = Some(server.clone());
                m.row.stale = stale;
                self.set_routes(&id, &tools);
                self.to_state_file(PersistenceMsg::SetTools {
                    service: id.to_string(),
                    tools: tools.clone(),
                    server: Some(server.clone()),
                });
                self.to_registry(RegistryMsg::Tools {
                    id,
                    tools,
                    server: Some(server),
                    stale,
                });
            }
            ServiceReport::Process {
                id,
                pid,
                identity,
                restarts,
            } => {
                let record = match (pid, identity) {
                    (Some(pid), Some(ident)) => Some(ProcessRecord {
                        service: id.to_string(),
                        pid,
                        pgid: pid,
                        start_time_ticks: ident.start_time_ticks,
                        cmdline: ident.cmdline,
                        boot_id: self.boot_id.clone(),
                        sid: Some(ident.sid),
                    }),
                    _ => None,
                };
                self.to_state_file(PersistenceMsg::SetProcesses {
                    service: id.to_string(),
                    records: record.iter().cloned().collect(),
                });
                if let Some(m) = self.fleet.get_mut(&id) {
                    m.row.pid = pid;
                    m.row.restarts = restarts;
                    m.row.process = record;
                    self.to_registry(RegistryMsg::Process { id, pid, restarts });
                }
            }
        }
    }

    async fn on_child_down(
        &mut self,
        myself: &ActorRef<RootMsg>,
        cell: ActorCell,
        why: String,
    ) -> Result<(), ActorProcessingErr> {
        let cid = cell.get_id();
        let is_registry = self.args.shared.registry().is_ok_and(|r| r.get_id() == cid);
        if is_registry {
            tracing::warn!(%why, "registry actor down; respawning and rebuilding");
            self.spawn_registry(myself).await?;
            self.rebuild_registry();
            return Ok(());
        }
        let is_persistence = self
            .args
            .shared
            .persistence()
            .is_some_and(|r| r.get_id() == cid);
        if is_persistence {
            tracing::warn!(%why, "persistence actor down; respawning");
            self.spawn_persistence(myself).await?;
            self.save_config();
            // The state file is rebuilt from the table: last-known tools and live processes.
            for (id, m) in self.fleet.iter() {
                if !m.row.tools.is_empty() {
                    self.to_state_file(PersistenceMsg::SetTools {
                        service: id.to_string(),
                        tools: m.row.tools.clone(),
                        server: m.row.server.clone(),
                    });
                }
                self.to_state_file(PersistenceMsg::SetProcesses {
                    service: id.to_string(),
                    records: m.row.process.iter().cloned().collect(),
                });
            }
            return Ok(());
        }
        let Some(id) = self
            .entries
            .iter()
            .find(|(_, e)| e.actor.as_ref().is_some_and(|a| a.get_id() == cid))
            .map(|(k, _)| k.clone())
        else {
            return Ok(()); // a removed service's actor finishing
        };
        let now = Instant::now();
        let (spec, handle) = {
            let e = &mut self.entries[&id];
            e.actor = None;
            (e.spec.clone(), e.handle.clone())
        };
        // The dead actor's state was dropped: its guards killed its process groups.
        handle.set_peer(None);
        lock(&self.args.shared.pgids).retain(|_, svc| *svc != id);
        for action in self.fleet.actor_down(&id, &why, now) {
            match action {
                FleetAction::Respawn(id) => {
                    tracing::warn!(service = %id, %why, "service actor down; respawning");
                    self.spawn_service(myself, id.clone(), &spec).await?;
                    // It restarts from not_started: dependency gating starts it.
                    handle.set_state(ServiceState::NotStarted, "respawned");
                    let actions = self.fleet.actor_up(&id, Instant::now());
                    self.carry_out(actions);
                }
                FleetAction::Observed(id, obs) => {
                    if let Observation::Transition { to, reason, .. } = &obs {
                        handle.set_state(*to, reason);
                    }
                    self.tell_observed(id, obs);
                }
                other => self.carry_out(vec![other]),
            }
        }
        Ok(())
    }

    fn set_routes(&self, id: &ServiceId, tools: &[mcpvisor_model::ToolInfo]) {
        let sep = &self.config.supervisor.tool_separator;
        let mut routes = write(&self.args.shared.routes);
        routes.retain(|_, (svc, _)| svc != id);
        for t in tools {
            let name = format!("{}{sep}{}", id.name, t.name);
            if name.len() <= mcpvisor_model::defaults::MAX_TOOL_NAME_LEN {
                routes.insert((id.agent.clone(), name), (id.clone(), t.name.clone()));
            }
        }
    }

    /// Puts a service's current config, state and shared records into the registry.
    fn upsert_to_registry(&self, id: &ServiceId) {
        if let Some(e) = self.entries.get(id) {
            self.to_registry(RegistryMsg::Upsert {
                spec: e.spec.clone(),
                id: id.clone(),
                state: self.fleet.state(id),
                stderr: e.stderr.clone(),
                metrics: e.handle.metrics().clone(),
            });
        }
    }

    /// Copies the table into a respawned registry: no service is asked anything, and no
    /// state, reason or error changes.
    fn rebuild_registry(&self) {
        for (id, e) in &self.entries {
            if let Some(m) = self.fleet.get(id) {
                let record = m.row.record(id, &e.spec, &e.stderr, e.handle.metrics());
                self.to_registry(RegistryMsg::Restore(Box::new(record)));
            }
        }
    }
}
