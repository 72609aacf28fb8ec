//! One-shot mode: with `--config F` and no instance running, `status`, `tools`, `call` and
//! `check` open an embedded supervisor for F, wait for the services they need, answer, and shut
//! it down (every child process gone before the command exits).
//!
//! Nothing is persisted: the config is handed over in memory (the file is never rewritten) and
//! the state file goes to a temporary directory removed at the end. A `call` of `svc__tool`
//! starts only `svc` and what it depends on; the other commands start every service.

use std::path::Path;
use std::time::Duration;

use mcpvisor_model::env::ProcessEnv;
use mcpvisor_model::parse_file;
use mcpvisor_supervisor::{Store, StoreOptions};
use serde_json::Value;
use tokio::time::Instant;

use crate::error::{CliError, CliResult};
use crate::exec::{self, Instance};
use crate::output;
use crate::protocol::Request;
use crate::settle::{self, SpecInfo};
use crate::signals::Signals;

/// Answers `req` with an embedded supervisor running `config`, waiting at most `wait` for the
/// services it needs.
pub async fn answer(
    config: &Path,
    req: Request,
    wait: Duration,
    token_dir: Option<std::path::PathBuf>,
) -> CliResult<Value> {
    let mut signals = Signals::new()?;
    let parsed = parse_file(config, &ProcessEnv)
        .map_err(|e| CliError::config(&config.display().to_string(), &e))?;
    let infos = settle::spec_infos(&parsed);
    let needed = needed_services(&req, &infos, &parsed.supervisor.tool_separator);
    let state = tempfile::Builder::new()
        .prefix("mcpvisor-oneshot-")
        .tempdir()
        .map_err(|e| CliError::failed(format!("cannot create a temporary state dir: {e}")))?;
    let mut options = StoreOptions::new()
        .with_config(parsed)
        .state_dir(state.path());
    options.token_dir = token_dir;
    options.autostart = needed.is_none();
    let store = Store::open(options).await?;

    let work = async {
        if let Some(names) = &needed {
            for n in names {
                store.all_scopes().start_service(n).await?;
            }
        }
        let tty = output::stderr_is_terminal();
        let deadline = Instant::now() + wait;
        settle::wait_settled(&store, needed.as_deref(), false, deadline, |p, _| {
            if tty {
                output::redraw_stderr(&format!("waiting for services: {}", p.line()));
            }
        })
        .await?;
        if tty {
            output::redraw_stderr("");
        }
        exec::execute(&store, req, &Instance::default()).await
    };
    let result = tokio::select! {
        r = work => r,
        s = signals.next() => Err(CliError::failed(format!("{s}: interrupted; the services were stopped"))),
    };
    store.shutdown().await;
    drop(state);
    result
}

/// The services a request needs (with their dependencies), or `None` for all of them.
fn needed_services(
    req: &Request,
    infos: &std::collections::HashMap<String, SpecInfo>,
    separator: &str,
) -> Option<Vec<String>> {
    let one = |name: &str| {
        infos
            .contains_key(name)
            .then(|| settle::with_dependencies(&[name.to_owned()], infos))
    };
    match req {
        Request::Call {
            tool, agent: None, ..
        } => tool
            .split_once(separator)
            .and_then(|(service, _)| one(service)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcpvisor_model::env::MapEnv;
    use mcpvisor_model::parse_str;

    #[test]
    fn a_namespaced_call_needs_only_its_service_and_dependencies() {
        let cfg = parse_str(
            r#"{"mcpServers": {"db": {"command": "x"}, "api": {"command": "x", "depends_on": ["db"]},
                "other": {"command": "x"}}}"#,
            &MapEnv::default(),
        )
        .unwrap();
        let infos = settle::spec_infos(&cfg);
        let call = |tool: &str| Request::Call {
            tool: tool.into(),
            args: None,
            timeout_ms: None,
            agent: None,
        };
        let mut n = needed_services(&call("api__get"), &infos, "__").unwrap();
        n.sort();
        assert_eq!(n, ["api", "db"]);
        assert_eq!(needed_services(&call("get"), &infos, "__"), None);
        assert_eq!(needed_services(&call("nope__get"), &infos, "__"), None);
        assert_eq!(needed_services(&Request::Check, &infos, "__"), None);
    }
}
