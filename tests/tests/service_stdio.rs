//! The service actor against the chaos server: every path of the state machine, asserted on
//! states, events, returned values and the process table.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mcpvisor_model::{
    LogRing, RestartPolicy, ServiceConfig, ServiceId, ServiceMetrics, ServiceName, ServiceState,
};
use mcpvisor_service_actor::{
    CallError, ServiceActor, ServiceArgs, ServiceHandle, ServiceMsg, ServiceReport,
};
use mcpvisor_tests::{chaos_bin, deadline, pid_alive, send_signal, wait_for_pid_exit, wait_until};
use ractor::{Actor, ActorRef};
use serde_json::json;
use tokio::sync::mpsc;

use ServiceState as S;

const LONG: Duration = Duration::from_secs(15);

/// A service actor under test with everything it reported.
struct Svc {
    actor: ActorRef<ServiceMsg>,
    handle: ServiceHandle,
    stderr: LogRing,
    reports: mpsc::UnboundedReceiver<ServiceReport>,
    seen: Vec<ServiceReport>,
    pids: Vec<u32>,
}

fn config(args: &[&str]) -> ServiceConfig {
    let mut c = ServiceConfig::stdio(
        chaos_bin().to_string_lossy().into_owned(),
        args.iter().map(|s| s.to_string()),
    );
    c.health.interval = Duration::from_millis(100);
    c.health.timeout = Duration::from_millis(300);
    c.backoff.initial = Duration::from_millis(20);
    c.backoff.max = Duration::from_millis(200);
    c.timeouts.connect = Duration::from_secs(10);
    c.timeouts.shutdown = Duration::from_millis(500);
    c
}

async fn start(cfg: ServiceConfig) -> Svc {
    let (tx, rx) = mpsc::unbounded_channel();
    let id = ServiceId::global(ServiceName::parse("chaos").unwrap());
    let handle = ServiceHandle::new(id.clone(), cfg.timeouts.call, ServiceMetrics::default());
    let stderr = LogRing::default();
    let args = ServiceArgs {
        id,
        config: cfg,
        handle: handle.clone(),
        stderr: stderr.clone(),
        sink: Arc::new(move |r| {
            let _ = tx.send(r);
        }),
        autostart: true,
    };
    let (actor, _join) = Actor::spawn(None, ServiceActor, args)
        .await
        .expect("spawn actor");
    Svc {
        actor,
        handle,
        stderr,
        reports: rx,
        seen: Vec::new(),
        pids: Vec::new(),
    }
}

impl Svc {
    /// Next report, recording pids of started processes.
    async fn next(&mut self, within: Duration) -> Option<ServiceReport> {
        let r = tokio::time::timeout(within, self.reports.recv())
            .await
            .ok()
            .flatten()?;
        if let ServiceReport::Process { pid: Some(p), .. } = &r {
            self.pids.push(*p);
        }
        self.seen.push(r.clone());
        Some(r)
    }

    /// Waits for a transition into `to`; returns its reason.
    async fn reach(&mut self, to: ServiceState, within: Duration) -> String {
        let end = Instant::now() + within;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.next(left).await {
                Some(ServiceReport::State { to: t, reason, .. }) if t == to => return reason,
                Some(_) => {}
                None => panic!(
                    "no transition to {to} within {within:?}; transitions seen: {:?}",
                    self.transitions()
                ),
            }
        }
    }

    fn transitions(&self) -> Vec<(S, S, String)> {
        self.seen
            .iter()
            .filter_map(|r| match r {
                ServiceReport::State {
                    from, to, reason, ..
                } => Some((*from, *to, reason.clone())),
                _ => None,
            })
            .collect()
    }

    fn pid(&self) -> u32 {
        *self.pids.last().expect("a process was reported")
    }

    async fn call(
        &self,
        tool: &str,
        args: serde_json::Value,
    ) -> Result<serde_json::Value, CallError> {
        let args = args.as_object().cloned();
        self.handle
            .call_tool(tool, args, None)
            .await
            .map(|o| o.result)
    }

    /// Stops gracefully and checks every process it ever started is gone.
    async fn stop(mut self) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let port: ractor::RpcReplyPort<()> = tx.into();
        let _ = self.actor.cast(ServiceMsg::Stop {
            force: false,
            reply: Some(port),
        });
        deadline(LONG, "stop", rx).await.expect("stop answered");
        while self.next(Duration::from_millis(1)).await.is_some() {}
        for p in &self.pids {
            assert!(
                wait_for_pid_exit(*p, Duration::from_secs(5)).await,
                "pid {p} survived stop"
            );
        }
        self.actor.stop(None);
    }
}

fn text_of(result: &serde_json::Value) -> String {
    result["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn starts_healthy_lists_tools_and_answers_calls() {
    let mut s = start(config(&["--tools", "3"])).await;
    s.reach(S::Healthy, LONG).await;
    let tools = s
        .seen
        .iter()
        .find_map(|r| match r {
            ServiceReport::Tools { tools, server, .. } => Some((tools.clone(), server.clone())),
            _ => None,
        })
        .expect("tools reported");
    let names: Vec<&str> = tools.0.iter().map(|t| t.name.as_str()).collect();
    for t in ["echo", "add", "sleep", "fail", "tool_0", "tool_2"] {
        assert!(names.contains(&t), "{t} missing from {names:?}");
    }
    assert_eq!(tools.1.name, "chaos-mcp");
    assert_eq!(
        s.transitions()
            .iter()
            .map(|t| (t.0, t.1))
            .collect::<Vec<_>>(),
        vec![(S::NotStarted, S::Starting), (S::Starting, S::Healthy)]
    );
    let r = s.call("echo", json!({"text": "hi"})).await.unwrap();
    assert_eq!(text_of(&r), "hi");
    let r = s.call("add", json!({"a": 2, "b": 3})).await.unwrap();
    assert_eq!(text_of(&r), "5");
    let out = s.handle.call_tool("fail", None, None).await.unwrap();
    assert!(out.is_error);
    let e = s.call("no_such_tool", json!({})).await.unwrap_err();
    assert!(matches!(e, CallError::Rejected { .. }), "{e:?}");
    s.stop().await;
}

#[tokio::test]
async fn sigkilled_child_is_seen_at_once_and_replaced() {
    let mut s = start(config(&[])).await;
    s.reach(S::Healthy, LONG).await;
    let old = s.pid();
    let killed_at = Instant::now();
    mcpvisor_tests::kill_pid(old);
    let reason = s.reach(S::Reconnecting, LONG).await;
    let seen_after = killed_at.elapsed();
    assert!(reason.contains("signal 9"), "{reason}");
    assert!(
        seen_after < Duration::from_secs(2),
        "loss seen after {seen_after:?}"
    );
    s.reach(S::Healthy, LONG).await;
    assert_ne!(s.pid(), old);
    assert!(!pid_alive(old));
    assert_eq!(s.handle.metrics().restarts(), 1);
    assert_eq!(
        text_of(&s.call("echo", json!({"text": "back"})).await.unwrap()),
        "back"
    );
    s.stop().await;
}

#[tokio::test]
async fn crash_loop_ends_failed_and_spawns_nothing_more() {
    let mut cfg = config(&["--exit-at-start", "3"]);
    cfg.intensity.max_restarts = 2;
    let mut s = start(cfg).await;
    let reason = s.reach(S::Failed, LONG).await;
    assert!(reason.contains("more than 2 restarts"), "{reason}");
    assert!(reason.contains("exit code 3"), "{reason}");
    let restarts = s.handle.metrics().restarts();
    // Nothing more happens by itself: no report arrives within a generous window.
    assert!(s.next(Duration::from_millis(700)).await.is_none());
    assert_eq!(s.handle.metrics().restarts(), restarts);
    // A manual start revives it (and it fails again, since it still exits at start).
    s.actor.cast(ServiceMsg::Start).unwrap();
    s.reach(S::Starting, LONG).await;
    s.reach(S::Failed, LONG).await;
    s.stop().await;
}

#[tokio::test]
async fn command_not_found_retries_with_backoff_then_unreachable_forever() {
    let mut cfg = ServiceConfig::stdio("/nonexistent/mcp-server", Vec::<String>::new());
    cfg.backoff.initial = Duration::from_millis(10);
    cfg.backoff.max_attempts = 3;
    cfg.backoff.unreachable_retry = Duration::from_millis(100);
    let mut s = start(cfg).await;
    let reason = s.reach(S::Reconnecting, LONG).await;
    assert!(reason.contains("not found"), "{reason}");
    let reason = s.reach(S::Unreachable, LONG).await;
    assert!(reason.contains("3 attempts failed"), "{reason}");
    // Slow retries go on: attempts keep being made.
    let before = s.handle.metrics().restarts();
    let h = s.handle.clone();
    assert!(wait_until(LONG, || h.metrics().restarts() >= before + 2).await);
    assert_eq!(s.handle.state(), S::Unreachable);
    let e = s.call("echo", json!({})).await.unwrap_err();
    assert!(
        matches!(
            e,
            CallError::NotUp {
                state: S::Unreachable,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("unreachable"));
    s.stop().await;
}

#[tokio::test]
async fn hung_server_warns_then_is_killed_and_reconnected() {
    let mut s = start(config(&["--hang-after-calls", "1"])).await;
    s.reach(S::Healthy, LONG).await;
    let old = s.pid();
    s.call("echo", json!({"text": "last words"})).await.unwrap();
    let reason = s.reach(S::Warning, LONG).await;
    assert!(reason.contains("probe"), "{reason}");
    let reason = s.reach(S::Reconnecting, LONG).await;
    assert!(reason.contains("3 consecutive probes failed"), "{reason}");
    assert!(
        wait_for_pid_exit(old, Duration::from_secs(5)).await,
        "hung process not killed"
    );
    s.reach(S::Healthy, LONG).await;
    assert_ne!(s.pid(), old);
    s.stop().await;
}

#[tokio::test]
async fn garbage_on_stdout_is_ignored() {
    let mut s = start(config(&["--garbage-at-start"])).await;
    s.reach(S::Healthy, LONG).await;
    assert_eq!(
        text_of(&s.call("echo", json!({"text": "ok"})).await.unwrap()),
        "ok"
    );
    s.stop().await;
}

#[tokio::test]
async fn ten_megabytes_of_stderr_never_stall_the_server() {
    let mut s = start(config(&["--stderr-flood", "10000000"])).await;
    s.reach(S::Healthy, LONG).await;
    let ring = s.stderr.clone();
    assert!(
        wait_until(LONG, || ring.total_bytes() >= 10_000_000).await,
        "only {} bytes drained",
        ring.total_bytes()
    );
    assert_eq!(
        text_of(&s.call("echo", json!({"text": "still here"})).await.unwrap()),
        "still here"
    );
    assert!(!s.stderr.tail(5).is_empty());
    assert_eq!(s.handle.state(), S::Healthy);
    s.stop().await;
}

#[tokio::test]
async fn stop_kills_a_server_that_ignores_sigterm_and_its_grandchild() {
    let mut s = start(config(&["--ignore-sigterm", "--spawn-grandchild"])).await;
    s.reach(S::Healthy, LONG).await;
    let pids = s.call("pids", json!({})).await.unwrap();
    let info: serde_json::Value = serde_json::from_str(&text_of(&pids)).unwrap();
    let leader = info["pid"].as_u64().unwrap() as u32;
    let grandchild = info["grandchild"].as_u64().unwrap() as u32;
    assert_eq!(leader, s.pid());
    assert!(pid_alive(grandchild));
    assert_eq!(mcpvisor_tests::process_group(grandchild), Some(leader));
    let started = Instant::now();
    s.stop().await;
    assert!(!pid_alive(leader));
    assert!(!pid_alive(grandchild), "grandchild survived the stop");
    // Graceful steps were tried (stdin, then SIGTERM, each with the 500 ms grace).
    assert!(started.elapsed() >= Duration::from_millis(500));
}

#[tokio::test]
async fn forced_stop_is_immediate() {
    let mut cfg = config(&["--ignore-sigterm"]);
    cfg.timeouts.shutdown = Duration::from_secs(30);
    let mut s = start(cfg).await;
    s.reach(S::Healthy, LONG).await;
    let pid = s.pid();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let started = Instant::now();
    s.actor
        .cast(ServiceMsg::Stop {
            force: true,
            reply: Some(tx.into()),
        })
        .unwrap();
    deadline(Duration::from_secs(5), "forced stop", rx)
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(wait_for_pid_exit(pid, Duration::from_secs(2)).await);
    assert_eq!(s.handle.state(), S::Stopped);
    let e = s.call("echo", json!({})).await.unwrap_err();
    assert!(matches!(
        e,
        CallError::NotUp {
            state: S::Stopped,
            ..
        }
    ));
    s.actor.stop(None);
}

#[tokio::test]
async fn a_forced_stop_cuts_a_graceful_stop_short() {
    // Ignores SIGTERM (logging it) and, once hung, stdin closing too. With a 5 s grace the
    // graceful stop closes stdin, waits 5 s, sends SIGTERM, then would wait 5 s more.
    let mut cfg = config(&["--log-ignored-sigterm"]);
    cfg.timeouts.shutdown = Duration::from_secs(5);
    cfg.health.interval = Duration::from_secs(60);
    let mut s = start(cfg).await;
    s.reach(S::Healthy, LONG).await;
    let pid = s.pid();
    s.call("chaos", json!({"action": "hang"})).await.unwrap();
    let (graceful_tx, graceful_rx) = tokio::sync::oneshot::channel();
    s.actor
        .cast(ServiceMsg::Stop {
            force: false,
            reply: Some(graceful_tx.into()),
        })
        .unwrap();
    s.reach(S::Stopping, LONG).await;
    // In the last graceful step: SIGTERM sent (and ignored), waiting for an exit.
    let ring = s.stderr.clone();
    assert!(
        wait_until(LONG, || ring
            .tail(20)
            .iter()
            .any(|l| l.contains("SIGTERM received, ignored")))
        .await,
        "no SIGTERM seen; stderr: {:?}",
        s.stderr.tail(10)
    );
    assert!(pid_alive(pid), "still in its graceful wait");
    let (tx, rx) = tokio::sync::oneshot::channel();
    let started = Instant::now();
    s.actor
        .cast(ServiceMsg::Stop {
            force: true,
            reply: Some(tx.into()),
        })
        .unwrap();
    deadline(Duration::from_secs(10), "forced stop", rx)
        .await
        .unwrap();
    deadline(
        Duration::from_secs(1),
        "the graceful stop's answer too",
        graceful_rx,
    )
    .await
    .unwrap();
    assert!(wait_for_pid_exit(pid, Duration::from_secs(2)).await);
    // Not at the end of the SIGTERM wait (5 s), at once.
    let took = started.elapsed();
    assert!(took < Duration::from_millis(2500), "took {took:?}");
    assert_eq!(s.handle.state(), S::Stopped);
    s.actor.stop(None);
}

#[tokio::test]
async fn call_timeout_cancels_and_leaves_the_service_healthy() {
    let mut s = start(config(&[])).await;
    s.reach(S::Healthy, LONG).await;
    let started = Instant::now();
    let e = s
        .handle
        .call_tool(
            "sleep",
            json!({"ms": 5000}).as_object().cloned(),
            Some(Duration::from_millis(200)),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, CallError::Timeout { .. }), "{e:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
    // The server was told: notifications/cancelled reached it (it logs so on stderr).
    let ring = s.stderr.clone();
    assert!(
        wait_until(LONG, || ring
            .tail(50)
            .iter()
            .any(|l| l.contains("sleep cancelled by the client")))
        .await,
        "no cancellation seen by the server; stderr: {:?}",
        s.stderr.tail(10)
    );
    assert_eq!(s.handle.state(), S::Healthy);
    assert_eq!(
        text_of(&s.call("echo", json!({"text": "after"})).await.unwrap()),
        "after"
    );
    let m = s.handle.metrics().snapshot(Some(true), Duration::ZERO);
    assert_eq!(m.call_errors, 1);
    s.stop().await;
}

#[tokio::test]
async fn slow_call_blocks_neither_probes_nor_other_calls() {
    let mut s = start(config(&[])).await;
    s.reach(S::Healthy, LONG).await;
    let h = s.handle.clone();
    let slow = tokio::spawn(async move {
        h.call_tool("sleep", json!({"ms": 1500}).as_object().cloned(), None)
            .await
    });
    let started = Instant::now();
    for i in 0..20 {
        let r = s
            .call("echo", json!({"text": i.to_string()}))
            .await
            .unwrap();
        assert_eq!(text_of(&r), i.to_string());
    }
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "calls waited for the slow one"
    );
    slow.await.unwrap().unwrap();
    let m = s.handle.metrics().snapshot(Some(true), Duration::ZERO);
    assert!(m.probes >= 1 && m.probe_failures == 0, "{m:?}");
    s.stop().await;
}

#[tokio::test]
async fn transient_restarts_only_abnormal_exits() {
    let mut cfg = config(&["--exit-after-calls", "1", "--exit-code", "0"]);
    cfg.restart = RestartPolicy::Transient;
    let mut s = start(cfg).await;
    s.reach(S::Healthy, LONG).await;
    let _ = s.call("echo", json!({"text": "bye"})).await;
    let reason = s.reach(S::Stopped, LONG).await;
    assert!(
        reason.contains("exit code 0") && reason.contains("transient"),
        "{reason}"
    );
    s.stop().await;

    let mut cfg = config(&["--exit-after-calls", "1", "--exit-code", "7"]);
    cfg.restart = RestartPolicy::Transient;
    let mut s = start(cfg).await;
    s.reach(S::Healthy, LONG).await;
    let _ = s.call("echo", json!({"text": "bye"})).await;
    let reason = s.reach(S::Reconnecting, LONG).await;
    assert!(reason.contains("exit code 7"), "{reason}");
    s.reach(S::Healthy, LONG).await;
    s.stop().await;
}

#[tokio::test]
async fn temporary_is_never_restarted() {
    let mut cfg = config(&["--exit-after-calls", "1", "--exit-code", "9"]);
    cfg.restart = RestartPolicy::Temporary;
    let mut s = start(cfg).await;
    s.reach(S::Healthy, LONG).await;
    let _ = s.call("echo", json!({"text": "bye"})).await;
    let reason = s.reach(S::Stopped, LONG).await;
    assert!(reason.contains("temporary"), "{reason}");
    assert!(
        s.next(Duration::from_millis(400)).await.is_none(),
        "something restarted"
    );
    s.stop().await;
}

#[tokio::test]
async fn list_changed_notification_updates_the_tools() {
    let mut s = start(config(&["--add-tool-after-calls", "1"])).await;
    s.reach(S::Healthy, LONG).await;
    s.call("echo", json!({"text": "x"})).await.unwrap();
    let end = Instant::now() + LONG;
    loop {
        match s.next(end.saturating_duration_since(Instant::now())).await {
            Some(ServiceReport::Tools { tools, .. })
                if tools.iter().any(|t| t.name == "late_tool") =>
            {
                break
            }
            Some(_) => {}
            None => panic!("late_tool never appeared"),
        }
    }
    let r = s.call("late_tool", json!({})).await;
    assert!(r.is_ok(), "{r:?}");
    s.stop().await;
}

#[tokio::test]
async fn closed_stdout_is_a_lost_connection() {
    let mut s = start(config(&["--close-stdout-after-calls", "1"])).await;
    s.reach(S::Healthy, LONG).await;
    let old = s.pid();
    let _ = s.call("echo", json!({"text": "x"})).await;
    let reason = s.reach(S::Reconnecting, LONG).await;
    assert!(reason.contains("stdout"), "{reason}");
    assert!(
        wait_for_pid_exit(old, Duration::from_secs(5)).await,
        "old process left running"
    );
    s.reach(S::Healthy, LONG).await;
    s.stop().await;
}

#[tokio::test]
async fn server_without_ping_is_probed_with_tools_list() {
    let mut s = start(config(&["--no-ping"])).await;
    s.reach(S::Healthy, LONG).await;
    let h = s.handle.clone();
    assert!(
        wait_until(LONG, || h
            .metrics()
            .snapshot(Some(true), Duration::ZERO)
            .probes
            >= 3)
        .await
    );
    let m = s.handle.metrics().snapshot(Some(true), Duration::ZERO);
    assert_eq!(m.probe_failures, 0);
    assert_eq!(s.handle.state(), S::Healthy);
    s.stop().await;
}

#[tokio::test]
async fn check_probes_now() {
    let mut s = start(config(&[])).await;
    s.reach(S::Healthy, LONG).await;
    let out = ractor::call!(s.actor, ServiceMsg::Check).unwrap();
    assert!(out.ok, "{out:?}");
    assert_eq!(out.state, S::Healthy);
    s.stop().await;
}

#[tokio::test]
async fn killing_the_actor_kills_the_process_group() {
    let mut s = start(config(&["--spawn-grandchild"])).await;
    s.reach(S::Healthy, LONG).await;
    let pids = s.call("pids", json!({})).await.unwrap();
    let info: serde_json::Value = serde_json::from_str(&text_of(&pids)).unwrap();
    let grandchild = info["grandchild"].as_u64().unwrap() as u32;
    let leader = s.pid();
    s.actor.kill();
    assert!(
        wait_for_pid_exit(leader, Duration::from_secs(5)).await,
        "leader survived"
    );
    assert!(
        wait_for_pid_exit(grandchild, Duration::from_secs(5)).await,
        "grandchild survived"
    );
}

#[tokio::test]
async fn restart_replaces_the_process() {
    let mut s = start(config(&[])).await;
    s.reach(S::Healthy, LONG).await;
    let old = s.pid();
    s.actor.cast(ServiceMsg::Restart).unwrap();
    s.reach(S::Stopping, LONG).await;
    s.reach(S::Stopped, LONG).await;
    s.reach(S::Starting, LONG).await;
    s.reach(S::Healthy, LONG).await;
    assert_ne!(s.pid(), old);
    assert!(!pid_alive(old));
    s.stop().await;
}

#[tokio::test]
async fn a_stopped_server_with_a_full_stdin_pipe_is_still_detected_and_replaced() {
    let mut s = start(config(&[])).await;
    s.reach(S::Healthy, LONG).await;
    let old = s.pid();
    // The server stops reading (SIGSTOP); calls with big arguments fill its stdin pipe, so
    // every later write, including a timed-out request's notifications/cancelled, blocks.
    send_signal(old, libc::SIGSTOP).unwrap();
    let big = "x".repeat(256 * 1024);
    let started = Instant::now();
    let calls = (0..4).map(|_| {
        s.handle.call_tool(
            "echo",
            json!({ "text": big }).as_object().cloned(),
            Some(Duration::from_millis(300)),
        )
    });
    let results = deadline(LONG, "calls end", futures::future::join_all(calls)).await;
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Err(CallError::Timeout { .. }))),
        "{results:?}"
    );
    // Each call is bounded by its timeout plus the cancel grace, never longer.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // Probes time out too (not hang): warning, then the stopped group is killed and replaced.
    s.reach(S::Reconnecting, LONG).await;
    assert!(
        wait_for_pid_exit(old, Duration::from_secs(5)).await,
        "stopped process not killed"
    );
    s.reach(S::Healthy, LONG).await;
    assert_ne!(s.pid(), old);
    assert_eq!(
        text_of(&s.call("echo", json!({"text": "back"})).await.unwrap()),
        "back"
    );
    s.stop().await;
}
