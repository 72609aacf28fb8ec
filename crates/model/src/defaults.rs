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
