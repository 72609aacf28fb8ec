//! The state file (`state.json` in the state dir): the last-known tools of every service, so
//! tools can be listed before reconnects finish, and the process groups of stdio children, so a
//! supervisor that was `kill -9`ed can reap them on its next start.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use mcpvisor_model::{ServerInfo, Timestamp, ToolList};
use serde::{Deserialize, Serialize};

use crate::error::{LoadError, PersistError};
use crate::file::write_atomic;

/// The state file's name inside the state dir.
pub const STATE_FILE: &str = "state.json";

/// The state file's path inside `state_dir`.
pub fn state_path(state_dir: &Path) -> PathBuf {
    state_dir.join(STATE_FILE)
}

/// Everything the state file holds.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct StateSnapshot {
    /// Last-known tools and server identity, keyed by the service's id as displayed
    /// (`name` or `agent/name`).
    #[serde(default)]
    pub services: BTreeMap<String, ServiceSnapshot>,
    /// Child process groups that may still be alive, for reaping after a crash.
    #[serde(default)]
    pub processes: Vec<ProcessRecord>,
}

/// What was last known about one service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceSnapshot {
    /// Its tools as last listed.
    #[serde(default)]
    pub tools: ToolList,
    /// Its identity from `initialize`, if it got that far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerInfo>,
    /// When this was recorded.
    pub updated_at: Timestamp,
}

/// One child process (group leader) started for a service. `start_time_ticks` (field 22 of
/// `/proc/<pid>/stat`) and `cmdline` tell a reused pid from the original process before
/// anything is killed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessRecord {
    /// The owning service's id as displayed (`name` or `agent/name`).
    pub service: String,
    /// The child's pid.
    pub pid: u32,
    /// Its process group (the child leads its own group).
    pub pgid: u32,
    /// Its start time in clock ticks since boot.
    pub start_time_ticks: u64,
    /// Its command line when it started (informational: programs such as `npm` rewrite it).
    pub cmdline: Vec<String>,
    /// `/proc/sys/kernel/random/boot_id` when it was recorded: records of an earlier boot are
    /// never acted upon (start times restart at every boot).
    #[serde(default)]
    pub boot_id: String,
    /// The session id of the process when recorded: members a vanished leader left behind are
    /// only reaped if they are still in this session. `None` (not recorded) reaps no members.
    /// 0 is a real session: processes started by an init that never called `setsid` (CI
    /// runners, containers) live in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<u32>,
}

/// Reads the state file in `state_dir`. Never fails: a missing file gives the default snapshot
/// and no problem; an unreadable or corrupt one gives the default snapshot and the problem,
/// for the caller to log.
pub fn load_state(state_dir: &Path) -> (StateSnapshot, Option<LoadError>) {
    let path = state_path(state_dir);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return (StateSnapshot::default(), None),
        Err(source) => {
            return (
                StateSnapshot::default(),
                Some(LoadError::Io { path, source }),
            )
        }
    };
    match serde_json::from_slice(&bytes) {
        Ok(snapshot) => (snapshot, None),
        Err(e) => (
            StateSnapshot::default(),
            Some(LoadError::CorruptState {
                path,
                line: e.line(),
                column: e.column(),
                message: e.to_string(),
            }),
        ),
    }
}

/// Writes `snapshot` to the state file in `state_dir` with [`write_atomic`] (the directory
/// must exist).
pub fn write_state(state_dir: &Path, snapshot: &StateSnapshot) -> Result<(), PersistError> {
    let path = state_path(state_dir);
    let mut bytes = serde_json::to_vec(snapshot).map_err(|e| PersistError::Encode {
        path: path.clone(),
        message: e.to_string(),
    })?;
    bytes.push(b'\n');
    write_atomic(&path, &bytes)
}
