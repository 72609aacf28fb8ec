//! The command line, as clap parses it: global options, one struct per subcommand.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// `mcpvisor`: keeps a fleet of MCP servers alive, and talks to the one keeping them.
#[derive(Debug, Parser)]
#[command(
    name = "mcpvisor",
    version,
    about = "A supervisor for MCP servers: run them, watch them, call their tools",
    long_about = "A supervisor for MCP (Model Context Protocol) servers.\n\n\
`mcpvisor run` keeps the services of a config file alive and opens a control socket in the \
state dir; the other commands talk to it. With --config and no instance running, `status`, \
`tools`, `call` and `check` start an embedded supervisor for that one command.\n\n\
Exit codes: 0 ok, 1 operation failed (including a tool that reported an error, or a timeout), \
2 bad input (bad arguments, bad JSON, invalid config, unknown service or tool).\n\n\
Logging goes to stderr and is controlled by RUST_LOG (default: warn).",
    propagate_version = true
)]
pub struct Cli {
    /// Options every command takes.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args, Clone)]
pub struct GlobalArgs {
    /// Directory holding the control socket (mcpvisor.sock) and the state file
    /// [default: $XDG_STATE_HOME/mcpvisor, else ~/.local/state/mcpvisor]
    #[arg(long, global = true, env = "MCPVISOR_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    /// Config file. `run` and `validate` default to ./mcp.json; for `status`, `tools`, `call`
    /// and `check` it runs a one-shot embedded supervisor when no instance is running
    #[arg(long, short = 'c', global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the services of a config file in the foreground, print every transition, serve the
    /// control socket; SIGINT/SIGTERM stops everything cleanly
    Run(RunArgs),
    /// Serve the fleet as one MCP server on stdin/stdout: attaches to the instance running on
    /// the state dir (every client shares its fleet); with --config and none running, starts
    /// one there in the background first (it outlives this client; `shutdown` stops it)
    Serve(ServeArgs),
    /// Check a config file: print each error (service, field, message); exit 2 on errors
    Validate(ValidateArgs),
    /// Show every service (or one) with its state, transport, tools, restarts and last error
    Status(StatusArgs),
    /// List tools (namespaced service__tool), of every service or of one
    Tools(ToolsArgs),
    /// Call a tool; exit 1 if the tool reports an error or the call fails
    Call(CallArgs),
    /// List the resources of every service (URIs as the servers write them, or
    /// mcpvisor://service/URI where two services offer the same one)
    Resources(ListArgs),
    /// Read a resource by URI (as `resources` lists it, or one a server's template makes)
    Read(ReadArgs),
    /// List the prompts of every service (named service__prompt)
    Prompts(ListArgs),
    /// Get a prompt's messages, with its arguments
    Prompt(PromptArgs),
    /// Sign in to a remote server that wants OAuth: prints the URL to open, waits for the
    /// redirect to a loopback address, stores the tokens in the state dir (mode 0600)
    Login(LoginArgs),
    /// Register a service in the running instance (and its config file)
    Add(AddArgs),
    /// Stop a service and forget it
    Remove(NameArgs),
    /// Start a stopped (or failed) service
    Start(StartArgs),
    /// Stop a service (stdin closed, SIGTERM, then SIGKILL to its process group)
    Stop(StopArgs),
    /// Stop then start a service
    Restart(StartArgs),
    /// Probe every service now
    Check(CheckArgs),
    /// Show the last lines a service wrote to stderr
    Logs(LogsArgs),
    /// Stream events (transitions, tool and config changes) until interrupted
    Events(JsonArgs),
    /// A live dashboard of the running instance: every service's state, time in state,
    /// restarts, tools, call p50/p95, availability and history; keys to start (s), stop (x),
    /// restart (r) and show logs (l); q quits
    Top(TopArgs),
    /// Stop the running instance: every service stopped (dependents first), then it exits
    Shutdown,
    /// The MCP clients whose config files are here (claude-desktop, claude-code, cursor,
    /// vscode, windsurf, gemini, codex, zed), the servers each has, and whether each points at
    /// mcpvisor
    Clients(JsonArgs),
    /// Copy clients' servers (a client's name, or a config FILE of any client) into
    /// mcpvisor's config (--config, else the running instance's, else ./mcp.json): names kept,
    /// the same server twice made one, a name clash reported (exit 1), never guessed
    Import(ImportArgs),
    /// Write mcpvisor's entry into each client's per-user config file, every other byte kept (the
    /// previous version in FILE.bak); --move also takes out the servers mcpvisor now runs
    Connect(ConnectArgs),
    /// Take mcpvisor's entry out of a client's config file and put back what `connect --move`
    /// took out
    Disconnect(ClientArgs),
    /// Start the fleet at login: a systemd user unit (a launchd agent on macOS) running
    /// `mcpvisor run` on this config and state dir
    Service(ServiceArgs),
    /// Print a shell completion script
    Completions(CompletionsArgs),
}

/// `top`.
#[derive(Debug, Args)]
pub struct TopArgs {
    /// How often to read the services
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    pub interval: std::time::Duration,
}

/// `run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Reload the config file on change: add, remove and update only the services that changed
    #[arg(long)]
    pub watch: bool,
    /// Also serve the fleet as one MCP server over streamable HTTP at ADDR (`/mcp`, and
    /// `/agents/<id>/mcp`), e.g. 127.0.0.1:8931. Off loopback a bearer token is required
    #[arg(long, value_name = "ADDR")]
    pub serve: Option<std::net::SocketAddr>,
    /// Serve /metrics (Prometheus), /healthz and /readyz at ADDR, e.g. 127.0.0.1:9464 (the
    /// gateway's --serve port serves them too)
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<std::net::SocketAddr>,
    /// The gateway's bearer token, from this file (else MCPVISOR_GATEWAY_TOKEN)
    #[arg(long, value_name = "FILE", requires = "serve")]
    pub token_file: Option<PathBuf>,
    /// `text` (default) or `json`: one JSON object per line on stdout (transitions, events,
    /// messages) and on stderr (warnings)
    #[arg(long, value_enum, default_value_t = LogFormat::Text, value_name = "FORMAT")]
    pub log_format: LogFormat,
    /// Started by `serve --stdio` as the state dir's background instance (`status` says so)
    #[arg(long, hide = true)]
    pub background: bool,
}

/// How `run` writes its log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Lines for people.
    Text,
    /// One JSON object per line, for machines.
    Json,
}

/// `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Speak MCP on stdin/stdout (what a client's `mcpServers` entry runs)
    #[arg(long, required = true)]
    pub stdio: bool,
    /// Serve this agent's services (by their local names) instead of the store's own
    #[arg(long, value_name = "ID")]
    pub agent: Option<String>,
}

/// `validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Print the result as JSON ({"ok", "services", "errors": [{service, field, message}]})
    #[arg(long)]
    pub json: bool,
}

/// `--json` alone.
#[derive(Debug, Args)]
pub struct JsonArgs {
    /// Print JSON (one object per line for streams)
    #[arg(long)]
    pub json: bool,
}

/// How long a one-shot waits for services.
#[derive(Debug, Args, Clone, Copy)]
pub struct OneShotArgs {
    /// One-shot mode only: how long to wait for services to come up (or fail)
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub wait: Duration,
}

/// `status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Show only this service, in detail
    pub name: Option<String>,
    /// Print JSON: an array of services (an object with NAME)
    #[arg(long)]
    pub json: bool,
    /// One-shot options.
    #[command(flatten)]
    pub oneshot: OneShotArgs,
}

/// `tools`.
#[derive(Debug, Args)]
pub struct ToolsArgs {
    /// Only the tools of this service
    pub service: Option<String>,
    /// Act as this agent: only its own services, by their local names
    #[arg(long, value_name = "AGENT")]
    pub agent: Option<String>,
    /// The tools that best match QUERY (what they should do, in a few words), best first
    #[arg(long, value_name = "QUERY")]
    pub search: Option<String>,
    /// With --search: how many tools to show
    #[arg(long, default_value_t = 10, requires = "search")]
    pub limit: usize,
    /// Print JSON: an array of tools
    #[arg(long)]
    pub json: bool,
    /// One-shot options.
    #[command(flatten)]
    pub oneshot: OneShotArgs,
}

/// `login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The remote service (as named in the config)
    pub service: String,
    /// How long to wait for the sign-in to be completed in the browser
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub timeout: Duration,
}

/// `resources` and `prompts`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Act as this agent: only its own services, by their local names
    #[arg(long, value_name = "AGENT")]
    pub agent: Option<String>,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
    /// One-shot options.
    #[command(flatten)]
    pub oneshot: OneShotArgs,
}

/// `read`.
#[derive(Debug, Args)]
pub struct ReadArgs {
    /// The resource's URI
    pub uri: String,
    /// Act as this agent: only its own services, by their local names
    #[arg(long, value_name = "AGENT")]
    pub agent: Option<String>,
    /// Print the whole result as JSON
    #[arg(long)]
    pub json: bool,
    /// One-shot options.
    #[command(flatten)]
    pub oneshot: OneShotArgs,
}

/// `prompt`.
#[derive(Debug, Args)]
pub struct PromptArgs {
    /// The prompt: `service__prompt`, or a bare name offered by one service only
    pub name: String,
    /// Arguments as a JSON object, e.g. '{"city": "Oslo"}'
    #[arg(long, value_name = "JSON")]
    pub args: Option<String>,
    /// Act as this agent: only its own services, by their local names
    #[arg(long, value_name = "AGENT")]
    pub agent: Option<String>,
    /// Print the whole result as JSON
    #[arg(long)]
    pub json: bool,
    /// One-shot options.
    #[command(flatten)]
    pub oneshot: OneShotArgs,
}

/// `call`.
#[derive(Debug, Args)]
pub struct CallArgs {
    /// The tool: `service__tool`, or a bare name offered by one service only
    pub tool: String,
    /// Arguments as a JSON object, e.g. '{"text": "hi"}'
    #[arg(long, value_name = "JSON")]
    pub args: Option<String>,
    /// Give up after this long (overrides the service's timeouts.call), e.g. 10s, 500ms
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Act as this agent: only its own services, by their local names
    #[arg(long, value_name = "AGENT")]
    pub agent: Option<String>,
    /// Print the whole result as JSON ({"is_error", "result"})
    #[arg(long)]
    pub json: bool,
    /// One-shot mode only: when the server asks a question during the call (elicitation),
    /// accept the defaults its form gives (declined if a required field has none). Without
    /// it, servers are not offered elicitation
    #[arg(long)]
    pub accept_defaults: bool,
    /// One-shot options.
    #[command(flatten)]
    pub oneshot: OneShotArgs,
}

/// `add`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
mcpvisor add time -- uvx mcp-server-time\n  \
mcpvisor add api --url http://127.0.0.1:3001/mcp --header 'Authorization=Bearer ${KEY}'\n  \
mcpvisor add --file more-servers.json")]
pub struct AddArgs {
    /// The new service's name (not with --file)
    #[arg(required_unless_present = "file")]
    pub name: Option<String>,
    /// Add every service of this file (any accepted config form)
    #[arg(long, value_name = "FILE", conflicts_with_all = ["name", "url", "command", "env", "header", "cwd", "depends_on"])]
    pub file: Option<PathBuf>,
    /// URL of a remote server (streamable HTTP, or SSE when the path ends in /sse)
    #[arg(long, conflicts_with = "command")]
    pub url: Option<String>,
    /// HTTP header for a remote server, repeatable
    #[arg(long, value_name = "K=V", requires = "url")]
    pub header: Vec<String>,
    /// Environment variable for a local server, repeatable
    #[arg(long, value_name = "K=V")]
    pub env: Vec<String>,
    /// Working directory of a local server
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<String>,
    /// A service that must be healthy first, repeatable
    #[arg(long, value_name = "SERVICE")]
    pub depends_on: Vec<String>,
    /// Return once registered, without waiting for the service to come up
    #[arg(long)]
    pub no_wait: bool,
    /// Print the result as JSON
    #[arg(long)]
    pub json: bool,
    /// The command of a local server and its arguments, after `--`
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// `import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Clients (claude-desktop, claude-code, cursor, vscode, windsurf, gemini, codex, zed) or
    /// config files
    #[arg(required = true)]
    pub sources: Vec<String>,
    /// Print what was done as JSON
    #[arg(long)]
    pub json: bool,
}

/// `connect`.
#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// The clients (claude-desktop, claude-code, cursor, vscode, windsurf, gemini, codex, zed)
    #[arg(required = true)]
    pub clients: Vec<String>,
    /// Also take out of the client's file the servers mcpvisor's config has (`disconnect` puts
    /// them back)
    #[arg(long = "move")]
    pub move_servers: bool,
}

/// A client's name alone.
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// The clients (claude-desktop, claude-code, cursor, vscode, windsurf, gemini, codex, zed)
    #[arg(required = true)]
    pub clients: Vec<String>,
}

/// A service name alone.
#[derive(Debug, Args)]
pub struct NameArgs {
    /// The service
    pub name: String,
}

/// `start` and `restart`.
#[derive(Debug, Args)]
pub struct StartArgs {
    /// The service
    pub name: String,
    /// Return at once instead of waiting for the service to come up (or fail)
    #[arg(long)]
    pub no_wait: bool,
}

/// `stop`.
#[derive(Debug, Args)]
pub struct StopArgs {
    /// The service
    pub name: String,
    /// Skip the graceful steps: SIGKILL the process group at once
    #[arg(long)]
    pub force: bool,
}

/// `check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Print JSON: an array of {name, ok, latency_ms, state, detail}
    #[arg(long)]
    pub json: bool,
    /// One-shot options.
    #[command(flatten)]
    pub oneshot: OneShotArgs,
}

/// `logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The service
    pub service: String,
    /// How many of the last lines to show (the supervisor keeps about 64 KiB per service)
    #[arg(long, short = 'n', default_value_t = 20, value_name = "N")]
    pub lines: usize,
    /// Print JSON: {"service", "lines": [...]}
    #[arg(long)]
    pub json: bool,
}

/// `service`.
#[derive(Debug, Args)]
pub struct ServiceArgs {
    /// What to do
    #[command(subcommand)]
    pub action: ServiceAction,
}

/// `service install` and `service uninstall`.
#[derive(Debug, Subcommand)]
pub enum ServiceAction {
    /// Write the unit (or agent) and enable it, so the fleet starts now and at every login
    Install {
        /// Also serve the gateway over HTTP at ADDR (e.g. 127.0.0.1:8931)
        #[arg(long, value_name = "ADDR")]
        serve: Option<std::net::SocketAddr>,
    },
    /// Disable the unit (or agent) and remove it
    Uninstall,
}

/// `completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell
    pub shell: clap_complete::Shell,
}

/// Parses a humantime duration (`250ms`, `10s`, `5m`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("'{s}' is not a duration ({e}); write e.g. 500ms, 10s or 5m"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn add_takes_the_command_after_a_double_dash() {
        let cli = Cli::try_parse_from([
            "mcpvisor", "add", "time", "--env", "A=1", "--", "uvx", "--flag", "x",
        ])
        .unwrap();
        let Command::Add(a) = cli.command else {
            panic!("not add")
        };
        assert_eq!(a.name.as_deref(), Some("time"));
        assert_eq!(a.command, ["uvx", "--flag", "x"]);
        assert_eq!(a.env, ["A=1"]);
    }

    #[test]
    fn global_options_go_anywhere() {
        let cli = Cli::try_parse_from(["mcpvisor", "status", "--state-dir", "/s", "-c", "f.json"])
            .unwrap();
        assert_eq!(cli.global.state_dir.as_deref(), Some("/s".as_ref()));
        assert_eq!(cli.global.config.as_deref(), Some("f.json".as_ref()));
    }

    #[test]
    fn a_bad_duration_is_refused_with_a_hint() {
        let e = Cli::try_parse_from(["mcpvisor", "call", "t", "--timeout", "soon"]).unwrap_err();
        assert!(e.to_string().contains("write e.g."), "{e}");
    }
}
