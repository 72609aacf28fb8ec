//! # mcpvisor-cli
//!
//! The `mcpvisor` command line: `run` keeps the services of a config file alive in the
//! foreground and serves a control socket; `status`, `tools`, `call`, `add`, `remove`, `start`,
//! `stop`, `restart`, `check`, `logs` and `events` talk to it; `validate` checks a file;
//! `completions` prints shell completions.
//!
//! Code map:
//! - [`args`]: the clap definitions (every flag and its help).
//! - [`run`]: `mcpvisor run` (signals, start-up view, transition lines, shutdown).
//! - [`server`] / [`client`] / [`protocol`]: the control socket, newline-delimited JSON.
//! - [`exec`]: carries out one request against a `Store` (shared by the socket and one-shots).
//! - [`oneshot`]: an embedded supervisor for one command when no instance runs.
//! - [`watch`]: `run --watch`, the config diff and how it is applied.
//! - [`settle`]: waiting for services to come up or fail, with a deadline.
//! - [`signals`]: SIGINT/SIGTERM, caught so services are always stopped.
//! - [`commands`] / [`output`] / [`validate`]: the client commands and what they print.
//!
//! **Invariant:** this is the only crate that prints or turns errors into exit codes: 0 ok,
//! 1 operation failed, 2 bad input ([`error::Exit`]).
#![warn(missing_docs)]

pub mod args;
pub mod client;
pub mod clients;
pub mod commands;
pub mod connect;
pub mod error;
pub mod exec;
pub mod gateway;
pub mod oneshot;
pub mod output;
pub mod paths;
pub mod protocol;
pub mod run;
pub mod server;
pub mod service;
pub mod settle;
pub mod signals;
pub mod top;
pub mod validate;
pub mod watch;

use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, Parser};

use args::{Cli, Command};
use error::{CliResult, Exit};

/// Parses the command line, runs the command, returns its exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            // --help and --version exit 0; usage errors 2.
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    let json = matches!(&cli.command, Command::Run(a) if a.log_format == args::LogFormat::Json);
    if json {
        output::set_json_log();
    }
    init_logging(json);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mcpvisor: cannot start the async runtime: {e}");
            return Exit::Failed.into();
        }
    };
    let result = runtime.block_on(dispatch(cli));
    // Tasks still running (a connection being torn down) must not hold the exit.
    runtime.shutdown_timeout(Duration::from_secs(2));
    match result {
        Ok(code) => code.into(),
        Err(e) => {
            for line in e.message.lines() {
                eprintln!("mcpvisor: {line}");
            }
            e.code.into()
        }
    }
}

/// Warnings on stderr, with colour only on a terminal. rmcp's own log lines are off unless
/// `RUST_LOG` asks for them: they speak in Rust types, and everything they report reaches the
/// user as a state change with a reason in words.
fn init_logging(json: bool) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,rmcp=off"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().with_ansi(false).try_init()
    } else {
        builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init()
    };
}

async fn dispatch(cli: Cli) -> CliResult<Exit> {
    let g = cli.global;
    match cli.command {
        Command::Run(a) => {
            let state_dir = paths::state_dir(g.state_dir.as_deref())?;
            let config = paths::config_or_default(g.config.as_deref());
            run::run(
                config,
                state_dir,
                a.watch,
                a.serve.map(|addr| (addr, a.token_file)),
                a.metrics,
                a.background,
            )
            .await?;
            Ok(Exit::Ok)
        }
        Command::Serve(a) => {
            let state_dir = paths::state_dir(g.state_dir.as_deref())?;
            gateway::serve_stdio(state_dir, g.config, a.agent).await?;
            Ok(Exit::Ok)
        }
        Command::Validate(a) => {
            let config = paths::config_or_default(g.config.as_deref());
            Ok(validate::validate(&config, a.json))
        }
        Command::Status(a) => commands::status(&g, a).await,
        Command::Tools(a) => commands::tools(&g, a).await,
        Command::Call(a) => commands::call(&g, a).await,
        Command::Login(a) => commands::login(&g, a).await,
        Command::Resources(a) => commands::resources(&g, a).await,
        Command::Read(a) => commands::read(&g, a).await,
        Command::Prompts(a) => commands::prompts(&g, a).await,
        Command::Prompt(a) => commands::prompt(&g, a).await,
        Command::Add(a) => commands::add(&g, a).await,
        Command::Remove(a) => commands::remove(&g, a).await,
        Command::Start(a) => commands::start(&g, a, false).await,
        Command::Restart(a) => commands::start(&g, a, true).await,
        Command::Stop(a) => commands::stop(&g, a).await,
        Command::Check(a) => commands::check(&g, a).await,
        Command::Logs(a) => commands::logs(&g, a).await,
        Command::Events(a) => commands::events(&g, a).await,
        Command::Top(a) => top::top(&g, a).await,
        Command::Shutdown => commands::shutdown(&g).await,
        Command::Clients(a) => connect::clients(a.json),
        Command::Import(a) => connect::import(&g, a).await,
        Command::Connect(a) => connect::connect(&g, a).await,
        Command::Disconnect(a) => connect::disconnect(&g, a),
        Command::Service(a) => service::service(&g, a.action),
        Command::Completions(a) => {
            let mut cmd = Cli::command();
            let mut out = std::io::stdout();
            clap_complete::generate(a.shell, &mut cmd, "mcpvisor", &mut out);
            Ok(Exit::Ok)
        }
    }
}
