//! Changes to the configuration: add (a batch, dependencies checked per scope), update
//! (restart only when the endpoint changed), remove (refused while others depend on it).

use std::collections::{HashMap, HashSet};

use super::*;

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

impl RootState {
    pub(super) async fn add(
        &mut self,
        myself: &ActorRef<RootMsg>,
        items: Vec<NewEntry>,
    ) -> Result<AddReport, StoreError> {
        let mut report = AddReport::default();
        let mut accepted: Vec<(ServiceId, ServiceSpec)> = Vec::new();
        let single = items.len() == 1;
        let mut all_errors = Vec::new();
        // The batch's ids so far (a duplicate in one batch is refused like an existing one).
        let mut batch: HashSet<ServiceId> = HashSet::new();
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
            if self.entries.contains_key(&id) || !batch.insert(id.clone()) {
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
        // Dependencies: checked per scope against existing services plus this batch, one graph
        // per scope per round (a batch of 1,000 is one check, not 1,000), until no entry left
        // has an unknown dependency or is in a cycle.
        let mut rejected: HashSet<ServiceId> = HashSet::new();
        loop {
            let bad = self.dependency_errors(&accepted, &rejected);
            if bad.is_empty() {
                break;
            }
            for (id, errs) in bad {
                report.failed.push((
                    id.to_string(),
                    errs.iter().map(ToString::to_string).collect(),
                ));
                all_errors.extend(errs);
                rejected.insert(id);
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

    /// The entries of `accepted` (less `rejected`) with an unknown dependency or in a cycle,
    /// each with its errors: one graph per scope, over its existing services plus the batch.
    fn dependency_errors(
        &self,
        accepted: &[(ServiceId, ServiceSpec)],
        rejected: &HashSet<ServiceId>,
    ) -> Vec<(ServiceId, Vec<ConfigError>)> {
        let live = |k: &ServiceId| !rejected.contains(k);
        let mut errors: HashMap<&Option<AgentId>, Vec<ConfigError>> = HashMap::new();
        for (id, _) in accepted.iter().filter(|(k, _)| live(k)) {
            let agent = &id.agent;
            if errors.contains_key(agent) {
                continue;
            }
            let scope_specs = self
                .entries
                .iter()
                .filter(|(k, _)| k.agent == *agent)
                .map(|(_, e)| &e.spec)
                .chain(
                    accepted
                        .iter()
                        .filter(|(k, _)| k.agent == *agent && live(k))
                        .map(|(_, s)| s),
                );
            errors.insert(agent, DependencyGraph::from_specs(scope_specs).check());
        }
        let mut bad = Vec::new();
        for (id, spec) in accepted.iter().filter(|(k, _)| live(k)) {
            let errs: Vec<ConfigError> = errors
                .get(&id.agent)
                .into_iter()
                .flatten()
                .filter(|e| match e {
                    ConfigError::UnknownDependency { service, .. } => service == spec.name.as_str(),
                    ConfigError::DependencyCycle { cycle, .. } => {
                        cycle.iter().any(|c| c == spec.name.as_str())
                    }
                    _ => false,
                })
                .cloned()
                .collect();
            if !errs.is_empty() {
                bad.push((id.clone(), errs));
            }
        }
        bad
    }

    /// Puts `spec` into the configuration, in its scope (replacing one of the same name).
    pub(super) fn config_insert(&mut self, id: &ServiceId, spec: &ServiceSpec) {
        let services = match &id.agent {
            None => &mut self.config.services,
            Some(a) => &mut self.config.agents.entry(a.clone()).or_default().services,
        };
        services.insert(spec.name.clone(), spec.clone());
    }

    pub(super) fn scope_graph(&self, agent: &Option<AgentId>) -> DependencyGraph {
        DependencyGraph::from_specs(
            self.entries
                .iter()
                .filter(|(k, _)| k.agent == *agent)
                .map(|(_, e)| &e.spec),
        )
    }

    pub(super) fn remove(
        &mut self,
        id: &ServiceId,
    ) -> Result<Option<ActorRef<ServiceMsg>>, StoreError> {
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
        if let Some(gone) = self.fleet.remove(id) {
            self.set_routes(id, &gone.row.tools, &[]);
        }
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

    pub(super) fn update(
        &mut self,
        id: &ServiceId,
        raw: Map<String, Value>,
    ) -> Result<bool, StoreError> {
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
        let tokens = self.token_file(id, &spec);
        if let Some(e) = self.entries.get_mut(id) {
            e.spec = spec.clone();
            e.handle.set_token_file(tokens);
        }
        self.fleet.respec(id, &spec);
        if spec.config.disabled {
            // Disabled: stop it and let a later enable start it again.
            let actions = self.fleet.want(id, false, Instant::now());
            self.carry_out(actions);
        } else if was_disabled {
            let actions = self.fleet.want(id, true, Instant::now());
            self.carry_out(actions);
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
}
