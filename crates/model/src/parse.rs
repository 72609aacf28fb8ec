//! Parsing every accepted input form into one [`ServicesConfig`], with validation.
//!
//! Accepted: `{"mcpServers": {name: cfg}}`; `{"servers": {...}}` (VS Code); one service
//! `{"name": ..., ...}`; a map keyed by name whose values all have `command` or `url`; a list of
//! services with `name`; a JSON string holding any of these; a file path. Every problem is
//! reported (not just the first), each naming its service and field.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use indexmap::IndexMap;
use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::config::*;
use crate::env::{expand, Env, ExpandError};
use crate::error::{describe, ConfigError, ConfigErrors};
use crate::graph::DependencyGraph;
use crate::name::{suggest, ServiceName};

/// The standard container key.
pub const MCP_SERVERS: &str = "mcpServers";
/// VS Code's container key.
pub const VSCODE_SERVERS: &str = "servers";
const TOP_LEVEL: &str = "<top level>";

/// Parses `input`: JSON text if it starts with `{`, `[` or `"` (after whitespace), otherwise a
/// path to a file holding JSON.
pub fn parse_input(input: &str, env: &dyn Env) -> Result<ServicesConfig, ConfigErrors> {
    let t = input.trim_start();
    if t.starts_with('{') || t.starts_with('[') || t.starts_with('"') {
        parse_str(input, env)
    } else {
        parse_file(Path::new(input), env)
    }
}

/// Reads and parses a config file (the one read this crate does).
pub fn parse_file(path: &Path, env: &dyn Env) -> Result<ServicesConfig, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    parse_str(&text, env)
}

/// Parses JSON text. Syntax errors carry line and column; duplicate service names are caught
/// (a plain JSON parser would silently keep the last).
pub fn parse_str(text: &str, env: &dyn Env) -> Result<ServicesConfig, ConfigErrors> {
    let (value, dups) = parse_json_checked(text)?;
    let mut errors = Vec::new();
    for (path, key) in dups {
        let p: Vec<&str> = path.iter().map(String::as_str).collect();
        match p.as_slice() {
            [MCP_SERVERS] | [VSCODE_SERVERS] => {
                errors.push(ConfigError::DuplicateName { service: key })
            }
            ["agents", agent, MCP_SERVERS] | ["agents", agent, VSCODE_SERVERS] => {
                errors.push(ConfigError::DuplicateName {
                    service: format!("{agent}/{key}"),
                })
            }
            [] => errors.push(ConfigError::Shape {
                message: format!("top-level key '{key}' is written more than once"),
            }),
            [MCP_SERVERS, service, rest @ ..] | [VSCODE_SERVERS, service, rest @ ..] => {
                errors.push(duplicate_field(service, rest, &key))
            }
            _ => errors.push(duplicate_field(TOP_LEVEL, &p, &key)),
        }
    }
    match parse_value(value, env) {
        Ok(cfg) if errors.is_empty() => Ok(cfg),
        Ok(_) => Err(ConfigErrors(errors)),
        Err(mut e) => {
            errors.append(&mut e.0);
            Err(ConfigErrors(errors))
        }
    }
}

fn duplicate_field(service: &str, path: &[&str], key: &str) -> ConfigError {
    let mut field: Vec<&str> = path.to_vec();
    field.push(key);
    ConfigError::InvalidValue {
        service: service.to_owned(),
        field: field.join("."),
        expected: "each key written once".into(),
        found: format!("'{key}' written more than once"),
    }
}

/// Parses an already-decoded JSON value (any accepted form).
pub fn parse_value(value: Value, env: &dyn Env) -> Result<ServicesConfig, ConfigErrors> {
    let doc = split_document(value)?;
    let mut errors = Vec::new();

    let supervisor = match doc.extra.get("supervisor") {
        Some(v) => parse_supervisor(v, &mut errors),
        None => SupervisorConfig::default(),
    };
    let defaults = match doc.extra.get("defaults") {
        None => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(other) => {
            errors.push(ConfigError::InvalidValue {
                service: TOP_LEVEL.into(),
                field: "defaults".into(),
                expected: "an object of service settings".into(),
                found: describe(other),
            });
            Map::new()
        }
    };

    let services = resolve_scope(None, doc.services, &defaults, &supervisor, env, &mut errors);

    let mut agents = IndexMap::new();
    match doc.extra.get("agents") {
        None => {}
        Some(Value::Object(m)) => {
            for (id, v) in m {
                let agent_id = match ServiceName::parse(id) {
                    Ok(a) => a,
                    Err(e) => {
                        errors.push(ConfigError::InvalidName {
                            service: format!("agents.{id}"),
                            reason: e.to_string(),
                        });
                        continue;
                    }
                };
                let Value::Object(obj) = v else {
                    errors.push(ConfigError::InvalidValue {
                        service: format!("agents.{id}"),
                        field: String::new(),
                        expected: "an object with \"mcpServers\"".into(),
                        found: describe(v),
                    });
                    continue;
                };
                let mut extra = obj.clone();
                let entries = match extra
                    .shift_remove(MCP_SERVERS)
                    .or_else(|| extra.shift_remove(VSCODE_SERVERS))
                {
                    None => Vec::new(),
                    Some(Value::Object(s)) => s.into_iter().collect(),
                    Some(other) => {
                        errors.push(ConfigError::InvalidValue {
                            service: format!("agents.{id}"),
                            field: MCP_SERVERS.into(),
                            expected: "an object keyed by service name".into(),
                            found: describe(&other),
                        });
                        Vec::new()
                    }
                };
                let services =
                    resolve_scope(Some(id), entries, &defaults, &supervisor, env, &mut errors);
                agents.insert(agent_id, AgentConfig { services, extra });
            }
        }
        Some(other) => errors.push(ConfigError::InvalidValue {
            service: TOP_LEVEL.into(),
            field: "agents".into(),
            expected: "an object keyed by agent id".into(),
            found: describe(other),
        }),
    }

    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    Ok(ServicesConfig {
        services,
        agents,
        defaults,
        supervisor,
        extra: doc.extra,
        services_key: doc.services_key,
        services_index: doc.services_index,
    })
}

/// Resolves one service object outside of a document, e.g. for `add_service`. `defaults` and
/// `supervisor` come from the running configuration. Dependencies are not checked against other
/// services here (see [`DependencyGraph`]).
pub fn resolve_service(
    name: &str,
    raw: &Map<String, Value>,
    defaults: &Map<String, Value>,
    supervisor: &SupervisorConfig,
    env: &dyn Env,
) -> Result<ServiceSpec, ConfigErrors> {
    let mut errors = Vec::new();
    let spec = resolve_one(name, name, raw, defaults, supervisor, env, &mut errors);
    match spec {
        Some(s) if errors.is_empty() => Ok(s),
        _ => Err(ConfigErrors(errors)),
    }
}

/// A service name as written and its object.
pub type NamedObject = (String, Map<String, Value>);

/// Splits any accepted single-or-many service input (the forms `add_service` takes) into
/// `(name, object)` pairs, without resolving them.
pub fn split_services(value: Value) -> Result<Vec<NamedObject>, ConfigErrors> {
    let doc = split_document(value)?;
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for (name, v) in doc.services {
        match v {
            Value::Object(m) => out.push((name, m)),
            other => errors.push(not_an_object(&name, &other)),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(ConfigErrors(errors))
    }
}

fn not_an_object(name: &str, v: &Value) -> ConfigError {
    ConfigError::InvalidValue {
        service: name.to_owned(),
        field: String::new(),
        expected: "an object with \"command\" or \"url\"".into(),
        found: describe(v),
    }
}

struct Document {
    services: Vec<(String, Value)>,
    extra: Map<String, Value>,
    services_key: String,
    services_index: usize,
}

fn has_endpoint(v: &Value) -> bool {
    v.get("command").is_some() || v.get("url").is_some()
}

fn split_document(value: Value) -> Result<Document, ConfigErrors> {
    let empty = |services, extra, key: &str, index| Document {
        services,
        extra,
        services_key: key.to_owned(),
        services_index: index,
    };
    match value {
        Value::String(s) => {
            let (inner, _) = parse_json_checked(&s)?;
            if inner.is_string() {
                return Err(ConfigError::Shape {
                    message: "a JSON string holding another JSON string".into(),
                }
                .into());
            }
            split_document(inner)
        }
        Value::Array(items) => {
            let mut services = Vec::new();
            let mut errors = Vec::new();
            for (i, item) in items.into_iter().enumerate() {
                match item {
                    Value::Object(mut m) => match m.shift_remove("name") {
                        Some(Value::String(n)) => services.push((n, Value::Object(m))),
                        other => errors.push(ConfigError::InvalidValue {
                            service: format!("[{i}]"),
                            field: "name".into(),
                            expected: "a string naming the service".into(),
                            found: other.as_ref().map(describe).unwrap_or("nothing".into()),
                        }),
                    },
                    other => errors.push(not_an_object(&format!("[{i}]"), &other)),
                }
            }
            if errors.is_empty() {
                Ok(empty(services, Map::new(), MCP_SERVERS, 0))
            } else {
                Err(ConfigErrors(errors))
            }
        }
        Value::Object(mut m) => {
            for key in [MCP_SERVERS, VSCODE_SERVERS] {
                if let Some(index) = m.keys().position(|k| k == key) {
                    let container = m.shift_remove(key).unwrap_or(Value::Null);
                    let Value::Object(s) = container else {
                        return Err(ConfigError::InvalidValue {
                            service: TOP_LEVEL.into(),
                            field: key.into(),
                            expected: "an object keyed by service name".into(),
                            found: describe(&container),
                        }
                        .into());
                    };
                    return Ok(empty(s.into_iter().collect(), m, key, index));
                }
            }
            if matches!(m.get("name"), Some(Value::String(_)))
                && has_endpoint(&Value::Object(m.clone()))
            {
                let Some(Value::String(n)) = m.shift_remove("name") else {
                    unreachable!("checked above")
                };
                return Ok(empty(
                    vec![(n, Value::Object(m))],
                    Map::new(),
                    MCP_SERVERS,
                    0,
                ));
            }
            let sections_only = m
                .keys()
                .all(|k| matches!(k.as_str(), "defaults" | "supervisor" | "agents"));
            if sections_only {
                return Ok(empty(Vec::new(), m, MCP_SERVERS, 0));
            }
            if m.values().all(has_endpoint) {
                return Ok(empty(m.into_iter().collect(), Map::new(), MCP_SERVERS, 0));
            }
            let stray: Vec<&str> = m
                .iter()
                .filter(|(_, v)| !has_endpoint(v))
                .map(|(k, _)| k.as_str())
                .take(3)
                .collect();
            Err(ConfigError::Shape {
                message: format!(
                    "an object with no \"mcpServers\" whose entries {} have neither \"command\" nor \"url\"",
                    stray.iter().map(|k| format!("'{k}'")).collect::<Vec<_>>().join(", ")
                ),
            }
            .into())
        }
        other => Err(ConfigError::Shape {
            message: format!("{} at the top level", describe(&other)),
        }
        .into()),
    }
}

fn resolve_scope(
    agent: Option<&str>,
    entries: Vec<(String, Value)>,
    defaults: &Map<String, Value>,
    supervisor: &SupervisorConfig,
    env: &dyn Env,
    errors: &mut Vec<ConfigError>,
) -> IndexMap<ServiceName, ServiceSpec> {
    let mut out: IndexMap<ServiceName, ServiceSpec> = IndexMap::new();
    let display = |n: &str| match agent {
        Some(a) => format!("{a}/{n}"),
        None => n.to_owned(),
    };
    for (name, v) in entries {
        let shown = display(&name);
        let Value::Object(raw) = v else {
            errors.push(not_an_object(&shown, &v));
            continue;
        };
        if let Some(spec) = resolve_one(&name, &shown, &raw, defaults, supervisor, env, errors) {
            if out.contains_key(&spec.name) {
                errors.push(ConfigError::DuplicateName { service: shown });
            } else {
                out.insert(spec.name.clone(), spec);
            }
        }
    }
    let graph = DependencyGraph::from_specs(out.values());
    for e in graph.check() {
        errors.push(match e {
            ConfigError::UnknownDependency {
                service,
                dependency,
                suggestion,
            } => ConfigError::UnknownDependency {
                service: display(&service),
                dependency,
                suggestion,
            },
            ConfigError::DependencyCycle { service, cycle } => ConfigError::DependencyCycle {
                service: display(&service),
                cycle: cycle.iter().map(|c| display(c)).collect(),
            },
            other => other,
        });
    }
    out
}

/// Keys of a service object that `defaults` may not supply.
const NOT_DEFAULTABLE: &[&str] = &[
    "command",
    "args",
    "url",
    "transport",
    "type",
    "depends_on",
    "name",
    "cwd",
];
/// Sections whose keys merge one by one.
const MERGED_SECTIONS: &[&str] = &["health", "backoff", "timeouts", "env", "headers"];

fn merge_defaults(raw: &Map<String, Value>, defaults: &Map<String, Value>) -> Map<String, Value> {
    let mut merged = raw.clone();
    for (k, dv) in defaults {
        if NOT_DEFAULTABLE.contains(&k.as_str()) {
            continue;
        }
        match (merged.get_mut(k), dv) {
            (None, _) => {
                merged.insert(k.clone(), dv.clone());
            }
            (Some(Value::Object(own)), Value::Object(d))
                if MERGED_SECTIONS.contains(&k.as_str()) =>
            {
                for (dk, dvv) in d {
                    if !own.contains_key(dk) {
                        own.insert(dk.clone(), dvv.clone());
                    }
                }
            }
            _ => {}
        }
    }
    merged
}

/// Reads typed fields of one service object, collecting errors.
struct Fields<'a> {
    service: &'a str,
    obj: &'a Map<String, Value>,
    errors: &'a mut Vec<ConfigError>,
    env: &'a dyn Env,
}

impl Fields<'_> {
    fn invalid(&mut self, field: &str, expected: &str, found: &Value) {
        self.errors.push(ConfigError::InvalidValue {
            service: self.service.to_owned(),
            field: field.to_owned(),
            expected: expected.to_owned(),
            found: describe(found),
        });
    }

    fn expand(&mut self, field: &str, s: &str) -> Option<String> {
        match expand(s, self.env) {
            Ok(v) => Some(v),
            Err(ExpandError::Undefined(variable)) => {
                self.errors.push(ConfigError::UndefinedVariable {
                    service: self.service.to_owned(),
                    field: field.to_owned(),
                    variable,
                });
                None
            }
            Err(ExpandError::Syntax) => {
                self.errors.push(ConfigError::BadVariableSyntax {
                    service: self.service.to_owned(),
                    field: field.to_owned(),
                    value: s.to_owned(),
                });
                None
            }
        }
    }

    fn string(&mut self, key: &str) -> Option<String> {
        match self.obj.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                let other = other.clone();
                self.invalid(key, "a string", &other);
                None
            }
        }
    }

    fn expanded_string(&mut self, key: &str) -> Option<String> {
        let s = self.string(key)?;
        self.expand(key, &s)
    }

    fn expanded_list(&mut self, key: &str) -> Vec<String> {
        match self.obj.get(key).cloned() {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .filter_map(|(i, v)| match v {
                    Value::String(s) => self.expand(&format!("{key}[{i}]"), s),
                    other => {
                        self.invalid(&format!("{key}[{i}]"), "a string", other);
                        None
                    }
                })
                .collect(),
            Some(other) => {
                self.invalid(key, "an array of strings", &other);
                Vec::new()
            }
        }
    }

    fn expanded_map(&mut self, key: &str) -> BTreeMap<String, String> {
        match self.obj.get(key).cloned() {
            None | Some(Value::Null) => BTreeMap::new(),
            Some(Value::Object(m)) => m
                .iter()
                .filter_map(|(k, v)| {
                    let field = format!("{key}.{k}");
                    let text = match v {
                        Value::String(s) => s.clone(),
                        Value::Number(n) => n.to_string(),
                        Value::Bool(b) => b.to_string(),
                        other => {
                            self.invalid(&field, "a string", other);
                            return None;
                        }
                    };
                    self.expand(&field, &text).map(|v| (k.clone(), v))
                })
                .collect(),
            Some(other) => {
                self.invalid(key, "an object of string values", &other);
                BTreeMap::new()
            }
        }
    }

    fn bool(&mut self, key: &str, default: bool) -> bool {
        match self.obj.get(key).cloned() {
            None | Some(Value::Null) => default,
            Some(Value::Bool(b)) => b,
            Some(other) => {
                self.invalid(key, "true or false", &other);
                default
            }
        }
    }
}

/// Reads a known section (`health`, ...) rejecting unknown keys, which are almost always typos.
struct Section<'a, 'b> {
    f: &'b mut Fields<'a>,
    name: &'static str,
    obj: Map<String, Value>,
}

impl<'a, 'b> Section<'a, 'b> {
    fn open(f: &'b mut Fields<'a>, name: &'static str, known: &[&str]) -> Self {
        let obj = match f.obj.get(name).cloned() {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => m,
            Some(other) => {
                f.invalid(name, "an object", &other);
                Map::new()
            }
        };
        for k in obj.keys() {
            if !known.contains(&k.as_str()) {
                let hint = suggest(k, known.iter().copied(), 1);
                let expected = match hint.first() {
                    Some(h) => format!("a known key (did you mean '{h}'?)"),
                    None => format!("one of: {}", known.join(", ")),
                };
                f.errors.push(ConfigError::InvalidValue {
                    service: f.service.to_owned(),
                    field: format!("{name}.{k}"),
                    expected,
                    found: format!("unknown key '{k}'"),
                });
            }
        }
        Section { f, name, obj }
    }

    fn field(&self, key: &str) -> String {
        format!("{}.{key}", self.name)
    }

    fn duration(&mut self, key: &str, default: Duration, allow_zero: bool) -> Duration {
        let field = self.field(key);
        match self.obj.get(key).cloned() {
            None | Some(Value::Null) => default,
            Some(Value::String(s)) => match humantime::parse_duration(s.trim()) {
                Ok(d) if d.is_zero() && !allow_zero => {
                    self.f.errors.push(ConfigError::InvalidDuration {
                        service: self.f.service.to_owned(),
                        field,
                        value: s,
                        reason: "must be greater than zero".into(),
                    });
                    default
                }
                Ok(d) => d,
                Err(e) => {
                    self.f.errors.push(ConfigError::InvalidDuration {
                        service: self.f.service.to_owned(),
                        field,
                        value: s,
                        reason: e.to_string(),
                    });
                    default
                }
            },
            Some(other) => {
                self.f
                    .invalid(&field, "a duration string such as \"10s\"", &other);
                default
            }
        }
    }

    fn count(&mut self, key: &str, default: u32, min: u32) -> u32 {
        let field = self.field(key);
        match self.obj.get(key).cloned() {
            None | Some(Value::Null) => default,
            Some(v) => match v.as_u64().and_then(|n| u32::try_from(n).ok()) {
                Some(n) if n >= min => n,
                _ => {
                    self.f
                        .invalid(&field, &format!("a whole number >= {min}"), &v);
                    default
                }
            },
        }
    }

    fn float(&mut self, key: &str, default: f64, lo: f64, hi: f64) -> f64 {
        let field = self.field(key);
        match self.obj.get(key).cloned() {
            None | Some(Value::Null) => default,
            Some(v) => match v.as_f64() {
                Some(x) if x.is_finite() && x >= lo && x <= hi => x,
                _ => {
                    let expected = if hi.is_finite() {
                        format!("a number from {lo} to {hi}")
                    } else {
                        format!("a number >= {lo}")
                    };
                    self.f.invalid(&field, &expected, &v);
                    default
                }
            },
        }
    }
}

fn parse_transport(s: &str) -> Option<TransportKind> {
    match s.to_ascii_lowercase().as_str() {
        "stdio" => Some(TransportKind::Stdio),
        "streamable-http" | "streamable_http" | "streamablehttp" | "http" => {
            Some(TransportKind::StreamableHttp)
        }
        "sse" => Some(TransportKind::Sse),
        _ => None,
    }
}

fn resolve_one(
    name: &str,
    shown: &str,
    raw: &Map<String, Value>,
    defaults: &Map<String, Value>,
    supervisor: &SupervisorConfig,
    env: &dyn Env,
    errors: &mut Vec<ConfigError>,
) -> Option<ServiceSpec> {
    let before = errors.len();
    let service_name = match ServiceName::parse(name) {
        Ok(n) => Some(n),
        Err(e) => {
            errors.push(ConfigError::InvalidName {
                service: shown.to_owned(),
                reason: e.to_string(),
            });
            None
        }
    };
    let merged = merge_defaults(raw, defaults);
    let mut f = Fields {
        service: shown,
        obj: &merged,
        errors,
        env,
    };

    // Transport and endpoint.
    let mut explicit: Option<(String, TransportKind)> = None;
    for key in ["transport", "type"] {
        if let Some(t) = f.string(key) {
            match parse_transport(&t) {
                None => f.errors.push(ConfigError::UnknownTransport {
                    service: shown.to_owned(),
                    field: key.to_owned(),
                    value: t,
                }),
                Some(kind) => match &explicit {
                    Some((first, k)) if *k != kind => f.errors.push(ConfigError::InvalidValue {
                        service: shown.to_owned(),
                        field: key.to_owned(),
                        expected: format!("the same transport as '{first}' ({k})"),
                        found: format!("\"{t}\""),
                    }),
                    Some(_) => {}
                    None => explicit = Some((key.to_owned(), kind)),
                },
            }
        }
    }
    let has_command = !matches!(merged.get("command"), None | Some(Value::Null));
    let has_url = !matches!(merged.get("url"), None | Some(Value::Null));
    let endpoint = match (has_command, has_url) {
        (true, true) => {
            f.errors.push(ConfigError::CommandAndUrl {
                service: shown.to_owned(),
            });
            None
        }
        (false, false) => {
            f.errors.push(ConfigError::MissingCommandOrUrl {
                service: shown.to_owned(),
            });
            None
        }
        (true, false) => {
            if let Some((field, kind)) = &explicit {
                if *kind != TransportKind::Stdio {
                    f.errors.push(ConfigError::TransportMismatch {
                        service: shown.to_owned(),
                        field: field.clone(),
                        transport: kind.to_string(),
                        kind: "command".into(),
                        hint: "a local process speaks stdio; remove it, or replace 'command' with 'url' for a remote server".into(),
                    });
                }
            }
            let command = f.expanded_string("command");
            let args = f.expanded_list("args");
            let envs = f.expanded_map("env");
            let cwd = f.expanded_string("cwd").map(PathBuf::from);
            match command {
                Some(c) if c.trim().is_empty() => {
                    f.invalid("command", "a program name or path", &Value::String(c));
                    None
                }
                Some(command) => Some(Endpoint::Stdio {
                    command,
                    args,
                    env: envs,
                    cwd,
                }),
                None => None,
            }
        }
        (false, true) => {
            let url = f.expanded_string("url");
            let headers = f.expanded_map("headers");
            let url = url.and_then(|u| match url::Url::parse(&u) {
                Ok(p) if matches!(p.scheme(), "http" | "https") && p.host().is_some() => {
                    Some((u, p))
                }
                Ok(p) => {
                    f.errors.push(ConfigError::InvalidUrl {
                        service: shown.to_owned(),
                        field: "url".into(),
                        value: u.clone(),
                        reason: format!(
                            "scheme '{}' is not http or https, or the host is missing",
                            p.scheme()
                        ),
                    });
                    None
                }
                Err(e) => {
                    f.errors.push(ConfigError::InvalidUrl {
                        service: shown.to_owned(),
                        field: "url".into(),
                        value: u.clone(),
                        reason: e.to_string(),
                    });
                    None
                }
            });
            url.and_then(|(url, parsed)| {
                let inferred = if parsed.path().trim_end_matches('/').ends_with("/sse") {
                    TransportKind::Sse
                } else {
                    TransportKind::StreamableHttp
                };
                let transport = match &explicit {
                    Some((field, TransportKind::Stdio)) => {
                        f.errors.push(ConfigError::TransportMismatch {
                            service: shown.to_owned(),
                            field: field.clone(),
                            transport: "stdio".into(),
                            kind: "url".into(),
                            hint: "a remote server speaks streamable-http or sse; use 'command' for a local process".into(),
                        });
                        return None;
                    }
                    Some((_, k)) => *k,
                    None => inferred,
                };
                Some(Endpoint::Remote { transport, url, headers })
            })
        }
    };

    // Dependencies.
    let mut depends_on = Vec::new();
    match merged.get("depends_on").cloned() {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                match item {
                    Value::String(d) => push_dependency(
                        &mut f,
                        &mut depends_on,
                        d,
                        DependencyCondition::Healthy,
                        &format!("depends_on[{i}]"),
                    ),
                    other => f.invalid(&format!("depends_on[{i}]"), "a service name", other),
                }
            }
        }
        Some(Value::Object(m)) => {
            for (d, spec) in &m {
                let field = format!("depends_on.{d}");
                let condition = match spec.get("condition").or(Some(spec)) {
                    Some(Value::String(c)) if c == "healthy" => Some(DependencyCondition::Healthy),
                    Some(Value::String(c)) if c == "started" => Some(DependencyCondition::Started),
                    Some(Value::Object(o)) if o.is_empty() => Some(DependencyCondition::Healthy),
                    Some(Value::Null) => Some(DependencyCondition::Healthy),
                    Some(other) => {
                        f.invalid(
                            &format!("{field}.condition"),
                            "\"healthy\" or \"started\"",
                            other,
                        );
                        None
                    }
                    None => Some(DependencyCondition::Healthy),
                };
                if let Some(c) = condition {
                    push_dependency(&mut f, &mut depends_on, d, c, &field);
                }
            }
        }
        Some(other) => f.invalid(
            "depends_on",
            "a list of service names or an object {name: {\"condition\": ...}}",
            &other,
        ),
    }

    let restart = match f.string("restart").as_deref() {
        None => RestartPolicy::default(),
        Some("permanent") => RestartPolicy::Permanent,
        Some("transient") => RestartPolicy::Transient,
        Some("temporary") => RestartPolicy::Temporary,
        Some(other) => {
            f.invalid(
                "restart",
                "\"permanent\", \"transient\" or \"temporary\"",
                &Value::String(other.to_owned()),
            );
            RestartPolicy::default()
        }
    };
    let disabled = f.bool("disabled", false);

    let hd = HealthConfig::default();
    let mut s = Section::open(
        &mut f,
        "health",
        &["interval", "timeout", "warn_after", "reconnect_after"],
    );
    let health = HealthConfig {
        interval: s.duration("interval", hd.interval, false),
        timeout: s.duration("timeout", hd.timeout, false),
        warn_after: s.count("warn_after", hd.warn_after, 1),
        reconnect_after: s.count("reconnect_after", hd.reconnect_after, 1),
    };

    let bd = BackoffConfig::default();
    let mut s = Section::open(
        &mut f,
        "backoff",
        &[
            "initial",
            "max",
            "factor",
            "jitter",
            "max_attempts",
            "unreachable_retry",
            "reset_after",
        ],
    );
    let backoff = BackoffConfig {
        initial: s.duration("initial", bd.initial, true),
        max: s.duration("max", bd.max, false),
        factor: s.float("factor", bd.factor, 1.0, f64::INFINITY),
        jitter: s.float("jitter", bd.jitter, 0.0, 1.0),
        max_attempts: s.count("max_attempts", bd.max_attempts, 1),
        unreachable_retry: s.duration("unreachable_retry", bd.unreachable_retry, false),
        reset_after: s.duration("reset_after", bd.reset_after, true),
    };
    if backoff.initial > backoff.max {
        f.errors.push(ConfigError::InvalidValue {
            service: shown.to_owned(),
            field: "backoff.initial".into(),
            expected: format!(
                "at most backoff.max ({})",
                humantime::format_duration(backoff.max)
            ),
            found: humantime::format_duration(backoff.initial).to_string(),
        });
    }

    let td = TimeoutConfig::default();
    let mut s = Section::open(&mut f, "timeouts", &["connect", "call", "shutdown"]);
    let timeouts = TimeoutConfig {
        connect: s.duration("connect", td.connect, false),
        call: s.duration("call", td.call, false),
        shutdown: s.duration("shutdown", td.shutdown, true),
    };

    if f.errors.len() > before {
        return None;
    }
    Some(ServiceSpec {
        name: service_name?,
        raw: raw.clone(),
        config: ServiceConfig {
            endpoint: endpoint?,
            depends_on,
            restart,
            disabled,
            health,
            backoff,
            timeouts,
            intensity: supervisor.intensity,
        },
    })
}

fn push_dependency(
    f: &mut Fields<'_>,
    out: &mut Vec<Dependency>,
    name: &str,
    condition: DependencyCondition,
    field: &str,
) {
    match ServiceName::parse(name) {
        Ok(n) => {
            if !out.iter().any(|d| d.name == n) {
                out.push(Dependency { name: n, condition });
            }
        }
        Err(e) => f.invalid(
            field,
            &format!("a service name ({e})"),
            &Value::String(name.to_owned()),
        ),
    }
}

fn parse_supervisor(v: &Value, errors: &mut Vec<ConfigError>) -> SupervisorConfig {
    let obj = Map::from_iter([("supervisor".to_owned(), v.clone())]);
    let env = crate::env::MapEnv::default();
    let mut f = Fields {
        service: TOP_LEVEL,
        obj: &obj,
        errors,
        env: &env,
    };
    let dflt = SupervisorConfig::default();
    let mut s = Section::open(
        &mut f,
        "supervisor",
        &["max_restarts", "within", "tool_separator"],
    );
    let max_restarts = s.count("max_restarts", dflt.intensity.max_restarts, 0);
    let within = s.duration("within", dflt.intensity.within, false);
    let sep = match s.obj.get("tool_separator").cloned() {
        None => dflt.tool_separator.clone(),
        Some(Value::String(sep)) if !sep.is_empty() && sep.chars().count() <= 4 => sep,
        Some(other) => {
            s.f.invalid(
                "supervisor.tool_separator",
                "a non-empty string of at most 4 characters",
                &other,
            );
            dflt.tool_separator.clone()
        }
    };
    SupervisorConfig {
        intensity: IntensityConfig {
            max_restarts,
            within,
        },
        tool_separator: sep,
    }
}

// ---------------------------------------------------------------------------------------------
// JSON with duplicate-key detection.

/// A duplicate key: the path of the object holding it, and the key.
type Dup = (Vec<String>, String);
type Dups = RefCell<Vec<Dup>>;

fn parse_json_checked(text: &str) -> Result<(Value, Vec<Dup>), ConfigErrors> {
    let dups: Dups = RefCell::new(Vec::new());
    let mut de = serde_json::Deserializer::from_str(text);
    let value = ValueSeed {
        path: Vec::new(),
        dups: &dups,
    }
    .deserialize(&mut de)
    .and_then(|v| de.end().map(|_| v))
    .map_err(|e| ConfigError::Syntax {
        line: e.line(),
        column: e.column(),
        message: strip_position(&e.to_string()),
    })?;
    Ok((value, dups.into_inner()))
}

fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg.to_owned(),
    }
}

struct ValueSeed<'a> {
    path: Vec<String>,
    dups: &'a Dups,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v)
            .map(Value::Number)
            .unwrap_or(Value::Null))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        let mut i = 0usize;
        loop {
            let mut path = self.path.clone();
            path.push(i.to_string());
            match seq.next_element_seed(ValueSeed {
                path,
                dups: self.dups,
            })? {
                Some(v) => out.push(v),
                None => break,
            }
            i += 1;
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let mut path = self.path.clone();
            path.push(key.clone());
            let v = map.next_value_seed(ValueSeed {
                path,
                dups: self.dups,
            })?;
            if out.insert(key.clone(), v).is_some() {
                self.dups.borrow_mut().push((self.path.clone(), key));
            }
        }
        Ok(Value::Object(out))
    }
}
