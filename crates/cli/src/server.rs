//! The server side of the control socket (see [`crate::protocol`]): one running instance per
//! state dir, a Unix socket readable by its owner only, connections served concurrently.
//!
//! One instance per state dir is enforced with an exclusive `flock` on `mcpvisor.lock` (which
//! holds the owner's pid); a socket file left by a killed instance is removed. Every loop is
//! bounded: the accept loop ends at shutdown, a connection ends at EOF, at an over-long line,
//! after [`IDLE_TIMEOUT`] without a request, or at shutdown; at most [`MAX_CONNECTIONS`] are
//! served at once.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mcpvisor_supervisor::{EventStream, Store};
use nix::fcntl::{Flock, FlockArg};
use nix::sys::stat::{umask, Mode};
use serde_json::json;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::error::{CliError, CliResult};
use crate::exec::{self, Instance};
use crate::paths::{self, LOCK_FILE};
use crate::protocol::{read_line, Line, Request, Response, MAX_REQUEST_BYTES};

/// Connections served at once; more are told to retry.
pub const MAX_CONNECTIONS: usize = 128;
/// A connection with no request for this long is closed (event streams excepted).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// This process's claim on a state dir: the lock, and the socket file to remove on drop.
#[derive(Debug)]
pub struct InstanceLock {
    _lock: Flock<File>,
    socket: PathBuf,
}

impl InstanceLock {
    /// The control socket's path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }
}

impl Drop for InstanceLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.socket);
        // No pid: nobody holds the state dir (`claimed`); then the lock itself goes.
        let _ = self._lock.set_len(0);
    }
}

/// Whether a live instance holds `state_dir`: the lock file names a live process (an instance
/// writes its pid there when it takes the lock and empties it at its very end, after every
/// service stopped). Read, never locked: a probe that took the lock, even for an instant,
/// would make an instance starting then fail.
pub fn claimed(state_dir: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(state_dir.join(LOCK_FILE)) else {
        return false;
    };
    match text.trim().parse::<i32>() {
        Ok(pid) if pid > 1 => {
            let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok();
            // A zombie's pid answers too: it is no instance.
            let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|st| {
                    st.rsplit(')')
                        .next()
                        .map(|r| r.trim_start().starts_with('Z'))
                })
                .unwrap_or(false);
            alive && !zombie
        }
        _ => false,
    }
}

/// Claims `state_dir` for this process and binds its control socket (mode 0600). Refuses when
/// another live instance holds it; removes a socket left by a dead one.
pub fn bind(state_dir: &Path) -> CliResult<(InstanceLock, UnixListener)> {
    let socket = paths::socket_path(state_dir)?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(state_dir)
        .map_err(|e| {
            CliError::failed(format!(
                "cannot create the state dir {}: {e}",
                state_dir.display()
            ))
        })?;
    let lock_path = state_dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&lock_path)
        .map_err(|e| CliError::failed(format!("cannot open {}: {e}", lock_path.display())))?;
    let locked = Flock::lock(file, FlockArg::LockExclusiveNonblock);
    let mut lock = match locked {
        Ok(l) => l,
        Err((mut file, _)) => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            let pid = pid.trim();
            return Err(CliError::failed(format!(
                "another mcpvisor{} is already running with the state dir {}; stop it, or use \
                 another --state-dir",
                if pid.is_empty() {
                    String::new()
                } else {
                    format!(" (pid {pid})")
                },
                state_dir.display()
            )));
        }
    };
    let _ = lock.set_len(0);
    let _ = lock.rewind();
    let _ = writeln!(lock, "{}", std::process::id());
    let _ = lock.flush();

    if socket.exists() {
        // We hold the lock, so whoever made it is gone; but never steal a live socket.
        if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
            return Err(CliError::failed(format!(
                "another process is serving {}; stop it, or use another --state-dir",
                socket.display()
            )));
        }
        std::fs::remove_file(&socket).map_err(|e| {
            CliError::failed(format!(
                "cannot remove the stale socket {}: {e}",
                socket.display()
            ))
        })?;
        tracing::info!(socket = %socket.display(), "removed a stale control socket");
    }
    let listener = bind_private(&socket)?;
    Ok((
        InstanceLock {
            _lock: lock,
            socket,
        },
        listener,
    ))
}

/// Listens on a Unix socket only its owner can use: created with mode 0600 from the start
/// (umask), then made sure of.
pub fn bind_private(path: &Path) -> CliResult<UnixListener> {
    let old = umask(Mode::from_bits_truncate(0o177));
    let bound = UnixListener::bind(path);
    umask(old);
    let listener =
        bound.map_err(|e| CliError::failed(format!("cannot listen on {}: {e}", path.display())))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Serves connections until `cancel` fires; every connection ends with it.
pub async fn serve(
    listener: UnixListener,
    store: Store,
    instance: Instance,
    cancel: CancellationToken,
) {
    let instance = Arc::new(instance);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            // Reap finished connections so the set stays small.
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) if from_a_sandbox(&stream) => {
                    conns.spawn(refuse_sandboxed(stream));
                }
                Ok((stream, _)) => match slots.clone().try_acquire_owned() {
                    Ok(permit) => {
                        let (store, instance, cancel) = (store.clone(), instance.clone(), cancel.clone());
                        conns.spawn(async move {
                            connection(stream, store, &instance, cancel).await;
                            drop(permit);
                        });
                    }
                    Err(_) => {
                        conns.spawn(refuse_busy(stream));
                    }
                },
                Err(e) => {
                    // E.g. out of file descriptors: do not spin.
                    tracing::warn!("control socket: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
    conns.shutdown().await;
}

/// Whether the peer of `stream` is a sandboxed server (or runs inside one's sandbox): it may
/// not drive mcpvisor — add a server without a sandbox, read the fleet — whatever its files
/// allow (Landlock before ABI 9 does not cover connecting to a named socket).
pub(crate) fn from_a_sandbox(stream: &UnixStream) -> bool {
    let sandboxed = stream
        .peer_cred()
        .ok()
        .and_then(|c| c.pid())
        .is_some_and(mcpvisor_supervisor::in_a_sandbox);
    if sandboxed {
        tracing::warn!("a sandboxed server tried mcpvisor's socket; refused");
    }
    sandboxed
}

async fn refuse_sandboxed(mut stream: UnixStream) {
    let e = CliError::failed("a sandboxed server may not use mcpvisor's control socket");
    let _ = stream
        .write_all(Response::err(&e).to_line().as_bytes())
        .await;
}

async fn refuse_busy(mut stream: UnixStream) {
    let e = CliError::failed(format!(
        "the instance is serving {MAX_CONNECTIONS} connections already; try again"
    ));
    let _ = stream
        .write_all(Response::err(&e).to_line().as_bytes())
        .await;
}

async fn connection(
    stream: UnixStream,
    store: Store,
    instance: &Instance,
    cancel: CancellationToken,
) {
    let (r, mut w) = stream.into_split();
    let mut reader = BufReader::new(r);
    loop {
        let line = tokio::select! {
            _ = cancel.cancelled() => return,
            l = tokio::time::timeout(IDLE_TIMEOUT, read_line(&mut reader, MAX_REQUEST_BYTES)) => l,
        };
        let line = match line {
            Err(_) | Ok(Err(_)) | Ok(Ok(Line::Eof)) => return,
            Ok(Ok(Line::TooLong)) => {
                let e = CliError::bad_input(format!(
                    "request longer than {MAX_REQUEST_BYTES} bytes; closing the connection"
                ));
                let _ = w.write_all(Response::err(&e).to_line().as_bytes()).await;
                return;
            }
            Ok(Ok(Line::Text(t))) => t,
        };
        if line.trim().is_empty() {
            continue;
        }
        let request = match serde_json::from_str::<Request>(&line) {
            Ok(r) => r,
            Err(e) => {
                let e = CliError::bad_input(format!("bad request: {e}"));
                if w.write_all(Response::err(&e).to_line().as_bytes())
                    .await
                    .is_err()
                {
                    return;
                }
                continue;
            }
        };
        tracing::debug!(?request, "control request");
        if request == Request::Events {
            stream_events(&store, reader, w, cancel).await;
            return;
        }
        let response = tokio::select! {
            _ = cancel.cancelled() => return,
            r = exec::execute(&store, request, instance) => match r {
                Ok(v) => Response::ok(v),
                Err(e) => Response::err(&e),
            },
        };
        if w.write_all(response.to_line().as_bytes()).await.is_err() {
            return;
        }
    }
}

/// How often a lost subscription (the registry was respawned) is renewed before giving up.
const RESUBSCRIBE_ATTEMPTS: u32 = 50;

/// Writes every event as a JSON line until the client goes away or the instance stops.
async fn stream_events(
    store: &Store,
    mut reader: BufReader<tokio::net::unix::OwnedReadHalf>,
    mut w: OwnedWriteHalf,
    cancel: CancellationToken,
) {
    let mut events = match store.subscribe().await {
        Ok(s) => s,
        Err(e) => {
            let _ = w
                .write_all(Response::err(&CliError::from(e)).to_line().as_bytes())
                .await;
            return;
        }
    };
    if w.write_all(
        crate::protocol::answer_of(&json!({"subscribed": true}))
            .map(Response::ok)
            .unwrap_or_else(|e| Response::err(&e))
            .to_line()
            .as_bytes(),
    )
    .await
    .is_err()
    {
        return;
    }
    let mut renewals = 0;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            // Anything the client sends (or its EOF) is only watched for disconnection.
            l = read_line(&mut reader, MAX_REQUEST_BYTES) => {
                if !matches!(l, Ok(Line::Text(_))) {
                    return;
                }
            }
            e = events.next() => match e {
                Some(e) => {
                    let Ok(mut s) = serde_json::to_string(&e) else { continue };
                    s.push('\n');
                    if w.write_all(s.as_bytes()).await.is_err() {
                        return;
                    }
                }
                None => match resubscribe(store, &mut renewals).await {
                    Some(s) => events = s,
                    None => return,
                },
            },
        }
    }
}

/// A fresh subscription after the registry was replaced, within a bounded number of tries.
pub async fn resubscribe(store: &Store, renewals: &mut u32) -> Option<EventStream> {
    while *renewals < RESUBSCRIBE_ATTEMPTS {
        *renewals += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Ok(s) = store.subscribe().await {
            return Some(s);
        }
    }
    None
}
