//! A stdio server's sandbox (`sandbox` in its config), made real between fork and exec: the
//! files it may touch (Landlock), the network it may reach (a network namespace of its own),
//! and its limits (a cgroup of its own where one can be made, else rlimits). Everything that
//! may allocate or fail in words is done here, in the supervisor, before the fork; the child
//! runs only system calls on what was made for it ([`Confinement::install`]).
//!
//! What the kernel cannot give makes the spawn fail, naming what is missing — never a server
//! with a weaker sandbox than its config says — unless `sandbox.best_effort` is set; what
//! applies is in [`Confinement::effective`] either way, for `status`.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use mcpvisor_model::{Filesystem, Network, Preset, Sandbox};
use serde_json::{json, Map, Value};
use tokio::process::Command;

mod cgroup;

pub(crate) use cgroup::Cgroup;

/// What a sandbox's server was kept from, made before its fork.
pub(crate) struct Confinement {
    /// The Landlock ruleset to enforce on itself.
    ruleset: Option<OwnedFd>,
    /// A network namespace of its own (and whether its loopback is up).
    network: Option<Network>,
    /// A user namespace of its own (with the network namespace, or to count its processes).
    user_namespace: bool,
    uid_map: Vec<u8>,
    gid_map: Vec<u8>,
    /// Resource limits to set.
    rlimits: Vec<(libc::__rlimit_resource_t, u64)>,
    /// The cgroup it starts in (the `cgroup.procs` files to write itself into).
    cgroup: Option<Cgroup>,
    join: Vec<CString>,
    /// What applies, for `status`.
    effective: Value,
}

/// The sandbox's own name for a missing part, in the user's terms.
type Missing = String;

impl Confinement {
    /// Makes what `sandbox` asks for `command` (run in `cwd`, with the environment `env` it
    /// gets), for service `service`. An error names what this kernel or machine cannot give
    /// (when `best_effort` is not set) or a path of the config that is not there.
    pub(crate) fn prepare(
        sandbox: &Sandbox,
        service: &str,
        command: &str,
        cwd: Option<&Path>,
        env: &std::collections::BTreeMap<String, String>,
    ) -> Result<Option<Confinement>, String> {
        if !sandbox.is_set() {
            return Ok(None);
        }
        let mut missing: Vec<Missing> = Vec::new();
        let mut effective = Map::new();
        let explicit_cwd = cwd;
        let cwd = cwd
            .map(Path::to_path_buf)
            .or_else(|| std::env::current_dir().ok())
            .unwrap_or_else(|| PathBuf::from("/"));
        let home = env
            .get("HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(PathBuf::from));
        let path_var = env
            .get("PATH")
            .cloned()
            .or_else(|| std::env::var("PATH").ok())
            .unwrap_or_default();

        // Files.
        let ruleset = match &sandbox.filesystem {
            None => None,
            Some(fs) => {
                let places = Places::of(
                    fs,
                    command,
                    explicit_cwd,
                    &cwd,
                    home.as_deref(),
                    &path_var,
                    env,
                )?;
                let abi = landlock_abi();
                let mut not_covered: Vec<&str> = Vec::new();
                if abi < 6 {
                    not_covered.push(
                        "signals and abstract Unix sockets to processes outside it (Landlock ABI 6)",
                    );
                }
                if abi < 9 {
                    not_covered.push(
                        "named Unix sockets outside its write list (Landlock ABI 9); mcpvisor's \
                         own sockets refuse it",
                    );
                }
                match landlock_ruleset(&places, sandbox.best_effort) {
                    Ok(fd) => {
                        effective.insert(
                            "filesystem".into(),
                            json!({
                                "enforced_by": if fd.is_some() { "landlock" } else { "nothing" },
                                "landlock_abi": abi,
                                "not_covered": not_covered,
                                "read": shown(&places.read, SYSTEM_READ),
                                "write": shown(&places.write, SYSTEM_WRITE),
                                "also": "the system's programs and libraries and what they need: \
                                         /usr, /lib*, /bin, /sbin, /proc, /sys, and parts of /etc \
                                         and /dev (not /etc/shadow, not the disks)",
                            }),
                        );
                        if fd.is_none() {
                            missing.push("filesystem: this kernel has no Landlock".into());
                        }
                        fd
                    }
                    Err(why) => return Err(why),
                }
            }
        };

        // Limits: a cgroup of its own where one can be made, else rlimits.
        let mut rlimits = Vec::new();
        let wants_cgroup =
            sandbox.memory.is_some() || sandbox.processes.is_some() || sandbox.cpu_millis.is_some();
        let cgroup = if wants_cgroup {
            Cgroup::create(service, sandbox)
        } else {
            None
        };
        // Every sandboxed server is in a user namespace of its own (mapped to the supervisor's
        // user and group): mcpvisor's own sockets tell it from other clients by it, and
        // processes count in it.
        let user_namespace = match user_namespaces_off() {
            None => true,
            Some(why) => {
                missing.push(format!("user namespaces: {why}"));
                if sandbox.network != Network::Any {
                    missing.push(format!(
                        "network \"{}\": it needs a user namespace",
                        sandbox.network.name()
                    ));
                }
                false
            }
        };
        if let Some(bytes) = sandbox.memory {
            let by = match cgroup.as_ref().and_then(Cgroup::memory_by) {
                Some(by) => by,
                _ => {
                    rlimits.push((libc::RLIMIT_DATA, bytes));
                    "rlimit (data)"
                }
            };
            effective.insert(
                "memory".into(),
                json!({"limit": mcpvisor_model::format_bytes(bytes), "enforced_by": by}),
            );
        }
        if let Some(n) = sandbox.processes {
            let by = match cgroup.as_ref().and_then(Cgroup::processes_by) {
                Some(by) => by,
                _ if nix::unistd::geteuid().is_root() => {
                    missing.push(format!(
                        "processes: no pids cgroup could be made, and an rlimit does not bind a \
                         server of the root user (limit {n})"
                    ));
                    "nothing"
                }
                _ if user_namespace => {
                    // Counted per user namespace: only this server's processes count.
                    rlimits.push((libc::RLIMIT_NPROC, n));
                    "rlimit (processes of its own user namespace)"
                }
                _ => {
                    missing.push(format!(
                        "processes: no pids cgroup could be made, and an rlimit would count \
                         every process of the user without a user namespace (limit {n})"
                    ));
                    "nothing"
                }
            };
            effective.insert("processes".into(), json!({"limit": n, "enforced_by": by}));
        }
        if let Some(millis) = sandbox.cpu_millis {
            let by = match cgroup.as_ref().and_then(Cgroup::cpu_by) {
                Some(by) => by,
                _ => {
                    missing.push(format!(
                        "cpu: no cpu cgroup could be made (limit {} cores)",
                        millis as f64 / 1000.0
                    ));
                    "nothing"
                }
            };
            effective.insert(
                "cpu".into(),
                json!({"cores": millis as f64 / 1000.0, "enforced_by": by}),
            );
        }
        if let Some(n) = sandbox.open_files {
            rlimits.push((libc::RLIMIT_NOFILE, n));
            effective.insert(
                "open_files".into(),
                json!({"limit": n, "enforced_by": "rlimit"}),
            );
        }
        let network = match sandbox.network {
            Network::Any => None,
            _ if !user_namespace => None,
            n => Some(n),
        };
        for (resource, limit) in &rlimits {
            check_hard_limit(*resource, *limit)?;
        }
        effective.insert(
            "network".into(),
            Value::String(sandbox.network.name().to_owned()),
        );
        effective.insert("no_new_privs".into(), Value::Bool(true));
        if !missing.is_empty() {
            if !sandbox.best_effort {
                return Err(format!(
                    "this machine cannot give its sandbox: {} (set sandbox.best_effort to start \
                     it with what it can)",
                    missing.join("; ")
                ));
            }
            effective.insert("missing".into(), json!(missing));
        }
        let join = cgroup.as_ref().map(Cgroup::procs_files).unwrap_or_default();
        Ok(Some(Confinement {
            ruleset,
            network,
            user_namespace,
            uid_map: format!("{0} {0} 1\n", nix::unistd::getuid()).into_bytes(),
            gid_map: format!("{0} {0} 1\n", nix::unistd::getgid()).into_bytes(),
            rlimits,
            cgroup,
            join,
            effective: Value::Object(effective),
        }))
    }

    /// What applies, for `status`.
    pub(crate) fn effective(&self) -> &Value {
        &self.effective
    }

    /// Whether the server gets a user namespace of its own.
    pub(crate) fn has_user_namespace(&self) -> bool {
        self.user_namespace
    }

    /// Makes `cmd`'s process enter its sandbox before it runs its program. Consumes what the
    /// child needs; the cgroup (to read its counters and remove it) is handed back.
    pub(crate) fn install(self, cmd: &mut Command) -> Option<Cgroup> {
        let Confinement {
            ruleset,
            network,
            user_namespace,
            uid_map,
            gid_map,
            rlimits,
            cgroup,
            join,
            effective: _,
        } = self;
        let own_cgroup_namespace = cgroup.is_some();
        // The ruleset stays open in the supervisor until the command is dropped (the child's
        // copy closes on exec).
        // SAFETY: between fork and exec this makes only system calls (open, write, close,
        // setrlimit, unshare, socket, ioctl, prctl, landlock_restrict_self), on buffers made
        // before the fork: nothing allocates or takes a lock.
        unsafe {
            cmd.pre_exec(move || {
                for procs in &join {
                    write_file(procs, b"0")?;
                }
                if user_namespace {
                    let mut flags = libc::CLONE_NEWUSER;
                    if network.is_some() {
                        flags |= libc::CLONE_NEWNET;
                    }
                    // Its cgroup is the root of its view: it cannot move out of it (and, under
                    // cgroup v2's nsdelegate, not write its limits either).
                    if own_cgroup_namespace {
                        flags |= libc::CLONE_NEWCGROUP;
                    }
                    if libc::unshare(flags) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    write_file(c"/proc/self/setgroups", b"deny")?;
                    write_file(c"/proc/self/uid_map", &uid_map)?;
                    write_file(c"/proc/self/gid_map", &gid_map)?;
                    if network == Some(Network::Loopback) {
                        loopback_up()?;
                    }
                }
                // Last before the program: after the namespace (a process limit set before it
                // would cap the user's processes) and after the files opened above.
                for (resource, limit) in &rlimits {
                    let lim = libc::rlimit {
                        rlim_cur: *limit,
                        rlim_max: *limit,
                    };
                    if libc::setrlimit(*resource, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if let Some(fd) = &ruleset {
                    let fd = fd.as_raw_fd();
                    if libc::syscall(libc::SYS_landlock_restrict_self, fd, 0u32) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        cgroup
    }
}

/// open(2) + write(2) + close(2), nothing else (between fork and exec).
fn write_file(path: &std::ffi::CStr, bytes: &[u8]) -> std::io::Result<()> {
    // SAFETY: a plain system call on a NUL-terminated path.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `bytes` is a valid buffer of its length; `fd` is ours.
    let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
    let err = std::io::Error::last_os_error();
    // SAFETY: closing our own descriptor.
    unsafe { libc::close(fd) };
    if n < 0 {
        return Err(err);
    }
    Ok(())
}

/// Brings up the loopback interface of the network namespace just made (between fork and
/// exec: socket, ioctl, close).
fn loopback_up() -> std::io::Result<()> {
    // SAFETY: plain system calls on a zeroed, stack-allocated ifreq.
    unsafe {
        let s = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if s < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        req.ifr_name[0] = b'l' as libc::c_char;
        req.ifr_name[1] = b'o' as libc::c_char;
        req.ifr_ifru.ifru_flags = (libc::IFF_UP | libc::IFF_LOOPBACK | libc::IFF_RUNNING) as i16;
        let r = libc::ioctl(s, libc::SIOCSIFFLAGS, &req);
        let err = std::io::Error::last_os_error();
        libc::close(s);
        if r != 0 {
            return Err(err);
        }
    }
    Ok(())
}

/// The folders a sandboxed server may read and write, resolved.
#[derive(Debug, Default)]
struct Places {
    read: Vec<PathBuf>,
    write: Vec<PathBuf>,
}

/// What every server may read: the system's programs and libraries, the system files
/// programs need in `/etc` (not the rest of it: not `/etc/shadow`), `/proc` and `/sys`.
const SYSTEM_READ: &[&str] = &[
    "/usr",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/bin",
    "/sbin",
    "/proc",
    "/sys",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/ld.so.preload",
    "/etc/alternatives",
    "/etc/resolv.conf",
    "/etc/hosts",
    "/etc/host.conf",
    "/etc/nsswitch.conf",
    "/etc/gai.conf",
    "/etc/services",
    "/etc/protocols",
    "/etc/passwd",
    "/etc/group",
    "/etc/localtime",
    "/etc/timezone",
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/pki",
    "/etc/crypto-policies",
    "/etc/mime.types",
    "/etc/os-release",
    "/etc/machine-id",
    "/run/systemd/resolve",
    "/dev/random",
    "/dev/urandom",
];

/// What every server may write.
/// (Not `/dev/tty`: a server in the terminal's session could type into the user's shell.)
const SYSTEM_WRITE: &[&str] = &["/dev/null", "/dev/zero", "/dev/full"];

impl Places {
    #[allow(clippy::too_many_arguments)]
    fn of(
        fs: &Filesystem,
        command: &str,
        explicit_cwd: Option<&Path>,
        cwd: &Path,
        home: Option<&Path>,
        path_var: &str,
        env: &std::collections::BTreeMap<String, String>,
    ) -> Result<Places, String> {
        let mut p = Places::default();
        let explicit_cwd = explicit_cwd.map(Path::to_path_buf);
        // The user's own lists must exist: a typo is not a silently empty sandbox.
        for (list, field, into) in [
            (&fs.read, "read", &mut p.read),
            (&fs.write, "write", &mut p.write),
        ] {
            for path in list {
                let full = resolve(path, cwd, home);
                if !full.exists() {
                    return Err(format!(
                        "sandbox.filesystem.{field}: '{}' does not exist",
                        full.display()
                    ));
                }
                into.push(full);
            }
        }
        let mut read: Vec<PathBuf> = SYSTEM_READ.iter().map(PathBuf::from).collect();
        let mut write: Vec<PathBuf> = SYSTEM_WRITE.iter().map(PathBuf::from).collect();
        read.extend(program_roots(command, path_var, home));
        let home_of = |rel: &str| home.map(|h| h.join(rel));
        for preset in &fs.presets {
            match preset {
                Preset::Node => {
                    read.extend(program_roots("node", path_var, home));
                    read.extend(program_roots("npx", path_var, home));
                    read.extend(home_of(".npmrc"));
                    write.extend(home_of(".npm").map(made));
                }
                Preset::Python => {
                    for program in ["python3", "uv", "uvx"] {
                        read.extend(program_roots(program, path_var, home));
                    }
                    // Not all of ~/.local: ~/.local/state holds mcpvisor's own state.
                    read.extend(home_of(".local/lib"));
                    read.extend(home_of(".local/bin"));
                    read.extend(home_of(".pyenv"));
                    read.extend(home_of(".config/uv"));
                    for cache in [".cache/uv", ".local/share/uv", ".cache/pip"] {
                        write.extend(home_of(cache).map(made));
                    }
                }
                Preset::Cwd => write.push(explicit_cwd.clone().ok_or_else(|| {
                    "sandbox.filesystem.presets: \"cwd\" needs the service's own 'cwd' (the \
                     supervisor's folder may hold its config)"
                        .to_owned()
                })?),
                Preset::Tmp => write.push(
                    env.get("TMPDIR")
                        .map(PathBuf::from)
                        .unwrap_or_else(|| PathBuf::from("/tmp")),
                ),
            }
        }
        // What is not there is left out (presets and the system list name what may exist).
        for r in read {
            if r.exists() && !p.read.contains(&r) {
                p.read.push(r);
            }
        }
        for w in write {
            if w.exists() && !p.write.contains(&w) {
                p.write.push(w);
            }
        }
        Ok(p)
    }
}

/// `places` without the system's own (said once, in words).
fn shown(places: &[PathBuf], system: &[&str]) -> Vec<String> {
    places
        .iter()
        .filter(|p| !system.iter().any(|s| Path::new(s) == p.as_path()))
        .map(|p| p.display().to_string())
        .collect()
}

/// A preset's folder to write, made if it is not there yet (npm, uv and pip make them on
/// first use, which the sandbox would refuse).
fn made(dir: PathBuf) -> PathBuf {
    let _ = std::fs::create_dir_all(&dir);
    dir
}

/// `path` from `cwd`, `~/` from `home`.
fn resolve(path: &Path, cwd: &Path, home: Option<&Path>) -> PathBuf {
    let full = match (path.strip_prefix("~"), home) {
        (Ok(rest), Some(home)) => home.join(rest),
        _ => cwd.join(path),
    };
    full.canonicalize().unwrap_or(full)
}

/// The install folders of `program` (looked up on `path_var` unless a path): the folder of
/// its real file — its parent if that is a `bin` — and the same for the interpreter of its
/// `#!` line (followed through `env`), so a script's runtime can run.
fn program_roots(program: &str, path_var: &str, home: Option<&Path>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut next = which(program, path_var);
    for _ in 0..3 {
        let Some(found) = next.take() else { break };
        // The link itself (a venv's bin/python) and where it leads.
        if let Some(root) = install_root(&found, home) {
            out.push(root);
        }
        let real = found.canonicalize().unwrap_or(found);
        if let Some(root) = install_root(&real, home) {
            out.push(root);
        }
        next = shebang(&real).and_then(|(interp, arg)| {
            if interp.file_name().is_some_and(|n| n == "env") {
                arg.and_then(|a| which(&a, path_var))
            } else {
                Some(interp)
            }
        });
    }
    out
}

/// The folder `file` is installed in: its own, or — for a `bin` — the one above, unless that
/// is `/`, the home folder or a folder holding it, or a folder right in the home folder
/// (`~/.local`, `~/.cargo`: they hold more than a program). `None` when even its own folder is
/// one of those.
fn install_root(file: &Path, home: Option<&Path>) -> Option<PathBuf> {
    let dir = file.parent()?;
    let holds_home = |p: &Path| p.parent().is_none() || home.is_some_and(|h| h.starts_with(p));
    if dir.file_name().is_some_and(|n| n == "bin" || n == "sbin") {
        if let Some(up) = dir.parent() {
            let right_in_home = home.is_some_and(|h| up.parent() == Some(h));
            if !holds_home(up) && !right_in_home {
                return Some(up.to_path_buf());
            }
        }
    }
    (!holds_home(dir)).then(|| dir.to_path_buf())
}

fn which(program: &str, path_var: &str) -> Option<PathBuf> {
    if program.contains('/') {
        return Some(PathBuf::from(program));
    }
    std::env::split_paths(path_var)
        .map(|d| d.join(program))
        .find(|c| c.is_file())
}

/// The interpreter of a `#!` line, and its first argument.
fn shebang(file: &Path) -> Option<(PathBuf, Option<String>)> {
    use std::io::Read;
    let mut head = [0u8; 256];
    let n = std::fs::File::open(file).ok()?.read(&mut head).ok()?;
    let line = head[..n].strip_prefix(b"#!")?;
    let line = &line[..line.iter().position(|&b| b == b'\n')?];
    let line = std::str::from_utf8(line).ok()?;
    let mut words = line.split_whitespace();
    let interp = PathBuf::from(words.next()?);
    let arg = words.find(|w| !w.starts_with('-')).map(str::to_owned);
    Some((interp, arg))
}

/// The Landlock ruleset for `places`: `None` when this kernel has no Landlock and
/// `best_effort` allows going on without it.
fn landlock_ruleset(places: &Places, best_effort: bool) -> Result<Option<OwnedFd>, String> {
    use landlock::{
        path_beneath_rules, Access, AccessFs, CompatLevel, Compatible, Ruleset, RulesetAttr,
        RulesetCreatedAttr, Scope, ABI,
    };
    let refused = |e: landlock::RulesetError| {
        format!("this kernel cannot give sandbox.filesystem (Landlock): {e}")
    };
    // The first version's rights are required; later ones (renames across folders,
    // truncation, device ioctls, and scoping signals and abstract sockets to the sandbox)
    // are taken where the kernel has them.
    let first = ABI::V1;
    // Up to connecting to named Unix sockets only where writing is allowed (ABI 9).
    let newest = ABI::V9;
    let ruleset = Ruleset::default()
        .set_compatibility(if best_effort {
            CompatLevel::BestEffort
        } else {
            CompatLevel::HardRequirement
        })
        .handle_access(AccessFs::from_all(first))
        .map_err(refused)?
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(AccessFs::from_all(newest))
        .map_err(refused)?
        .scope(Scope::from_all(ABI::V6))
        .map_err(refused)?
        .create()
        .map_err(refused)?;
    let mut ruleset = ruleset;
    for (list, access, field) in [
        (&places.read, AccessFs::from_read(newest), "read"),
        (&places.write, AccessFs::from_all(newest), "write"),
    ] {
        for path in list {
            ruleset = ruleset
                .add_rules(path_beneath_rules([path], access))
                .map_err(|e| format!("sandbox.filesystem.{field}: '{}': {e}", path.display()))?;
        }
    }
    let fd: Option<OwnedFd> = ruleset.into();
    match fd {
        Some(fd) => Ok(Some(fd)),
        None if best_effort => Ok(None),
        None => Err("this kernel has no Landlock: sandbox.filesystem cannot be given".into()),
    }
}

/// Why this machine gives no user namespaces, if it does not.
fn user_namespaces_off() -> Option<String> {
    let read = |p: &str| std::fs::read_to_string(p).ok().map(|s| s.trim().to_owned());
    if read("/proc/sys/user/max_user_namespaces").as_deref() == Some("0") {
        return Some("turned off on this machine (user.max_user_namespaces = 0)".into());
    }
    if !nix::unistd::geteuid().is_root()
        && read("/proc/sys/kernel/unprivileged_userns_clone").as_deref() == Some("0")
    {
        return Some(
            "turned off for unprivileged users on this machine (kernel.unprivileged_userns_clone \
             = 0)"
                .into(),
        );
    }
    None
}

/// An error naming the field when `limit` is over what this process may set.
fn check_hard_limit(resource: libc::__rlimit_resource_t, limit: u64) -> Result<(), String> {
    let mut now = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct it is given.
    if unsafe { libc::getrlimit(resource, &mut now) } != 0 || nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    let field = match resource {
        libc::RLIMIT_NOFILE => "open_files",
        libc::RLIMIT_NPROC => "processes",
        _ => "memory",
    };
    if now.rlim_max != libc::RLIM_INFINITY && limit > now.rlim_max {
        return Err(format!(
            "sandbox.{field}: {limit} is over the most mcpvisor itself may have ({})",
            now.rlim_max
        ));
    }
    Ok(())
}

/// The Landlock ABI this kernel has (0: none).
pub(crate) fn landlock_abi() -> i64 {
    const VERSION: libc::c_uint = 1; // LANDLOCK_CREATE_RULESET_VERSION
                                     // SAFETY: with this flag the call takes no ruleset and only answers a number.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            VERSION,
        )
    };
    v.max(0)
}

/// The user namespaces of the sandboxed servers started so far (device, inode).
fn namespaces() -> &'static std::sync::Mutex<std::collections::HashSet<(u64, u64)>> {
    static SET: std::sync::OnceLock<std::sync::Mutex<std::collections::HashSet<(u64, u64)>>> =
        std::sync::OnceLock::new();
    SET.get_or_init(Default::default)
}

/// Records the user namespace of sandboxed server `pid` (after its exec).
pub(crate) fn remember_namespace(pid: u32) {
    use std::os::unix::fs::MetadataExt;
    if let Ok(m) = std::fs::metadata(format!("/proc/{pid}/ns/user")) {
        namespaces()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((m.dev(), m.ino()));
    }
}

/// Whether process `pid` runs in a sandboxed server's user namespace, or in one made inside
/// it (walked up with `NS_GET_PARENT`, at most 32 levels): such a process may not drive
/// mcpvisor through its sockets, which Landlock before ABI 9 does not keep it from.
pub fn in_a_sandbox(pid: i32) -> bool {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    const NS_GET_PARENT: libc::c_ulong = 0xb702; // _IO(0xb7, 0x2)
    let known = namespaces()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    if known.is_empty() {
        return false;
    }
    let Ok(file) = std::fs::File::open(format!("/proc/{pid}/ns/user")) else {
        return false;
    };
    let mut fd: OwnedFd = file.into();
    for _ in 0..32 {
        let Ok(st) = nix::sys::stat::fstat(&fd) else {
            return false;
        };
        if known.contains(&(st.st_dev, st.st_ino)) {
            return true;
        }
        // SAFETY: an ioctl on our own descriptor; a new descriptor or -1 comes back.
        let parent = unsafe { libc::ioctl(fd.as_raw_fd(), NS_GET_PARENT) };
        if parent < 0 {
            return false;
        }
        // SAFETY: `parent` is a new descriptor we own.
        fd = unsafe { OwnedFd::from_raw_fd(parent) };
    }
    false
}

#[cfg(test)]
mod tests {
    use super::install_root;
    use std::path::{Path, PathBuf};

    #[test]
    fn an_install_folder_is_never_the_root_the_home_or_a_folder_right_in_it() {
        let home = Some(Path::new("/home/ann"));
        let root = |f: &str| install_root(Path::new(f), home);
        assert_eq!(root("/usr/bin/node"), Some(PathBuf::from("/usr")));
        assert_eq!(root("/bin/sh"), Some(PathBuf::from("/bin")));
        assert_eq!(root("/opt/node/bin/node"), Some(PathBuf::from("/opt/node")));
        assert_eq!(
            root("/home/ann/.cargo/bin/uv"),
            Some(PathBuf::from("/home/ann/.cargo/bin"))
        );
        assert_eq!(
            root("/home/ann/bin/tool"),
            Some(PathBuf::from("/home/ann/bin"))
        );
        assert_eq!(
            root("/home/ann/.nvm/versions/node/v22/bin/node"),
            Some(PathBuf::from("/home/ann/.nvm/versions/node/v22"))
        );
        assert_eq!(root("/home/ann/server.py"), None);
        assert_eq!(root("/tool"), None);
    }
}
