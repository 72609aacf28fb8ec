//! Alerts (DESIGN §15): rules on the fleet's events → notices, delivered by commands and
//! webhooks without ever holding up supervision.
//!
//! [`AlertBook`] is the pure part: events, probe results and time in, [`Notice`]s out — which
//! rule fires for which service, rate-limited per rule and service (`every`), and the recovery
//! notice once a service a firing was sent for is back. [`run`] feeds it from the Store's event
//! channel (and, while a `probe_latency` or `restarts` rule exists, from a tick of
//! [`ALERT_TICK`](mcpvisor_model::defaults::ALERT_TICK)) and hands each notice to
//! [`deliver`](deliver::deliver) on its own task: retries with backoff, a deadline per attempt,
//! and an `alert_sent` / `alert_failed` event for the outcome.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mcpvisor_model::{AlertRule, AlertTrigger, Event, ServiceState, Timestamp};
use serde_json::{json, Value};

pub(crate) mod deliver;

/// Firing, or back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Firing,
    Recovered,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Firing => "firing",
            Kind::Recovered => "recovered",
        }
    }
}

/// One notice to deliver.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Notice {
    /// Index of the rule.
    pub rule: usize,
    pub service: String,
    pub kind: Kind,
    /// The service's state when it was raised, if known.
    pub state: Option<ServiceState>,
    /// Why, in words.
    pub reason: String,
    /// Firings of this rule for this service held back by `every` since the last notice.
    pub suppressed: u64,
    /// What caused it (the event as the event stream carries it, or the probe).
    pub cause: Value,
}

impl Notice {
    /// The JSON a command reads on stdin and a webhook receives.
    pub fn payload(&self, rule: &AlertRule) -> Value {
        json!({
            "alert": rule.name,
            "notice": self.kind.as_str(),
            "service": self.service,
            "state": self.state.map(ServiceState::as_str),
            "reason": self.reason,
            "suppressed": self.suppressed,
            "at": Timestamp::now(),
            "cause": self.cause,
        })
    }
}

#[derive(Debug, Default)]
struct Track {
    /// A firing notice was sent and no recovery since.
    told_down: bool,
    last_sent: Option<Instant>,
    suppressed: u64,
    /// Losses (entries into `reconnecting`) within the window of a `restarts` rule.
    losses: VecDeque<Instant>,
    /// Probes seen (for `probe_latency`: only new probes count).
    probes_seen: u64,
}

/// Every rule's memory per service.
pub(crate) struct AlertBook {
    pub rules: Vec<Arc<AlertRule>>,
    tracks: HashMap<(usize, String), Track>,
}

impl AlertBook {
    pub fn new(rules: Vec<AlertRule>) -> Self {
        AlertBook {
            rules: rules.into_iter().map(Arc::new).collect(),
            tracks: HashMap::new(),
        }
    }

    /// Whether a tick is needed (a `restarts` or `probe_latency` rule exists).
    pub fn needs_tick(&self) -> bool {
        self.rules
            .iter()
            .any(|r| !matches!(r.trigger, AlertTrigger::Enters(_)))
    }

    fn raise(
        &mut self,
        rule: usize,
        service: &str,
        state: Option<ServiceState>,
        reason: String,
        cause: Value,
        now: Instant,
    ) -> Option<Notice> {
        let every = self.rules[rule].every;
        let t = self.tracks.entry((rule, service.to_owned())).or_default();
        if t.last_sent.is_some_and(|at| now.duration_since(at) < every) {
            t.suppressed += 1;
            return None;
        }
        t.last_sent = Some(now);
        t.told_down = true;
        let suppressed = std::mem::take(&mut t.suppressed);
        Some(Notice {
            rule,
            service: service.to_owned(),
            kind: Kind::Firing,
            state,
            reason,
            suppressed,
            cause,
        })
    }

    fn recover(
        &mut self,
        rule: usize,
        service: &str,
        state: Option<ServiceState>,
        reason: String,
        cause: Value,
    ) -> Option<Notice> {
        let recovery = self.rules[rule].recovery;
        let t = self.tracks.get_mut(&(rule, service.to_owned()))?;
        if !t.told_down {
            return None;
        }
        t.told_down = false;
        recovery.then(|| Notice {
            rule,
            service: service.to_owned(),
            kind: Kind::Recovered,
            state,
            reason,
            suppressed: 0,
            cause,
        })
    }

    /// A fleet event at `now`.
    pub fn on_event(&mut self, event: &Event, now: Instant) -> Vec<Notice> {
        let Event::StateChanged {
            service,
            to,
            reason,
            ..
        } = event
        else {
            return Vec::new();
        };
        let name = service.to_string();
        let cause = serde_json::to_value(event).unwrap_or(Value::Null);
        let mut out = Vec::new();
        for i in 0..self.rules.len() {
            let rule = self.rules[i].clone();
            if !rule.watches(&name) {
                continue;
            }
            match &rule.trigger {
                AlertTrigger::Enters(states) => {
                    if states.contains(to) {
                        out.extend(self.raise(
                            i,
                            &name,
                            Some(*to),
                            format!("{name} is {to}: {reason}"),
                            cause.clone(),
                            now,
                        ));
                    } else if to.is_up() {
                        out.extend(self.recover(
                            i,
                            &name,
                            Some(*to),
                            format!("{name} is {to} again"),
                            cause.clone(),
                        ));
                    }
                }
                AlertTrigger::Restarts { more_than, within } => {
                    if *to != ServiceState::Reconnecting {
                        continue;
                    }
                    let t = self.tracks.entry((i, name.clone())).or_default();
                    t.losses.push_back(now);
                    while t
                        .losses
                        .front()
                        .is_some_and(|at| now.duration_since(*at) >= *within)
                    {
                        t.losses.pop_front();
                    }
                    let n = t.losses.len();
                    if n > *more_than as usize {
                        out.extend(self.raise(
                            i,
                            &name,
                            Some(*to),
                            format!(
                                "{name} lost its server {n} times within {} (more than {more_than}): {reason}",
                                humantime::format_duration(*within)
                            ),
                            cause.clone(),
                            now,
                        ));
                    }
                }
                AlertTrigger::ProbeLatency { .. } => {}
            }
        }
        out
    }

    /// The probe counters of `service`: `probes` so far and the last probe's latency and
    /// whether it answered.
    pub fn on_probe(
        &mut self,
        service: &str,
        probes: u64,
        last: Option<(Duration, bool)>,
        now: Instant,
    ) -> Vec<Notice> {
        let mut out = Vec::new();
        let Some((latency, ok)) = last else {
            return out;
        };
        for i in 0..self.rules.len() {
            let rule = self.rules[i].clone();
            let AlertTrigger::ProbeLatency { over } = rule.trigger else {
                continue;
            };
            if !rule.watches(service) {
                continue;
            }
            let t = self.tracks.entry((i, service.to_owned())).or_default();
            if t.probes_seen == probes {
                continue;
            }
            t.probes_seen = probes;
            let cause = json!({"probe_ms": latency.as_secs_f64() * 1000.0, "answered": ok});
            let shown = humantime::format_duration(Duration::from_millis(
                u64::try_from(latency.as_millis()).unwrap_or(u64::MAX),
            ));
            if !ok || latency > over {
                let what = if ok {
                    format!(
                        "a probe of {service} took {shown} (over {})",
                        humantime::format_duration(over)
                    )
                } else {
                    format!("a probe of {service} failed after {shown}")
                };
                out.extend(self.raise(i, service, None, what, cause, now));
            } else {
                out.extend(self.recover(
                    i,
                    service,
                    None,
                    format!(
                        "probes of {service} answer within {} again ({shown})",
                        humantime::format_duration(over)
                    ),
                    cause,
                ));
            }
        }
        out
    }

    /// Time passed: a `restarts` alert recovers once its service is up (`up`) and a whole
    /// window passed without another loss.
    pub fn on_tick(&mut self, now: Instant, up: impl Fn(&str) -> bool) -> Vec<Notice> {
        let mut due = Vec::new();
        for ((i, service), t) in &self.tracks {
            let AlertTrigger::Restarts { within, .. } = self.rules[*i].trigger else {
                continue;
            };
            let quiet = t
                .losses
                .back()
                .is_none_or(|at| now.duration_since(*at) >= within);
            if t.told_down && quiet && up(service) {
                due.push((*i, service.clone(), within));
            }
        }
        due.sort();
        due.into_iter()
            .filter_map(|(i, service, within)| {
                self.recover(
                    i,
                    &service,
                    None,
                    format!(
                        "{service} is up with no loss for {}",
                        humantime::format_duration(within)
                    ),
                    Value::Null,
                )
            })
            .collect()
    }
}

/// Feeds the book from the Store until its event channel closes; never blocks on delivery.
pub(crate) async fn run(
    mut book: AlertBook,
    mut events: tokio::sync::broadcast::Receiver<Event>,
    shared: std::sync::Weak<crate::shared::Shared>,
) {
    let client = deliver::client();
    let tick = book.needs_tick();
    let mut ticker = tokio::time::interval(mcpvisor_model::defaults::ALERT_TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let notices = tokio::select! {
            e = events.recv() => match e {
                Ok(e) => book.on_event(&e, Instant::now()),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "alerts fell behind the event stream");
                    Vec::new()
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            },
            _ = ticker.tick(), if tick => {
                // The Store is gone: so is this task.
                let Some(shared) = shared.upgrade() else { return };
                let now = Instant::now();
                let handles: Vec<(String, mcpvisor_model::ServiceMetrics, ServiceState)> =
                    crate::shared::read(&shared.handles)
                        .iter()
                        .map(|(id, h)| (id.to_string(), h.metrics().clone(), h.state()))
                        .collect();
                let mut out = Vec::new();
                for (name, metrics, _) in &handles {
                    let (probes, last) = metrics.last_probe();
                    out.extend(book.on_probe(name, probes, last, now));
                }
                out.extend(book.on_tick(now, |s| {
                    handles.iter().any(|(n, _, st)| n == s && st.is_up())
                }));
                out
            }
        };
        let Some(live) = shared.upgrade() else { return };
        for notice in notices {
            let rule = book.rules[notice.rule].clone();
            let tx = live.events.clone();
            let client = client.clone();
            tokio::spawn(async move { deliver::deliver(&rule, &notice, &client, &tx).await });
        }
    }
}

#[cfg(test)]
mod tests;
