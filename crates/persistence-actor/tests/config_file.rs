//! The config file through the actor: round trip, backup, coalescing, refusal to overwrite a
//! broken file, and disk errors with recovery.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use mcpvisor_model::env::MapEnv;
use mcpvisor_persistence_actor::{
    backup_path, load_config, LoadError, PersistError, PersistenceMsg,
};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn config_round_trips_with_unknown_fields_key_order_and_unexpanded_variables() {
    let dir = tempfile::tempdir().unwrap();
    let text = r#"{
  "zeta": {"keep": [1, 2, 3]},
  "mcpServers": {
    "beta": {"command": "node", "x-custom": {"nested": true}, "args": ["b.js"], "env": {"TOKEN": "${TOKEN}"}},
    "alpha": {"url": "http://127.0.0.1:3001/mcp", "headers": {"Authorization": "Bearer ${KEY:-none}"}, "comment": "kept"}
  },
  "alpha_top": "kept too"
}"#;
    let env = MapEnv::from_pairs([("TOKEN", "s3cret")]);
    let original = mcpvisor_model::parse_str(text, &env).unwrap();
    let events = Events::default();
    let actor = spawn(args(dir.path(), &events)).await;

    actor
        .cast(PersistenceMsg::SaveConfig(Box::new(original.clone())))
        .unwrap();
    ractor::call!(actor, PersistenceMsg::Flush)
        .unwrap()
        .expect("flush writes the config");

    let path = config_path(dir.path());
    let loaded = load_config(&path, &env).unwrap();
    assert_eq!(loaded, original);
    let on_disk: Value = serde_json::from_str(&read(&path)).unwrap();
    let top: Vec<&String> = on_disk.as_object().unwrap().keys().collect();
    assert_eq!(top, ["zeta", "mcpServers", "alpha_top"]);
    let services: Vec<&String> = on_disk["mcpServers"].as_object().unwrap().keys().collect();
    assert_eq!(services, ["beta", "alpha"]);
    let beta: Vec<&String> = on_disk["mcpServers"]["beta"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(beta, ["command", "x-custom", "args", "env"]);
    assert_eq!(on_disk["mcpServers"]["beta"]["env"]["TOKEN"], "${TOKEN}");
    assert_eq!(on_disk["mcpServers"]["alpha"]["comment"], "kept");
    assert!(events.all().is_empty(), "{:?}", events.all());
}

#[tokio::test]
async fn missing_config_file_loads_as_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let err = load_config(&config_path(dir.path()), &MapEnv::default()).unwrap_err();
    assert!(matches!(err, LoadError::NotFound { .. }), "{err}");
}

#[tokio::test]
async fn second_write_keeps_the_previous_version_as_bak() {
    let dir = tempfile::tempdir().unwrap();
    let actor = spawn(args(dir.path(), &Events::default())).await;
    let (v1, v2) = (config_of(1, 1), config_of(2, 2));
    let path = config_path(dir.path());

    actor
        .cast(PersistenceMsg::SaveConfig(Box::new(v1.clone())))
        .unwrap();
    ractor::call!(actor, PersistenceMsg::Flush)
        .unwrap()
        .unwrap();
    assert!(
        !backup_path(&path).exists(),
        "no backup of a file that did not exist"
    );
    actor
        .cast(PersistenceMsg::SaveConfig(Box::new(v2.clone())))
        .unwrap();
    ractor::call!(actor, PersistenceMsg::Flush)
        .unwrap()
        .unwrap();

    assert_eq!(read(&path), v2.to_json_pretty());
    assert_eq!(read(&backup_path(&path)), v1.to_json_pretty());
}

#[tokio::test]
async fn a_thousand_saves_coalesce_into_a_handful_of_writes_of_the_latest() {
    let dir = tempfile::tempdir().unwrap();
    let events = Events::default();
    let mut a = args(dir.path(), &events);
    a.coalesce = Duration::from_millis(50);
    let actor = spawn(a).await;
    // Built first, so the loop below sends 1,000 saves as fast as it can.
    let mut saves: Vec<_> = (0..999).map(|g| Box::new(config_of(1, g))).collect();
    let last = config_of(1000, 999);
    saves.push(Box::new(last.clone()));

    for cfg in saves {
        actor.cast(PersistenceMsg::SaveConfig(cfg)).unwrap();
    }
    // No Flush: the coalescing timer must do the writing.
    let stats = eventually("the pending config is written", WAIT, || async {
        let s = stats(&actor).await;
        (s.config_writes > 0 && !s.config_pending).then_some(s)
    })
    .await;

    assert!(
        stats.config_writes <= 10,
        "{} writes for 1,000 saves",
        stats.config_writes
    );
    let path = config_path(dir.path());
    assert_eq!(read(&path), last.to_json_pretty());
    let loaded = load_config(&path, &MapEnv::default()).unwrap();
    assert_eq!(loaded.services.len(), 1000);
    assert_eq!(loaded.extra["generation"], 999);
    assert_eq!(stats.failed_writes, 0);
}

#[tokio::test]
async fn unparseable_config_is_never_overwritten_until_fixed_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    let path = config_path(dir.path());
    let broken = b"{\n  \"mcpServers\": {\n    \"db\": {\"command\": \"pg\",}\n  }\n}\n";
    fs::write(&path, broken).unwrap();
    let events = Events::default();
    let actor = spawn(args(dir.path(), &events)).await;

    actor
        .cast(PersistenceMsg::SaveConfig(Box::new(config_of(3, 1))))
        .unwrap();
    let err = ractor::call!(actor, PersistenceMsg::Flush)
        .unwrap()
        .expect_err("a broken file is not overwritten");
    match &err {
        PersistError::Unparseable { line, column, .. } => assert_eq!((*line, *column), (3, 28)),
        other => panic!("expected Unparseable, got {other}"),
    }
    // The retries keep refusing, and the streak is reported once.
    eventually("several refused attempts", WAIT, || async {
        (stats(&actor).await.failed_writes >= 3).then_some(())
    })
    .await;
    assert_eq!(fs::read(&path).unwrap(), broken, "file left byte for byte");
    assert!(!backup_path(&path).exists());
    let errors = events.errors(&path);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("line 3, column 28"), "{}", errors[0]);
    assert!(errors[0].contains("fix the file by hand"), "{}", errors[0]);
    assert!(stats(&actor).await.config_pending, "the change is kept");

    // The user repairs the file: the pending config is merged into it (the repair, a service
    // of its own, is an edit by hand and stays), the old file kept as .bak.
    let fixed = "{\"mcpServers\": {\"db\": {\"command\": \"pg\"}}}\n";
    fs::write(&path, fixed).unwrap();
    let latest = config_of(4, 2);
    actor
        .cast(PersistenceMsg::SaveConfig(Box::new(latest.clone())))
        .unwrap();
    eventually("the recovered event", WAIT, || async {
        (events.recovered(&path) == 1).then_some(())
    })
    .await;
    let written: Value = serde_json::from_str(&read(&path)).unwrap();
    let names: Vec<&String> = written["mcpServers"].as_object().unwrap().keys().collect();
    assert_eq!(names, ["db", "s0", "s1", "s2", "s3"]);
    assert_eq!(written["generation"], 2);
    assert_eq!(read(&backup_path(&path)), fixed);
    assert_eq!(events.errors(&path).len(), 1);
}

/// Makes writes into `root/conf` fail, whoever runs the test: a read-only directory, or —
/// for root, whom permissions do not stop — a regular file where the directory should be.
enum Blocked {
    ReadOnlyDir(PathBuf),
    FileInTheWay(PathBuf),
}

impl Blocked {
    fn new(root: &Path) -> Blocked {
        let conf = root.join("conf");
        fs::create_dir(&conf).unwrap();
        fs::set_permissions(&conf, fs::Permissions::from_mode(0o555)).unwrap();
        let probe = conf.join(".probe");
        if fs::write(&probe, b"x").is_err() {
            return Blocked::ReadOnlyDir(conf);
        }
        let _ = fs::remove_file(&probe);
        fs::set_permissions(&conf, fs::Permissions::from_mode(0o755)).unwrap();
        fs::remove_dir(&conf).unwrap();
        fs::write(&conf, b"not a directory").unwrap();
        Blocked::FileInTheWay(conf)
    }

    fn unblock(&self) {
        match self {
            Blocked::ReadOnlyDir(d) => {
                fs::set_permissions(d, fs::Permissions::from_mode(0o755)).unwrap()
            }
            Blocked::FileInTheWay(f) => {
                fs::remove_file(f).unwrap();
                fs::create_dir(f).unwrap();
            }
        }
    }
}

#[tokio::test]
async fn disk_errors_are_reported_once_retried_and_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let blocked = Blocked::new(dir.path());
    let path = dir.path().join("conf").join("mcp.json");
    let events = Events::default();
    let mut a = args(dir.path(), &events);
    a.config_path = path.clone();
    let actor = spawn(a).await;

    actor
        .cast(PersistenceMsg::SaveConfig(Box::new(config_of(2, 1))))
        .unwrap();
    eventually("several failed attempts", WAIT, || async {
        (stats(&actor).await.failed_writes >= 3).then_some(())
    })
    .await;
    let errors = events.errors(&path);
    assert_eq!(errors.len(), 1, "one event per failure streak: {errors:?}");
    assert!(
        errors[0].contains(&path.display().to_string()),
        "{}",
        errors[0]
    );
    if matches!(blocked, Blocked::ReadOnlyDir(_)) {
        assert!(errors[0].contains("permission denied"), "{}", errors[0]);
    }
    assert_eq!(events.recovered(&path), 0);

    // Still serving while the disk fails.
    actor
        .cast(PersistenceMsg::SetTools {
            service: "db".into(),
            tools: Vec::new().into(),
            server: None,
        })
        .unwrap();
    let snapshot = ractor::call_t!(actor, PersistenceMsg::GetState, 5_000).unwrap();
    assert!(snapshot.services.contains_key("db"));
    assert!(stats(&actor).await.config_pending);

    blocked.unblock();
    let latest = config_of(3, 2);
    actor
        .cast(PersistenceMsg::SaveConfig(Box::new(latest.clone())))
        .unwrap();
    eventually("the recovered event", WAIT, || async {
        (events.recovered(&path) == 1).then_some(())
    })
    .await;
    assert_eq!(read(&path), latest.to_json_pretty());
    assert_eq!(events.errors(&path).len(), 1);
    let s = stats(&actor).await;
    assert!(!s.config_pending);
    assert_eq!(s.config_writes, 1);
}

#[tokio::test]
async fn stopping_the_actor_writes_pending_changes() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = args(dir.path(), &Events::default());
    a.coalesce = Duration::from_secs(3600);
    let actor = spawn(a).await;
    let cfg = config_of(2, 7);
    actor
        .cast(PersistenceMsg::SaveConfig(Box::new(cfg.clone())))
        .unwrap();
    assert!(stats(&actor).await.config_pending, "not written yet");

    actor
        .stop_and_wait(None, Some(Duration::from_secs(10)))
        .await
        .unwrap();

    assert_eq!(read(&config_path(dir.path())), cfg.to_json_pretty());
}
