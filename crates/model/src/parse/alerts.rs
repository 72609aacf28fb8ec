//! The `alerts` section: one rule per key, each error naming `alerts.<rule>.<field>`.

use super::*;
use crate::alerts::{AlertCommand, AlertRule, AlertTrigger, AlertsConfig, Webhook};
use crate::defaults as d;
use crate::state::ServiceState;

const KNOWN: [&str; 11] = [
    "enters",
    "restarts",
    "probe_latency",
    "services",
    "command",
    "webhook",
    "every",
    "recovery",
    "retries",
    "timeout",
    "description",
];

/// Reads one rule's fields, collecting errors.
struct Rule<'a> {
    name: &'a str,
    obj: &'a Map<String, Value>,
    env: &'a dyn Env,
    errors: &'a mut Vec<ConfigError>,
}

impl Rule<'_> {
    fn field(&self, key: &str) -> String {
        format!("alerts.{}.{key}", self.name)
    }

    fn invalid(&mut self, key: &str, expected: &str, found: &Value) {
        self.errors.push(ConfigError::InvalidValue {
            service: TOP_LEVEL.into(),
            field: self.field(key),
            expected: expected.into(),
            found: describe(found),
        });
    }

    fn duration_at(&mut self, key: &str, v: &Value) -> Option<Duration> {
        match v {
            Value::String(s) => match humantime::parse_duration(s.trim()) {
                Ok(d) if !d.is_zero() => Some(d),
                Ok(_) => {
                    self.errors.push(ConfigError::InvalidDuration {
                        service: TOP_LEVEL.into(),
                        field: self.field(key),
                        value: s.clone(),
                        reason: "must be greater than zero".into(),
                    });
                    None
                }
                Err(e) => {
                    self.errors.push(ConfigError::InvalidDuration {
                        service: TOP_LEVEL.into(),
                        field: self.field(key),
                        value: s.clone(),
                        reason: e.to_string(),
                    });
                    None
                }
            },
            other => {
                self.invalid(key, "a duration string such as \"5m\"", other);
                None
            }
        }
    }

    fn duration(&mut self, key: &str, default: Duration) -> Duration {
        match self.obj.get(key) {
            None | Some(Value::Null) => default,
            Some(v) => self.duration_at(key, &v.clone()).unwrap_or(default),
        }
    }

    fn expand(&mut self, key: &str, s: &str) -> String {
        match expand(s, self.env) {
            Ok(v) => v,
            Err(ExpandError::Undefined(variable)) => {
                self.errors.push(ConfigError::UndefinedVariable {
                    service: TOP_LEVEL.into(),
                    field: self.field(key),
                    variable,
                });
                String::new()
            }
            Err(ExpandError::Syntax) => {
                self.errors.push(ConfigError::BadVariableSyntax {
                    service: TOP_LEVEL.into(),
                    field: self.field(key),
                    value: s.to_owned(),
                });
                String::new()
            }
            Err(ExpandError::File(why)) => {
                self.errors.push(ConfigError::InvalidValue {
                    service: TOP_LEVEL.into(),
                    field: self.field(key),
                    expected: "a ${file:PATH} only its owner may read".into(),
                    found: why,
                });
                String::new()
            }
        }
    }

    fn trigger(&mut self) -> Option<AlertTrigger> {
        let given: Vec<&str> = ["enters", "restarts", "probe_latency"]
            .into_iter()
            .filter(|k| self.obj.get(*k).is_some_and(|v| !v.is_null()))
            .collect();
        if given.len() != 1 {
            self.errors.push(ConfigError::InvalidValue {
                service: TOP_LEVEL.into(),
                field: format!("alerts.{}", self.name),
                expected: "exactly one trigger: \"enters\", \"restarts\" or \"probe_latency\""
                    .into(),
                found: if given.is_empty() {
                    "none".into()
                } else {
                    given.join(" and ")
                },
            });
            return None;
        }
        let v = self.obj.get(given[0]).cloned().unwrap_or(Value::Null);
        match given[0] {
            "enters" => {
                let list: Vec<Value> = match v {
                    Value::String(s) => vec![Value::String(s)],
                    Value::Array(a) => a,
                    other => {
                        self.invalid("enters", "a state or a list of states", &other);
                        return None;
                    }
                };
                let mut states = Vec::new();
                for item in &list {
                    match item.as_str().and_then(ServiceState::parse) {
                        Some(s) => states.push(s),
                        None => {
                            let names: Vec<&str> =
                                ServiceState::ALL.iter().map(|s| s.as_str()).collect();
                            self.invalid(
                                "enters",
                                &format!("states among {}", names.join(", ")),
                                item,
                            );
                            return None;
                        }
                    }
                }
                if states.is_empty() {
                    self.invalid("enters", "at least one state", &Value::Array(list));
                    return None;
                }
                Some(AlertTrigger::Enters(states))
            }
            "restarts" => {
                let Value::Object(o) = &v else {
                    self.invalid("restarts", "{\"more_than\": N, \"within\": \"10m\"}", &v);
                    return None;
                };
                let more_than = match o.get("more_than").and_then(Value::as_u64) {
                    Some(n) => u32::try_from(n).unwrap_or(u32::MAX),
                    None => {
                        let found = o.get("more_than").cloned().unwrap_or(Value::Null);
                        self.invalid("restarts.more_than", "a whole number", &found);
                        return None;
                    }
                };
                let within = match o.get("within") {
                    Some(w) => self.duration_at("restarts.within", &w.clone())?,
                    None => d::ALERT_RESTARTS_WITHIN,
                };
                Some(AlertTrigger::Restarts { more_than, within })
            }
            _ => {
                let over = match &v {
                    Value::Object(o) => match o.get("over") {
                        Some(w) => self.duration_at("probe_latency.over", &w.clone())?,
                        None => {
                            self.invalid("probe_latency.over", "a duration", &Value::Null);
                            return None;
                        }
                    },
                    other => {
                        self.invalid("probe_latency", "{\"over\": \"500ms\"}", other);
                        return None;
                    }
                };
                Some(AlertTrigger::ProbeLatency { over })
            }
        }
    }

    fn command(&mut self) -> Option<AlertCommand> {
        match self.obj.get("command").cloned() {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if !s.trim().is_empty() => {
                Some(AlertCommand::Shell(self.expand("command", &s)))
            }
            Some(Value::Array(items))
                if !items.is_empty() && items.iter().all(Value::is_string) =>
            {
                let argv = items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(|s| self.expand("command", s))
                    .collect();
                Some(AlertCommand::Argv(argv))
            }
            Some(other) => {
                self.invalid(
                    "command",
                    "a shell command string or a list [program, args...]",
                    &other,
                );
                None
            }
        }
    }

    fn webhook(&mut self) -> Option<Webhook> {
        let (url, headers) = match self.obj.get("webhook").cloned() {
            None | Some(Value::Null) => return None,
            Some(Value::String(url)) => (url, Map::new()),
            Some(Value::Object(o)) => match o.get("url") {
                Some(Value::String(url)) => {
                    let headers = match o.get("headers") {
                        None | Some(Value::Null) => Map::new(),
                        Some(Value::Object(h)) => h.clone(),
                        Some(other) => {
                            self.invalid("webhook.headers", "an object of strings", other);
                            Map::new()
                        }
                    };
                    (url.clone(), headers)
                }
                other => {
                    let found = other.cloned().unwrap_or(Value::Null);
                    self.invalid("webhook.url", "an http:// or https:// URL", &found);
                    return None;
                }
            },
            Some(other) => {
                self.invalid(
                    "webhook",
                    "a URL or {\"url\": ..., \"headers\": {...}}",
                    &other,
                );
                return None;
            }
        };
        let url = self.expand("webhook.url", &url);
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            self.invalid(
                "webhook.url",
                "an http:// or https:// URL",
                &Value::String(url),
            );
            return None;
        }
        let mut out = BTreeMap::new();
        for (k, v) in headers {
            match v {
                Value::String(s) => {
                    let value = self.expand(&format!("webhook.headers.{k}"), &s);
                    out.insert(k, value);
                }
                other => self.invalid(&format!("webhook.headers.{k}"), "a string", &other),
            }
        }
        Some(Webhook { url, headers: out })
    }
}

/// The `alerts` section: an object keyed by rule name.
pub(super) fn parse_alerts(
    v: &Value,
    env: &dyn Env,
    errors: &mut Vec<ConfigError>,
) -> AlertsConfig {
    let Value::Object(rules) = v else {
        errors.push(ConfigError::InvalidValue {
            service: TOP_LEVEL.into(),
            field: "alerts".into(),
            expected: "an object keyed by rule name".into(),
            found: describe(v),
        });
        return AlertsConfig::default();
    };
    let mut out = Vec::new();
    for (name, rule) in rules {
        let Value::Object(obj) = rule else {
            errors.push(ConfigError::InvalidValue {
                service: TOP_LEVEL.into(),
                field: format!("alerts.{name}"),
                expected: "an object with a trigger and a command and/or webhook".into(),
                found: describe(rule),
            });
            continue;
        };
        let before = errors.len();
        let mut r = Rule {
            name,
            obj,
            env,
            errors,
        };
        for k in obj.keys() {
            if !KNOWN.contains(&k.as_str()) {
                let hint = suggest(k, KNOWN.iter().copied(), 1);
                let expected = match hint.first() {
                    Some(h) => format!("a known key (did you mean '{h}'?)"),
                    None => format!("one of: {}", KNOWN.join(", ")),
                };
                r.invalid(k, &expected, &Value::String(format!("unknown key '{k}'")));
            }
        }
        let trigger = r.trigger();
        let services = match obj.get("services") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) if a.iter().all(Value::is_string) => a
                .iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect(),
            Some(other) => {
                r.invalid("services", "a list of service names or patterns", other);
                Vec::new()
            }
        };
        let command = r.command();
        let webhook = r.webhook();
        if command.is_none() && webhook.is_none() && r.errors.len() == before {
            r.errors.push(ConfigError::InvalidValue {
                service: TOP_LEVEL.into(),
                field: format!("alerts.{name}"),
                expected: "an action: \"command\" and/or \"webhook\"".into(),
                found: "none".into(),
            });
        }
        let every = r.duration("every", d::ALERT_EVERY);
        let timeout = r.duration("timeout", d::ALERT_TIMEOUT);
        let recovery = match obj.get("recovery") {
            None | Some(Value::Null) => true,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                r.invalid("recovery", "true or false", other);
                true
            }
        };
        let retries = match obj.get("retries") {
            None | Some(Value::Null) => d::ALERT_RETRIES,
            Some(v) => match v.as_u64().and_then(|n| u32::try_from(n).ok()) {
                Some(n) if n <= 20 => n,
                _ => {
                    r.invalid("retries", "a whole number from 0 to 20", v);
                    d::ALERT_RETRIES
                }
            },
        };
        if errors.len() > before {
            continue;
        }
        if let Some(trigger) = trigger {
            out.push(AlertRule {
                name: name.clone(),
                trigger,
                services,
                command,
                webhook,
                every,
                recovery,
                retries,
                timeout,
            });
        }
    }
    AlertsConfig { rules: out }
}
