//! A cgroup of a server's own, for its memory, process and CPU limits: under the supervisor's
//! own cgroup, in the unified hierarchy (v2) where its controllers are delegated to us, else
//! in the controller's v1 hierarchy where we may make groups (root on a v1 machine). Each
//! group is `mcpvisor-<supervisor pid>-<n>-<service>`; groups of a supervisor that is gone are
//! emptied and removed when the next one makes its first.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use mcpvisor_model::Sandbox;

/// The controllers limits use.
const CONTROLLERS: [&str; 3] = ["memory", "pids", "cpu"];

/// One controller's place in a server's group.
#[derive(Debug)]
struct Part {
    controller: &'static str,
    dir: PathBuf,
    v2: bool,
}

/// A server's cgroup: made before its spawn, joined by its process before exec, and emptied
/// (every process in it killed) and removed when dropped.
#[derive(Debug)]
pub(crate) struct Cgroup {
    parts: Vec<Part>,
    memory: Option<u64>,
}

/// Where groups can be made, found once.
#[derive(Debug, Default)]
struct Places {
    /// The supervisor's own v2 group, with the controllers enabled for its children.
    v2: Option<(PathBuf, Vec<String>)>,
    /// Per controller, the supervisor's own group in that controller's v1 hierarchy.
    v1: BTreeMap<&'static str, PathBuf>,
}

fn places() -> &'static Places {
    static PLACES: OnceLock<Places> = OnceLock::new();
    PLACES.get_or_init(|| {
        let found = discover();
        for dir in found.v2.iter().map(|(d, _)| d).chain(found.v1.values()) {
            sweep(dir);
        }
        found
    })
}

impl Cgroup {
    /// A group for `service` with `sandbox`'s limits written, or `None` when no limit it has
    /// could be given by a cgroup here (the caller falls back to rlimits or says what is
    /// missing).
    pub(crate) fn create(service: &str, sandbox: &Sandbox) -> Option<Cgroup> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let places = places();
        let name = format!(
            "mcpvisor-{}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed),
            service
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                })
                .collect::<String>()
        );
        let mut parts: Vec<Part> = Vec::new();
        for controller in CONTROLLERS {
            let wanted = match controller {
                "memory" => sandbox.memory.is_some(),
                "pids" => sandbox.processes.is_some(),
                _ => sandbox.cpu_millis.is_some(),
            };
            if !wanted {
                continue;
            }
            let (base, v2) = match &places.v2 {
                Some((dir, enabled)) if enabled.iter().any(|c| c == controller) => {
                    (dir.clone(), true)
                }
                _ => match places.v1.get(controller) {
                    Some(dir) => (dir.clone(), false),
                    None => continue,
                },
            };
            let dir = base.join(&name);
            // One v2 group serves every controller.
            if !parts.iter().any(|p| p.dir == dir) && std::fs::create_dir(&dir).is_err() {
                continue;
            }
            let part = Part {
                controller,
                dir,
                v2,
            };
            if part.write_limit(sandbox) {
                parts.push(part);
            } else if !parts.iter().any(|p| p.dir == part.dir) {
                let _ = std::fs::remove_dir(&part.dir);
            }
        }
        let memory = parts
            .iter()
            .any(|p| p.controller == "memory")
            .then_some(sandbox.memory)
            .flatten();
        (!parts.is_empty()).then_some(Cgroup { parts, memory })
    }

    fn by(&self, controller: &str) -> Option<&'static str> {
        self.parts
            .iter()
            .find(|p| p.controller == controller)
            .map(|p| if p.v2 { "cgroup v2" } else { "cgroup v1" })
    }

    /// What limits its memory, if this group does.
    pub(crate) fn memory_by(&self) -> Option<&'static str> {
        self.by("memory")
    }

    /// What limits its processes, if this group does.
    pub(crate) fn processes_by(&self) -> Option<&'static str> {
        self.by("pids")
    }

    /// What limits its CPU, if this group does.
    pub(crate) fn cpu_by(&self) -> Option<&'static str> {
        self.by("cpu")
    }

    /// The `cgroup.procs` files the child writes itself into, one per group directory.
    pub(crate) fn procs_files(&self) -> Vec<CString> {
        let mut dirs: Vec<&Path> = Vec::new();
        for p in &self.parts {
            if !dirs.contains(&p.dir.as_path()) {
                dirs.push(&p.dir);
            }
        }
        dirs.iter()
            .filter_map(|d| {
                CString::new(d.join("cgroup.procs").as_os_str().as_encoded_bytes()).ok()
            })
            .collect()
    }

    /// Its memory limit, if this group holds it.
    pub(crate) fn memory_limit(&self) -> Option<u64> {
        self.memory
    }

    /// How many times the kernel killed a process of this group for its memory limit.
    pub(crate) fn oom_kills(&self) -> u64 {
        let Some(p) = self.parts.iter().find(|p| p.controller == "memory") else {
            return 0;
        };
        let file = if p.v2 {
            "memory.events"
        } else {
            "memory.oom_control"
        };
        std::fs::read_to_string(p.dir.join(file))
            .ok()
            .and_then(|text| {
                text.lines()
                    .find_map(|l| l.strip_prefix("oom_kill ")?.trim().parse().ok())
            })
            .unwrap_or(0)
    }
}

impl Part {
    /// Writes this controller's limit; false when the kernel refused it.
    fn write_limit(&self, sandbox: &Sandbox) -> bool {
        let write = |file: &str, value: String| std::fs::write(self.dir.join(file), value).is_ok();
        match (self.controller, self.v2) {
            ("memory", v2) => {
                let Some(bytes) = sandbox.memory else {
                    return false;
                };
                if v2 {
                    let ok = write("memory.max", bytes.to_string());
                    // Not past it by swapping either (absent without swap accounting).
                    let _ = write("memory.swap.max", "0".into());
                    ok
                } else {
                    let ok = write("memory.limit_in_bytes", bytes.to_string());
                    let _ = write("memory.memsw.limit_in_bytes", bytes.to_string());
                    ok
                }
            }
            ("pids", _) => sandbox
                .processes
                .is_some_and(|n| write("pids.max", n.to_string())),
            (_, v2) => {
                let Some(millis) = sandbox.cpu_millis else {
                    return false;
                };
                let quota = millis * 100; // of a 100 ms period
                if v2 {
                    write("cpu.max", format!("{quota} 100000"))
                } else {
                    write("cpu.cfs_period_us", "100000".into())
                        && write("cpu.cfs_quota_us", quota.to_string())
                }
            }
        }
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        let mut dirs: Vec<PathBuf> = Vec::new();
        for p in self.parts.drain(..) {
            if !dirs.contains(&p.dir) {
                dirs.push(p.dir);
            }
        }
        // Everything left in it goes — a grandchild that left the server's process group
        // included, and what it forks meanwhile — and then the group (a dying process leaves
        // it a moment later).
        for dir in &dirs {
            kill_all(dir);
        }
        let _ = std::thread::Builder::new()
            .name("mcpvisor-cgroup-rm".into())
            .spawn(move || {
                for _ in 0..200 {
                    for dir in &dirs {
                        kill_all(dir);
                    }
                    dirs.retain(|d| std::fs::remove_dir(d).is_err() && d.exists());
                    if dirs.is_empty() {
                        return;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
            });
    }
}

/// SIGKILLs every process of the group at `dir`.
fn kill_all(dir: &Path) {
    if let Ok(text) = std::fs::read_to_string(dir.join("cgroup.procs")) {
        for pid in text.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
            if pid > 1 {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
}

/// Removes the groups a supervisor that is gone left under `base`.
fn sweep(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix("mcpvisor-")) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        let gone = pid != std::process::id() as i32
            && nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None)
                == Err(nix::errno::Errno::ESRCH);
        if gone {
            kill_all(&e.path());
            let _ = std::fs::remove_dir(e.path());
        }
    }
}

/// Finds the supervisor's own groups: in v2 where the wanted controllers can be enabled for
/// its children, in v1 where a group can be made.
fn discover() -> Places {
    let mut places = Places::default();
    let Ok(own) = std::fs::read_to_string("/proc/self/cgroup") else {
        return places;
    };
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return places;
    };
    // (mount point, root within the hierarchy, fstype, super options)
    let mounts: Vec<(PathBuf, String, String, String)> = mounts
        .lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let left: Vec<&str> = left.split(' ').collect();
            let right: Vec<&str> = right.split(' ').collect();
            Some((
                PathBuf::from(unescape(left.get(4)?)),
                unescape(left.get(3)?),
                right.first()?.to_string(),
                right.get(2).copied().unwrap_or("").to_string(),
            ))
        })
        .collect();
    let join = |mount: &Path, root: &str, path: &str| -> PathBuf {
        let rel = path
            .strip_prefix(root)
            .unwrap_or(path)
            .trim_start_matches('/');
        mount.join(rel)
    };
    for line in own.lines() {
        let mut f = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        if controllers.is_empty() {
            if let Some((mount, root, _, _)) = mounts.iter().find(|m| m.2 == "cgroup2") {
                let dir = join(mount, root, path);
                places.v2 = delegated(&dir).map(|enabled| (dir, enabled));
            }
            continue;
        }
        for controller in CONTROLLERS {
            if !controllers.split(',').any(|c| c == controller) {
                continue;
            }
            let Some((mount, root, _, _)) = mounts
                .iter()
                .find(|m| m.2 == "cgroup" && m.3.split(',').any(|o| o == controller))
            else {
                continue;
            };
            let dir = join(mount, root, path);
            // Usable when a group can be made (and removed) in it.
            let probe = dir.join(format!("mcpvisor-{}-probe", std::process::id()));
            if std::fs::create_dir(&probe).is_ok() {
                let _ = std::fs::remove_dir(&probe);
                places.v1.insert(controller, dir);
            }
        }
    }
    places
}

/// The wanted controllers enabled for `dir`'s children: those already enabled, or enabled
/// now — after moving the supervisor into a leaf of its own (`mcpvisor-supervisor`), as the
/// unified hierarchy wants no process in a group whose children have controllers. `None`
/// when none can be.
fn delegated(dir: &Path) -> Option<Vec<String>> {
    let available = std::fs::read_to_string(dir.join("cgroup.controllers")).ok()?;
    let wanted: Vec<&str> = CONTROLLERS
        .iter()
        .copied()
        .filter(|c| available.split_whitespace().any(|a| a == *c))
        .collect();
    if wanted.is_empty() {
        return None;
    }
    let enabled = |dir: &Path| -> Vec<String> {
        std::fs::read_to_string(dir.join("cgroup.subtree_control"))
            .unwrap_or_default()
            .split_whitespace()
            .filter(|c| wanted.contains(c))
            .map(str::to_owned)
            .collect()
    };
    let request: String = wanted.iter().map(|c| format!("+{c} ")).collect();
    let control = dir.join("cgroup.subtree_control");
    if std::fs::write(&control, request.trim()).is_err() {
        // Every process of the group moves (the supervisor, and servers it started before
        // its first sandbox): a delegated group is the supervisor's alone.
        let leaf = dir.join("mcpvisor-supervisor");
        let _ = std::fs::create_dir(&leaf);
        let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        for pid in procs.lines().map(str::trim).filter(|p| !p.is_empty()) {
            let _ = std::fs::write(leaf.join("cgroup.procs"), pid);
        }
        std::fs::write(&control, request.trim()).ok()?;
    }
    let now = enabled(dir);
    (!now.is_empty()).then_some(now)
}

/// mountinfo's octal escapes (`\040` for a space).
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let code = rest
            .get(i + 1..i + 4)
            .and_then(|o| u8::from_str_radix(o, 8).ok());
        match code {
            Some(b) => {
                out.push(b as char);
                rest = &rest[i + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}
