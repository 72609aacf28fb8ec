//! What the root does with what it learns: service reports and dead actors go through the fleet
//! core, whose actions it carries out (starts, respawns, and telling the registry, the state
//! file and waiters, in that order).

use super::*;

impl RootState {
    /// Starts every wanted, not yet started service whose dependencies meet their condition;
    /// records why the others wait (the fleet core decides).
    pub(super) fn evaluate(&mut self) {
        let actions = self.fleet.evaluate(Instant::now());
        self.carry_out(actions);
    }

    /// Carries out the fleet core's actions (a respawn is carried out by `on_child_down`).
    pub(super) fn carry_out(&mut self, actions: Vec<FleetAction>) {
        for action in actions {
            match action {
                FleetAction::Start(id) => {
                    if let Some(a) = self.entries.get(&id).and_then(|e| e.actor.clone()) {
                        let _ = a.cast(ServiceMsg::Start);
                    }
                }
                FleetAction::Wake(id) => {
                    if let Some(a) = self.entries.get(&id).and_then(|e| e.actor.clone()) {
                        let _ = a.cast(ServiceMsg::Wake);
                    }
                }
                FleetAction::Observed(id, obs) => self.tell_observed(id, obs),
                FleetAction::IdleStop(id) => {
                    if let Some(a) = self.entries.get(&id).and_then(|e| e.actor.clone()) {
                        let _ = a.cast(ServiceMsg::Stop {
                            force: false,
                            reply: None,
                        });
                    }
                }
                FleetAction::Respawn(id) => {
                    tracing::error!(service = %id, "respawn outside on_child_down ignored");
                }
            }
        }
    }

    /// Tells the registry what the fleet observed, then publishes the row to waiters — in
    /// that order, so a waiter's next query sees it.
    pub(super) fn tell_observed(&mut self, id: ServiceId, obs: Observation) {
        let msg = match obs {
            Observation::Transition { from, to, reason } => {
                // `idle` is the fleet's word for a stop it made, and a stop by hand of an idle
                // service is the fleet's alone: callers holding the handle see them too. (A
                // wake's `starting` and later states are the actor's own.)
                let fleet_only = to == ServiceState::Idle
                    || (from == ServiceState::Idle && to == ServiceState::Stopped);
                if fleet_only {
                    if let Some(e) = self.entries.get(&id) {
                        e.handle.set_state(to, &reason);
                    }
                }
                RegistryMsg::State {
                    id: id.clone(),
                    from,
                    to,
                    reason,
                    at: Timestamp::now(),
                }
            }
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
    pub(super) fn observe_state(&mut self, id: &ServiceId, to: ServiceState, reason: String) {
        let actions = self.fleet.observe(id, to, reason, Instant::now());
        self.carry_out(actions);
    }

    pub(super) fn on_report(&mut self, r: ServiceReport) {
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
                let old = std::mem::replace(&mut m.row.tools, tools.clone());
                m.row.server = Some(server.clone());
                m.row.stale = stale;
                self.set_routes(&id, &old, &tools);
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
            ServiceReport::Notice(event) => self.to_registry(RegistryMsg::Publish(event)),
            ServiceReport::Idle { id } => {
                // A call may have begun since the actor looked: it asks again next window.
                let busy = self.entries.get(&id).is_none_or(|e| {
                    e.spec
                        .config
                        .idle_stop
                        .is_none_or(|w| e.handle.activity().idle_left(w).is_some())
                });
                if busy {
                    return;
                }
                let actions = self.fleet.idle_due(&id);
                self.carry_out(actions);
            }
            ServiceReport::Process {
                id,
                pid,
                identity,
                restarts,
                sandbox,
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
                    m.row.sandbox = sandbox.clone();
                    m.row.restarts = restarts;
                    m.row.process = record;
                    self.to_registry(RegistryMsg::Process {
                        id,
                        pid,
                        restarts,
                        sandbox,
                    });
                }
            }
        }
    }

    pub(super) async fn on_child_down(
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

    /// Moves a service's call routes from its `old` tools to its `new` ones. Only its own keys
    /// are touched: 1,000 services becoming healthy are not 1,000 scans of every route.
    pub(super) fn set_routes(
        &self,
        id: &ServiceId,
        old: &[mcpvisor_model::ToolInfo],
        new: &[mcpvisor_model::ToolInfo],
    ) {
        let sep = &self.config.supervisor.tool_separator;
        let key = |t: &mcpvisor_model::ToolInfo| {
            let name = format!("{}{sep}{}", id.name, t.name);
            (name.len() <= mcpvisor_model::defaults::MAX_TOOL_NAME_LEN)
                .then(|| (id.agent.clone(), name))
        };
        let mut routes = write(&self.args.shared.routes);
        for k in old.iter().filter_map(key) {
            if routes.get(&k).is_some_and(|(svc, _)| svc == id) {
                routes.remove(&k);
            }
        }
        for t in new {
            if let Some(k) = key(t) {
                routes.insert(k, (id.clone(), t.name.clone()));
            }
        }
    }

    /// Puts a service's current config, state and shared records into the registry.
    pub(super) fn upsert_to_registry(&self, id: &ServiceId) {
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
    pub(super) fn rebuild_registry(&self) {
        for (id, e) in &self.entries {
            if let Some(m) = self.fleet.get(id) {
                let record = m.row.record(id, &e.spec, &e.stderr, e.handle.metrics());
                self.to_registry(RegistryMsg::Restore(Box::new(record)));
            }
        }
    }
}
