//! # mcpvisor-supervisor
//!
//! The root of the supervision tree and the public embedding API, [`Store`].
//!
//! The root actor owns the configuration; it spawns (linked) the registry actor, the
//! persistence actor and one service actor per service, starts services in dependency order
//! (topological levels, a dependent once each dependency meets its condition), respawns a
//! panicked service actor within its restart intensity, and respawns and rebuilds the registry
//! or persistence actor if either dies. On open it reaps process groups a killed previous run
//! left behind — only after checking each still belongs to that run (same boot, and the
//! leader's pid and start time from `/proc`, or members it left in the recorded session).
//!
//! **Invariant:** nothing outlives the supervisor: `shutdown()` stops every service in reverse
//! dependency order and returns when every process group is gone; dropping the last `Store`
//! without it kills every group at once; a panicking service actor's groups die with its state.
//!
//! ```no_run
//! # async fn demo() -> Result<(), mcpvisor_supervisor::StoreError> {
//! use mcpvisor_supervisor::{Store, StoreOptions, Wait};
//! let store = Store::open(StoreOptions::new().config_file("mcp.json").state_dir("/tmp/mcpvisor")).await?;
//! let out = store.call_tool("time__get_current_time", None, None).await?;
//! println!("{}", out.result);
//! store.shutdown().await;
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

mod alerts;
mod apply;
mod error;
mod fleet;
mod limits;
mod options;
mod owner;
mod reaper;
mod root;
mod shared;
mod store;
mod table;

pub use error::StoreError;
pub use fleet::Blocker;
pub use root::AddReport;
pub use store::{
    Progress, PromptEntry, ResourceEntry, ServiceInput, Store, StoreOptions, TemplateEntry, Wait,
    NAMESPACED_URI,
};

pub use mcpvisor_model as model;
pub use mcpvisor_registry_actor::{
    EventStream, LookupError, Scope, ServiceView, ToolEntry, ToolSearch, ToolTarget,
};
pub use mcpvisor_service_actor::in_a_sandbox;
pub use mcpvisor_service_actor::install_default_tls_provider;
pub use mcpvisor_service_actor::oauth;
pub use mcpvisor_service_actor::relay::{Answer, ServerRequests};
pub use mcpvisor_service_actor::{CallControl, CallError, CallOutcome, CallProgress, ProbeOutcome};
