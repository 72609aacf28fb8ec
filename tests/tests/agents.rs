//! Real agents, end to end: Claude Code, Codex and Gemini CLI (pinned, installed by
//! `scripts/install-test-servers.sh`), each in its non-interactive mode with a throw-away HOME
//! and nothing of this machine's environment but `PATH`, call a tool through the gateway —
//! `run --serve` over streamable HTTP, and `serve --stdio` attached to that instance — in front of
//! real servers (server-memory, server-everything). The model is `tests/support/model_api.py`, a
//! scripted model API on loopback: on the first request offering the tool it asks for a call, and
//! it logs the result the agent hands back. Each test asserts on that log (the tool result the
//! model saw) and on the upstream's side (server-memory's file holds what the call created), never
//! on the agent's prose.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mcpvisor_tests::{mcpvisor_bin, servers_dir, RunServe};
use serde_json::{json, Value};

/// How long one agent run may take (a run here takes 1–3 s).
const AGENT_DEADLINE: Duration = Duration::from_secs(150);

#[derive(Clone, Copy, Debug)]
enum Agent {
    ClaudeCode,
    Codex,
    Gemini,
}

/// How the agent reaches the gateway.
#[derive(Clone, Copy, Debug)]
enum Link<'a> {
    /// `run --serve`'s URL.
    Http(&'a str),
    /// `mcpvisor --state-dir DIR serve --stdio`, attached to the instance of DIR.
    Stdio(&'a Path),
}

fn agent_bin(name: &str) -> PathBuf {
    let bin = servers_dir().join("agents/node_modules/.bin").join(name);
    assert!(
        bin.exists(),
        "the agent {name} is missing at {}: run `bash scripts/install-test-servers.sh`",
        bin.display()
    );
    bin
}

/// The scripted model API (`tests/support/model_api.py`), one per agent run.
struct Model {
    child: Child,
    url: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Model {
    /// A model that calls the tool whose name ends with `tool`, with `args`, `rounds` times.
    fn start(tool: &str, args: &Value, rounds: u32) -> Model {
        Model::start_with(tool, args, rounds, &[])
    }

    /// The same, with more of the script's flags (`--query`).
    fn start_with(tool: &str, args: &Value, rounds: u32, more: &[&str]) -> Model {
        use std::io::BufRead;
        let dir = tempfile::Builder::new().prefix("model").tempdir().unwrap();
        let log = dir.path().join("requests.jsonl");
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("support/model_api.py");
        let mut child = Command::new("python3")
            .arg(script)
            .args(["--tool", tool, "--args", &args.to_string()])
            .args(["--rounds", &rounds.to_string(), "--lifetime", "600"])
            .args(more)
            .arg("--log")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the scripted model API (python3)");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("the scripted model's first line");
        let url = line
            .trim()
            .strip_prefix("listening: ")
            .unwrap_or_else(|| panic!("the scripted model did not start: {line:?}"))
            .to_owned();
        Model {
            child,
            url,
            log,
            _dir: dir,
        }
    }

    /// Every record of its log.
    fn records(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The tool results the model saw, in order (each request repeats the history: deduplicated
    /// by call id).
    fn results(&self) -> Vec<Value> {
        let mut seen = Vec::new();
        let mut out = Vec::new();
        for r in self.records() {
            if r["event"] == "result" && !seen.contains(&r["id"]) {
                seen.push(r["id"].clone());
                out.push(r);
            }
        }
        out
    }

    /// Lets the model answer round `round` (it waits for this before every round after the first).
    fn go(&self, round: u32) {
        std::fs::write(format!("{}.go{round}", self.log.display()), b"go").unwrap();
    }
}

impl Drop for Model {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One agent run in progress: its process group, its throw-away HOME.
struct Run {
    agent: Agent,
    child: Child,
    home: tempfile::TempDir,
}

fn toml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// Starts `agent` non-interactively with `prompt`, its model at `model`, the gateway at `link`.
fn start_agent(agent: Agent, model: &Model, link: Link, prompt: &str) -> Run {
    let home = tempfile::Builder::new().prefix("agent").tempdir().unwrap();
    let work = home.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let bin = mcpvisor_bin().to_str().unwrap().to_owned();
    let stdio_args = |state: &Path| {
        vec![
            "--state-dir".to_owned(),
            state.to_str().unwrap().to_owned(),
            "serve".to_owned(),
            "--stdio".to_owned(),
        ]
    };
    let mut cmd;
    match agent {
        Agent::ClaudeCode => {
            let server = match link {
                Link::Http(url) => json!({"type": "http", "url": url}),
                Link::Stdio(state) => {
                    json!({"type": "stdio", "command": bin, "args": stdio_args(state)})
                }
            };
            cmd = Command::new(agent_bin("claude"));
            cmd.env_clear();
            cmd.args([
                "-p",
                prompt,
                "--output-format",
                "json",
                "--strict-mcp-config",
            ])
            .arg("--mcp-config")
            .arg(json!({"mcpServers": {"mcpvisor": server}}).to_string())
            // Its MCP tools are mcp__<server>__<tool>; only ours may run.
            .args(["--allowedTools", "mcp__mcpvisor"])
            .env("ANTHROPIC_BASE_URL", &model.url)
            .env("ANTHROPIC_API_KEY", "sk-scripted")
            // Else MCP tools hide behind Claude Code's own tool search.
            .env("ENABLE_TOOL_SEARCH", "false")
            .env("DISABLE_AUTOUPDATER", "1")
            .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1");
        }
        Agent::Codex => {
            let codex_home = home.path().join(".codex");
            std::fs::create_dir_all(&codex_home).unwrap();
            let server = match link {
                Link::Http(url) => format!("url = {}\n", toml_str(url)),
                Link::Stdio(state) => format!(
                    "command = {}\nargs = [{}]\n",
                    toml_str(&bin),
                    stdio_args(state)
                        .iter()
                        .map(|a| toml_str(a))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            std::fs::write(
                codex_home.join("config.toml"),
                format!(
                    "model = \"gpt-5.5\"\nmodel_provider = \"scripted\"\n\n\
                     [model_providers.scripted]\nname = \"scripted\"\nbase_url = {}\n\
                     wire_api = \"responses\"\n\n[mcp_servers.mcpvisor]\n{server}",
                    toml_str(&format!("{}/v1", model.url))
                ),
            )
            .unwrap();
            cmd = Command::new(agent_bin("codex"));
            cmd.env_clear();
            cmd.args(["exec", "--skip-git-repo-check", "--json"])
                .arg("--dangerously-bypass-approvals-and-sandbox")
                .arg(prompt)
                .env("CODEX_HOME", &codex_home);
        }
        Agent::Gemini => {
            let gemini = home.path().join(".gemini");
            std::fs::create_dir_all(&gemini).unwrap();
            let server = match link {
                Link::Http(url) => json!({"httpUrl": url}),
                Link::Stdio(state) => json!({"command": bin, "args": stdio_args(state)}),
            };
            std::fs::write(
                gemini.join("settings.json"),
                json!({
                    // With GOOGLE_GEMINI_BASE_URL alone, -p exits 41 ("Invalid auth method").
                    "security": {"auth": {"selectedType": "gemini-api-key"}},
                    "privacy": {"usageStatisticsEnabled": false},
                    "telemetry": {"enabled": false},
                    "general": {"disableAutoUpdate": true, "disableUpdateNag": true},
                    "mcpServers": {"mcpvisor": server}
                })
                .to_string(),
            )
            .unwrap();
            cmd = Command::new(agent_bin("gemini"));
            cmd.env_clear();
            cmd.args(["-p", prompt, "--yolo", "--output-format", "json"])
                .env("GEMINI_API_KEY", "scripted")
                .env("GOOGLE_GEMINI_BASE_URL", &model.url)
                .env("GEMINI_CLI_TRUST_WORKSPACE", "true");
        }
    }
    use std::os::unix::process::CommandExt;
    let child = cmd
        .current_dir(&work)
        .env("HOME", home.path())
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("TMPDIR", home.path())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(home.path().join("stdout")).unwrap())
        .stderr(std::fs::File::create(home.path().join("stderr")).unwrap())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("start {agent:?}: {e}"));
    Run { agent, child, home }
}

/// A run the test gave up on (it panicked before `finish`) ends with its process group.
impl Drop for Run {
    fn drop(&mut self) {
        mcpvisor_tests::kill_process_group(self.child.id());
        let _ = self.child.wait();
    }
}

impl Run {
    /// Waits for the run to end (bounded), then ends whatever it left in its process group (its
    /// `serve --stdio`). Returns what it printed; fails the test if it failed or overran.
    fn finish(mut self) -> String {
        let end = Instant::now() + AGENT_DEADLINE;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break Some(status);
            }
            if Instant::now() > end {
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        mcpvisor_tests::kill_process_group(self.child.id());
        let _ = self.child.wait();
        let out = std::fs::read_to_string(self.home.path().join("stdout")).unwrap_or_default();
        let err = std::fs::read_to_string(self.home.path().join("stderr")).unwrap_or_default();
        match status {
            Some(s) if s.success() => out,
            Some(s) => panic!("{:?} failed ({s}):\n{out}\n{err}", self.agent),
            None => panic!("{:?} overran {AGENT_DEADLINE:?}:\n{out}\n{err}", self.agent),
        }
    }
}

/// A fleet: server-memory (its graph in a file of the returned dir), server-everything, and
/// chaos-mcp (whose `fail` tool answers a tool error).
fn fleet() -> (RunServe, tempfile::TempDir) {
    let dir = tempfile::Builder::new().prefix("memory").tempdir().unwrap();
    let memory = dir.path().join("memory.jsonl");
    let instance = RunServe::start(&json!({"mcpServers": {
        "memory": {"command": "node",
                   "args": [mcpvisor_tests::node_server("server-memory")],
                   "env": {"MEMORY_FILE_PATH": memory}},
        "every": {"command": "node", "args": [
            "-r", mcpvisor_tests::loopback_preload(),
            mcpvisor_tests::node_server("server-everything"), "stdio"]},
        "chaos": {"command": mcpvisor_tests::chaos_bin()}
    }}));
    (instance, dir)
}

fn memory_file(dir: &tempfile::TempDir) -> String {
    std::fs::read_to_string(dir.path().join("memory.jsonl")).unwrap_or_default()
}

fn entity_args(name: &str) -> Value {
    json!({"entities": [{"name": name, "entityType": "test", "observations": ["seen by the model"]}]})
}

const PROMPT: &str = "Create the entity in the knowledge graph.";

/// `agent` creates an entity through the gateway over HTTP and over `serve --stdio`: the model
/// sees the tool's real result, server-memory's file holds the entity.
fn calls_a_tool_over_http_and_stdio(agent: Agent) {
    let (instance, memory) = fleet();
    for (i, link) in [Link::Http(&instance.url), Link::Stdio(&instance.state)]
        .into_iter()
        .enumerate()
    {
        let entity = format!("mcpvisor-e2e-{agent:?}-{i}");
        let model = Model::start("memory__create_entities", &entity_args(&entity), 1);
        let out = start_agent(agent, &model, link, PROMPT).finish();
        let results = model.results();
        assert_eq!(
            results.len(),
            1,
            "{agent:?} over {link:?}: the model saw {results:?}\n{out}\n{:?}",
            model.records()
        );
        assert_eq!(
            results[0]["is_error"], false,
            "{agent:?} over {link:?}: {results:?}"
        );
        let text = results[0]["text"].as_str().unwrap();
        assert!(
            text.contains(&entity),
            "{agent:?} over {link:?}: the model saw {text:?}"
        );
        // The call reached the upstream: the entity is in server-memory's file.
        assert!(
            memory_file(&memory).contains(&entity),
            "{agent:?} over {link:?}: not in server-memory's file: {}",
            memory_file(&memory)
        );
    }
}

#[test]
fn claude_code_calls_a_tool_through_the_gateway_over_http_and_stdio() {
    calls_a_tool_over_http_and_stdio(Agent::ClaudeCode);
}

#[test]
fn codex_calls_a_tool_through_the_gateway_over_http_and_stdio() {
    calls_a_tool_over_http_and_stdio(Agent::Codex);
}

#[test]
fn gemini_cli_calls_a_tool_through_the_gateway_over_http_and_stdio() {
    calls_a_tool_over_http_and_stdio(Agent::Gemini);
}

/// A call the upstream fails (a result with `isError`) reaches the model as a tool error, with
/// the upstream's own message.
fn a_failing_call_reaches_the_model_as_a_tool_error(agent: Agent) {
    let (instance, _memory) = fleet();
    let message = "the upstream refused: code 7";
    // Codex's tool search is BM25 over names and descriptions: words of the description.
    let model = Model::start_with(
        "chaos__fail",
        &json!({ "message": message }),
        1,
        &["--query", "return a tool error"],
    );
    let out = start_agent(agent, &model, Link::Http(&instance.url), PROMPT).finish();
    let results = model.results();
    assert_eq!(results.len(), 1, "{agent:?}: {results:?}\n{out}");
    assert!(
        results[0]["text"].as_str().unwrap().contains(message),
        "{agent:?}: {results:?}"
    );
    match agent {
        // The Responses API's function output has no error flag: Codex says it in its own
        // event stream (`codex exec --json`), where the call's item ends "failed".
        Agent::Codex => assert!(
            out.lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .any(|e| e["type"] == "item.completed"
                    && e["item"]["type"] == "mcp_tool_call"
                    && e["item"]["status"] == "failed"),
            "Codex did not report the call failed:\n{out}"
        ),
        _ => assert_eq!(results[0]["is_error"], true, "{agent:?}: {results:?}"),
    }
}

#[test]
fn a_failing_call_reaches_claude_codes_model_as_a_tool_error() {
    a_failing_call_reaches_the_model_as_a_tool_error(Agent::ClaudeCode);
}

#[test]
fn a_failing_call_reaches_codexs_model_as_a_tool_error() {
    a_failing_call_reaches_the_model_as_a_tool_error(Agent::Codex);
}

#[test]
fn a_failing_call_reaches_gemini_clis_model_as_a_tool_error() {
    a_failing_call_reaches_the_model_as_a_tool_error(Agent::Gemini);
}

/// `status --json` of the instance at `state`: the named service's view.
fn service_view(state: &Path, name: &str) -> Option<Value> {
    let (_, out, _) =
        mcpvisor_tests::finished(mcpvisor_tests::mcpvisor_on(state).args(["status", "--json"]));
    let views: Value = serde_json::from_str(&out).ok()?;
    views
        .as_array()?
        .iter()
        .find(|v| v["name"] == name)
        .cloned()
}

fn poll<T>(within: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One agent run, two turns: between them the upstream is killed (SIGKILL, every thread gone);
/// the second turn's call is answered by the restarted server, and the model sees its result.
fn an_upstream_killed_between_two_turns_is_back_for_the_second(agent: Agent) {
    let (instance, memory) = fleet();
    let (first, second) = (format!("before-{agent:?}"), format!("after-{agent:?}"));
    let model = Model::start(
        "memory__create_entities",
        &json!([entity_args(&first), entity_args(&second)]),
        2,
    );
    let run = start_agent(agent, &model, Link::Http(&instance.url), PROMPT);
    poll(Duration::from_secs(120), "the first turn's result", || {
        (model.results().len() == 1).then_some(())
    });
    let before = service_view(&instance.state, "memory").expect("memory's status");
    let pid = before["pid"].as_u64().expect("memory's pid") as u32;
    mcpvisor_tests::send_signal(pid, libc::SIGKILL).unwrap();
    poll(
        Duration::from_secs(10),
        "the killed server to be gone",
        || {
            let tasks = std::fs::read_dir(format!("/proc/{pid}/task"));
            (tasks.map(|mut t| t.next().is_none()).unwrap_or(true)).then_some(())
        },
    );
    model.go(2);
    let out = run.finish();
    let results = model.results();
    assert_eq!(results.len(), 2, "{agent:?}: {results:?}\n{out}");
    assert_eq!(results[1]["is_error"], false, "{agent:?}: {results:?}");
    assert!(
        results[1]["text"].as_str().unwrap().contains(&second),
        "{agent:?}: {results:?}"
    );
    // A new process answered it, and wrote where the old one did.
    let after = service_view(&instance.state, "memory").expect("memory's status");
    assert_ne!(after["pid"], before["pid"], "{after}");
    assert!(
        after["restarts"].as_u64() > before["restarts"].as_u64(),
        "{after}"
    );
    let file = memory_file(&memory);
    assert!(file.contains(&first) && file.contains(&second), "{file}");
}

#[test]
fn an_upstream_killed_between_two_turns_of_claude_code_is_back_for_the_second() {
    an_upstream_killed_between_two_turns_is_back_for_the_second(Agent::ClaudeCode);
}

#[test]
fn an_upstream_killed_between_two_turns_of_codex_is_back_for_the_second() {
    an_upstream_killed_between_two_turns_is_back_for_the_second(Agent::Codex);
}

#[test]
fn an_upstream_killed_between_two_turns_of_gemini_cli_is_back_for_the_second() {
    an_upstream_killed_between_two_turns_is_back_for_the_second(Agent::Gemini);
}
