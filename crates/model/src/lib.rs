//! # mcpvisor-model
//!
//! The plain data every other mcpvisor crate speaks: configuration (every accepted input form,
//! validated and normalized), names, service states, events, typed errors, the dependency graph,
//! the reconnect schedule and the restart-intensity window, and every default number
//! ([`defaults`]).
//!
//! **Invariant:** this crate does no I/O — no network, no processes, no clocks, no writes.
//! Time and randomness are passed in. The one exception is [`parse_file`], which reads the
//! config file it is handed.
//!
//! ```
//! use mcpvisor_model::{parse_str, env::MapEnv, TransportKind};
//! let cfg = parse_str(r#"{"mcpServers": {"time": {"command": "uvx", "args": ["mcp-server-time"]}}}"#,
//!                     &MapEnv::default()).unwrap();
//! let time = &cfg.services["time"];
//! assert_eq!(time.config.transport(), TransportKind::Stdio);
//! ```
#![warn(missing_docs)]

pub mod alerts;
pub mod backoff;
pub mod config;
pub mod defaults;
pub mod env;
pub mod error;
pub mod event;
pub mod graph;
pub mod name;
pub mod parse;
pub mod runtime;
pub mod state;
pub mod tool;

pub use alerts::{AlertCommand, AlertRule, AlertTrigger, AlertsConfig, Webhook};
pub use backoff::{backoff_delay, RestartVerdict, RestartWindow};
pub use config::*;
pub use error::{ConfigError, ConfigErrors};
pub use event::{ConfigChange, Event, ServiceId, Timestamp};
pub use graph::DependencyGraph;
pub use name::{suggest, AgentId, NameError, ServiceName};
pub use parse::{parse_file, parse_input, parse_str, parse_value, resolve_service, split_services};
pub use runtime::{HistogramSnapshot, LatencySummary, LogRing, MetricsSnapshot, ServiceMetrics};
pub use state::{CoarseStatus, ServiceState};
pub use tool::{ServerInfo, ToolInfo, ToolList};
