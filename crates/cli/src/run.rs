//! `mcpvisor run`: the supervision tree in the foreground.
//!
//! Order matters: signals are caught first (so a SIGTERM at any point still stops the
//! children), then the state dir is claimed and the control socket bound (so a second instance
//! is refused before it could reap the first one's processes), then the [`Store`] opens. While
//! services start a live count is shown ("3/5 healthy"); once they settled, one line per
//! transition. SIGINT/SIGTERM stop every service in reverse dependency order and exit 0.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mcpvisor_model::{Event, ServiceState};
use mcpvisor_supervisor::{EventStream, Store, StoreError, StoreOptions};
use tokio_util::sync::CancellationToken;

use crate::error::{CliError, CliResult};
use crate::exec::Instance;
use crate::output::{self, log};
use crate::server;
use crate::settle::{self, Progress};
use crate::signals::Signals;
use crate::watch;

/// The longest the start-up view waits for services before switching to transition lines.
const STARTUP_CAP: Duration = Duration::from_secs(600);

/// Runs until SIGINT or SIGTERM.
pub async fn run(
    config: PathBuf,
    state_dir: PathBuf,
    watch_file: bool,
    serve: Option<(std::net::SocketAddr, Option<PathBuf>)>,
    metrics: Option<std::net::SocketAddr>,
    background: bool,
) -> CliResult<()> {
    let mut signals = Signals::new()?;
    let http = match &serve {
        Some((addr, token_file)) => {
            Some(crate::gateway::http_options(*addr, token_file.as_deref())?)
        }
        None => None,
    };
    let (lock, listener) = server::bind(&state_dir)?;
    let (gateway_socket, gateway_listener) = crate::gateway::bind_socket(&state_dir)?;
    let metrics_listener =
        match metrics {
            Some(addr) => Some(tokio::net::TcpListener::bind(addr).await.map_err(|e| {
                CliError::failed(format!("cannot listen on {addr} (--metrics): {e}"))
            })?),
            None => None,
        };
    let http_listener = match &http {
        Some(o) => Some(tokio::net::TcpListener::bind(o.bind).await.map_err(|e| {
            CliError::failed(format!("cannot listen on {} (--serve): {e}", o.bind))
        })?),
        None => None,
    };
    if !config.exists() {
        log(&format!(
            "{} does not exist yet: starting with no services (services added will be \
             written there)",
            config.display()
        ));
    }
    let store = open_store(&config, &state_dir).await?;
    let color = output::color_stdout();
    log(&format!(
        "mcpvisor {} (pid {}): {} — control socket {}",
        env!("CARGO_PKG_VERSION"),
        std::process::id(),
        config.display(),
        lock.socket().display()
    ));

    let cancel = CancellationToken::new();
    let attached = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let gateway = mcpvisor_gateway::Gateway::new(store.clone())
        .await
        .map_err(|e| CliError::failed(e.to_string()))?;
    let gateway_tasks = {
        let mut tasks = vec![tokio::spawn(crate::gateway::serve_socket(
            gateway_listener,
            gateway.clone(),
            cancel.clone(),
            attached.clone(),
        ))];
        if let Some(listener) = metrics_listener {
            if let Ok(addr) = listener.local_addr() {
                log(&format!(
                    "metrics: http://{addr}/metrics (also /healthz, /readyz)"
                ));
            }
            tasks.push(tokio::spawn({
                let (store, cancel) = (store.clone(), cancel.clone());
                async move {
                    if let Err(e) = mcpvisor_gateway::serve_ops(listener, store, cancel).await {
                        tracing::warn!("metrics: {e}");
                    }
                }
            }));
        }
        if let (Some(mut options), Some(listener)) = (http, http_listener) {
            let addr = listener.local_addr().unwrap_or(options.bind);
            log(&format!(
                "gateway: http://{addr}/mcp (MCP over streamable HTTP)"
            ));
            options.cancel = cancel.child_token();
            let g = gateway.clone();
            tasks.push(tokio::spawn(async move {
                if let Err(e) = g.serve_http(listener, options).await {
                    tracing::warn!("gateway: {e}");
                }
            }));
        }
        tasks
    };
    let stop = CancellationToken::new();
    if background {
        if let Some(after) = store.config().await.ok().and_then(|c| c.gateway.idle_exit) {
            tokio::spawn(crate::gateway::exit_when_idle(
                attached.clone(),
                after,
                stop.clone(),
            ));
        }
    }
    let instance = Instance {
        config: Some(absolute(&config)),
        state_dir: Some(absolute(&state_dir)),
        started: Some(started_by(background, &state_dir)),
        stop: Some(stop.clone()),
    };
    let server = tokio::spawn(server::serve(
        listener,
        store.clone(),
        instance,
        cancel.clone(),
    ));
    let watcher = watch_file
        .then(|| tokio::spawn(watch::watch(store.clone(), config.clone(), cancel.clone())));

    // The follower prints until every service is stopped, so the shutdown is shown too.
    let shutting_down = CancellationToken::new();
    let done = CancellationToken::new();
    let follower = tokio::spawn(follow(
        store.clone(),
        color,
        shutting_down.clone(),
        done.clone(),
    ));
    let stopped_by = tokio::select! {
        signal = signals.next() => signal,
        _ = stop.cancelled() => "mcpvisor shutdown",
    };
    // Under systemd (Type=notify): stopping now.
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    shutting_down.cancel();
    log(&format!(
        "{stopped_by}: stopping every service (dependents first)..."
    ));
    cancel.cancel();
    let _ = server.await;
    for t in gateway_tasks {
        let _ = t.await;
    }
    let _ = std::fs::remove_file(&gateway_socket);
    if let Some(w) = watcher {
        let _ = w.await;
    }
    // A second signal while services stop gracefully kills every process group at once.
    tokio::select! {
        _ = store.shutdown() => {}
        again = signals.next() => {
            log(&format!("{again} again: killing every server process group now"));
            store.kill_all();
            store.shutdown().await;
        }
    }
    done.cancel();
    let _ = follower.await;
    drop(lock);
    log("stopped");
    Ok(())
}

/// How this instance was started, in words.
fn started_by(background: bool, state_dir: &Path) -> String {
    if background {
        format!(
            "in the background by `serve --stdio` (log: {})",
            crate::paths::log_path(state_dir).display()
        )
    } else if std::env::var_os("INVOCATION_ID").is_some()
        && std::env::var_os("NOTIFY_SOCKET").is_some()
    {
        // systemd sets both for a Type=notify unit's main process (INVOCATION_ID alone is
        // inherited by everything a unit spawns, a terminal's shell included).
        "by systemd".to_owned()
    } else {
        "by `mcpvisor run`".to_owned()
    }
}

/// The start-up view (cut short by `shutting_down`), then one line per event until `done`.
async fn follow(
    store: Store,
    color: bool,
    shutting_down: CancellationToken,
    done: CancellationToken,
) {
    let all = store.all_scopes();
    let mut events = all.subscribe().await.ok();
    if std::io::stdout().is_terminal() && !output::json_log() {
        tokio::select! {
            _ = shutting_down.cancelled() => {}
            _ = startup(&all, color, &mut events) => systemd_ready(),
        }
    } else {
        // Off a terminal (a log file, journald, a pipe) or in JSON: one line per transition
        // from the very start, and the ready summary once start-up settled — no live counter.
        let ready = ready_lines(&all);
        tokio::pin!(ready);
        loop {
            tokio::select! {
                _ = shutting_down.cancelled() => break,
                lines = &mut ready => {
                    for line in lines {
                        log(&line);
                    }
                    systemd_ready();
                    break;
                }
                e = next_event(&mut events) => match e {
                    Some(e) => print_event(&e, color),
                    None => break,
                },
            }
        }
    }
    let mut renewals = 0;
    loop {
        let next = tokio::select! {
            _ = done.cancelled() => break,
            e = next_event(&mut events) => e,
        };
        match next {
            Some(e) => print_event(&e, color),
            // The registry stopped with the tree: everything was read.
            None if shutting_down.is_cancelled() => return,
            None => match server::resubscribe(&all, &mut renewals).await {
                Some(s) => events = Some(s),
                None => {
                    log("no more events can be read; still running until SIGINT/SIGTERM");
                    events = None;
                }
            },
        }
    }
    if let Some(stream) = events.as_mut() {
        while let Some(e) = stream.try_next() {
            print_event(&e, color);
        }
    }
}

/// The next event; never, without a subscription.
async fn next_event(events: &mut Option<EventStream>) -> Option<Event> {
    match events {
        Some(s) => s.next().await,
        None => std::future::pending().await,
    }
}

/// The Store of `config` on `state_dir` (owning it), config errors worded for the file.
pub async fn open_store(config: &Path, state_dir: &Path) -> CliResult<Store> {
    // The gateway (always served by run and the embedded serve) answers servers' requests.
    Store::open(
        StoreOptions::new()
            .config_file(config)
            .state_dir(state_dir)
            .relay_server_requests(),
    )
    .await
    .map_err(|e| match e {
        StoreError::Config(errors) => CliError::config(&config.display().to_string(), &errors),
        other => CliError::from(other),
    })
}

/// Under systemd (`Type=notify`, `$NOTIFY_SOCKET` set): start-up settled. Nothing otherwise.
fn systemd_ready() {
    if let Err(e) = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]) {
        tracing::warn!("cannot tell systemd we are ready: {e}");
    }
}

/// Waits for start-up to settle (no output meanwhile); the summary lines.
async fn ready_lines(all: &Store) -> Vec<String> {
    let deadline = startup_deadline(all).await;
    summary(settle::wait_settled(all, None, false, deadline, |_: &Progress, _| {}).await)
}

/// How long start-up may take: the longest connect timeout, at most [`STARTUP_CAP`].
async fn startup_deadline(all: &Store) -> tokio::time::Instant {
    let infos = match all.config().await {
        Ok(c) => settle::spec_infos(&c),
        Err(_) => Default::default(),
    };
    settle::connect_deadline(&infos, None, STARTUP_CAP)
}

/// "ready: N/M healthy" and what is not up, and why.
fn summary(started: Result<Vec<mcpvisor_supervisor::ServiceView>, StoreError>) -> Vec<String> {
    match started {
        Ok(views) => {
            let up = views.iter().filter(|v| v.state.is_up()).count();
            let idle = views
                .iter()
                .filter(|v| v.state == ServiceState::Idle)
                .count();
            let mut head = format!("ready: {up}/{} healthy", views.len());
            if idle > 0 {
                head.push_str(&format!(", {idle} idle (started by their first call)"));
            }
            let mut lines = vec![head];
            for v in views
                .iter()
                .filter(|v| !v.state.is_up() && v.state != ServiceState::Idle)
            {
                lines.push(format!(
                    "  {}: {}{}",
                    v.name,
                    v.state,
                    if v.reason.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", v.reason)
                    }
                ));
            }
            lines
        }
        Err(e) => vec![format!("cannot read the services: {e}")],
    }
}

/// On a terminal: the live count while services start, then what is not up and why.
async fn startup(all: &Store, color: bool, events: &mut Option<EventStream>) {
    let deadline = startup_deadline(all).await;
    let mut drawn = false;
    let started = settle::wait_settled(all, None, false, deadline, |p: &Progress, _| {
        output::redraw(&p.line());
        drawn = true;
    })
    .await;
    if drawn {
        output::redraw("");
    }
    // What happened meanwhile was summed up by the count; report only the trouble.
    if let Some(stream) = events.as_mut() {
        while let Some(e) = stream.try_next() {
            if settle::is_trouble(&e) {
                output::log_event(&e, color);
            }
        }
    }
    for line in summary(started) {
        log(&line);
    }
}

fn print_event(e: &Event, color: bool) {
    // Tool list changes are visible in `status`/`tools`, servers' own log messages in `logs`
    // (beside their stderr) and resource updates to their subscribers; transitions, config
    // changes and alerts are what the log is for.
    if !matches!(
        e,
        Event::ToolsChanged { .. } | Event::ServerLog { .. } | Event::ResourceUpdated { .. }
    ) {
        output::log_event(e, color);
    }
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}
