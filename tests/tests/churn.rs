//! Add/remove churn leaks nothing. Alone in its own test binary: it counts this process's file
//! descriptors and threads, which tests running beside it would disturb.

use std::time::Duration;

use mcpvisor_model::ServiceState;
use mcpvisor_supervisor::{Store, StoreOptions, Wait};
use mcpvisor_tests::{chaos_bin, eventually, pid_alive};
use serde_json::json;

use ServiceState as S;

async fn store() -> Store {
    Store::open(StoreOptions::new()).await.expect("open")
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

fn threads() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Threads:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

#[tokio::test]
async fn add_remove_churn_leaks_no_fds_processes_or_services() {
    let store = store().await;
    // Warm up once so lazily created resources exist before the baseline.
    store
        .add_service(
            json!({"name": "warm", "command": chaos_bin().to_string_lossy()}),
            Wait::Auto,
        )
        .await
        .unwrap();
    store.remove_service("warm").await.unwrap();
    let (fds, thr) = (open_fds(), threads());
    let mut pids = Vec::new();
    for i in 0..30 {
        let name = format!("churn{i}");
        store
            .add_service(
                json!({"name": name, "command": chaos_bin().to_string_lossy()}),
                Wait::Auto,
            )
            .await
            .unwrap();
        let v = store.get_service_info(&name).await.unwrap();
        assert_eq!(v.state, S::Healthy);
        pids.push(v.pid.unwrap());
        store.remove_service(&name).await.unwrap();
    }
    for p in pids {
        assert!(!pid_alive(p), "pid {p} outlived its removal");
    }
    assert!(store.list_services().await.unwrap().is_empty());
    assert!(store.list_tools().await.unwrap().is_empty());
    // File descriptors come back to the baseline (a few may be in flight).
    assert!(
        eventually(Duration::from_secs(5), || async { open_fds() <= fds + 2 }).await,
        "fds grew from {fds} to {}",
        open_fds()
    );
    assert!(
        threads() <= thr + 2,
        "threads grew from {thr} to {}",
        threads()
    );
    store.shutdown().await;
}
