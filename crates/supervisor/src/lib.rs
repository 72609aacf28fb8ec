//! # mcpvisor-supervisor
//!
//! The root supervisor (restart policies, intensity, dependency order) and the embedded `Store`
//! API.
//!
//! **Invariant:** nothing outlives the supervisor: every child process group is stopped on
//! shutdown, on drop and on panic. (Filled by issue #5.)
