//! Reaping process groups a previous run left behind when it was killed (SIGKILL leaves no
//! chance to clean up). A recorded group is signalled only if it provably is still the group
//! that run started:
//! - its leader is alive with the same pid, start time and command line; or
//! - its leader is gone (no process has the group's id as pid) and every process still in the
//!   group started no earlier than the recorded leader — members the leader left behind (a pid
//!   is not reused as a group id while the group has members, so the id cannot have passed to
//!   a new group in between).
//!
//! A recycled pid (alive, but another start time or command line) is never touched.

use std::time::{Duration, Instant};

use mcpvisor_persistence_actor::ProcessRecord;
use mcpvisor_service_actor::process_identity;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// Kills the groups of `records` that still belong to the recorded processes; returns how many.
pub(crate) fn reap(records: &[ProcessRecord]) -> usize {
    let mut reaped = 0;
    for r in records {
        // A zombie leader (exited, not yet reaped by init) counts as gone: its cmdline is empty.
        let leader = process_identity(r.pid).filter(|_| !is_zombie(r.pid));
        match leader {
            Some(now) if now.start_time_ticks != r.start_time_ticks || now.cmdline != r.cmdline => {
                tracing::info!(pid = r.pid, service = %r.service, "recorded pid now belongs to another process; left alone");
                continue;
            }
            Some(_) => {}
            None => {
                // Leader gone: only members it left behind, if any.
                let members = group_members(r.pgid);
                if members.is_empty()
                    || members.iter().any(|(_, start)| *start < r.start_time_ticks)
                {
                    continue;
                }
            }
        }
        let Ok(pgid) = i32::try_from(r.pgid) else {
            continue;
        };
        if pgid <= 1 {
            continue;
        }
        let pg = Pid::from_raw(pgid);
        let _ = killpg(pg, Signal::SIGTERM);
        let start = Instant::now();
        while killpg(pg, None).is_ok() && start.elapsed() < Duration::from_millis(500) {
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = killpg(pg, Signal::SIGKILL);
        tracing::warn!(pid = r.pid, service = %r.service, "reaped orphaned process group");
        reaped += 1;
    }
    reaped
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let rest = s[s.rfind(')')? + 1..].to_owned();
            rest.split_whitespace()
                .next()
                .map(|st| st == "Z" || st == "X")
        })
        .unwrap_or(false)
}

/// Processes whose process group is `pgid`, with their start times (from `/proc`).
fn group_members(pgid: u32) -> Vec<(u32, u64)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let rest = &stat[stat.rfind(')')? + 1..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            // After the command: state(0) ppid(1) pgrp(2) ... starttime(19).
            let pgrp: u32 = f.get(2)?.parse().ok()?;
            let start: u64 = f.get(19)?.parse().ok()?;
            (pgrp == pgid && f.first() != Some(&"Z")).then_some((pid, start))
        })
        .collect()
}

/// SIGKILLs group `pgid` at once (used when a `Store` is dropped without `shutdown`).
pub(crate) fn kill_group_now(pgid: u32) {
    if let Ok(p) = i32::try_from(pgid) {
        if p > 1 {
            let _ = killpg(Pid::from_raw(p), Signal::SIGKILL);
        }
    }
}
