//! Child processes in their own process group: spawn, signal the group, guard against leaks,
//! drain stderr, and identify a process for safe reaping (start time and command line from
//! `/proc`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;

use mcpvisor_model::LogRing;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::net::unix::pipe;
use tokio::process::{Child, ChildStdin, Command};

/// What to run.
#[derive(Debug, Clone)]
pub struct SpawnSpec {
    /// Program.
    pub command: String,
    /// Arguments.
    pub args: Vec<String>,
    /// Its own environment variables.
    pub env: BTreeMap<String, String>,
    /// What it inherits of this process's environment (nothing else reaches it).
    pub inherit: mcpvisor_model::EnvInherit,
    /// What it is kept from.
    pub sandbox: mcpvisor_model::Sandbox,
    /// Working directory.
    pub cwd: Option<PathBuf>,
}

/// A spawned server: the leader of its own process group.
pub struct Spawned {
    /// The child (its pid is the group id).
    pub child: Child,
    /// Its stdin.
    pub stdin: ChildStdin,
    /// Its stdout (a pipe that says when it has data: nothing is buffered while it idles).
    pub stdout: pipe::Receiver,
    /// Its stderr (the same).
    pub stderr: pipe::Receiver,
    /// Pid = process group id.
    pub pid: u32,
    /// Kills the group when dropped.
    pub guard: GroupGuard,
    /// Its cgroup, if its sandbox has one (emptied and removed when dropped).
    pub(crate) cgroup: Option<crate::sandbox::Cgroup>,
    /// What of its sandbox applies (for `status`), if it has one.
    pub sandbox: Option<serde_json::Value>,
}

/// Why a server could not be started.
#[derive(Debug)]
pub enum SpawnError {
    /// Its sandbox cannot be given (in words, naming the field).
    Sandbox(String),
    /// The system refused the spawn.
    Io(std::io::Error),
}

impl From<std::io::Error> for SpawnError {
    fn from(e: std::io::Error) -> Self {
        SpawnError::Io(e)
    }
}

/// Spawns `spec` (service `service`'s server) as the leader of a new process group with all
/// three pipes, in its sandbox.
pub fn spawn(service: &str, spec: &SpawnSpec) -> Result<Spawned, SpawnError> {
    let env = spec.inherit.environment(
        std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
        &spec.env,
    );
    let confinement = crate::sandbox::Confinement::prepare(
        &spec.sandbox,
        service,
        &spec.command,
        spec.cwd.as_deref(),
        &env,
    )
    .map_err(SpawnError::Sandbox)?;
    let mut cmd = Command::new(&spec.command);
    cmd.args(&spec.args)
        .env_clear()
        .envs(env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if let Some(cwd) = &spec.cwd {
        cmd.current_dir(cwd);
    }
    let sandbox = confinement.as_ref().map(|c| c.effective().clone());
    let own_namespace = confinement.as_ref().is_some_and(|c| c.has_user_namespace());
    let cgroup = confinement.and_then(|c| c.install(&mut cmd));
    let mut child = cmd.spawn()?;
    let pid = child
        .id()
        .ok_or_else(|| std::io::Error::other("child exited before its pid was read"))?;
    let guard = GroupGuard::new(pid);
    if own_namespace {
        crate::sandbox::remember_namespace(pid);
    }
    let (Some(stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(std::io::Error::other("child pipes missing").into());
    };
    let stdout = pipe::Receiver::from_owned_fd(stdout.into_owned_fd()?)?;
    let stderr = pipe::Receiver::from_owned_fd(stderr.into_owned_fd()?)?;
    Ok(Spawned {
        child,
        stdin,
        stdout,
        stderr,
        pid,
        guard,
        cgroup,
        sandbox,
    })
}

/// Sends `sig` to every process of group `pgid`. Returns false when the group is empty.
pub fn signal_group(pgid: u32, sig: Signal) -> bool {
    match i32::try_from(pgid) {
        Ok(p) if p > 1 => killpg(Pid::from_raw(p), sig).is_ok(),
        _ => false,
    }
}

/// Whether any process of group `pgid` still exists (zombies included until reaped).
pub fn group_alive(pgid: u32) -> bool {
    match i32::try_from(pgid) {
        Ok(p) if p > 1 => killpg(Pid::from_raw(p), None).is_ok(),
        _ => false,
    }
}

/// SIGKILLs a process group when dropped, unless disarmed: nothing leaks on drop or panic.
#[derive(Debug)]
pub struct GroupGuard {
    pgid: Option<u32>,
    /// The group's cgroup, if its sandbox has one: emptied and removed after the group.
    cgroup: Option<crate::sandbox::Cgroup>,
    /// Its memory limit, for the reason of a kill by it.
    memory: Option<u64>,
}

impl GroupGuard {
    /// Guards group `pgid`.
    pub fn new(pgid: u32) -> Self {
        GroupGuard {
            pgid: Some(pgid),
            cgroup: None,
            memory: None,
        }
    }

    /// Also guards the group's cgroup.
    pub(crate) fn with_cgroup(mut self, cgroup: Option<crate::sandbox::Cgroup>) -> Self {
        self.memory = cgroup.as_ref().and_then(|c| c.memory_limit());
        self.cgroup = cgroup;
        self
    }

    /// `exit` with the limit that killed the server, if one did (the kernel's count of the
    /// kills for its cgroup's memory limit says so).
    pub fn judge(&self, mut exit: crate::machine::ExitInfo) -> crate::machine::ExitInfo {
        if let (Some(cgroup), Some(bytes)) = (&self.cgroup, self.memory) {
            if cgroup.oom_kills() > 0 {
                exit.over = Some(crate::machine::Limit::Memory(bytes));
            }
        }
        exit
    }
    /// The guarded group.
    pub fn pgid(&self) -> Option<u32> {
        self.pgid
    }
    /// Stops guarding (the group is known to be gone).
    pub fn disarm(&mut self) {
        self.pgid = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(p) = self.pgid.take() {
            signal_group(p, Signal::SIGKILL);
        }
    }
}

/// Reads stderr until EOF into `ring`, line by line (lines over 8 KiB are split), and logs each
/// line at debug level. Never stalls the child: reading is unconditional.
pub async fn drain_stderr(stderr: pipe::Receiver, ring: LogRing, service: String) {
    let mut line: Vec<u8> = Vec::new();
    const MAX_LINE: usize = 8 * 1024;
    loop {
        // Nothing is held while waiting: the read's buffer exists only once there is data
        // (this waits for every live server, 1,000 of them).
        if stderr.readable().await.is_err() {
            break;
        }
        let mut buf = [0u8; 512];
        let n = match stderr.try_read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(_) => break,
        };
        for &b in &buf[..n] {
            if b == b'\n' || line.len() >= MAX_LINE {
                let text = String::from_utf8_lossy(&line);
                let text = text.trim_end_matches('\r');
                tracing::debug!(service = %service, stderr = %text);
                ring.push_line(text);
                line.clear();
                if line.capacity() > 1024 {
                    line = Vec::new();
                }
                if b == b'\n' {
                    continue;
                }
            }
            line.push(b);
        }
    }
    if !line.is_empty() {
        ring.push_line(&String::from_utf8_lossy(&line));
    }
}

/// Identity of a running process, for reaping after a crash without ever signalling a recycled
/// pid: its start time (clock ticks since boot, field 22 of `/proc/<pid>/stat`) — unique per pid
/// within one boot —, the boot, its session and state, and its command line (informational:
/// programs such as `npm` rewrite it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessIdentity {
    /// Start time in clock ticks after boot.
    pub start_time_ticks: u64,
    /// argv.
    pub cmdline: Vec<String>,
    /// Session id.
    pub sid: u32,
    /// Process group id.
    pub pgid: u32,
    /// Exited but not yet reaped.
    pub zombie: bool,
}

/// This boot's id (`/proc/sys/kernel/random/boot_id`), empty if unreadable.
pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// Reads the identity of `pid` from `/proc`, if it is running.
pub fn process_identity(pid: u32) -> Option<ProcessIdentity> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields follow the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    // rest is "state ppid pgrp session ..."; start time is field 22 overall = index 19 here.
    let f: Vec<&str> = rest.split_whitespace().collect();
    let start_time_ticks = f.get(19)?.parse().ok()?;
    let pgid = f.get(2)?.parse().ok()?;
    let sid = f.get(3)?.parse().ok()?;
    let zombie = matches!(f.first(), Some(&"Z") | Some(&"X"));
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let cmdline = raw
        .split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect();
    Some(ProcessIdentity {
        start_time_ticks,
        cmdline,
        sid,
        pgid,
        zombie,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_of_this_process_is_readable() {
        let me = process_identity(std::process::id()).expect("own /proc entry");
        assert!(me.start_time_ticks > 0);
        assert!(!me.cmdline.is_empty());
        assert!(process_identity(u32::MAX - 1).is_none());
    }

    #[test]
    fn group_signals_refuse_init_and_bad_ids() {
        assert!(!signal_group(0, Signal::SIGKILL));
        assert!(!signal_group(1, Signal::SIGKILL));
        assert!(!group_alive(u32::MAX));
    }

    #[tokio::test]
    async fn spawned_child_leads_its_own_group_and_the_guard_kills_it() {
        let s = spawn(
            "sleeper",
            &SpawnSpec {
                command: "sleep".into(),
                args: vec!["30".into()],
                env: BTreeMap::new(),
                inherit: Default::default(),
                sandbox: Default::default(),
                cwd: None,
            },
        )
        .unwrap();
        let pgid = nix::unistd::getpgid(Some(Pid::from_raw(s.pid as i32))).unwrap();
        assert_eq!(pgid.as_raw() as u32, s.pid);
        assert!(group_alive(s.pid));
        let Spawned {
            mut child, guard, ..
        } = s;
        drop(guard);
        let status = tokio::time::timeout(std::time::Duration::from_secs(5), child.wait())
            .await
            .unwrap()
            .unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9));
    }
}
