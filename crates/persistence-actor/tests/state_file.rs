//! The state file: last-known tools and child process groups, kept across restarts of the
//! actor; a missing or corrupt file starts empty.

mod common;

use std::fs;
use std::time::Duration;

use common::*;
use mcpvisor_model::{ServerInfo, ToolInfo};
use mcpvisor_persistence_actor::{
    backup_path, load_state, state_path, write_state, LoadError, PersistenceMsg, ProcessRecord,
    StateSnapshot,
};
use serde_json::json;

fn tool(name: &str) -> ToolInfo {
    ToolInfo {
        name: name.into(),
        description: Some(format!("{name} things")),
        input_schema: json!({"type": "object", "properties": {"q": {"type": "string"}}})
            .as_object()
            .cloned()
            .unwrap(),
        raw: json!({"name": name, "annotations": {"readOnlyHint": true}}),
    }
}

fn record(service: &str, pid: u32) -> ProcessRecord {
    ProcessRecord {
        service: service.into(),
        pid,
        pgid: pid,
        start_time_ticks: 123_456 + u64::from(pid),
        cmdline: vec!["node".into(), format!("{service}.js")],
        boot_id: "boot".into(),
        sid: Some(1),
    }
}

#[tokio::test]
async fn tools_and_processes_round_trip_through_the_state_file_and_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let events = Events::default();
    let actor = spawn(args(dir.path(), &events)).await;
    let server = ServerInfo {
        name: "everything".into(),
        version: "1.0.0".into(),
        protocol_version: "2025-06-18".into(),
        instructions: Some("be nice".into()),
    };

    actor
        .cast(PersistenceMsg::SetTools {
            service: "db".into(),
            tools: vec![tool("query"), tool("schema")].into(),
            server: Some(server.clone()),
        })
        .unwrap();
    actor
        .cast(PersistenceMsg::SetTools {
            service: "bot/search".into(),
            tools: vec![tool("find")].into(),
            server: None,
        })
        .unwrap();
    actor
        .cast(PersistenceMsg::SetProcesses {
            service: "db".into(),
            records: vec![record("db", 4242), record("db", 4243)],
        })
        .unwrap();
    ractor::call!(actor, PersistenceMsg::Flush)
        .unwrap()
        .unwrap();

    let live = ractor::call!(actor, PersistenceMsg::GetState).unwrap();
    assert_eq!(
        live.services["db"].tools,
        vec![tool("query"), tool("schema")].into()
    );
    assert_eq!(live.services["db"].server, Some(server));
    assert_eq!(live.services["bot/search"].tools, vec![tool("find")].into());
    assert_eq!(live.processes, vec![record("db", 4242), record("db", 4243)]);
    let (on_disk, problem) = load_state(&dir.path().join("state"));
    assert!(problem.is_none(), "{problem:?}");
    assert_eq!(on_disk, live);

    actor
        .stop_and_wait(None, Some(Duration::from_secs(10)))
        .await
        .unwrap();
    let again = spawn(args(dir.path(), &events)).await;
    let restored = ractor::call!(again, PersistenceMsg::GetState).unwrap();
    assert_eq!(restored, live, "a new actor starts from the state file");
    assert!(events.all().is_empty(), "{:?}", events.all());
}

#[tokio::test]
async fn set_processes_replaces_a_services_records_and_empty_clears_them() {
    let dir = tempfile::tempdir().unwrap();
    let actor = spawn(args(dir.path(), &Events::default())).await;
    let set = |service: &str, records: Vec<ProcessRecord>| PersistenceMsg::SetProcesses {
        service: service.into(),
        records,
    };

    actor.cast(set("a", vec![record("a", 1)])).unwrap();
    actor.cast(set("b", vec![record("b", 2)])).unwrap();
    actor.cast(set("a", vec![record("a", 3)])).unwrap();
    // A record filed under another name still belongs to the service it is sent for.
    actor.cast(set("c", vec![record("elsewhere", 4)])).unwrap();
    let s = ractor::call!(actor, PersistenceMsg::GetState).unwrap();
    let c4 = ProcessRecord {
        service: "c".into(),
        ..record("elsewhere", 4)
    };
    assert_eq!(
        s.processes,
        vec![record("b", 2), record("a", 3), c4.clone()]
    );

    actor.cast(set("a", vec![])).unwrap();
    ractor::call!(actor, PersistenceMsg::Flush)
        .unwrap()
        .unwrap();
    let (on_disk, _) = load_state(&dir.path().join("state"));
    assert_eq!(on_disk.processes, vec![record("b", 2), c4]);
}

#[tokio::test]
async fn remove_service_forgets_tools_but_keeps_process_records_for_reaping() {
    let dir = tempfile::tempdir().unwrap();
    let actor = spawn(args(dir.path(), &Events::default())).await;
    actor
        .cast(PersistenceMsg::SetTools {
            service: "db".into(),
            tools: vec![tool("query")].into(),
            server: None,
        })
        .unwrap();
    actor
        .cast(PersistenceMsg::SetProcesses {
            service: "db".into(),
            records: vec![record("db", 7)],
        })
        .unwrap();
    actor
        .cast(PersistenceMsg::RemoveService {
            service: "db".into(),
        })
        .unwrap();

    // No Flush: the coalescing timer writes it.
    let state_dir = dir.path().join("state");
    let on_disk = eventually("the state file is written", Duration::from_secs(10), || {
        let state_dir = state_dir.clone();
        let actor = actor.clone();
        async move {
            let s = stats(&actor).await;
            (s.state_writes > 0 && !s.state_pending).then(|| load_state(&state_dir).0)
        }
    })
    .await;
    assert!(on_disk.services.is_empty());
    assert_eq!(on_disk.processes, vec![record("db", 7)]);
}

#[test]
fn missing_state_file_loads_as_default_without_a_problem() {
    let dir = tempfile::tempdir().unwrap();
    let (snapshot, problem) = load_state(dir.path());
    assert_eq!(snapshot, StateSnapshot::default());
    assert!(problem.is_none());
}

#[test]
fn corrupt_state_file_loads_as_default_and_reports_where() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        state_path(dir.path()),
        "{\"services\": {\"db\": {\"tools\": [",
    )
    .unwrap();
    let (snapshot, problem) = load_state(dir.path());
    assert_eq!(snapshot, StateSnapshot::default());
    match problem {
        Some(LoadError::CorruptState { path, line, .. }) => {
            assert_eq!(path, state_path(dir.path()));
            assert_eq!(line, 1);
        }
        other => panic!("expected CorruptState, got {other:?}"),
    }
    // Valid JSON of the wrong shape is corrupt too.
    fs::write(state_path(dir.path()), "[1, 2]").unwrap();
    assert!(matches!(
        load_state(dir.path()),
        (_, Some(LoadError::CorruptState { .. }))
    ));
}

#[tokio::test]
async fn actor_starts_empty_on_a_corrupt_state_file_and_replaces_it() {
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("state");
    fs::create_dir(&state_dir).unwrap();
    fs::write(state_path(&state_dir), "garbage").unwrap();
    let actor = spawn(args(dir.path(), &Events::default())).await;
    assert_eq!(
        ractor::call!(actor, PersistenceMsg::GetState).unwrap(),
        StateSnapshot::default()
    );

    actor
        .cast(PersistenceMsg::SetProcesses {
            service: "db".into(),
            records: vec![record("db", 9)],
        })
        .unwrap();
    ractor::call!(actor, PersistenceMsg::Flush)
        .unwrap()
        .unwrap();
    let (snapshot, problem) = load_state(&state_dir);
    assert!(problem.is_none());
    assert_eq!(snapshot.processes, vec![record("db", 9)]);
    assert_eq!(
        fs::read(backup_path(&state_path(&state_dir))).unwrap(),
        b"garbage"
    );
}

#[test]
fn write_state_then_load_state_is_identity() {
    let dir = tempfile::tempdir().unwrap();
    let mut snapshot = StateSnapshot::default();
    snapshot.services.insert(
        "x".into(),
        mcpvisor_persistence_actor::ServiceSnapshot {
            tools: vec![tool("t")].into(),
            server: None,
            updated_at: mcpvisor_model::Timestamp(1_700_000_000_000),
        },
    );
    snapshot.processes.push(record("x", 11));
    write_state(dir.path(), &snapshot).unwrap();
    let (loaded, problem) = load_state(dir.path());
    assert!(problem.is_none(), "{problem:?}");
    assert_eq!(loaded, snapshot);
}
