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
}

impl ExitInfo {
    /// A non-zero code or a signal.
    pub fn abnormal(&self) -> bool {
        self.code != Some(0)
    }
}

impl std::fmt::Display for ExitInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
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
}

impl From<&ServiceConfig> for MachineConfig {
    fn from(c: &ServiceConfig) -> Self {
        MachineConfig {
            restart: c.restart,
            health: c.health,
            backoff: c.backoff,
            intensity: c.intensity,
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
        out.push(Action::Connect {
            gen: self.gen,
            restart: self.gen > 1,
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
                let what = if was_up {
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
            let r = format!(
                "{reason}; {} attempts failed, retrying every {}",
                self.attempt,
                humantime::format_duration(self.cfg.backoff.unreachable_retry)
            );
            // Unreachable is entered once; later failed slow retries stay there.
            if self.state != ServiceState::Unreachable {
                self.go(ServiceState::Unreachable, r, out);
            }
            out.push(Action::ScheduleRetry {
                timer: self.timer,
                after: self.cfg.backoff.unreachable_retry,
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
mod tests {
    use super::*;
    use ServiceState as S;

    fn cfg() -> MachineConfig {
        MachineConfig {
            restart: RestartPolicy::Permanent,
            health: HealthConfig {
                interval: Duration::from_secs(10),
                timeout: Duration::from_secs(1),
                warn_after: 1,
                reconnect_after: 3,
            },
            backoff: BackoffConfig {
                jitter: 0.0,
                max_attempts: 4,
                ..BackoffConfig::default()
            },
            intensity: IntensityConfig {
                max_restarts: 3,
                within: Duration::from_secs(60),
            },
        }
    }

    struct T {
        m: Machine,
        now: Instant,
    }

    impl T {
        fn new(c: MachineConfig) -> Self {
            T {
                m: Machine::new(c),
                now: Instant::now(),
            }
        }
        fn feed(&mut self, i: Input) -> Vec<Action> {
            self.m.handle(i, self.now, 0.5)
        }
        fn advance(&mut self, d: Duration) {
            self.now += d;
        }
        fn states(actions: &[Action]) -> Vec<S> {
            actions
                .iter()
                .filter_map(|a| match a {
                    Action::Transition { to, .. } => Some(*to),
                    _ => None,
                })
                .collect()
        }
        fn retry_after(actions: &[Action]) -> Option<(u64, Duration)> {
            actions.iter().find_map(|a| match a {
                Action::ScheduleRetry { timer, after } => Some((*timer, *after)),
                _ => None,
            })
        }
        fn connect_gen(actions: &[Action]) -> Option<u64> {
            actions.iter().find_map(|a| match a {
                Action::Connect { gen, .. } => Some(*gen),
                _ => None,
            })
        }
        /// Start and connect successfully; returns the generation.
        fn up(&mut self) -> u64 {
            let a = self.feed(Input::Start);
            let gen = Self::connect_gen(&a).expect("connect");
            self.feed(Input::Connected {
                gen,
                detail: "ok".into(),
            });
            gen
        }
        fn exit(&mut self, gen: u64, code: Option<i32>, signal: Option<i32>) -> Vec<Action> {
            self.feed(Input::Ended {
                gen,
                cause: EndCause::Exited(ExitInfo { code, signal }),
            })
        }
    }

    #[test]
    fn start_connect_healthy_and_probes_begin() {
        let mut t = T::new(cfg());
        let a = t.feed(Input::Start);
        assert_eq!(T::states(&a), vec![S::Starting]);
        assert_eq!(
            a[1],
            Action::Connect {
                gen: 1,
                restart: false
            }
        );
        let a = t.feed(Input::Connected {
            gen: 1,
            detail: "3 tools".into(),
        });
        assert_eq!(T::states(&a), vec![S::Healthy]);
        assert!(a.contains(&Action::StartProbes { gen: 1 }));
        assert_eq!(t.m.live_gen(), Some(1));
    }

    #[test]
    fn killed_child_reconnects_after_initial_backoff_and_counts_a_restart() {
        let mut t = T::new(cfg());
        let gen = t.up();
        let a = t.exit(gen, None, Some(9));
        assert_eq!(T::states(&a), vec![S::Reconnecting]);
        let (timer, after) = T::retry_after(&a).unwrap();
        assert_eq!(after, Duration::from_millis(250));
        let a = t.feed(Input::RetryDue { timer });
        assert_eq!(
            a,
            vec![Action::Connect {
                gen: 2,
                restart: true
            }]
        );
        let a = t.feed(Input::Connected {
            gen: 2,
            detail: "ok".into(),
        });
        assert_eq!(T::states(&a), vec![S::Healthy]);
    }

    #[test]
    fn backoff_grows_then_unreachable_then_slow_retries_forever() {
        let mut t = T::new(cfg());
        let a = t.feed(Input::Start);
        let mut gen = T::connect_gen(&a).unwrap();
        let mut delays = Vec::new();
        let mut seen = Vec::new();
        for _ in 0..8 {
            let a = t.feed(Input::Ended {
                gen,
                cause: EndCause::ConnectFailed("refused".into()),
            });
            seen.extend(T::states(&a));
            let (timer, after) = T::retry_after(&a).unwrap();
            delays.push(after.as_millis());
            let a = t.feed(Input::RetryDue { timer });
            gen = T::connect_gen(&a).expect("always retried");
        }
        assert_eq!(delays[..3], [250, 500, 1000]);
        assert!(delays[3..].iter().all(|d| *d == 300_000), "{delays:?}");
        assert_eq!(seen, vec![S::Reconnecting, S::Unreachable]);
        // Recovery from unreachable.
        let a = t.feed(Input::Connected {
            gen,
            detail: "ok".into(),
        });
        assert_eq!(T::states(&a), vec![S::Healthy]);
    }

    #[test]
    fn stale_timers_and_generations_are_ignored() {
        let mut t = T::new(cfg());
        let gen = t.up();
        let a = t.exit(gen, Some(1), None);
        let (timer, _) = T::retry_after(&a).unwrap();
        assert!(t.feed(Input::RetryDue { timer: timer + 7 }).is_empty());
        assert!(
            t.exit(gen, Some(1), None).is_empty(),
            "same end reported twice"
        );
        assert!(t
            .feed(Input::Probe {
                gen,
                ok: false,
                detail: "x".into()
            })
            .is_empty());
    }

    #[test]
    fn probe_failures_warn_then_reconnect_killing_the_connection() {
        let mut t = T::new(cfg());
        let gen = t.up();
        let a = t.feed(Input::Probe {
            gen,
            ok: false,
            detail: "timeout".into(),
        });
        assert_eq!(T::states(&a), vec![S::Warning]);
        let a = t.feed(Input::Probe {
            gen,
            ok: true,
            detail: String::new(),
        });
        assert_eq!(T::states(&a), vec![S::Healthy]);
        t.feed(Input::Probe {
            gen,
            ok: false,
            detail: "timeout".into(),
        });
        t.feed(Input::Probe {
            gen,
            ok: false,
            detail: "timeout".into(),
        });
        let a = t.feed(Input::Probe {
            gen,
            ok: false,
            detail: "timeout".into(),
        });
        assert_eq!(a[0], Action::Disconnect { gen, force: true });
        assert_eq!(T::states(&a), vec![S::Reconnecting]);
        // The killed connection's end does not count twice.
        assert!(t.exit(gen, None, Some(9)).is_empty());
    }

    #[test]
    fn crash_loop_fails_after_max_restarts_within_the_window() {
        let mut t = T::new(cfg());
        let a = t.feed(Input::Start);
        let mut gen = T::connect_gen(&a).unwrap();
        let mut last = Vec::new();
        for _ in 0..4 {
            let a = t.exit(gen, Some(1), None);
            last = T::states(&a);
            if let Some((timer, after)) = T::retry_after(&a) {
                t.advance(after);
                gen = T::connect_gen(&t.feed(Input::RetryDue { timer })).unwrap();
            }
        }
        assert_eq!(last, vec![S::Failed]);
        assert_eq!(t.m.state(), S::Failed);
        // No further spawns by themselves...
        assert!(t.feed(Input::RetryDue { timer: 999 }).is_empty());
        // ...until a manual start, which resets the window.
        let a = t.feed(Input::Start);
        assert_eq!(T::states(&a), vec![S::Starting]);
        assert!(T::connect_gen(&a).is_some());
    }

    #[test]
    fn restarting_a_failed_service_gives_it_the_whole_intensity_again() {
        let mut t = T::new(cfg());
        let a = t.feed(Input::Start);
        let mut gen = T::connect_gen(&a).unwrap();
        for _ in 0..4 {
            let a = t.exit(gen, Some(1), None);
            if let Some((timer, after)) = T::retry_after(&a) {
                t.advance(after);
                gen = T::connect_gen(&t.feed(Input::RetryDue { timer })).unwrap();
            }
        }
        assert_eq!(t.m.state(), S::Failed);
        // `restart` = stop, then start: from `stopped`, not `failed`.
        t.feed(Input::Stop { force: false });
        assert_eq!(t.m.state(), S::Stopped);
        let gen = T::connect_gen(&t.feed(Input::Start)).unwrap();
        // The next crash is retried, not an instant `failed`.
        let a = t.exit(gen, Some(1), None);
        assert_eq!(T::states(&a), vec![S::Reconnecting]);
    }

    #[test]
    fn transient_restarts_only_abnormal_exits_and_temporary_never() {
        let mut t = T::new(MachineConfig {
            restart: RestartPolicy::Transient,
            ..cfg()
        });
        let gen = t.up();
        let a = t.exit(gen, Some(0), None);
        assert_eq!(T::states(&a), vec![S::Stopped]);
        assert!(matches!(&a[0], Action::Transition { reason, .. } if reason.contains("transient")));
        let gen = t.up();
        let a = t.exit(gen, Some(3), None);
        assert_eq!(T::states(&a), vec![S::Reconnecting]);

        let mut t = T::new(MachineConfig {
            restart: RestartPolicy::Temporary,
            ..cfg()
        });
        let gen = t.up();
        let a = t.exit(gen, None, Some(9));
        assert_eq!(T::states(&a), vec![S::Stopped]);
        assert!(matches!(&a[0], Action::Transition { reason, .. } if reason.contains("signal 9")));
    }

    #[test]
    fn stop_is_graceful_or_forced_and_ends_stopped() {
        let mut t = T::new(cfg());
        let gen = t.up();
        let a = t.feed(Input::Stop { force: false });
        assert_eq!(T::states(&a), vec![S::Stopping]);
        assert!(a.contains(&Action::Disconnect { gen, force: false }));
        // Escalation.
        let a = t.feed(Input::Stop { force: true });
        assert_eq!(a, vec![Action::Disconnect { gen, force: true }]);
        let a = t.exit(gen, Some(0), None);
        assert_eq!(T::states(&a), vec![S::Stopped]);
        // Stopped stays stopped when the process exits: no restart.
        assert!(t.feed(Input::RetryDue { timer: 1 }).is_empty());
    }

    #[test]
    fn stop_while_waiting_to_retry_stops_at_once_and_cancels_the_retry() {
        let mut t = T::new(cfg());
        let gen = t.up();
        let a = t.exit(gen, None, Some(9));
        let (timer, _) = T::retry_after(&a).unwrap();
        let a = t.feed(Input::Stop { force: false });
        assert_eq!(T::states(&a), vec![S::Stopping, S::Stopped]);
        assert!(t.feed(Input::RetryDue { timer }).is_empty());
    }

    #[test]
    fn restart_is_stop_then_start() {
        let mut t = T::new(cfg());
        let gen = t.up();
        t.feed(Input::Stop { force: false });
        assert!(
            t.feed(Input::Start).is_empty(),
            "start is queued while stopping"
        );
        let a = t.exit(gen, Some(0), None);
        assert_eq!(T::states(&a), vec![S::Stopped, S::Starting]);
        assert_eq!(T::connect_gen(&a), Some(gen + 1));
    }

    #[test]
    fn attempts_reset_after_stable_health() {
        let mut t = T::new(MachineConfig {
            backoff: BackoffConfig {
                jitter: 0.0,
                reset_after: Duration::from_secs(60),
                ..cfg().backoff
            },
            ..cfg()
        });
        let mut gen = t.up();
        // Two quick failures: delays 250 then 500.
        for expected in [250, 500] {
            let a = t.feed(Input::Ended {
                gen,
                cause: EndCause::Closed("eof".into()),
            });
            let (timer, after) = T::retry_after(&a).unwrap();
            assert_eq!(after.as_millis(), expected);
            gen = T::connect_gen(&t.feed(Input::RetryDue { timer })).unwrap();
            t.feed(Input::Connected {
                gen,
                detail: "ok".into(),
            });
        }
        // Stable for a minute: the next failure starts from the initial delay again.
        t.advance(Duration::from_secs(61));
        let a = t.feed(Input::Ended {
            gen,
            cause: EndCause::Closed("eof".into()),
        });
        assert_eq!(T::retry_after(&a).unwrap().1.as_millis(), 250);
        assert_eq!(t.m.attempt(), 1);
    }

    #[test]
    fn manual_start_while_reconnecting_connects_now() {
        let mut t = T::new(cfg());
        let gen = t.up();
        let a = t.feed(Input::Ended {
            gen,
            cause: EndCause::Closed("eof".into()),
        });
        let (timer, _) = T::retry_after(&a).unwrap();
        let a = t.feed(Input::Start);
        assert!(T::connect_gen(&a).is_some());
        assert!(
            t.feed(Input::RetryDue { timer }).is_empty(),
            "old timer cancelled"
        );
    }

    #[test]
    fn every_transition_names_from_and_to() {
        let mut t = T::new(cfg());
        let a = t.feed(Input::Start);
        assert!(matches!(
            &a[0],
            Action::Transition {
                from: S::NotStarted,
                to: S::Starting,
                ..
            }
        ));
    }

    #[test]
    fn a_temporary_service_whose_transport_closes_or_probes_fail_is_not_restarted() {
        let temporary = MachineConfig {
            restart: RestartPolicy::Temporary,
            ..cfg()
        };
        let mut t = T::new(temporary);
        let gen = t.up();
        let a = t.feed(Input::Ended {
            gen,
            cause: EndCause::Closed("the server closed its stdout".into()),
        });
        assert_eq!(T::states(&a), vec![S::Stopped]);
        assert!(T::retry_after(&a).is_none(), "{a:?}");

        let mut t = T::new(temporary);
        let gen = t.up();
        let mut all = Vec::new();
        for _ in 0..3 {
            all.extend(t.feed(Input::Probe {
                gen,
                ok: false,
                detail: "timed out".into(),
            }));
        }
        assert!(all.contains(&Action::Disconnect { gen, force: true }));
        assert_eq!(T::states(&all), vec![S::Warning, S::Stopped]);
        assert!(T::retry_after(&all).is_none(), "{all:?}");
    }

    #[test]
    fn closed_transports_and_probe_kills_count_toward_intensity_like_exits() {
        // max_restarts 3: the fourth unplanned end within the window gives up, whichever mix.
        let mut t = T::new(cfg());
        let mut last = Vec::new();
        for i in 0..4 {
            let gen = t.up();
            last = match i % 3 {
                0 => t.exit(gen, Some(1), None),
                1 => t.feed(Input::Ended {
                    gen,
                    cause: EndCause::Closed("eof".into()),
                }),
                _ => {
                    let mut a = Vec::new();
                    for _ in 0..3 {
                        a = t.feed(Input::Probe {
                            gen,
                            ok: false,
                            detail: "timed out".into(),
                        });
                    }
                    a
                }
            };
            if i < 3 {
                assert!(T::retry_after(&last).is_some(), "end {i}: {last:?}");
                // A manual start would reset the window: reconnect through the retry instead.
                let (timer, _) = T::retry_after(&last).unwrap();
                let a = t.feed(Input::RetryDue { timer });
                let gen = T::connect_gen(&a).unwrap();
                t.feed(Input::Connected {
                    gen,
                    detail: "ok".into(),
                });
                t.feed(Input::Stop { force: true });
                t.exit(gen, None, Some(9));
            }
        }
        let _ = last;
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        #[derive(Debug, Clone)]
        enum Step {
            Start,
            Stop(bool),
            Connected,
            Ended(u8),
            Probe(bool),
            Retry,
            Lost,
            Wait(u16),
        }

        fn step() -> impl Strategy<Value = Step> {
            prop_oneof![
                Just(Step::Start),
                any::<bool>().prop_map(Step::Stop),
                Just(Step::Connected),
                (0u8..5).prop_map(Step::Ended),
                any::<bool>().prop_map(Step::Probe),
                Just(Step::Retry),
                Just(Step::Lost),
                (0u16..5000).prop_map(Step::Wait),
            ]
        }

        fn policy() -> impl Strategy<Value = RestartPolicy> {
            prop_oneof![
                Just(RestartPolicy::Permanent),
                Just(RestartPolicy::Transient),
                Just(RestartPolicy::Temporary),
            ]
        }

        proptest! {
            /// Over any sequence of inputs: at most one live connection generation at a time;
            /// a temporary service is never re-established without a manual start; `failed`
            /// is entered only after more than `max_restarts` unplanned ends since the last
            /// manual start.
            #[test]
            fn the_machine_keeps_its_invariants(restart in policy(), steps in proptest::collection::vec(step(), 1..80)) {
                let config = MachineConfig { restart, ..cfg() };
                let mut m = Machine::new(config);
                let mut now = Instant::now();
                let mut gen = 0u64;
                let mut live: Option<u64> = None;
                let mut timer = 0u64;
                // Unplanned ends (over-counted: every end of the tracked generation and every
                // failed probe) and whether a connection got up, since the last fresh start.
                let mut ends = 0u32;
                let mut was_up = false;
                for s in steps {
                    let input = match s {
                        Step::Start => Input::Start,
                        Step::Stop(force) => Input::Stop { force },
                        Step::Connected => Input::Connected { gen, detail: "ok".into() },
                        Step::Ended(k) => {
                            // A connect attempt fails only while connecting.
                            let k = if k == 4 && m.live_gen().is_some() { 3 } else { k };
                            if live == Some(gen) && k < 4 { ends += 1; }
                            let cause = match k {
                                0 => EndCause::Exited(ExitInfo { code: Some(0), signal: None }),
                                1 => EndCause::Exited(ExitInfo { code: Some(1), signal: None }),
                                2 => EndCause::Exited(ExitInfo { code: None, signal: Some(9) }),
                                3 => EndCause::Closed("eof".into()),
                                _ => EndCause::ConnectFailed("refused".into()),
                            };
                            if live == Some(gen) { live = None; }
                            Input::Ended { gen, cause }
                        }
                        Step::Probe(ok) => {
                            if !ok && m.live_gen().is_some() { ends += 1; }
                            Input::Probe { gen, ok, detail: "probe".into() }
                        }
                        Step::Retry => Input::RetryDue { timer },
                        Step::Lost => {
                            if m.live_gen().is_some() { ends += 1; }
                            Input::Lost { gen, detail: "refused".into() }
                        }
                        Step::Wait(ms) => { now += Duration::from_millis(u64::from(ms)); continue; }
                    };
                    let was = m.state();
                    for a in m.handle(input, now, 0.5) {
                        match a {
                            Action::Connect { gen: g, .. } => {
                                prop_assert!(live.is_none(), "connect {g} while {live:?} is live");
                                prop_assert!(g > gen);
                                prop_assert!(!(restart == RestartPolicy::Temporary && was_up),
                                    "a temporary service was re-established");
                                gen = g;
                                live = Some(g);
                            }
                            Action::Disconnect { gen: g, .. } => {
                                if live == Some(g) { live = None; }
                            }
                            Action::ScheduleRetry { timer: t, .. } => timer = t,
                            Action::Transition { to, .. } => {
                                if to == S::Starting {
                                    ends = 0;
                                    was_up = false;
                                }
                                if to == S::Healthy { was_up = true; }
                                if to == S::Failed {
                                    prop_assert!(was != S::Failed);
                                    prop_assert!(ends > config.intensity.max_restarts,
                                        "failed after {ends} unplanned ends");
                                }
                            }
                            Action::StartProbes { .. } => {}
                        }
                    }
                }
            }
        }
    }
}
