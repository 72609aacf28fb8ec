//! Reaping process groups a previous run left behind when it was killed (SIGKILL leaves no
//! chance to clean up). A recorded group is signalled only if it provably still is the group
//! that run started, in this boot (`boot_id` matches):
//! - its leader is alive with the same pid and start time (a pid's start time is unique within
//!   a boot; the command line is not compared, as programs like `npm` rewrite theirs); or
//! - its leader is gone (or a zombie) and the processes still in the group are in the recorded
//!   session (0 included: the session of an init that never called `setsid`, as on CI
//!   runners) and started no earlier than the leader — members the leader left behind.
//!
//! A recycled pid (alive with another start time) is never touched.

use std::time::{Duration, Instant};

use mcpvisor_persistence_actor::ProcessRecord;
use mcpvisor_service_actor::{boot_id, process_identity, ProcessIdentity};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// A live member of a recorded group, as seen now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Member {
    pub start_time_ticks: u64,
    pub sid: u32,
}

/// Whether the group of `r` provably still is the one the previous run started, given its
/// leader as seen now (`None`: gone or a zombie) and the live members of the group (asked
/// only when the leader is gone). Pure, so each case is unit-tested.
pub(crate) fn still_ours(
    r: &ProcessRecord,
    boot: &str,
    leader: Option<&ProcessIdentity>,
    members: impl FnOnce() -> Vec<Member>,
) -> bool {
    if !r.boot_id.is_empty() && r.boot_id != boot {
        return false; // an earlier boot: nothing of it survives
    }
    if r.pgid <= 1 || i32::try_from(r.pgid).is_err() {
        return false;
    }
    match leader {
        Some(now) => now.start_time_ticks == r.start_time_ticks && now.pgid == r.pgid,
        None => {
            // Leader gone: only members it left behind, if any. A group id outlives its
            // leader only while such members exist, so these can only be a recycled group if
            // the pid was reused as a new group leader that has died too; the session and
            // start time checks make that (already remote) case need the same session.
            let Some(sid) = r.sid else {
                return false;
            };
            let members = members();
            !members.is_empty()
                && members
                    .iter()
                    .all(|m| m.start_time_ticks >= r.start_time_ticks && m.sid == sid)
        }
    }
}

/// Kills the groups of `records` that still belong to the recorded processes; returns how many.
pub(crate) fn reap(records: &[ProcessRecord]) -> usize {
    let boot = boot_id();
    let mut reaped = 0;
    for r in records {
        let leader = process_identity(r.pid).filter(|l| !l.zombie);
        if !still_ours(r, &boot, leader.as_ref(), || group_members(r.pgid)) {
            if leader.is_some() {
                tracing::info!(pid = r.pid, service = %r.service, "recorded pid now belongs to another process; left alone");
            }
            continue;
        }
        let Ok(pgid) = i32::try_from(r.pgid) else {
            continue;
        };
        let pg = Pid::from_raw(pgid);
        let _ = killpg(pg, Signal::SIGTERM);
        let start = Instant::now();
        while killpg(pg, None).is_ok() && start.elapsed() < mcpvisor_model::defaults::REAP_WAIT {
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = killpg(pg, Signal::SIGKILL);
        tracing::warn!(pid = r.pid, service = %r.service, "reaped orphaned process group");
        reaped += 1;
    }
    reaped
}

/// Live (non-zombie) processes whose process group is `pgid`.
fn group_members(pgid: u32) -> Vec<Member> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let p = process_identity(pid)?;
            (p.pgid == pgid && !p.zombie).then_some(Member {
                start_time_ticks: p.start_time_ticks,
                sid: p.sid,
            })
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

#[cfg(test)]
mod tests {
    use super::*;

    const BOOT: &str = "this-boot";

    fn record(sid: Option<u32>) -> ProcessRecord {
        ProcessRecord {
            service: "svc".into(),
            pid: 4242,
            pgid: 4242,
            start_time_ticks: 1_000,
            cmdline: vec!["server".into()],
            boot_id: BOOT.into(),
            sid,
        }
    }

    fn leader(start_time_ticks: u64, pgid: u32) -> ProcessIdentity {
        ProcessIdentity {
            start_time_ticks,
            cmdline: Vec::new(),
            sid: 7,
            pgid,
            zombie: false,
        }
    }

    fn member(start_time_ticks: u64, sid: u32) -> Member {
        Member {
            start_time_ticks,
            sid,
        }
    }

    fn no_members() -> Vec<Member> {
        panic!("members must not be asked for while the leader is alive")
    }

    #[test]
    fn a_live_leader_is_ours_only_with_the_recorded_start_time_and_group() {
        let r = record(Some(7));
        assert!(still_ours(&r, BOOT, Some(&leader(1_000, 4242)), no_members));
        assert!(!still_ours(
            &r,
            BOOT,
            Some(&leader(1_001, 4242)),
            no_members
        ));
        assert!(!still_ours(&r, BOOT, Some(&leader(1_000, 99)), no_members));
    }

    #[test]
    fn records_of_another_boot_or_of_init_are_never_acted_on() {
        let r = record(Some(7));
        assert!(!still_ours(
            &r,
            "other-boot",
            Some(&leader(1_000, 4242)),
            no_members
        ));
        let mut init = record(Some(7));
        init.pgid = 1;
        assert!(!still_ours(
            &init,
            BOOT,
            Some(&leader(1_000, 1)),
            no_members
        ));
    }

    #[test]
    fn members_left_by_a_vanished_leader_are_ours_in_the_recorded_session() {
        let r = record(Some(7));
        assert!(still_ours(&r, BOOT, None, || vec![
            member(1_000, 7),
            member(1_500, 7)
        ]));
        // Another session, or started before the leader: not what it left behind.
        assert!(!still_ours(&r, BOOT, None, || vec![
            member(1_500, 7),
            member(1_500, 8)
        ]));
        assert!(!still_ours(&r, BOOT, None, || vec![member(999, 7)]));
        // Nothing left: nothing to do.
        assert!(!still_ours(&r, BOOT, None, Vec::new));
    }

    #[test]
    fn session_zero_is_a_real_session_but_an_unrecorded_one_reaps_no_members() {
        // Processes of an init that never called setsid (CI runners, containers) are in
        // session 0: the grandchild of a server there must still be reaped (a CI failure).
        assert!(still_ours(&record(Some(0)), BOOT, None, || vec![member(
            1_200, 0
        )]));
        assert!(!still_ours(&record(Some(0)), BOOT, None, || vec![member(
            1_200, 5
        )]));
        assert!(!still_ours(&record(None), BOOT, None, || vec![member(
            1_200, 0
        )]));
    }
}
