//! The config file edited by hand while mcpvisor runs: runtime changes are merged into the
//! edit, never written over it.

mod common;

use std::fs;
use std::path::Path;

use common::*;
use mcpvisor_persistence_actor::{backup_path, PersistError, PersistenceMsg};
use ractor::ActorRef;
use serde_json::{json, Value};

const WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// A persistence actor writing `mcp.json` in a temp dir (removed when `_dir` drops).
struct Fixture {
    _dir: tempfile::TempDir,
    events: Events,
    path: std::path::PathBuf,
    actor: ActorRef<PersistenceMsg>,
}

impl Fixture {
    async fn open() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let events = Events::default();
        let path = config_path(dir.path());
        let actor = spawn(args(dir.path(), &events)).await;
        Fixture {
            _dir: dir,
            events,
            path,
            actor,
        }
    }
}

async fn save(actor: &ActorRef<PersistenceMsg>, v: Value) -> Result<(), PersistError> {
    actor
        .cast(PersistenceMsg::SaveConfig(Box::new(parse(&v.to_string()))))
        .unwrap();
    ractor::call!(actor, PersistenceMsg::Flush).unwrap()
}

fn on_disk(path: &Path) -> Value {
    serde_json::from_str(&read(path)).unwrap()
}

/// Edits the file the way an editor does (write a temp file, rename over).
fn edit_by_hand(path: &Path, v: Value) -> String {
    let text = serde_json::to_string_pretty(&v).unwrap() + "\n";
    let tmp = path.with_extension("editor-tmp");
    fs::write(&tmp, &text).unwrap();
    fs::rename(&tmp, path).unwrap();
    text
}

fn svc(cmd: &str) -> Value {
    json!({"command": cmd})
}

#[tokio::test]
async fn a_runtime_change_is_merged_into_a_hand_edit_instead_of_replacing_it() {
    let Fixture {
        _dir,
        events,
        path,
        actor,
    } = Fixture::open().await;
    save(
        &actor,
        json!({"mcpServers": {"a": svc("a"), "b": svc("b")}}),
    )
    .await
    .unwrap();
    // By hand: a changed, h added, a top-level note; b untouched.
    let hand = edit_by_hand(
        &path,
        json!({"note": "mine", "mcpServers": {"a": svc("a-hand"), "b": svc("b"), "h": svc("h")}}),
    );
    // At run time (not knowing the edit): c added, b removed.
    save(
        &actor,
        json!({"mcpServers": {"a": svc("a"), "c": svc("c")}}),
    )
    .await
    .unwrap();
    assert_eq!(
        on_disk(&path),
        json!({"note": "mine", "mcpServers": {"a": svc("a-hand"), "h": svc("h"), "c": svc("c")}})
    );
    assert_eq!(read(&backup_path(&path)), hand, "the hand edit is the .bak");
    assert!(
        events.errors(&path).is_empty(),
        "{:?}",
        events.errors(&path)
    );
}

#[tokio::test]
async fn a_conflicting_service_keeps_the_hand_edit_is_reported_and_stays_kept() {
    let Fixture {
        _dir,
        events,
        path,
        actor,
    } = Fixture::open().await;
    save(&actor, json!({"mcpServers": {"a": svc("a")}}))
        .await
        .unwrap();
    edit_by_hand(&path, json!({"mcpServers": {"a": svc("a-hand")}}));
    save(&actor, json!({"mcpServers": {"a": svc("a-runtime")}}))
        .await
        .unwrap();
    assert_eq!(on_disk(&path), json!({"mcpServers": {"a": svc("a-hand")}}));
    let errors = events.errors(&path);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("edited by hand") && errors[0].contains(" a "),
        "{}",
        errors[0]
    );
    // A later runtime change elsewhere does not bring the runtime's `a` back.
    save(
        &actor,
        json!({"mcpServers": {"a": svc("a-runtime"), "d": svc("d")}}),
    )
    .await
    .unwrap();
    assert_eq!(
        on_disk(&path),
        json!({"mcpServers": {"a": svc("a-hand"), "d": svc("d")}})
    );
}

#[tokio::test]
async fn a_hand_edit_that_already_says_it_all_is_left_byte_for_byte() {
    let Fixture {
        _dir, path, actor, ..
    } = Fixture::open().await;
    save(&actor, json!({"mcpServers": {"a": svc("a")}}))
        .await
        .unwrap();
    let writes = stats(&actor).await.config_writes;
    // Compact, with the runtime's coming change already in it.
    let hand = "{\"mcpServers\":{\"a\":{\"command\":\"a\"},\"n\":{\"command\":\"n\"}}}";
    fs::write(&path, hand).unwrap();
    save(
        &actor,
        json!({"mcpServers": {"a": svc("a"), "n": svc("n")}}),
    )
    .await
    .unwrap();
    assert_eq!(read(&path), hand);
    assert_eq!(stats(&actor).await.config_writes, writes);
}

#[tokio::test]
async fn an_invalid_hand_edit_is_not_written_over_until_fixed() {
    let Fixture {
        _dir,
        events,
        path,
        actor,
    } = Fixture::open().await;
    save(&actor, json!({"mcpServers": {"a": svc("a")}}))
        .await
        .unwrap();
    // Valid JSON, invalid config: both command and url.
    let bad = edit_by_hand(
        &path,
        json!({"mcpServers": {"a": {"command": "a", "url": "http://127.0.0.1:1/mcp"}}}),
    );
    let err = save(
        &actor,
        json!({"mcpServers": {"a": svc("a"), "b": svc("b")}}),
    )
    .await
    .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, PersistError::HandEdit { .. }), "{text}");
    assert!(text.contains("service 'a'"), "names the service: {text}");
    assert!(
        text.contains("url") && text.contains("command"),
        "names the fields: {text}"
    );
    assert_eq!(read(&path), bad, "left byte for byte");
    assert!(stats(&actor).await.config_pending);
    // Fixed by hand: the pending change lands on top of the fix.
    edit_by_hand(&path, json!({"mcpServers": {"a": svc("a-fixed")}}));
    // The recovered event follows the successful write.
    eventually("the pending change written", WAIT, || async {
        (events.recovered(&path) == 1).then_some(())
    })
    .await;
    assert_eq!(
        on_disk(&path),
        json!({"mcpServers": {"a": svc("a-fixed"), "b": svc("b")}})
    );
}

#[tokio::test]
async fn a_merge_that_breaks_a_dependency_is_refused_and_names_it() {
    let Fixture {
        _dir, path, actor, ..
    } = Fixture::open().await;
    save(&actor, json!({"mcpServers": {"x": svc("x")}}))
        .await
        .unwrap();
    let hand = edit_by_hand(&path, json!({"mcpServers": {}}));
    // At run time, y is added depending on x, which was just removed by hand.
    let err = save(
        &actor,
        json!({"mcpServers": {"x": svc("x"), "y": {"command": "y", "depends_on": ["x"]}}}),
    )
    .await
    .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, PersistError::HandEdit { .. }), "{text}");
    assert!(
        text.contains("service 'y'") && text.contains("depends_on") && text.contains("'x'"),
        "{text}"
    );
    assert_eq!(read(&path), hand);
}

#[tokio::test]
async fn a_file_edited_before_the_actor_started_counts_as_its_starting_point() {
    let dir = tempfile::tempdir().unwrap();
    let path = config_path(dir.path());
    fs::write(
        &path,
        serde_json::to_string(&json!({"mcpServers": {"a": svc("a"), "b": svc("b")}})).unwrap(),
    )
    .unwrap();
    let actor = spawn(args(dir.path(), &Events::default())).await;
    // The runtime removes b: with the start-up file as base, that is a removal, not a conflict.
    save(&actor, json!({"mcpServers": {"a": svc("a")}}))
        .await
        .unwrap();
    assert_eq!(on_disk(&path), json!({"mcpServers": {"a": svc("a")}}));
}

#[tokio::test]
async fn a_hand_edit_using_a_variable_unset_here_still_takes_runtime_changes() {
    let Fixture {
        _dir,
        events,
        path,
        actor,
    } = Fixture::open().await;
    save(&actor, json!({"mcpServers": {"a": svc("a")}}))
        .await
        .unwrap();
    // Meant for another environment: neither variable is set in this process.
    let remote = json!({"url": "${MCPVISOR_TEST_UNSET_URL}", "headers": {"Authorization": "Bearer ${MCPVISOR_TEST_UNSET_TOKEN}"}});
    edit_by_hand(
        &path,
        json!({"mcpServers": {"a": svc("a"), "remote": remote}}),
    );
    save(
        &actor,
        json!({"mcpServers": {"a": svc("a"), "b": svc("b")}}),
    )
    .await
    .unwrap();
    assert_eq!(
        on_disk(&path),
        json!({"mcpServers": {"a": svc("a"), "remote": remote, "b": svc("b")}}),
        "merged, the variables written back as written"
    );
    assert!(
        events.errors(&path).is_empty(),
        "{:?}",
        events.errors(&path)
    );
}

#[tokio::test]
async fn an_emptied_file_is_given_time_to_settle_then_written_in_full() {
    let Fixture {
        _dir, path, actor, ..
    } = Fixture::open().await;
    save(&actor, json!({"mcpServers": {"a": svc("a")}}))
        .await
        .unwrap();
    // Truncated (as an editor does before writing) and left so.
    fs::write(&path, "").unwrap();
    let started = std::time::Instant::now();
    save(
        &actor,
        json!({"mcpServers": {"a": svc("a"), "b": svc("b")}}),
    )
    .await
    .unwrap();
    assert!(
        started.elapsed() >= mcpvisor_persistence_actor::SETTLE,
        "written without waiting for the file to settle"
    );
    assert_eq!(
        on_disk(&path),
        json!({"mcpServers": {"a": svc("a"), "b": svc("b")}})
    );
}

#[tokio::test]
async fn saving_what_the_file_already_holds_writes_nothing() {
    let Fixture {
        _dir, path, actor, ..
    } = Fixture::open().await;
    let v = json!({"mcpServers": {"a": svc("a")}});
    save(&actor, v.clone()).await.unwrap();
    let writes = stats(&actor).await.config_writes;
    let before = fs::metadata(&path).unwrap().modified().unwrap();
    save(&actor, v).await.unwrap();
    assert_eq!(stats(&actor).await.config_writes, writes);
    assert_eq!(fs::metadata(&path).unwrap().modified().unwrap(), before);
}
