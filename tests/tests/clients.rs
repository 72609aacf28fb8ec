//! Every client's own file, as it is (issue "Every client plugs in"): the real `mcpvisor`
//! binary with a throw-away HOME holding each client's config file at its documented place
//! (fixtures in `tests/fixtures/clients`, with comments, trailing commas and unknown keys):
//! `clients` reads them, `import` brings their servers into mcpvisor's config (the same server
//! once, a clash reported), `connect --move` and `disconnect` edit them in place keeping every
//! other byte, and a real agent (Claude Code) reaches the fleet through the entry `connect`
//! wrote.

use std::path::PathBuf;
use std::process::Stdio;

use mcpvisor_tests::mcpvisor_bin;
use serde_json::{json, Value};

fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/clients")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A throw-away HOME with a project folder (the current folder of every command).
struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new() -> Home {
        let dir = tempfile::Builder::new().prefix("home").tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("project")).unwrap();
        Home { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn project(&self) -> PathBuf {
        self.path("project")
    }

    /// Writes `text` at `rel` under HOME.
    fn put(&self, rel: &str, text: &str) -> PathBuf {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap_or_default()
    }

    /// `mcpvisor ARGS` in the project folder: (exit code, stdout, stderr).
    fn mcpvisor(&self, args: &[&str]) -> (Option<i32>, String, String) {
        mcpvisor_tests::finished(
            mcpvisor_tests::mcpvisor_on(&self.path("state"))
                .args(args)
                .current_dir(self.project())
                .env("HOME", self.dir.path())
                .env_remove("XDG_CONFIG_HOME")
                .env_remove("CODEX_HOME")
                // `service` must never reach the user manager of whoever runs the tests.
                .env("XDG_RUNTIME_DIR", self.path("run"))
                .env_remove("DBUS_SESSION_BUS_ADDRESS"),
        )
    }

    /// What `clients --json` says of the file at `rel`.
    fn place(&self, rel: &str) -> Value {
        let listed: Value = serde_json::from_str(&self.ok(&["clients", "--json"])).unwrap();
        listed
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["path"].as_str().unwrap().ends_with(rel))
            .cloned()
            .unwrap_or_else(|| panic!("no {rel} in {listed}"))
    }

    fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.mcpvisor(args);
        assert_eq!(code, Some(0), "mcpvisor {args:?}:\n{out}\n{err}");
        out
    }

    /// mcpvisor's config in the project folder.
    fn config(&self) -> Value {
        serde_json::from_str(&std::fs::read_to_string(self.project().join("mcp.json")).unwrap())
            .unwrap()
    }

    /// Every client's fixture at its documented place.
    fn with_every_client(&self) {
        self.put(
            ".config/Claude/claude_desktop_config.json",
            &fixture("claude_desktop_config.json"),
        );
        self.put(".cursor/mcp.json", &fixture("cursor_mcp.json"));
        self.put("project/.vscode/mcp.json", &fixture("vscode_mcp.json"));
        self.put(".codex/config.toml", &fixture("codex_config.toml"));
        self.put(".gemini/settings.json", &fixture("gemini_settings.json"));
        self.put(".config/zed/settings.json", &fixture("zed_settings.json"));
        self.put(
            ".codeium/windsurf/mcp_config.json",
            &fixture("windsurf_mcp_config.json"),
        );
        // Claude Code: a user server, and one of this project's in ~/.claude.json.
        let project = self.project().to_string_lossy().into_owned();
        self.put(
            ".claude.json",
            &serde_json::to_string_pretty(&json!({
                "numStartups": 3,
                "mcpServers": {"time": {"type": "stdio", "command": "uvx", "args": ["mcp-server-time"]}},
                "projects": {project: {"mcpServers": {
                    "api": {"type": "http", "url": "http://127.0.0.1:8080/mcp"}}}}
            }))
            .unwrap(),
        );
    }
}

/// Whatever a test started on its state dir (a background instance) stops with it.
impl Drop for Home {
    fn drop(&mut self) {
        if self.path("state/mcpvisor.sock").exists() {
            let _ = self.mcpvisor(&["shutdown"]);
        }
    }
}

fn servers_of<'a>(listed: &'a Value, client: &str) -> Vec<&'a Value> {
    listed
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["client"] == client)
        .flat_map(|r| r["servers"].as_array().unwrap())
        .collect()
}

fn named<'a>(servers: &[&'a Value], name: &str) -> &'a Value {
    servers
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {servers:?}"))
}

#[test]
fn clients_reads_every_clients_own_file_as_it_is() {
    let home = Home::new();
    home.with_every_client();
    let listed: Value = serde_json::from_str(&home.ok(&["clients", "--json"])).unwrap();
    // Claude Desktop and Cursor: plain mcpServers.
    let desktop = servers_of(&listed, "claude-desktop");
    assert_eq!(named(&desktop, "fs")["service"]["env"]["LOG"], "info");
    assert_eq!(
        named(&servers_of(&listed, "cursor"), "linear")["service"]["url"],
        "https://mcp.linear.app/sse"
    );
    // Claude Code: the user's servers and this project's.
    let code = servers_of(&listed, "claude-code");
    assert_eq!(named(&code, "time")["service"]["command"], "uvx");
    assert_eq!(
        named(&code, "api")["service"]["url"],
        "http://127.0.0.1:8080/mcp"
    );
    // VS Code, JSONC: an input becomes a named variable, never an empty string; ${userHome} and
    // ${env:X} are resolved to what they mean.
    let vscode = servers_of(&listed, "vscode");
    let search = named(&vscode, "search");
    assert_eq!(
        search["service"]["headers"]["Authorization"],
        "Bearer ${API_KEY}"
    );
    assert!(
        search["notes"][0]
            .as_str()
            .unwrap()
            .contains("The search API key"),
        "{search}"
    );
    let time = named(&vscode, "time");
    assert_eq!(time["service"]["env"]["PATH"], "${PATH}");
    assert_eq!(
        time["service"]["env"]["HOME_DIR"],
        home.dir.path().to_string_lossy().as_ref()
    );
    // Codex, TOML: env_vars pass through, a bearer token from the environment, timeouts; the
    // disabled server is not offered.
    let codex = servers_of(&listed, "codex");
    let docs = named(&codex, "docs");
    assert_eq!(docs["service"]["env"]["DOCS_TOKEN"], "${DOCS_TOKEN}");
    assert_eq!(docs["service"]["timeouts"]["connect"], "20000ms");
    assert_eq!(
        named(&codex, "remote")["service"]["headers"]["Authorization"],
        "Bearer ${REMOTE_TOKEN}"
    );
    assert!(codex.iter().all(|s| s["name"] != "off"), "{codex:?}");
    // Gemini: httpUrl is streamable HTTP, url the SSE transport.
    let gemini = servers_of(&listed, "gemini");
    assert!(named(&gemini, "stream")["service"]["transport"].is_null());
    assert_eq!(named(&gemini, "legacy")["service"]["transport"], "sse");
    assert_eq!(named(&gemini, "local")["service"]["cwd"], "/srv/mine");
    // Zed: context_servers; an extension's server is skipped, saying why.
    let zed = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["client"] == "zed")
        .unwrap();
    assert_eq!(zed["servers"][0]["name"], "pg");
    assert_eq!(zed["skipped"][0]["name"], "ext");
    // Windsurf: serverUrl.
    assert_eq!(
        named(&servers_of(&listed, "windsurf"), "remote")["service"]["url"],
        "https://remote.example/mcp"
    );
    // Nothing points at mcpvisor yet; nothing was written.
    assert!(listed
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["connected"] == false));
    assert_eq!(home.read(".cursor/mcp.json"), fixture("cursor_mcp.json"));
}

#[test]
fn import_brings_each_server_once_and_reports_a_clash_without_guessing() {
    let home = Home::new();
    home.with_every_client();
    let out = home.ok(&["import", "claude-desktop"]);
    assert!(out.contains("memory: imported"), "{out}");
    let services = home.config()["mcpServers"].clone();
    assert_eq!(
        services["memory"]["args"][1],
        "@modelcontextprotocol/server-memory"
    );
    // Cursor's `mem` is the same server as `memory`: one service. Its `fs` is another server
    // under a name mcpvisor has: reported, not imported, exit 1. `linear` is new.
    let (code, out, err) = home.mcpvisor(&["import", "cursor"]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(
        out.contains("mem: already in mcpvisor as 'memory'"),
        "{out}"
    );
    assert!(out.contains("fs: clash"), "{out}");
    let services = home.config()["mcpServers"].clone();
    assert!(services.get("mem").is_none(), "{services}");
    assert_eq!(
        services["fs"]["args"][2], "/home/me/notes",
        "the first fs is kept"
    );
    assert_eq!(services["linear"]["url"], "https://mcp.linear.app/sse");
    // JSONC and TOML, with what each needs from the environment.
    let out = home.ok(&["import", "vscode"]);
    assert!(out.contains("API_KEY"), "{out}");
    home.ok(&["import", "codex"]);
    let services = home.config()["mcpServers"].clone();
    assert_eq!(
        services["search"]["headers"]["Authorization"],
        "Bearer ${API_KEY}"
    );
    assert_eq!(services["docs"]["env"]["DOCS_TOKEN"], "${DOCS_TOKEN}");
    // What was imported is a valid mcpvisor config (its variables set).
    let out = std::process::Command::new(mcpvisor_bin())
        .args(["validate", "--config"])
        .arg(home.project().join("mcp.json"))
        .envs([("API_KEY", "k"), ("DOCS_TOKEN", "t"), ("REMOTE_TOKEN", "r")])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // A file of any client, by path.
    let file = home.put("elsewhere/gemini.json", &fixture("gemini_settings.json"));
    home.ok(&["import", file.to_str().unwrap()]);
    assert_eq!(home.config()["mcpServers"]["legacy"]["transport"], "sse");
    // An unknown client is bad input, naming the known ones.
    let (code, _, err) = home.mcpvisor(&["import", "cursr"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("did you mean 'cursor'"), "{err}");
}

/// Every line of `before` that does not mention one of `names` is still in `after`.
fn kept_lines(before: &str, after: &str, names: &[&str]) {
    for line in before.lines() {
        if names.iter().any(|n| line.contains(n)) || line.trim().is_empty() {
            continue;
        }
        assert!(
            after.contains(line.trim()),
            "lost {line:?} from:\n{before}\nin:\n{after}"
        );
    }
}

#[test]
fn connect_move_and_disconnect_edit_a_jsonc_file_in_place() {
    let home = Home::new();
    home.with_every_client();
    home.ok(&["import", "vscode"]);
    let file = "project/.vscode/mcp.json";
    // VS Code's per-user file is the one connect writes: put the project's there.
    let user = ".config/Code/User/mcp.json";
    home.put(user, &fixture("vscode_mcp.json"));
    let before = home.read(user);
    let out = home.ok(&["connect", "vscode", "--move"]);
    assert!(out.contains("moved to mcpvisor"), "{out}");
    let after = home.read(user);
    // Every comment, the inputs and every byte not about the moved servers are still there.
    for kept in [
        "// Servers of this project",
        "\"inputs\"",
        "The search API key",
        "\"password\": true",
    ] {
        assert!(after.contains(kept), "{kept} lost:\n{after}");
    }
    let user_row = home.place(user);
    assert_eq!(user_row["connected"], true, "{user_row}");
    assert!(
        user_row["servers"].as_array().unwrap().is_empty(),
        "{user_row}"
    );
    assert_eq!(home.read(&format!("{user}.bak")), before);
    // The project file was not touched.
    assert_eq!(home.read(file), fixture("vscode_mcp.json"));
    // disconnect: mcpvisor's entry out, the moved servers back, the rest as it was.
    let out = home.ok(&["disconnect", "vscode"]);
    assert!(out.contains("put back"), "{out}");
    let back = home.read(user);
    kept_lines(
        &before,
        &back,
        &[
            "search",
            "time",
            "type",
            "url",
            "headers",
            "command",
            "args",
            "env",
            "}",
            "the search service",
        ],
    );
    let user_row = home.place(user);
    assert_eq!(user_row["connected"], false, "{user_row}");
    let names: Vec<&str> = user_row["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{user_row}");
    assert!(
        names.contains(&"search") && names.contains(&"time"),
        "{names:?}"
    );
}

#[test]
fn connect_move_and_disconnect_edit_codexs_toml_in_place() {
    let home = Home::new();
    home.with_every_client();
    home.ok(&["import", "codex"]);
    let before = home.read(".codex/config.toml");
    home.ok(&["connect", "codex", "--move"]);
    let after = home.read(".codex/config.toml");
    assert!(
        after.starts_with(
            "# Codex settings\nmodel = \"gpt-5.5\"\napproval_policy = \"on-request\"\n"
        ),
        "{after}"
    );
    assert!(
        after.contains("[profiles.fast]\nmodel = \"gpt-5.5-mini\"\n"),
        "{after}"
    );
    assert!(after.contains("[mcp_servers.mcpvisor]"), "{after}");
    assert!(!after.contains("[mcp_servers.docs]"), "{after}");
    // The disabled one was never mcpvisor's: it stays.
    assert!(after.contains("[mcp_servers.off]"), "{after}");
    home.ok(&["disconnect", "codex"]);
    let back = home.read(".codex/config.toml");
    assert!(!back.contains("mcpvisor"), "{back}");
    assert!(
        back.starts_with("# Codex settings\nmodel = \"gpt-5.5\"\n"),
        "{back}"
    );
    let listed: Value = serde_json::from_str(&home.ok(&["clients", "--json"])).unwrap();
    let codex = servers_of(&listed, "codex");
    assert_eq!(
        named(&codex, "docs")["service"]["env"]["DOCS_TOKEN"],
        "${DOCS_TOKEN}"
    );
    assert_eq!(
        named(&codex, "remote")["service"]["url"],
        "https://remote.example/mcp"
    );
    // Every line not about the moved servers is as it was.
    kept_lines(
        &before,
        &back,
        &[
            "docs", "remote", "npx", "env_vars", "startup", "url", "bearer",
        ],
    );
}

/// `connect claude-code` is all a person does: Claude Code then reaches the fleet (its health
/// check connects through `serve --stdio --config`, which starts the background instance).
#[test]
fn claude_code_reaches_the_fleet_through_the_entry_connect_wrote() {
    let home = Home::new();
    let chaos = mcpvisor_tests::chaos_bin();
    std::fs::write(
        home.project().join("mcp.json"),
        json!({"mcpServers": {"a": {"command": chaos}}}).to_string(),
    )
    .unwrap();
    home.ok(&["connect", "claude-code"]);
    let claude = mcpvisor_tests::servers_dir().join("agents/node_modules/.bin/claude");
    assert!(
        claude.exists(),
        "run `bash scripts/install-test-servers.sh`"
    );
    let out = std::process::Command::new(&claude)
        .args(["mcp", "list"])
        .current_dir(home.project())
        .env_clear()
        .env("HOME", home.dir.path())
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("DISABLE_AUTOUPDATER", "1")
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    // Whatever happened, the background instance goes.
    let (_, shut, _) = home.mcpvisor(&["shutdown"]);
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("mcpvisor:") && l.contains("Connected")),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(shut.contains("stopped"), "{shut}");
}

/// The README's path: someone with Claude Desktop and Cursor, each with servers of its own,
/// runs `import` and `connect --move` once each; both clients' entries then reach one fleet
/// running every server once (the server both had, once).
#[tokio::test]
async fn claude_desktop_and_cursor_move_to_one_fleet_with_import_and_connect() {
    use rmcp::transport::TokioChildProcess;
    use rmcp::ServiceExt;
    let home = Home::new();
    let chaos = mcpvisor_tests::chaos_bin().to_string_lossy().into_owned();
    home.put(
        ".config/Claude/claude_desktop_config.json",
        &serde_json::to_string_pretty(&json!({"mcpServers": {
            "a": {"command": chaos, "args": ["--tools", "1"]}}, "globalShortcut": "Ctrl+Space"}))
        .unwrap(),
    );
    home.put(
        ".cursor/mcp.json",
        &serde_json::to_string_pretty(&json!({"mcpServers": {
            "shared": {"command": chaos, "args": ["--tools", "1"]},
            "b": {"command": chaos, "args": ["--tools", "2"]}}}))
        .unwrap(),
    );
    home.ok(&["import", "claude-desktop", "cursor"]);
    home.ok(&["connect", "claude-desktop", "cursor", "--move"]);
    let entries: Vec<Value> = [
        ".config/Claude/claude_desktop_config.json",
        ".cursor/mcp.json",
    ]
    .iter()
    .map(|f| {
        let v: Value = serde_json::from_str(&home.read(f)).unwrap();
        assert_eq!(v["mcpServers"].as_object().unwrap().len(), 1, "{v}");
        v["mcpServers"]["mcpvisor"].clone()
    })
    .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&home.read(".config/Claude/claude_desktop_config.json"))
            .unwrap()["globalShortcut"],
        "Ctrl+Space"
    );
    // What each client runs: its entry's command, as it would.
    let mut pids = Vec::new();
    for entry in &entries {
        let mut cmd = tokio::process::Command::new(entry["command"].as_str().unwrap());
        for a in entry["args"].as_array().unwrap() {
            cmd.arg(a.as_str().unwrap());
        }
        cmd.current_dir(home.dir.path())
            .env_remove("MCPVISOR_STATE_DIR")
            .kill_on_drop(true);
        let (transport, _) = TokioChildProcess::builder(cmd)
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let client = mcpvisor_tests::deadline(
            std::time::Duration::from_secs(30),
            "the client's entry connects",
            ().serve(transport),
        )
        .await
        .unwrap();
        let tools = client.list_all_tools().await.unwrap();
        let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
        assert!(
            names.contains(&"a__pids") && names.contains(&"b__pids"),
            "{names:?}"
        );
        assert!(
            !names.iter().any(|n| n.starts_with("shared__")),
            "{names:?}"
        );
        let r = mcpvisor_tests::mcp_call(&client, "a__pids", json!({})).await;
        let pid: Value = serde_json::from_str(&mcpvisor_tests::first_text(&r)).unwrap();
        pids.push(pid["pid"].clone());
        client.cancel().await.unwrap();
    }
    let (_, shut, _) = home.mcpvisor(&["shutdown"]);
    assert_eq!(pids[0], pids[1], "one fleet: {pids:?}");
    assert!(shut.contains("stopped"), "{shut}");
}

/// `service install` writes a systemd user unit whose command runs this fleet (here, with no
/// user bus, it says how to enable it); the unit's own command line, started as systemd would,
/// keeps the fleet and `status` says systemd started it; `uninstall` removes the unit.
#[tokio::test]
async fn service_install_writes_a_unit_that_runs_the_fleet() {
    let home = Home::new();
    let chaos = mcpvisor_tests::chaos_bin();
    std::fs::write(
        home.project().join("mcp.json"),
        json!({"mcpServers": {"a": {"command": chaos}}}).to_string(),
    )
    .unwrap();
    let (code, out, err) = home.mcpvisor(&["service", "install", "--serve", "127.0.0.1:0"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let unit_path = home.path(".config/systemd/user/mcpvisor.service");
    let unit = std::fs::read_to_string(&unit_path).unwrap();
    assert!(unit.contains("Type=notify\n"), "{unit}");
    assert!(
        out.contains("enabled") || err.contains("systemctl --user daemon-reload"),
        "{out}{err}"
    );
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap();
    let words: Vec<&str> = exec.split(' ').collect();
    assert_eq!(words[0], mcpvisor_bin().to_str().unwrap(), "{exec}");
    let config = home.project().join("mcp.json");
    assert!(
        exec.contains(&format!("--config {}", config.display())),
        "{exec}"
    );
    assert!(exec.ends_with("run --watch --serve 127.0.0.1:0"), "{exec}");
    // Its command, as systemd starts a Type=notify unit (INVOCATION_ID and NOTIFY_SOCKET are
    // systemd's; nothing listens on this one).
    let mut run = std::process::Command::new(words[0])
        .args(&words[1..])
        .env("INVOCATION_ID", "0123")
        .env("NOTIFY_SOCKET", home.path("notify.sock"))
        .env_remove("MCPVISOR_STATE_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let up = mcpvisor_tests::wait_until(std::time::Duration::from_secs(30), || {
        let (code, out, _) = home.mcpvisor(&["status"]);
        code == Some(0) && out.contains("healthy")
    })
    .await;
    let (_, status, _) = home.mcpvisor(&["status"]);
    let (_, shut, _) = home.mcpvisor(&["shutdown"]);
    let _ = run.kill();
    let _ = run.wait();
    assert!(up, "{status}");
    assert!(status.contains("started by systemd"), "{status}");
    assert!(shut.contains("stopped"), "{shut}");
    let (code, out, err) = home.mcpvisor(&["service", "uninstall"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(!unit_path.exists());
}

/// `connect` then `disconnect`, each client's own file at its per-user place: the entry is
/// written where the client looks (the file still parses, every line of it still there), and
/// taken out again leaving the file as it was, byte for byte.
#[test]
fn connect_then_disconnect_leaves_every_clients_file_as_it_was() {
    let home = Home::new();
    home.with_every_client();
    home.put(".config/Code/User/mcp.json", &fixture("vscode_mcp.json"));
    for (client, rel, table) in [
        (
            "claude-desktop",
            ".config/Claude/claude_desktop_config.json",
            "mcpServers",
        ),
        ("claude-code", ".claude.json", "mcpServers"),
        ("cursor", ".cursor/mcp.json", "mcpServers"),
        ("vscode", ".config/Code/User/mcp.json", "servers"),
        (
            "windsurf",
            ".codeium/windsurf/mcp_config.json",
            "mcpServers",
        ),
        ("gemini", ".gemini/settings.json", "mcpServers"),
        ("codex", ".codex/config.toml", "mcp_servers"),
        ("zed", ".config/zed/settings.json", "context_servers"),
    ] {
        let before = home.read(rel);
        home.ok(&["connect", client]);
        let connected = home.read(rel);
        kept_lines(&before, &connected, &[]);
        let row = home.place(rel);
        assert_eq!(row["connected"], true, "{client}: {row}\n{connected}");
        assert!(connected.contains(table), "{client}: {connected}");
        home.ok(&["disconnect", client]);
        assert_eq!(home.read(rel), before, "{client}: not as it was");
    }
}
