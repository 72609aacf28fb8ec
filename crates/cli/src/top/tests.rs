//! Snapshot tests of the dashboard's screens on ratatui's test backend.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use mcpvisor_model::ServiceState;
use mcpvisor_supervisor::ServiceView;
use ratatui::backend::TestBackend;
use ratatui::Terminal;
use serde_json::json;

use super::model::{Action, Dashboard};

fn view(name: &str, state: ServiceState, extra: serde_json::Value) -> ServiceView {
    let mut v = json!({
        "id": {"name": name}, "name": name, "state": state, "reason": "connected",
        "transport": "stdio", "tools": 6, "tools_stale": false, "restarts": 0,
        "pid": 4242, "last_error": null, "config": {}, "server": null,
        "metrics": {"availability_pct": 100.0, "calls": 12, "call_errors": 0, "probes": 3,
                    "probe_failures": 0, "restarts": 0, "transitions": 2,
                    "call_latency": {"p50_ms": 0.21, "p95_ms": 0.48, "max_ms": 1.0, "samples": 12},
                    "probe_latency": {"p50_ms": null, "p95_ms": null, "max_ms": null, "samples": 0}},
        "state_for_ms": 65_000
    });
    if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    serde_json::from_value(v).expect("a view")
}

fn fleet() -> Vec<ServiceView> {
    vec![
        view("files", ServiceState::Healthy, json!({})),
        view(
            "db",
            ServiceState::Reconnecting,
            json!({"reason": "child exited: signal 9", "restarts": 3, "pid": null,
                   "last_error": "child exited: signal 9", "state_for_ms": 1200,
                   "metrics": {"availability_pct": 97.5, "calls": 40, "call_errors": 1, "probes": 9,
                               "probe_failures": 0, "restarts": 3, "transitions": 8,
                               "call_latency": {"p50_ms": 12.4, "p95_ms": 30.0, "max_ms": 41.0, "samples": 40},
                               "probe_latency": {"p50_ms": null, "p95_ms": null, "max_ms": null, "samples": 0}}}),
        ),
        view(
            "search",
            ServiceState::Idle,
            json!({"reason": "no calls for 10m (idle_stop); the next call starts it", "pid": null,
                   "state_for_ms": 7_300_000, "on_demand": true}),
        ),
    ]
}

fn screen(d: &Dashboard, width: u16, height: u16) -> Vec<String> {
    let mut t = Terminal::new(TestBackend::new(width, height)).unwrap();
    t.draw(|f| super::draw::draw(f, d)).unwrap();
    let buf = t.backend().buffer().clone();
    (0..height)
        .map(|y| {
            (0..width)
                .map(|x| buf[(x, y)].symbol().to_owned())
                .collect::<String>()
                .trim_end()
                .to_owned()
        })
        .collect()
}

fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

#[test]
fn the_services_screen() {
    let mut d = Dashboard::default();
    d.update(fleet());
    d.update(fleet());
    let s = screen(&d, 110, 18);
    assert_eq!(s, SERVICES);
}

#[test]
fn keys_select_act_and_open_logs() {
    let mut d = Dashboard::default();
    d.update(fleet());
    assert_eq!(d.selected_name().as_deref(), Some("db"), "sorted by name");
    assert_eq!(d.key(key(KeyCode::Down)), None);
    assert_eq!(d.selected_name().as_deref(), Some("files"));
    assert_eq!(
        d.key(key(KeyCode::Char('r'))),
        Some(Action::Restart("files".into()))
    );
    assert_eq!(
        d.key(key(KeyCode::Char('x'))),
        Some(Action::Stop("files".into()))
    );
    assert_eq!(
        d.key(key(KeyCode::Char('s'))),
        Some(Action::Start("files".into()))
    );
    assert_eq!(
        d.key(key(KeyCode::Char('l'))),
        Some(Action::Logs("files".into()))
    );
    // The selection follows the service when the list changes.
    let mut more = fleet();
    more.push(view("alpha", ServiceState::Healthy, json!({})));
    d.update(more);
    assert_eq!(d.selected_name().as_deref(), Some("files"));
    d.logs = Some((
        "files".into(),
        vec!["listening on stdio".into(), "ready".into()],
    ));
    let s = screen(&d, 110, 18);
    assert_eq!(s, LOGS);
    assert_eq!(d.key(key(KeyCode::Esc)), None, "Esc closes the logs first");
    assert!(d.logs.is_none());
    assert_eq!(d.key(key(KeyCode::Char('q'))), Some(Action::Quit));
}

const SERVICES: [&str; 18] = [
    "mcpvisor top — 1/3 up, 1 idle",
    "──────────────────────────────────────────────────────────────────────────────────────────────────────────────",
    "  SERVICE            STATE        FOR    RESTARTS TOOLS CALLS   P50      P95      AVAIL   HISTORY",
    "> db                 reconnecting 1s     3        6     40      12ms     30ms     97.5%   ▁▁",
    "  files              healthy      65s    0        6     12      0.21ms   0.48ms   100.0%  ▇▇",
    "  search             idle         2h     0        6     12      0.21ms   0.48ms   100.0%  ··",
    "",
    "",
    "──────────────────────────────────────────────────────────────────────────────────────────────────────────────",
    "┌ db ───────────────────────────────────────────────────────┐┌ call p50, last 60 reads ──────────────────────┐",
    "│reconnecting: child exited: signal 9                       ││██                                             │",
    "│last error: child exited: signal 9                         ││██                                             │",
    "│stdio                                                      ││██                                             │",
    "│                                                           ││██                                             │",
    "│                                                           ││██                                             │",
    "│                                                           ││██                                             │",
    "└───────────────────────────────────────────────────────────┘└───────────────────────────────────────────────┘",
    "↑/↓ select  s start  x stop  r restart  l logs  q quit",
];

const LOGS: [&str; 18] = [
    "mcpvisor top — 2/4 up, 1 idle",
    "──────────────────────────────────────────────────────────────────────────────────────────────────────────────",
    "  SERVICE            STATE        FOR    RESTARTS TOOLS CALLS   P50      P95      AVAIL   HISTORY",
    "  alpha              healthy      65s    0        6     12      0.21ms   0.48ms   100.0%  ▇",
    "  db                 reconnecting 1s     3        6     40      12ms     30ms     97.5%   ▁▁",
    "> files              healthy      65s    0        6     12      0.21ms   0.48ms   100.0%  ▇▇",
    "  search             idle         2h     0        6     12      0.21ms   0.48ms   100.0%  ··",
    "",
    "──────────────────────────────────────────────────────────────────────────────────────────────────────────────",
    "┌ files: stderr (l or Esc closes) ───────────────────────────────────────────────────────────────────────────┐",
    "│listening on stdio                                                                                          │",
    "│ready                                                                                                       │",
    "│                                                                                                            │",
    "│                                                                                                            │",
    "│                                                                                                            │",
    "│                                                                                                            │",
    "└────────────────────────────────────────────────────────────────────────────────────────────────────────────┘",
    "↑/↓ select  s start  x stop  r restart  l logs  q quit",
];
