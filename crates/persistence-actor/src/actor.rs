//! The persistence actor: holds the latest config and state snapshot, writes them coalesced and
//! atomically, retries failed writes with backoff and reports failures as events.
//!
//! Each file (config, state) has a slot: its pending data, whether a timer is armed, and its
//! failure streak. A change arms the coalescing timer if none is armed; later changes only
//! replace the pending data; when the timer fires, the latest data is written once. A failed
//! write keeps the data, reports the streak once, and arms a retry timer with backoff.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mcpvisor_model::env::{Env, ProcessEnv};
use mcpvisor_model::{Event, ServerInfo, ServicesConfig, Timestamp, ToolList};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::error::PersistError;
use crate::file::remove_stale_temp_files;
use crate::save::{save_config, KnownCell, KnownConfig, Saved};
use crate::state::{load_state, state_path, ProcessRecord, ServiceSnapshot, StateSnapshot};
use crate::streak::{FailureStreak, RetryPolicy, DEFAULT_COALESCE};

/// The persistence actor. Spawn it with [`PersistenceArgs`], talk to it with
/// [`PersistenceMsg`].
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use mcpvisor_persistence_actor::{PersistenceActor, PersistenceArgs, PersistenceMsg};
/// let args = PersistenceArgs::new("mcp.json", "/var/lib/mcpvisor", |event| {
///     eprintln!("{event:?}");
/// });
/// let (actor, _handle) = ractor::Actor::spawn(None, PersistenceActor, args).await?;
/// actor.cast(PersistenceMsg::SaveConfig(Box::default()))?;
/// ractor::call!(actor, PersistenceMsg::Flush)??;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct PersistenceActor;

/// How to spawn a [`PersistenceActor`].
#[derive(Clone)]
pub struct PersistenceArgs {
    /// The config file (an `mcpServers` file).
    pub config_path: PathBuf,
    /// The state dir; the state file is [`crate::STATE_FILE`] inside it. Created if missing.
    pub state_dir: PathBuf,
    /// Changes arriving within this window of the first are written together (default 50 ms).
    pub coalesce: Duration,
    /// Retry schedule of failed writes (default 1 s doubling up to 30 s).
    pub retry: RetryPolicy,
    /// Receives [`Event::PersistenceError`] and [`Event::PersistenceRecovered`]. Called on the
    /// actor's task: keep it quick and non-blocking.
    pub on_event: Arc<dyn Fn(Event) + Send + Sync>,
    /// Expands `${VAR}`s when the config file, edited by hand, is read back for a merge (use
    /// the environment the config was loaded with; default: the process environment).
    pub env: Arc<dyn Env + Send + Sync>,
    /// What the config file held when last read or written, shared with whoever spawns the
    /// actor so a respawned actor continues from it. `None`: the actor reads the file when it
    /// starts and keeps its own cell.
    pub known: Option<KnownCell>,
}

impl PersistenceArgs {
    /// Arguments with the default coalescing window and retry schedule.
    pub fn new(
        config_path: impl Into<PathBuf>,
        state_dir: impl Into<PathBuf>,
        on_event: impl Fn(Event) + Send + Sync + 'static,
    ) -> Self {
        PersistenceArgs {
            config_path: config_path.into(),
            state_dir: state_dir.into(),
            coalesce: DEFAULT_COALESCE,
            retry: RetryPolicy::default(),
            on_event: Arc::new(on_event),
            env: Arc::new(ProcessEnv),
            known: None,
        }
    }

    /// Shares `cell` (see [`PersistenceArgs::known`]).
    pub fn with_known(mut self, cell: KnownCell) -> Self {
        self.known = Some(cell);
        self
    }

    /// Uses `env` to expand `${VAR}`s when reading the config file back.
    pub fn with_env(mut self, env: Arc<dyn Env + Send + Sync>) -> Self {
        self.env = env;
        self
    }
}

impl std::fmt::Debug for PersistenceArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PersistenceArgs")
            .field("config_path", &self.config_path)
            .field("state_dir", &self.state_dir)
            .field("coalesce", &self.coalesce)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

/// Messages of the [`PersistenceActor`].
pub enum PersistenceMsg {
    /// The whole current config. Written within the coalescing window; a burst of saves
    /// becomes one write of the latest. Never written over a file that does not parse.
    SaveConfig(Box<ServicesConfig>),
    /// A service's tools and server identity as last listed (replaces what was recorded).
    SetTools {
        /// The service's id as displayed (`name` or `agent/name`).
        service: String,
        /// Its tools.
        tools: ToolList,
        /// Its identity, if known.
        server: Option<ServerInfo>,
    },
    /// Forgets a service's tools. Its process records stay until [`PersistenceMsg::SetProcesses`]
    /// clears them, so a child that is still alive can always be reaped.
    RemoveService {
        /// The service's id as displayed.
        service: String,
    },
    /// Replaces a service's process records (an empty list clears them). Each record's
    /// `service` is set to `service`.
    SetProcesses {
        /// The service's id as displayed.
        service: String,
        /// Its live children.
        records: Vec<ProcessRecord>,
    },
    /// Writes whatever is pending now and replies with the result (the config's error first).
    Flush(RpcReplyPort<Result<(), PersistError>>),
    /// Replies with the current state snapshot (what the state file holds or is about to).
    GetState(RpcReplyPort<StateSnapshot>),
    /// Replies with write counters.
    GetStats(RpcReplyPort<PersistStats>),
    /// A coalescing or retry timer fired (internal; cannot be built outside this crate).
    #[doc(hidden)]
    Due(Due),
}

/// A timer's payload (internal).
#[doc(hidden)]
#[derive(Debug)]
pub struct Due(Target);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Config,
    State,
}

/// Counters of the actor's writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PersistStats {
    /// Successful writes of the config file.
    pub config_writes: u64,
    /// Successful writes of the state file.
    pub state_writes: u64,
    /// Failed write attempts (both files, including refusals to overwrite an unparseable file).
    pub failed_writes: u64,
    /// A config change is waiting to be written.
    pub config_pending: bool,
    /// A state change is waiting to be written.
    pub state_pending: bool,
}

/// Per-file bookkeeping.
#[derive(Debug, Default)]
struct Slot {
    /// A `Due` timer is scheduled for this file.
    armed: bool,
    streak: FailureStreak,
}

/// The actor's state (opaque).
pub struct PersistenceState {
    config_path: PathBuf,
    state_dir: PathBuf,
    coalesce: Duration,
    retry: RetryPolicy,
    on_event: Arc<dyn Fn(Event) + Send + Sync>,
    env: Arc<dyn Env + Send + Sync>,
    pending_config: Option<Arc<ServicesConfig>>,
    /// The config file as last read or written (to detect and merge edits made by hand).
    known_config: KnownCell,
    config_slot: Slot,
    snapshot: StateSnapshot,
    state_dirty: bool,
    state_slot: Slot,
    stats: PersistStats,
}

impl Actor for PersistenceActor {
    type Msg = PersistenceMsg;
    type State = PersistenceState;
    type Arguments = PersistenceArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let dir = args.state_dir.clone();
        let config_path = args.config_path.clone();
        let env = args.env.clone();
        let read_known = args.known.is_none();
        let (snapshot, problem, known_read) = tokio::task::spawn_blocking(move || {
            let _ = std::fs::create_dir_all(&dir);
            let stale =
                remove_stale_temp_files(&config_path) + remove_stale_temp_files(&state_path(&dir));
            if stale > 0 {
                tracing::info!(
                    count = stale,
                    "removed temp files left by an interrupted write"
                );
            }
            let known = if read_known {
                KnownConfig::read(&config_path, &*env)
            } else {
                None
            };
            let (snapshot, problem) = load_state(&dir);
            (snapshot, problem, known)
        })
        .await
        .unwrap_or_default();
        if let Some(p) = problem {
            tracing::warn!(error = %p, "state file not loaded; starting from an empty state");
        }
        Ok(PersistenceState {
            config_path: args.config_path,
            state_dir: args.state_dir,
            coalesce: args.coalesce,
            retry: args.retry,
            on_event: args.on_event,
            env: args.env,
            pending_config: None,
            known_config: args
                .known
                .unwrap_or_else(|| Arc::new(std::sync::Mutex::new(known_read))),
            config_slot: Slot::default(),
            snapshot,
            state_dirty: false,
            state_slot: Slot::default(),
            stats: PersistStats::default(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            PersistenceMsg::SaveConfig(cfg) => {
                state.pending_config = Some(Arc::from(cfg));
                state.schedule(&myself, Target::Config);
            }
            PersistenceMsg::SetTools {
                service,
                tools,
                server,
            } => {
                let snap = ServiceSnapshot {
                    tools,
                    server,
                    updated_at: Timestamp::now(),
                };
                state.snapshot.services.insert(service, snap);
                state.state_changed(&myself);
            }
            PersistenceMsg::RemoveService { service } => {
                if state.snapshot.services.remove(&service).is_some() {
                    state.state_changed(&myself);
                }
            }
            PersistenceMsg::SetProcesses { service, records } => {
                let before = state.snapshot.processes.len();
                state.snapshot.processes.retain(|r| r.service != service);
                let changed = before != state.snapshot.processes.len() || !records.is_empty();
                state
                    .snapshot
                    .processes
                    .extend(records.into_iter().map(|r| ProcessRecord {
                        service: service.clone(),
                        ..r
                    }));
                if changed {
                    state.state_changed(&myself);
                }
            }
            PersistenceMsg::Flush(reply) => {
                let result = state.flush(&myself).await;
                let _ = reply.send(result);
            }
            PersistenceMsg::GetState(reply) => {
                let _ = reply.send(state.snapshot.clone());
            }
            PersistenceMsg::GetStats(reply) => {
                let _ = reply.send(state.stats());
            }
            PersistenceMsg::Due(Due(target)) => {
                state.slot(target).armed = false;
                if state.is_pending(target) {
                    let _ = state.write(&myself, target).await;
                }
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if let Err(e) = state.flush(&myself).await {
            tracing::warn!(error = %e, "pending changes could not be written at shutdown");
        }
        Ok(())
    }
}

impl PersistenceState {
    fn slot(&mut self, target: Target) -> &mut Slot {
        match target {
            Target::Config => &mut self.config_slot,
            Target::State => &mut self.state_slot,
        }
    }

    fn path(&self, target: Target) -> PathBuf {
        match target {
            Target::Config => self.config_path.clone(),
            Target::State => state_path(&self.state_dir),
        }
    }

    fn is_pending(&self, target: Target) -> bool {
        match target {
            Target::Config => self.pending_config.is_some(),
            Target::State => self.state_dirty,
        }
    }

    fn stats(&self) -> PersistStats {
        PersistStats {
            config_pending: self.pending_config.is_some(),
            state_pending: self.state_dirty,
            ..self.stats
        }
    }

    fn state_changed(&mut self, myself: &ActorRef<PersistenceMsg>) {
        self.state_dirty = true;
        self.schedule(myself, Target::State);
    }

    /// Arms the coalescing timer unless a timer (coalescing or retry) is already armed: then
    /// that timer writes the latest data.
    fn schedule(&mut self, myself: &ActorRef<PersistenceMsg>, target: Target) {
        let delay = self.coalesce;
        self.arm(myself, target, delay);
    }

    fn arm(&mut self, myself: &ActorRef<PersistenceMsg>, target: Target, delay: Duration) {
        let slot = self.slot(target);
        if slot.armed {
            return;
        }
        slot.armed = true;
        myself.send_after(delay, move || PersistenceMsg::Due(Due(target)));
    }

    /// Writes both files if pending; the config's error is returned first.
    async fn flush(&mut self, myself: &ActorRef<PersistenceMsg>) -> Result<(), PersistError> {
        let config = if self.pending_config.is_some() {
            self.write(myself, Target::Config).await
        } else {
            Ok(())
        };
        let state = if self.state_dirty {
            self.write(myself, Target::State).await
        } else {
            Ok(())
        };
        config.and(state)
    }

    /// One write attempt of `target`'s pending data, with its bookkeeping: counters, events,
    /// and the retry timer on failure (the data stays pending).
    async fn write(
        &mut self,
        myself: &ActorRef<PersistenceMsg>,
        target: Target,
    ) -> Result<(), PersistError> {
        let path = self.path(target);
        let result = match target {
            Target::Config => match self.pending_config.clone() {
                Some(cfg) => {
                    // No message is handled while this awaits, so nothing newer can arrive.
                    let known = self
                        .known_config
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .clone();
                    match save_config_blocking(path.clone(), cfg, known, self.env.clone()).await {
                        Ok(saved) => {
                            self.pending_config = None;
                            self.after_save(&path, saved);
                            Ok(())
                        }
                        Err(e) => Err(e),
                    }
                }
                None => Ok(()),
            },
            Target::State => {
                let result = write_state_blocking(&self.state_dir, &path, &self.snapshot).await;
                if result.is_ok() {
                    self.state_dirty = false;
                }
                result
            }
        };
        match &result {
            Ok(()) => {
                if target == Target::State {
                    self.stats.state_writes += 1;
                }
                if self.slot(target).streak.succeeded() {
                    tracing::info!(path = %path.display(), "write succeeded again");
                    self.emit(Event::PersistenceRecovered {
                        path: path.display().to_string(),
                        at: Timestamp::now(),
                    });
                }
            }
            Err(e) => {
                self.stats.failed_writes += 1;
                let reason = e.to_string();
                let slot = self.slot(target);
                let report = slot.streak.failed(&reason);
                let failures = slot.streak.failures();
                let delay = self.retry.delay(failures);
                tracing::warn!(path = %path.display(), error = %reason, failures, retry_in = ?delay, "write failed; changes kept, retrying");
                if report {
                    self.emit(Event::PersistenceError {
                        path: path.display().to_string(),
                        message: reason,
                        at: Timestamp::now(),
                    });
                }
                self.arm(myself, target, delay);
            }
        }
        result
    }

    /// Bookkeeping of a successful config save: counters, the file as it is now, and the
    /// report of a merge with hand edits.
    fn after_save(&mut self, path: &Path, saved: Saved) {
        if saved.wrote {
            self.stats.config_writes += 1;
        }
        if saved.merged {
            tracing::info!(path = %path.display(), wrote = saved.wrote, "the config file was edited by hand; runtime changes merged into it");
        }
        if !saved.conflicts.is_empty() {
            let services = saved.conflicts.join(", ");
            tracing::warn!(path = %path.display(), %services, "hand edits kept over runtime changes");
            self.emit(Event::PersistenceError {
                path: path.display().to_string(),
                message: format!(
                    "the file was edited by hand since mcpvisor last wrote it; kept the file's version of {services} (their runtime changes are not saved)"
                ),
                at: Timestamp::now(),
            });
        }
        *self
            .known_config
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(saved.known);
    }

    fn emit(&self, event: Event) {
        let on_event = &self.on_event;
        if std::panic::catch_unwind(AssertUnwindSafe(|| on_event(event))).is_err() {
            tracing::error!("the persistence event callback panicked; event dropped");
        }
    }
}

/// Saves the config file (merging hand edits) off the actor's thread.
async fn save_config_blocking(
    path: PathBuf,
    cfg: Arc<ServicesConfig>,
    known: Option<KnownConfig>,
    env: Arc<dyn Env + Send + Sync>,
) -> Result<Saved, PersistError> {
    let task_path = path.clone();
    tokio::task::spawn_blocking(move || {
        if let Some(parent) = task_path.parent().filter(|p| !p.as_os_str().is_empty()) {
            // A failure here shows up, better named, as the write's own error.
            let _ = std::fs::create_dir_all(parent);
        }
        save_config(&task_path, &cfg, known.as_ref(), &*env)
    })
    .await
    .unwrap_or_else(|e| join_failed(path, e))
}

/// The blocking write task panicked (not expected): reported like an I/O failure, retried.
fn join_failed<T>(path: PathBuf, e: tokio::task::JoinError) -> Result<T, PersistError> {
    Err(PersistError::Io {
        path,
        op: "run the write task",
        source: std::io::Error::other(e.to_string()),
    })
}

/// Encodes the snapshot here and writes it off the actor's thread.
async fn write_state_blocking(
    dir: &Path,
    path: &Path,
    snapshot: &StateSnapshot,
) -> Result<(), PersistError> {
    let mut bytes = serde_json::to_vec(snapshot).map_err(|e| PersistError::Encode {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    bytes.push(b'\n');
    let (dir, path) = (dir.to_path_buf(), path.to_path_buf());
    let task_path = path.clone();
    tokio::task::spawn_blocking(move || {
        let _ = std::fs::create_dir_all(&dir);
        crate::file::write_atomic(&task_path, &bytes)
    })
    .await
    .unwrap_or_else(|e| join_failed(path, e))
}
