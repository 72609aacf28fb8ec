//! # mcpvisor-persistence-actor
//!
//! The config file and the state snapshot on disk.
//!
//! The [`PersistenceActor`] holds the latest configuration and the state snapshot (last-known
//! tools, child process groups) and writes them in the background: bursts of changes coalesce
//! into one write of the latest data, failed writes are kept and retried with backoff, and
//! failures are reported as [`mcpvisor_model::Event::PersistenceError`] /
//! [`mcpvisor_model::Event::PersistenceRecovered`] events — the runtime keeps serving.
//! The file functions ([`write_atomic`], [`write_config`], [`load_config`], [`load_state`],
//! [`write_state`]) work without the actor.
//!
//! **Invariant:** a file on disk is always either the previous or the next complete version
//! (temp file, fsync, rename, fsync directory; the previous one kept as `<file>.bak`), and a
//! config file that does not parse is never overwritten. The actor never stops on an I/O error.
//! A config file edited by hand since the actor last read or wrote it is never replaced
//! wholesale: the runtime's changes are merged into it service by service ([`merge()`]).
#![warn(missing_docs)]

mod actor;
mod error;
mod file;
mod merge;
mod save;
mod state;
mod streak;

#[doc(hidden)]
pub use actor::Due;
pub use actor::{
    PersistStats, PersistenceActor, PersistenceArgs, PersistenceMsg, PersistenceState,
};
pub use error::{LoadError, PersistError};
pub use file::{
    backup_path, check_overwritable, is_temp_file_of, load_config, remove_stale_temp_files,
    write_atomic, write_config,
};
pub use merge::{merge, Merged};
pub use save::{load_config_known, KnownCell, KnownConfig, SETTLE};
pub use state::{
    load_state, state_path, write_state, ProcessRecord, ServiceSnapshot, StateSnapshot, STATE_FILE,
};
pub use streak::{RetryPolicy, DEFAULT_COALESCE, DEFAULT_RETRY_INITIAL, DEFAULT_RETRY_MAX};
