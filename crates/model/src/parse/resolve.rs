//! One service object (with `defaults` merged in) → a resolved `ServiceSpec`, every rule of
//! DESIGN §3; and the `supervisor` section.

use super::*;

/// Keys of a service object that `defaults` may not supply.
pub(super) const NOT_DEFAULTABLE: &[&str] = &[
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
pub(super) const MERGED_SECTIONS: &[&str] =
    &["health", "backoff", "timeouts", "env", "headers", "sandbox"];

pub(super) fn merge_defaults(
    raw: &Map<String, Value>,
    defaults: &Map<String, Value>,
) -> Map<String, Value> {
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

pub(super) fn resolve_one(
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
            let mut envs = env_file(&mut f);
            // The service's own `env` wins over its `env_file`.
            envs.extend(f.expanded_map("env"));
            let inherit = match f.obj.get("env_inherit").cloned() {
                None | Some(Value::Null) => EnvInherit::Default,
                Some(Value::String(s)) if s == "all" => EnvInherit::All,
                Some(Value::Array(names))
                    if names.iter().all(|n| {
                        n.as_str()
                            .is_some_and(|n| !n.is_empty() && !n.contains('=') && !n.contains('\0'))
                    }) =>
                {
                    EnvInherit::Also(
                        names
                            .iter()
                            .filter_map(|n| n.as_str().map(str::to_owned))
                            .collect(),
                    )
                }
                Some(other) => {
                    f.invalid(
                        "env_inherit",
                        "\"all\", or a list of variable names to inherit beside the default set",
                        &other,
                    );
                    EnvInherit::Default
                }
            };
            let cwd = f.expanded_string("cwd").map(PathBuf::from);
            let sandbox = Box::new(super::sandbox::sandbox(&mut f));
            match command {
                Some(c) if c.trim().is_empty() => {
                    f.invalid("command", "a program name or path", &Value::String(c));
                    None
                }
                Some(command) => Some(Endpoint::Stdio {
                    command,
                    args,
                    env: envs,
                    inherit,
                    sandbox,
                    cwd,
                }),
                None => None,
            }
        }
        (false, true) => {
            // A sandbox in `defaults` is for the local servers; one a remote server sets
            // itself would be silently nothing.
            if !matches!(raw.get("sandbox"), None | Some(Value::Null)) {
                f.errors.push(ConfigError::InvalidValue {
                    service: shown.to_owned(),
                    field: "sandbox".into(),
                    expected: "no sandbox: it applies to a local server ('command'); a remote \
                               server runs elsewhere"
                        .into(),
                    found: "a sandbox on a server with a 'url'".into(),
                });
            }
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
    let start = match f.string("start").as_deref() {
        None | Some("eager") => StartMode::Eager,
        Some("lazy") => StartMode::Lazy,
        Some(other) => {
            f.invalid(
                "start",
                "\"eager\" or \"lazy\"",
                &Value::String(other.to_owned()),
            );
            StartMode::Eager
        }
    };
    let idle_stop = f.idle_stop();
    let log_level = match f.string("log_level") {
        Some(l) if LOG_LEVELS.contains(&l.as_str()) => Some(l),
        Some(other) => {
            f.invalid("log_level", &LOG_LEVELS.join(", "), &Value::String(other));
            None
        }
        None => None,
    };
    let oauth = match f.obj.get("oauth").cloned() {
        None | Some(Value::Null) => None,
        Some(Value::Object(o)) => {
            let s = Section::open(
                &mut f,
                "oauth",
                &[
                    "grant",
                    "client_id",
                    "client_secret",
                    "scopes",
                    "client_metadata_url",
                    "private_key",
                    "signing_algorithm",
                ],
            );
            let grant = match s.obj.get("grant").cloned() {
                None | Some(Value::Null) => OAuthGrant::AuthorizationCode,
                Some(Value::String(g)) if g == "authorization_code" => {
                    OAuthGrant::AuthorizationCode
                }
                Some(Value::String(g)) if g == "client_credentials" => {
                    OAuthGrant::ClientCredentials
                }
                Some(other) => {
                    s.f.invalid(
                        "oauth.grant",
                        "\"authorization_code\" or \"client_credentials\"",
                        &other,
                    );
                    OAuthGrant::AuthorizationCode
                }
            };
            let mut text = |key: &str| -> Option<String> {
                match o.get(key) {
                    None | Some(Value::Null) => None,
                    Some(Value::String(v)) => s.f.expand(&format!("oauth.{key}"), v),
                    Some(other) => {
                        s.f.invalid(&format!("oauth.{key}"), "a string", other);
                        None
                    }
                }
            };
            let client_id = text("client_id");
            let client_secret = text("client_secret");
            let client_metadata_url = text("client_metadata_url");
            let private_key = text("private_key");
            let signing_algorithm = text("signing_algorithm");
            let scopes = match o.get("scopes") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(a)) if a.iter().all(Value::is_string) => a
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect(),
                Some(other) => {
                    s.f.invalid("oauth.scopes", "a list of scope names", other);
                    Vec::new()
                }
            };
            if grant == OAuthGrant::ClientCredentials
                && (client_id.is_none() || (client_secret.is_none() && private_key.is_none()))
            {
                s.f.invalid(
                    "oauth",
                    "client_id and client_secret (or private_key) for the client_credentials grant",
                    &Value::Object(o.clone()),
                );
            }
            if let Some(u) = &client_metadata_url {
                let ok =
                    url::Url::parse(u).is_ok_and(|p| p.scheme() == "https" && p.path().len() > 1);
                if !ok {
                    s.f.invalid(
                        "oauth.client_metadata_url",
                        "an https URL with a path (the client's metadata document)",
                        &Value::String(u.clone()),
                    );
                }
            }
            if let Some(a) = &signing_algorithm {
                if !SIGNING_ALGORITHMS.contains(&a.as_str()) {
                    s.f.invalid(
                        "oauth.signing_algorithm",
                        &SIGNING_ALGORITHMS.join(", "),
                        &Value::String(a.clone()),
                    );
                }
            }
            if private_key.is_some() && grant != OAuthGrant::ClientCredentials {
                s.f.invalid(
                    "oauth.private_key",
                    "used with \"grant\": \"client_credentials\"",
                    &Value::Object(o.clone()),
                );
            }
            Some(OAuthConfig {
                grant,
                client_id,
                client_secret,
                scopes,
                client_metadata_url,
                private_key,
                signing_algorithm,
            })
        }
        Some(other) => {
            f.invalid("oauth", "an object", &other);
            None
        }
    };
    let roots = f.expanded_list("roots");
    for (i, r) in roots.iter().enumerate() {
        if !r.contains("://") {
            f.invalid(
                &format!("roots[{i}]"),
                "a URI such as \"file:///home/me/project\"",
                &Value::String(r.clone()),
            );
        }
    }

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
            start,
            idle_stop,
            log_level,
            roots,
            oauth,
            health,
            backoff,
            timeouts,
            intensity: supervisor.intensity,
        },
    })
}

pub(super) fn push_dependency(
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

/// Reads the top-level section `name` (value `v`) with the section helpers; errors name it.
fn top_section<R>(
    name: &'static str,
    v: &Value,
    errors: &mut Vec<ConfigError>,
    known: &[&str],
    read: impl FnOnce(&mut Section<'_, '_>) -> R,
) -> R {
    let obj = Map::from_iter([(name.to_owned(), v.clone())]);
    let env = crate::env::MapEnv::default();
    let mut f = Fields {
        service: TOP_LEVEL,
        obj: &obj,
        errors,
        env: &env,
    };
    read(&mut Section::open(&mut f, name, known))
}

pub(super) fn parse_supervisor(v: &Value, errors: &mut Vec<ConfigError>) -> SupervisorConfig {
    let known = ["max_restarts", "within", "tool_separator"];
    top_section("supervisor", v, errors, &known, |s| {
        let dflt = SupervisorConfig::default();
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
    })
}

/// The `gateway` section: `hold`, `startup_wait`, `down_tools`, `client_prefix`, `unprefixed`,
/// `endpoints`, `idle_exit`.
pub(super) fn parse_gateway(v: &Value, errors: &mut Vec<ConfigError>) -> GatewayConfig {
    let known = [
        "hold",
        "startup_wait",
        "down_tools",
        "client_prefix",
        "unprefixed",
        "endpoints",
        "idle_exit",
    ];
    top_section("gateway", v, errors, &known, |s| {
        let dflt = GatewayConfig::default();
        let hold = s.duration("hold", dflt.hold, true);
        let startup_wait = s.duration("startup_wait", dflt.startup_wait, true);
        let down_tools = match s.obj.get("down_tools").cloned() {
            None | Some(Value::Null) => dflt.down_tools,
            Some(Value::String(t)) if t == "hide" => DownTools::Hide,
            Some(Value::String(t)) if t == "keep" => DownTools::Keep,
            Some(other) => {
                s.f.invalid("gateway.down_tools", "\"hide\" or \"keep\"", &other);
                dflt.down_tools
            }
        };
        let client_prefix = s.count("client_prefix", dflt.client_prefix, 0);
        if client_prefix > 40 {
            s.f.invalid(
                "gateway.client_prefix",
                "at most 40 (names need room within 64 characters)",
                &Value::from(client_prefix),
            );
        }
        let unprefixed = s.bool("unprefixed", dflt.unprefixed);
        let idle_exit = match s.obj.get("idle_exit").cloned() {
            None | Some(Value::Null) => None,
            Some(Value::String(t)) if t.trim() == "never" => None,
            Some(v) => match v.as_str().map(|t| humantime::parse_duration(t.trim())) {
                Some(Ok(d)) if !d.is_zero() => Some(d),
                _ => {
                    s.f.invalid(
                        "gateway.idle_exit",
                        "a duration greater than zero such as \"30m\", or \"never\"",
                        &v,
                    );
                    None
                }
            },
        };
        let mut endpoints = BTreeMap::new();
        match s.obj.get("endpoints").cloned() {
            None | Some(Value::Null) => {}
            Some(Value::Object(m)) => {
                for (id, filter) in m {
                    let field = format!("gateway.endpoints.{id}");
                    let Value::Object(filter) = filter else {
                        s.f.invalid(&field, "an object with \"allow\" and/or \"deny\"", &filter);
                        continue;
                    };
                    let mut list = |key: &str| -> Vec<String> {
                        match filter.get(key) {
                            None | Some(Value::Null) => Vec::new(),
                            Some(Value::Array(items)) if items.iter().all(Value::is_string) => {
                                items
                                    .iter()
                                    .filter_map(|i| i.as_str().map(str::to_owned))
                                    .collect()
                            }
                            Some(other) => {
                                s.f.invalid(
                                    &format!("{field}.{key}"),
                                    "a list of tool names or patterns (\"files__*\")",
                                    other,
                                );
                                Vec::new()
                            }
                        }
                    };
                    let allow = list("allow");
                    let deny = list("deny");
                    let pinned = list("pinned");
                    let mode = match filter.get("tools") {
                        None | Some(Value::Null) => ToolsMode::All,
                        Some(Value::String(m)) if m == "all" => ToolsMode::All,
                        Some(Value::String(m)) if m == "search" => ToolsMode::Search,
                        Some(Value::String(m)) if m == "dynamic" => ToolsMode::Dynamic,
                        Some(other) => {
                            s.f.invalid(
                                &format!("{field}.tools"),
                                "\"all\" (every tool listed), \"search\" (found by search_tools) or \"dynamic\" (found ones added to the list)",
                                other,
                            );
                            ToolsMode::All
                        }
                    };
                    let max_tools = match filter.get("max_tools") {
                        None | Some(Value::Null) => None,
                        Some(Value::Number(n)) if n.as_u64().is_some_and(|n| n >= 1) => {
                            n.as_u64().and_then(|n| usize::try_from(n).ok())
                        }
                        Some(other) => {
                            s.f.invalid(
                                &format!("{field}.max_tools"),
                                "a whole number of at least 1",
                                other,
                            );
                            None
                        }
                    };
                    for k in filter.keys() {
                        if !["allow", "deny", "tools", "pinned", "max_tools"].contains(&k.as_str())
                        {
                            s.f.invalid(
                                &format!("{field}.{k}"),
                                "\"allow\", \"deny\", \"tools\", \"pinned\" or \"max_tools\"",
                                &Value::String(format!("unknown key '{k}'")),
                            );
                        }
                    }
                    endpoints.insert(
                        id,
                        ToolFilter {
                            allow,
                            deny,
                            mode,
                            pinned,
                            max_tools,
                        },
                    );
                }
            }
            Some(other) => s.f.invalid(
                "gateway.endpoints",
                "an object keyed by \"default\" or an agent id",
                &other,
            ),
        }
        GatewayConfig {
            hold,
            startup_wait,
            down_tools,
            client_prefix,
            unprefixed,
            endpoints,
            idle_exit,
        }
    })
}

/// `env_file`: `NAME=value` lines (blank lines and `#` comments skipped, `export ` and one
/// pair of quotes around a value allowed) from a file only its owner may read.
fn env_file(f: &mut Fields<'_>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Some(path) = f.expanded_string("env_file") else {
        return out;
    };
    let text = match f.env.secret_file(&path) {
        Ok(t) => t,
        Err(why) => {
            f.errors.push(ConfigError::InvalidValue {
                service: f.service.to_owned(),
                field: "env_file".into(),
                expected: "a file of NAME=value lines only its owner may read".into(),
                found: why,
            });
            return out;
        }
    };
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let parsed = line.split_once('=').and_then(|(k, v)| {
            let k = k.trim();
            let valid = !k.is_empty()
                && !k.starts_with(|c: char| c.is_ascii_digit())
                && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            let v = v.trim();
            let v = ['"', '\'']
                .iter()
                .find_map(|q| v.strip_prefix(*q).and_then(|v| v.strip_suffix(*q)))
                .unwrap_or(v);
            valid.then(|| (k.to_owned(), v.to_owned()))
        });
        match parsed {
            Some((k, v)) => {
                out.insert(k, v);
            }
            None => f.errors.push(ConfigError::InvalidValue {
                service: f.service.to_owned(),
                field: "env_file".into(),
                expected: "NAME=value lines".into(),
                // The line may hold a secret: only where it is.
                found: format!("line {} of '{path}' is not NAME=value", i + 1),
            }),
        }
    }
    out
}
