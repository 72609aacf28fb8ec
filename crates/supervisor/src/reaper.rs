//! Reaping process groups a previous run left behind when it was killed (SIGKILL leaves no
//! chance to clean up). A recorded group is signalled only if it provably still is the group
//! that run started, in this boot (`boot_id` matches):
//! - its leader is alive with the same pid and start time (a pid's start time is unique within
//!   a boot; the command line is not compared, as programs like `npm` rewrite theirs); or
//! - its leader is gone (or a zombie) and the processes still in the group are in the recorded
//!   session and started no earlier than the leader — members the leader left behind.
//!
//! A recycled pid (alive with another start time) is never touched.

use std::time::{Duration, Instant};

use mcpvisor_persistence_actor::ProcessRecord;
use mcpvisor_service_actor::{boot_id, process_identity};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// Kills the groups of `records` that still belong to the recorded processes; returns how many.
pub(crate) fn reap(records: &[ProcessRecord]) -> usize {
    let boot = boot_id();
    let mut reaped = 0;
    for r in records {
        if !r.boot_id.is_empty() && r.boot_id != boot {
            continue; // an earlier boot: nothing of it survives
        }
        let leader = process_identity(r.pid).filter(|l| !l.zombie);
        match leader {
            Some(now) if now.start_time_ticks != r.start_time_ticks || now.pgid != r.pgid => {
                tracing::info!(pid = r.pid, service = %r.service, "recorded pid now belongs to another process; left alone");
                continue;
            }
            Some(_) => {}
            None => {
                // Leader gone: only members it left behind, if any.
                let members = group_members(r.pgid);
                let ours = |(_, start, sid): &(u32, u64, u32)| {
                    *start >= r.start_time_ticks && r.sid != 0 && *sid == r.sid
                };
                if members.is_empty() || !members.iter().all(ours) {
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

/// Live (non-zombie) processes whose process group is `pgid`: (pid, start time, session).
fn group_members(pgid: u32) -> Vec<(u32, u64, u32)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let p = process_identity(pid)?;
            (p.pgid == pgid && !p.zombie).then_some((pid, p.start_time_ticks, p.sid))
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
