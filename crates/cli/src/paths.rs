//! Where things live: the state dir, the control socket and the instance lock inside it, and
//! the default config file.

use std::path::{Path, PathBuf};

use crate::error::{CliError, CliResult};

/// File name of the control socket inside the state dir.
pub const SOCKET_FILE: &str = "mcpvisor.sock";
/// The gateway's socket in the state dir: MCP, newline-delimited, after a one-line preamble.
pub const GATEWAY_SOCKET_FILE: &str = "gateway.sock";
/// File name of the instance lock inside the state dir (holds the owner's pid).
pub const LOCK_FILE: &str = "mcpvisor.lock";
/// The background instance's log (its stdout and stderr) inside the state dir.
pub const LOG_FILE: &str = "mcpvisor.log";
/// Longest path a Unix socket address can hold (`sun_path` minus the terminating NUL).
pub const MAX_SOCKET_PATH: usize = 107;

/// The background instance's log file in `state_dir`.
pub fn log_path(state_dir: &Path) -> PathBuf {
    state_dir.join(LOG_FILE)
}

/// The state dir: `--state-dir`/`MCPVISOR_STATE_DIR` if given, else `$XDG_STATE_HOME/mcpvisor`,
/// else `$HOME/.local/state/mcpvisor`.
pub fn state_dir(given: Option<&Path>) -> CliResult<PathBuf> {
    resolve_state_dir(
        given,
        std::env::var_os("XDG_STATE_HOME").map(PathBuf::from),
        std::env::var_os("HOME").map(PathBuf::from),
    )
}

/// [`state_dir`] with the environment passed in.
pub fn resolve_state_dir(
    given: Option<&Path>,
    xdg_state_home: Option<PathBuf>,
    home: Option<PathBuf>,
) -> CliResult<PathBuf> {
    if let Some(dir) = given.filter(|d| !d.as_os_str().is_empty()) {
        return Ok(dir.to_path_buf());
    }
    // The XDG spec says relative values are to be ignored.
    if let Some(x) = xdg_state_home.filter(|x| x.is_absolute()) {
        return Ok(x.join("mcpvisor"));
    }
    if let Some(h) = home.filter(|h| !h.as_os_str().is_empty()) {
        return Ok(h.join(".local").join("state").join("mcpvisor"));
    }
    Err(CliError::bad_input(
        "cannot find a state directory: neither XDG_STATE_HOME nor HOME is set; pass \
         --state-dir DIR or set MCPVISOR_STATE_DIR",
    ))
}

/// The control socket of the instance using `state_dir`.
pub fn socket_path(state_dir: &Path) -> CliResult<PathBuf> {
    socket_in(state_dir, SOCKET_FILE, "control")
}

/// The gateway socket of the instance using `state_dir` (`serve --stdio` attaches there).
pub fn gateway_socket_path(state_dir: &Path) -> CliResult<PathBuf> {
    socket_in(state_dir, GATEWAY_SOCKET_FILE, "gateway")
}

/// `state_dir/file`, refused when longer than a Unix socket address can hold.
fn socket_in(state_dir: &Path, file: &str, what: &str) -> CliResult<PathBuf> {
    let p = state_dir.join(file);
    if p.as_os_str().len() > MAX_SOCKET_PATH {
        return Err(CliError::bad_input(format!(
            "the {what} socket path {} is longer than the {MAX_SOCKET_PATH} bytes a Unix \
             socket allows; use a shorter --state-dir",
            p.display()
        )));
    }
    Ok(p)
}

/// The config file: `--config` if given, else `mcp.json` in the current directory.
pub fn config_or_default(given: Option<&Path>) -> PathBuf {
    given
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(mcpvisor_model::defaults::CONFIG_FILE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_dir_comes_from_the_flag_then_xdg_then_home() {
        let p = |s: &str| Some(PathBuf::from(s));
        assert_eq!(
            resolve_state_dir(Some(Path::new("/given")), p("/x"), p("/h")).unwrap(),
            PathBuf::from("/given")
        );
        assert_eq!(
            resolve_state_dir(None, p("/x"), p("/h")).unwrap(),
            PathBuf::from("/x/mcpvisor")
        );
        assert_eq!(
            resolve_state_dir(None, p("relative"), p("/h")).unwrap(),
            PathBuf::from("/h/.local/state/mcpvisor"),
            "a relative XDG_STATE_HOME is ignored"
        );
        let e = resolve_state_dir(None, None, None).unwrap_err();
        assert!(e.message.contains("--state-dir"));
    }

    #[test]
    fn an_overlong_socket_path_is_refused_with_the_fix() {
        let long = PathBuf::from(format!("/{}", "d".repeat(120)));
        let e = socket_path(&long).unwrap_err();
        assert!(e.message.contains("shorter --state-dir"), "{}", e.message);
        assert!(socket_path(Path::new("/tmp/s")).is_ok());
    }
}
