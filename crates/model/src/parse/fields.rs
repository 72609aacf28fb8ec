//! Typed readers for the fields of one service object and its sections, each error naming
//! the service and the field.

use super::*;

/// Reads typed fields of one service object, collecting errors.
pub(super) struct Fields<'a> {
    pub(super) service: &'a str,
    pub(super) obj: &'a Map<String, Value>,
    pub(super) errors: &'a mut Vec<ConfigError>,
    pub(super) env: &'a dyn Env,
}

impl Fields<'_> {
    pub(super) fn invalid(&mut self, field: &str, expected: &str, found: &Value) {
        self.errors.push(ConfigError::InvalidValue {
            service: self.service.to_owned(),
            field: field.to_owned(),
            expected: expected.to_owned(),
            found: describe(found),
        });
    }

    pub(super) fn expand(&mut self, field: &str, s: &str) -> Option<String> {
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
            Err(ExpandError::File(why)) => {
                self.errors.push(ConfigError::InvalidValue {
                    service: self.service.to_owned(),
                    field: field.to_owned(),
                    expected: "a ${file:PATH} only its owner may read".into(),
                    found: why,
                });
                None
            }
        }
    }

    pub(super) fn string(&mut self, key: &str) -> Option<String> {
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

    pub(super) fn expanded_string(&mut self, key: &str) -> Option<String> {
        let s = self.string(key)?;
        self.expand(key, &s)
    }

    pub(super) fn expanded_list(&mut self, key: &str) -> Vec<String> {
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

    pub(super) fn expanded_map(&mut self, key: &str) -> BTreeMap<String, String> {
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

    pub(super) fn bool(&mut self, key: &str, default: bool) -> bool {
        match self.obj.get(key).cloned() {
            None | Some(Value::Null) => default,
            Some(Value::Bool(b)) => b,
            Some(other) => {
                self.invalid(key, "true or false", &other);
                default
            }
        }
    }

    /// `idle_stop`: a duration greater than zero, or `"never"` / absent (no idle stop).
    pub(super) fn idle_stop(&mut self) -> Option<Duration> {
        let expected = "a duration such as \"10m\", or \"never\"";
        match self.obj.get("idle_stop").cloned() {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.trim() == "never" => None,
            Some(Value::String(s)) => match humantime::parse_duration(s.trim()) {
                Ok(d) if !d.is_zero() => Some(d),
                Ok(_) => {
                    self.errors.push(ConfigError::InvalidDuration {
                        service: self.service.to_owned(),
                        field: "idle_stop".into(),
                        value: s,
                        reason: "must be greater than zero (\"never\" turns idle stop off)".into(),
                    });
                    None
                }
                Err(e) => {
                    self.errors.push(ConfigError::InvalidDuration {
                        service: self.service.to_owned(),
                        field: "idle_stop".into(),
                        value: s,
                        reason: e.to_string(),
                    });
                    None
                }
            },
            Some(other) => {
                self.invalid("idle_stop", expected, &other);
                None
            }
        }
    }
}

/// Reads a known section (`health`, ...) rejecting unknown keys, which are almost always typos.
pub(super) struct Section<'a, 'b> {
    pub(super) f: &'b mut Fields<'a>,
    pub(super) name: &'static str,
    pub(super) obj: Map<String, Value>,
}

impl<'a, 'b> Section<'a, 'b> {
    pub(super) fn open(f: &'b mut Fields<'a>, name: &'static str, known: &[&str]) -> Self {
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

    pub(super) fn field(&self, key: &str) -> String {
        format!("{}.{key}", self.name)
    }

    pub(super) fn duration(&mut self, key: &str, default: Duration, allow_zero: bool) -> Duration {
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

    pub(super) fn bool(&mut self, key: &str, default: bool) -> bool {
        let field = self.field(key);
        match self.obj.get(key).cloned() {
            None | Some(Value::Null) => default,
            Some(Value::Bool(b)) => b,
            Some(other) => {
                self.f.invalid(&field, "true or false", &other);
                default
            }
        }
    }

    pub(super) fn count(&mut self, key: &str, default: u32, min: u32) -> u32 {
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

    pub(super) fn float(&mut self, key: &str, default: f64, lo: f64, hi: f64) -> f64 {
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

pub(super) fn parse_transport(s: &str) -> Option<TransportKind> {
    match s.to_ascii_lowercase().as_str() {
        "stdio" => Some(TransportKind::Stdio),
        "streamable-http" | "streamable_http" | "streamablehttp" | "http" => {
            Some(TransportKind::StreamableHttp)
        }
        "sse" => Some(TransportKind::Sse),
        _ => None,
    }
}
