//! Low-level fault primitives of `chaos-mcp`: raw writes to stdout/stderr, fd games, signals
//! and processes. Nothing here knows about MCP.

use std::{
    io::Write,
    os::fd::AsRawFd,
    process::{Command, Stdio},
};

/// Write one log line to stderr (`chaos-mcp[<pid>]: ...`). Blocks if stderr is a full pipe;
/// errors (e.g. a closed stderr) are ignored.
pub fn log(args: std::fmt::Arguments<'_>) {
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "chaos-mcp[{}]: {}", std::process::id(), args);
}

/// Write `line` plus a newline to stdout as one locked write, then flush.
pub fn write_garbage(line: &str) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(line.len() + 1);
    buf.extend_from_slice(line.as_bytes());
    buf.push(b'\n');
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(&buf)?;
    stdout.flush()?;
    drop(stdout);
    log(format_args!("wrote a garbage line to stdout"));
    Ok(())
}

/// Replace fd 1 by `/dev/null`: the pipe's write end is closed (the reader sees EOF), and later
/// writes to stdout succeed silently instead of hitting a reused descriptor.
pub fn close_stdout() -> std::io::Result<()> {
    let stdout = std::io::stdout();
    // Holding the lock keeps std's (and so tokio's) stdout writers out while fd 1 changes.
    let mut lock = stdout.lock();
    let _ = lock.flush();
    let devnull = std::fs::OpenOptions::new().write(true).open("/dev/null")?;
    // SAFETY: dup2 on two valid descriptors; fd 1 is atomically replaced.
    let rc = unsafe { libc::dup2(devnull.as_raw_fd(), libc::STDOUT_FILENO) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    drop(devnull);
    drop(lock);
    log(format_args!("closed stdout"));
    Ok(())
}

/// Write `bytes` bytes to stderr from a background thread, with blocking writes. Returns once
/// that thread holds the stderr lock, which it keeps until the flood is written: from then on
/// every log line of the server waits behind the flood, so a reader that does not drain stderr
/// blocks the server deterministically (not only when the flood thread happens to run first).
pub fn stderr_flood(bytes: u64) {
    log(format_args!("flooding stderr with {bytes} bytes"));
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("stderr-flood".into())
        .spawn(move || {
            let mut stderr = std::io::stderr().lock();
            let _ = locked_tx.send(());
            let mut line = b"chaos-mcp flood ".to_vec();
            line.resize(63, b'x');
            line.push(b'\n');
            let chunk: Vec<u8> = line.iter().copied().cycle().take(64 * 64).collect();
            let mut remaining = bytes;
            while remaining > 0 {
                let n = remaining.min(chunk.len() as u64) as usize;
                if stderr.write_all(&chunk[..n]).is_err() {
                    break;
                }
                remaining -= n as u64;
            }
        });
    match spawned {
        Ok(_) => {
            let _ = locked_rx.recv();
        }
        Err(error) => log(format_args!("could not start the stderr flood: {error}")),
    }
}

/// Write `count` short numbered log lines to stderr.
pub fn stderr_lines(count: u64) {
    for i in 0..count {
        log(format_args!("log line {i}"));
    }
}

/// Ignore SIGTERM from now on (also inherited by children spawned later).
pub fn ignore_sigterm() {
    // SAFETY: installing SIG_IGN has no handler code to be unsafe in.
    unsafe {
        libc::signal(libc::SIGTERM, libc::SIG_IGN);
    }
    log(format_args!("ignoring SIGTERM"));
}

/// Ignore SIGTERM from now on through a handler that writes `SIGTERM received, ignored` to
/// stderr each time (one write(2): async-signal-safe, and atomic on a pipe).
pub fn log_ignored_sigterm() {
    extern "C" fn on_sigterm(_: libc::c_int) {
        const MSG: &[u8] = b"chaos-mcp: SIGTERM received, ignored\n";
        // SAFETY: write(2) is async-signal-safe; MSG is a valid static buffer.
        unsafe {
            libc::write(2, MSG.as_ptr().cast(), MSG.len());
        }
    }
    // SAFETY: the handler only calls write(2), which is async-signal-safe.
    unsafe {
        libc::signal(
            libc::SIGTERM,
            on_sigterm as extern "C" fn(libc::c_int) as libc::sighandler_t,
        );
    }
    log(format_args!("ignoring SIGTERM (logging each)"));
}

/// Spawn `sleep 100000` in our process group and forget it: it is neither killed nor waited
/// for, so it outlives us. Returns its pid (also logged as `grandchild pid N`).
pub fn spawn_grandchild(keep_stdio: bool) -> std::io::Result<u32> {
    let mut command = Command::new("sleep");
    command.arg("100000").stdin(Stdio::null());
    if keep_stdio {
        command.stdout(Stdio::inherit()).stderr(Stdio::inherit());
    } else {
        command.stdout(Stdio::null()).stderr(Stdio::null());
    }
    let child = command.spawn()?;
    let pid = child.id();
    // Dropping a std Child neither kills nor reaps it.
    drop(child);
    log(format_args!("grandchild pid {pid}"));
    Ok(pid)
}

/// Our pid, parent pid and process group id.
pub fn own_ids() -> (u32, u32, u32) {
    // SAFETY: these calls cannot fail and touch no memory.
    let (ppid, pgid) = unsafe { (libc::getppid(), libc::getpgid(0)) };
    (std::process::id(), ppid as u32, pgid as u32)
}

/// Block the calling thread forever.
pub fn park_forever() -> ! {
    loop {
        std::thread::park();
    }
}

/// Allocates `mib` MiB and writes to every page of it (so it is resident), then frees it:
/// how many MiB it held at once.
pub fn allocate(mib: u64) -> u64 {
    let mut held: Vec<Vec<u8>> = Vec::new();
    for _ in 0..mib {
        let mut block = vec![0u8; 1 << 20];
        for page in block.chunks_mut(4096) {
            page[0] = 1;
        }
        held.push(block);
    }
    log(format_args!("allocated {mib} MiB"));
    held.len() as u64
}

/// Starts up to `count` sleeping children at once, then kills and reaps them:
/// `{"started": n, "error": first refusal or null}`.
pub fn fork_children(count: u64) -> serde_json::Value {
    let mut children = Vec::new();
    let mut error = None;
    for _ in 0..count {
        match Command::new("sleep").arg("30").stdin(Stdio::null()).spawn() {
            Ok(c) => children.push(c),
            Err(e) => {
                error = Some(e.to_string());
                break;
            }
        }
    }
    let started = children.len();
    for mut c in children {
        let _ = c.kill();
        let _ = c.wait();
    }
    serde_json::json!({"started": started, "error": error})
}

/// Opens `/dev/null` up to `count` times at once, then closes them all:
/// `{"opened": n, "error": first refusal or null}`.
pub fn open_files(count: u64) -> serde_json::Value {
    let mut files = Vec::new();
    let mut error = None;
    for _ in 0..count {
        match std::fs::File::open("/dev/null") {
            Ok(f) => files.push(f),
            Err(e) => {
                error = Some(e.to_string());
                break;
            }
        }
    }
    serde_json::json!({"opened": files.len(), "error": error})
}

/// Writes `line` and a newline to the Unix socket at `path` and reads the first line of its
/// answer (at most 5 s): the line, or "" when it closed without one.
pub fn unix_request(path: &str, line: &str) -> std::io::Result<String> {
    use std::io::{BufRead, Write};
    let mut s = std::os::unix::net::UnixStream::connect(path)?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
    s.write_all(format!("{line}\n").as_bytes())?;
    let mut answer = String::new();
    std::io::BufReader::new(s).read_line(&mut answer)?;
    Ok(answer.trim_end().to_owned())
}
