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
        remote: false,
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
            cause: EndCause::Exited(ExitInfo {
                code,
                signal,
                over: None,
            }),
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
                            0 => EndCause::Exited(ExitInfo { code: Some(0), signal: None, over: None }),
                            1 => EndCause::Exited(ExitInfo { code: Some(1), signal: None, over: None }),
                            2 => EndCause::Exited(ExitInfo { code: None, signal: Some(9), over: None }),
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

#[test]
fn a_remote_server_is_retried_at_least_every_backoff_max_even_when_unreachable() {
    let remote = MachineConfig {
        remote: true,
        ..cfg()
    };
    let mut t = T::new(remote);
    let a = t.feed(Input::Start);
    let mut gen = T::connect_gen(&a).unwrap();
    let mut delays = Vec::new();
    for _ in 0..8 {
        let a = t.feed(Input::Ended {
            gen,
            cause: EndCause::ConnectFailed("connection refused".into()),
        });
        let (timer, after) = T::retry_after(&a).unwrap();
        delays.push(after);
        gen = T::connect_gen(&t.feed(Input::RetryDue { timer })).unwrap();
    }
    assert_eq!(t.m.state(), S::Unreachable);
    let max = cfg().backoff.max;
    assert!(delays.iter().all(|d| *d <= max), "{delays:?}");
    assert!(
        delays.iter().filter(|d| **d == max).count() >= 4,
        "{delays:?}"
    );
}

#[test]
fn a_lost_transport_reconnects_at_once_and_is_not_counted_as_a_slow_probe() {
    let mut t = T::new(MachineConfig {
        remote: true,
        ..cfg()
    });
    let gen = t.up();
    // One slow probe: warning (counts toward reconnect_after).
    let a = t.feed(Input::Probe {
        gen,
        ok: false,
        detail: "no answer within 5s (health.timeout)".into(),
    });
    assert_eq!(T::states(&a), vec![S::Warning]);
    // A refused probe is a loss: disconnect and reconnecting in the same step, no second
    // warning and no waiting for reconnect_after.
    let a = t.feed(Input::Lost {
        gen,
        detail: "nothing listening on 127.0.0.1:4711 (connection refused)".into(),
    });
    assert_eq!(a[0], Action::Disconnect { gen, force: true });
    assert_eq!(T::states(&a), vec![S::Reconnecting]);
    // The next connection starts with a clean probe count: one slow probe warns, not more.
    let (timer, _) = T::retry_after(&a).unwrap();
    let gen = T::connect_gen(&t.feed(Input::RetryDue { timer })).unwrap();
    t.feed(Input::Connected {
        gen,
        detail: String::new(),
    });
    let a = t.feed(Input::Probe {
        gen,
        ok: false,
        detail: "no answer".into(),
    });
    assert_eq!(T::states(&a), vec![S::Warning]);
}
