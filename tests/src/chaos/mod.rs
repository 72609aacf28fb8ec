//! `chaos-mcp`: a fault-injecting MCP server used by mcpvisor's integration tests.
//!
//! The binary (`src/bin/chaos-mcp.rs`) only calls [`run`]. The server is a hand-written
//! [`rmcp::ServerHandler`] (no `#[tool]` macros) so that its tool set can change at run time.
//! Its `serverInfo.name` is `chaos-mcp`; it advertises `tools.listChanged = true`.
//!
//! Nothing but MCP frames is ever written to stdout (plus, in HTTP mode, the address line and
//! any garbage that was asked for). Logs go to stderr, one line per event, each prefixed with
//! `chaos-mcp[<pid>]: `. Every request (initialize, ping, tools/list, tools/call) is logged to
//! stderr *synchronously*, so a server whose stderr nobody drains blocks, as real servers do.
//! Other useful log lines: `stdin closed` (EOF on stdin, stdio mode), `grandchild pid N`,
//! `exiting with code C`, `closed stdout`, and `stdin closed, but a fault keeps this process
//! alive` (after a hang or a closed stdout the process never exits on its own).
//!
//! # Transports
//!
//! * stdio (default): newline-delimited JSON-RPC on stdin/stdout.
//! * `--http ADDR` (e.g. `--http 127.0.0.1:0`): streamable HTTP on `http://ADDR/mcp`. Only
//!   loopback addresses are accepted (anything else exits with code 2). The bound URL, e.g.
//!   `http://127.0.0.1:43121/mcp`, is the first line of stdout and is flushed at once.
//!   With `--tls-cert PEM --tls-key PEM` it serves HTTPS instead (URL `https://...`).
//!   With `--oauth` it wants OAuth and is its own authorization server ([`oauth`]).
//!
//! # Tools
//!
//! | tool | arguments | result |
//! |---|---|---|
//! | `echo` | `{text: string}` | `text` |
//! | `add` | `{a: number, b: number}` | the sum as text (integer if both are integers) |
//! | `sleep` | `{ms: integer}` | sleeps, then `slept <ms>` |
//! | `fail` | `{message?: string}` | a tool error (`isError: true`) carrying `message` |
//! | `pids` | `{}` | JSON `{"pid", "ppid", "pgid", "grandchild", "grandchildren"}` |
//! | `chaos` | `{action: string, ...}` | control tool, see below |
//! | `tool_0`..`tool_{N-1}` | any object | (with `--tools N`) the arguments as JSON text |
//!
//! Tools added at run time with `add_tool` behave like `tool_i`. Bad arguments give a tool
//! error (`isError: true`), never a panic; an unknown tool name is a JSON-RPC invalid-params
//! error.
//!
//! # Faults
//!
//! "After N calls" means: once the N-th `tools/call` (any tool, counted from 1) has been
//! answered. In stdio mode, actions that must follow a response (exit, close stdout) run at the
//! first completed stdout flush after the line carrying that response's id was written (with a
//! 5 s fallback timer), so the client always receives the response first; in HTTP mode they
//! run 100 ms after the response is produced. Tool calls arriving once an exit is scheduled are
//! never answered.
//!
//! | fault | start flag | `chaos` action (arguments) |
//! |---|---|---|
//! | exit now | — | `exit` (`code`: integer, default 1; `after_response`: bool, default false — when false the process exits before answering) |
//! | exit at start | `--exit-at-start C` (before reading anything) | — (use `exit`) |
//! | exit after N calls | `--exit-after-calls N` (code from `--exit-code C`, default 1) | — |
//! | exit after a time | `--exit-after-ms MS` (code from `--exit-code`) | — |
//! | hang | `--hang-after-calls N`, `--hang-at-start` | `hang` |
//! | close stdout | `--close-stdout-after-calls N` (0 = before serving) | `close_stdout` |
//! | garbage line on stdout | `--garbage-at-start` (text from `--garbage-text`) | `garbage` (`text`: string) |
//! | flood stderr | `--stderr-flood BYTES` | `stderr_flood` (`bytes`: integer) |
//! | log lines on stderr | `--stderr-lines N` | `stderr_lines` (`count`: integer) |
//! | ignore SIGTERM | `--ignore-sigterm` (`--log-ignored-sigterm`: through a handler logging `SIGTERM received, ignored`) | `ignore_sigterm` |
//! | grandchild | `--spawn-grandchild` (+ `--grandchild-keep-stdio`) | `spawn_grandchild` (`keep_stdio`: bool) |
//! | slow startup | `--startup-delay-ms MS` | — |
//! | tool list change | `--add-tool-after-calls N` (adds `late_tool`) | `add_tool` (`name`), `remove_tool` (`name`) |
//! | no ping | `--no-ping` | `no_ping` (`enabled`: bool, default true) |
//! | sessions forgotten (HTTP 404) | | `forget_sessions` |
//! | (not a fault) the call's JSON-RPC id, as JSON text | | `request_id` |
//!
//! Details:
//!
//! * **hang**: every later request (ping, initialize, tools/list, tools/call, anything) awaits
//!   forever; the process stays alive and does not exit when stdin closes. Pings are answered
//!   by our own `ping` handler (rmcp's default is overridden), and in stdio mode a wrapper
//!   around the whole request dispatch also blocks requests rmcp would answer itself.
//!   `--hang-at-start` in stdio mode never reads stdin at all.
//! * **close stdout**: fd 1 is replaced by `/dev/null` (`dup2`), so the pipe's write end is
//!   closed and the client reads EOF, while the process keeps running (also after stdin
//!   closes) until killed.
//! * **garbage**: one line of non-JSON text is written to the same stdout the transport uses,
//!   under the stdout lock, as a whole line.
//! * **stderr flood**: BYTES bytes are written to stderr by a background thread with blocking
//!   writes. If nobody drains stderr, the flood fills the pipe and every later request blocks
//!   on its log line.
//! * **grandchild**: `sleep 100000`, spawned with `std::process::Command` in our process group
//!   and never killed or waited for by us: when `chaos-mcp` dies (even by SIGKILL), it lives
//!   on. Its pid goes to stderr as `grandchild pid N`. Its stdio is `/dev/null` unless
//!   `--grandchild-keep-stdio`/`keep_stdio` is given, in which case it inherits our stdout and
//!   stderr and keeps those pipes open. It inherits an already ignored SIGTERM.
//! * **tool list change**: the tool set changes and `notifications/tools/list_changed` is sent
//!   (from the `add_tool`/`remove_tool` call, before its response). `chaos` cannot be removed.
//! * **no ping**: `ping` is answered with JSON-RPC method-not-found (-32601).
//!
//! Start-up order: `--stderr-lines`, `--spawn-grandchild`, `--ignore-sigterm`,
//! `--exit-at-start`, `--stderr-flood`, `--startup-delay-ms`, then serving (`--garbage-at-start`
//! and `--close-stdout-after-calls 0` just before the first read).

macro_rules! chaos_log {
    ($($arg:tt)*) => {
        $crate::chaos::faults::log(format_args!($($arg)*))
    };
}

pub mod args;
pub mod faults;
pub mod harness;
pub mod oauth;
pub mod server;
pub mod tools;

use std::{io::Write, sync::Arc};

use clap::Parser;
use rmcp::{
    transport::{
        streamable_http_server::session::local::LocalSessionManager, StreamableHttpServerConfig,
        StreamableHttpService,
    },
    ServiceExt,
};

pub use args::Args;
use server::{ChaosServer, Gate, HookedStdin, HookedStdout, Shared};

/// Entry point of the `chaos-mcp` binary: parse the flags, inject the start-time faults, serve.
pub fn run() -> ! {
    let args = Args::parse();
    init_tracing();
    let code = match run_with(args) {
        Ok(()) => 0,
        Err(error) => {
            chaos_log!("fatal: {error:#}");
            1
        }
    };
    // Exit explicitly: a blocking stdin read on tokio's blocking pool would otherwise keep the
    // runtime from shutting down.
    std::process::exit(code)
}

fn init_tracing() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .try_init();
    }
}

/// Run the server with already parsed flags. Returns when the service ends (stdin closed),
/// unless a fault keeps the process alive.
pub fn run_with(args: Args) -> anyhow::Result<()> {
    if let Some(addr) = args.http {
        if !addr.ip().is_loopback() {
            chaos_log!("refusing to listen on non-loopback address {addr}");
            std::process::exit(2);
        }
    }
    if let Some(count) = args.stderr_lines {
        faults::stderr_lines(count);
    }
    let mut grandchildren = Vec::new();
    if args.spawn_grandchild {
        grandchildren.push(faults::spawn_grandchild(args.grandchild_keep_stdio)?);
    }
    if args.ignore_sigterm {
        faults::ignore_sigterm();
    }
    if args.log_ignored_sigterm {
        faults::log_ignored_sigterm();
    }
    if let Some(code) = args.exit_at_start {
        chaos_log!("exiting at start with code {code}");
        std::process::exit(code);
    }
    if let Some(bytes) = args.stderr_flood {
        faults::stderr_flood(bytes);
    }
    if let Some(ms) = args.startup_delay_ms {
        chaos_log!("delaying startup by {ms} ms");
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
    if args.hang_at_start && args.http.is_none() {
        chaos_log!("hanging at start: never reading stdin");
        faults::park_forever();
    }

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let http = args.http;
        let shared = Arc::new(Shared::new(args, http.is_none()));
        shared.add_grandchildren(&grandchildren);
        match http {
            Some(addr) => serve_http(shared, addr).await,
            None => serve_stdio(shared).await,
        }
    })
}

fn spawn_timed_exit(shared: &Arc<Shared>) {
    if let Some(ms) = shared.args.exit_after_ms {
        let code = shared.args.exit_code;
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            chaos_log!("exiting after {ms} ms with code {code}");
            std::process::exit(code);
        });
    }
}

async fn serve_stdio(shared: Arc<Shared>) -> anyhow::Result<()> {
    if shared.args.garbage_at_start {
        faults::write_garbage(shared.args.garbage_line())?;
    }
    if shared.args.close_stdout_after_calls == Some(0) {
        shared.close_stdout_now();
    }
    spawn_timed_exit(&shared);
    let transport = (
        HookedStdin::new(tokio::io::stdin()),
        HookedStdout::new(tokio::io::stdout(), shared.clone()),
    );
    chaos_log!("serving stdio");
    match Gate(ChaosServer::new(shared.clone()))
        .serve(transport)
        .await
    {
        Ok(running) => {
            let reason = running.waiting().await;
            chaos_log!("service ended: {reason:?}");
        }
        Err(error) => chaos_log!("initialization failed: {error}"),
    }
    if shared.stay_alive() {
        chaos_log!("stdin closed, but a fault keeps this process alive");
        std::future::pending::<()>().await;
    }
    Ok(())
}

async fn serve_http(shared: Arc<Shared>, addr: std::net::SocketAddr) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let tls = match (&shared.args.tls_cert, &shared.args.tls_key) {
        (Some(cert), Some(key)) => Some(tls_acceptor(cert, key)?),
        _ => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{scheme}://{local}/mcp")?;
        stdout.flush()?;
    }
    if shared.args.garbage_at_start {
        faults::write_garbage(shared.args.garbage_line())?;
    }
    if shared.args.hang_at_start {
        shared.set_hung();
    }
    if shared.args.close_stdout_after_calls == Some(0) {
        shared.close_stdout_now();
    }
    spawn_timed_exit(&shared);
    let factory_shared = shared.clone();
    let service: StreamableHttpService<ChaosServer, LocalSessionManager> =
        StreamableHttpService::new(
            move || Ok(ChaosServer::new(factory_shared.clone())),
            Arc::new(LocalSessionManager::default()),
            StreamableHttpServerConfig::default(),
        );
    let mut router = axum::Router::new().nest_service("/mcp", service);
    router = router.layer(axum::middleware::from_fn(forgetful(shared.clone())));
    if shared.args.oauth {
        let oauth = Arc::new(oauth::OAuth::default());
        oauth.set_origin(format!("{scheme}://{local}"));
        let guarded = oauth.clone();
        router = router
            .layer(axum::middleware::from_fn(move |request, next| {
                oauth::guard(guarded.clone(), request, next)
            }))
            .merge(oauth::routes(oauth));
    }
    if let Some(token) = shared.args.bearer.clone() {
        let expected = format!("Bearer {token}");
        router = router.layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                let ok = request
                    .headers()
                    .get(axum::http::header::AUTHORIZATION)
                    .is_some_and(|v| v.as_bytes() == expected.as_bytes());
                async move {
                    if ok {
                        next.run(request).await
                    } else {
                        chaos_log!("refused a request without the bearer token (401)");
                        axum::response::IntoResponse::into_response((
                            axum::http::StatusCode::UNAUTHORIZED,
                            [(axum::http::header::WWW_AUTHENTICATE, "Bearer")],
                        ))
                    }
                }
            },
        ));
    }
    chaos_log!("serving streamable HTTP on {scheme}://{local}/mcp");
    match tls {
        None => axum::serve(listener, router).await?,
        Some(acceptor) => serve_tls(listener, acceptor, router).await,
    }
    Ok(())
}

/// A TLS acceptor for the PEM certificate chain and key given on the command line.
fn tls_acceptor(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_file_iter(cert)?.collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file(key)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Serves `router` over TLS: one task per connection, HTTP/1.1 (and upgrades).
async fn serve_tls(
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    router: axum::Router,
) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let (acceptor, router) = (acceptor.clone(), router.clone());
        tokio::spawn(async move {
            let tls = match acceptor.accept(tcp).await {
                Ok(tls) => tls,
                Err(error) => {
                    chaos_log!("TLS handshake failed: {error}");
                    return;
                }
            };
            let io = hyper_util::rt::TokioIo::new(tls);
            let service = hyper_util::service::TowerToHyperService::new(router);
            let _ =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection_with_upgrades(io, service)
                    .await;
        });
    }
}

/// The middleware behind the `forget_sessions` action: once it is raised, every session seen
/// so far is unknown and its requests get 404 (new sessions are served).
fn forgetful(
    shared: Arc<Shared>,
) -> impl Fn(
    axum::extract::Request,
    axum::middleware::Next,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = axum::response::Response> + Send>>
       + Clone
       + Send
       + Sync
       + 'static {
    use std::collections::HashSet;
    use std::sync::atomic::Ordering;
    use std::sync::Mutex;
    #[derive(Default)]
    struct Sessions {
        seen: HashSet<String>,
        forgotten: HashSet<String>,
    }
    let sessions = Arc::new(Mutex::new(Sessions::default()));
    move |request, next| {
        let id = request
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let known = {
            let mut s = sessions.lock().unwrap_or_else(|p| p.into_inner());
            if shared.forget_sessions.swap(false, Ordering::SeqCst) {
                let seen = std::mem::take(&mut s.seen);
                s.forgotten.extend(seen);
            }
            match &id {
                Some(id) if s.forgotten.contains(id) => false,
                Some(id) => {
                    s.seen.insert(id.clone());
                    true
                }
                None => true,
            }
        };
        Box::pin(async move {
            if known {
                next.run(request).await
            } else {
                chaos_log!("request for a forgotten session: 404");
                axum::response::IntoResponse::into_response(axum::http::StatusCode::NOT_FOUND)
            }
        })
    }
}
