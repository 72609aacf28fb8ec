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
use fields::*;
use json::*;
use resolve::*;

mod alerts;
mod fields;
mod json;
mod resolve;
mod sandbox;

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
    let gateway = match doc.extra.get("gateway") {
        Some(v) => parse_gateway(v, &mut errors),
        None => GatewayConfig::default(),
    };
    let alerts = match doc.extra.get("alerts") {
        Some(v) => alerts::parse_alerts(v, env, &mut errors),
        None => crate::alerts::AlertsConfig::default(),
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
        gateway,
        alerts,
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
            let sections_only = m.keys().all(|k| {
                matches!(
                    k.as_str(),
                    "defaults" | "supervisor" | "gateway" | "alerts" | "agents"
                )
            });
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
