//! Shared helpers of the persistence tests: an event recorder, spawning the actor, polling with
//! a deadline, and configs.
#![allow(dead_code)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mcpvisor_model::env::MapEnv;
use mcpvisor_model::{parse_str, Event, ServicesConfig};
use mcpvisor_persistence_actor::{
    PersistStats, PersistenceActor, PersistenceArgs, PersistenceMsg, RetryPolicy,
};
use ractor::{Actor, ActorRef};

/// Records every event the actor reports.
#[derive(Clone, Default)]
pub struct Events(Arc<Mutex<Vec<Event>>>);

impl Events {
    pub fn all(&self) -> Vec<Event> {
        self.0.lock().unwrap().clone()
    }

    /// Messages of the `PersistenceError` events about `path`.
    pub fn errors(&self, path: &Path) -> Vec<String> {
        let want = path.display().to_string();
        self.all()
            .into_iter()
            .filter_map(|e| match e {
                Event::PersistenceError { path, message, .. } if path == want => Some(message),
                _ => None,
            })
            .collect()
    }

    /// How many `PersistenceRecovered` events about `path`.
    pub fn recovered(&self, path: &Path) -> usize {
        let want = path.display().to_string();
        self.all()
            .into_iter()
            .filter(|e| matches!(e, Event::PersistenceRecovered { path, .. } if *path == want))
            .count()
    }
}

/// Arguments writing `dir/mcp.json` and `dir/state`, with a fast retry schedule.
pub fn args(dir: &Path, events: &Events) -> PersistenceArgs {
    let rec = events.clone();
    let mut a = PersistenceArgs::new(dir.join("mcp.json"), dir.join("state"), move |e| {
        rec.0.lock().unwrap().push(e)
    });
    a.coalesce = Duration::from_millis(20);
    a.retry = RetryPolicy {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(100),
    };
    a
}

pub async fn spawn(args: PersistenceArgs) -> ActorRef<PersistenceMsg> {
    let (actor, _handle) = Actor::spawn(None, PersistenceActor, args)
        .await
        .expect("spawn persistence actor");
    actor
}

pub async fn stats(actor: &ActorRef<PersistenceMsg>) -> PersistStats {
    ractor::call_t!(actor, PersistenceMsg::GetStats, 5_000).expect("GetStats answered")
}

/// Polls `check` every 10 ms until it returns `Some`, or panics after `within` naming `what`.
pub async fn eventually<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub fn parse(text: &str) -> ServicesConfig {
    parse_str(text, &MapEnv::default()).expect("test config parses")
}

/// A config of `n` stdio services `s0..s{n-1}` and a top-level `generation` marker.
pub fn config_of(n: usize, generation: usize) -> ServicesConfig {
    let services: Vec<String> = (0..n)
        .map(|i| format!(r#""s{i}": {{"command": "node", "args": ["server-{i}.js"]}}"#))
        .collect();
    parse(&format!(
        r#"{{"generation": {generation}, "mcpServers": {{{}}}}}"#,
        services.join(", ")
    ))
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

pub fn config_path(dir: &Path) -> PathBuf {
    dir.join("mcp.json")
}
