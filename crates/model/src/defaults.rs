//! Every default number of mcpvisor, in one place. The config types' `Default` impls read these.

use std::time::Duration;

/// Probe period.
pub const HEALTH_INTERVAL: Duration = Duration::from_secs(10);
/// A probe not answered within this is a failure.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(5);
/// Consecutive probe failures before `warning`.
pub const HEALTH_WARN_AFTER: u32 = 1;
/// Consecutive probe failures before the connection is dropped and re-established.
pub const HEALTH_RECONNECT_AFTER: u32 = 3;

/// First reconnect delay.
pub const BACKOFF_INITIAL: Duration = Duration::from_millis(250);
/// Longest reconnect delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Growth of the delay per attempt.
pub const BACKOFF_FACTOR: f64 = 2.0;
/// Random spread of each delay, as a fraction (0.2 = ±20 %).
pub const BACKOFF_JITTER: f64 = 0.2;
/// Failed attempts before `unreachable`.
pub const BACKOFF_MAX_ATTEMPTS: u32 = 10;
/// Retry period once `unreachable` (never abandoned).
pub const BACKOFF_UNREACHABLE_RETRY: Duration = Duration::from_secs(300);
/// Stable health after which the attempt counter resets.
pub const BACKOFF_RESET_AFTER: Duration = Duration::from_secs(60);

/// Spawn + initialize + first tools/list must finish within this.
pub const TIMEOUT_CONNECT: Duration = Duration::from_secs(30);
/// Default per-call timeout of `call_tool`.
pub const TIMEOUT_CALL: Duration = Duration::from_secs(60);
/// Grace period of each stop step (stdin closed, then SIGTERM) before the next.
pub const TIMEOUT_SHUTDOWN: Duration = Duration::from_secs(5);
/// How long a timed-out request may spend sending its `notifications/cancelled` before it is
/// abandoned anyway (a server that stopped reading its stdin cannot take the notification).
pub const CANCEL_GRACE: Duration = Duration::from_secs(1);

/// Restart intensity: more than this many restarts ...
pub const SUPERVISOR_MAX_RESTARTS: u32 = 5;
/// ... within this period puts the service in `failed`.
pub const SUPERVISOR_WITHIN: Duration = Duration::from_secs(60);

/// Separator between service and tool in namespaced tool names.
pub const TOOL_SEPARATOR: &str = "__";
/// Longest tool name handed to model APIs; longer names are shortened with a hash suffix.
pub const MAX_TOOL_NAME_LEN: usize = 64;

/// Bytes of stderr kept per service.
pub const STDERR_RING_BYTES: usize = 64 * 1024;
/// Events buffered per subscriber before the oldest are dropped.
pub const EVENT_BUFFER: usize = 1024;
/// Default config file name.
pub const CONFIG_FILE: &str = "mcp.json";

/// The most pages of `tools/list` read in one listing (a server whose cursor never ends is cut
/// off there, with an error).
pub const MAX_LIST_PAGES: usize = 100;

/// How long `stop_service` waits for the root to record a stop the service already answered.
pub const STOP_RECORD_WAIT: Duration = Duration::from_secs(5);

/// How often `Store::wait_settled` re-reads the services when no event arrives.
pub const SETTLE_POLL: Duration = Duration::from_millis(200);

/// Persistence: changes within this window coalesce into one write.
pub const PERSIST_COALESCE: Duration = Duration::from_millis(50);
/// Persistence: first retry after a failed write (doubling up to [`PERSIST_RETRY_MAX`]).
pub const PERSIST_RETRY_INITIAL: Duration = Duration::from_secs(1);
/// Persistence: longest wait between retries of a failed write.
pub const PERSIST_RETRY_MAX: Duration = Duration::from_secs(30);
/// Persistence: a config file found empty or missing although content was known gets this
/// long to settle (editors truncate before they write) before it is written in full.
pub const PERSIST_SETTLE: Duration = Duration::from_millis(250);

/// A connect attempt that failed by timing out: how long to wait for the process's exit
/// status before calling it a connect failure (other failures wait `timeouts.shutdown`).
pub const CONNECT_EXIT_WAIT: Duration = Duration::from_millis(100);

/// Reaping: how long to wait for a killed group of a previous run to be gone.
pub const REAP_WAIT: Duration = Duration::from_millis(500);

/// `check_services`: the longest one probe (asked by hand) may take.
pub const CHECK_WAIT: Duration = Duration::from_secs(30);
/// `shutdown`: the longest one service's stop may take before the rest proceeds (a stop
/// itself is bounded by `timeouts.shutdown` twice, then SIGKILL).
pub const SHUTDOWN_STOP_WAIT: Duration = Duration::from_secs(120);
/// `shutdown`: how long the root gets to stop after every service stopped.
pub const SHUTDOWN_ROOT_WAIT: Duration = Duration::from_secs(10);
/// `shutdown`: how long the last writes of the config and state files may take.
pub const SHUTDOWN_FLUSH_WAIT: Duration = Duration::from_secs(10);
/// A remote server's event stream that closed gracefully is reopened after this long.
pub const STREAM_REOPEN_DELAY: Duration = Duration::from_millis(100);
/// After an HTTP 404 at a remote server's path: how long each look at the usual MCP paths
/// (`/mcp`, `/sse`) may take, to say which one the server serves.
pub const PATH_HINT_TIMEOUT: Duration = Duration::from_secs(1);
/// The legacy SSE transport: how long one POST of a message may take.
pub const SSE_POST_TIMEOUT: Duration = Duration::from_secs(30);
/// Gateway: how long a call to a service that is coming back (reconnecting) waits for it.
pub const GATEWAY_HOLD: Duration = Duration::from_secs(5);
/// `gateway.startup_wait`: a client's first list waits at most this long for the eager
/// services to settle (a `npx` server's first start can take seconds; clients' own connect
/// timeouts are 30–60 s).
pub const GATEWAY_STARTUP_WAIT: Duration = Duration::from_secs(10);
/// Gateway: characters of the 64-character tool-name budget left to the client's own prefix
/// (`mcp__mcpvisor__`, as Claude Code writes it, is 15).
pub const GATEWAY_CLIENT_PREFIX: u32 = 15;
/// Gateway: live HTTP sessions at most (a client over the bound gets an error, not a crash).
pub const GATEWAY_MAX_SESSIONS: usize = 256;
/// Gateway: tool calls in flight per session at most.
pub const GATEWAY_MAX_CALLS_IN_FLIGHT: usize = 64;
/// Gateway: largest HTTP request body accepted (413 beyond).
pub const GATEWAY_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// Alerts: at most one firing notice per rule and service within this window (`every`).
pub const ALERT_EVERY: Duration = Duration::from_secs(5 * 60);
/// Alerts: retries of a failed action before it is given up (as an event).
pub const ALERT_RETRIES: u32 = 3;
/// Alerts: the deadline of each attempt of an action (command or webhook).
pub const ALERT_TIMEOUT: Duration = Duration::from_secs(10);
/// Alerts: the first retry's delay; doubled each time up to [`ALERT_RETRY_MAX`].
pub const ALERT_RETRY_INITIAL: Duration = Duration::from_secs(1);
/// Alerts: the longest delay between retries.
pub const ALERT_RETRY_MAX: Duration = Duration::from_secs(60);
/// Alerts: the window of a `restarts` trigger without `within`.
pub const ALERT_RESTARTS_WITHIN: Duration = Duration::from_secs(10 * 60);
/// Alerts: how often slow-probe and flapping rules are looked at while one of them applies.
pub const ALERT_TICK: Duration = Duration::from_secs(1);
/// A server's `sampling/createMessage` or `elicitation/create` answered through mcpvisor: the
/// longest wait for the answer (a person may be typing it).
pub const SERVER_REQUEST_TIMEOUT: Duration = Duration::from_secs(300);
/// A server's `roots/list` answered through mcpvisor: the longest wait.
pub const ROOTS_TIMEOUT: Duration = Duration::from_secs(30);
