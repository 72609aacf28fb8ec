//! Reaping process groups a previous run left behind when it was killed (SIGKILL leaves no
//! chance to clean up). A recorded group is signalled only if its leader is still the same
//! process: same pid, same start time, same command line. A recycled pid is never touched.

use std::time::{Duration, Instant};

use mcpvisor_persistence_actor::ProcessRecord;
use mcpvisor_service_actor::process_identity;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// Kills the groups of `records` that still belong to the recorded processes; returns how many.
pub(crate) fn reap(records: &[ProcessRecord]) -> usize {
    let mut reaped = 0;
    for r in records {
        let Some(now) = process_identity(r.pid) else {
            continue;
        };
        if now.start_time_ticks != r.start_time_ticks || now.cmdline != r.cmdline {
            tracing::info!(pid = r.pid, service = %r.service, "recorded pid now belongs to another process; left alone");
            continue;
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

/// SIGKILLs group `pgid` at once (used when a `Store` is dropped without `shutdown`).
pub(crate) fn kill_group_now(pgid: u32) {
    if let Ok(p) = i32::try_from(pgid) {
        if p > 1 {
            let _ = killpg(Pid::from_raw(p), Signal::SIGKILL);
        }
    }
}
