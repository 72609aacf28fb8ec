//! The `mcpvisor` binary, driven as a user would: `validate`, one-shot commands without an
//! instance, `run` with its control socket (status, call, add, remove, stop/start, logs, check,
//! events), `run --watch` applying only the diff, clean exit on SIGTERM, and the exit codes.
//!
//! Every test gets its own state dir and config in a temp dir, kills what it starts, and waits on
//! observable state with a deadline.

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use mcpvisor_tests::{chaos_bin, kill_pid, mcpvisor_bin, pid_alive, send_signal};
use serde_json::{json, Value};
use tempfile::TempDir;

/// The longest one CLI command may take before the test fails.
const COMMAND_LIMIT: Duration = Duration::from_secs(45);
/// The longest a service may take to come up.
const UP_LIMIT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

/// What a finished command gave.
#[derive(Debug)]
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }
    fn ok(self) -> Self {
        assert_eq!(self.code, 0, "expected success: {self:?}");
        self
    }
}

/// A temp dir with a state dir and a config file path.
struct Sandbox {
    dir: TempDir,
}

impl Sandbox {
    fn new() -> Self {
        Sandbox {
            dir: tempfile::Builder::new()
                .prefix("mcpv")
                .tempdir()
                .expect("tempdir"),
        }
    }
    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }
    fn config(&self) -> PathBuf {
        self.dir.path().join("mcp.json")
    }
    fn write_config(&self, services: Value) {
        write_atomically(
            &self.config(),
            &json!({ "mcpServers": services }).to_string(),
        );
    }

    /// A command with this sandbox's state dir (and nothing from the caller's environment).
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(mcpvisor_bin());
        c.arg("--state-dir")
            .arg(self.state())
            .args(args)
            .env_remove("MCPVISOR_STATE_DIR")
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1")
            .current_dir(self.dir.path())
            .stdin(Stdio::null());
        c
    }

    /// Runs `mcpvisor ARGS --state-dir STATE` to completion (bounded by [`COMMAND_LIMIT`]).
    fn run(&self, args: &[&str]) -> Out {
        run_to_end(self.command(args), args)
    }

    /// Same, with `--config` pointing at the sandbox's config (one-shot mode when nothing runs).
    fn run_with_config(&self, args: &[&str]) -> Out {
        let config = self.config();
        let mut all: Vec<&str> = args.to_vec();
        all.push("--config");
        all.push(config.to_str().expect("utf-8 path"));
        self.run(&all)
    }

    /// Starts `mcpvisor run` in the background, output to files in the sandbox.
    fn start(&self, extra: &[&str]) -> Instance {
        let out = self.dir.path().join("run.out");
        let err = self.dir.path().join("run.err");
        let config = self.config();
        let mut args = vec!["run", "--config", config.to_str().expect("utf-8 path")];
        args.extend_from_slice(extra);
        let child = self
            .command(&args)
            .stdout(fs::File::create(&out).expect("run.out"))
            .stderr(fs::File::create(&err).expect("run.err"))
            .spawn()
            .expect("spawn mcpvisor run");
        Instance {
            child: Some(child),
            out,
            err,
        }
    }
}

fn run_to_end(mut cmd: Command, args: &[&str]) -> Out {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mcpvisor");
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(COMMAND_LIMIT) {
        Ok(r) => {
            let o = r.expect("wait for mcpvisor");
            Out {
                code: o.status.code().unwrap_or(-1),
                stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
            }
        }
        Err(_) => {
            kill_pid(pid);
            panic!(
                "`mcpvisor {}` did not finish within {COMMAND_LIMIT:?}",
                args.join(" ")
            );
        }
    }
}

fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, text).expect("write config");
    fs::rename(&tmp, path).expect("rename config");
}

/// A chaos server service.
fn chaos(args: &[&str]) -> Value {
    json!({
        "command": chaos_bin().to_string_lossy(),
        "args": args,
        "health": {"interval": "500ms", "timeout": "2s"},
        "backoff": {"initial": "50ms", "max": "500ms"},
        "timeouts": {"shutdown": "2s"}
    })
}

/// Polls `probe` every 50 ms until it returns `Some`, or panics with `what` after `limit`.
fn poll<T>(limit: Duration, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + limit;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < end, "timed out after {limit:?}: {what}");
        thread::sleep(Duration::from_millis(50));
    }
}

fn wait_pid_gone(pid: u32) {
    poll(
        Duration::from_secs(10),
        &format!("pid {pid} to exit"),
        || (!pid_alive(pid)).then_some(()),
    );
}

/// A background `mcpvisor run`; stopped (SIGTERM, then SIGKILL) when dropped.
struct Instance {
    child: Option<Child>,
    out: PathBuf,
    err: PathBuf,
}

impl Instance {
    fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    fn output(&self) -> String {
        format!(
            "--- run stdout ---\n{}\n--- run stderr ---\n{}",
            fs::read_to_string(&self.out).unwrap_or_default(),
            fs::read_to_string(&self.err).unwrap_or_default()
        )
    }

    /// Waits until `status --json` lists exactly `names`, every one healthy; returns the views.
    fn wait_healthy(&mut self, sb: &Sandbox, names: &[&str]) -> Vec<Value> {
        let mut wanted = names.to_vec();
        wanted.sort_unstable();
        let end = Instant::now() + UP_LIMIT;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("mcpvisor run exited early ({status}):\n{}", self.output());
            }
            let out = sb.run(&["status", "--json"]);
            if out.code == 0 {
                let views = out.json().as_array().cloned().unwrap_or_default();
                let mut listed: Vec<&str> =
                    views.iter().filter_map(|v| v["name"].as_str()).collect();
                listed.sort_unstable();
                if listed == wanted && views.iter().all(|v| v["state"] == "healthy") {
                    return views;
                }
            }
            assert!(
                Instant::now() < end,
                "services {names:?} not all healthy within {UP_LIMIT:?}; last status: {out:?}\n{}",
                self.output()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits (bounded) for the exit status after signals were sent by the test.
    fn terminate_after_signal(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        poll(Duration::from_secs(10), "mcpvisor run to exit", || {
            child.try_wait().ok().flatten()
        })
    }

    /// SIGTERM, then waits (bounded) for the exit status.
    fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        send_signal(child.id(), libc::SIGTERM).expect("SIGTERM");
        poll(
            Duration::from_secs(30),
            "mcpvisor run to exit after SIGTERM",
            || child.try_wait().ok().flatten(),
        )
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = send_signal(child.id(), libc::SIGTERM);
            let end = Instant::now() + Duration::from_secs(15);
            while Instant::now() < end {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn pid_of(views: &[Value], name: &str) -> u32 {
    let v = views
        .iter()
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {views:?}"));
    v["pid"]
        .as_u64()
        .and_then(|p| u32::try_from(p).ok())
        .unwrap_or_else(|| panic!("{name} has no pid: {v}"))
}

// ---------------------------------------------------------------------------------------------
// validate
// ---------------------------------------------------------------------------------------------

#[test]
fn validate_accepts_a_good_file_with_a_summary() {
    let sb = Sandbox::new();
    sb.write_config(json!({
        "db": chaos(&[]),
        "api": {"command": "x", "depends_on": ["db"]}
    }));
    let out = sb.run_with_config(&["validate"]).ok();
    assert!(
        out.stdout.contains("ok — 2 services") && out.stdout.contains("db → api"),
        "{out:?}"
    );
}

#[test]
fn validate_names_service_and_field_of_each_error_and_exits_2() {
    let sb = Sandbox::new();
    sb.write_config(json!({
        "api": {"command": "x", "health": {"interval": "soon"}},
        "both": {"command": "x", "url": "http://127.0.0.1:1/mcp"}
    }));
    let out = sb.run_with_config(&["validate"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stdout.contains("service 'api'") && out.stdout.contains("health.interval"),
        "{out:?}"
    );
    assert!(out.stdout.contains("service 'both'"), "{out:?}");
    let json = sb.run_with_config(&["validate", "--json"]);
    assert_eq!(json.code, 2);
    let errors = json.json()["errors"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        errors
            .iter()
            .any(|e| e["service"] == "api" && e["field"] == "health.interval"),
        "{errors:?}"
    );
}

#[test]
fn validate_gives_line_and_column_of_a_syntax_error() {
    let sb = Sandbox::new();
    write_atomically(
        &sb.config(),
        "{\n  \"mcpServers\": {\n    \"a\": {\"command\": \"x\",}\n  }\n}\n",
    );
    let out = sb.run_with_config(&["validate"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stdout.contains("line 3, column"), "{out:?}");
}

// ---------------------------------------------------------------------------------------------
// one-shot
// ---------------------------------------------------------------------------------------------

#[test]
fn one_shot_tools_and_call_work_without_an_instance_and_leave_no_process() {
    let sb = Sandbox::new();
    sb.write_config(json!({ "chaos": chaos(&["--tools", "1"]) }));
    let before = fs::read_to_string(sb.config()).unwrap();

    let tools = sb.run_with_config(&["tools", "--json"]).ok().json();
    let names: Vec<&str> = tools
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(
        names.contains(&"chaos__echo") && names.contains(&"chaos__tool_0"),
        "{names:?}"
    );

    let out = sb
        .run_with_config(&["call", "chaos__echo", "--args", r#"{"text":"hi"}"#])
        .ok();
    assert_eq!(out.stdout.trim(), "hi");

    // The embedded supervisor stops its server before the command exits.
    let pids = sb
        .run_with_config(&["call", "chaos__pids", "--json"])
        .ok()
        .json();
    let text = pids["result"]["content"][0]["text"].as_str().expect("text");
    let pid = serde_json::from_str::<Value>(text).expect("pids JSON")["pid"]
        .as_u64()
        .expect("pid") as u32;
    wait_pid_gone(pid);
    assert_eq!(
        fs::read_to_string(sb.config()).unwrap(),
        before,
        "a one-shot never rewrites the config file"
    );
}

#[test]
fn a_failed_tool_call_exits_1_and_bad_input_exits_2() {
    let sb = Sandbox::new();
    sb.write_config(json!({ "chaos": chaos(&[]) }));
    let failed = sb.run_with_config(&["call", "chaos__fail", "--args", r#"{"message":"boom"}"#]);
    assert_eq!(failed.code, 1, "{failed:?}");
    assert!(failed.stdout.contains("boom"), "{failed:?}");

    let unknown = sb.run_with_config(&["call", "chaos__nope"]);
    assert_eq!(unknown.code, 2, "{unknown:?}");
    assert!(unknown.stderr.contains("no tool named"), "{unknown:?}");

    let bad_json = sb.run_with_config(&["call", "chaos__echo", "--args", "{oops"]);
    assert_eq!(bad_json.code, 2, "{bad_json:?}");
    assert!(bad_json.stderr.contains("not valid JSON"), "{bad_json:?}");
    let not_object = sb.run_with_config(&["call", "chaos__echo", "--args", "[1]"]);
    assert_eq!(not_object.code, 2, "{not_object:?}");

    let bad_flag = sb.run(&["call", "chaos__echo", "--timeout", "soon"]);
    assert_eq!(bad_flag.code, 2, "{bad_flag:?}");
}

#[test]
fn client_commands_without_an_instance_fail_with_a_hint() {
    let sb = Sandbox::new();
    let out = sb.run(&["status"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("mcpvisor run"), "{out:?}");
    let out = sb.run(&["remove", "x"]);
    assert_eq!(out.code, 1, "{out:?}");
}

#[test]
fn help_and_completions_are_there() {
    let sb = Sandbox::new();
    let help = sb.run(&["--help"]).ok();
    for cmd in [
        "run",
        "validate",
        "status",
        "call",
        "add",
        "events",
        "completions",
    ] {
        assert!(help.stdout.contains(cmd), "--help lacks {cmd}: {help:?}");
    }
    sb.run(&["add", "--help"]).ok();
    let bash = sb.run(&["completions", "bash"]).ok();
    assert!(bash.stdout.contains("mcpvisor"), "{bash:?}");
}

// ---------------------------------------------------------------------------------------------
// run + control socket
// ---------------------------------------------------------------------------------------------

#[test]
fn run_serves_status_call_add_remove_stop_start_logs_check_and_events() {
    let sb = Sandbox::new();
    sb.write_config(json!({ "chaos": chaos(&["--stderr-lines", "40"]) }));
    let mut run = sb.start(&[]);
    let views = run.wait_healthy(&sb, &["chaos"]);
    for field in [
        "name",
        "state",
        "transport",
        "tools",
        "restarts",
        "last_error",
    ] {
        assert!(views[0].get(field).is_some(), "status --json lacks {field}");
    }
    assert_eq!(views[0]["transport"], "stdio");
    let first_pid = pid_of(&views, "chaos");

    // The socket is the owner's only; a second instance is refused.
    let mode = fs::metadata(sb.state().join("mcpvisor.sock"))
        .expect("socket")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let second = sb.run_with_config(&["run"]);
    assert_eq!(second.code, 1, "{second:?}");
    assert!(second.stderr.contains("already running"), "{second:?}");
    // Answering a server's questions from the command line is for one-shot calls only.
    let defaults = sb.run_with_config(&["call", "chaos__echo", "--accept-defaults"]);
    assert_eq!(defaults.code, 2, "{defaults:?}");
    assert!(
        defaults.stderr.contains("one-shot mode only"),
        "{defaults:?}"
    );

    // Events stream while we act, from the moment the instance confirmed the subscription.
    let mut events = sb
        .command(&["events", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn events");
    let (tx, rx) = mpsc::channel::<String>();
    let stdout = events.stdout.take().expect("events stdout");
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let (sub_tx, sub_rx) = mpsc::channel::<String>();
    let stderr = events.stderr.take().expect("events stderr");
    thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = sub_tx.send(line);
        }
    });
    let first = sub_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("events confirms its subscription");
    assert!(first.contains("following the events"), "{first}");

    let call = sb.run(&[
        "call",
        "chaos__echo",
        "--args",
        r#"{"text":"through the socket"}"#,
    ]);
    assert_eq!(call.ok().stdout.trim(), "through the socket");

    let chaos_path = chaos_bin().to_string_lossy().into_owned();
    let added = sb
        .run(&["add", "extra", "--", &chaos_path, "--tools", "1"])
        .ok();
    assert!(added.stdout.contains("added extra: healthy"), "{added:?}");
    let tools = sb.run(&["tools", "extra", "--json"]).ok().json();
    let tools = tools.as_array().expect("array");
    assert_eq!(tools.len(), 7, "6 chaos tools + tool_0: {tools:?}");
    assert!(tools
        .iter()
        .all(|t| t["name"].as_str().unwrap().starts_with("extra__")));
    poll(
        Duration::from_secs(5),
        "the added service in the config file",
        || {
            let persisted = fs::read_to_string(sb.config()).unwrap_or_default();
            persisted.contains("\"extra\"").then_some(())
        },
    );

    let logs = sb.run(&["logs", "chaos", "--lines", "500"]).ok();
    assert!(logs.stdout.contains("log line 0"), "{logs:?}");
    assert!(logs.stdout.contains("log line 39"), "{logs:?}");
    let last = sb.run(&["logs", "chaos", "--lines", "2", "--json"]).ok();
    assert_eq!(
        last.json()["lines"].as_array().map(Vec::len),
        Some(2),
        "{last:?}"
    );

    let stopped = sb.run(&["stop", "chaos"]).ok();
    assert!(stopped.stdout.contains("chaos: stopped"), "{stopped:?}");
    wait_pid_gone(first_pid);
    let call_down = sb.run(&["call", "chaos__echo", "--args", r#"{"text":"x"}"#]);
    assert_eq!(
        call_down.code, 1,
        "a call to a stopped service fails: {call_down:?}"
    );
    let started = sb.run(&["start", "chaos"]).ok();
    assert!(started.stdout.contains("chaos: healthy"), "{started:?}");

    let check = sb.run(&["check", "--json"]).ok().json();
    let rows = check.as_array().expect("array");
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r["ok"] == true), "{rows:?}");

    let views = sb.run(&["status", "--json"]).ok().json();
    let extra_pid = pid_of(views.as_array().unwrap(), "extra");
    sb.run(&["remove", "extra"]).ok();
    wait_pid_gone(extra_pid);
    let names: Vec<String> = sb
        .run(&["status", "--json"])
        .ok()
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["chaos"]);
    let unknown = sb.run(&["remove", "nope"]);
    assert_eq!(unknown.code, 2, "{unknown:?}");

    // The event stream saw chaos stop and come back.
    let mut seen = Vec::new();
    poll(
        Duration::from_secs(10),
        "events of the stop and start",
        || {
            while let Ok(line) = rx.try_recv() {
                seen.push(serde_json::from_str::<Value>(&line).expect("event JSON"));
            }
            let to = |s: &str| {
                seen.iter().any(|e| {
                    e["kind"] == "state_changed" && e["service"]["name"] == "chaos" && e["to"] == s
                })
            };
            (to("stopped") && to("healthy")).then_some(())
        },
    );
    let _ = events.kill();
    let _ = events.wait();

    assert!(run.terminate().success(), "{}", run.output());
}

#[test]
fn sigterm_stops_run_with_exit_0_and_leaves_no_child_process() {
    let sb = Sandbox::new();
    sb.write_config(json!({
        "db": chaos(&[]),
        "api": {
            "command": chaos_bin().to_string_lossy(),
            "depends_on": ["db"],
            "timeouts": {"shutdown": "2s"}
        }
    }));
    // A socket left behind by a killed instance is no obstacle.
    fs::create_dir_all(sb.state()).unwrap();
    drop(std::os::unix::net::UnixListener::bind(sb.state().join("mcpvisor.sock")).unwrap());

    let mut run = sb.start(&[]);
    let views = run.wait_healthy(&sb, &["db", "api"]);
    let pids = [pid_of(&views, "db"), pid_of(&views, "api")];
    let run_pid = run.pid();
    let status = run.terminate();
    assert!(status.success(), "exit status {status}:\n{}", run.output());
    for pid in pids {
        assert!(
            !pid_alive(pid),
            "child {pid} outlived mcpvisor run {run_pid}"
        );
    }
    assert!(
        !sb.state().join("mcpvisor.sock").exists(),
        "the socket is removed"
    );
    let out = run.output();
    let api_stop = out.find("api  healthy → stopping");
    let db_stop = out.find("db  healthy → stopping");
    assert!(
        api_stop.is_some() && db_stop.is_some() && api_stop < db_stop,
        "dependents stop first:\n{out}"
    );
}

#[test]
fn a_second_signal_kills_a_server_that_ignores_sigterm_at_once() {
    let sb = Sandbox::new();
    sb.write_config(json!({
        "stubborn": {
            "command": chaos_bin().to_string_lossy(),
            "args": ["--ignore-sigterm", "--hang-at-start"],
            "timeouts": {"shutdown": "60s", "connect": "60s"}
        }
    }));
    let mut run = sb.start(&[]);
    // It never answers initialize; wait until its process exists (status shows `starting`).
    let pid = poll(
        Duration::from_secs(10),
        "the stubborn server to be spawned",
        || {
            let out = sb.run(&["status", "--json"]);
            (out.code == 0).then_some(())?;
            let views = out.json().as_array().cloned()?;
            views
                .iter()
                .find_map(|v| v["pid"].as_u64())
                .map(|p| p as u32)
        },
    );
    let _cleanup = KillOnDrop(vec![pid]);
    let run_pid = run.pid();
    send_signal(run_pid, libc::SIGTERM).expect("first SIGTERM");
    // Graceful stop would wait 60 s twice; a second signal cuts it short.
    poll(Duration::from_secs(10), "the shutdown to begin", || {
        run.output()
            .contains("stopping every service")
            .then_some(())
    });
    send_signal(run_pid, libc::SIGTERM).expect("second SIGTERM");
    let status = run.terminate_after_signal();
    assert!(status.success(), "exit status {status}:\n{}", run.output());
    assert!(!pid_alive(pid), "the stubborn server outlived mcpvisor");
    assert!(run.output().contains("again: killing"), "{}", run.output());
}

#[test]
fn watch_applies_only_the_diff_while_calls_to_untouched_services_keep_working() {
    let sb = Sandbox::new();
    sb.write_config(json!({
        "keep": chaos(&[]),
        "gone": chaos(&[]),
        "changed": chaos(&["--tools", "1"])
    }));
    let mut run = sb.start(&["--watch"]);
    let views = run.wait_healthy(&sb, &["keep", "gone", "changed"]);
    let keep_pid = pid_of(&views, "keep");
    let gone_pid = pid_of(&views, "gone");
    let changed_pid = pid_of(&views, "changed");

    // An invalid edit is reported and ignored.
    write_atomically(&sb.config(), "{\"mcpServers\": {\"keep\": ");
    poll(
        Duration::from_secs(10),
        "the invalid edit to be reported",
        || run.output().contains("config edit ignored").then_some(()),
    );
    run.wait_healthy(&sb, &["keep", "gone", "changed"]);

    // Calls to `keep` go on while the file changes around it.
    let stop = Arc::new(AtomicBool::new(false));
    let caller = {
        let stop = stop.clone();
        let cmd_state = sb.state();
        thread::spawn(move || {
            let (mut ok, mut failures) = (0u32, Vec::new());
            for _ in 0..10_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let mut c = Command::new(mcpvisor_bin());
                c.args(["call", "keep__echo", "--args", r#"{"text":"still here"}"#])
                    .arg("--state-dir")
                    .arg(&cmd_state)
                    .env_remove("MCPVISOR_STATE_DIR")
                    .stdin(Stdio::null());
                let out = run_to_end(c, &["call", "keep__echo"]);
                if out.code == 0 && out.stdout.trim() == "still here" {
                    ok += 1;
                } else {
                    failures.push(out);
                }
            }
            (ok, failures)
        })
    };

    sb.write_config(json!({
        "keep": chaos(&[]),
        "changed": chaos(&["--tools", "2"]),
        "fresh": chaos(&[])
    }));
    let views = run.wait_healthy(&sb, &["keep", "changed", "fresh"]);
    stop.store(true, Ordering::Relaxed);
    let (ok, failures) = caller.join().expect("caller thread");

    assert!(failures.is_empty(), "calls to keep failed: {failures:?}");
    assert!(ok > 0, "no call was made");
    assert_eq!(pid_of(&views, "keep"), keep_pid, "keep was not touched");
    let keep = views.iter().find(|v| v["name"] == "keep").unwrap();
    assert_eq!(keep["restarts"], 0);
    let changed = views.iter().find(|v| v["name"] == "changed").unwrap();
    assert_ne!(
        pid_of(&views, "changed"),
        changed_pid,
        "changed was restarted"
    );
    assert_eq!(changed["tools"], 8, "changed runs with its new args");
    wait_pid_gone(gone_pid);
    wait_pid_gone(changed_pid);
    let out = run.output();
    assert!(
        out.contains("added fresh")
            && out.contains("removed gone")
            && out.contains("updated changed"),
        "{out}"
    );
    assert!(run.terminate().success(), "{}", run.output());
}

// ---------------------------------------------------------------------------------------------
// supervisor SIGKILLed

/// SIGKILLs these pids when dropped (also when the test fails half-way).
struct KillOnDrop(Vec<u32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for p in &self.0 {
            if pid_alive(*p) {
                kill_pid(*p);
            }
        }
    }
}

#[test]
fn a_sigkilled_supervisor_leaves_orphans_that_the_next_run_reaps() {
    let sb = Sandbox::new();
    sb.write_config(json!({"orphan": chaos(&["--spawn-grandchild"])}));
    let mut first = sb.start(&[]);
    let views = first.wait_healthy(&sb, &["orphan"]);
    let pid = pid_of(&views, "orphan");
    let state = sb.state().join("state.json");
    poll(
        Duration::from_secs(10),
        "the state file to record the child",
        || {
            let text = fs::read_to_string(&state).ok()?;
            let v: Value = serde_json::from_str(&text).ok()?;
            v["processes"]
                .as_array()?
                .iter()
                .any(|p| p["pid"] == pid)
                .then_some(())
        },
    );
    let grandchild = {
        let out = sb.run(&["call", "orphan__pids", "--json"]).ok();
        let v = out.json();
        let text = v["content"][0]["text"]
            .as_str()
            .or_else(|| v["result"]["content"][0]["text"].as_str())
            .unwrap_or_else(|| panic!("no pids text in {v}"))
            .to_owned();
        let info: Value = serde_json::from_str(&text).expect("pids JSON");
        info["grandchild"].as_u64().expect("grandchild pid") as u32
    };
    // Whatever happens below, nothing this test started outlives it.
    let _cleanup = KillOnDrop(vec![pid, grandchild]);
    // SIGKILL the supervisor itself: nothing runs its cleanup. The server may notice its
    // closed stdin and exit; its grandchild, in the same group, lives on as an orphan.
    let mut sup = first.child.take().expect("running");
    sup.kill().expect("SIGKILL mcpvisor");
    sup.wait().expect("reap mcpvisor");
    assert!(
        pid_alive(grandchild),
        "the grandchild should outlive a SIGKILLed supervisor"
    );
    // The next run finds the recorded group, checks it is still that process, and reaps it.
    let mut second = sb.start(&[]);
    let views = second.wait_healthy(&sb, &["orphan"]);
    wait_pid_gone(pid);
    wait_pid_gone(grandchild);
    assert_ne!(pid_of(&views, "orphan"), pid);
    let new_pid = pid_of(&views, "orphan");
    assert!(second.terminate().success(), "{}", second.output());
    wait_pid_gone(new_pid);
}

#[test]
fn a_hand_edit_made_while_running_survives_a_runtime_add() {
    let sb = Sandbox::new();
    sb.write_config(json!({"one": chaos(&[])}));
    let mut run = sb.start(&[]);
    run.wait_healthy(&sb, &["one"]);
    // Edited by hand while `run` (without --watch) holds the config: a service and a note.
    let chaos_path = chaos_bin().to_string_lossy().into_owned();
    write_atomically(
        &sb.config(),
        &json!({"note": "added by hand", "mcpServers": {"one": chaos(&[]), "manual": chaos(&[])}})
            .to_string(),
    );
    let added = sb
        .run(&["add", "extra", "--", &chaos_path, "--tools", "1"])
        .ok();
    assert!(added.stdout.contains("added extra: healthy"), "{added:?}");
    let file: Value = poll(
        Duration::from_secs(5),
        "the added service in the config file",
        || {
            let text = fs::read_to_string(sb.config()).ok()?;
            let v: Value = serde_json::from_str(&text).ok()?;
            v["mcpServers"].get("extra").is_some().then_some(v)
        },
    );
    let names: Vec<&String> = file["mcpServers"].as_object().unwrap().keys().collect();
    assert_eq!(names, ["one", "manual", "extra"], "{file}");
    assert_eq!(file["note"], "added by hand", "{file}");
    assert!(run.terminate().success(), "{}", run.output());
}

#[test]
fn agent_scoped_tools_and_calls() {
    let sb = Sandbox::new();
    write_atomically(
        &sb.config(),
        &json!({
            "mcpServers": {"shared": chaos(&[])},
            "agents": {"bot": {"mcpServers": {"svc": chaos(&["--tools", "1"])}}}
        })
        .to_string(),
    );
    let tools = sb
        .run_with_config(&["tools", "--agent", "bot", "--json"])
        .ok();
    let names: Vec<String> = tools
        .json()
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|t| t["name"].as_str().map(str::to_owned))
        .collect();
    assert!(names.contains(&"svc__tool_0".to_string()), "{names:?}");
    assert!(
        !names.iter().any(|n| n.starts_with("shared__")),
        "{names:?}"
    );
    let out = sb
        .run_with_config(&[
            "call",
            "svc__echo",
            "--agent",
            "bot",
            "--args",
            r#"{"text": "as bot"}"#,
        ])
        .ok();
    assert!(out.stdout.contains("as bot"), "{out:?}");
    // The store's own scope does not see the agent's service.
    let out = sb.run_with_config(&["call", "svc__echo", "--args", "{}"]);
    assert_eq!(out.code, 2, "{out:?}");
}

/// A CA and a certificate for `127.0.0.1` / `localhost` it signed, written as PEM files; returns
/// (CA bundle, certificate chain, key).
fn test_pki(dir: &Path, tag: &str) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, format!("mcpvisor test CA {tag}"));
    let ca = ca_params.self_signed(&ca_key).expect("CA certificate");
    let key = KeyPair::generate().expect("server key");
    let params = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .expect("server params");
    let cert = params
        .signed_by(&key, &ca, &ca_key)
        .expect("server certificate");
    let paths = (
        dir.join(format!("ca-{tag}.pem")),
        dir.join(format!("server-{tag}.pem")),
        dir.join(format!("server-{tag}.key")),
    );
    fs::write(&paths.0, ca.pem()).unwrap();
    fs::write(&paths.1, cert.pem()).unwrap();
    fs::write(&paths.2, key.serialize_pem()).unwrap();
    paths
}

#[test]
fn https_servers_are_verified_against_the_trusted_roots() {
    let sb = Sandbox::new();
    let (ca, cert, key) = test_pki(sb.dir.path(), "good");
    let (other_ca, _, _) = test_pki(sb.dir.path(), "other");
    // chaos-mcp serving HTTPS on loopback; its first stdout line is the URL.
    let mut server = Command::new(chaos_bin())
        .args(["--http", "127.0.0.1:0", "--tls-cert"])
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn chaos-mcp");
    let _guard = KillOnDrop(vec![server.id()]);
    let mut url = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut url)
        .expect("URL line");
    let url = url.trim().to_owned();
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    sb.write_config(json!({ "secure": {"url": url, "timeouts": {"connect": "3s"}} }));
    let config = sb.config();
    let call = |bundle: &Path| {
        let args = [
            "call",
            "secure__echo",
            "--args",
            r#"{"text":"over tls"}"#,
            "--wait",
            "3s",
            "--config",
            config.to_str().unwrap(),
        ];
        let mut cmd = sb.command(&args);
        cmd.env("SSL_CERT_FILE", bundle).env_remove("SSL_CERT_DIR");
        run_to_end(cmd, &args)
    };

    // Trusted through SSL_CERT_FILE: the call goes through.
    let ok = call(&ca).ok();
    assert_eq!(ok.stdout.trim(), "over tls");

    // Signed by a CA that is not trusted: refused, and the error says why.
    let refused = call(&other_ca);
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(
        refused.stderr.contains(
            "TLS: the certificate of 127.0.0.1 was refused: it is not signed by a trusted authority"
        ),
        "the reason names the certificate and why: {refused:?}"
    );
    // Words, not Rust types; and no colour codes off a terminal.
    for noise in ["rustls::", "rmcp::", "reqwest::", "\x1b["] {
        assert!(!refused.stderr.contains(noise), "{noise:?} in {refused:?}");
    }
    let _ = server.kill();
    let _ = server.wait();
}

#[test]
fn run_off_a_terminal_logs_one_line_per_transition_from_the_start_without_escapes() {
    let sb = Sandbox::new();
    sb.write_config(json!({ "a": chaos(&[]), "b": chaos(&[]) }));
    let mut run = sb.start(&[]);
    run.wait_healthy(&sb, &["a", "b"]);
    let status = sb.run(&["status"]).ok();
    assert!(
        status.stdout.contains("2/2 up (2 healthy)"),
        "the footer: {status:?}"
    );
    let ready = poll(UP_LIMIT, "the ready line", || {
        let out = fs::read_to_string(&run.out).unwrap_or_default();
        out.contains("ready: 2/2 healthy").then_some(out)
    });
    assert!(run.terminate().success());
    let out = fs::read_to_string(&run.out).unwrap();
    for name in ["a", "b"] {
        assert!(
            out.lines()
                .any(|l| l.contains(&format!("  {name}  ")) && l.contains("→ healthy")),
            "a transition line for {name}: {out}"
        );
    }
    assert!(!out.contains('\u{1b}'), "no escape bytes: {out:?}");
    assert!(!out.contains("(waiting for"), "no start-up counter: {out}");
    assert!(!ready.is_empty());
}

#[test]
fn under_systemd_run_says_ready_once_settled_and_stopping_on_sigterm() {
    use std::os::unix::net::UnixDatagram;
    let sb = Sandbox::new();
    sb.write_config(json!({ "a": chaos(&[]) }));
    let socket_path = sb.dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).expect("bind the notify socket");
    socket
        .set_read_timeout(Some(UP_LIMIT))
        .expect("read timeout");
    let config = sb.config();
    let mut child = sb
        .command(&["run", "--config", config.to_str().unwrap()])
        .env("NOTIFY_SOCKET", &socket_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn run");
    let mut buf = [0u8; 256];
    let n = socket.recv(&mut buf).expect("READY=1 within the limit");
    let ready = String::from_utf8_lossy(&buf[..n]).into_owned();
    // Ready means settled: the service is up by then.
    let status = sb.run(&["status", "--json"]).ok().json();
    send_signal(child.id(), libc::SIGTERM).unwrap();
    let n = socket.recv(&mut buf).expect("STOPPING=1 after SIGTERM");
    let stopping = String::from_utf8_lossy(&buf[..n]).into_owned();
    let exited = poll(Duration::from_secs(30), "run to exit", || {
        child.try_wait().ok().flatten()
    });
    assert!(ready.contains("READY=1"), "{ready}");
    assert_eq!(status[0]["state"], "healthy", "{status}");
    assert!(stopping.contains("STOPPING=1"), "{stopping}");
    assert!(exited.success());
}

#[test]
fn run_with_json_logs_writes_one_json_object_per_line() {
    let sb = Sandbox::new();
    sb.write_config(json!({ "a": chaos(&[]), "broken": {"command": "/nonexistent/server"} }));
    let mut run = sb.start(&["--log-format", "json"]);
    poll(UP_LIMIT, "the ready line", || {
        let out = fs::read_to_string(&run.out).unwrap_or_default();
        out.contains("ready: ").then_some(())
    });
    assert!(run.terminate().success());
    let out = fs::read_to_string(&run.out).unwrap();
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        lines.iter().any(|l| l["kind"] == "state_changed"
            && l["service"]["name"] == "a"
            && l["to"] == "healthy"),
        "a's transition as an event object: {out}"
    );
    assert!(
        lines.iter().any(|l| l["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("ready: "))),
        "{out}"
    );
    let err = fs::read_to_string(&run.err).unwrap();
    for l in err.lines() {
        serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("stderr not JSON ({e}): {l}"));
    }
}

#[test]
fn run_with_a_lazy_service_shows_it_idle_and_a_cli_call_starts_it() {
    let sb = Sandbox::new();
    let mut lazy = chaos(&[]);
    lazy["start"] = json!("lazy");
    sb.write_config(json!({ "eager": chaos(&[]), "lazy": lazy }));
    let run = sb.start(&[]);
    // It learns its tools once, then is idle: counted apart, its tools listed.
    let views = poll(UP_LIMIT, "lazy idle, eager healthy", || {
        let out = sb.run(&["status", "--json"]);
        if out.code != 0 {
            return None;
        }
        let views = out.json().as_array().cloned().unwrap_or_default();
        let state = |n: &str| {
            views
                .iter()
                .find(|v| v["name"] == n)
                .map(|v| v["state"].clone())
        };
        (state("lazy") == Some(json!("idle")) && state("eager") == Some(json!("healthy")))
            .then_some(views)
    });
    let lazy_view = views.iter().find(|v| v["name"] == "lazy").unwrap();
    assert_eq!(lazy_view["pid"], Value::Null);
    assert_eq!(lazy_view["tools"], json!(6));
    let status = sb.run(&["status"]).ok();
    assert!(
        status.stdout.contains("1/2 up (1 healthy), 1 idle"),
        "{status:?}"
    );
    let tools = sb.run(&["tools"]).ok();
    assert!(tools.stdout.contains("lazy__echo"), "{tools:?}");
    // A call from the CLI starts it and is answered.
    let out = sb
        .run(&["call", "lazy__echo", "--args", r#"{"text":"woken"}"#])
        .ok();
    assert!(out.stdout.contains("woken"), "{out:?}");
    let status = sb.run(&["status", "--json"]).ok();
    let lazy_view = status.json().as_array().cloned().unwrap_or_default();
    let lazy_view = lazy_view.iter().find(|v| v["name"] == "lazy").unwrap();
    assert_eq!(lazy_view["state"], "healthy");
    assert_eq!(lazy_view["restarts"], 0);
    let pid = pid_of(status.json().as_array().unwrap(), "lazy");
    drop(run);
    wait_pid_gone(pid);
}

/// `mcpvisor top` in a real pseudo-terminal, against a running instance: it draws the fleet,
/// its keys stop and start the selected service (checked with `status`), and `q` quits with 0.
#[test]
fn top_in_a_pseudo_terminal_shows_the_fleet_and_its_keys_stop_and_start_a_service() {
    use portable_pty::{native_pty_system, CommandBuilder, PtySize};
    use std::io::{Read, Write};
    use std::sync::Mutex;

    let sb = Sandbox::new();
    sb.write_config(json!({ "svc": chaos(&[]) }));
    let mut run = sb.start(&[]);
    run.wait_healthy(&sb, &["svc"]);

    let pty = native_pty_system()
        .openpty(PtySize {
            rows: 30,
            cols: 120,
            pixel_width: 0,
            pixel_height: 0,
        })
        .expect("a pseudo-terminal");
    let mut cmd = CommandBuilder::new(mcpvisor_bin());
    cmd.args(["top", "--interval", "200ms", "--state-dir"]);
    cmd.arg(sb.state());
    cmd.cwd(sb.dir.path());
    cmd.env("TERM", "xterm-256color");
    let mut top = pty.slave.spawn_command(cmd).expect("spawn top");
    drop(pty.slave);
    let screen = Arc::new(Mutex::new(Vec::<u8>::new()));
    let mut reader = pty.master.try_clone_reader().expect("pty reader");
    let sink = screen.clone();
    thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    let mut keys = pty.master.take_writer().expect("pty writer");
    let shown = |what: &str| String::from_utf8_lossy(&screen.lock().unwrap()).contains(what);
    poll(UP_LIMIT, "top draws the fleet", || {
        (shown("mcpvisor top") && shown("svc") && shown("healthy")).then_some(())
    });
    let state = |sb: &Sandbox| -> Option<String> {
        let out = sb.run(&["status", "--json"]);
        let views = out.json();
        views.as_array()?.first()?["state"]
            .as_str()
            .map(str::to_owned)
    };
    keys.write_all(b"x").unwrap();
    keys.flush().unwrap();
    poll(UP_LIMIT, "x stops the selected service", || {
        (state(&sb).as_deref() == Some("stopped")).then_some(())
    });
    keys.write_all(b"s").unwrap();
    keys.flush().unwrap();
    poll(UP_LIMIT, "s starts it again", || {
        (state(&sb).as_deref() == Some("healthy")).then_some(())
    });
    keys.write_all(b"l").unwrap();
    keys.flush().unwrap();
    poll(UP_LIMIT, "l shows its logs", || {
        shown("stderr (l or Esc closes)").then_some(())
    });
    keys.write_all(b"q").unwrap();
    keys.flush().unwrap();
    let status = poll(Duration::from_secs(10), "top to quit", || {
        top.try_wait().ok().flatten()
    });
    assert!(status.success(), "top exited with {status:?}");
    assert!(run.terminate().success());
}
