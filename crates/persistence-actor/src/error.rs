//! The crate's typed errors: why a write failed ([`PersistError`]) and why a read failed
//! ([`LoadError`]). Every message names the file and says what to do about it.

use std::io;
use std::path::PathBuf;

use mcpvisor_model::ConfigErrors;

/// Why writing a file failed. The target file is untouched whenever this is returned (see
/// [`crate::write_atomic`]); the actor keeps the data and retries.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PersistError {
    /// The file system holding the file is mounted read-only (`EROFS`).
    #[error("cannot write {}: the file system is read-only ({source}); remount it read-write or choose another location", path.display())]
    ReadOnly {
        /// The file being written.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// The directory or file may not be written by this user (`EACCES`, `EPERM`).
    #[error("cannot write {}: permission denied ({source}); make its directory writable for this user or choose another location", path.display())]
    PermissionDenied {
        /// The file being written.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// No space (or no quota) left on the device (`ENOSPC`, `EDQUOT`).
    #[error("cannot write {}: no space left on the device ({source}); free some disk space, pending changes are kept and retried", path.display())]
    DiskFull {
        /// The file being written.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// Any other I/O failure, with the step that failed.
    #[error("cannot write {}: {op} failed: {source}", path.display())]
    Io {
        /// The file being written.
        path: PathBuf,
        /// The step that failed, such as `create temp file` or `rename temp file over target`.
        op: &'static str,
        /// The operating system's error.
        source: io::Error,
    },
    /// The existing file is not valid JSON, so it is not overwritten: the user fixes it by hand.
    #[error("refusing to overwrite {}: it is not valid JSON at line {line}, column {column} ({message}); fix the file by hand and pending changes will be written", path.display())]
    Unparseable {
        /// The file that does not parse.
        path: PathBuf,
        /// 1-based line of the syntax error.
        line: usize,
        /// 1-based column of the syntax error.
        column: usize,
        /// What the JSON parser expected.
        message: String,
    },
    /// The config file was edited by hand since mcpvisor last read or wrote it, and the
    /// runtime's pending changes cannot be merged into it: the edit does not validate, or the
    /// merge would not (say, a service added at run time depends on one removed by hand).
    /// Nothing is written; the changes stay pending and are retried.
    #[error("not writing {}: it was edited by hand since mcpvisor last wrote it, and {message}; pending runtime changes are kept and written once the file is fixed", path.display())]
    HandEdit {
        /// The config file.
        path: PathBuf,
        /// What is wrong, naming services and fields.
        message: String,
    },
    /// The data could not be encoded as JSON (not expected to happen for mcpvisor's types).
    #[error("cannot write {}: encoding JSON failed: {message}", path.display())]
    Encode {
        /// The file being written.
        path: PathBuf,
        /// The encoder's reason.
        message: String,
    },
}

impl PersistError {
    /// Classifies an I/O error from step `op` of writing `path`: read-only file system, permission
    /// denied and a full disk get their own variants.
    pub fn from_io(path: impl Into<PathBuf>, op: &'static str, source: io::Error) -> Self {
        let path = path.into();
        match source.kind() {
            io::ErrorKind::ReadOnlyFilesystem => PersistError::ReadOnly { path, source },
            io::ErrorKind::PermissionDenied => PersistError::PermissionDenied { path, source },
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => {
                PersistError::DiskFull { path, source }
            }
            _ => PersistError::Io { path, op, source },
        }
    }

    /// The file the error is about.
    pub fn path(&self) -> &std::path::Path {
        match self {
            PersistError::ReadOnly { path, .. }
            | PersistError::PermissionDenied { path, .. }
            | PersistError::DiskFull { path, .. }
            | PersistError::Io { path, .. }
            | PersistError::Unparseable { path, .. }
            | PersistError::HandEdit { path, .. }
            | PersistError::Encode { path, .. } => path,
        }
    }
}

/// Why reading the config file or the state file failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The file does not exist (callers treat this as an empty config).
    #[error("{} does not exist", path.display())]
    NotFound {
        /// The file looked for.
        path: PathBuf,
    },
    /// The file exists but could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// The config file is not a valid configuration; syntax errors carry line and column.
    #[error("{}: {errors}", path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// Every problem found.
        errors: ConfigErrors,
    },
    /// The state file is corrupt (it is then ignored and rewritten on the next state change).
    #[error("state file {} is corrupt at line {line}, column {column} ({message}); it is ignored and will be rewritten", path.display())]
    CorruptState {
        /// The file.
        path: PathBuf,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// What the JSON decoder found.
        message: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(kind: io::ErrorKind) -> String {
        PersistError::from_io("/x/mcp.json", "write temp file", io::Error::from(kind)).to_string()
    }

    #[test]
    fn io_errors_are_classified_and_name_the_file() {
        assert!(msg(io::ErrorKind::ReadOnlyFilesystem).contains("read-only"));
        assert!(msg(io::ErrorKind::PermissionDenied).contains("permission denied"));
        assert!(msg(io::ErrorKind::StorageFull).contains("no space left"));
        let other = msg(io::ErrorKind::NotADirectory);
        assert!(other.contains("write temp file failed"), "{other}");
        for k in [
            io::ErrorKind::ReadOnlyFilesystem,
            io::ErrorKind::PermissionDenied,
            io::ErrorKind::StorageFull,
            io::ErrorKind::Other,
        ] {
            assert!(msg(k).contains("/x/mcp.json"));
        }
    }

    #[test]
    fn raw_os_errors_map_like_their_kinds() {
        let e = PersistError::from_io("/x", "op", io::Error::from_raw_os_error(28));
        assert!(matches!(e, PersistError::DiskFull { .. }), "{e}");
        let e = PersistError::from_io("/x", "op", io::Error::from_raw_os_error(30));
        assert!(matches!(e, PersistError::ReadOnly { .. }), "{e}");
        let e = PersistError::from_io("/x", "op", io::Error::from_raw_os_error(13));
        assert!(matches!(e, PersistError::PermissionDenied { .. }), "{e}");
    }
}
