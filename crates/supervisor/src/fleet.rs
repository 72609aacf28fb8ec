//! The fleet core: every supervision decision above one service, as a pure state machine.
//!
//! Shaped like the service `Machine`: inputs in — a service's observed state, a service actor
//! that died, a service wanted or not, time passed in — and [`Action`]s out, with one
//! observed-state table ([`Row`]s) that every other view is a projection of. It owns the
//! dependency gating (a service starts once each dependency meets its condition, and says what
//! it waits for as a structured [`Blocker`] list), the respawn-or-give-up verdict for a
//! panicked service actor (its restart intensity), and the rule that no transition is ever
//! recorded from a state to itself. No actor, no clock, no I/O: the root actor feeds it and
//! carries out its actions.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use indexmap::IndexMap;
use mcpvisor_model::{
    DependencyCondition, IntensityConfig, RestartVerdict, RestartWindow, ServiceId, ServiceSpec,
    ServiceState, StartMode,
};

use crate::table::Row;

/// A dependency a service waits for, and the state it is in.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Blocker {
    /// The dependency's name (in the service's own scope).
    pub service: String,
    /// Its state now.
    pub state: ServiceState,
}

/// What the fleet observed of one service: a transition, or (same state) a new reason.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Observation {
    Transition {
        from: ServiceState,
        to: ServiceState,
        reason: String,
    },
    Reason(String),
}

/// What the root must do.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Action {
    /// Tell the service actor to start.
    Start(ServiceId),
    /// Tell the service actor to start for a call (lazy or idle: not a restart).
    Wake(ServiceId),
    /// Spawn a new service actor for it (the old one died; its guards killed its processes).
    Respawn(ServiceId),
    /// Tell the registry, then publish the row to waiters.
    Observed(ServiceId, Observation),
    /// Stop it gracefully into `idle` (no calls for `idle_stop`, or a lazy service whose
    /// tools were just learned).
    IdleStop(ServiceId),
}

/// One service as the fleet sees it.
pub(crate) struct Member {
    deps: Vec<(ServiceId, DependencyCondition)>,
    intensity: IntensityConfig,
    /// Asked to run (not disabled, not stopped by hand).
    pub wanted: bool,
    /// Told to start since it was last wanted or respawned.
    pub started: bool,
    /// Its service actor is alive.
    pub alive: bool,
    /// Calls may start it (`start: lazy` or an `idle_stop`).
    on_demand: bool,
    idle_stop: Option<Duration>,
    /// Its `timeouts.connect`: how long a call that started it waits for it.
    connect: Duration,
    /// Wanted, but held until a call demands it (lazy, or stopped for idleness).
    pub parked: bool,
    /// An idle stop is under way: its `stopped` is recorded as `idle`, with this note.
    idling: Option<String>,
    /// Lazy with no known tools: started once to learn them, then stopped into `idle`.
    learning: bool,
    /// Unparked by a call: its next start is a wake, not a restart.
    woken: bool,
    panics: RestartWindow,
    /// What it waits for (empty when it does not wait).
    pub blocked_by: Vec<Blocker>,
    /// What it is observed to be.
    pub row: Row,
}

impl Member {
    /// Whether it runs, is on its way up or is still stopping (so what it depends on must
    /// keep running: stops go dependents first).
    fn runs(&self) -> bool {
        matches!(
            self.row.state,
            ServiceState::Starting
                | ServiceState::Healthy
                | ServiceState::Warning
                | ServiceState::Reconnecting
                | ServiceState::Unreachable
                | ServiceState::Stopping
        )
    }
}

/// Whether `state` meets `condition`.
pub(crate) fn meets(state: ServiceState, condition: DependencyCondition) -> bool {
    match condition {
        DependencyCondition::Healthy => state.is_up(),
        DependencyCondition::Started => matches!(
            state,
            ServiceState::Healthy | ServiceState::Warning | ServiceState::Reconnecting
        ),
    }
}

fn deps_of(id: &ServiceId, spec: &ServiceSpec) -> Vec<(ServiceId, DependencyCondition)> {
    spec.config
        .depends_on
        .iter()
        .map(|d| {
            (
                ServiceId {
                    agent: id.agent.clone(),
                    name: d.name.clone(),
                },
                d.condition,
            )
        })
        .collect()
}

/// The fleet: one [`Member`] per service, in registration order.
#[derive(Default)]
pub(crate) struct Fleet {
    members: IndexMap<ServiceId, Member>,
    /// Set once shutdown began: nothing is started any more.
    pub shutting_down: bool,
}

impl Fleet {
    /// Registers `id` (its actor alive, not started), wanted or not. A wanted lazy service
    /// is parked in `idle` when its tools are known (`tools_known`), else started once to
    /// learn them.
    pub fn insert(&mut self, id: ServiceId, spec: &ServiceSpec, wanted: bool, tools_known: bool) {
        let wanted = wanted && !spec.config.disabled;
        let lazy = wanted && spec.config.start == StartMode::Lazy;
        let mut row = Row::new(ServiceState::NotStarted);
        if lazy && tools_known {
            row = Row::new(ServiceState::Idle);
            row.reason = "lazy: starts on its first call".into();
        }
        let member = Member {
            deps: deps_of(&id, spec),
            intensity: spec.config.intensity,
            wanted,
            started: false,
            alive: true,
            on_demand: spec.config.on_demand(),
            idle_stop: spec.config.idle_stop,
            connect: spec.config.timeouts.connect,
            parked: lazy && tools_known,
            idling: None,
            learning: lazy && !tools_known,
            woken: false,
            panics: RestartWindow::new(spec.config.intensity),
            blocked_by: Vec::new(),
            row,
        };
        self.members.insert(id, member);
    }

    /// Forgets `id`.
    pub fn remove(&mut self, id: &ServiceId) -> Option<Member> {
        self.members.shift_remove(id)
    }

    /// A new spec for `id` (dependencies and intensity; `wanted` is the caller's to set).
    pub fn respec(&mut self, id: &ServiceId, spec: &ServiceSpec) {
        if let Some(m) = self.members.get_mut(id) {
            m.deps = deps_of(id, spec);
            m.intensity = spec.config.intensity;
            m.on_demand = spec.config.on_demand();
            m.idle_stop = spec.config.idle_stop;
            m.connect = spec.config.timeouts.connect;
            // No longer started by calls: it runs like any other (if wanted).
            if !m.on_demand {
                m.parked = false;
                m.idling = None;
                m.learning = false;
            }
        }
    }

    pub fn get(&self, id: &ServiceId) -> Option<&Member> {
        self.members.get(id)
    }

    pub fn get_mut(&mut self, id: &ServiceId) -> Option<&mut Member> {
        self.members.get_mut(id)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&ServiceId, &Member)> {
        self.members.iter()
    }

    /// The observed state of `id` (`not_started` for an unknown one).
    pub fn state(&self, id: &ServiceId) -> ServiceState {
        self.members
            .get(id)
            .map(|m| m.row.state)
            .unwrap_or(ServiceState::NotStarted)
    }

    /// Marks `id` wanted (a start by hand) or not (a stop by hand). A start revives a service
    /// given up on after panics (its window starts afresh) and is gated like any start; a
    /// stop of an `idle` service makes it `stopped` (calls no longer start it).
    pub fn want(&mut self, id: &ServiceId, wanted: bool, now: Instant) -> Vec<Action> {
        let Some(m) = self.members.get_mut(id) else {
            return Vec::new();
        };
        m.wanted = wanted;
        m.started = false;
        m.parked = false;
        m.idling = None;
        m.learning = false;
        if wanted && !m.alive {
            m.panics = RestartWindow::new(m.intensity);
        }
        if !wanted && m.row.state == ServiceState::Idle {
            return self.observe(id, ServiceState::Stopped, "stopped by hand".into(), now);
        }
        Vec::new()
    }

    /// A call wants `id` running. For a service calls may start, unparks it and the parked
    /// services it depends on (they start first) and returns how long the call should wait for
    /// it: its `timeouts.connect` plus its dependencies'. `None`: calls do not start it.
    pub fn demand(&mut self, id: &ServiceId) -> Option<Duration> {
        let m = self.members.get(id)?;
        if self.shutting_down || !m.on_demand || !m.wanted || !m.alive {
            return None;
        }
        Some(self.unpark(id, 0))
    }

    fn unpark(&mut self, id: &ServiceId, depth: usize) -> Duration {
        let Some(m) = self.members.get_mut(id) else {
            return Duration::ZERO;
        };
        m.woken |= m.parked;
        m.parked = false;
        // An idle stop under way still ends in `idle` (then it starts again for the call).
        if m.row.state != ServiceState::Stopping {
            m.idling = None;
        }
        m.learning = false;
        let own = m.connect;
        let deps: Vec<ServiceId> = m.deps.iter().map(|(d, _)| d.clone()).collect();
        let mut before = Duration::ZERO;
        // Dependency cycles are refused by the config; the depth bound only guards that.
        if depth <= self.members.len() {
            for dep in deps {
                if self.members.get(&dep).is_some_and(|d| d.parked) {
                    before = before.max(self.unpark(&dep, depth + 1));
                }
            }
        }
        own + before
    }

    /// The service actor of `id` found it without calls for its `idle_stop`. Unless something
    /// running depends on it (it is asked again after another window), it is parked and
    /// stopped into `idle`.
    pub fn idle_due(&mut self, id: &ServiceId) -> Vec<Action> {
        if self.shutting_down {
            return Vec::new();
        }
        let Some(m) = self.members.get(id) else {
            return Vec::new();
        };
        if !m.row.state.is_up() || !m.wanted || m.parked || m.idle_stop.is_none() {
            return Vec::new();
        }
        if self.needed(id) {
            return Vec::new();
        }
        let note = match m.idle_stop {
            Some(d) => format!("no calls for {} (idle_stop)", humantime::format_duration(d)),
            None => "idle".to_owned(),
        };
        self.park_for_idle(id, note)
    }

    /// Whether a service that depends on `id` runs, or waits to start.
    fn needed(&self, id: &ServiceId) -> bool {
        self.members.values().any(|d| {
            d.deps.iter().any(|(dep, _)| dep == id)
                && (d.runs() || (d.wanted && !d.parked && d.row.state == ServiceState::NotStarted))
        })
    }

    fn park_for_idle(&mut self, id: &ServiceId, note: String) -> Vec<Action> {
        let Some(m) = self.members.get_mut(id) else {
            return Vec::new();
        };
        m.parked = true;
        m.idling = Some(note);
        m.learning = false;
        m.started = false;
        vec![Action::IdleStop(id.clone())]
    }

    /// Records a report of `id` in `to` with `reason`: a transition from the row's state, or
    /// only a new reason when the state did not change. The `stopped` of an idle stop is
    /// recorded as `idle`; a lazy service that came up to learn its tools is stopped again.
    pub fn observe(
        &mut self,
        id: &ServiceId,
        to: ServiceState,
        reason: String,
        now: Instant,
    ) -> Vec<Action> {
        let Some(m) = self.members.get_mut(id) else {
            return Vec::new();
        };
        let (to, reason) = match (&m.idling, to) {
            (Some(note), ServiceState::Stopping) => (to, format!("{note}: stopping")),
            (Some(note), ServiceState::Stopped) => {
                let reason = format!("{note}; the next call starts it");
                m.idling = None;
                (ServiceState::Idle, reason)
            }
            _ => (to, reason),
        };
        let learned = m.learning && to.is_up();
        if learned {
            m.learning = false;
        }
        let obs = match m.row.transition(to, reason.clone(), now) {
            Some(from) => Observation::Transition { from, to, reason },
            None => Observation::Reason(reason),
        };
        let mut out = vec![Action::Observed(id.clone(), obs)];
        // Learned while something that depends on it wants it: it stays up for that.
        if learned && !self.needed(id) {
            out.extend(self.park_for_idle(id, "lazy: tools learned".to_owned()));
        }
        out
    }

    /// Starts every wanted, alive, not yet started service whose dependencies meet their
    /// condition; records what the others wait for (as their reason while `not_started`). A
    /// parked (lazy or idle) dependency of a service that is to run is unparked and started
    /// first.
    pub fn evaluate(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        if self.shutting_down {
            return out;
        }
        // Each extra pass follows an unparked dependency: at most one per service.
        for _ in 0..=self.members.len() {
            if !self.evaluate_pass(now, &mut out) {
                break;
            }
        }
        out
    }

    /// One pass of [`evaluate`](Self::evaluate); true when it unparked a dependency.
    fn evaluate_pass(&mut self, now: Instant, out: &mut Vec<Action>) -> bool {
        let mut unparked = false;
        // Only those still to start are looked at (a report during a cold start of 1,000
        // would otherwise copy every id).
        let ids: Vec<ServiceId> = self
            .members
            .iter()
            .filter(|(_, m)| m.wanted && !m.started && m.alive && !m.parked)
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            let Some(m) = self.members.get(&id) else {
                continue;
            };
            if !m.wanted || m.started || !m.alive || m.parked {
                continue;
            }
            let parked: Vec<ServiceId> = m
                .deps
                .iter()
                .filter(|(dep, _)| self.members.get(dep).is_some_and(|d| d.parked))
                .map(|(dep, _)| dep.clone())
                .collect();
            for dep in parked {
                self.unpark(&dep, 0);
                unparked = true;
            }
            let Some(m) = self.members.get(&id) else {
                continue;
            };
            let blockers: Vec<Blocker> = m
                .deps
                .iter()
                .filter_map(|(dep, cond)| {
                    let st = self.state(dep);
                    (!meets(st, *cond)).then(|| Blocker {
                        service: dep.name.to_string(),
                        state: st,
                    })
                })
                .collect();
            let Some(m) = self.members.get_mut(&id) else {
                continue;
            };
            if blockers.is_empty() {
                m.started = true;
                m.blocked_by.clear();
                out.push(if std::mem::take(&mut m.woken) {
                    Action::Wake(id)
                } else {
                    Action::Start(id)
                });
                continue;
            }
            if m.blocked_by == blockers {
                continue;
            }
            m.blocked_by = blockers;
            if m.row.state == ServiceState::NotStarted {
                let reason = waiting_reason(&m.blocked_by);
                out.extend(self.observe(&id, ServiceState::NotStarted, reason, now));
            }
        }
        unparked
    }

    /// The service actor of `id` died (`why`; "stopped" when it was stopped on purpose).
    /// Within its restart intensity it is respawned (and gated again by its dependencies);
    /// beyond it, `failed` until started by hand.
    pub fn actor_down(&mut self, id: &ServiceId, why: &str, now: Instant) -> Vec<Action> {
        let Some(m) = self.members.get_mut(id) else {
            return Vec::new();
        };
        m.alive = false;
        m.started = false;
        let verdict = m.panics.record(now);
        if why == "stopped" || (!m.wanted && m.row.state == ServiceState::Stopped) {
            return Vec::new();
        }
        let mut out = Vec::new();
        match verdict {
            RestartVerdict::Restart => {
                out.extend(self.observe(
                    id,
                    ServiceState::Reconnecting,
                    format!("service actor {why}; respawned"),
                    now,
                ));
                out.push(Action::Respawn(id.clone()));
            }
            RestartVerdict::GiveUp => {
                let i = self.members[id].intensity;
                let reason = format!(
                    "service actor {why}; more than {} restarts within {}: giving up until started by hand",
                    i.max_restarts,
                    humantime::format_duration(i.within)
                );
                out.extend(self.observe(id, ServiceState::Failed, reason, now));
            }
        }
        out
    }

    /// A new actor runs for `id`. It restarts from `not_started`: if its dependencies hold it
    /// back, that is what it is observed to be.
    pub fn actor_up(&mut self, id: &ServiceId, now: Instant) -> Vec<Action> {
        if let Some(m) = self.members.get_mut(id) {
            m.alive = true;
            m.started = false;
        }
        let mut out = self.evaluate(now);
        if self.members.get(id).is_some_and(|m| !m.started && m.wanted) {
            out.extend(self.observe(
                id,
                ServiceState::NotStarted,
                "service actor respawned".into(),
                now,
            ));
            if let Some(m) = self.members.get_mut(id) {
                m.blocked_by.clear();
            }
            out.extend(self.evaluate(now));
        }
        out
    }
}

impl Fleet {
    /// The services whose outcome is known: up; failed at least once (`reconnecting`,
    /// `unreachable`, `failed`); not asked to run (`not_started` and not wanted — disabled or
    /// stopped by hand — or `stopped` when not in `expect_running`); or held back for good (a
    /// dependency it waits for has settled without coming up). `starting`/`stopping` never
    /// are. Waiting for these instead of `healthy` answers as soon as the outcome is known.
    pub fn settled(&self, expect_running: &HashSet<ServiceId>) -> HashSet<ServiceId> {
        let mut done: HashSet<ServiceId> = HashSet::new();
        // Each pass settles at least one more service or stops: at most n + 1 passes.
        for _ in 0..=self.members.len() {
            let mut changed = false;
            for (id, m) in &self.members {
                if done.contains(id) {
                    continue;
                }
                let held_back = m.blocked_by.iter().any(|b| {
                    let dep = ServiceId {
                        agent: id.agent.clone(),
                        name: match mcpvisor_model::ServiceName::parse(&b.service) {
                            Ok(n) => n,
                            Err(_) => return false,
                        },
                    };
                    done.contains(&dep) && !self.state(&dep).is_up()
                });
                let now = match m.row.state {
                    ServiceState::Healthy
                    | ServiceState::Warning
                    | ServiceState::Reconnecting
                    | ServiceState::Unreachable
                    | ServiceState::Failed => true,
                    ServiceState::Stopped => !expect_running.contains(id) || held_back,
                    ServiceState::Starting | ServiceState::Stopping => false,
                    ServiceState::NotStarted => !m.wanted || held_back,
                    ServiceState::Idle => true,
                };
                if now {
                    done.insert(id.clone());
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        done
    }
}

/// "waiting for db (unreachable), cache (starting)".
pub(crate) fn waiting_reason(blockers: &[Blocker]) -> String {
    let list: Vec<String> = blockers
        .iter()
        .map(|b| format!("{} ({})", b.service, b.state))
        .collect();
    format!("waiting for {}", list.join(", "))
}

#[cfg(test)]
mod tests;
