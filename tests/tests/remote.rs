//! Remote servers supervised as tightly as local ones (issue 10): a streamable-HTTP server's
//! death is seen at once through its event stream (not at the next probe), and a server back
//! on the same port is picked up with its tools.

use std::time::{Duration, Instant};

use mcpvisor_model::{Event, ServiceState};
use mcpvisor_supervisor::{Store, StoreOptions, Wait};
use mcpvisor_tests::deadline;
use mcpvisor_tests::ChaosProcess;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

use ServiceState as S;

const LONG: Duration = Duration::from_secs(20);

/// A chaos server over streamable HTTP on `addr`; its URL.
async fn http_server(addr: &str) -> (ChaosProcess, String) {
    let mut process = ChaosProcess::spawn(&["--http", addr]).expect("spawn chaos-mcp");
    let _stderr = process.capture_stderr();
    let stdout = process.stdout.take().expect("stdout");
    let url = deadline(LONG, "address line", async {
        BufReader::new(stdout).lines().next_line().await
    })
    .await
    .expect("read")
    .expect("address line");
    (process, url)
}

#[tokio::test]
async fn a_killed_http_server_is_seen_at_once_and_picked_up_again_on_the_same_port() {
    let (mut server, url) = http_server("127.0.0.1:0").await;
    let addr = url
        .trim_start_matches("http://")
        .trim_end_matches("/mcp")
        .to_owned();
    let store = Store::open(StoreOptions::new()).await.unwrap();
    let mut events = store.subscribe().await.unwrap();
    // Probes every 30 s: only the event stream can tell of the death within a second.
    store
        .add_service(
            json!({"name": "remote", "url": url,
                   "health": {"interval": "30s"},
                   "backoff": {"initial": "50ms", "max": "500ms"}}),
            Wait::Auto,
        )
        .await
        .unwrap();
    assert_eq!(
        store.get_service_status("remote").await.unwrap(),
        S::Healthy
    );

    let killed = Instant::now();
    server.kill_all();
    let seen = deadline(LONG, "reconnecting event", async {
        loop {
            match events.next().await {
                Some(Event::StateChanged {
                    to: S::Reconnecting,
                    reason,
                    ..
                }) => return reason,
                Some(_) => {}
                None => panic!("event stream ended"),
            }
        }
    })
    .await;
    let took = killed.elapsed();
    eprintln!("HTTP server SIGKILLed → reconnecting event: {took:?}");
    assert!(
        took < Duration::from_secs(1),
        "reconnecting after {took:?} ({seen})"
    );

    // Back on the same port: healthy again with its tools, within backoff.max + a connect.
    let (mut again, _) = http_server(&addr).await;
    store.wait_for(&["remote"], S::Healthy, LONG).await.unwrap();
    let tools = store.list_tools().await.unwrap();
    assert!(tools.iter().any(|t| t.name == "remote__echo"), "{tools:?}");
    let out = store
        .call_tool(
            "remote__echo",
            json!({"text": "back"}).as_object().cloned(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(out.result["content"][0]["text"], "back");
    store.shutdown().await;
    again.kill_all();
}
