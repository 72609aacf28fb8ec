//! Carrying out one [`Request`] against a [`Store`]: the same code answers the control socket
//! and the one-shot mode, so both give the same results.

use std::path::PathBuf;
use std::time::Duration;

use mcpvisor_supervisor::{ServiceInput, ServiceView, Store, Wait};
use serde_json::{json, Value};

use crate::error::{CliError, CliResult};
use crate::protocol::{answer_of, Answer, Request};
use crate::settle;

/// The longest `add`, `start` or `restart` waits for services to come up.
pub const MAX_START_WAIT: Duration = Duration::from_secs(600);

/// What `ping` tells about the instance, and how `shutdown` stops it.
#[derive(Debug, Clone, Default)]
pub struct Instance {
    /// The config file it keeps.
    pub config: Option<PathBuf>,
    /// Its state dir.
    pub state_dir: Option<PathBuf>,
    /// How it was started, in words (`status` shows it).
    pub started: Option<String>,
    /// Fired by `shutdown` (none in one-shot mode: nothing outlives the command there).
    pub stop: Option<tokio_util::sync::CancellationToken>,
}

/// Carries out `req` (anything but `events`, which is a stream) and returns its result, encoded
/// from what the Store returned (no JSON tree in between: `status` of 1,000 is a megabyte).
pub async fn execute(store: &Store, req: Request, instance: &Instance) -> CliResult<Answer> {
    let all = store.all_scopes();
    match req {
        Request::Ping => answer_of(&json!({
            "pid": std::process::id(),
            "version": env!("CARGO_PKG_VERSION"),
            "config": instance.config.as_ref().map(|p| p.display().to_string()),
            "state_dir": instance.state_dir.as_ref().map(|p| p.display().to_string()),
            "started": instance.started,
        })),
        Request::Shutdown => match &instance.stop {
            Some(stop) => {
                stop.cancel();
                answer_of(&json!({"pid": std::process::id()}))
            }
            None => Err(CliError::bad_input(
                "no mcpvisor instance runs here to shut down (a one-shot command ends by itself)",
            )),
        },
        Request::Status { name: None } => answer_of(&all.list_services().await?),
        Request::Status { name: Some(n) } => answer_of(&all.get_service_info(&n).await?),
        Request::Tools {
            service,
            agent,
            search,
        } => {
            let scoped = in_scope(store, agent.as_deref())?;
            // With a service, every match is ranked first and the limit taken of its own.
            let mut tools = match &search {
                Some((query, _)) if service.is_some() => {
                    scoped.search_tools(query, usize::MAX).await?
                }
                Some((query, limit)) => scoped.search_tools(query, *limit).await?,
                None => scoped.list_tools().await?,
            };
            if let Some(s) = service {
                // An unknown service is an error, not an empty list.
                let v = match agent {
                    Some(_) => scoped.get_service_info(&s).await?,
                    None => all.get_service_info(&s).await?,
                };
                tools.retain(|t| t.service == v.id);
                if let Some((_, limit)) = &search {
                    tools.truncate(*limit);
                }
            }
            answer_of(&tools)
        }
        Request::Resources { agent } => {
            let scoped = in_scope(store, agent.as_deref())?;
            let list = scoped.list_resources().await?;
            answer_of(&Value::Array(
                list.into_iter()
                    .map(|r| {
                        json!({
                            "uri": r.resource.uri,
                            "name": r.resource.name,
                            "service": r.service,
                            "original_uri": r.original_uri,
                            "resource": r.resource,
                        })
                    })
                    .collect(),
            ))
        }
        Request::Read { uri, agent } => {
            let scoped = in_scope(store, agent.as_deref())?;
            answer_of(&scoped.read_resource(&uri).await?)
        }
        Request::Prompts { agent } => {
            let scoped = in_scope(store, agent.as_deref())?;
            let list = scoped.list_prompts().await?;
            answer_of(&Value::Array(
                list.into_iter()
                    .map(|p| {
                        json!({
                            "name": p.prompt.name,
                            "service": p.service,
                            "original": p.original,
                            "prompt": p.prompt,
                        })
                    })
                    .collect(),
            ))
        }
        Request::Prompt { name, args, agent } => {
            let scoped = in_scope(store, agent.as_deref())?;
            answer_of(&scoped.get_prompt(&name, args).await?)
        }
        Request::Call {
            tool,
            args,
            timeout_ms,
            agent,
        } => {
            let scoped = in_scope(store, agent.as_deref())?;
            let out = scoped
                .call_tool(&tool, args, timeout_ms.map(Duration::from_millis))
                .await?;
            answer_of(&json!({"is_error": out.is_error, "result": out.result}))
        }
        Request::Add { config, wait } => {
            let report = store
                .add_service(ServiceInput::Json(config), Wait::None)
                .await?;
            let views = if wait && !report.added.is_empty() {
                wait_up(store, &report.added, false).await?
            } else {
                Vec::new()
            };
            answer_of(&json!({"added": report.added, "failed": report.failed, "services": views}))
        }
        Request::Remove { name } => {
            all.remove_service(&name).await?;
            answer_of(&json!({"removed": name}))
        }
        Request::Start { name, wait } => {
            all.start_service(&name).await?;
            view_after(&all, &name, wait).await
        }
        Request::Restart { name, wait } => {
            all.restart_service(&name).await?;
            view_after(&all, &name, wait).await
        }
        Request::Stop { name, force } => {
            // Returns once the stop is recorded everywhere: the view agrees.
            all.stop_service(&name, force).await?;
            answer_of(&all.get_service_info(&name).await?)
        }
        Request::Check => {
            let probes = all.check_services().await?;
            // Each running server's effective sandbox, beside its probe.
            let views = all.list_services().await?;
            let rows: Vec<Value> = probes
                .into_iter()
                .map(|(name, p)| {
                    let sandbox = views
                        .iter()
                        .find(|v| v.name == name)
                        .and_then(|v| v.sandbox.clone());
                    json!({
                        "name": name,
                        "ok": p.ok,
                        "latency_ms": p.latency.as_secs_f64() * 1000.0,
                        "state": p.state,
                        "detail": p.detail,
                        "sandbox": sandbox,
                    })
                })
                .collect();
            answer_of(&rows)
        }
        Request::Logs { name, lines } => {
            let v = all.get_service_info(&name).await?;
            let tail = all.service_logs(&name, lines.unwrap_or(usize::MAX))?;
            answer_of(&json!({"service": v.name, "lines": tail}))
        }
        Request::Events => Err(CliError::bad_input(
            "events is a stream: it is answered by the control socket only",
        )),
    }
}

/// `store` as `agent` sees it, or as is.
fn in_scope(store: &Store, agent: Option<&str>) -> CliResult<Store> {
    Ok(match agent {
        Some(a) => store.for_agent(a)?,
        None => store.clone(),
    })
}

async fn view_after(store: &Store, name: &str, wait: bool) -> CliResult<Answer> {
    if wait {
        let views = wait_up(store, &[name.to_owned()], true).await?;
        if let Some(v) = views.into_iter().next() {
            return answer_of(&v);
        }
    }
    answer_of(&store.get_service_info(name).await?)
}

/// Waits (bounded by their connect timeouts) for `names` to settle; their views.
async fn wait_up(
    store: &Store,
    names: &[String],
    expect_running: bool,
) -> CliResult<Vec<ServiceView>> {
    let infos = settle::spec_infos(&store.config().await?);
    let deadline = settle::connect_deadline(&infos, Some(names), MAX_START_WAIT);
    Ok(settle::wait_settled(store, Some(names), expect_running, deadline, |_, _| {}).await?)
}
