//! # mcpvisor-registry-actor
//!
//! The live registry: one record per service (config, state, tools, pid, restarts, last error),
//! the namespaced tool index, agent scopes and event fan-out.
//!
//! **Invariant:** every query is answered from the registry's own state; nothing here waits on
//! a server, so a hung server never slows a query. (Filled by issue #4.)
