//! The service state machine of DESIGN §4, pure: inputs in, actions out. No processes, no
//! sockets, no clocks — `now` and a random number are passed in — so every path is tested
//! without a server. The actor feeds it what happened and carries out what it returns.

use std::time::{Duration, Instant};

use mcpvisor_model::{
    backoff_delay, BackoffConfig, HealthConfig, IntensityConfig, RestartPolicy, RestartVerdict,
    RestartWindow, ServiceConfig, ServiceState,
};

/// How a server process ended on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitInfo {
    /// Exit code, if it exited.
    pub code: Option<i32>,
    /// Signal number, if a signal ended it.
    pub signal: Option<i32>,
    /// The limit of its sandbox the kernel killed it for, if one did.
    pub over: Option<Limit>,
}

/// A limit of a server's sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// `sandbox.memory`, in bytes.
    Memory(u64),
}

impl ExitInfo {
    /// A non-zero code or a signal.
    pub fn abnormal(&self) -> bool {
        self.code != Some(0)
    }
}

impl std::fmt::Display for ExitInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(Limit::Memory(bytes)) = self.over {
            let how = match (self.code, self.signal) {
                (Some(c), _) => format!("exit code {c}"),
                (None, Some(s)) => format!("signal {s}"),
                (None, None) => "unknown status".into(),
            };
            return write!(
                f,
                "killed: over its memory limit of {} ({how})",
                mcpvisor_model::format_bytes(bytes)
            );
        }
        match (self.code, self.signal) {
            (Some(c), _) => write!(f, "exit code {c}"),
            (None, Some(s)) => write!(f, "signal {s}"),
            (None, None) => f.write_str("unknown status"),
        }
    }
}

/// Why a connection (or a connection attempt) ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndCause {
    /// The attempt failed before the server was usable, and no process of ours exited on its
    /// own (spawn failed, connection refused, initialize timed out, ...).
    ConnectFailed(String),
    /// The server process exited on its own.
    Exited(ExitInfo),
    /// The transport closed (EOF, broken pipe, HTTP session gone) without the process exiting
    /// on its own (it was then killed).
    Closed(String),
    /// Ended because we asked (stop, or abandon).
    Cancelled,
}

/// What happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// Start (initial or manual).
    Start,
    /// Start for a call (a lazy or idle service): like `Start`, but not a restart.
    Wake,
    /// Stop; `force` skips the graceful steps.
    Stop {
        /// Kill at once.
        force: bool,
    },
    /// Connection `gen` is up: initialized and tools listed.
    Connected {
        /// Connection generation.
        gen: u64,
        /// Text for the transition.
        detail: String,
    },
    /// Connection or attempt `gen` is over, its process group gone.
    Ended {
        /// Connection generation.
        gen: u64,
        /// Why.
        cause: EndCause,
    },
    /// A health probe of connection `gen` finished.
    Probe {
        /// Connection generation.
        gen: u64,
        /// Whether it answered in time.
        ok: bool,
        /// Failure text.
        detail: String,
    },
    /// Connection `gen` failed on its transport (a probe or request was refused, reset or
    /// closed): lost now, killed and re-established per the restart policy.
    Lost {
        /// Connection generation.
        gen: u64,
        /// What failed.
        detail: String,
    },
    /// Retry timer `timer` fired.
    RetryDue {
        /// Timer id.
        timer: u64,
    },
}

/// What the actor must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Announce a state change.
    Transition {
        /// Previous state.
        from: ServiceState,
        /// New state.
        to: ServiceState,
        /// Why.
        reason: String,
    },
    /// Spawn / connect as generation `gen`.
    Connect {
        /// New generation.
        gen: u64,
        /// Whether this is a re-establishment after the first (counts as a restart).
        restart: bool,
    },
    /// Tear down connection or attempt `gen`: gracefully (stdin, SIGTERM, SIGKILL) or at once.
    Disconnect {
        /// Generation.
        gen: u64,
        /// Skip the graceful steps.
        force: bool,
    },
    /// Fire `RetryDue { timer }` after `after`.
    ScheduleRetry {
        /// Timer id (older ids are stale).
        timer: u64,
        /// Delay.
        after: Duration,
    },
    /// Begin periodic probes of connection `gen`.
    StartProbes {
        /// Generation.
        gen: u64,
    },
}

/// The settings the machine needs.
#[derive(Debug, Clone, Copy)]
pub struct MachineConfig {
    /// Restart policy.
    pub restart: RestartPolicy,
    /// Probing.
    pub health: HealthConfig,
    /// Backoff.
    pub backoff: BackoffConfig,
    /// Intensity.
    pub intensity: IntensityConfig,
    /// A remote server (streamable HTTP or SSE): a retry costs one request, so it is retried
    /// at least every `backoff.max`, also when `unreachable`.
    pub remote: bool,
}

impl From<&ServiceConfig> for MachineConfig {
    fn from(c: &ServiceConfig) -> Self {
        MachineConfig {
            restart: c.restart,
            health: c.health,
            backoff: c.backoff,
            intensity: c.intensity,
            remote: c.transport() != mcpvisor_model::TransportKind::Stdio,
        }
    }
}

/// The state machine of one service.
#[derive(Debug, Clone)]
pub struct Machine {
    cfg: MachineConfig,
    state: ServiceState,
    /// Failed attempts since the last stable connection.
    attempt: u32,
    probe_failures: u32,
    window: RestartWindow,
    /// Generation of the last connection started.
    gen: u64,
    /// The generation whose end matters (`None` when abandoned or none).
    live: Option<u64>,
    /// Whether `live` reached `Connected`.
    up: bool,
    connected_at: Option<Instant>,
    timer: u64,
    stopping: bool,
    start_after_stop: bool,
    ever_connected_once: bool,
    /// The next connection is a start for a call, not a re-establishment.
    woken: bool,
}

impl Machine {
    /// A machine in `not_started`.
    pub fn new(cfg: MachineConfig) -> Self {
        Machine {
            cfg,
            state: ServiceState::NotStarted,
            attempt: 0,
            probe_failures: 0,
            window: RestartWindow::new(cfg.intensity),
            gen: 0,
            live: None,
            up: false,
            connected_at: None,
            timer: 0,
            stopping: false,
            start_after_stop: false,
            ever_connected_once: false,
            woken: false,
        }
    }

    /// The current state.
    pub fn state(&self) -> ServiceState {
        self.state
    }

    /// Failed attempts counted toward `max_attempts`.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The generation of the current connection, if it is up.
    pub fn live_gen(&self) -> Option<u64> {
        self.live.filter(|_| self.up)
    }

    /// Replaces the settings (after a config update that needs no restart).
    pub fn set_config(&mut self, cfg: MachineConfig) {
        self.cfg = cfg;
    }

    /// Feeds one input; returns the actions in order. `rand01` is a uniform random number in
    /// `[0, 1)` for backoff jitter.
    pub fn handle(&mut self, input: Input, now: Instant, rand01: f64) -> Vec<Action> {
        let mut out = Vec::new();
        match input {
            Input::Start => self.on_start(&mut out),
            Input::Wake => {
                self.woken = true;
                self.on_start(&mut out);
                let connects = out.iter().any(|a| matches!(a, Action::Connect { .. }));
                if !connects && !self.start_after_stop {
                    self.woken = false;
                }
            }
            Input::Stop { force } => self.on_stop(force, &mut out),
            Input::Connected { gen, detail } => {
                if self.live == Some(gen) && !self.stopping {
                    self.up = true;
                    self.probe_failures = 0;
                    self.connected_at = Some(now);
                    self.ever_connected_once = true;
                    self.go(ServiceState::Healthy, detail, &mut out);
                    out.push(Action::StartProbes { gen });
                }
            }
            Input::Ended { gen, cause } => self.on_ended(gen, cause, now, rand01, &mut out),
            Input::Probe { gen, ok, detail } => {
                if self.live == Some(gen) && self.up && self.state.is_up() && !self.stopping {
                    self.on_probe(gen, ok, detail, now, rand01, &mut out);
                }
            }
            Input::Lost { gen, detail } => {
                if self.live == Some(gen) && self.up && !self.stopping {
                    self.live = None;
                    self.up = false;
                    self.note_stability(now);
                    out.push(Action::Disconnect { gen, force: true });
                    self.lost(
                        format!("connection lost: {detail}"),
                        true,
                        now,
                        rand01,
                        &mut out,
                    );
                }
            }
            Input::RetryDue { timer } => {
                let waiting = matches!(
                    self.state,
                    ServiceState::Reconnecting | ServiceState::Unreachable
                );
                if timer == self.timer && waiting && self.live.is_none() && !self.stopping {
                    self.connect(&mut out);
                }
            }
        }
        out
    }

    fn go(&mut self, to: ServiceState, reason: impl Into<String>, out: &mut Vec<Action>) {
        if self.state != to {
            out.push(Action::Transition {
                from: self.state,
                to,
                reason: reason.into(),
            });
            self.state = to;
        }
    }

    fn connect(&mut self, out: &mut Vec<Action>) {
        self.gen += 1;
        self.live = Some(self.gen);
        self.up = false;
        // Every spawn or connection after the first one counts as a restart.
        let woken = std::mem::take(&mut self.woken);
        out.push(Action::Connect {
            gen: self.gen,
            restart: self.gen > 1 && !woken,
        });
    }

    fn on_start(&mut self, out: &mut Vec<Action>) {
        if self.stopping {
            self.start_after_stop = true;
            return;
        }
        match self.state {
            ServiceState::Starting | ServiceState::Healthy | ServiceState::Warning => {}
            ServiceState::Reconnecting | ServiceState::Unreachable if self.live.is_some() => {}
            _ => {
                // A manual start (also a restart, or a restart by a config change, both of
                // which stop first) is a fresh start: the restart intensity counts only the
                // automatic restarts since.
                self.window.reset();
                self.attempt = 0;
                self.timer += 1; // cancels a pending retry
                self.go(ServiceState::Starting, "start requested", out);
                self.connect(out);
            }
        }
    }

    fn on_stop(&mut self, force: bool, out: &mut Vec<Action>) {
        self.start_after_stop = false;
        self.timer += 1;
        match self.live {
            Some(gen) if !self.stopping => {
                self.stopping = true;
                let how = if force {
                    "forced stop requested"
                } else {
                    "stop requested"
                };
                self.go(ServiceState::Stopping, how, out);
                out.push(Action::Disconnect { gen, force });
            }
            Some(gen) => {
                // Already stopping: a forced stop escalates.
                if force {
                    out.push(Action::Disconnect { gen, force });
                }
            }
            None => {
                if self.state != ServiceState::Stopped {
                    self.go(ServiceState::Stopping, "stop requested", out);
                    self.go(ServiceState::Stopped, "stopped", out);
                }
            }
        }
    }

    fn on_ended(
        &mut self,
        gen: u64,
        cause: EndCause,
        now: Instant,
        rand01: f64,
        out: &mut Vec<Action>,
    ) {
        if self.live != Some(gen) {
            return; // an abandoned connection finishing its teardown
        }
        let was_up = self.up;
        self.live = None;
        self.up = false;
        if self.stopping {
            self.stopping = false;
            let reason = match &cause {
                EndCause::Exited(e) => format!("stopped ({e})"),
                _ => "stopped".to_owned(),
            };
            self.go(ServiceState::Stopped, reason, out);
            if std::mem::take(&mut self.start_after_stop) {
                self.on_start(out);
            }
            return;
        }
        self.note_stability(now);
        match cause {
            EndCause::Exited(exit) => {
                let what = if exit.over.is_some() {
                    format!("server {exit}")
                } else if was_up {
                    format!("server exited ({exit})")
                } else {
                    format!("server exited during start ({exit})")
                };
                self.lost(what, exit.abnormal(), now, rand01, out);
            }
            EndCause::Closed(why) => {
                self.lost(format!("connection lost: {why}"), true, now, rand01, out)
            }
            EndCause::ConnectFailed(why) => {
                self.retry(format!("connect failed: {why}"), rand01, out)
            }
            EndCause::Cancelled => self.retry("connection cancelled".to_owned(), rand01, out),
        }
    }

    /// An unplanned end of a server (it exited, its transport closed, or it was killed after
    /// failed probes): one place decides from the restart policy and the intensity window
    /// whether it is re-established, and every re-establishment counts toward the window.
    fn lost(
        &mut self,
        what: String,
        abnormal: bool,
        now: Instant,
        rand01: f64,
        out: &mut Vec<Action>,
    ) {
        if !self.cfg.restart.restarts_after(abnormal) {
            let policy = match self.cfg.restart {
                RestartPolicy::Permanent => "permanent",
                RestartPolicy::Transient => "transient",
                RestartPolicy::Temporary => "temporary",
            };
            self.timer += 1; // no retry is pending any more
            self.go(
                ServiceState::Stopped,
                format!("{what}; restart policy {policy}: not restarted"),
                out,
            );
            return;
        }
        if self.window.record(now) == RestartVerdict::GiveUp {
            let i = self.cfg.intensity;
            self.timer += 1;
            self.go(
                ServiceState::Failed,
                format!(
                    "{what}; more than {} restarts within {}: giving up until started by hand",
                    i.max_restarts,
                    humantime::format_duration(i.within)
                ),
                out,
            );
            return;
        }
        self.retry(what, rand01, out);
    }

    /// Resets the attempt counter if the connection that just ended was stable long enough.
    fn note_stability(&mut self, now: Instant) {
        if let Some(at) = self.connected_at.take() {
            if now.saturating_duration_since(at) >= self.cfg.backoff.reset_after {
                self.attempt = 0;
            }
        }
    }

    fn retry(&mut self, reason: String, rand01: f64, out: &mut Vec<Action>) {
        self.attempt = self.attempt.saturating_add(1);
        self.timer += 1;
        if self.attempt >= self.cfg.backoff.max_attempts {
            let slow = if self.cfg.remote {
                self.cfg.backoff.unreachable_retry.min(self.cfg.backoff.max)
            } else {
                self.cfg.backoff.unreachable_retry
            };
            let r = format!(
                "{reason}; {} attempts failed, retrying every {}",
                self.attempt,
                humantime::format_duration(slow)
            );
            // Unreachable is entered once; later failed slow retries stay there.
            if self.state != ServiceState::Unreachable {
                self.go(ServiceState::Unreachable, r, out);
            }
            out.push(Action::ScheduleRetry {
                timer: self.timer,
                after: slow,
            });
        } else {
            let after = backoff_delay(&self.cfg.backoff, self.attempt, rand01);
            self.go(ServiceState::Reconnecting, reason, out);
            out.push(Action::ScheduleRetry {
                timer: self.timer,
                after,
            });
        }
    }

    fn on_probe(
        &mut self,
        gen: u64,
        ok: bool,
        detail: String,
        now: Instant,
        rand01: f64,
        out: &mut Vec<Action>,
    ) {
        if ok {
            self.probe_failures = 0;
            if self.state == ServiceState::Warning {
                self.go(ServiceState::Healthy, "probe answered again", out);
            }
            if let Some(at) = self.connected_at {
                if now.saturating_duration_since(at) >= self.cfg.backoff.reset_after {
                    self.attempt = 0;
                }
            }
            return;
        }
        self.probe_failures += 1;
        let n = self.probe_failures;
        if n >= self.cfg.health.reconnect_after {
            self.live = None;
            self.up = false;
            self.note_stability(now);
            out.push(Action::Disconnect { gen, force: true });
            self.lost(
                format!("{n} consecutive probes failed ({detail}); killed"),
                true,
                now,
                rand01,
                out,
            );
        } else if n >= self.cfg.health.warn_after {
            self.go(
                ServiceState::Warning,
                format!("{n} consecutive probe(s) failed: {detail}"),
                out,
            );
        }
    }
}

#[cfg(test)]
mod tests;
