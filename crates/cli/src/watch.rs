//! `run --watch`: follow the config file and apply only what changed.
//!
//! The file is polled every [`POLL`]; a change is acted on once the content has stayed the same
//! for one more poll (so a half-written file is not read). A valid new version is handed to
//! `Store::apply`, which reconciles the fleet to it as a diff (the supervisor decides; this
//! only reads the file and prints what was done). An invalid version is reported and ignored. The supervisor's own writes to the file compare equal and do nothing.

use std::path::PathBuf;
use std::time::Duration;

use mcpvisor_model::env::ProcessEnv;
use mcpvisor_model::{parse_str, Timestamp};
use mcpvisor_supervisor::Store;
use tokio_util::sync::CancellationToken;

use crate::output::println;

/// How often the file is read.
pub const POLL: Duration = Duration::from_millis(300);

/// Polls `path` until `cancel` fires, applying every valid change.
pub async fn watch(store: Store, path: PathBuf, cancel: CancellationToken) {
    let mut seen: Option<Vec<u8>> = tokio::fs::read(&path).await.ok();
    let mut acted_on = seen.clone();
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    println(&format!("watching {} for changes", path.display()));
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = tokio::fs::read(&path).await.ok();
        if now != seen {
            // Changed since the last poll: act once it holds still.
            seen = now;
            continue;
        }
        if now == acted_on {
            continue;
        }
        acted_on = now.clone();
        let Some(bytes) = now else {
            say(&format!(
                "{} is gone; services are kept as they are",
                path.display()
            ));
            continue;
        };
        let text = String::from_utf8_lossy(&bytes);
        let wanted = match parse_str(&text, &ProcessEnv) {
            Ok(c) => c,
            Err(errors) => {
                say(&format!(
                    "config edit ignored ({} error{}); fix the file and save again:",
                    errors.len(),
                    if errors.len() == 1 { "" } else { "s" }
                ));
                for e in errors.iter() {
                    println(&format!("  {}: {e}", path.display()));
                }
                continue;
            }
        };
        match store.apply(&wanted).await {
            Ok(lines) if lines.is_empty() => {}
            Ok(lines) => {
                say(&format!("{} changed:", path.display()));
                for line in lines {
                    say(&line);
                }
            }
            Err(e) => say(&format!("cannot apply the edit: {e}")),
        }
    }
}

fn say(text: &str) {
    println(&format!("{}  {text}", Timestamp::now().rfc3339()));
}
