//! Delivering one notice: the rule's command and webhook, each on its own, each attempt under
//! the rule's `timeout`, failures retried with doubling delays (`retries` times); the outcome
//! is an `alert_sent` or `alert_failed` event. Nothing here is awaited by supervision.

use std::process::Stdio;
use std::time::Duration;

use mcpvisor_model::defaults::{ALERT_RETRY_INITIAL, ALERT_RETRY_MAX};
use mcpvisor_model::{AlertCommand, AlertRule, Event, Timestamp, Webhook};
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::sync::broadcast;

use super::Notice;

/// The HTTP client webhooks share.
pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .user_agent(concat!("mcpvisor/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default()
}

/// Runs every action of `rule` for `notice` (concurrently) and publishes their outcomes.
pub(crate) async fn deliver(
    rule: &AlertRule,
    notice: &Notice,
    client: &reqwest::Client,
    events: &broadcast::Sender<Event>,
) {
    let payload = notice.payload(rule);
    let command = async {
        if let Some(cmd) = &rule.command {
            let r = attempts(rule, || run_command(cmd, notice, &payload, rule.timeout)).await;
            publish(events, rule, notice, "command", r);
        }
    };
    let webhook = async {
        if let Some(hook) = &rule.webhook {
            let r = attempts(rule, || post(client, hook, &payload, rule.timeout)).await;
            publish(events, rule, notice, "webhook", r);
        }
    };
    tokio::join!(command, webhook);
}

/// Up to `1 + retries` attempts; `Ok(attempts)` or `Err((last error, attempts))`.
async fn attempts<F, Fut>(rule: &AlertRule, mut attempt: F) -> Result<u32, (String, u32)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let mut delay = ALERT_RETRY_INITIAL;
    let mut made = 0;
    loop {
        made += 1;
        match attempt().await {
            Ok(()) => return Ok(made),
            Err(e) if made > rule.retries => return Err((e, made)),
            Err(e) => {
                tracing::debug!(rule = %rule.name, "alert attempt {made} failed: {e}");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(ALERT_RETRY_MAX);
            }
        }
    }
}

fn publish(
    events: &broadcast::Sender<Event>,
    rule: &AlertRule,
    notice: &Notice,
    action: &str,
    outcome: Result<u32, (String, u32)>,
) {
    let event = match outcome {
        Ok(attempts) => Event::AlertSent {
            rule: rule.name.clone(),
            service: notice.service.clone(),
            notice: notice.kind.as_str().into(),
            action: action.into(),
            attempts,
            at: Timestamp::now(),
        },
        Err((error, attempts)) => {
            tracing::warn!(rule = %rule.name, service = %notice.service, "alert {action} failed after {attempts} attempts: {error}");
            Event::AlertFailed {
                rule: rule.name.clone(),
                service: notice.service.clone(),
                notice: notice.kind.as_str().into(),
                action: action.into(),
                error,
                attempts,
                at: Timestamp::now(),
            }
        }
    };
    let _ = events.send(event);
}

/// The command with the notice as JSON on stdin and `MCPVISOR_ALERT`, `MCPVISOR_NOTICE`,
/// `MCPVISOR_SERVICE`, `MCPVISOR_STATE`, `MCPVISOR_REASON` set; success is exit status 0.
async fn run_command(
    cmd: &AlertCommand,
    notice: &Notice,
    payload: &Value,
    timeout: Duration,
) -> Result<(), String> {
    let mut c = match cmd {
        AlertCommand::Shell(text) => {
            let mut c = tokio::process::Command::new("sh");
            c.arg("-c").arg(text);
            c
        }
        AlertCommand::Argv(argv) => {
            let Some((program, args)) = argv.split_first() else {
                return Err("empty command".into());
            };
            let mut c = tokio::process::Command::new(program);
            c.args(args);
            c
        }
    };
    c.env(
        "MCPVISOR_ALERT",
        payload["alert"].as_str().unwrap_or_default(),
    )
    .env("MCPVISOR_NOTICE", notice.kind.as_str())
    .env("MCPVISOR_SERVICE", &notice.service)
    .env(
        "MCPVISOR_STATE",
        notice.state.map(|s| s.as_str()).unwrap_or_default(),
    )
    .env("MCPVISOR_REASON", &notice.reason)
    .stdin(Stdio::piped())
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .kill_on_drop(true);
    let mut child = c
        .spawn()
        .map_err(|e| format!("cannot run the command: {e}"))?;
    let body = serde_json::to_vec(payload).unwrap_or_default();
    let run = async {
        if let Some(mut stdin) = child.stdin.take() {
            // A command that does not read its stdin is fine.
            let _ = stdin.write_all(&body).await;
        }
        child.wait_with_output().await
    };
    match tokio::time::timeout(timeout, run).await {
        Err(_) => Err(format!(
            "the command did not finish within {} (timeout)",
            humantime::format_duration(timeout)
        )),
        Ok(Err(e)) => Err(format!("the command failed: {e}")),
        Ok(Ok(out)) if out.status.success() => Ok(()),
        Ok(Ok(out)) => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let tail = stderr.trim().lines().last().unwrap_or_default().to_owned();
            Err(format!("the command exited with {}: {tail}", out.status))
        }
    }
}

/// POSTs the notice; success is a 2xx answer.
async fn post(
    client: &reqwest::Client,
    hook: &Webhook,
    payload: &Value,
    timeout: Duration,
) -> Result<(), String> {
    let mut req = client
        .post(&hook.url)
        .timeout(timeout)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(serde_json::to_vec(payload).unwrap_or_default());
    for (k, v) in &hook.headers {
        req = req.header(k, v);
    }
    match req.send().await {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => Err(format!("the webhook answered HTTP {}", r.status().as_u16())),
        Err(e) if e.is_timeout() => Err(format!(
            "the webhook did not answer within {} (timeout)",
            humantime::format_duration(timeout)
        )),
        Err(e) if e.is_connect() => Err(format!("cannot connect to {}: {}", hook.url, root(&e))),
        Err(e) => Err(format!("the webhook request failed: {}", root(&e))),
    }
}

/// The innermost cause, in words.
fn root(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}
