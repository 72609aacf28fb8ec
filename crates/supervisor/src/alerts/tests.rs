use std::time::{Duration, Instant};

use mcpvisor_model::env::MapEnv;
use mcpvisor_model::{parse_str, ServiceId, ServiceName};

use super::*;
use ServiceState as S;

fn book(alerts: &str) -> AlertBook {
    let text = format!(r#"{{"mcpServers": {{}}, "alerts": {alerts}}}"#);
    let cfg = parse_str(&text, &MapEnv::default()).expect("valid alerts");
    AlertBook::new(cfg.alerts.rules)
}

fn change(name: &str, from: S, to: S) -> Event {
    Event::StateChanged {
        service: ServiceId::global(ServiceName::parse(name).unwrap()),
        from,
        to,
        reason: "r".into(),
        at: Timestamp::now(),
    }
}

fn kinds(n: &[Notice]) -> Vec<(String, &'static str)> {
    n.iter()
        .map(|n| (n.service.clone(), n.kind.as_str()))
        .collect()
}

#[test]
fn a_state_rule_fires_once_per_window_and_recovers_once_back() {
    let mut b = book(
        r#"{"down": {"enters": ["unreachable", "failed"], "command": "true", "every": "10m"}}"#,
    );
    let t0 = Instant::now();
    let n = b.on_event(&change("db", S::Reconnecting, S::Unreachable), t0);
    assert_eq!(kinds(&n), [("db".into(), "firing")]);
    assert!(n[0].reason.contains("db is unreachable"));
    // Within the window: held back, counted.
    assert!(b
        .on_event(
            &change("db", S::Unreachable, S::Failed),
            t0 + Duration::from_secs(1)
        )
        .is_empty());
    assert!(b
        .on_event(&change("db", S::Failed, S::Starting), t0)
        .is_empty());
    let n = b.on_event(
        &change("db", S::Starting, S::Healthy),
        t0 + Duration::from_secs(2),
    );
    assert_eq!(kinds(&n), [("db".into(), "recovered")]);
    // Down again within the window: rate-limited (no firing, so no recovery either).
    assert!(b
        .on_event(
            &change("db", S::Healthy, S::Unreachable),
            t0 + Duration::from_secs(3)
        )
        .is_empty());
    assert!(b
        .on_event(
            &change("db", S::Unreachable, S::Healthy),
            t0 + Duration::from_secs(4)
        )
        .is_empty());
    // After the window: fires again, saying how many were held back.
    let n = b.on_event(
        &change("db", S::Healthy, S::Failed),
        t0 + Duration::from_secs(601),
    );
    assert_eq!(kinds(&n), [("db".into(), "firing")]);
    assert_eq!(n[0].suppressed, 2);
    // Another service has its own window.
    let n = b.on_event(
        &change("api", S::Healthy, S::Failed),
        t0 + Duration::from_secs(601),
    );
    assert_eq!(kinds(&n), [("api".into(), "firing")]);
}

#[test]
fn services_filter_the_rule_and_recovery_can_be_off() {
    let mut b = book(
        r#"{"r": {"enters": "failed", "services": ["db*"], "recovery": false, "webhook": "http://127.0.0.1:1/x"}}"#,
    );
    let t0 = Instant::now();
    assert!(b
        .on_event(&change("api", S::Healthy, S::Failed), t0)
        .is_empty());
    assert_eq!(
        b.on_event(&change("db2", S::Healthy, S::Failed), t0).len(),
        1
    );
    assert!(b
        .on_event(&change("db2", S::Failed, S::Healthy), t0)
        .is_empty());
}

#[test]
fn a_restarts_rule_fires_over_the_bound_within_the_window_and_recovers_after_a_quiet_window() {
    let mut b =
        book(r#"{"flap": {"restarts": {"more_than": 2, "within": "1m"}, "command": "true"}}"#);
    let t0 = Instant::now();
    let lose = |b: &mut AlertBook, at: Duration| {
        b.on_event(&change("db", S::Healthy, S::Reconnecting), t0 + at)
    };
    assert!(lose(&mut b, Duration::ZERO).is_empty());
    assert!(lose(&mut b, Duration::from_secs(10)).is_empty());
    // The first loss left the window: still two.
    assert!(lose(&mut b, Duration::from_secs(61)).is_empty());
    let n = lose(&mut b, Duration::from_secs(62));
    assert_eq!(kinds(&n), [("db".into(), "firing")]);
    assert!(n[0].reason.contains("3 times within 1m"), "{}", n[0].reason);
    // Not yet quiet for a window, or not up: no recovery.
    assert!(b
        .on_tick(t0 + Duration::from_secs(100), |_| true)
        .is_empty());
    assert!(b
        .on_tick(t0 + Duration::from_secs(130), |_| false)
        .is_empty());
    let n = b.on_tick(t0 + Duration::from_secs(130), |_| true);
    assert_eq!(kinds(&n), [("db".into(), "recovered")]);
    assert!(b
        .on_tick(t0 + Duration::from_secs(200), |_| true)
        .is_empty());
}

#[test]
fn a_probe_rule_looks_at_each_new_probe_once() {
    let mut b =
        book(r#"{"slow": {"probe_latency": {"over": "500ms"}, "command": "true", "every": "1s"}}"#);
    let t0 = Instant::now();
    let ms = Duration::from_millis;
    assert!(b.on_probe("db", 1, Some((ms(20), true)), t0).is_empty());
    let n = b.on_probe("db", 2, Some((ms(800), true)), t0);
    assert_eq!(kinds(&n), [("db".into(), "firing")]);
    assert!(
        n[0].reason.contains("took 800ms (over 500ms)"),
        "{}",
        n[0].reason
    );
    // The same probe seen again at the next tick: nothing new.
    assert!(b
        .on_probe("db", 2, Some((ms(800), true)), t0 + ms(5000))
        .is_empty());
    let n = b.on_probe("db", 3, Some((ms(30), true)), t0 + ms(5000));
    assert_eq!(kinds(&n), [("db".into(), "recovered")]);
    let n = b.on_probe("db", 4, Some((ms(5000), false)), t0 + ms(9000));
    assert!(n[0].reason.contains("failed"), "{}", n[0].reason);
}

#[test]
fn bad_rules_are_errors_naming_the_rule_and_field() {
    let bad = [
        (r#"{"x": {"command": "true"}}"#, "alerts.x"),
        (
            r#"{"x": {"enters": ["sad"], "command": "true"}}"#,
            "alerts.x.enters",
        ),
        (r#"{"x": {"enters": "failed"}}"#, "alerts.x"),
        (
            r#"{"x": {"enters": "failed", "webhook": "ftp://h"}}"#,
            "alerts.x.webhook.url",
        ),
        (
            r#"{"x": {"enters": "failed", "command": "true", "every": "soon"}}"#,
            "alerts.x.every",
        ),
        (
            r#"{"x": {"enters": "failed", "command": "true", "evry": "1m"}}"#,
            "alerts.x.evry",
        ),
        (
            r#"{"x": {"restarts": {"within": "1m"}, "command": "true"}}"#,
            "alerts.x.restarts.more_than",
        ),
        (
            r#"{"x": {"enters": "failed", "webhook": {"url": "http://h", "headers": {"A": "${NOPE}"}}}}"#,
            "alerts.x.webhook.headers.A",
        ),
    ];
    for (alerts, field) in bad {
        let text = format!(r#"{{"mcpServers": {{}}, "alerts": {alerts}}}"#);
        let err = parse_str(&text, &MapEnv::default()).expect_err(alerts);
        assert!(err.to_string().contains(field), "{alerts}: {err}");
    }
}
