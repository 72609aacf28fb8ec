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
use mcpvisor_supervisor::{Answer, ServerRequests, Store, StoreOptions};
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
    answerer: Option<std::sync::Arc<dyn ServerRequests>>,
) -> CliResult<crate::protocol::Answer> {
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
    options.server_requests = answerer;
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

/// `call --accept-defaults`: a server's question (elicitation) is answered by accepting the
/// defaults of its form — declined when a required field has no default, or when it asks the
/// user to visit a URL. No roots are offered; sampling is refused (no model here).
pub struct AcceptDefaults;

impl ServerRequests for AcceptDefaults {
    #[allow(deprecated)] // roots: deprecated from protocol 2026-07-28; servers of 2025-11-25 ask
    fn list_roots(
        &self,
        _service: &mcpvisor_model::ServiceId,
    ) -> Answer<rmcp::model::ListRootsResult> {
        Box::pin(async { Ok(rmcp::model::ListRootsResult::default()) })
    }

    #[allow(deprecated)] // sampling: as roots
    fn create_message(
        &self,
        _service: &mcpvisor_model::ServiceId,
        _params: rmcp::model::CreateMessageRequestParams,
    ) -> Answer<rmcp::model::CreateMessageResult> {
        Box::pin(async {
            Err(rmcp::ErrorData::invalid_request(
                "mcpvisor call has no model to sample",
                None,
            ))
        })
    }

    fn create_elicitation(
        &self,
        _service: &mcpvisor_model::ServiceId,
        params: rmcp::model::ElicitRequestParams,
    ) -> Answer<rmcp::model::ElicitResult> {
        let answer = defaults_of(&params);
        Box::pin(async move { Ok(answer) })
    }
}

/// Accept with every field's default, or decline.
fn defaults_of(params: &rmcp::model::ElicitRequestParams) -> rmcp::model::ElicitResult {
    use rmcp::model::{ElicitResult, ElicitationAction};
    let decline = ElicitResult::new(ElicitationAction::Decline);
    let rmcp::model::ElicitRequestParams::FormElicitationParams {
        requested_schema, ..
    } = params
    else {
        return decline;
    };
    let Ok(schema) = serde_json::to_value(requested_schema) else {
        return decline;
    };
    let mut content = serde_json::Map::new();
    if let Some(props) = schema["properties"].as_object() {
        for (name, p) in props {
            if let Some(d) = p.get("default") {
                content.insert(name.clone(), d.clone());
            }
        }
    }
    let required = schema["required"].as_array().cloned().unwrap_or_default();
    if required
        .iter()
        .any(|r| r.as_str().is_some_and(|r| !content.contains_key(r)))
    {
        return decline;
    }
    let mut answer = ElicitResult::new(ElicitationAction::Accept);
    answer.content = Some(Value::Object(content));
    answer
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
    fn accept_defaults_fills_every_default_and_declines_a_required_field_without_one() {
        use rmcp::model::{ElicitRequestParams, ElicitationAction};
        let form = |schema: serde_json::Value| -> ElicitRequestParams {
            serde_json::from_value(serde_json::json!({
                "mode": "form", "message": "?", "requestedSchema": schema
            }))
            .unwrap()
        };
        let answer = defaults_of(&form(serde_json::json!({"type": "object", "properties": {
            "name": {"type": "string", "default": "John Doe"},
            "age": {"type": "integer", "default": 30},
            "verified": {"type": "boolean", "default": true},
            "note": {"type": "string"}}})));
        assert_eq!(answer.action, ElicitationAction::Accept);
        assert_eq!(
            answer.content,
            Some(serde_json::json!({"name": "John Doe", "age": 30, "verified": true}))
        );
        let answer = defaults_of(&form(serde_json::json!({"type": "object",
            "properties": {"note": {"type": "string"}}, "required": ["note"]})));
        assert_eq!(answer.action, ElicitationAction::Decline);
        assert_eq!(answer.content, None);
    }

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
