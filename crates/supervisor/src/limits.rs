//! File descriptors: every stdio server holds three pipes in the supervisor, so 1,000 services
//! need ~3,000 descriptors where a desktop's soft limit is 1,024 (macOS: 256). The soft limit
//! is raised to the hard one at open (a process may do that without privilege), and a config
//! that needs more than the hard limit allows is reported with the fix.

use mcpvisor_model::{ServicesConfig, TransportKind};

/// Descriptors one stdio service holds (stdin, stdout, stderr pipes).
const PER_STDIO_SERVICE: u64 = 3;
/// Descriptors for everything else (sockets, files, the runtime).
const BASE: u64 = 64;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; the (soft, hard) limits after, if known.
pub(crate) fn raise_fd_limit() -> Option<(u64, u64)> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    if soft < hard {
        match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => {
                tracing::debug!(from = soft, to = hard, "raised the open-file limit");
                return Some((hard, hard));
            }
            Err(e) => tracing::debug!("cannot raise the open-file limit: {e}"),
        }
    }
    Some((soft, hard))
}

/// What `config` needs, and a warning when the limit is lower.
pub(crate) fn check(config: &ServicesConfig, limit: u64) -> Option<String> {
    let stdio = config
        .services
        .values()
        .chain(config.agents.values().flat_map(|a| a.services.values()))
        .filter(|s| s.config.transport() == TransportKind::Stdio)
        .count() as u64;
    let needed = BASE + PER_STDIO_SERVICE * stdio;
    (needed > limit).then(|| {
        format!(
            "{stdio} stdio services need about {needed} open files, but this process may open \
             {limit}: raise the hard limit (`ulimit -Hn`, or LimitNOFILE= in a systemd unit) or \
             some services will fail to start"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_ends_at_the_hard_one() {
        let (soft, hard) = raise_fd_limit().expect("getrlimit works on Linux");
        assert_eq!(soft, hard);
    }

    #[test]
    fn a_config_beyond_the_limit_is_reported_with_the_fix() {
        let services: serde_json::Map<String, serde_json::Value> = (0..400)
            .map(|i| (format!("s{i}"), serde_json::json!({"command": "x"})))
            .collect();
        let config = mcpvisor_model::parse_value(
            serde_json::json!({ "mcpServers": services }),
            &mcpvisor_model::env::MapEnv::default(),
        )
        .unwrap();
        let warning = check(&config, 1024).expect("1,264 needed > 1,024");
        assert!(
            warning.contains("400 stdio services need about 1264"),
            "{warning}"
        );
        assert!(warning.contains("ulimit -Hn"), "{warning}");
        assert!(check(&config, 20_000).is_none());
    }
}
