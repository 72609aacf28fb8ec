//! # mcpvisor-persistence-actor
//!
//! The config file and the state snapshot on disk.
//!
//! **Invariant:** a file on disk is always either the previous or the next complete version
//! (temp file, fsync, rename, fsync directory), and a file that does not parse is never
//! overwritten. (Filled by issue #4.)
