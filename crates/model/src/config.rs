//! The normalized configuration: what a service is, how it is watched and restarted.
//!
//! [`ServicesConfig`] is produced by [`crate::parse`]; each [`ServiceSpec`] keeps the service's
//! object exactly as written (`raw`: unexpanded, unknown fields and key order kept) beside the
//! resolved [`ServiceConfig`] the runtime uses.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::defaults as d;
use crate::name::{AgentId, ServiceName};

/// How mcpvisor talks to a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TransportKind {
    /// A local child process speaking JSON-RPC lines on stdin/stdout.
    Stdio,
    /// MCP streamable HTTP.
    StreamableHttp,
    /// The legacy HTTP+SSE transport.
    Sse,
}

impl TransportKind {
    /// The canonical spelling (`stdio`, `streamable-http`, `sse`).
    pub fn as_str(self) -> &'static str {
        match self {
            TransportKind::Stdio => "stdio",
            TransportKind::StreamableHttp => "streamable-http",
            TransportKind::Sse => "sse",
        }
    }
}

impl std::fmt::Display for TransportKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a stdio server inherits of the supervisor's own environment besides its `env`
/// (`env_inherit`): by default only [`INHERITED`] and the [`INHERITED_PREFIXES`] — never a
/// secret of the shell that started mcpvisor.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum EnvInherit {
    /// The default set.
    #[default]
    Default,
    /// Everything (`"all"`).
    All,
    /// The default set and these names (`["AWS_PROFILE"]`).
    Also(Vec<String>),
}

/// Variables every stdio server inherits: the MCP SDKs' own stdio default (`HOME`, `LOGNAME`,
/// `PATH`, `SHELL`, `TERM`, `USER`), then what runtimes need to work the same as in a shell:
/// the locale and time zone (`LANG`, `LANGUAGE`, `TZ`), the temporary folder (`TMPDIR`), the
/// certificates TLS trusts (`SSL_CERT_FILE`, `SSL_CERT_DIR`, `NODE_EXTRA_CA_CERTS`) and the
/// proxies (`npx`/`uvx` fetch packages through them).
pub const INHERITED: &[&str] = &[
    "HOME",
    "LOGNAME",
    "PATH",
    "SHELL",
    "TERM",
    "USER",
    "LANG",
    "LANGUAGE",
    "TZ",
    "TMPDIR",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "NODE_EXTRA_CA_CERTS",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
];

/// Prefixes of inherited variables: the locale's categories (`LC_*`) and the XDG base
/// directories (`XDG_*`: config, cache, data and runtime folders).
pub const INHERITED_PREFIXES: &[&str] = &["LC_", "XDG_"];

impl EnvInherit {
    /// Whether a variable named `name` is inherited.
    pub fn admits(&self, name: &str) -> bool {
        let default =
            || INHERITED.contains(&name) || INHERITED_PREFIXES.iter().any(|p| name.starts_with(p));
        match self {
            EnvInherit::All => true,
            EnvInherit::Default => default(),
            EnvInherit::Also(names) => default() || names.iter().any(|n| n == name),
        }
    }

    /// What a server gets of `supervisor` (the supervisor's environment), then its own `env`
    /// over it.
    pub fn environment(
        &self,
        supervisor: impl IntoIterator<Item = (String, String)>,
        own: &BTreeMap<String, String>,
    ) -> BTreeMap<String, String> {
        let mut out: BTreeMap<String, String> = supervisor
            .into_iter()
            .filter(|(k, _)| self.admits(k))
            .collect();
        out.extend(own.iter().map(|(k, v)| (k.clone(), v.clone())));
        out
    }
}

/// What a stdio server is kept from (`sandbox`): the files it may touch, the network it may
/// reach, and how much memory, how many processes, how much CPU and how many open files it may
/// take. Nothing set (the default) is no sandbox at all.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sandbox {
    /// What it may read and write (`sandbox.filesystem`); `None`: every file the supervisor may.
    pub filesystem: Option<Filesystem>,
    /// What it may reach over the network.
    pub network: Network,
    /// Most memory its processes may use, in bytes (`sandbox.memory`).
    pub memory: Option<u64>,
    /// Most processes (and threads) it may have at once (`sandbox.processes`).
    pub processes: Option<u64>,
    /// Most CPU it may use, in thousandths of a core (`sandbox.cpu`: `0.5` is 500).
    pub cpu_millis: Option<u64>,
    /// Most files it may have open at once (`sandbox.open_files`).
    pub open_files: Option<u64>,
    /// Start it with what the kernel can give when it cannot give everything
    /// (`sandbox.best_effort`); by default such a server does not start.
    pub best_effort: bool,
}

impl Sandbox {
    /// Whether anything is asked at all.
    pub fn is_set(&self) -> bool {
        self.filesystem.is_some()
            || self.network != Network::Any
            || self.memory.is_some()
            || self.processes.is_some()
            || self.cpu_millis.is_some()
            || self.open_files.is_some()
    }
}

/// A size in the units `sandbox.memory` is written in: "512 MiB", "1.5 GiB", "4096 bytes".
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [(&str, u64); 4] = [
        ("TiB", 1 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ];
    for (unit, size) in UNITS {
        if bytes >= size {
            let n = bytes as f64 / size as f64;
            return if bytes.is_multiple_of(size) {
                format!("{} {unit}", bytes / size)
            } else {
                format!("{n:.1} {unit}")
            };
        }
    }
    format!("{bytes} bytes")
}

/// What a sandboxed server may read and write (`sandbox.filesystem`), enforced by Landlock:
/// every other file is refused, whatever its permissions. Besides these lists it may always
/// read (and run) the system's own programs and libraries (`/usr`, `/lib*`, `/bin`, `/sbin`),
/// `/proc`, `/sys`, the files programs need in `/etc` (not the rest of it), `/dev/random` and
/// `/dev/urandom`, and its command's own install folder; and write `/dev/null`, `/dev/zero` and
/// `/dev/full`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Filesystem {
    /// What it may read and run, folders with all they hold (`read`); relative paths are from
    /// its working directory, `~` is the home folder.
    pub read: Vec<PathBuf>,
    /// What it may read, write, create and delete (`write`).
    pub write: Vec<PathBuf>,
    /// Folders common runtimes need, by name (`presets`).
    pub presets: Vec<Preset>,
}

/// A named set of folders a kind of server needs (`sandbox.filesystem.presets`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Preset {
    /// `"node"`: node and npm's install folder (read), npm's cache and logs `~/.npm` (write,
    /// what `npx -y` fetches into) and `~/.npmrc` (read).
    Node,
    /// `"python"`: the install folders of `python3`, `uv` and `uvx`, `~/.local/lib`,
    /// `~/.local/bin` and `~/.pyenv` (read), and uv's and pip's caches and tools
    /// (`~/.cache/uv`, `~/.local/share/uv`, `~/.cache/pip`: write).
    Python,
    /// `"cwd"`: the server's own working directory, its `cwd` (write); without a `cwd` it is
    /// an error (the supervisor's folder may hold its config).
    Cwd,
    /// `"tmp"`: the temporary folder, `$TMPDIR` or `/tmp` (write).
    Tmp,
}

impl Preset {
    /// Every preset, by the name config uses.
    pub const ALL: [(&'static str, Preset); 4] = [
        ("node", Preset::Node),
        ("python", Preset::Python),
        ("cwd", Preset::Cwd),
        ("tmp", Preset::Tmp),
    ];

    /// The name config uses.
    pub fn name(self) -> &'static str {
        match self {
            Preset::Node => "node",
            Preset::Python => "python",
            Preset::Cwd => "cwd",
            Preset::Tmp => "tmp",
        }
    }
}

/// A sandboxed server's network (`sandbox.network`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Network {
    /// Whatever the supervisor can reach (`"any"`, the default).
    #[default]
    Any,
    /// A loopback of its own and nothing else (`"loopback"`): the server and the processes it
    /// starts reach each other on 127.0.0.1 and ::1, in a network namespace of their own; the
    /// host's loopback and every other host are out of reach.
    Loopback,
    /// Nothing, loopback included (`"none"`): the server runs in a network namespace of its
    /// own (in a user namespace of its own, mapped to the supervisor's user and group).
    None,
}

impl Network {
    /// The name config uses.
    pub fn name(self) -> &'static str {
        match self {
            Network::Any => "any",
            Network::Loopback => "loopback",
            Network::None => "none",
        }
    }
}

/// Where the server is, with `${VAR}` references already expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A local process.
    Stdio {
        /// Program to run (looked up on `PATH` if not a path).
        command: String,
        /// Its arguments.
        args: Vec<String>,
        /// Its own environment variables (on top of what it inherits).
        env: BTreeMap<String, String>,
        /// Which of the supervisor's environment variables it inherits (`env_inherit`).
        inherit: EnvInherit,
        /// What it is kept from (`sandbox`).
        sandbox: Box<Sandbox>,
        /// Working directory; the supervisor's if `None`.
        cwd: Option<PathBuf>,
    },
    /// A remote server.
    Remote {
        /// `StreamableHttp` or `Sse`.
        transport: TransportKind,
        /// The endpoint URL.
        url: String,
        /// Extra request headers.
        headers: BTreeMap<String, String>,
    },
}

impl Endpoint {
    /// The transport this endpoint uses.
    pub fn transport(&self) -> TransportKind {
        match self {
            Endpoint::Stdio { .. } => TransportKind::Stdio,
            Endpoint::Remote { transport, .. } => *transport,
        }
    }
}

/// When a dependency counts as ready for its dependents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DependencyCondition {
    /// The dependency is `healthy` (or `warning`).
    #[default]
    Healthy,
    /// The dependency's process or connection has been started (any state past `starting`
    /// that is not a stop or failure).
    Started,
}

/// One entry of `depends_on`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Dependency {
    /// The service depended upon.
    pub name: ServiceName,
    /// When it counts as ready.
    pub condition: DependencyCondition,
}

/// OTP restart types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RestartPolicy {
    /// Always restarted.
    #[default]
    Permanent,
    /// Restarted only after an abnormal exit (non-zero status or a signal).
    Transient,
    /// Never restarted.
    Temporary,
}

impl RestartPolicy {
    /// Whether an exit with `abnormal` should be followed by a restart.
    pub fn restarts_after(self, abnormal: bool) -> bool {
        match self {
            RestartPolicy::Permanent => true,
            RestartPolicy::Transient => abnormal,
            RestartPolicy::Temporary => false,
        }
    }
}

/// Health probing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HealthConfig {
    /// Probe period.
    pub interval: Duration,
    /// Probe deadline.
    pub timeout: Duration,
    /// Consecutive failures before `warning`.
    pub warn_after: u32,
    /// Consecutive failures before reconnecting.
    pub reconnect_after: u32,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            interval: d::HEALTH_INTERVAL,
            timeout: d::HEALTH_TIMEOUT,
            warn_after: d::HEALTH_WARN_AFTER,
            reconnect_after: d::HEALTH_RECONNECT_AFTER,
        }
    }
}

/// Reconnect schedule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackoffConfig {
    /// First delay.
    pub initial: Duration,
    /// Longest delay.
    pub max: Duration,
    /// Growth per attempt (≥ 1).
    pub factor: f64,
    /// Random spread, 0..=1.
    pub jitter: f64,
    /// Failed attempts before `unreachable`.
    pub max_attempts: u32,
    /// Retry period while `unreachable`.
    pub unreachable_retry: Duration,
    /// Stable health after which the attempt counter resets.
    pub reset_after: Duration,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            initial: d::BACKOFF_INITIAL,
            max: d::BACKOFF_MAX,
            factor: d::BACKOFF_FACTOR,
            jitter: d::BACKOFF_JITTER,
            max_attempts: d::BACKOFF_MAX_ATTEMPTS,
            unreachable_retry: d::BACKOFF_UNREACHABLE_RETRY,
            reset_after: d::BACKOFF_RESET_AFTER,
        }
    }
}

/// Deadlines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeoutConfig {
    /// Spawn/connect + initialize + first tools/list.
    pub connect: Duration,
    /// Default per-call timeout.
    pub call: Duration,
    /// Grace period of each stop step.
    pub shutdown: Duration,
}

impl Default for TimeoutConfig {
    fn default() -> Self {
        TimeoutConfig {
            connect: d::TIMEOUT_CONNECT,
            call: d::TIMEOUT_CALL,
            shutdown: d::TIMEOUT_SHUTDOWN,
        }
    }
}

/// MCP log levels, least severe first (`log_level`, `logging/setLevel`).
pub const LOG_LEVELS: [&str; 8] = [
    "debug",
    "info",
    "notice",
    "warning",
    "error",
    "critical",
    "alert",
    "emergency",
];

/// How severe an MCP log level is: its place in [`LOG_LEVELS`] (`info` for an unknown one).
pub fn log_severity(level: &str) -> u8 {
    LOG_LEVELS
        .iter()
        .position(|l| *l == level)
        .and_then(|i| u8::try_from(i).ok())
        .unwrap_or(1)
}

/// How a remote service gets OAuth tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthConfig {
    /// `authorization_code` (`mcpvisor login`, with this pre-registered client) or
    /// `client_credentials` (no person involved: tokens are fetched at each connection).
    pub grant: OAuthGrant,
    /// A pre-registered client id (else dynamic registration at `login`).
    pub client_id: Option<String>,
    /// Its secret, `${VAR}` expanded (never written back expanded, never shown).
    pub client_secret: Option<String>,
    /// Scopes to ask for (else the server's own selection).
    pub scopes: Vec<String>,
    /// The HTTPS URL of a client ID metadata document mcpvisor is known by: used as the client
    /// id at `login` when the authorization server supports such documents (else dynamic
    /// registration).
    pub client_metadata_url: Option<String>,
    /// A private key (PEM, `${VAR}` expanded) for the `client_credentials` grant with
    /// `private_key_jwt` client authentication (RFC 7523) instead of a secret.
    pub private_key: Option<String>,
    /// The private key's algorithm: `RS256` (default), `RS384`, `RS512`, `ES256` or `ES384`.
    pub signing_algorithm: Option<String>,
}

/// The algorithms a `private_key` may sign with.
pub const SIGNING_ALGORITHMS: [&str; 5] = ["RS256", "RS384", "RS512", "ES256", "ES384"];

/// The OAuth grant of a remote service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OAuthGrant {
    /// A person signs in once with `mcpvisor login`; refresh tokens keep it going.
    AuthorizationCode,
    /// The service's own credentials, exchanged for a token at each connection.
    ClientCredentials,
}

/// When a service is started (DESIGN §16).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum StartMode {
    /// With the supervisor (or when added).
    #[default]
    Eager,
    /// By its first call; until then it is `idle` with its last-known tools listed.
    Lazy,
}

/// Restart intensity (OTP's MaxR / MaxT).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntensityConfig {
    /// More than this many restarts ...
    pub max_restarts: u32,
    /// ... within this period → `failed`.
    pub within: Duration,
}

impl Default for IntensityConfig {
    fn default() -> Self {
        IntensityConfig {
            max_restarts: d::SUPERVISOR_MAX_RESTARTS,
            within: d::SUPERVISOR_WITHIN,
        }
    }
}

/// The top-level `supervisor` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupervisorConfig {
    /// Restart intensity applied to every service.
    pub intensity: IntensityConfig,
    /// Separator of namespaced tool names (`service__tool`).
    pub tool_separator: String,
}

impl Default for SupervisorConfig {
    fn default() -> Self {
        SupervisorConfig {
            intensity: IntensityConfig::default(),
            tool_separator: d::TOOL_SEPARATOR.to_owned(),
        }
    }
}

/// What the gateway lists for a service that is not up (DESIGN §13).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DownTools {
    /// Its tools leave the list while it is down and not on its way back by itself (not
    /// started, unreachable, failed, stopped; a reconnecting or starting service keeps them
    /// listed), and clients get
    /// `list_changed` both ways; a call by name is still held up to `gateway.hold` for a
    /// reconnecting service.
    #[default]
    Hide,
    /// Its last-known tools stay listed; calls are held up to `gateway.hold`, then fail with a
    /// tool error naming the service and its state.
    Keep,
}

/// Which tools one gateway endpoint offers: `allow` (empty = all) minus `deny`. Patterns match
/// the namespaced name (`service__tool`); `*` matches any run of characters. And how it offers
/// them: all in `tools/list`, or found by a search (`tools: "search"`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ToolFilter {
    /// Offered if matching one of these (all when empty).
    pub allow: Vec<String>,
    /// Never offered if matching one of these.
    pub deny: Vec<String>,
    /// How the endpoint's tools reach a client.
    pub mode: ToolsMode,
    /// Under `tools: "search"`, the tools listed anyway (names or patterns).
    pub pinned: Vec<String>,
    /// Under `tools: "all"`, the most tools `tools/list` shows (`max_tools`): past it, the
    /// services take turns, in name order, each giving its next tool in name order, until
    /// the list is full; the rest stay callable by name.
    pub max_tools: Option<usize>,
}

/// How an endpoint's tools reach a client (`gateway.endpoints.<id>.tools`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ToolsMode {
    /// Every tool in `tools/list` (`"all"`, the default).
    #[default]
    All,
    /// `tools/list` shows `search_tools` and `call_tool` (and what `pinned` names); the rest is
    /// found by a search and called through `call_tool` or by its name (`"search"`).
    Search,
    /// As `Search`, and the tools a search found are added to that session's list, announced
    /// with `list_changed` (`"dynamic"`, for clients that list again).
    Dynamic,
}

impl ToolsMode {
    /// Whether tools are found by `search_tools` (`"search"` or `"dynamic"`).
    pub fn searched(self) -> bool {
        matches!(self, ToolsMode::Search | ToolsMode::Dynamic)
    }
}

impl ToolFilter {
    /// Whether `name` passes the filter.
    pub fn admits(&self, name: &str) -> bool {
        (self.allow.is_empty() || self.allow.iter().any(|p| glob(p, name)))
            && !self.deny.iter().any(|p| glob(p, name))
    }

    /// Whether `name` is listed under `tools: "search"`.
    pub fn pins(&self, name: &str) -> bool {
        self.pinned.iter().any(|p| glob(p, name))
    }
}

/// `*` matches any run of characters (none included); everything else matches itself.
pub(crate) fn glob(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() || !name.ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

/// The resolved `gateway` section (DESIGN §13).
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayConfig {
    /// How long a call to a service that is coming back waits for it.
    pub hold: Duration,
    /// How long a client's first list waits for the eager services to settle (up, or failed
    /// at least once), so it does not show a fleet still starting.
    pub startup_wait: Duration,
    /// What a down service's tools do in `tools/list`.
    pub down_tools: DownTools,
    /// Characters of the 64-character name budget left to the client's own prefix (Claude Code
    /// adds `mcp__<server>__`).
    pub client_prefix: u32,
    /// Expose a tool by its bare name when no other service offers that name.
    pub unprefixed: bool,
    /// Tool filters per endpoint: `"default"` for `/mcp`, an agent id for `/agents/<id>/mcp`.
    pub endpoints: BTreeMap<String, ToolFilter>,
    /// A background instance (started by `serve --stdio`) exits after this long with no
    /// client attached; `None` (default, `"never"`): it runs until stopped.
    pub idle_exit: Option<Duration>,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            hold: d::GATEWAY_HOLD,
            startup_wait: d::GATEWAY_STARTUP_WAIT,
            down_tools: DownTools::default(),
            client_prefix: d::GATEWAY_CLIENT_PREFIX,
            unprefixed: false,
            endpoints: BTreeMap::new(),
            idle_exit: None,
        }
    }
}

/// Everything the runtime needs to run one service, resolved (defaults merged, variables
/// expanded, transport inferred).
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceConfig {
    /// Where the server is.
    pub endpoint: Endpoint,
    /// Services that must be ready first.
    pub depends_on: Vec<Dependency>,
    /// What to do when it exits.
    pub restart: RestartPolicy,
    /// Registered but never started.
    pub disabled: bool,
    /// Started with the supervisor, or by its first call.
    pub start: StartMode,
    /// Stopped into `idle` after this long without calls (never when `None`).
    pub idle_stop: Option<Duration>,
    /// The lowest level of the server's log messages to receive (`logging/setLevel` at each
    /// connection): `debug` … `emergency`; the server's own default when `None`.
    pub log_level: Option<String>,
    /// The roots the server gets for `roots/list` (file URIs); asked of the Store's handler
    /// (or the gateway's client) when empty.
    pub roots: Vec<String>,
    /// OAuth for a remote server (`None`: `mcpvisor login` with dynamic registration, if the
    /// server wants it).
    pub oauth: Option<OAuthConfig>,
    /// Probing.
    pub health: HealthConfig,
    /// Reconnect schedule.
    pub backoff: BackoffConfig,
    /// Deadlines.
    pub timeouts: TimeoutConfig,
    /// Restart intensity (from the top-level `supervisor` section).
    pub intensity: IntensityConfig,
}

impl ServiceConfig {
    /// Whether calls may start it (`start: lazy`, or an `idle_stop` that stops it between
    /// uses): its tools stay listed while it is `idle`.
    pub fn on_demand(&self) -> bool {
        self.start == StartMode::Lazy || self.idle_stop.is_some()
    }

    /// A stdio service with every default.
    pub fn stdio(
        command: impl Into<String>,
        args: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        ServiceConfig::with_endpoint(Endpoint::Stdio {
            command: command.into(),
            args: args.into_iter().map(Into::into).collect(),
            env: BTreeMap::new(),
            inherit: EnvInherit::Default,
            sandbox: Box::default(),
            cwd: None,
        })
    }

    /// A service at `endpoint` with every default.
    pub fn with_endpoint(endpoint: Endpoint) -> Self {
        ServiceConfig {
            endpoint,
            depends_on: Vec::new(),
            restart: RestartPolicy::default(),
            disabled: false,
            start: StartMode::Eager,
            idle_stop: None,
            log_level: None,
            roots: Vec::new(),
            oauth: None,
            health: HealthConfig::default(),
            backoff: BackoffConfig::default(),
            timeouts: TimeoutConfig::default(),
            intensity: IntensityConfig::default(),
        }
    }

    /// The transport in use.
    pub fn transport(&self) -> TransportKind {
        self.endpoint.transport()
    }
}

/// One service: its name, its object as written, and its resolved config.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceSpec {
    /// The service's name (its key in `mcpServers`).
    pub name: ServiceName,
    /// The object as written: unexpanded `${VAR}`s, unknown fields and key order kept,
    /// defaults not merged in. This is what is persisted.
    pub raw: Map<String, Value>,
    /// The resolved config.
    pub config: ServiceConfig,
}

impl ServiceSpec {
    /// `raw` with the values of `env` and `headers` replaced by `"***"`, for display.
    pub fn redacted_raw(&self) -> Map<String, Value> {
        let mut out = self.raw.clone();
        for key in ["env", "headers"] {
            if let Some(Value::Object(m)) = out.get_mut(key) {
                for v in m.values_mut() {
                    *v = Value::String("***".into());
                }
            }
        }
        if let Some(Value::Object(o)) = out.get_mut("oauth") {
            for key in ["client_secret", "private_key"] {
                if o.contains_key(key) {
                    o.insert(key.into(), Value::String("***".into()));
                }
            }
        }
        out
    }
}

/// An agent's own services (the `agents` section).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AgentConfig {
    /// The agent's services, by their local names, in file order.
    pub services: IndexMap<ServiceName, ServiceSpec>,
    /// The agent's object minus `mcpServers`, as written.
    pub extra: Map<String, Value>,
}

/// A whole configuration document, normalized.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ServicesConfig {
    /// The store's services in file order.
    pub services: IndexMap<ServiceName, ServiceSpec>,
    /// Per-agent services.
    pub agents: IndexMap<AgentId, AgentConfig>,
    /// The `defaults` object as written (merged into every service when resolving).
    pub defaults: Map<String, Value>,
    /// The resolved `supervisor` section.
    pub supervisor: SupervisorConfig,
    /// The resolved `gateway` section.
    pub gateway: GatewayConfig,
    /// The resolved `alerts` section.
    pub alerts: crate::alerts::AlertsConfig,
    /// Top-level keys other than the services' container, as written and in order (this
    /// includes `defaults`, `supervisor` and `agents`), kept for round trip.
    pub extra: Map<String, Value>,
    /// The key that held the services: `mcpServers` (default) or `servers`.
    pub services_key: String,
    /// Position of the services' container among the top-level keys (0 when there was none).
    pub services_index: usize,
}

impl ServicesConfig {
    /// Serializes to the file format: `{"mcpServers": {...}}` (or `servers` if that is what was
    /// read), with every other top-level key kept in place, and services as written.
    pub fn to_json(&self) -> Value {
        let key = if self.services_key.is_empty() {
            crate::parse::MCP_SERVERS
        } else {
            self.services_key.as_str()
        };
        let services: Map<String, Value> = self
            .services
            .iter()
            .map(|(n, s)| (n.to_string(), Value::Object(s.raw.clone())))
            .collect();
        let mut out = Map::new();
        let at = self.services_index.min(self.extra.len());
        for (i, (k, v)) in self.extra.iter().enumerate() {
            if i == at {
                out.insert(key.to_owned(), Value::Object(services.clone()));
            }
            if k == "agents" {
                out.insert(k.clone(), self.agents_json());
            } else {
                out.insert(k.clone(), v.clone());
            }
        }
        if at == self.extra.len() {
            out.insert(key.to_owned(), Value::Object(services));
        }
        if !self.agents.is_empty() && !out.contains_key("agents") {
            out.insert("agents".into(), self.agents_json());
        }
        Value::Object(out)
    }

    fn agents_json(&self) -> Value {
        Value::Object(
            self.agents
                .iter()
                .map(|(id, a)| {
                    let mut obj = Map::new();
                    let services: Map<String, Value> = a
                        .services
                        .iter()
                        .map(|(n, s)| (n.to_string(), Value::Object(s.raw.clone())))
                        .collect();
                    obj.insert(crate::parse::MCP_SERVERS.into(), Value::Object(services));
                    for (k, v) in &a.extra {
                        obj.insert(k.clone(), v.clone());
                    }
                    (id.to_string(), Value::Object(obj))
                })
                .collect(),
        )
    }

    /// Pretty JSON text of [`Self::to_json`], newline-terminated.
    pub fn to_json_pretty(&self) -> String {
        let mut s = serde_json::to_string_pretty(&self.to_json()).unwrap_or_default();
        s.push('\n');
        s
    }
}
