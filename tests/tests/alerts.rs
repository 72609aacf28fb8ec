//! Alerts (issue 13, DESIGN §15) against a real chaos server, a real command writing a file and
//! a real HTTP receiver on loopback: one notice per rate window (the ones held back counted in
//! the next), a recovery notice when the service is back, a receiver that is down retried, a
//! failing action reported as an event — and supervision never waiting for any of it.

use std::path::Path;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use mcpvisor_model::{Event, ServiceState};
use mcpvisor_supervisor::{EventStream, Store};
use mcpvisor_tests::{chaos_bin, deadline, kill_pid};
use serde_json::{json, Value};
use tokio::sync::mpsc;

const LONG: Duration = Duration::from_secs(20);

fn chaos() -> Value {
    json!({
        "command": chaos_bin().to_string_lossy(),
        "health": {"interval": "5s"},
        "backoff": {"initial": "20ms", "max": "200ms"},
        "timeouts": {"shutdown": "300ms"}
    })
}

async fn open(dir: &Path, config: Value) -> Store {
    mcpvisor_tests::open_store_in(dir, &config).await
}

/// A webhook receiver on `listener`: every body it gets, answered with 200.
fn receiver(listener: tokio::net::TcpListener) -> mpsc::UnboundedReceiver<Value> {
    let (tx, rx) = mpsc::unbounded_channel::<Value>();
    let app = Router::new()
        .route(
            "/hook",
            post(
                |State(tx): State<mpsc::UnboundedSender<Value>>, body: String| async move {
                    let _ = tx.send(serde_json::from_str(&body).unwrap_or(Value::Null));
                    StatusCode::OK
                },
            ),
        )
        .with_state(tx);
    tokio::spawn(async move { axum::serve(listener, app).await });
    rx
}

/// The next alert outcome event (sent or failed) of `action`.
async fn next_alert(events: &mut EventStream, action: &str) -> Event {
    deadline(LONG, &format!("an alert outcome of the {action}"), async {
        loop {
            match events.next().await {
                Some(e @ Event::AlertSent { .. }) | Some(e @ Event::AlertFailed { .. }) => {
                    let a = match &e {
                        Event::AlertSent { action, .. } | Event::AlertFailed { action, .. } => {
                            action.clone()
                        }
                        _ => String::new(),
                    };
                    if a == action {
                        return e;
                    }
                }
                Some(_) => {}
                None => panic!("event stream ended"),
            }
        }
    })
    .await
}

async fn kill_and_recover(store: &Store, name: &str) {
    let pid = store.get_service_info(name).await.unwrap().pid.unwrap();
    kill_pid(pid);
    store
        .wait_for(&[name], ServiceState::Reconnecting, LONG)
        .await
        .ok();
    store
        .wait_for(&[name], ServiceState::Healthy, LONG)
        .await
        .unwrap();
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn an_alert_fires_once_per_window_recovers_and_reaches_a_command_and_a_webhook() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("alerts.jsonl");
    let envs = dir.path().join("env.txt");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let mut hooks = receiver(listener);
    let window = Duration::from_secs(4);
    let store = open(
        dir.path(),
        json!({
            "mcpServers": {"svc": chaos()},
            "alerts": {"lost": {
                "enters": ["reconnecting"],
                "command": format!(
                    "echo \"$MCPVISOR_ALERT $MCPVISOR_NOTICE $MCPVISOR_SERVICE $MCPVISOR_STATE\" >> {}; cat >> {}; echo >> {}",
                    envs.display(), out.display(), out.display()
                ),
                "webhook": {"url": url, "headers": {"X-Token": "t0ken"}},
                "every": "4s"
            }}
        }),
    )
    .await;
    store
        .wait_for(&["svc"], ServiceState::Healthy, LONG)
        .await
        .unwrap();
    let mut events = store.subscribe().await.unwrap();

    kill_and_recover(&store, "svc").await;
    let first = Instant::now();
    for notice in ["firing", "recovered"] {
        let got = deadline(LONG, "a webhook POST", hooks.recv())
            .await
            .unwrap();
        assert_eq!(got["notice"], notice, "{got}");
        assert_eq!(got["alert"], "lost");
        assert_eq!(got["service"], "svc");
    }
    // Lost again within the window: held back (and so no recovery notice either).
    kill_and_recover(&store, "svc").await;
    assert!(
        first.elapsed() < window,
        "the machine is too slow for this test's window"
    );
    // After the window: a notice again, counting the one held back.
    tokio::time::sleep_until((first + window).into()).await;
    kill_and_recover(&store, "svc").await;
    let got = deadline(LONG, "a webhook POST", hooks.recv())
        .await
        .unwrap();
    assert_eq!(
        (got["notice"].as_str(), got["suppressed"].as_u64()),
        (Some("firing"), Some(1)),
        "{got}"
    );
    assert_eq!(got["state"], "reconnecting");
    assert!(got["cause"]["reason"].is_string(), "the event: {got}");
    let got = deadline(LONG, "a webhook POST", hooks.recv())
        .await
        .unwrap();
    assert_eq!(got["notice"], "recovered");

    // The command saw the same four notices, the payload on stdin, the fields in its env.
    let mut seen = 0;
    while seen < 4 {
        match next_alert(&mut events, "command").await {
            Event::AlertSent { .. } => seen += 1,
            other => panic!("the command failed: {other:?}"),
        }
    }
    let notices: Vec<(String, u64)> = lines(&out)
        .iter()
        .map(|v| {
            (
                v["notice"].as_str().unwrap().to_owned(),
                v["suppressed"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        notices,
        [
            ("firing".into(), 0),
            ("recovered".into(), 0),
            ("firing".into(), 1),
            ("recovered".into(), 0)
        ]
    );
    let env = std::fs::read_to_string(&envs).unwrap();
    assert!(env.starts_with("lost firing svc reconnecting\n"), "{env}");
    store.shutdown().await;
}

#[tokio::test]
async fn a_receiver_that_is_down_is_retried_a_failing_command_is_an_event_and_supervision_goes_on()
{
    let dir = tempfile::tempdir().unwrap();
    // A port with nothing listening yet.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let store = open(
        dir.path(),
        json!({
            "mcpServers": {"svc": chaos()},
            "alerts": {
                "hook": {"enters": "reconnecting", "recovery": false,
                         "webhook": format!("http://{addr}/hook"), "retries": 5},
                "broken": {"enters": "reconnecting", "recovery": false,
                           "command": "echo no >&2; exit 3", "retries": 1},
                "stuck": {"enters": "reconnecting", "recovery": false,
                          "command": ["sleep", "30"], "timeout": "25s", "retries": 0}
            }
        }),
    )
    .await;
    store
        .wait_for(&["svc"], ServiceState::Healthy, LONG)
        .await
        .unwrap();
    let mut events = store.subscribe().await.unwrap();
    let lost = Instant::now();
    // Supervision does not wait for a command that hangs or a receiver that is down.
    kill_and_recover(&store, "svc").await;
    let back = lost.elapsed();
    assert!(back < Duration::from_secs(5), "back after {back:?}");
    let out = store
        .call_tool(
            "svc__echo",
            json!({"text": "ok"}).as_object().cloned(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(out.result["content"][0]["text"], "ok");

    // The receiver comes up while the webhook is being retried.
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let mut hooks = receiver(listener);
    let got = deadline(LONG, "the retried POST", hooks.recv())
        .await
        .unwrap();
    assert_eq!(got["alert"], "hook");
    // Both outcomes arrive as events: the webhook after more than one attempt, the broken
    // command failed after its retry, naming what went wrong.
    let mut webhook = None;
    let mut command = None;
    deadline(LONG, "both outcomes", async {
        while webhook.is_none() || command.is_none() {
            match events.next().await {
                Some(Event::AlertSent { rule, attempts, .. }) if rule == "hook" => {
                    webhook = Some(attempts)
                }
                Some(Event::AlertFailed {
                    rule,
                    error,
                    attempts,
                    ..
                }) if rule == "broken" => command = Some((error, attempts)),
                Some(_) => {}
                None => panic!("event stream ended"),
            }
        }
    })
    .await;
    assert!(webhook.unwrap() >= 2, "retried: {webhook:?}");
    let (error, attempts) = command.unwrap();
    assert_eq!(attempts, 2);
    assert!(
        error.contains("exit status: 3") && error.contains("no"),
        "{error}"
    );
    store.shutdown().await;
}
