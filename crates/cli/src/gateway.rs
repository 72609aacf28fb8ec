//! Wiring of the gateway (crate `mcpvisor-gateway`): `run` serves it on a Unix socket in the
//! state dir (and over HTTP with `--serve`); `serve --stdio` is what an MCP client's
//! `mcpServers` entry runs — it attaches to that socket, so every client shares one fleet, and
//! runs a fleet of its own only when given `--config` with no instance running.
//!
//! The socket speaks MCP's stdio framing (newline-delimited JSON-RPC) after one preamble line,
//! `mcpvisor-gateway <endpoint>`, naming the endpoint (`default` or `agent:<id>`). Only the
//! socket's owner can connect (mode 0600).

use std::path::{Path, PathBuf};
use std::time::Duration;

use mcpvisor_gateway::{Endpoint, Gateway, HttpOptions};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;

use crate::error::{CliError, CliResult};
use crate::paths;

const PREAMBLE: &str = "mcpvisor-gateway";
/// How long a connection may take to send its preamble.
const PREAMBLE_WAIT: Duration = Duration::from_secs(5);

fn preamble(endpoint: &Endpoint) -> String {
    match endpoint {
        Endpoint::Default => format!("{PREAMBLE} default\n"),
        Endpoint::Agent(id) => format!("{PREAMBLE} agent:{id}\n"),
    }
}

fn parse_preamble(line: &str) -> Option<Endpoint> {
    match line.trim_end().strip_prefix(PREAMBLE)?.trim() {
        "default" => Some(Endpoint::Default),
        other => other
            .strip_prefix("agent:")
            .filter(|id| !id.is_empty())
            .map(|id| Endpoint::Agent(id.to_owned())),
    }
}

/// Binds the gateway socket of `state_dir` (mode 0600). The caller holds the state dir's lock,
/// so a socket file already there was left by a dead instance.
pub fn bind_socket(state_dir: &Path) -> CliResult<(PathBuf, UnixListener)> {
    let path = paths::gateway_socket_path(state_dir)?;
    if path.exists() {
        let _ = std::fs::remove_file(&path);
    }
    let listener = crate::server::bind_private(&path)?;
    Ok((path, listener))
}

/// Serves the gateway on `listener` until `cancel` fires: one MCP session per connection.
pub async fn serve_socket(listener: UnixListener, gateway: Gateway, cancel: CancellationToken) {
    loop {
        let stream = tokio::select! {
            _ = cancel.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!("gateway socket: accept failed: {e}");
                    continue;
                }
            },
        };
        let gateway = gateway.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            let (read, write) = stream.into_split();
            let mut read = BufReader::new(read);
            let mut line = String::new();
            let got = tokio::time::timeout(PREAMBLE_WAIT, read.read_line(&mut line)).await;
            let Some(endpoint) = got
                .ok()
                .and_then(|r| r.ok())
                .and_then(|_| parse_preamble(&line))
            else {
                tracing::warn!("gateway socket: a connection without a valid preamble was closed");
                return;
            };
            tokio::select! {
                _ = cancel.cancelled() => {}
                r = gateway.serve_stream(endpoint, read, write) => {
                    if let Err(e) = r {
                        tracing::warn!("gateway socket: {e}");
                    }
                }
            }
        });
    }
}

/// The HTTP gateway's options: loopback rules, the token from `--token-file` or
/// `MCPVISOR_GATEWAY_TOKEN`.
pub fn http_options(
    bind: std::net::SocketAddr,
    token_file: Option<&Path>,
) -> CliResult<HttpOptions> {
    let mut options = HttpOptions::new(bind);
    options.token = match token_file {
        Some(f) => Some(
            std::fs::read_to_string(f)
                .map_err(|e| {
                    CliError::bad_input(format!("cannot read --token-file {}: {e}", f.display()))
                })?
                .trim()
                .to_owned(),
        ),
        None => std::env::var("MCPVISOR_GATEWAY_TOKEN")
            .ok()
            .map(|t| t.trim().to_owned()),
    }
    .filter(|t| !t.is_empty());
    if !bind.ip().is_loopback() && options.token.is_none() {
        return Err(CliError::bad_input(format!(
            "--serve {bind} is not loopback: a bearer token is required (MCPVISOR_GATEWAY_TOKEN \
             or --token-file)"
        )));
    }
    Ok(options)
}

/// `serve --stdio`: attach to the instance on `state_dir`, else (with `config`) run one here.
pub async fn serve_stdio(
    state_dir: PathBuf,
    config: Option<PathBuf>,
    agent: Option<String>,
) -> CliResult<()> {
    let endpoint = match agent {
        Some(id) => Endpoint::Agent(id),
        None => Endpoint::Default,
    };
    let socket = paths::gateway_socket_path(&state_dir)?;
    match UnixStream::connect(&socket).await {
        Ok(stream) => attach(stream, &endpoint).await,
        Err(_) => match config {
            Some(config) => embedded(config, state_dir, endpoint).await,
            None => Err(CliError::failed(format!(
                "no mcpvisor instance runs on {}: start `mcpvisor run --config FILE` there, or \
                 give `serve --stdio` a --config to run the fleet in this process",
                state_dir.display()
            ))),
        },
    }
}

/// Pipes stdin → the instance and the instance → stdout until either side ends.
async fn attach(stream: UnixStream, endpoint: &Endpoint) -> CliResult<()> {
    let (mut from_fleet, mut to_fleet) = stream.into_split();
    to_fleet.write_all(preamble(endpoint).as_bytes()).await?;
    let up = async {
        let mut stdin = tokio::io::stdin();
        let _ = tokio::io::copy(&mut stdin, &mut to_fleet).await;
        let _ = to_fleet.shutdown().await;
    };
    let down = async {
        let mut stdout = tokio::io::stdout();
        let copied = tokio::io::copy(&mut from_fleet, &mut stdout).await;
        let _ = stdout.flush().await;
        copied
    };
    tokio::pin!(up, down);
    tokio::select! {
        // The client closed stdin: let the instance finish answering, then end.
        _ = &mut up => { let _ = down.await; Ok(()) }
        // The instance closed the connection (it stopped): the client must know.
        r = &mut down => match r {
            Ok(_) => Err(CliError::failed("the mcpvisor instance closed the connection (stopped?)")),
            Err(e) => Err(CliError::failed(format!("the connection to the mcpvisor instance failed: {e}"))),
        },
    }
}

/// No instance runs: this process supervises `config` (claiming the state dir, so later
/// `serve --stdio` clients attach here) and serves its stdin/stdout.
async fn embedded(config: PathBuf, state_dir: PathBuf, endpoint: Endpoint) -> CliResult<()> {
    let (lock, control) = crate::server::bind(&state_dir)?;
    let store = crate::run::open_store(&config, &state_dir).await?;
    let gateway = Gateway::new(store.clone())
        .await
        .map_err(|e| CliError::failed(e.to_string()))?;
    let cancel = CancellationToken::new();
    let (_socket, listener) = bind_socket(&state_dir)?;
    let instance = crate::exec::Instance {
        config: std::path::absolute(&config).ok(),
        state_dir: std::path::absolute(&state_dir).ok(),
    };
    let control = tokio::spawn(crate::server::serve(
        control,
        store.clone(),
        instance,
        cancel.clone(),
    ));
    let shared = tokio::spawn(serve_socket(listener, gateway.clone(), cancel.clone()));
    let served = gateway
        .serve_stream(endpoint, tokio::io::stdin(), tokio::io::stdout())
        .await;
    cancel.cancel();
    let _ = control.await;
    let _ = shared.await;
    store.shutdown().await;
    drop(lock);
    served.map_err(|e| CliError::failed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_preamble_names_the_endpoint() {
        for e in [Endpoint::Default, Endpoint::Agent("bot".into())] {
            assert_eq!(parse_preamble(&preamble(&e)), Some(e));
        }
        assert_eq!(parse_preamble("{\"jsonrpc\":\"2.0\"}\n"), None);
        assert_eq!(parse_preamble("mcpvisor-gateway agent:\n"), None);
    }
}
