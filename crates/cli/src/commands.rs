//! The client commands: turn arguments into a [`Request`], get it answered by the running
//! instance (or, for `status`, `tools`, `call` and `check` with `--config` and no instance, by a
//! one-shot embedded supervisor), and print the answer.

use std::time::Duration;

use mcpvisor_model::ServiceState;
use mcpvisor_supervisor::{ServiceView, ToolEntry};
use serde_json::{json, Map, Value};

use crate::args::{
    AddArgs, CallArgs, CheckArgs, GlobalArgs, JsonArgs, ListArgs, LoginArgs, LogsArgs, NameArgs,
    PromptArgs, ReadArgs, StartArgs, StatusArgs, StopArgs, ToolsArgs,
};
use crate::client::{Client, ConnectError};
use crate::error::{CliError, CliResult, Exit};
use crate::oneshot;
use crate::output::{self, println};
use crate::paths;
use crate::protocol::{Answer, Request};

/// Gets `req` answered: by the instance of the state dir, else (when `oneshot` allows it and
/// `--config` is given) by an embedded supervisor.
async fn answer(global: &GlobalArgs, req: Request, oneshot: Option<Duration>) -> CliResult<Value> {
    decode(&answer_with(global, req, oneshot, None).await?)
}

/// [`answer`], with who answers the servers' own requests in one-shot mode (`--accept-defaults`);
/// refused when an instance is running (its gateway's clients answer those).
async fn answer_with(
    global: &GlobalArgs,
    req: Request,
    oneshot: Option<Duration>,
    answerer: Option<std::sync::Arc<dyn mcpvisor_supervisor::ServerRequests>>,
) -> CliResult<Answer> {
    let can_oneshot = oneshot.is_some() && global.config.is_some();
    let located = paths::state_dir(global.state_dir.as_deref())
        .and_then(|dir| paths::socket_path(&dir).map(|socket| (dir, socket)));
    let dir = match located {
        Ok((dir, socket)) => match Client::connect(&socket).await {
            Ok(_) if answerer.is_some() => {
                return Err(CliError::bad_input(
                    "--accept-defaults works in one-shot mode only (--config FILE with no \
                     instance running); a running instance passes servers' questions to its \
                     gateway's clients",
                ))
            }
            Ok(mut c) => return c.request(&req).await,
            Err(ConnectError::Other(e)) => return Err(e),
            Err(ConnectError::NotRunning) => dir.display().to_string(),
        },
        Err(e) if !can_oneshot => return Err(e),
        Err(_) => String::new(),
    };
    match (oneshot, &global.config) {
        (Some(wait), Some(config)) => {
            // Tokens of `mcpvisor login` live in the state dir the command was given.
            let tokens = paths::state_dir(global.state_dir.as_deref())
                .ok()
                .map(|d| d.join("oauth"));
            oneshot::answer(config, req, wait, tokens, answerer).await
        }
        (Some(_), None) => Err(CliError::failed(format!(
            "no mcpvisor is running with the state dir {dir}; start one with `mcpvisor run \
             --config FILE`, or pass --config FILE to answer from a one-shot supervisor"
        ))),
        (None, _) => Err(CliError::failed(format!(
            "no mcpvisor is running with the state dir {dir}; this command needs one: start it \
             with `mcpvisor run --config FILE` (or pass the --state-dir it uses)"
        ))),
    }
}

fn parse<T: serde::de::DeserializeOwned>(v: Value) -> CliResult<T> {
    serde_json::from_value(v).map_err(unreadable)
}

/// An answer read as `T`, straight from its JSON text.
fn decode<T: serde::de::DeserializeOwned>(v: &Answer) -> CliResult<T> {
    serde_json::from_str(v.get()).map_err(unreadable)
}

fn unreadable(e: serde_json::Error) -> CliError {
    CliError::failed(format!(
        "the instance answered in a form this version cannot read ({e}); is it another \
         version of mcpvisor?"
    ))
}

/// `status [NAME]`.
pub async fn status(g: &GlobalArgs, a: StatusArgs) -> CliResult<Exit> {
    // Read straight from the answer's text (1,000 services are a megabyte of it).
    let v = answer_with(
        g,
        Request::Status {
            name: a.name.clone(),
        },
        Some(a.oneshot.wait),
        None,
    )
    .await?;
    if a.json {
        println(&output::pretty_json(v.get()).map_err(unreadable)?);
    } else if a.name.is_some() {
        println(&output::service_detail(
            &decode::<ServiceView>(&v)?,
            output::color_stdout(),
        ));
    } else {
        // Who keeps the fleet, when an instance does (a one-shot answer has none).
        let dir = paths::state_dir(g.state_dir.as_deref())?;
        if let Some(mut c) = running(&dir).await {
            if let Ok(ping) = c.request_value(&Request::Ping).await {
                println(&format!(
                    "mcpvisor {} (pid {}), started {}",
                    ping["version"].as_str().unwrap_or("?"),
                    ping["pid"],
                    ping["started"].as_str().unwrap_or("by `mcpvisor run`")
                ));
            }
        }
        println(&output::status_table(
            &decode::<Vec<ServiceView>>(&v)?,
            output::color_stdout(),
        ));
    }
    Ok(Exit::Ok)
}

/// How long `shutdown` waits for the instance to stop every service and exit.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(600);

/// `shutdown`: the running instance stops every service (dependents first) and exits; this
/// returns once it has (its lock on the state dir is free), or fails after [`SHUTDOWN_WAIT`].
pub async fn shutdown(g: &GlobalArgs) -> CliResult<Exit> {
    let dir = paths::state_dir(g.state_dir.as_deref())?;
    let (mut client, _) = instance(g, "nothing to shut down").await?;
    let pid = client.request_value(&Request::Shutdown).await?["pid"].clone();
    drop(client);
    let end = std::time::Instant::now() + SHUTDOWN_WAIT;
    while crate::server::claimed(&dir) {
        if std::time::Instant::now() > end {
            return Err(CliError::failed(format!(
                "mcpvisor (pid {pid}) is still stopping its services after {}s; see its log, or \
                 signal it again to kill them at once",
                SHUTDOWN_WAIT.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println(&format!("mcpvisor (pid {pid}) stopped"));
    Ok(Exit::Ok)
}

/// `tools [SERVICE]`.
pub async fn tools(g: &GlobalArgs, a: ToolsArgs) -> CliResult<Exit> {
    let v = answer(
        g,
        Request::Tools {
            service: a.service,
            agent: a.agent,
            search: a.search.map(|query| (query, a.limit)),
        },
        Some(a.oneshot.wait),
    )
    .await?;
    show(a.json, v, |v| {
        Ok(output::tools_table(
            &parse::<Vec<ToolEntry>>(v.clone())?,
            output::color_stdout(),
        ))
    })
}

/// The instance running on `state_dir`, if any.
pub(crate) async fn running(state_dir: &std::path::Path) -> Option<Client> {
    Client::connect(&paths::socket_path(state_dir).ok()?)
        .await
        .ok()
}

/// The instance running on the state dir and its control socket; if there is none, an error
/// saying so and `needs` (what to do).
pub async fn instance(g: &GlobalArgs, needs: &str) -> CliResult<(Client, std::path::PathBuf)> {
    let dir = paths::state_dir(g.state_dir.as_deref())?;
    let socket = paths::socket_path(&dir)?;
    match Client::connect(&socket).await {
        Ok(c) => Ok((c, socket)),
        Err(ConnectError::Other(e)) => Err(e),
        Err(ConnectError::NotRunning) => Err(CliError::failed(format!(
            "no mcpvisor is running with the state dir {}; {needs}",
            dir.display()
        ))),
    }
}

/// `login NAME`: the OAuth sign-in of a remote service; a running instance reconnects it.
pub async fn login(g: &GlobalArgs, a: LoginArgs) -> CliResult<Exit> {
    let state_dir = paths::state_dir(g.state_dir.as_deref())?;
    let config = match (&g.config, running(&state_dir).await) {
        (Some(c), _) => c.clone(),
        (None, Some(mut c)) => {
            let ping = c.request_value(&Request::Ping).await?;
            match ping["config"].as_str() {
                Some(p) => std::path::PathBuf::from(p),
                None => {
                    return Err(CliError::bad_input(
                        "the running instance has no config file; pass --config FILE",
                    ))
                }
            }
        }
        (None, None) => return Err(CliError::bad_input(
            "which config names the service? pass --config FILE (or start `mcpvisor run` first)",
        )),
    };
    let parsed = mcpvisor_model::parse_file(&config, &mcpvisor_model::env::ProcessEnv)
        .map_err(|e| CliError::config(&config.display().to_string(), &e))?;
    // `name`, or `agent/name` for an agent's service.
    let spec = match a.service.split_once('/') {
        Some((agent, name)) => parsed
            .agents
            .iter()
            .find(|(id, _)| id.as_str() == agent)
            .and_then(|(_, ag)| ag.services.iter().find(|(n, _)| n.as_str() == name))
            .map(|(_, s)| s.clone()),
        None => parsed
            .services
            .iter()
            .find(|(n, _)| n.as_str() == a.service)
            .map(|(_, s)| s.clone()),
    }
    .ok_or_else(|| {
        let names: Vec<&str> = parsed.services.keys().map(|n| n.as_str()).collect();
        CliError::bad_input(format!(
            "no service '{}' in {}{}",
            a.service,
            config.display(),
            match mcpvisor_model::suggest(&a.service, names, 1).first() {
                Some(s) => format!("; did you mean '{s}'?"),
                None => String::new(),
            }
        ))
    })?;
    if spec
        .config
        .oauth
        .as_ref()
        .is_some_and(|o| o.grant == mcpvisor_model::OAuthGrant::ClientCredentials)
    {
        return Err(CliError::bad_input(format!(
            "service '{}' uses the client_credentials grant: mcpvisor gets its tokens itself, \
             no sign-in needed",
            a.service
        )));
    }
    let url = match &spec.config.endpoint {
        mcpvisor_model::Endpoint::Remote {
            transport: mcpvisor_model::TransportKind::StreamableHttp,
            url,
            ..
        } => url.clone(),
        _ => {
            return Err(CliError::bad_input(format!(
                "service '{}' is not a streamable HTTP server: OAuth sign-in is for those",
                a.service
            )))
        }
    };
    mcpvisor_supervisor::install_default_tls_provider();
    let file = mcpvisor_supervisor::oauth::token_file(&state_dir.join("oauth"), &a.service);
    mcpvisor_supervisor::oauth::login(&url, &file, spec.config.oauth.as_ref(), a.timeout, |open| {
        println(&format!(
            "To sign in to '{}', open this URL in a browser:\n  {open}\nWaiting for the sign-in (up to {})...",
            a.service,
            humantime::format_duration(a.timeout)
        ));
    })
    .await
    .map_err(CliError::failed)?;
    println(&format!(
        "signed in to '{}': tokens saved in {} (mode 0600)",
        a.service,
        file.display()
    ));
    // A running instance reconnects the service with them.
    if let Some(mut c) = running(&state_dir).await {
        let restart = Request::Restart {
            name: a.service.clone(),
            wait: false,
        };
        if c.request(&restart).await.is_ok() {
            println(&format!("reconnecting '{}' with the new tokens", a.service));
        }
    }
    Ok(Exit::Ok)
}

/// `resources`: URI, name and service of each.
pub async fn resources(g: &GlobalArgs, a: ListArgs) -> CliResult<Exit> {
    let v = answer(
        g,
        Request::Resources { agent: a.agent },
        Some(a.oneshot.wait),
    )
    .await?;
    show(a.json, v, |v| {
        let rows: Vec<[String; 3]> = rows(v, ["uri", "name", "service"]);
        Ok(output::plain_table(&["URI", "NAME", "SERVICE"], &rows))
    })
}

/// `read URI`: text contents as text, others as JSON.
pub async fn read(g: &GlobalArgs, a: ReadArgs) -> CliResult<Exit> {
    let v = answer(
        g,
        Request::Read {
            uri: a.uri,
            agent: a.agent,
        },
        Some(a.oneshot.wait),
    )
    .await?;
    show(a.json, v, |v| {
        Ok(item_lines(v, "contents", |c| match c["text"].as_str() {
            Some(t) => t.to_owned(),
            None => serde_json::to_string_pretty(c).unwrap_or_default(),
        }))
    })
}

/// `prompts`: name, service and description of each.
pub async fn prompts(g: &GlobalArgs, a: ListArgs) -> CliResult<Exit> {
    let v = answer(g, Request::Prompts { agent: a.agent }, Some(a.oneshot.wait)).await?;
    show(a.json, v, |v| {
        let mut with_description = v.clone();
        if let Some(items) = with_description.as_array_mut() {
            for p in items {
                p["description"] = p["prompt"]["description"].clone();
            }
        }
        let rows: Vec<[String; 3]> = rows(&with_description, ["name", "service", "description"]);
        Ok(output::plain_table(
            &["NAME", "SERVICE", "DESCRIPTION"],
            &rows,
        ))
    })
}

/// `prompt NAME`: each message as `role: text`.
pub async fn prompt(g: &GlobalArgs, a: PromptArgs) -> CliResult<Exit> {
    let args = call_arguments(a.args.as_deref())?;
    let v = answer(
        g,
        Request::Prompt {
            name: a.name,
            args,
            agent: a.agent,
        },
        Some(a.oneshot.wait),
    )
    .await?;
    show(a.json, v, |v| {
        Ok(item_lines(v, "messages", |m| {
            let role = m["role"].as_str().unwrap_or("?");
            let text = match m["content"]["text"].as_str() {
                Some(t) => t.to_owned(),
                None => m["content"].to_string(),
            };
            format!("{role}: {text}")
        }))
    })
}

/// Prints an answer: itself as JSON with `--json`, else as `human` renders it.
fn show(json: bool, v: Value, human: impl FnOnce(&Value) -> CliResult<String>) -> CliResult<Exit> {
    if json {
        output::print_json(&v);
    } else {
        println(&human(&v)?);
    }
    Ok(Exit::Ok)
}

/// One line per item of the array `v[key]`.
fn item_lines(v: &Value, key: &str, line: impl Fn(&Value) -> String) -> String {
    v[key]
        .as_array()
        .map(|items| items.iter().map(&line).collect::<Vec<_>>().join("\n"))
        .unwrap_or_default()
}

/// The string fields `keys` of each object of `v`.
fn rows<const N: usize>(v: &Value, keys: [&str; N]) -> Vec<[String; N]> {
    v.as_array()
        .map(|items| {
            items
                .iter()
                .map(|item| {
                    keys.map(|k| match &item[k] {
                        Value::String(s) => s.clone(),
                        Value::Null => String::new(),
                        other => other.to_string(),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The `--args` of `call`: a JSON object.
pub fn call_arguments(text: Option<&str>) -> CliResult<Option<Map<String, Value>>> {
    let Some(text) = text else { return Ok(None) };
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(m)) => Ok(Some(m)),
        Ok(other) => Err(CliError::bad_input(format!(
            "--args must be a JSON object like '{{\"text\": \"hi\"}}', not {}",
            match other {
                Value::Array(_) => "an array",
                Value::String(_) => "a string",
                Value::Number(_) => "a number",
                Value::Bool(_) => "a boolean",
                _ => "null",
            }
        ))),
        Err(e) => Err(CliError::bad_input(format!(
            "--args is not valid JSON at line {}, column {}: {e}",
            e.line(),
            e.column()
        ))),
    }
}

/// `call TOOL`.
pub async fn call(g: &GlobalArgs, a: CallArgs) -> CliResult<Exit> {
    let args = call_arguments(a.args.as_deref())?;
    let req = Request::Call {
        tool: a.tool.clone(),
        args,
        timeout_ms: a
            .timeout
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        agent: a.agent.clone(),
    };
    let answerer = a
        .accept_defaults
        .then(|| std::sync::Arc::new(oneshot::AcceptDefaults) as _);
    let v: Value = decode(&answer_with(g, req, Some(a.oneshot.wait), answerer).await?)?;
    let is_error = v["is_error"].as_bool().unwrap_or(false);
    if a.json {
        output::print_json(&v);
    } else {
        let text = output::call_text(&v["result"]);
        if !text.is_empty() {
            println(&text);
        }
    }
    if is_error {
        eprintln!("mcpvisor: the tool '{}' reported an error", a.tool);
        return Ok(Exit::Failed);
    }
    Ok(Exit::Ok)
}

fn pairs(flag: &str, items: &[String]) -> CliResult<Map<String, Value>> {
    let mut m = Map::new();
    for item in items {
        match item.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                m.insert(k.trim().to_owned(), Value::String(v.to_owned()));
            }
            _ => {
                return Err(CliError::bad_input(format!(
                    "{flag} '{item}' is not KEY=VALUE"
                )))
            }
        }
    }
    Ok(m)
}

/// The config `add` sends: the file's JSON, or one service built from the flags.
pub fn add_config(a: &AddArgs) -> CliResult<Value> {
    if let Some(file) = &a.file {
        let text = std::fs::read_to_string(file)
            .map_err(|e| CliError::bad_input(format!("cannot read {}: {e}", file.display())))?;
        return serde_json::from_str(&text).map_err(|e| {
            CliError::bad_input(format!(
                "{}: not valid JSON at line {}, column {}: {e}",
                file.display(),
                e.line(),
                e.column()
            ))
        });
    }
    let Some(name) = &a.name else {
        return Err(CliError::bad_input(
            "give the service a NAME, or use --file",
        ));
    };
    let mut obj = Map::new();
    obj.insert("name".into(), json!(name));
    match (&a.url, a.command.split_first()) {
        (Some(url), None) => {
            if !a.env.is_empty() || a.cwd.is_some() {
                return Err(CliError::bad_input(
                    "--env and --cwd are for local servers (a command after --), not for --url",
                ));
            }
            obj.insert("url".into(), json!(url));
            if !a.header.is_empty() {
                obj.insert(
                    "headers".into(),
                    Value::Object(pairs("--header", &a.header)?),
                );
            }
        }
        (None, Some((command, args))) => {
            obj.insert("command".into(), json!(command));
            obj.insert("args".into(), json!(args));
            if !a.env.is_empty() {
                obj.insert("env".into(), Value::Object(pairs("--env", &a.env)?));
            }
            if let Some(cwd) = &a.cwd {
                obj.insert("cwd".into(), json!(cwd));
            }
        }
        (Some(_), Some(_)) => {
            return Err(CliError::bad_input(
                "give either --url URL or a command after --, not both",
            ))
        }
        (None, None) => {
            return Err(CliError::bad_input(format!(
                "say how to reach '{name}': `mcpvisor add {name} -- COMMAND ARGS...` for a local \
                 server, or `mcpvisor add {name} --url URL` for a remote one"
            )))
        }
    }
    if !a.depends_on.is_empty() {
        obj.insert("depends_on".into(), json!(a.depends_on));
    }
    Ok(Value::Object(obj))
}

fn state_summary(v: &ServiceView) -> String {
    let mut s = format!("{}: {}", v.name, v.state);
    if v.state.is_up() {
        s.push_str(&format!(" ({} tools)", v.tools));
    } else if !v.reason.is_empty() && v.reason != v.state.as_str() {
        s.push_str(&format!(" ({})", v.reason));
    }
    s
}

fn not_up(views: &[ServiceView]) -> Option<CliError> {
    let down: Vec<String> = views
        .iter()
        .filter(|v| !v.state.is_up())
        .map(state_summary)
        .collect();
    (!down.is_empty()).then(|| {
        CliError::failed(format!(
            "did not come up: {}; see `mcpvisor logs NAME`",
            down.join("; ")
        ))
    })
}

/// `add`.
pub async fn add(g: &GlobalArgs, a: AddArgs) -> CliResult<Exit> {
    let config = add_config(&a)?;
    let wait = !a.no_wait;
    let v = answer(g, Request::Add { config, wait }, None).await?;
    if a.json {
        output::print_json(&v);
    }
    let added: Vec<String> = parse(v["added"].clone())?;
    let failed: Vec<(String, Vec<String>)> = parse(v["failed"].clone())?;
    let views: Vec<ServiceView> = parse(v["services"].clone())?;
    if !a.json {
        for n in &added {
            match views.iter().find(|v| &v.name == n) {
                Some(v) => println(&format!("added {}", state_summary(v))),
                None => println(&format!("added {n}")),
            }
        }
    }
    for (n, why) in &failed {
        eprintln!("mcpvisor: cannot add {n}: {}", why.join("; "));
    }
    if !failed.is_empty() {
        return Ok(Exit::BadInput);
    }
    if wait {
        if let Some(e) = not_up(&views) {
            return Err(e);
        }
    }
    Ok(Exit::Ok)
}

/// `remove NAME`.
pub async fn remove(g: &GlobalArgs, a: NameArgs) -> CliResult<Exit> {
    answer(
        g,
        Request::Remove {
            name: a.name.clone(),
        },
        None,
    )
    .await?;
    println(&format!("removed {}", a.name));
    Ok(Exit::Ok)
}

/// `start NAME` / `restart NAME`.
pub async fn start(g: &GlobalArgs, a: StartArgs, restart: bool) -> CliResult<Exit> {
    let wait = !a.no_wait;
    let req = if restart {
        Request::Restart { name: a.name, wait }
    } else {
        Request::Start { name: a.name, wait }
    };
    let v: ServiceView = parse(answer(g, req, None).await?)?;
    println(&state_summary(&v));
    if wait {
        if let Some(e) = not_up(std::slice::from_ref(&v)) {
            return Err(e);
        }
    }
    Ok(Exit::Ok)
}

/// `stop NAME`.
pub async fn stop(g: &GlobalArgs, a: StopArgs) -> CliResult<Exit> {
    let v: ServiceView = parse(
        answer(
            g,
            Request::Stop {
                name: a.name,
                force: a.force,
            },
            None,
        )
        .await?,
    )?;
    println(&state_summary(&v));
    Ok(Exit::Ok)
}

/// `check`: exit 1 when a service meant to run failed its probe.
pub async fn check(g: &GlobalArgs, a: CheckArgs) -> CliResult<Exit> {
    let v = answer(g, Request::Check, Some(a.oneshot.wait)).await?;
    let rows: Vec<Value> = parse(v.clone())?;
    if a.json {
        output::print_json(&v);
    } else {
        println(&output::check_table(&rows, output::color_stdout()));
    }
    let failed = rows.iter().any(|r| {
        !r["ok"].as_bool().unwrap_or(false)
            && !r["state"]
                .as_str()
                .and_then(ServiceState::parse)
                .is_some_and(output::check_skipped)
    });
    Ok(if failed { Exit::Failed } else { Exit::Ok })
}

/// `logs SERVICE`.
pub async fn logs(g: &GlobalArgs, a: LogsArgs) -> CliResult<Exit> {
    let v = answer(
        g,
        Request::Logs {
            name: a.service.clone(),
            lines: Some(a.lines),
        },
        None,
    )
    .await?;
    if a.json {
        output::print_json(&v);
        return Ok(Exit::Ok);
    }
    let lines: Vec<String> = parse(v["lines"].clone())?;
    if lines.is_empty() {
        eprintln!("mcpvisor: {} has written nothing to stderr", a.service);
    }
    for l in lines {
        println(&l);
    }
    Ok(Exit::Ok)
}

/// `events`: streams until the instance stops (or the command is interrupted).
pub async fn events(g: &GlobalArgs, a: JsonArgs) -> CliResult<Exit> {
    let (client, socket) = instance(g, "start one with `mcpvisor run`").await?;
    let color = output::color_stdout();
    client
        .events(
            || {
                eprintln!(
                    "mcpvisor: following the events of {} (interrupt to stop)",
                    socket.display()
                )
            },
            |e| {
                if a.json {
                    output::print_json_line(&e);
                } else {
                    println(&output::event_line(&e, color));
                }
            },
        )
        .await?;
    Ok(Exit::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::{Cli, Command};
    use clap::Parser;

    fn add_args(argv: &[&str]) -> AddArgs {
        let mut full = vec!["mcpvisor", "add"];
        full.extend_from_slice(argv);
        match Cli::try_parse_from(full).unwrap().command {
            Command::Add(a) => a,
            _ => unreachable!(),
        }
    }

    #[test]
    fn add_builds_one_service_from_the_flags() {
        let v = add_config(&add_args(&[
            "time",
            "--env",
            "TZ=UTC",
            "--depends-on",
            "db",
            "--",
            "uvx",
            "mcp-server-time",
        ]))
        .unwrap();
        assert_eq!(
            v,
            json!({"name": "time", "command": "uvx", "args": ["mcp-server-time"],
                   "env": {"TZ": "UTC"}, "depends_on": ["db"]})
        );
        let v = add_config(&add_args(&[
            "api",
            "--url",
            "http://127.0.0.1:1/mcp",
            "--header",
            "Authorization=Bearer x=y",
        ]))
        .unwrap();
        assert_eq!(v["headers"]["Authorization"], "Bearer x=y");
    }

    #[test]
    fn add_without_a_way_to_reach_the_server_is_bad_input() {
        let e = add_config(&add_args(&["lonely"])).unwrap_err();
        assert_eq!(e.code, Exit::BadInput);
        assert!(
            e.message.contains("mcpvisor add lonely -- COMMAND"),
            "{}",
            e.message
        );
        let e = add_config(&add_args(&["x", "--env", "NOEQUALS", "--", "cmd"])).unwrap_err();
        assert!(e.message.contains("KEY=VALUE"));
    }

    #[test]
    fn call_arguments_must_be_a_json_object() {
        assert_eq!(call_arguments(None).unwrap(), None);
        assert!(call_arguments(Some(r#"{"a": 1}"#)).unwrap().is_some());
        let e = call_arguments(Some("[1]")).unwrap_err();
        assert_eq!(e.code, Exit::BadInput);
        let e = call_arguments(Some("{oops")).unwrap_err();
        assert_eq!(e.code, Exit::BadInput);
        assert!(e.message.contains("line 1, column 2"), "{}", e.message);
    }
}
