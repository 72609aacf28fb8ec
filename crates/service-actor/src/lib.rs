//! # mcpvisor-service-actor
//!
//! One `ractor` actor per MCP server. It owns the server's connection (a child process in its
//! own process group, or a remote HTTP session), runs the state machine of DESIGN §4
//! ([`machine`], pure), probes health, reconnects with backoff, keeps the tool list current and
//! reports every transition to whoever it reports to ([`ServiceReport`]). Tool calls go through
//! a [`ServiceHandle`] straight to the live peer, never through the mailbox.
//!
//! **Invariants:** every child process is a process-group leader and its whole group is killed
//! when the service stops, the connection is replaced, the actor stops or panics, or its guard is
//! dropped; stderr is always drained; the actor never blocks on a server (connects, probes and
//! teardown run in tasks that report back as messages).
#![warn(missing_docs)]

pub mod activity;
pub mod actor;
mod client_handler;
pub mod connection;
mod diagnose;
pub mod handle;
mod http_client;
pub use http_client::install_default_tls_provider;
pub mod machine;
pub mod oauth;
pub mod process;
mod progress;
mod raw;
pub mod relay;
mod sandbox;
pub use sandbox::in_a_sandbox;
mod sse;
pub mod stdio;

pub use actor::{ProbeOutcome, ReportSink, ServiceActor, ServiceArgs, ServiceMsg, ServiceReport};
pub use handle::{CallControl, CallError, CallOutcome, CallProgress, ServiceHandle};
pub use machine::{EndCause, ExitInfo};
pub use process::{boot_id, process_identity, ProcessIdentity};
