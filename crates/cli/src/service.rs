//! `mcpvisor service install|uninstall`: the fleet started at login by the user's service
//! manager — a systemd user unit (`Type=notify`: `run` says READY=1 once start-up settled), or
//! on macOS a launchd agent — running `mcpvisor run --watch` on the config and state dir given
//! (absolute paths, this binary). `status` then says the instance was started by systemd.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::args::{GlobalArgs, ServiceAction};
use crate::error::{CliError, CliResult, Exit};
use crate::output::println;
use crate::paths;

/// The unit's (and agent's) name.
const NAME: &str = "mcpvisor";
/// The launchd agent's label.
const LABEL: &str = "dev.mcpvisor";

/// What `run` is started with: this binary, absolute paths.
fn run_args(g: &GlobalArgs, serve: Option<std::net::SocketAddr>) -> CliResult<Vec<String>> {
    let exe = std::env::current_exe()
        .map_err(|e| CliError::failed(format!("cannot find mcpvisor's own binary: {e}")))?;
    let state = paths::state_dir(g.state_dir.as_deref())?;
    let config = paths::config_or_default(g.config.as_deref());
    let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let mut args = vec![
        exe.display().to_string(),
        "--state-dir".into(),
        abs(&state).display().to_string(),
        "--config".into(),
        abs(&config).display().to_string(),
        "run".into(),
        "--watch".into(),
    ];
    if let Some(addr) = serve {
        args.extend(["--serve".into(), addr.to_string()]);
    }
    Ok(args)
}

/// A systemd `ExecStart=` word: `%` and `$` doubled (specifiers and variables), quoted when it
/// holds a space, a quote, a backslash or `;`.
fn systemd_word(w: &str) -> String {
    let w = w.replace('%', "%%").replace('$', "$$");
    if w.contains([' ', '"', '\'', '\\', '\t', ';']) {
        format!("\"{}\"", w.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        w
    }
}

/// The systemd user unit running `args` with `path` as its `PATH` (a user manager's own lacks
/// `~/.local/bin`, nvm's and Homebrew's folders, where `npx`, `uvx` and `node` often are).
pub fn systemd_unit(args: &[String], path: &str) -> String {
    let exec: Vec<String> = args.iter().map(|a| systemd_word(a)).collect();
    let path = systemd_word(&format!("PATH={path}"));
    format!(
        "# Written by `mcpvisor service install`; `mcpvisor service uninstall` removes it.\n\
         [Unit]\n\
         Description=mcpvisor: supervisor and gateway for MCP servers\n\
         After=network.target\n\
         \n\
         [Service]\n\
         Type=notify\n\
         NotifyAccess=main\n\
         Environment={path}\n\
         ExecStart={}\n\
         LimitNOFILE=8192\n\
         Delegate=yes\n\
         Restart=on-failure\n\
         RestartSec=2s\n\
         TimeoutStopSec=60s\n\
         KillMode=mixed\n\
         \n\
         [Install]\n\
         WantedBy=default.target\n",
        exec.join(" ")
    )
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The launchd agent running `args` with `path` as its `PATH` (launchd's is
/// `/usr/bin:/bin:/usr/sbin:/sbin`), its output appended to `log`.
pub fn launchd_agent(args: &[String], path: &str, log: &Path) -> String {
    let program: String = args
        .iter()
        .map(|a| format!("    <string>{}</string>\n", xml(a)))
        .collect();
    let log = xml(&log.display().to_string());
    let path = xml(path);
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \
         \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n\
         <plist version=\"1.0\">\n<dict>\n\
         \x20 <key>Label</key>\n  <string>{LABEL}</string>\n\
         \x20 <key>ProgramArguments</key>\n  <array>\n{program}  </array>\n\
         \x20 <key>EnvironmentVariables</key>\n  <dict>\n    <key>PATH</key>\n    \
         <string>{path}</string>\n  </dict>\n\
         \x20 <key>RunAtLoad</key>\n  <true/>\n\
         \x20 <key>KeepAlive</key>\n  <dict>\n    <key>SuccessfulExit</key>\n    <false/>\n  </dict>\n\
         \x20 <key>StandardOutPath</key>\n  <string>{log}</string>\n\
         \x20 <key>StandardErrorPath</key>\n  <string>{log}</string>\n\
         </dict>\n</plist>\n"
    )
}

/// Where the unit (or agent) goes.
fn unit_path() -> CliResult<PathBuf> {
    // The user's folders, as the clients' files are found.
    let roots = crate::clients::Roots::from_env()?;
    if cfg!(target_os = "macos") {
        return Ok(roots
            .home
            .join("Library/LaunchAgents")
            .join(format!("{LABEL}.plist")));
    }
    Ok(roots
        .config
        .join("systemd/user")
        .join(format!("{NAME}.service")))
}

/// Runs the service manager's `args`; what went wrong, in words, if it did.
fn manager(program: &str, args: &[&str]) -> Result<(), String> {
    match Command::new(program).args(args).output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(format!(
            "`{program} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Err(format!("cannot run {program}: {e}")),
    }
}

/// `service install|uninstall`.
pub fn service(g: &GlobalArgs, action: ServiceAction) -> CliResult<Exit> {
    let path = unit_path()?;
    let macos = cfg!(target_os = "macos");
    let uid = nix::unistd::getuid().to_string();
    let domain = format!("gui/{uid}");
    match action {
        ServiceAction::Install { serve } => {
            let args = run_args(g, serve)?;
            let state = paths::state_dir(g.state_dir.as_deref())?;
            let path_var = std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into());
            let text = if macos {
                launchd_agent(&args, &path_var, &paths::log_path(&state))
            } else {
                systemd_unit(&args, &path_var)
            };
            // Asked before the service starts: afterwards its own instance holds the lock.
            let running = crate::server::claimed(&state);
            let before = std::fs::read_to_string(&path).ok();
            crate::clients::write_if_unchanged(&path, before.as_deref(), &text)?;
            println(&format!("wrote {}", path.display()));
            let enabled = if macos {
                let p = path.display().to_string();
                let _ = manager("launchctl", &["bootout", &domain, &p]);
                manager("launchctl", &["bootstrap", &domain, &p])
            } else {
                let unit = format!("{NAME}.service");
                // With an instance running, enabled only: started at the next login, or once
                // that instance is shut down and the unit started.
                let enable: &[&str] = if running {
                    &["--user", "enable", &unit]
                } else {
                    &["--user", "enable", "--now", &unit]
                };
                manager("systemctl", &["--user", "daemon-reload"])
                    .and_then(|()| manager("systemctl", enable))
            };
            match enabled {
                Ok(()) if running => println("enabled: the fleet starts at every login"),
                Ok(()) => println("enabled: the fleet runs now and starts at every login"),
                Err(why) => {
                    let how = if macos {
                        format!("launchctl bootstrap {domain} {}", path.display())
                    } else {
                        "systemctl --user daemon-reload && systemctl --user enable --now mcpvisor"
                            .to_owned()
                    };
                    eprintln!("mcpvisor: not enabled: {why}; in your login session, run: {how}");
                }
            }
            if running {
                eprintln!(
                    "mcpvisor: an instance already runs on {}: the service starts at the next \
                     login, or now after `mcpvisor shutdown` and `systemctl --user start mcpvisor`",
                    state.display()
                );
            }
            Ok(Exit::Ok)
        }
        ServiceAction::Uninstall => {
            if !path.exists() {
                println(&format!(
                    "no service at {}: nothing to remove",
                    path.display()
                ));
                return Ok(Exit::Ok);
            }
            let stopped = if macos {
                manager(
                    "launchctl",
                    &["bootout", &domain, &path.display().to_string()],
                )
            } else {
                manager(
                    "systemctl",
                    &["--user", "disable", "--now", &format!("{NAME}.service")],
                )
            };
            if let Err(why) = stopped {
                eprintln!("mcpvisor: the service manager was not told: {why}");
            }
            std::fs::remove_file(&path)
                .map_err(|e| CliError::failed(format!("cannot remove {}: {e}", path.display())))?;
            if !macos {
                let _ = manager("systemctl", &["--user", "daemon-reload"]);
            }
            println(&format!("removed {}", path.display()));
            Ok(Exit::Ok)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unit_runs_this_config_and_state_dir_with_words_quoted() {
        let args: Vec<String> = ["/opt/my tools/mcpvisor", "--state-dir", "/s", "run", "100%"]
            .map(String::from)
            .to_vec();
        let unit = systemd_unit(&args, "/home/me/.local/bin:/usr/bin");
        assert!(
            unit.contains("ExecStart=\"/opt/my tools/mcpvisor\" --state-dir /s run 100%%\n"),
            "{unit}"
        );
        assert!(
            unit.contains("Environment=PATH=/home/me/.local/bin:/usr/bin\n"),
            "{unit}"
        );
        assert_eq!(systemd_word("a$b"), "a$$b");
        assert_eq!(systemd_word("o'brien"), "\"o'brien\"");
        assert!(unit.contains("Type=notify\n") && unit.contains("WantedBy=default.target\n"));
        let plist = launchd_agent(&args, "/usr/bin", Path::new("/s/mcpvisor.log"));
        assert!(
            plist.contains("<key>PATH</key>\n    <string>/usr/bin</string>"),
            "{plist}"
        );
        assert!(
            plist.contains("<string>/opt/my tools/mcpvisor</string>"),
            "{plist}"
        );
        assert!(
            plist.contains("<string>/s/mcpvisor.log</string>"),
            "{plist}"
        );
    }
}
