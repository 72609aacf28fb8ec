//! The configuration contract of DESIGN §3: every input form, every rule, every error.

use std::path::PathBuf;
use std::time::Duration;

use mcpvisor_model::env::MapEnv;
use mcpvisor_model::*;
use serde_json::json;

fn env() -> MapEnv {
    MapEnv::from_pairs([("TOKEN", "s3cret"), ("HOST", "127.0.0.1"), ("DIR", "/srv")])
}

fn ok(text: &str) -> ServicesConfig {
    parse_str(text, &env()).unwrap_or_else(|e| panic!("unexpected errors: {e}"))
}

fn errs(v: serde_json::Value) -> Vec<ConfigError> {
    parse_value(v, &env()).expect_err("expected an error").0
}

fn one_err(v: serde_json::Value) -> ConfigError {
    let e = errs(v);
    assert_eq!(e.len(), 1, "expected exactly one error, got {e:?}");
    e.into_iter().next().unwrap()
}

fn names(cfg: &ServicesConfig) -> Vec<String> {
    cfg.services.keys().map(|k| k.to_string()).collect()
}

// ---- input forms ----------------------------------------------------------------------------

#[test]
fn mcp_servers_form() {
    let c =
        ok(r#"{"mcpServers": {"a": {"command": "x"}, "b": {"url": "http://127.0.0.1:1/mcp"}}}"#);
    assert_eq!(names(&c), ["a", "b"]);
    assert_eq!(c.services_key, "mcpServers");
}

#[test]
fn vscode_servers_form_keeps_its_key() {
    let c = ok(r#"{"servers": {"a": {"type": "stdio", "command": "x"}}}"#);
    assert_eq!(names(&c), ["a"]);
    assert_eq!(
        c.to_json(),
        json!({"servers": {"a": {"type": "stdio", "command": "x"}}})
    );
}

#[test]
fn single_service_with_name() {
    let c = ok(r#"{"name": "solo", "command": "x", "args": ["1"]}"#);
    assert_eq!(names(&c), ["solo"]);
    assert_eq!(
        c.services["solo"].raw,
        json!({"command": "x", "args": ["1"]})
            .as_object()
            .unwrap()
            .clone()
    );
}

#[test]
fn map_keyed_by_name() {
    let c = ok(r#"{"a": {"command": "x"}, "b": {"url": "https://example.com/mcp"}}"#);
    assert_eq!(names(&c), ["a", "b"]);
}

#[test]
fn list_of_services() {
    let c = ok(r#"[{"name": "a", "command": "x"}, {"name": "b", "command": "y"}]"#);
    assert_eq!(names(&c), ["a", "b"]);
}

#[test]
fn json_string_holding_a_config() {
    let inner = r#"{"mcpServers": {"a": {"command": "x"}}}"#;
    let c = parse_value(json!(inner), &env()).unwrap();
    assert_eq!(names(&c), ["a"]);
}

#[test]
fn file_path_and_inline_text_through_parse_input() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("mcp.json");
    std::fs::write(&p, r#"{"mcpServers": {"f": {"command": "x"}}}"#).unwrap();
    assert_eq!(
        names(&parse_input(p.to_str().unwrap(), &env()).unwrap()),
        ["f"]
    );
    assert_eq!(
        names(&parse_input(r#" [{"name":"t","command":"x"}]"#, &env()).unwrap()),
        ["t"]
    );
    let missing = parse_input("/nonexistent/mcp.json", &env()).unwrap_err();
    assert!(
        matches!(missing.first(), Some(ConfigError::Io { path, .. }) if path == "/nonexistent/mcp.json")
    );
}

#[test]
fn empty_documents_are_empty_configs() {
    assert!(ok("{}").services.is_empty());
    assert!(ok(r#"{"mcpServers": {}}"#).services.is_empty());
    assert!(ok("[]").services.is_empty());
}

#[test]
fn unrecognised_shape_is_an_error() {
    assert!(matches!(one_err(json!(42)), ConfigError::Shape { .. }));
    assert!(
        matches!(one_err(json!({"foo": {"bar": 1}})), ConfigError::Shape { message } if message.contains("'foo'"))
    );
    assert!(
        matches!(one_err(json!({"mcpServers": []})), ConfigError::InvalidValue { field, .. } if field == "mcpServers")
    );
}

#[test]
fn syntax_error_gives_line_and_column() {
    let e = parse_str(
        "{\n  \"mcpServers\": {\n    \"a\": {\"command\": \"x\",}\n  }\n}",
        &env(),
    )
    .unwrap_err();
    match e.first().unwrap() {
        ConfigError::Syntax { line, column, .. } => {
            assert_eq!(*line, 3);
            assert!(*column > 20, "column {column}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn list_entry_without_name_names_its_position() {
    let e = one_err(json!([{"command": "x"}]));
    assert!(
        matches!(e, ConfigError::InvalidValue { service, field, .. } if service == "[0]" && field == "name")
    );
}

// ---- names ----------------------------------------------------------------------------------

#[test]
fn invalid_names_are_rejected_with_the_rule() {
    for (name, needle) in [
        ("a.b", "'.'"),
        ("a__b", "'__'"),
        ("", "empty"),
        (&"x".repeat(65) as &str, "65"),
    ] {
        let e = one_err(json!({"mcpServers": {name: {"command": "x"}}}));
        assert!(
            matches!(&e, ConfigError::InvalidName { service, .. } if service == name),
            "{e:?}"
        );
        assert!(e.to_string().contains(needle), "{e}");
    }
}

#[test]
fn duplicate_names_are_rejected_in_objects_and_lists() {
    let e = parse_str(
        r#"{"mcpServers": {"a": {"command": "x"}, "a": {"command": "y"}}}"#,
        &env(),
    )
    .unwrap_err();
    assert!(
        matches!(e.first(), Some(ConfigError::DuplicateName { service }) if service == "a"),
        "{e}"
    );
    let e = one_err(json!([{"name": "a", "command": "x"}, {"name": "a", "command": "y"}]));
    assert!(matches!(e, ConfigError::DuplicateName { service } if service == "a"));
}

#[test]
fn duplicate_keys_inside_a_service_are_rejected() {
    let e = parse_str(
        r#"{"mcpServers": {"a": {"command": "x", "command": "y"}}}"#,
        &env(),
    )
    .unwrap_err();
    assert!(
        matches!(e.first(), Some(ConfigError::InvalidValue { service, field, .. }) if service == "a" && field == "command"),
        "{e}"
    );
}

// ---- command / url / transport --------------------------------------------------------------

#[test]
fn command_and_url_together_conflict() {
    let e = one_err(json!({"mcpServers": {"a": {"command": "x", "url": "http://127.0.0.1/mcp"}}}));
    assert_eq!(
        e,
        ConfigError::CommandAndUrl {
            service: "a".into()
        }
    );
}

#[test]
fn neither_command_nor_url_is_missing() {
    let e = one_err(json!({"mcpServers": {"a": {"args": ["x"]}}}));
    assert_eq!(
        e,
        ConfigError::MissingCommandOrUrl {
            service: "a".into()
        }
    );
}

#[test]
fn transport_is_inferred_from_command_and_url() {
    let c = parse_value(
        json!({"mcpServers": {
            "s": {"command": "x"},
            "h": {"url": "http://127.0.0.1:3001/mcp"},
            "e": {"url": "http://127.0.0.1:3001/sse"},
            "e2": {"url": "http://127.0.0.1:3001/sse/"}
        }}),
        &env(),
    )
    .unwrap();
    let t = |n: &str| c.services[n].config.transport();
    assert_eq!(t("s"), TransportKind::Stdio);
    assert_eq!(t("h"), TransportKind::StreamableHttp);
    assert_eq!(t("e"), TransportKind::Sse);
    assert_eq!(t("e2"), TransportKind::Sse);
}

#[test]
fn explicit_transport_and_type_alias_are_honoured() {
    let c = parse_value(
        json!({"mcpServers": {
            "a": {"url": "http://127.0.0.1/events", "transport": "sse"},
            "b": {"url": "http://127.0.0.1/sse", "type": "http"},
            "c": {"url": "http://127.0.0.1/x", "type": "streamableHttp"},
            "d": {"command": "x", "transport": "stdio", "type": "stdio"}
        }}),
        &env(),
    )
    .unwrap();
    assert_eq!(c.services["a"].config.transport(), TransportKind::Sse);
    assert_eq!(
        c.services["b"].config.transport(),
        TransportKind::StreamableHttp
    );
    assert_eq!(
        c.services["c"].config.transport(),
        TransportKind::StreamableHttp
    );
    assert_eq!(c.services["d"].config.transport(), TransportKind::Stdio);
}

#[test]
fn transport_that_disagrees_with_the_kind_is_rejected() {
    let e = one_err(json!({"mcpServers": {"a": {"command": "x", "transport": "sse"}}}));
    assert!(
        matches!(&e, ConfigError::TransportMismatch { service, field, kind, .. } if service == "a" && field == "transport" && kind == "command"),
        "{e:?}"
    );
    let e = one_err(json!({"mcpServers": {"a": {"url": "http://127.0.0.1/mcp", "type": "stdio"}}}));
    assert!(
        matches!(&e, ConfigError::TransportMismatch { field, kind, .. } if field == "type" && kind == "url"),
        "{e:?}"
    );
}

#[test]
fn unknown_transport_is_rejected() {
    let e = one_err(json!({"mcpServers": {"a": {"command": "x", "transport": "pigeon"}}}));
    assert!(matches!(e, ConfigError::UnknownTransport { value, .. } if value == "pigeon"));
}

#[test]
fn transport_and_type_that_disagree_are_rejected() {
    let e = one_err(
        json!({"mcpServers": {"a": {"url": "http://127.0.0.1/x", "transport": "sse", "type": "http"}}}),
    );
    assert!(matches!(e, ConfigError::InvalidValue { field, .. } if field == "type"));
}

#[test]
fn bad_urls_are_rejected() {
    for u in ["not a url", "ftp://127.0.0.1/x", "file:///tmp/x"] {
        let e = one_err(json!({"mcpServers": {"a": {"url": u}}}));
        assert!(
            matches!(&e, ConfigError::InvalidUrl { service, field, .. } if service == "a" && field == "url"),
            "{u}: {e:?}"
        );
    }
}

#[test]
fn wrong_types_name_the_field() {
    let cases = [
        (json!({"command": 5}), "command"),
        (json!({"command": "x", "args": "y"}), "args"),
        (json!({"command": "x", "args": ["y", 3]}), "args[1]"),
        (json!({"command": "x", "env": {"A": ["b"]}}), "env.A"),
        (json!({"command": "x", "disabled": "yes"}), "disabled"),
        (json!({"command": "x", "restart": "always"}), "restart"),
        (json!({"command": ""}), "command"),
        (
            json!({"command": "x", "health": {"warn_after": 0}}),
            "health.warn_after",
        ),
        (
            json!({"command": "x", "health": {"reconnect_after": -1}}),
            "health.reconnect_after",
        ),
        (
            json!({"command": "x", "backoff": {"factor": 0.5}}),
            "backoff.factor",
        ),
        (
            json!({"command": "x", "backoff": {"jitter": 2}}),
            "backoff.jitter",
        ),
        (
            json!({"command": "x", "backoff": {"max_attempts": 0}}),
            "backoff.max_attempts",
        ),
        (
            json!({"command": "x", "backoff": {"initial": "1m", "max": "1s"}}),
            "backoff.initial",
        ),
        (
            json!({"command": "x", "health": {"intervall": "1s"}}),
            "health.intervall",
        ),
        (
            json!({"command": "x", "timeouts": {"call": 5}}),
            "timeouts.call",
        ),
    ];
    for (svc, field) in cases {
        let e = errs(json!({"mcpServers": {"s": svc}}));
        assert!(
            e.iter()
                .any(|e| e.service() == Some("s") && e.field() == Some(field)),
            "{field}: {e:?}"
        );
    }
}

#[test]
fn typo_in_a_known_section_gets_a_suggestion() {
    let e = one_err(json!({"mcpServers": {"s": {"command": "x", "health": {"intervall": "1s"}}}}));
    assert!(e.to_string().contains("did you mean 'interval'"), "{e}");
}

// ---- durations and numbers ------------------------------------------------------------------

#[test]
fn durations_parse_as_humantime() {
    let c = parse_value(
        json!({"mcpServers": {"a": {"command": "x",
            "health": {"interval": "1m 30s", "timeout": "250ms", "warn_after": 2, "reconnect_after": 4},
            "backoff": {"initial": "0s", "max": "2m", "factor": 1.5, "jitter": 0, "max_attempts": 3,
                        "unreachable_retry": "1h", "reset_after": "10s"},
            "timeouts": {"connect": "5s", "call": "2s", "shutdown": "0s"}}}}),
        &env(),
    )
    .unwrap();
    let s = &c.services["a"].config;
    assert_eq!(s.health.interval, Duration::from_secs(90));
    assert_eq!(s.health.timeout, Duration::from_millis(250));
    assert_eq!((s.health.warn_after, s.health.reconnect_after), (2, 4));
    assert_eq!(s.backoff.initial, Duration::ZERO);
    assert_eq!(s.backoff.max, Duration::from_secs(120));
    assert_eq!(s.backoff.factor, 1.5);
    assert_eq!(s.backoff.unreachable_retry, Duration::from_secs(3600));
    assert_eq!(s.timeouts.shutdown, Duration::ZERO);
}

#[test]
fn bad_durations_name_service_and_field() {
    let e = one_err(
        json!({"mcpServers": {"a": {"command": "x", "health": {"interval": "10 parsecs"}}}}),
    );
    assert!(
        matches!(&e, ConfigError::InvalidDuration { service, field, value, .. }
        if service == "a" && field == "health.interval" && value == "10 parsecs"),
        "{e:?}"
    );
    let e = one_err(json!({"mcpServers": {"a": {"command": "x", "health": {"interval": "0s"}}}}));
    assert!(
        matches!(&e, ConfigError::InvalidDuration { reason, .. } if reason.contains("greater than zero"))
    );
}

#[test]
fn defaults_apply_when_nothing_is_written() {
    let c = ok(r#"{"mcpServers": {"a": {"command": "x"}}}"#);
    let s = &c.services["a"].config;
    assert_eq!(s.health, HealthConfig::default());
    assert_eq!(s.backoff, BackoffConfig::default());
    assert_eq!(s.timeouts, TimeoutConfig::default());
    assert_eq!(s.restart, RestartPolicy::Permanent);
    assert!(!s.disabled);
    assert_eq!(s.health.interval, defaults::HEALTH_INTERVAL);
    assert_eq!(s.intensity.max_restarts, defaults::SUPERVISOR_MAX_RESTARTS);
}

#[test]
fn top_level_defaults_merge_into_every_service_and_services_win() {
    let c = parse_value(
        json!({
            "defaults": {"health": {"interval": "2s"}, "restart": "transient", "env": {"A": "1", "B": "2"}},
            "mcpServers": {
                "a": {"command": "x"},
                "b": {"command": "x", "restart": "temporary", "health": {"timeout": "1s"}, "env": {"B": "own"}}
            }
        }),
        &env(),
    )
    .unwrap();
    let a = &c.services["a"].config;
    let b = &c.services["b"].config;
    assert_eq!(a.health.interval, Duration::from_secs(2));
    assert_eq!(a.restart, RestartPolicy::Transient);
    assert_eq!(b.restart, RestartPolicy::Temporary);
    assert_eq!(b.health.interval, Duration::from_secs(2));
    assert_eq!(b.health.timeout, Duration::from_secs(1));
    let Endpoint::Stdio { env, .. } = &b.endpoint else {
        panic!()
    };
    assert_eq!(env.get("A").map(String::as_str), Some("1"));
    assert_eq!(env.get("B").map(String::as_str), Some("own"));
    // Defaults are not written into the services' own objects.
    assert!(c.services["a"].raw.get("restart").is_none());
}

#[test]
fn env_inherit_is_the_default_set_all_or_more_names_and_checked() {
    let c = ok(r#"{"defaults": {"env_inherit": ["AWS_PROFILE"]},
                  "mcpServers": {"d": {"command": "x"}, "a": {"command": "x", "env_inherit": "all"},
                                 "n": {"command": "x", "env_inherit": null}}}"#);
    let inherit = |n: &str| match &c.services[n].config.endpoint {
        Endpoint::Stdio { inherit, .. } => inherit.clone(),
        e => panic!("{e:?}"),
    };
    assert_eq!(inherit("d"), EnvInherit::Also(vec!["AWS_PROFILE".into()]));
    assert_eq!(inherit("a"), EnvInherit::All);
    let d = inherit("d");
    assert!(d.admits("PATH") && d.admits("LC_ALL") && d.admits("XDG_CACHE_HOME"));
    assert!(d.admits("AWS_PROFILE"));
    assert!(!d.admits("AWS_SECRET_ACCESS_KEY"));
    let got = EnvInherit::Default.environment(
        [
            ("PATH".to_owned(), "/bin".to_owned()),
            ("GITHUB_TOKEN".to_owned(), "t".to_owned()),
        ],
        &[("OWN".to_owned(), "1".to_owned())].into_iter().collect(),
    );
    assert_eq!(got.keys().collect::<Vec<_>>(), ["OWN", "PATH"]);
    let e = one_err(json!({"mcpServers": {"a": {"command": "x", "env_inherit": "some"}}}));
    assert!(e.to_string().contains("env_inherit"), "{e}");
}

#[test]
fn sandbox_network_is_none_loopback_or_any_and_checked_field_by_field() {
    let c = ok(r#"{"defaults": {"sandbox": {"network": "none"}},
                  "mcpServers": {"d": {"command": "x"},
                                 "a": {"command": "x", "sandbox": {"network": "any"}}}}"#);
    let network = |n: &str| match &c.services[n].config.endpoint {
        Endpoint::Stdio { sandbox, .. } => sandbox.network,
        e => panic!("{e:?}"),
    };
    assert_eq!(network("d"), Network::None);
    assert_eq!(network("a"), Network::Any);
    let c = ok(r#"{"mcpServers": {"a": {"command": "x", "sandbox": {"network": "loopback"}}}}"#);
    assert!(matches!(&c.services["a"].config.endpoint,
        Endpoint::Stdio { sandbox, .. } if sandbox.network == Network::Loopback));
    let e = one_err(json!({"mcpServers": {"a": {"command": "x", "sandbox": {"network": "lan"}}}}));
    assert!(e.to_string().contains("sandbox.network"), "{e}");
    let e = one_err(json!({"mcpServers": {"a": {"command": "x", "sandbox": {"netwrok": "none"}}}}));
    assert!(e.to_string().contains("did you mean 'network'"), "{e}");
}

#[test]
fn sandbox_files_and_limits_are_read_and_checked_field_by_field() {
    let c = ok(r#"{"defaults": {"sandbox": {"memory": "512MiB"}},
                  "mcpServers": {"a": {"command": "x", "sandbox": {
                      "filesystem": {"read": ["~/docs", "/srv/${NAME:-data}"], "write": ["out"],
                                     "presets": ["node", "tmp", "node"]},
                      "memory": "1.5 GiB", "processes": 64, "cpu": 0.5, "open_files": 256,
                      "best_effort": true}},
                                 "d": {"command": "x"}}}"#);
    let sandbox = |n: &str| match &c.services[n].config.endpoint {
        Endpoint::Stdio { sandbox, .. } => (**sandbox).clone(),
        e => panic!("{e:?}"),
    };
    let a = sandbox("a");
    let fs = a.filesystem.clone().expect("a filesystem sandbox");
    assert_eq!(
        fs.read,
        vec![PathBuf::from("~/docs"), PathBuf::from("/srv/data")]
    );
    assert_eq!(fs.write, vec![PathBuf::from("out")]);
    assert_eq!(fs.presets, vec![Preset::Node, Preset::Tmp]);
    assert_eq!(a.memory, Some(3 << 29));
    assert_eq!(
        (a.processes, a.cpu_millis, a.open_files, a.best_effort),
        (Some(64), Some(500), Some(256), true)
    );
    // Defaults apply to the service that sets nothing.
    let d = sandbox("d");
    assert_eq!(d.memory, Some(512 << 20));
    assert!(d.is_set() && d.filesystem.is_none());
    // A remote server's own sandbox would be nothing: refused; one from defaults is not its.
    let e = one_err(json!({"mcpServers": {"r": {"url": "http://127.0.0.1:1/mcp",
                                               "sandbox": {"network": "none"}}}}));
    assert!(
        matches!(&e, ConfigError::InvalidValue { field, .. } if field == "sandbox"),
        "{e}"
    );
    ok(r#"{"defaults": {"sandbox": {"network": "none"}},
           "mcpServers": {"r": {"url": "http://127.0.0.1:1/mcp"}}}"#);
    // Each bad field named, nothing else.
    for (bad, field) in [
        (json!({"memory": "lots"}), "sandbox.memory"),
        (json!({"memory": 1000}), "sandbox.memory"),
        (json!({"processes": 0}), "sandbox.processes"),
        (json!({"open_files": -1}), "sandbox.open_files"),
        (json!({"cpu": "half"}), "sandbox.cpu"),
        (json!({"best_effort": "yes"}), "sandbox.best_effort"),
        (json!({"filesystem": ["/x"]}), "sandbox.filesystem"),
        (
            json!({"filesystem": {"read": "/x"}}),
            "sandbox.filesystem.read",
        ),
        (
            json!({"filesystem": {"write": [3]}}),
            "sandbox.filesystem.write[0]",
        ),
        (
            json!({"filesystem": {"presets": ["ruby"]}}),
            "sandbox.filesystem.presets[0]",
        ),
        (
            json!({"filesystem": {"reed": []}}),
            "sandbox.filesystem.reed",
        ),
    ] {
        let e = one_err(json!({"mcpServers": {"a": {"command": "x", "sandbox": bad}}}));
        assert!(
            matches!(&e, ConfigError::InvalidValue { service, field: f, .. }
                if service == "a" && f == field),
            "{field}: {e}"
        );
    }
}

#[test]
fn secrets_come_from_files_only_their_owner_may_read() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("token");
    std::fs::write(&secret, "s3cret-from-a-file\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let envs = dir.path().join("server.env");
    std::fs::write(
        &envs,
        "# the server's keys\nexport API_KEY=\"k-1\"\n\nREGION=eu\nOWN=from-file\n",
    )
    .unwrap();
    std::fs::set_permissions(&envs, std::fs::Permissions::from_mode(0o400)).unwrap();
    let c = parse_value(
        json!({"mcpServers": {"s": {"command": "x",
            "env": {"TOKEN": format!("${{file:{}}}", secret.display()), "OWN": "own"},
            "env_file": envs}}}),
        &MapEnv::default(),
    )
    .unwrap();
    let Endpoint::Stdio { env, .. } = &c.services["s"].config.endpoint else {
        panic!()
    };
    assert_eq!(env["TOKEN"], "s3cret-from-a-file");
    assert_eq!(env["API_KEY"], "k-1");
    assert_eq!(env["REGION"], "eu");
    assert_eq!(env["OWN"], "own", "env wins over env_file");
    // Readable by others: refused, naming the field and the fix, never its contents.
    for file in [&secret, &envs] {
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let errors = parse_value(
        json!({"mcpServers": {"s": {"command": "x",
            "env": {"TOKEN": format!("${{file:{}}}", secret.display())}, "env_file": envs}}}),
        &MapEnv::default(),
    )
    .unwrap_err()
    .0;
    let text: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(errors.len(), 2, "{text:?}");
    assert!(
        matches!(&errors[0], ConfigError::InvalidValue { service, field, .. }
            if service == "s" && (field == "env.TOKEN" || field == "env_file")),
        "{text:?}"
    );
    for t in &text {
        assert!(
            t.contains("chmod 600") && !t.contains("s3cret") && !t.contains("k-1"),
            "{t}"
        );
    }
    // Missing: named.
    let e = one_err(
        json!({"mcpServers": {"s": {"command": "x", "args": ["${file:/nowhere/at/all}"]}}}),
    );
    assert!(e.to_string().contains("/nowhere/at/all"), "{e}");
}

#[test]
fn supervisor_section_is_parsed_and_checked() {
    let c = ok(
        r#"{"supervisor": {"max_restarts": 2, "within": "10s", "tool_separator": "."}, "mcpServers": {"a": {"command": "x"}}}"#,
    );
    assert_eq!(c.supervisor.intensity.max_restarts, 2);
    assert_eq!(c.supervisor.intensity.within, Duration::from_secs(10));
    assert_eq!(c.supervisor.tool_separator, ".");
    assert_eq!(c.services["a"].config.intensity.max_restarts, 2);
    let e = one_err(json!({"supervisor": {"within": "soon"}, "mcpServers": {}}));
    assert!(
        matches!(e, ConfigError::InvalidDuration { field, .. } if field == "supervisor.within")
    );
}

// ---- variables ------------------------------------------------------------------------------

#[test]
fn variables_expand_in_every_listed_field() {
    let c = parse_value(
        json!({"mcpServers": {
            "s": {"command": "${DIR}/bin/srv", "args": ["--host", "${HOST}", "${PORT:-8080}"],
                  "env": {"TOKEN": "${TOKEN}"}, "cwd": "${DIR}"},
            "r": {"url": "http://${HOST}:${PORT:-3001}/mcp", "headers": {"Authorization": "Bearer ${TOKEN}"}}
        }}),
        &env(),
    )
    .unwrap();
    match &c.services["s"].config.endpoint {
        Endpoint::Stdio {
            command,
            args,
            env,
            cwd,
            ..
        } => {
            assert_eq!(command, "/srv/bin/srv");
            assert_eq!(args, &["--host", "127.0.0.1", "8080"]);
            assert_eq!(env["TOKEN"], "s3cret");
            assert_eq!(cwd.as_deref(), Some(std::path::Path::new("/srv")));
        }
        e => panic!("{e:?}"),
    }
    match &c.services["r"].config.endpoint {
        Endpoint::Remote { url, headers, .. } => {
            assert_eq!(url, "http://127.0.0.1:3001/mcp");
            assert_eq!(headers["Authorization"], "Bearer s3cret");
        }
        e => panic!("{e:?}"),
    }
    // The persisted form keeps the references, never the secrets.
    assert_eq!(c.services["s"].raw["env"]["TOKEN"], "${TOKEN}");
}

#[test]
fn unset_variable_without_default_names_variable_service_and_field() {
    let e = one_err(json!({"mcpServers": {"s": {"command": "x", "args": ["a", "${MISSING}"]}}}));
    assert_eq!(
        e,
        ConfigError::UndefinedVariable {
            service: "s".into(),
            field: "args[1]".into(),
            variable: "MISSING".into()
        }
    );
    assert!(e.to_string().contains("MISSING"));
}

#[test]
fn malformed_variable_is_rejected() {
    let e = one_err(json!({"mcpServers": {"s": {"command": "x", "env": {"A": "${OOPS"}}}}));
    assert!(matches!(e, ConfigError::BadVariableSyntax { field, .. } if field == "env.A"));
}

// ---- dependencies ---------------------------------------------------------------------------

#[test]
fn depends_on_accepts_list_and_conditions() {
    let c = parse_value(
        json!({"mcpServers": {
            "db": {"command": "x"}, "cache": {"command": "x"},
            "api": {"command": "x", "depends_on": ["db"]},
            "app": {"command": "x", "depends_on": {"api": {"condition": "started"}, "cache": {}}}
        }}),
        &env(),
    )
    .unwrap();
    let app = &c.services["app"].config.depends_on;
    assert_eq!(app[0].name.as_str(), "api");
    assert_eq!(app[0].condition, DependencyCondition::Started);
    assert_eq!(app[1].condition, DependencyCondition::Healthy);
    let levels: Vec<Vec<String>> = DependencyGraph::from_specs(c.services.values())
        .start_levels()
        .into_iter()
        .map(|l| l.into_iter().map(|n| n.to_string()).collect())
        .collect();
    assert_eq!(levels, vec![vec!["db", "cache"], vec!["api"], vec!["app"]]);
}

#[test]
fn unknown_dependency_names_both_services() {
    let e = one_err(
        json!({"mcpServers": {"api": {"command": "x", "depends_on": ["dbb"]}, "db": {"command": "x"}}}),
    );
    assert!(
        matches!(&e, ConfigError::UnknownDependency { service, dependency, .. } if service == "api" && dependency == "dbb")
    );
    assert!(e.to_string().contains("did you mean 'db'"), "{e}");
}

#[test]
fn dependency_cycle_lists_the_cycle() {
    let e = one_err(json!({"mcpServers": {
        "a": {"command": "x", "depends_on": ["b"]},
        "b": {"command": "x", "depends_on": ["c"]},
        "c": {"command": "x", "depends_on": ["a"]}
    }}));
    assert!(
        matches!(&e, ConfigError::DependencyCycle { cycle, .. } if cycle == &["a", "b", "c", "a"]),
        "{e:?}"
    );
    assert!(e.to_string().contains("a -> b -> c -> a"));
}

#[test]
fn bad_condition_is_rejected() {
    let e = one_err(
        json!({"mcpServers": {"a": {"command": "x"}, "b": {"command": "x", "depends_on": {"a": {"condition": "ready"}}}}}),
    );
    assert!(
        matches!(e, ConfigError::InvalidValue { field, .. } if field == "depends_on.a.condition")
    );
}

// ---- agents ---------------------------------------------------------------------------------

#[test]
fn agents_have_their_own_scoped_services() {
    let c = parse_value(
        json!({
            "mcpServers": {"shared": {"command": "x"}},
            "agents": {"bot": {"mcpServers": {"shared": {"command": "y"}, "mine": {"command": "z", "depends_on": ["shared"]}}}}
        }),
        &env(),
    )
    .unwrap();
    let bot = &c.agents["bot"];
    assert_eq!(
        bot.services.keys().map(|k| k.as_str()).collect::<Vec<_>>(),
        ["shared", "mine"]
    );
    let e = one_err(
        json!({"agents": {"bot": {"mcpServers": {"a": {"command": "x", "depends_on": ["ghost"]}}}}}),
    );
    assert!(matches!(e, ConfigError::UnknownDependency { service, .. } if service == "bot/a"));
    let e = one_err(json!({"agents": {"bad.id": {"mcpServers": {}}}}));
    assert!(matches!(e, ConfigError::InvalidName { .. }));
}

// ---- many errors at once and round trip -----------------------------------------------------

#[test]
fn every_error_is_reported_not_only_the_first() {
    let e = errs(json!({"mcpServers": {
        "ok": {"command": "x"},
        "bad1": {"command": "x", "url": "http://127.0.0.1/mcp"},
        "bad2": {"args": []},
        "bad3": {"command": "x", "health": {"interval": "nope"}}
    }}));
    let services: Vec<&str> = e.iter().filter_map(|e| e.service()).collect();
    assert_eq!(services, ["bad1", "bad2", "bad3"]);
}

#[test]
fn unknown_fields_and_key_order_survive_a_round_trip() {
    let text = r#"{
  "$schema": "https://example.com/schema.json",
  "mcpServers": {
    "zeta": {"command": "x", "alwaysAllow": ["t"], "description": "kept", "env": {"K": "${TOKEN}"}},
    "alpha": {"url": "http://127.0.0.1/mcp", "x-custom": {"nested": [1, 2, {"deep": true}]}}
  },
  "defaults": {"restart": "transient"},
  "anotherTool": {"setting": 1}
}"#;
    let c = ok(text);
    let out = c.to_json();
    let original: serde_json::Value = serde_json::from_str(text).unwrap();
    assert_eq!(out, original);
    let keys: Vec<&String> = out.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["$schema", "mcpServers", "defaults", "anotherTool"]);
    let svc: Vec<&String> = out["mcpServers"].as_object().unwrap().keys().collect();
    assert_eq!(svc, ["zeta", "alpha"]);
    let fields: Vec<&String> = out["mcpServers"]["zeta"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(fields, ["command", "alwaysAllow", "description", "env"]);
    // Reparsing the output gives the same config.
    assert_eq!(parse_str(&c.to_json_pretty(), &env()).unwrap(), c);
}

#[test]
fn other_forms_serialize_as_mcp_servers() {
    let c = ok(r#"[{"name": "a", "command": "x", "extra": 1}]"#);
    assert_eq!(
        c.to_json(),
        json!({"mcpServers": {"a": {"command": "x", "extra": 1}}})
    );
}

#[test]
fn redaction_hides_env_and_header_values() {
    let c = ok(
        r#"{"mcpServers": {"a": {"command": "x", "env": {"TOKEN": "${TOKEN}"}}, "b": {"url": "http://127.0.0.1/mcp", "headers": {"Authorization": "Bearer abc"}}}}"#,
    );
    assert_eq!(c.services["a"].redacted_raw()["env"]["TOKEN"], "***");
    assert_eq!(
        c.services["b"].redacted_raw()["headers"]["Authorization"],
        "***"
    );
    assert_eq!(
        c.services["b"].redacted_raw()["url"],
        "http://127.0.0.1/mcp"
    );
}

#[test]
fn resolve_service_and_split_services_serve_runtime_adds() {
    let parts = split_services(json!({"name": "t", "command": "x"})).unwrap();
    assert_eq!(parts[0].0, "t");
    let spec = resolve_service(
        "t",
        &parts[0].1,
        &Default::default(),
        &SupervisorConfig::default(),
        &env(),
    )
    .unwrap();
    assert_eq!(spec.config.transport(), TransportKind::Stdio);
    let e = resolve_service(
        "t",
        json!({"url": 3}).as_object().unwrap(),
        &Default::default(),
        &SupervisorConfig::default(),
        &env(),
    )
    .unwrap_err();
    assert!(matches!(e.first(), Some(ConfigError::InvalidValue { field, .. }) if field == "url"));
}

// ---- gateway section ------------------------------------------------------------------------

#[test]
fn gateway_section_is_resolved_with_defaults() {
    let c = ok(r#"{"mcpServers": {"a": {"command": "x"}},
                  "gateway": {"hold": "2s", "down_tools": "keep", "unprefixed": true,
                              "endpoints": {"default": {"deny": ["a__secret*"]},
                                            "bot": {"allow": ["a__*"]}}}}"#);
    let g = &c.gateway;
    assert_eq!(g.hold, Duration::from_secs(2));
    assert_eq!(g.down_tools, DownTools::Keep);
    assert!(g.unprefixed);
    assert_eq!(g.client_prefix, defaults::GATEWAY_CLIENT_PREFIX);
    assert!(g.endpoints["default"].admits("a__echo"));
    assert!(!g.endpoints["default"].admits("a__secret_keys"));
    assert!(g.endpoints["bot"].admits("a__echo"));
    assert!(!g.endpoints["bot"].admits("b__echo"));
    assert_eq!(
        ok(r#"{"mcpServers": {}}"#).gateway,
        GatewayConfig::default()
    );
    assert_eq!(g.idle_exit, None);
    let c = ok(r#"{"mcpServers": {}, "gateway": {"idle_exit": "30m"}}"#);
    assert_eq!(c.gateway.idle_exit, Some(Duration::from_secs(1800)));
    let c = ok(r#"{"mcpServers": {}, "gateway": {"idle_exit": "never"}}"#);
    assert_eq!(c.gateway.idle_exit, None);
}

#[test]
fn gateway_errors_name_the_field() {
    let e = one_err(json!({"mcpServers": {}, "gateway": {"down_tools": "maybe"}}));
    assert!(e.to_string().contains("gateway.down_tools"), "{e}");
    let e = one_err(json!({"mcpServers": {}, "gateway": {"idle_exit": "0s"}}));
    assert!(e.to_string().contains("gateway.idle_exit"), "{e}");
    let e = one_err(json!({"mcpServers": {}, "gateway": {"hodl": "1s"}}));
    assert!(e.to_string().contains("did you mean 'hold'"), "{e}");
    let e =
        one_err(json!({"mcpServers": {}, "gateway": {"endpoints": {"default": {"allow": "x"}}}}));
    assert!(
        e.to_string().contains("gateway.endpoints.default.allow"),
        "{e}"
    );
}

#[test]
fn an_endpoint_lists_all_its_tools_or_has_them_searched() {
    let c = ok(r#"{"mcpServers": {}, "gateway": {"endpoints": {
        "default": {"tools": "search", "pinned": ["files__read*"]}, "bot": {"tools": "all"}}}}"#);
    let f = &c.gateway.endpoints["default"];
    assert_eq!(f.mode, ToolsMode::Search);
    assert!(f.pins("files__read_file") && !f.pins("files__write_file"));
    assert_eq!(c.gateway.endpoints["bot"].mode, ToolsMode::All);
    let c =
        ok(r#"{"mcpServers": {}, "gateway": {"endpoints": {"default": {"tools": "dynamic"}}}}"#);
    assert_eq!(c.gateway.endpoints["default"].mode, ToolsMode::Dynamic);
    let e = one_err(
        json!({"mcpServers": {}, "gateway": {"endpoints": {"default": {"tools": "some"}}}}),
    );
    assert!(
        e.to_string().contains("gateway.endpoints.default.tools"),
        "{e}"
    );
    let e =
        one_err(json!({"mcpServers": {}, "gateway": {"endpoints": {"default": {"pinned": "x"}}}}));
    assert!(
        e.to_string().contains("gateway.endpoints.default.pinned"),
        "{e}"
    );
    let c = ok(r#"{"mcpServers": {}, "gateway": {"endpoints": {"default": {"max_tools": 40}}}}"#);
    assert_eq!(c.gateway.endpoints["default"].max_tools, Some(40));
    let e =
        one_err(json!({"mcpServers": {}, "gateway": {"endpoints": {"default": {"max_tools": 0}}}}));
    assert!(
        e.to_string()
            .contains("gateway.endpoints.default.max_tools"),
        "{e}"
    );
}

#[test]
fn tool_filter_patterns() {
    let f = ToolFilter {
        allow: vec!["*__read*".into(), "exact__name".into()],
        deny: vec!["*_dangerous".into()],
        ..ToolFilter::default()
    };
    assert!(f.admits("files__read_file"));
    assert!(f.admits("exact__name"));
    assert!(!f.admits("exact__names"));
    assert!(!f.admits("files__write_file"));
    assert!(!f.admits("files__read_dangerous"));
    assert!(ToolFilter::default().admits("anything"));
}

#[test]
fn oauth_sections_are_checked_field_by_field_and_keys_are_redacted() {
    let url = "http://127.0.0.1:1/mcp";
    let c = ok(&json!({"mcpServers": {"a": {"url": url, "oauth": {
        "grant": "client_credentials", "client_id": "me",
        "private_key": "${TOKEN}", "signing_algorithm": "ES256"}}}})
    .to_string());
    let o = c.services["a"].config.oauth.clone().unwrap();
    assert_eq!(o.private_key.as_deref(), Some("s3cret"));
    assert_eq!(o.signing_algorithm.as_deref(), Some("ES256"));
    assert_eq!(
        c.services["a"].redacted_raw()["oauth"]["private_key"],
        "***"
    );
    let c = ok(&json!({"mcpServers": {"a": {"url": url, "oauth": {
        "client_metadata_url": "https://example.com/mcpvisor.json"}}}})
    .to_string());
    assert!(c.services["a"]
        .config
        .oauth
        .as_ref()
        .unwrap()
        .client_metadata_url
        .is_some());
    for (oauth, field) in [
        (
            json!({"client_metadata_url": "http://example.com/x.json"}),
            "oauth.client_metadata_url",
        ),
        (
            json!({"client_metadata_url": "https://example.com/"}),
            "oauth.client_metadata_url",
        ),
        (
            json!({"grant": "client_credentials", "client_id": "me", "private_key": "k",
                   "signing_algorithm": "HS256"}),
            "oauth.signing_algorithm",
        ),
        (json!({"private_key": "k"}), "oauth.private_key"),
        (
            json!({"grant": "client_credentials", "client_id": "me"}),
            "oauth",
        ),
    ] {
        let e = one_err(json!({"mcpServers": {"a": {"url": url, "oauth": oauth}}}));
        assert_eq!((e.service(), e.field()), (Some("a"), Some(field)), "{e}");
    }
}
