//! One owner per state dir, and children that can always be found again.
//!
//! [`claim`] takes an exclusive `flock` on `owner.lock` in the state dir (held until the Store
//! shuts down or is dropped; the kernel releases it if the process dies) and writes the
//! owner's pid into it. A second `Store::open` on the same dir is refused, so nothing a live
//! owner recorded is ever reaped.
//!
//! Every server a state dir's owner spawns carries `MCPVISOR_OWNER=<state dir>` in its
//! environment (inherited by its own children). A supervisor SIGKILLed between a spawn and the
//! state-file write leaves a group no record names; the next owner finds it by this mark
//! ([`marked_leftovers`]) — it holds the lock, so every marked process is a dead owner's.
//! `/proc/<pid>/environ` is read by hand (two reads per process; `procfs` would add a
//! dependency for that alone).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use crate::error::StoreError;

/// The environment variable that marks a server as spawned for a state dir.
pub(crate) const OWNER_ENV: &str = "MCPVISOR_OWNER";
/// The lock file inside the state dir.
pub(crate) const OWNER_LOCK: &str = "owner.lock";

/// A held claim on a state dir; dropping it releases the dir.
pub(crate) struct OwnerClaim {
    _lock: Flock<File>,
    /// The mark children carry (the state dir's absolute path).
    pub mark: String,
}

/// Claims `dir` (created with mode 0700 if missing) for this process.
pub(crate) fn claim(dir: &Path) -> Result<OwnerClaim, StoreError> {
    let fail = |message: String| StoreError::Load {
        path: dir.display().to_string(),
        message,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| fail(format!("cannot create the state dir: {e}")))?;
    let path = dir.join(OWNER_LOCK);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(|e| fail(format!("cannot open {}: {e}", path.display())))?;
    let mut lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(l) => l,
        Err((mut file, _)) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            return Err(StoreError::StateDirInUse {
                dir: dir.display().to_string(),
                owner: text.trim().parse().ok(),
            });
        }
    };
    let _ = lock.set_len(0);
    let _ = lock.rewind();
    let _ = writeln!(lock, "{}", std::process::id());
    let _ = lock.flush();
    let mark = std::fs::canonicalize(dir)
        .unwrap_or_else(|_| PathBuf::from(dir))
        .display()
        .to_string();
    Ok(OwnerClaim { _lock: lock, mark })
}

/// Processes (other than this one) whose environment carries `OWNER_ENV=mark`, with their
/// process group ids.
pub(crate) fn marked_leftovers(mark: &str) -> Vec<(u32, u32)> {
    let needle = format!("{OWNER_ENV}={mark}");
    let me = std::process::id();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(env) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        if env.split(|b| *b == 0).any(|kv| kv == needle.as_bytes()) {
            if let Some(pgid) = pgid_of(pid) {
                found.push((pid, pgid));
            }
        }
    }
    found
}

/// The process group of `pid` (field 5 of `/proc/<pid>/stat`).
fn pgid_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: parse after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(2)?.parse().ok()
}

/// SIGKILLs every marked leftover: the whole group of a leader, the process alone otherwise.
/// Returns how many processes were marked.
pub(crate) fn reap_marked(mark: &str) -> usize {
    let found = marked_leftovers(mark);
    for (pid, pgid) in &found {
        if pid == pgid {
            crate::reaper::kill_group_now(*pgid);
        } else {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(*pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    found.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claimed_dir_is_refused_until_released() {
        let dir = tempfile::tempdir().unwrap();
        let first = claim(dir.path()).unwrap();
        match claim(dir.path()) {
            Err(StoreError::StateDirInUse { owner, .. }) => {
                assert_eq!(owner, Some(std::process::id()))
            }
            Err(other) => panic!("expected in use, got {other}"),
            Ok(_) => panic!("a second claim succeeded"),
        }
        drop(first);
        assert!(claim(dir.path()).is_ok());
    }

    #[test]
    fn the_pgid_is_read_even_when_the_command_name_has_spaces_and_parens() {
        assert_eq!(
            pgid_of(std::process::id()),
            Some(nix::unistd::getpgrp().as_raw() as u32)
        );
    }
}
