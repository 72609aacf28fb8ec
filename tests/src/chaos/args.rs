//! Command-line flags of `chaos-mcp`. See the [module documentation](super) for the full table.

use std::net::SocketAddr;

use clap::Parser;

/// The line `--garbage-at-start` and the `garbage` action write when no text is given.
pub const DEFAULT_GARBAGE: &str = "this is not json {{{ chaos-mcp garbage";

/// Name of the tool `--add-tool-after-calls` adds.
pub const LATE_TOOL: &str = "late_tool";

/// Start-time configuration of the chaos server.
#[derive(Parser, Debug, Clone, Default)]
#[command(
    name = "chaos-mcp",
    about = "A fault-injecting MCP server for mcpvisor's integration tests"
)]
pub struct Args {
    /// Serve streamable HTTP (path /mcp) on this loopback address instead of stdio; the bound
    /// URL is printed as the first line of stdout.
    #[arg(long, value_name = "ADDR")]
    pub http: Option<SocketAddr>,

    /// With --http: serve HTTPS with this PEM certificate chain (and --tls-key); the printed
    /// URL is then `https://...`.
    #[arg(long, value_name = "PEM", requires_all = ["http", "tls_key"])]
    pub tls_cert: Option<std::path::PathBuf>,

    /// With --http: answer 401 (with `WWW-Authenticate: Bearer`) to every request that does not
    /// carry `Authorization: Bearer TOKEN`.
    #[arg(long, value_name = "TOKEN", requires = "http")]
    pub bearer: Option<String>,

    /// With --http: be an OAuth-protected server with its own authorization server (see
    /// `chaos::oauth`): metadata, registration, an `/authorize` that redirects at once, a
    /// `/token` endpoint with refresh, and `POST /revoke` to invalidate the access token.
    #[arg(long, requires = "http")]
    pub oauth: bool,

    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,

    /// Add N synthetic tools `tool_0..tool_{N-1}` that echo their arguments.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub tools: usize,

    /// Exit with code C at start, before reading anything.
    #[arg(long, value_name = "C", allow_negative_numbers = true)]
    pub exit_at_start: Option<i32>,

    /// Exit (with --exit-code) once the N-th tool call has been answered.
    #[arg(long, value_name = "N")]
    pub exit_after_calls: Option<u64>,

    /// Exit (with --exit-code) MS milliseconds after serving starts.
    #[arg(long, value_name = "MS")]
    pub exit_after_ms: Option<u64>,

    /// Exit code used by --exit-after-calls and --exit-after-ms.
    #[arg(
        long,
        value_name = "C",
        default_value_t = 1,
        allow_negative_numbers = true
    )]
    pub exit_code: i32,

    /// Hang (answer nothing, ping included, stay alive) once the N-th tool call has been
    /// answered.
    #[arg(long, value_name = "N")]
    pub hang_after_calls: Option<u64>,

    /// Hang from the start: in stdio mode never read stdin; in HTTP mode accept connections but
    /// never answer.
    #[arg(long)]
    pub hang_at_start: bool,

    /// Close stdout (keep running) once the N-th tool call has been answered; 0 closes it
    /// before serving.
    #[arg(long, value_name = "N")]
    pub close_stdout_after_calls: Option<u64>,

    /// Write one non-JSON line to stdout before serving (in HTTP mode: after the address line).
    #[arg(long)]
    pub garbage_at_start: bool,

    /// Text of the garbage line (default: a fixed non-JSON string).
    #[arg(long, value_name = "TEXT")]
    pub garbage_text: Option<String>,

    /// Write BYTES bytes to stderr from a background thread with blocking writes.
    #[arg(long, value_name = "BYTES")]
    pub stderr_flood: Option<u64>,

    /// Write N short log lines to stderr at start.
    #[arg(long, value_name = "N")]
    pub stderr_lines: Option<u64>,

    /// Ignore SIGTERM (SIG_IGN) from the start.
    #[arg(long)]
    pub ignore_sigterm: bool,

    /// Ignore SIGTERM through a handler that logs `SIGTERM received, ignored` on stderr at
    /// each one (so a test can see when it came). Not inherited by children, unlike SIG_IGN.
    #[arg(long)]
    pub log_ignored_sigterm: bool,

    /// Spawn a grandchild (`sleep 100000`) in our process group that outlives us.
    #[arg(long)]
    pub spawn_grandchild: bool,

    /// Let the grandchild inherit our stdout and stderr (so pipes stay open after we die).
    #[arg(long)]
    pub grandchild_keep_stdio: bool,

    /// Sleep MS milliseconds before serving (before reading anything).
    #[arg(long, value_name = "MS")]
    pub startup_delay_ms: Option<u64>,

    /// Answer `ping` with a method-not-found error.
    #[arg(long)]
    pub no_ping: bool,

    /// Once the N-th tool call has been answered, add the tool `late_tool` and send
    /// notifications/tools/list_changed.
    #[arg(long, value_name = "N")]
    pub add_tool_after_calls: Option<u64>,
}

impl Args {
    /// The garbage line to write (without the newline).
    pub fn garbage_line(&self) -> &str {
        self.garbage_text.as_deref().unwrap_or(DEFAULT_GARBAGE)
    }
}
