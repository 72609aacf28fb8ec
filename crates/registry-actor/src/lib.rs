//! # mcpvisor-registry-actor
//!
//! The live registry: one record per service (config, state, tools, pid, restarts, last error,
//! stderr tail, metrics), the namespaced tool index of every scope, and event fan-out.
//!
//! - [`Registry`] (module `registry`) is the pure core: messages in, events out, time passed in.
//! - [`RegistryActor`] is the thin ractor shell around it: spawn it with [`RegistryArgs`], cast
//!   it reports and call it queries ([`RegistryMsg`]), subscribe for an [`EventStream`].
//! - Scopes ([`Scope`]): the store's own services, one agent's services (by local names), or
//!   all of them (by `agent/name`). A name never resolves across scopes.
//! - Tools are named `service__tool` (separator configurable); a bare name resolves while only
//!   one service of the scope offers it; names over 64 characters get a stable hash suffix
//!   ([`shorten_tool_name`]).
//!
//! **Invariant:** every query is answered from the registry's own state; nothing here waits on
//! a server, a disk or a subscriber, so a hung server or a reader that never reads never slows a
//! query.
//!
//! ```
//! use mcpvisor_registry_actor::{RegistryActor, RegistryArgs, RegistryMsg, Scope};
//! use ractor::{call, Actor};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let (registry, handle) = Actor::spawn(None, RegistryActor, RegistryArgs::default())
//!     .await
//!     .expect("the registry starts");
//! let services = call!(registry, |reply| RegistryMsg::List { scope: Scope::All, reply })
//!     .expect("the registry answers");
//! assert!(services.is_empty());
//! registry.stop(None);
//! handle.await.unwrap();
//! # }
//! ```
#![warn(missing_docs)]

pub mod actor;
pub mod events;
mod index;
pub mod registry;
pub mod search;
pub mod view;

pub use actor::{RegistryActor, RegistryArgs, RegistryError, RegistryMsg, RegistryState};
pub use events::EventStream;
pub use index::{fnv1a64, namespaced_tool_name, shorten_tool_name};
pub use registry::{Moment, Registry, ServiceRecord};
pub use search::ToolSearch;
pub use view::{LookupError, Scope, ServiceView, ToolEntry, ToolTarget, STDERR_TAIL_LINES};
