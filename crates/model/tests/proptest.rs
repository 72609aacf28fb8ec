//! Property tests: arbitrary JSON never panics the parser; valid configs round-trip.

use mcpvisor_model::env::MapEnv;
use mcpvisor_model::*;
use proptest::prelude::*;
use serde_json::{json, Map, Value};

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null)),
        "[a-zA-Z0-9_${}:/.\\- ]{0,12}".prop_map(Value::String),
        prop_oneof![
            Just("command"),
            Just("url"),
            Just("args"),
            Just("env"),
            Just("transport"),
            Just("sse"),
            Just("http://127.0.0.1/sse"),
            Just("${X}"),
            Just("${X:-y}"),
            Just("10s"),
            Just("stdio"),
            Just("512MiB"),
            Just("1.5 G"),
            Just("none"),
            Just("loopback"),
            Just("node"),
            Just("~/x"),
            Just("${file:/nonexistent/secret}"),
            Just("${file:}")
        ]
        .prop_map(|s| Value::String(s.to_owned())),
    ];
    let keys = prop_oneof![
        "[a-z_]{1,8}",
        prop_oneof![
            Just("mcpServers"),
            Just("servers"),
            Just("command"),
            Just("url"),
            Just("args"),
            Just("env"),
            Just("headers"),
            Just("name"),
            Just("depends_on"),
            Just("health"),
            Just("backoff"),
            Just("timeouts"),
            Just("defaults"),
            Just("agents"),
            Just("supervisor"),
            Just("type"),
            Just("interval"),
            Just("restart"),
            Just("condition"),
            Just("sandbox"),
            Just("filesystem"),
            Just("read"),
            Just("write"),
            Just("presets"),
            Just("network"),
            Just("memory"),
            Just("processes"),
            Just("cpu"),
            Just("open_files"),
            Just("best_effort"),
            Just("env_file"),
            Just("env_inherit")
        ]
        .prop_map(str::to_owned),
    ];
    leaf.prop_recursive(5, 64, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((keys.clone(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<String, Value>>())),
        ]
    })
}

fn arb_name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9-]{0,10}".prop_filter("no double underscore", |s| !s.contains("__"))
}

fn arb_service() -> impl Strategy<Value = Value> {
    let stdio = (
        "[a-z/]{1,10}",
        prop::collection::vec("[a-zA-Z0-9 ._-]{0,8}", 0..4),
        prop::option::of(prop::collection::btree_map(
            "[A-Z]{1,5}",
            "[a-z0-9]{0,6}",
            0..3,
        )),
        prop::option::of(prop_oneof![
            Just("permanent"),
            Just("transient"),
            Just("temporary")
        ]),
        prop::option::of((1u64..3600, 1u32..5)),
        prop::option::of("[a-z]{1,6}"),
    )
        .prop_map(|(cmd, args, env, restart, health, extra)| {
            let mut m = Map::new();
            m.insert("command".into(), json!(cmd));
            m.insert("args".into(), json!(args));
            if let Some(e) = env {
                m.insert("env".into(), json!(e));
            }
            if let Some(r) = restart {
                m.insert("restart".into(), json!(r));
            }
            if let Some((secs, warn)) = health {
                m.insert(
                    "health".into(),
                    json!({"interval": format!("{secs}s"), "warn_after": warn}),
                );
            }
            if let Some(x) = extra {
                m.insert("x-unknown".into(), json!({"value": x}));
            }
            Value::Object(m)
        });
    let remote = (
        "[a-z]{1,8}",
        any::<bool>(),
        prop::option::of("[A-Za-z0-9]{1,8}"),
    )
        .prop_map(|(path, sse, tok)| {
            let mut m = Map::new();
            let tail = if sse { "sse".to_owned() } else { path };
            m.insert("url".into(), json!(format!("http://127.0.0.1:3001/{tail}")));
            if let Some(t) = tok {
                m.insert(
                    "headers".into(),
                    json!({"Authorization": format!("Bearer {t}")}),
                );
            }
            Value::Object(m)
        });
    prop_oneof![stdio, remote]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_json_never_panics(v in arb_json()) {
        let env = MapEnv::default();
        let _ = parse_value(v.clone(), &env);
        let _ = parse_str(&v.to_string(), &env);
        let _ = split_services(v);
    }

    #[test]
    fn arbitrary_text_never_panics(s in "\\PC{0,64}") {
        let _ = parse_str(&s, &MapEnv::default());
    }

    #[test]
    fn valid_configs_round_trip(services in prop::collection::btree_map(arb_name(), arb_service(), 0..6)) {
        let doc = json!({"mcpServers": services});
        let env = MapEnv::default();
        let cfg = parse_value(doc.clone(), &env).expect("generated config is valid");
        prop_assert_eq!(cfg.to_json(), doc);
        let again = parse_str(&cfg.to_json_pretty(), &env).expect("reparse");
        prop_assert_eq!(again, cfg);
    }
}
