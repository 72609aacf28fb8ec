//! The registry itself, without an actor: records, tool index, views. Inputs in, events out.
//!
//! [`Registry`] does no I/O and reads no clock: every method that needs the time is handed it
//! (a [`Moment`], an [`Instant`] or a [`Timestamp`]), and every change returns the events it
//! causes instead of sending them. The actor in [`crate::actor`] feeds it messages and fans the
//! events out.

use std::collections::BTreeMap;
use std::time::Instant;

use mcpvisor_model::{
    suggest, ConfigChange, Event, LogRing, ServerInfo, ServiceId, ServiceMetrics, ServiceName,
    ServiceSpec, ServiceState, Timestamp, ToolList,
};

use crate::index::{namespaced_tool_name, ToolIndex, SUGGESTIONS};
use crate::view::{LookupError, Scope, ServiceView, ToolEntry, ToolTarget, STDERR_TAIL_LINES};

/// A point in time on both clocks: the monotonic one (durations in state) and the wall clock
/// (event timestamps).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Moment {
    /// Monotonic time, for "how long in this state".
    pub instant: Instant,
    /// Wall-clock time, for events.
    pub wall: Timestamp,
}

impl Moment {
    /// Reads both clocks.
    pub fn now() -> Self {
        Moment {
            instant: Instant::now(),
            wall: Timestamp::now(),
        }
    }
}

/// Everything the registry knows about one service.
#[derive(Debug, Clone)]
pub struct ServiceRecord {
    /// Its identity.
    pub id: ServiceId,
    /// Its config.
    pub spec: ServiceSpec,
    /// Its state.
    pub state: ServiceState,
    /// Why it is in that state.
    pub reason: String,
    /// When it entered that state.
    pub since: Instant,
    /// The server's identity from `initialize`, once known.
    pub server: Option<ServerInfo>,
    /// Its tools, in the server's order.
    pub tools: ToolList,
    /// Whether `tools` are last-known ones not yet confirmed by the live server.
    pub tools_stale: bool,
    /// The child's process id, while one runs.
    pub pid: Option<u32>,
    /// What of its sandbox applies to the running server, if it has one.
    pub sandbox: Option<serde_json::Value>,
    /// Re-establishments of the process or connection after the first.
    pub restarts: u64,
    /// The reason of the last transition to `reconnecting`, `unreachable` or `failed`.
    pub last_error: Option<String>,
    /// The tail of its stderr (shared with its service actor).
    pub stderr: LogRing,
    /// Its counters (shared with its service actor).
    pub metrics: ServiceMetrics,
}

impl ServiceRecord {
    /// Its summary as seen from `scope` at `now`, with up to `stderr_lines` lines of stderr.
    pub fn view(&self, scope: &Scope, now: Instant, stderr_lines: usize) -> ServiceView {
        let in_state = now.saturating_duration_since(self.since);
        ServiceView {
            id: self.id.clone(),
            name: scope.name_of(&self.id),
            state: self.state,
            reason: self.reason.clone(),
            transport: self.spec.config.transport(),
            tools: self.tools.len(),
            tools_stale: self.tools_stale,
            restarts: self.restarts,
            pid: self.pid,
            sandbox: self.sandbox.clone(),
            last_error: self.last_error.clone(),
            config: self.spec.redacted_raw(),
            server: self.server.clone(),
            stderr_tail: if stderr_lines == 0 {
                Vec::new()
            } else {
                self.stderr.tail(stderr_lines)
            },
            metrics: self.metrics.snapshot(self.state.availability(), in_state),
            state_for_ms: u64::try_from(in_state.as_millis()).unwrap_or(u64::MAX),
            on_demand: self.spec.config.on_demand(),
        }
    }
}

/// Whether entering `state` records its reason as the service's last error.
fn is_error_state(state: ServiceState) -> bool {
    matches!(
        state,
        ServiceState::Reconnecting | ServiceState::Unreachable | ServiceState::Failed
    )
}

/// The live registry: one [`ServiceRecord`] per service and the tool index of every scope.
#[derive(Debug)]
pub struct Registry {
    records: BTreeMap<ServiceId, ServiceRecord>,
    index: ToolIndex,
}

impl Default for Registry {
    fn default() -> Self {
        Registry::new(mcpvisor_model::defaults::TOOL_SEPARATOR)
    }
}

impl Registry {
    /// An empty registry whose namespaced tool names are `service{separator}tool`.
    pub fn new(separator: impl Into<String>) -> Self {
        Registry {
            records: BTreeMap::new(),
            index: ToolIndex::new(separator.into()),
        }
    }

    /// The separator of namespaced tool names.
    pub fn separator(&self) -> &str {
        self.index.separator()
    }

    /// How many services are registered.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether no service is registered.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The record of `id`.
    pub fn record(&self, id: &ServiceId) -> Option<&ServiceRecord> {
        self.records.get(id)
    }

    /// Every record, ordered by id (store services first, then each agent's).
    pub fn records(&self) -> impl Iterator<Item = &ServiceRecord> {
        self.records.values()
    }

    /// Registers `id` with `spec` in `state`, or replaces the config of an existing record.
    ///
    /// A new record starts with no tools and the reason `registered`: the event is
    /// `ConfigChanged { Added }`. An existing one gets the new spec, stderr ring and metrics and
    /// keeps its tools, pid and restart count until the service reports new ones: the event is
    /// `ConfigChanged { Updated }`, followed by `StateChanged` (reason `config updated`) when
    /// `state` differs from its current state.
    pub fn upsert(
        &mut self,
        id: ServiceId,
        spec: ServiceSpec,
        state: ServiceState,
        stderr: LogRing,
        metrics: ServiceMetrics,
        now: Moment,
    ) -> Vec<Event> {
        if let Some(rec) = self.records.get_mut(&id) {
            rec.spec = spec;
            rec.stderr = stderr;
            rec.metrics = metrics;
            let mut events = vec![Event::ConfigChanged {
                service: id.clone(),
                change: ConfigChange::Updated,
                at: now.wall,
            }];
            if rec.state != state {
                let from = rec.state;
                let reason = "config updated".to_owned();
                rec.state = state;
                rec.reason = reason.clone();
                rec.since = now.instant;
                events.push(Event::StateChanged {
                    service: id,
                    from,
                    to: state,
                    reason,
                    at: now.wall,
                });
            }
            return events;
        }
        let record = ServiceRecord {
            id: id.clone(),
            spec,
            state,
            reason: "registered".to_owned(),
            since: now.instant,
            server: None,
            tools: ToolList::from(Vec::new()),
            tools_stale: false,
            pid: None,
            sandbox: None,
            restarts: 0,
            last_error: None,
            stderr,
            metrics,
        };
        self.records.insert(id.clone(), record);
        vec![Event::ConfigChanged {
            service: id,
            change: ConfigChange::Added,
            at: now.wall,
        }]
    }

    /// Puts `record` in as it is (replacing any record of its id) and indexes its tools.
    /// Emits nothing: this is the owner's table being copied back after a respawn.
    pub fn restore(&mut self, record: ServiceRecord) {
        if let Some(old) = self.records.remove(&record.id) {
            self.index.remove(&old.id, &old.tools);
        }
        self.index.add(&record.id, &record.tools);
        self.records.insert(record.id.clone(), record);
    }

    /// Replaces why `id` stays in its state (no transition, so no event).
    pub fn set_reason(&mut self, id: &ServiceId, reason: String) {
        if let Some(rec) = self.records.get_mut(id) {
            rec.reason = reason;
        }
    }

    /// Forgets `id` and its tools. `None` when it was not registered.
    pub fn remove(&mut self, id: &ServiceId, at: Timestamp) -> Option<Event> {
        let rec = self.records.remove(id)?;
        self.index.remove(id, &rec.tools);
        Some(Event::ConfigChanged {
            service: rec.id,
            change: ConfigChange::Removed,
            at,
        })
    }

    /// Records a transition of `id` from `from` to `to`, seen at `now` (monotonic) and stamped
    /// `at`. Entering `reconnecting`, `unreachable` or `failed` sets the last error to `reason`.
    /// `None` when `id` is not registered (a late report from a removed service).
    pub fn set_state(
        &mut self,
        id: &ServiceId,
        from: ServiceState,
        to: ServiceState,
        reason: String,
        at: Timestamp,
        now: Instant,
    ) -> Option<Event> {
        let rec = self.records.get_mut(id)?;
        rec.state = to;
        rec.since = now;
        if is_error_state(to) {
            rec.last_error = Some(reason.clone());
        }
        rec.reason = reason.clone();
        Some(Event::StateChanged {
            service: id.clone(),
            from,
            to,
            reason,
            at,
        })
    }

    /// Replaces the tools of `id` (and its server info, when given) and re-indexes them.
    /// `None` when `id` is not registered.
    pub fn set_tools(
        &mut self,
        id: &ServiceId,
        tools: ToolList,
        server: Option<ServerInfo>,
        stale: bool,
        at: Timestamp,
    ) -> Option<Event> {
        let rec = self.records.get_mut(id)?;
        self.index.remove(id, &rec.tools);
        self.index.add(id, &tools);
        rec.tools = tools;
        rec.tools_stale = stale;
        if server.is_some() {
            rec.server = server;
        }
        Some(Event::ToolsChanged {
            service: id.clone(),
            count: rec.tools.len(),
            at,
        })
    }

    /// Records the child's pid, its sandbox and the restart count of `id`. `false` when it is not registered.
    pub fn set_process(
        &mut self,
        id: &ServiceId,
        pid: Option<u32>,
        restarts: u64,
        sandbox: Option<serde_json::Value>,
    ) -> bool {
        match self.records.get_mut(id) {
            Some(rec) => {
                rec.pid = pid;
                rec.sandbox = sandbox;
                rec.restarts = restarts;
                true
            }
            None => false,
        }
    }

    /// The services of `scope`, ordered by id, without stderr.
    pub fn list(&self, scope: &Scope, now: Instant) -> Vec<ServiceView> {
        self.records
            .values()
            .filter(|r| scope.contains(&r.id))
            .map(|r| r.view(scope, now, 0))
            .collect()
    }

    /// The service called `name` in `scope`, with its stderr tail.
    pub fn get(&self, scope: &Scope, name: &str, now: Instant) -> Result<ServiceView, LookupError> {
        match self.find(scope, name) {
            Some(rec) => Ok(rec.view(scope, now, STDERR_TAIL_LINES)),
            None => {
                let names: Vec<String> = self
                    .records
                    .keys()
                    .filter(|id| scope.contains(id))
                    .map(|id| scope.name_of(id))
                    .collect();
                Err(LookupError::UnknownService {
                    name: name.to_owned(),
                    suggestions: suggest(name, names.iter().map(String::as_str), SUGGESTIONS),
                })
            }
        }
    }

    /// The record called `name` in `scope`.
    fn find(&self, scope: &Scope, name: &str) -> Option<&ServiceRecord> {
        let id = match scope {
            Scope::Store => ServiceId::global(ServiceName::parse(name).ok()?),
            Scope::Agent(a) => ServiceId::agent(a.clone(), ServiceName::parse(name).ok()?),
            Scope::All => match name.split_once('/') {
                Some((agent, local)) => ServiceId::agent(
                    ServiceName::parse(agent).ok()?,
                    ServiceName::parse(local).ok()?,
                ),
                None => ServiceId::global(ServiceName::parse(name).ok()?),
            },
        };
        self.records.get(&id)
    }

    /// Every tool of `scope`: services ordered by id, tools in each server's order.
    pub fn list_tools(&self, scope: &Scope) -> Vec<ToolEntry> {
        let sep = self.separator();
        self.records
            .values()
            .filter(|r| scope.contains(&r.id))
            .flat_map(|r| {
                let prefix = scope.name_of(&r.id);
                r.tools.iter().map(move |t| ToolEntry {
                    name: namespaced_tool_name(&prefix, sep, &t.name),
                    service: r.id.clone(),
                    tool: t.clone(),
                    stale: r.tools_stale,
                })
            })
            .collect()
    }

    /// Where a call to `name` in `scope` goes: a namespaced name (full or shortened), or a bare
    /// tool name offered by exactly one service of the scope.
    pub fn resolve_tool(&self, scope: &Scope, name: &str) -> Result<ToolTarget, LookupError> {
        let unknown = || LookupError::UnknownTool {
            name: name.to_owned(),
            suggestions: Vec::new(),
        };
        // `svc{sep}tool` of a service that is not up and whose tools are not known (never
        // connected, no state file): say so, with its state and reason, rather than "no such
        // tool".
        let not_up = || {
            let (service, _) = name.split_once(self.separator())?;
            let rec = self.find(scope, service)?;
            (!rec.state.is_up() && rec.tools.is_empty()).then(|| LookupError::ServiceNotUp {
                service: service.to_owned(),
                state: rec.state,
                reason: rec.reason.clone(),
            })
        };
        let index = self
            .index
            .scope(scope)
            .ok_or_else(|| not_up().unwrap_or_else(unknown))?;
        let hit = index.resolve(name).map_err(|e| match e {
            LookupError::UnknownTool { .. } => not_up().unwrap_or(e),
            other => other,
        })?;
        let rec = self.records.get(hit.service).ok_or_else(unknown)?;
        Ok(ToolTarget {
            service: rec.id.clone(),
            tool: hit.tool.to_owned(),
            state: rec.state,
        })
    }

    /// Every record as seen from [`Scope::All`], for rebuilding another registry.
    pub fn snapshot(&self, now: Instant) -> Vec<ServiceView> {
        self.list(&Scope::All, now)
    }

    #[cfg(test)]
    fn scope_index_count(&self) -> usize {
        self.index.scope_count()
    }
}

#[cfg(test)]
mod tests;
