//! The MCP clients people already have, one home: where each keeps its servers (its documented
//! per-user file under `$HOME`, and its project file in the current folder), reading those
//! files as they are — JSON with comments and trailing commas (`jsonc-parser`), Codex's TOML
//! (`toml_edit`) — into mcpvisor services, and editing them in place: every comment, key order
//! and byte not edited is kept, the write is atomic, the previous version is kept as
//! `FILE.bak`, and a file that changed since it was read is refused.
//!
//! `mcpvisor clients`, `import`, `connect` and `disconnect` (in `commands.rs`) are built on this.

use std::path::{Path, PathBuf};

use jsonc_parser::cst::{CstInputValue, CstObject, CstRootNode};
use jsonc_parser::ParseOptions;
use serde_json::{json, Map, Value};

use crate::error::{CliError, CliResult};

/// The name of the entry mcpvisor writes into a client's file.
pub const ENTRY: &str = "mcpvisor";

/// A client mcpvisor can read and connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    /// Claude Desktop (`claude_desktop_config.json`).
    ClaudeDesktop,
    /// Claude Code (`~/.claude.json`, its projects' `mcpServers`, `.mcp.json`).
    ClaudeCode,
    /// Cursor (`~/.cursor/mcp.json`, `.cursor/mcp.json`).
    Cursor,
    /// VS Code (`Code/User/mcp.json`, `.vscode/mcp.json`: `servers`, `inputs`).
    VsCode,
    /// Windsurf (`~/.codeium/windsurf/mcp_config.json`).
    Windsurf,
    /// Gemini CLI (`~/.gemini/settings.json`, `.gemini/settings.json`).
    Gemini,
    /// Codex (`$CODEX_HOME/config.toml`: `[mcp_servers.NAME]`).
    Codex,
    /// Zed (`zed/settings.json`: `context_servers`).
    Zed,
}

/// How a file is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// JSON, comments and trailing commas allowed (every client but Codex).
    Jsonc,
    /// TOML (Codex's `config.toml`).
    Toml,
}

/// One place a client keeps servers: a file, and the keys leading to its servers' table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    /// Whose it is.
    pub client: Client,
    /// The file.
    pub path: PathBuf,
    /// How it is written.
    pub format: Format,
    /// The keys from the file's root to the table of servers (`["mcpServers"]`,
    /// `["projects", "/my/project", "mcpServers"]`, `["mcp_servers"]`).
    pub keys: Vec<String>,
}

/// Where the user's files are: `$HOME`, `$XDG_CONFIG_HOME` (else `$HOME/.config`), the current
/// folder, `$CODEX_HOME` (else `$HOME/.codex`).
#[derive(Debug, Clone)]
pub struct Roots {
    /// `$HOME`.
    pub home: PathBuf,
    /// `$XDG_CONFIG_HOME`, else `$HOME/.config`.
    pub config: PathBuf,
    /// The current folder (project files).
    pub cwd: PathBuf,
    /// `$CODEX_HOME`, else `$HOME/.codex`.
    pub codex_home: PathBuf,
}

impl Roots {
    /// This process's.
    pub fn from_env() -> CliResult<Roots> {
        let home = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from)
            .ok_or_else(|| CliError::failed("HOME is not set: cannot find the clients' files"))?;
        let config = std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .unwrap_or_else(|| home.join(".config"));
        let codex_home = std::env::var_os("CODEX_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .unwrap_or_else(|| home.join(".codex"));
        let cwd = std::env::current_dir()
            .map_err(|e| CliError::failed(format!("cannot read the current folder: {e}")))?;
        Ok(Roots {
            home,
            config,
            cwd,
            codex_home,
        })
    }
}

impl Client {
    /// Every client, in the order `clients` lists them.
    pub const ALL: [Client; 8] = [
        Client::ClaudeDesktop,
        Client::ClaudeCode,
        Client::Cursor,
        Client::VsCode,
        Client::Windsurf,
        Client::Gemini,
        Client::Codex,
        Client::Zed,
    ];

    /// Its name on mcpvisor's command line.
    pub fn name(self) -> &'static str {
        match self {
            Client::ClaudeDesktop => "claude-desktop",
            Client::ClaudeCode => "claude-code",
            Client::Cursor => "cursor",
            Client::VsCode => "vscode",
            Client::Windsurf => "windsurf",
            Client::Gemini => "gemini",
            Client::Codex => "codex",
            Client::Zed => "zed",
        }
    }

    /// The client named `name`.
    pub fn named(name: &str) -> Option<Client> {
        Client::ALL.into_iter().find(|c| c.name() == name)
    }

    /// The key of its servers' table.
    fn table(self) -> &'static str {
        match self {
            Client::VsCode => "servers",
            Client::Codex => "mcp_servers",
            Client::Zed => "context_servers",
            _ => "mcpServers",
        }
    }

    /// Its places, at their documented locations: the per-user file first (the one `connect`
    /// writes), then the project's in the current folder.
    pub fn places(self, r: &Roots) -> Vec<Place> {
        let macos = cfg!(target_os = "macos");
        let app_support = r.home.join("Library/Application Support");
        let json = |path: PathBuf, keys: &[&str]| Place {
            client: self,
            path,
            format: Format::Jsonc,
            keys: keys.iter().map(|k| (*k).to_owned()).collect(),
        };
        let t = self.table();
        match self {
            Client::ClaudeDesktop => vec![json(
                if macos {
                    app_support.join("Claude")
                } else {
                    r.config.join("Claude")
                }
                .join("claude_desktop_config.json"),
                &[t],
            )],
            Client::ClaudeCode => {
                let cwd = r.cwd.to_string_lossy().into_owned();
                vec![
                    json(r.home.join(".claude.json"), &[t]),
                    json(r.home.join(".claude.json"), &["projects", &cwd, t]),
                    json(r.cwd.join(".mcp.json"), &[t]),
                ]
            }
            Client::Cursor => vec![
                json(r.home.join(".cursor/mcp.json"), &[t]),
                json(r.cwd.join(".cursor/mcp.json"), &[t]),
            ],
            Client::VsCode => vec![
                json(
                    if macos {
                        app_support.join("Code")
                    } else {
                        r.config.join("Code")
                    }
                    .join("User/mcp.json"),
                    &[t],
                ),
                json(r.cwd.join(".vscode/mcp.json"), &[t]),
            ],
            Client::Windsurf => vec![json(r.home.join(".codeium/windsurf/mcp_config.json"), &[t])],
            Client::Gemini => vec![
                json(r.home.join(".gemini/settings.json"), &[t]),
                json(r.cwd.join(".gemini/settings.json"), &[t]),
            ],
            Client::Codex => vec![Place {
                client: self,
                path: r.codex_home.join("config.toml"),
                format: Format::Toml,
                keys: vec![t.to_owned()],
            }],
            Client::Zed => vec![json(r.config.join("zed/settings.json"), &[t])],
        }
    }
}

/// A server read from a client's file, as an mcpvisor service.
#[derive(Debug, Clone, PartialEq)]
pub struct Server {
    /// Its name in the client's file.
    pub name: String,
    /// Its definition in mcpvisor's config (`command`/`args`/`env`/`cwd`, or `url`/`headers`).
    pub service: Value,
    /// What the reader changed or could not carry over, in words.
    pub notes: Vec<String>,
}

/// What one place holds.
#[derive(Debug, Clone)]
pub struct Read {
    /// Where it was read.
    pub place: Place,
    /// The file's text as read (the edits check it is still that when they write).
    pub text: String,
    /// Its servers (mcpvisor's own entry left out).
    pub servers: Vec<Server>,
    /// Entries that could not be read, with why.
    pub skipped: Vec<(String, String)>,
    /// Whether it has mcpvisor's entry.
    pub connected: bool,
}

/// The file's contents as JSON (TOML turned into JSON), or why not.
pub fn parse(text: &str, format: Format, path: &Path) -> CliResult<Value> {
    match format {
        Format::Jsonc => {
            if text.trim().is_empty() {
                return Ok(json!({}));
            }
            jsonc_parser::parse_to_serde_value::<Value>(text, &ParseOptions::default()).map_err(
                |e| CliError::bad_input(format!("{} is not valid JSON: {e}", path.display())),
            )
        }
        Format::Toml => {
            let doc: toml_edit::DocumentMut = text.parse().map_err(|e| {
                CliError::bad_input(format!("{} is not valid TOML: {e}", path.display()))
            })?;
            Ok(toml_item_to_json(doc.as_item()))
        }
    }
}

fn toml_value_to_json(v: &toml_edit::Value) -> Value {
    use toml_edit::Value as T;
    match v {
        T::String(s) => Value::String(s.value().clone()),
        T::Integer(i) => json!(*i.value()),
        T::Float(f) => json!(*f.value()),
        T::Boolean(b) => json!(*b.value()),
        T::Datetime(d) => Value::String(d.value().to_string()),
        T::Array(a) => Value::Array(a.iter().map(toml_value_to_json).collect()),
        T::InlineTable(t) => Value::Object(
            t.iter()
                .map(|(k, v)| (k.to_owned(), toml_value_to_json(v)))
                .collect(),
        ),
    }
}

fn toml_item_to_json(item: &toml_edit::Item) -> Value {
    match item {
        toml_edit::Item::None => Value::Null,
        toml_edit::Item::Value(v) => toml_value_to_json(v),
        toml_edit::Item::Table(t) => Value::Object(
            t.iter()
                .map(|(k, v)| (k.to_owned(), toml_item_to_json(v)))
                .collect(),
        ),
        toml_edit::Item::ArrayOfTables(a) => Value::Array(
            a.iter()
                .map(|t| toml_item_to_json(&toml_edit::Item::Table(t.clone())))
                .collect(),
        ),
    }
}

/// Reads `place`; `None` if its file does not exist.
pub fn read(place: &Place, roots: &Roots) -> CliResult<Option<Read>> {
    let text = match std::fs::read_to_string(&place.path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(CliError::failed(format!(
                "cannot read {}: {e}",
                place.path.display()
            )))
        }
    };
    let root = parse(&text, place.format, &place.path)?;
    let mut at = &root;
    for key in &place.keys {
        at = match at.get(key) {
            Some(v) => v,
            None => &Value::Null,
        };
    }
    if at.is_null() && place.keys.len() > 1 {
        // A per-project table that is not there (Claude Code's projects): nothing here.
        return Ok(None);
    }
    let inputs = root.get("inputs").cloned().unwrap_or(Value::Null);
    let mut read = Read {
        place: place.clone(),
        text,
        servers: Vec::new(),
        skipped: Vec::new(),
        connected: false,
    };
    let Some(table) = at.as_object() else {
        return Ok(Some(read));
    };
    for (name, entry) in table {
        if is_mcpvisor(name, entry) {
            read.connected = true;
            continue;
        }
        match service_of(place.client, entry, &inputs, roots) {
            Ok(Some((service, notes))) => read.servers.push(Server {
                name: name.clone(),
                service,
                notes,
            }),
            Ok(None) => {}
            Err(why) => read.skipped.push((name.clone(), why)),
        }
    }
    Ok(Some(read))
}

/// Whether an entry is mcpvisor's own (written by `connect`, or by hand: `mcpvisor serve`).
fn is_mcpvisor(name: &str, entry: &Value) -> bool {
    let command = entry
        .get("command")
        .and_then(|c| c.as_str().or_else(|| c.get("path")?.as_str()));
    let runs_us = command
        .and_then(|c| Path::new(c).file_name())
        .is_some_and(|f| f == "mcpvisor");
    runs_us || (name == ENTRY && entry.get("command").is_some())
}

/// `${input:ID}` (VS Code), `${env:NAME}` and `${workspaceFolder}` in `s`, as mcpvisor writes
/// them: an input becomes the environment variable `ID` in capitals (named, so an unset one is
/// an error at start, never an empty string).
fn translate(notes: &mut Vec<String>, roots: &Roots, inputs: &Value, s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return out;
        };
        let inner = &after[..end];
        if let Some(id) = inner.strip_prefix("input:") {
            let var: String = id
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_ascii_uppercase()
                    } else {
                        '_'
                    }
                })
                .collect();
            let described = inputs
                .as_array()
                .and_then(|a| a.iter().find(|i| i["id"] == id))
                .and_then(|i| i["description"].as_str())
                .map(|d| format!(" ({d})"))
                .unwrap_or_default();
            notes.push(format!(
                "the VS Code input '{id}'{described} is read from the environment variable {var}: \
                 set it where mcpvisor runs"
            ));
            out.push_str(&format!("${{{var}}}"));
        } else if let Some(name) = inner.strip_prefix("env:") {
            out.push_str(&format!("${{{name}}}"));
        } else if inner == "workspaceFolder" || inner == "workspaceRoot" {
            out.push_str(&roots.cwd.to_string_lossy());
        } else if inner == "userHome" {
            out.push_str(&roots.home.to_string_lossy());
        } else {
            out.push_str(&rest[start..start + 2 + end + 1]);
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// The strings of a string array or of a string-to-string table.
fn strings(v: Option<&Value>) -> Option<Vec<String>> {
    v?.as_array()?
        .iter()
        .map(|s| s.as_str().map(str::to_owned))
        .collect()
}

/// One client entry as an mcpvisor service: `Ok(None)` for an entry that is off (Codex's
/// `enabled = false`), `Err(why)` for one that cannot be carried over.
fn service_of(
    client: Client,
    entry: &Value,
    inputs: &Value,
    roots: &Roots,
) -> Result<Option<(Value, Vec<String>)>, String> {
    let mut notes = Vec::new();
    let Some(e) = entry.as_object() else {
        return Err("not an object".into());
    };
    if e.get("enabled") == Some(&Value::Bool(false))
        || e.get("disabled") == Some(&Value::Bool(true))
    {
        return Ok(None);
    }
    let mut out = Map::new();
    // Zed's older shape: "command": {"path", "args", "env"}.
    let (command, args, env) = match e.get("command") {
        Some(Value::Object(c)) => (c.get("path"), c.get("args"), c.get("env")),
        other => (other, e.get("args"), e.get("env")),
    };
    let url = match client {
        // Gemini CLI: httpUrl is streamable HTTP, url the legacy SSE transport.
        Client::Gemini => match (e.get("httpUrl"), e.get("url")) {
            (Some(u), _) => Some(u),
            (None, Some(u)) => {
                out.insert("transport".into(), "sse".into());
                Some(u)
            }
            _ => None,
        },
        Client::Windsurf => e.get("serverUrl").or_else(|| e.get("url")),
        _ => e.get("url"),
    };
    match (command.and_then(Value::as_str), url.and_then(Value::as_str)) {
        (Some(command), _) => {
            out.insert(
                "command".into(),
                translate(&mut notes, roots, inputs, command).into(),
            );
            if let Some(args) = args {
                let args = strings(Some(args)).ok_or("args is not a list of strings")?;
                out.insert(
                    "args".into(),
                    args.iter()
                        .map(|a| Value::String(translate(&mut notes, roots, inputs, a)))
                        .collect(),
                );
            }
            let mut vars = Map::new();
            if let Some(env) = env {
                let env = env.as_object().ok_or("env is not a table")?;
                for (k, v) in env {
                    let v = v.as_str().ok_or("env holds a value that is not a string")?;
                    vars.insert(k.clone(), translate(&mut notes, roots, inputs, v).into());
                }
            }
            // Codex: names of variables passed through from its own environment.
            if let Some(names) = strings(e.get("env_vars")) {
                for n in names {
                    vars.insert(n.clone(), format!("${{{n}}}").into());
                }
            }
            // VS Code: an env file, read now (what VS Code does at each start).
            if let Some(file) = e.get("envFile").and_then(Value::as_str) {
                let file = PathBuf::from(translate(&mut notes, roots, inputs, file));
                match std::fs::read_to_string(&file) {
                    Ok(text) => {
                        for line in text.lines().map(str::trim) {
                            if line.is_empty() || line.starts_with('#') {
                                continue;
                            }
                            if let Some((k, v)) = line.split_once('=') {
                                let v = v.trim().trim_matches('"').trim_matches('\'');
                                vars.entry(k.trim().to_owned()).or_insert(v.into());
                            }
                        }
                        notes.push(format!(
                            "its envFile {} was read into its env",
                            file.display()
                        ));
                    }
                    Err(e) => {
                        return Err(format!(
                            "its envFile {} cannot be read: {e}",
                            file.display()
                        ))
                    }
                }
            }
            if !vars.is_empty() {
                out.insert("env".into(), Value::Object(vars));
            }
            if let Some(cwd) = e.get("cwd").and_then(Value::as_str) {
                out.insert(
                    "cwd".into(),
                    translate(&mut notes, roots, inputs, cwd).into(),
                );
            }
        }
        (None, Some(url)) => {
            out.insert(
                "url".into(),
                translate(&mut notes, roots, inputs, url).into(),
            );
            if e.get("type").and_then(Value::as_str) == Some("sse")
                || e.get("transport").and_then(Value::as_str) == Some("sse")
            {
                out.insert("transport".into(), "sse".into());
            }
            let mut headers = Map::new();
            for key in ["headers", "http_headers"] {
                if let Some(h) = e.get(key).and_then(Value::as_object) {
                    for (k, v) in h {
                        let v = v.as_str().ok_or("a header that is not a string")?;
                        headers.insert(k.clone(), translate(&mut notes, roots, inputs, v).into());
                    }
                }
            }
            // Codex: headers and a bearer token from its environment.
            if let Some(h) = e.get("env_http_headers").and_then(Value::as_object) {
                for (k, v) in h {
                    if let Some(var) = v.as_str() {
                        headers.insert(k.clone(), format!("${{{var}}}").into());
                    }
                }
            }
            if let Some(var) = e.get("bearer_token_env_var").and_then(Value::as_str) {
                headers.insert("Authorization".into(), format!("Bearer ${{{var}}}").into());
            }
            if !headers.is_empty() {
                out.insert("headers".into(), Value::Object(headers));
            }
        }
        (None, None) if e.get("source").and_then(Value::as_str) == Some("extension") => {
            return Err("a Zed extension's server (Zed starts it itself)".into());
        }
        (None, None) => return Err("neither a command nor a url".into()),
    }
    // Codex's timeouts, in seconds.
    let mut timeouts = Map::new();
    for (key, ours) in [
        ("startup_timeout_sec", "connect"),
        ("tool_timeout_sec", "call"),
    ] {
        if let Some(secs) = e.get(key).and_then(Value::as_f64) {
            timeouts.insert(
                ours.into(),
                format!("{}ms", (secs * 1000.0).round() as u64).into(),
            );
        }
    }
    if !timeouts.is_empty() {
        out.insert("timeouts".into(), Value::Object(timeouts));
    }
    Ok(Some((Value::Object(out), notes)))
}

/// What makes two services the same server: the same command, args and env, or the same URL
/// and headers (names and everything else aside).
pub fn same_server(a: &Value, b: &Value) -> bool {
    let key = |v: &Value| {
        ["command", "args", "env", "url", "headers"]
            .map(|k| v.get(k).cloned().unwrap_or(Value::Null))
    };
    key(a) == key(b)
}

// ---- edits ----

/// `value` as the CST's input value.
pub fn cst_value(value: &Value) -> CstInputValue {
    match value {
        Value::Null => CstInputValue::Null,
        Value::Bool(b) => CstInputValue::Bool(*b),
        Value::Number(n) => CstInputValue::Number(n.to_string()),
        Value::String(s) => CstInputValue::String(s.clone()),
        Value::Array(a) => CstInputValue::Array(a.iter().map(cst_value).collect()),
        Value::Object(o) => {
            CstInputValue::Object(o.iter().map(|(k, v)| (k.clone(), cst_value(v))).collect())
        }
    }
}

fn toml_value(value: &Value) -> toml_edit::Value {
    match value {
        Value::Bool(b) => (*b).into(),
        Value::Number(n) => match n.as_i64() {
            Some(i) => i.into(),
            None => n.as_f64().unwrap_or_default().into(),
        },
        Value::String(s) => s.as_str().into(),
        Value::Array(a) => {
            let mut arr = toml_edit::Array::new();
            for v in a {
                arr.push(toml_value(v));
            }
            toml_edit::Value::Array(arr)
        }
        Value::Object(o) => {
            let mut t = toml_edit::InlineTable::new();
            for (k, v) in o {
                t.insert(k, toml_value(v));
            }
            toml_edit::Value::InlineTable(t)
        }
        Value::Null => "".into(),
    }
}

/// An edit of a place's table of servers: entries to add (or replace), names to take out.
#[derive(Debug, Default)]
pub struct Edit {
    /// Entries written (added, or replacing one of the same name).
    pub put: Vec<(String, Value)>,
    /// Entries taken out.
    pub remove: Vec<String>,
}

/// The place's file text with `edit` made, everything else as it was.
pub fn edited(place: &Place, text: &str, edit: &Edit) -> CliResult<String> {
    match place.format {
        Format::Jsonc => {
            let root = CstRootNode::parse(text, &ParseOptions::default()).map_err(|e| {
                CliError::bad_input(format!("{} is not valid JSON: {e}", place.path.display()))
            })?;
            let mut table: CstObject = root.object_value_or_set();
            for key in &place.keys {
                table = table.object_value_or_set(key);
            }
            for name in &edit.remove {
                if let Some(p) = table.get(name) {
                    p.remove();
                }
            }
            for (name, value) in &edit.put {
                match table.get(name) {
                    Some(p) => p.set_value(cst_value(value)),
                    None => {
                        table.append(name, cst_value(value));
                    }
                }
            }
            Ok(root.to_string())
        }
        Format::Toml => {
            let mut doc: toml_edit::DocumentMut = text.parse().map_err(|e| {
                CliError::bad_input(format!("{} is not valid TOML: {e}", place.path.display()))
            })?;
            let mut table = doc.as_table_mut();
            for key in &place.keys {
                let item = table.entry(key).or_insert_with(|| {
                    let mut t = toml_edit::Table::new();
                    t.set_implicit(true);
                    toml_edit::Item::Table(t)
                });
                table = item.as_table_mut().ok_or_else(|| {
                    CliError::bad_input(format!("{}: {key} is not a table", place.path.display()))
                })?;
            }
            for name in &edit.remove {
                table.remove(name);
            }
            for (name, value) in &edit.put {
                let mut t = toml_edit::Table::new();
                if let Some(o) = value.as_object() {
                    for (k, v) in o {
                        t.insert(k, toml_edit::Item::Value(toml_value(v)));
                    }
                }
                table.insert(name, toml_edit::Item::Table(t));
            }
            Ok(doc.to_string())
        }
    }
}

/// Writes `new` over `path` if the file still holds `read_as` (else refuses, changing
/// nothing): the previous version kept as `PATH.bak`, the new one written to a temporary file
/// beside it and renamed over it, both with the file's own permissions (0600 for a new file). A
/// symlinked file is written where the link points (the link stays).
pub fn write_if_unchanged(path: &Path, read_as: Option<&str>, new: &str) -> CliResult<()> {
    use std::os::unix::fs::PermissionsExt;
    let path = &std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let now = match std::fs::read_to_string(path) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(CliError::failed(format!(
                "cannot read {}: {e}",
                path.display()
            )))
        }
    };
    if now.as_deref() != read_as {
        return Err(CliError::failed(format!(
            "{} changed since it was read; nothing was written (run the command again)",
            path.display()
        )));
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)
        .map_err(|e| CliError::failed(format!("cannot create {}: {e}", dir.display())))?;
    let mode = std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o777)
        .unwrap_or(0o600);
    // Both through a temporary file renamed into place: a `.bak` that is a symlink is
    // replaced, never written through.
    let put = |target: &Path, bytes: &str| -> CliResult<()> {
        let mut tmp = tempfile::NamedTempFile::new_in(dir)
            .map_err(|e| CliError::failed(format!("cannot write in {}: {e}", dir.display())))?;
        std::io::Write::write_all(&mut tmp, bytes.as_bytes())
            .map_err(|e| CliError::failed(format!("cannot write {}: {e}", target.display())))?;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(mode))
            .map_err(|e| CliError::failed(format!("cannot write {}: {e}", target.display())))?;
        tmp.persist(target).map_err(|e| {
            CliError::failed(format!("cannot write {}: {}", target.display(), e.error))
        })?;
        Ok(())
    };
    if let Some(old) = &now {
        let mut bak = path.as_os_str().to_owned();
        bak.push(".bak");
        put(Path::new(&bak), old)?;
    }
    put(path, new)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roots() -> Roots {
        Roots {
            home: "/home/u".into(),
            config: "/home/u/.config".into(),
            cwd: "/work/p".into(),
            codex_home: "/home/u/.codex".into(),
        }
    }

    #[test]
    fn a_vscode_input_becomes_a_named_variable_and_a_note() {
        let inputs =
            json!([{"id": "api-key", "type": "promptString", "description": "The API key"}]);
        let mut notes = Vec::new();
        let s = translate(
            &mut notes,
            &roots(),
            &inputs,
            "Bearer ${input:api-key} in ${workspaceFolder}",
        );
        assert_eq!(s, "Bearer ${API_KEY} in /work/p");
        assert!(
            notes[0].contains("API_KEY") && notes[0].contains("The API key"),
            "{notes:?}"
        );
    }

    #[test]
    fn a_jsonc_edit_keeps_comments_and_every_other_byte() {
        let text = "{\n  // mine\n  \"theme\": \"dark\", /* keep */\n  \"mcpServers\": {\n    \"a\": {\"command\": \"x\"},\n    \"b\": {\"command\": \"y\"}, // b\n  },\n}\n";
        let place = Place {
            client: Client::Cursor,
            path: "f".into(),
            format: Format::Jsonc,
            keys: vec!["mcpServers".into()],
        };
        let edit = Edit {
            put: vec![(
                "mcpvisor".into(),
                json!({"command": "mcpvisor", "args": ["serve", "--stdio"]}),
            )],
            remove: vec!["a".into()],
        };
        let out = edited(&place, text, &edit).unwrap();
        assert!(
            out.contains("// mine") && out.contains("/* keep */") && out.contains("// b"),
            "{out}"
        );
        assert!(out.contains("\"theme\": \"dark\""), "{out}");
        let v = parse(&out, Format::Jsonc, Path::new("f")).unwrap();
        assert!(v["mcpServers"]["a"].is_null(), "{out}");
        assert_eq!(v["mcpServers"]["b"]["command"], "y");
        assert_eq!(v["mcpServers"]["mcpvisor"]["args"][1], "--stdio");
    }

    #[test]
    fn a_toml_edit_keeps_comments_and_other_tables() {
        let text = "# codex\nmodel = \"o3\"\n\n[mcp_servers.docs]\ncommand = \"npx\" # why\nargs = [\"-y\", \"docs\"]\n\n[profiles.x]\nmodel = \"y\"\n";
        let place = Place {
            client: Client::Codex,
            path: "c.toml".into(),
            format: Format::Toml,
            keys: vec!["mcp_servers".into()],
        };
        let edit = Edit {
            put: vec![(
                "mcpvisor".into(),
                json!({"command": "mcpvisor", "args": ["serve", "--stdio"]}),
            )],
            remove: vec!["docs".into()],
        };
        let out = edited(&place, text, &edit).unwrap();
        assert!(out.starts_with("# codex\nmodel = \"o3\"\n"), "{out}");
        assert!(out.contains("[profiles.x]\nmodel = \"y\"\n"), "{out}");
        assert!(out.contains("[mcp_servers.mcpvisor]"), "{out}");
        assert!(!out.contains("docs"), "{out}");
    }

    #[test]
    fn a_file_changed_since_it_was_read_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mcp.json");
        std::fs::write(&path, "{}").unwrap();
        let read_as = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, "{\"edited\": true}").unwrap();
        let err = write_if_unchanged(&path, Some(&read_as), "{\"new\": 1}").unwrap_err();
        assert!(
            err.to_string().contains("changed since it was read"),
            "{err}"
        );
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"edited\": true}"
        );
        assert!(!dir.path().join("mcp.json.bak").exists());
        // Unchanged: written, the old version kept.
        write_if_unchanged(&path, Some("{\"edited\": true}"), "{\"new\": 1}").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"new\": 1}");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("mcp.json.bak")).unwrap(),
            "{\"edited\": true}"
        );
    }
}
