//! The root supervisor actor: owns the configuration, spawns and links the registry, the
//! persistence actor and one service actor per service, starts services in dependency order,
//! respawns what dies, and routes service reports to the registry and the state file.

use std::sync::{Arc, Mutex};
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

use crate::error::StoreError;
pub(crate) use crate::shared::{lock, read, write, Shared};
pub use changes::AddReport;
pub(crate) use changes::NewEntry;

mod changes;
mod reports;
use crate::fleet::{Action as FleetAction, Fleet, Observation};

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
    /// A call wants the service running: how long to wait for it (`None`: calls do not
    /// start it). Concurrent demands start it once.
    Demand {
        id: ServiceId,
        reply: RpcReplyPort<Option<std::time::Duration>>,
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
    /// Where remote services' OAuth tokens are.
    pub token_dir: Option<std::path::PathBuf>,
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
                let old = std::mem::replace(&mut m.row.tools, tools.clone());
                m.row.stale = true;
                state.set_routes(&id, &old, &tools);
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
                let actions = state.fleet.want(&id, wanted, Instant::now());
                state.carry_out(actions);
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
            RootMsg::Demand { id, reply } => {
                let wait = state.fleet.demand(&id);
                if wait.is_some() {
                    state.evaluate();
                }
                let _ = reply.send(wait);
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
        | ServiceReport::Process { id, .. }
        | ServiceReport::Idle { id } => Some(id),
        ServiceReport::Notice(
            Event::ResourceUpdated { service, .. }
            | Event::ListChanged { service, .. }
            | Event::ServerLog { service, .. },
        ) => Some(service),
        ServiceReport::Notice(_) => None,
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
        handle.set_relay(self.args.shared.relay.clone());
        handle.set_token_file(self.token_file(&id, &spec));
        write(&self.args.shared.handles).insert(id.clone(), handle.clone());
        write(&self.args.shared.stderr).insert(id.clone(), stderr.clone());
        let tools_known = self
            .args
            .stale_tools
            .iter()
            .any(|(known, tools)| *known == id && !tools.is_empty());
        self.fleet.insert(id.clone(), &spec, wanted, tools_known);
        let parked_reason = self
            .fleet
            .get(&id)
            .filter(|m| m.row.state == ServiceState::Idle)
            .map(|m| m.row.reason.clone());
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
        if let Some(reason) = parked_reason {
            if let Some(e) = self.entries.get(&id) {
                e.handle.set_state(ServiceState::Idle, &reason);
            }
            self.to_registry(RegistryMsg::Reason {
                id: id.clone(),
                reason,
            });
        }
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

    /// Where a remote service's OAuth tokens are (none for stdio or without a token dir).
    pub(crate) fn token_file(
        &self,
        id: &ServiceId,
        spec: &ServiceSpec,
    ) -> Option<std::path::PathBuf> {
        match (&self.args.token_dir, &spec.config.endpoint) {
            (Some(dir), mcpvisor_model::Endpoint::Remote { .. }) => Some(
                mcpvisor_service_actor::oauth::token_file(dir, &id.to_string()),
            ),
            _ => None,
        }
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
}
