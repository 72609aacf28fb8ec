//! The registry actor: a thin shell that feeds [`Registry`] its messages and fans out the
//! events it returns. No handler awaits anything, so a query is answered as soon as it reaches
//! the front of the mailbox.

use mcpvisor_model::defaults::{EVENT_BUFFER, TOOL_SEPARATOR};
use mcpvisor_model::{
    Event, LogRing, ServerInfo, ServiceId, ServiceMetrics, ServiceSpec, ServiceState, Timestamp,
    ToolList,
};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use std::time::Instant;
use tokio::sync::broadcast;

use crate::events::EventStream;
use crate::registry::{Moment, Registry, ServiceRecord};
use crate::view::{LookupError, Scope, ServiceView, ToolEntry, ToolTarget};

/// The registry actor (spawn with [`RegistryArgs`], talk with [`RegistryMsg`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct RegistryActor;

/// What the registry actor is spawned with.
#[derive(Debug, Clone)]
pub struct RegistryArgs {
    /// Separator of namespaced tool names (`service{sep}tool`); not empty.
    pub tool_separator: String,
    /// The event channel to publish on. Its owner (the Store) keeps it across registry
    /// respawns, so a subscription outlives any registry; `None` makes a channel of its own.
    pub events: Option<broadcast::Sender<Event>>,
}

impl Default for RegistryArgs {
    fn default() -> Self {
        RegistryArgs {
            tool_separator: TOOL_SEPARATOR.to_owned(),
            events: None,
        }
    }
}

/// Why the registry actor would not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// [`RegistryArgs::tool_separator`] is empty.
    #[error("the tool separator is empty; set supervisor.tool_separator to 1-4 characters such as \"__\"")]
    EmptySeparator,
}

/// The registry actor's state: the pure registry and the sending side of the event channel.
#[derive(Debug)]
pub struct RegistryState {
    registry: Registry,
    events: broadcast::Sender<Event>,
}

impl RegistryState {
    /// Sends `event` to every subscriber. Never waits: with no subscriber it is dropped, and a
    /// subscriber that does not read loses its oldest events.
    fn publish(&self, event: Event) {
        let _ = self.events.send(event);
    }
}

/// Everything the registry actor understands. Reports (`Upsert` … `Publish`) are cast; queries
/// carry an [`RpcReplyPort`] and are called.
// `Upsert` carries its spec by value, as the other crates send it: ractor boxes every message
// on its way into the mailbox, so the enum's size costs one allocation per message either way.
#[allow(clippy::large_enum_variant)]
pub enum RegistryMsg {
    /// Register a service, or replace its config. Emits `ConfigChanged` (`Added` or `Updated`),
    /// and `StateChanged` when an update changes its state.
    Upsert {
        /// Its config.
        spec: ServiceSpec,
        /// Its identity.
        id: ServiceId,
        /// Its state now (`starting`, or `not_started` when disabled or waiting).
        state: ServiceState,
        /// Its stderr ring, shared with its service actor.
        stderr: LogRing,
        /// Its counters, shared with its service actor.
        metrics: ServiceMetrics,
    },
    /// Forget a service and its tools. Emits `ConfigChanged { Removed }`.
    Remove {
        /// The service.
        id: ServiceId,
    },
    /// A state transition. Emits `StateChanged` as given; entering `reconnecting`,
    /// `unreachable` or `failed` sets the service's last error to `reason`.
    State {
        /// The service.
        id: ServiceId,
        /// The previous state.
        from: ServiceState,
        /// The new state.
        to: ServiceState,
        /// Why.
        reason: String,
        /// When.
        at: Timestamp,
    },
    /// A new tool list. Replaces the old one in the index; emits `ToolsChanged`.
    Tools {
        /// The service.
        id: ServiceId,
        /// Its tools, in the server's order.
        tools: ToolList,
        /// The server's identity, when known (`None` keeps the previous one).
        server: Option<ServerInfo>,
        /// Whether these are last-known tools not yet confirmed by the live server.
        stale: bool,
    },
    /// The child's pid and the restart count.
    Process {
        /// The service.
        id: ServiceId,
        /// The child's pid, while one runs.
        pid: Option<u32>,
        /// Re-establishments after the first.
        restarts: u64,
        /// What of its sandbox applies to the running server, if it has one.
        sandbox: Option<serde_json::Value>,
    },
    /// Send an event from elsewhere (e.g. a persistence error) to every subscriber, as is.
    Publish(Event),
    /// Put back a whole record as its owner knows it (after this registry was respawned):
    /// state, reason, last error, tools, process. Emits nothing: nothing changed.
    Restore(Box<ServiceRecord>),
    /// Why a service stays in its state changed (e.g. which dependency it waits for); the
    /// state did not, so nothing is emitted.
    Reason {
        /// The service.
        id: ServiceId,
        /// The new reason.
        reason: String,
    },
    /// The services of a scope, without stderr.
    List {
        /// Which services.
        scope: Scope,
        /// The answer.
        reply: RpcReplyPort<Vec<ServiceView>>,
    },
    /// One service by its name in a scope, with its stderr tail.
    Get {
        /// Where to look.
        scope: Scope,
        /// Its name in that scope.
        name: String,
        /// The answer.
        reply: RpcReplyPort<Result<ServiceView, LookupError>>,
    },
    /// Every tool of a scope.
    ListTools {
        /// Which services.
        scope: Scope,
        /// The answer.
        reply: RpcReplyPort<Vec<ToolEntry>>,
    },
    /// Where a call to a tool name goes.
    ResolveTool {
        /// Where to look.
        scope: Scope,
        /// A namespaced name (full or shortened) or a unique bare name.
        name: String,
        /// The answer.
        reply: RpcReplyPort<Result<ToolTarget, LookupError>>,
    },
    /// A stream of every event from now on.
    Subscribe {
        /// The answer.
        reply: RpcReplyPort<EventStream>,
    },
    /// Every record, named as in [`Scope::All`] (for rebuilding after a restart).
    Snapshot {
        /// The answer.
        reply: RpcReplyPort<Vec<ServiceView>>,
    },
}

impl Actor for RegistryActor {
    type Msg = RegistryMsg;
    type State = RegistryState;
    type Arguments = RegistryArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: RegistryArgs,
    ) -> Result<RegistryState, ActorProcessingErr> {
        if args.tool_separator.is_empty() {
            return Err(RegistryError::EmptySeparator.into());
        }
        let events = match args.events {
            Some(tx) => tx,
            None => broadcast::channel(EVENT_BUFFER).0,
        };
        Ok(RegistryState {
            registry: Registry::new(args.tool_separator),
            events,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: RegistryMsg,
        state: &mut RegistryState,
    ) -> Result<(), ActorProcessingErr> {
        // Replies are best effort: a caller that gave up has dropped its port.
        match msg {
            RegistryMsg::Upsert {
                spec,
                id,
                state: service_state,
                stderr,
                metrics,
            } => {
                tracing::debug!(service = %id, state = %service_state, "registered");
                let events =
                    state
                        .registry
                        .upsert(id, spec, service_state, stderr, metrics, Moment::now());
                for event in events {
                    state.publish(event);
                }
            }
            RegistryMsg::Remove { id } => {
                tracing::debug!(service = %id, "removed");
                if let Some(event) = state.registry.remove(&id, Timestamp::now()) {
                    state.publish(event);
                }
            }
            RegistryMsg::State {
                id,
                from,
                to,
                reason,
                at,
            } => {
                tracing::debug!(service = %id, %from, %to, %reason, "state changed");
                match state
                    .registry
                    .set_state(&id, from, to, reason, at, Instant::now())
                {
                    Some(event) => state.publish(event),
                    None => {
                        tracing::debug!(service = %id, "state of an unregistered service ignored")
                    }
                }
            }
            RegistryMsg::Tools {
                id,
                tools,
                server,
                stale,
            } => {
                tracing::debug!(service = %id, tools = tools.len(), stale, "tools listed");
                match state
                    .registry
                    .set_tools(&id, tools, server, stale, Timestamp::now())
                {
                    Some(event) => state.publish(event),
                    None => {
                        tracing::debug!(service = %id, "tools of an unregistered service ignored")
                    }
                }
            }
            RegistryMsg::Process {
                id,
                pid,
                restarts,
                sandbox,
            } => {
                if !state.registry.set_process(&id, pid, restarts, sandbox) {
                    tracing::debug!(service = %id, "process of an unregistered service ignored");
                }
            }
            RegistryMsg::Publish(event) => state.publish(event),
            RegistryMsg::Restore(record) => state.registry.restore(*record),
            RegistryMsg::Reason { id, reason } => state.registry.set_reason(&id, reason),
            RegistryMsg::List { scope, reply } => {
                let _ = reply.send(state.registry.list(&scope, Instant::now()));
            }
            RegistryMsg::Get { scope, name, reply } => {
                let _ = reply.send(state.registry.get(&scope, &name, Instant::now()));
            }
            RegistryMsg::ListTools { scope, reply } => {
                let _ = reply.send(state.registry.list_tools(&scope));
            }
            RegistryMsg::ResolveTool { scope, name, reply } => {
                let _ = reply.send(state.registry.resolve_tool(&scope, &name));
            }
            RegistryMsg::Subscribe { reply } => {
                let _ = reply.send(EventStream::from(state.events.subscribe()));
            }
            RegistryMsg::Snapshot { reply } => {
                let _ = reply.send(state.registry.snapshot(Instant::now()));
            }
        }
        Ok(())
    }
}
