//! `clients`, `import`, `connect` and `disconnect`: the commands over the MCP clients' own
//! config files (what is read and how files are edited is `crate::clients`).

use serde_json::{json, Map, Value};

use crate::args::{ClientArgs, ConnectArgs, GlobalArgs, ImportArgs};
use crate::client::Client;
use crate::clients as cl;
use crate::commands::running;
use crate::error::{CliError, CliResult, Exit};
use crate::output::{self, println};
use crate::paths;
use crate::protocol::Request;

/// `clients`: every client's places that exist here, their servers, whether each points at
/// mcpvisor.
pub fn clients(json: bool) -> CliResult<Exit> {
    let roots = cl::Roots::from_env()?;
    let mut rows = Vec::new();
    for client in cl::Client::ALL {
        for place in client.places(&roots) {
            if let Some(read) = cl::read(&place, &roots)? {
                rows.push(read);
            }
        }
    }
    if json {
        let v: Vec<Value> = rows
            .iter()
            .map(|r| {
                json!({
                    "client": r.place.client.name(),
                    "path": r.place.path,
                    "at": r.place.keys,
                    "connected": r.connected,
                    "servers": r.servers.iter().map(|s| json!({
                        "name": s.name, "service": s.service, "notes": s.notes})).collect::<Vec<_>>(),
                    "skipped": r.skipped.iter().map(|(n, why)| json!({"name": n, "why": why}))
                        .collect::<Vec<_>>(),
                })
            })
            .collect();
        output::print_json(&Value::Array(v));
        return Ok(Exit::Ok);
    }
    if rows.is_empty() {
        println("no MCP client's config file was found here");
    }
    for r in &rows {
        let names: Vec<&str> = r.servers.iter().map(|s| s.name.as_str()).collect();
        let at = if r.place.keys.len() > 1 {
            format!(" ({})", r.place.keys.join("."))
        } else {
            String::new()
        };
        println(&format!(
            "{:<15} {}{at}: {} server{}{}{}",
            r.place.client.name(),
            r.place.path.display(),
            names.len(),
            if names.len() == 1 { "" } else { "s" },
            if names.is_empty() {
                String::new()
            } else {
                format!(" ({})", names.join(", "))
            },
            if r.connected {
                "; points at mcpvisor"
            } else {
                ""
            }
        ));
    }
    Ok(Exit::Ok)
}

/// The client named `name`, or the error listing the known ones.
fn client_named(name: &str) -> CliResult<cl::Client> {
    cl::Client::named(name).ok_or_else(|| unknown_client(name, ""))
}

/// The clients `names` names, every name checked before any file changes.
fn clients_named(names: &[String]) -> CliResult<Vec<cl::Client>> {
    names.iter().map(|c| client_named(c)).collect()
}

/// `name` is no client (`or`: what else it is not): bad input naming the clients.
fn unknown_client(name: &str, or: &str) -> CliError {
    let names: Vec<&str> = cl::Client::ALL.iter().map(|c| c.name()).collect();
    CliError::bad_input(format!(
        "'{name}' is no client{}{or}; the clients are: {}",
        match mcpvisor_model::suggest(name, names.iter().copied(), 1).first() {
            Some(s) => format!(" (did you mean '{s}'?)"),
            None => String::new(),
        },
        names.join(", ")
    ))
}

/// The config file mcpvisor's services live in: `--config`, else the running instance's,
/// else `./mcp.json`; and the running instance, if it keeps that file.
async fn our_config(g: &GlobalArgs) -> CliResult<(std::path::PathBuf, Option<Client>)> {
    let dir = paths::state_dir(g.state_dir.as_deref())?;
    let mut instance = running(&dir).await;
    let theirs = match instance.as_mut() {
        Some(c) => c
            .request_value(&Request::Ping)
            .await
            .ok()
            .and_then(|p| p["config"].as_str().map(std::path::PathBuf::from)),
        None => None,
    };
    let config = match (&g.config, &theirs) {
        (Some(c), _) => c.clone(),
        (None, Some(t)) => t.clone(),
        (None, None) => paths::config_or_default(None),
    };
    // Absolute: a client runs its entry from a folder of its own.
    let config = std::path::absolute(&config).unwrap_or(config);
    let keeps_it = theirs
        .is_some_and(|t| std::fs::canonicalize(&t).ok() == std::fs::canonicalize(&config).ok());
    Ok((config, instance.filter(|_| keeps_it)))
}

/// mcpvisor's services as its config file holds them (`mcpServers`, or VS Code's `servers`),
/// the file's text, and the key its table is under.
fn our_services(
    config: &std::path::Path,
) -> CliResult<(Option<String>, Map<String, Value>, String)> {
    let text = match std::fs::read_to_string(config) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(CliError::failed(format!(
                "cannot read {}: {e}",
                config.display()
            )))
        }
    };
    let root = cl::parse(text.as_deref().unwrap_or(""), cl::Format::Jsonc, config)?;
    let key = if root.get("mcpServers").is_none() && root.get("servers").is_some() {
        "servers"
    } else {
        "mcpServers"
    };
    let services = root
        .get(key)
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    Ok((text, services, key.to_owned()))
}

/// The places `source` names: a client's that exist, or one file (its format by its name; its
/// table whichever of the clients' keys it has).
fn sources(source: &str, roots: &cl::Roots) -> CliResult<Vec<cl::Read>> {
    if let Some(client) = cl::Client::named(source) {
        let places = client.places(roots);
        let mut reads = Vec::new();
        for p in &places {
            if let Some(r) = cl::read(p, roots)? {
                reads.push(r);
            }
        }
        if reads.is_empty() {
            let looked: Vec<String> = places
                .iter()
                .map(|p| p.path.display().to_string())
                .collect();
            return Err(CliError::failed(format!(
                "no config file of {source} was found (looked at {})",
                looked.join(", ")
            )));
        }
        return Ok(reads);
    }
    let path = std::path::PathBuf::from(source);
    if !path.exists() {
        return Err(unknown_client(source, " and no file"));
    }
    let toml = path.extension().is_some_and(|e| e == "toml");
    let format = if toml {
        cl::Format::Toml
    } else {
        cl::Format::Jsonc
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| CliError::failed(format!("cannot read {}: {e}", path.display())))?;
    let root = cl::parse(&text, format, &path)?;
    // Whose shape it is: the key of its servers' table says.
    let (client, key) = [
        (cl::Client::Codex, "mcp_servers"),
        (cl::Client::VsCode, "servers"),
        (cl::Client::Zed, "context_servers"),
        (cl::Client::ClaudeDesktop, "mcpServers"),
    ]
    .into_iter()
    .find(|(_, k)| root.get(*k).is_some())
    .ok_or_else(|| {
        CliError::bad_input(format!(
            "{} has no table of servers (mcpServers, servers, context_servers or mcp_servers)",
            path.display()
        ))
    })?;
    // Gemini's httpUrl marks its files.
    let client = match client {
        cl::Client::ClaudeDesktop if text.contains("\"httpUrl\"") => cl::Client::Gemini,
        c => c,
    };
    let place = cl::Place {
        client,
        path,
        format,
        keys: vec![key.to_owned()],
    };
    Ok(cl::read(&place, roots)?.into_iter().collect())
}

/// `import CLIENT|FILE`.
pub async fn import(g: &GlobalArgs, a: ImportArgs) -> CliResult<Exit> {
    let roots = cl::Roots::from_env()?;
    let mut reads = Vec::new();
    for source in &a.sources {
        reads.extend(sources(source, &roots)?);
    }
    let (config, instance) = our_config(g).await?;
    let (text, ours, key) = our_services(&config)?;
    let mut put: Vec<(String, Value)> = Vec::new();
    let mut report = Vec::new();
    let mut clashes = 0;
    for read in &reads {
        let from = read.place.path.display().to_string();
        for (name, why) in &read.skipped {
            report.push(json!({"name": name, "from": from, "done": "skipped", "why": why}));
        }
        for server in &read.servers {
            let known = ours.iter().chain(put.iter().map(|(n, v)| (n, v)));
            let same = known
                .clone()
                .find(|(_, v)| cl::same_server(v, &server.service))
                .map(|(n, _)| n.clone());
            if let Some(n) = same {
                report.push(
                    json!({"name": server.name, "from": from, "done": "already there",
                                   "as": n}),
                );
                continue;
            }
            if known.clone().any(|(n, _)| *n == server.name) {
                clashes += 1;
                report.push(json!({"name": server.name, "from": from, "done": "clash",
                    "why": format!("mcpvisor already has a different '{}' in {}; rename one of \
                                    them and import again", server.name, config.display())}));
                continue;
            }
            put.push((server.name.clone(), server.service.clone()));
            report.push(
                json!({"name": server.name, "from": from, "done": "imported",
                               "notes": server.notes}),
            );
        }
    }
    if !put.is_empty() {
        match instance {
            // The running instance adds them and writes its file itself.
            Some(mut c) => {
                let services: Map<String, Value> = put.iter().cloned().collect();
                c.request(&Request::Add {
                    config: json!({ "mcpServers": services }),
                    wait: false,
                })
                .await?;
            }
            None => {
                let place = cl::Place {
                    client: cl::Client::ClaudeDesktop,
                    path: config.clone(),
                    format: cl::Format::Jsonc,
                    keys: vec![key],
                };
                let edit = cl::Edit {
                    put: put.clone(),
                    remove: Vec::new(),
                };
                let new = cl::edited(&place, text.as_deref().unwrap_or("{}\n"), &edit)?;
                cl::write_if_unchanged(&config, text.as_deref(), &new)?;
            }
        }
    }
    if a.json {
        output::print_json(&json!({"config": config, "servers": report}));
    } else {
        for r in &report {
            let line = match r["done"].as_str().unwrap_or_default() {
                "imported" => format!(
                    "{}: imported from {}",
                    r["name"].as_str().unwrap_or_default(),
                    r["from"].as_str().unwrap_or_default()
                ),
                "already there" => format!(
                    "{}: already in mcpvisor as '{}'",
                    r["name"].as_str().unwrap_or_default(),
                    r["as"].as_str().unwrap_or_default()
                ),
                other => format!(
                    "{}: {other}: {}",
                    r["name"].as_str().unwrap_or_default(),
                    r["why"].as_str().unwrap_or_default()
                ),
            };
            println(&line);
            for n in r["notes"].as_array().into_iter().flatten() {
                println(&format!("  note: {}", n.as_str().unwrap_or_default()));
            }
        }
        println(&format!("{} imported into {}", put.len(), config.display()));
    }
    Ok(if clashes > 0 { Exit::Failed } else { Exit::Ok })
}

/// Where `connect --move` keeps what it took out of a client's file, for `disconnect` (its
/// folder made private, as the state dir is).
fn moved_record(g: &GlobalArgs, client: cl::Client) -> CliResult<std::path::PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = paths::state_dir(g.state_dir.as_deref())?.join("clients");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|e| CliError::failed(format!("cannot create {}: {e}", dir.display())))?;
    Ok(dir.join(format!("{}.json", client.name())))
}

/// The servers `connect --move` recorded at `record` (none if there is no record).
fn moved_servers(record: &std::path::Path) -> Map<String, Value> {
    std::fs::read_to_string(record)
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .and_then(|v| v["moved"].as_object().cloned())
        .unwrap_or_default()
}

/// `connect CLIENT... [--move]`.
pub async fn connect(g: &GlobalArgs, a: ConnectArgs) -> CliResult<Exit> {
    for client in clients_named(&a.clients)? {
        connect_one(g, client, a.move_servers).await?;
    }
    Ok(Exit::Ok)
}

/// `connect` of one client.
async fn connect_one(g: &GlobalArgs, client: cl::Client, move_servers: bool) -> CliResult<()> {
    let roots = cl::Roots::from_env()?;
    let place = client.places(&roots).remove(0);
    let read = cl::read(&place, &roots)?;
    let text = read.as_ref().map(|r| r.text.clone());
    let (config, _) = our_config(g).await?;
    let (_, ours, _) = our_services(&config)?;
    // What the client runs: this binary, attached to the fleet, starting it if none runs.
    let exe = std::env::current_exe()
        .map_err(|e| CliError::failed(format!("cannot find mcpvisor's own binary: {e}")))?;
    // The state dir as resolved here, always: a client started from a desktop may lack the
    // shell's XDG_STATE_HOME, and would look for (and start) a fleet elsewhere.
    let state = paths::state_dir(g.state_dir.as_deref())?;
    let state = std::path::absolute(&state).unwrap_or(state);
    let mut args = vec!["--state-dir".to_owned(), state.display().to_string()];
    args.extend([
        "serve".to_owned(),
        "--stdio".to_owned(),
        "--config".to_owned(),
    ]);
    args.push(config.display().to_string());
    let mut entry = json!({"command": exe.display().to_string(), "args": args});
    if client == cl::Client::VsCode {
        entry["type"] = "stdio".into();
    }
    let mut edit = cl::Edit {
        put: vec![(cl::ENTRY.to_owned(), entry)],
        remove: Vec::new(),
    };
    let mut moved = Map::new();
    let mut kept = Vec::new();
    if move_servers {
        let raw = cl::parse(text.as_deref().unwrap_or(""), place.format, &place.path)?;
        let mut table = &raw;
        for k in &place.keys {
            table = table.get(k).unwrap_or(&Value::Null);
        }
        for s in read.iter().flat_map(|r| &r.servers) {
            if ours.values().any(|v| cl::same_server(v, &s.service)) {
                edit.remove.push(s.name.clone());
                moved.insert(s.name.clone(), table[&s.name].clone());
            } else {
                kept.push(s.name.clone());
            }
        }
    }
    let new = cl::edited(&place, text.as_deref().unwrap_or(""), &edit)?;
    if !moved.is_empty() {
        // Recorded before the client's file changes: never a server lost.
        let record = moved_record(g, client)?;
        let mut all = moved_servers(&record);
        all.extend(moved.clone());
        let body = json!({"path": place.path, "moved": all});
        let before = std::fs::read_to_string(&record).ok();
        cl::write_if_unchanged(&record, before.as_deref(), &format!("{body:#}\n"))?;
    }
    cl::write_if_unchanged(&place.path, text.as_deref(), &new)?;
    println(&format!(
        "{}: mcpvisor's entry written to {}",
        client.name(),
        place.path.display()
    ));
    if !moved.is_empty() {
        let names: Vec<&String> = moved.keys().collect();
        println(&format!(
            "moved to mcpvisor (taken out of the file; `mcpvisor disconnect {}` puts them back): {}",
            client.name(),
            names.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
        ));
    }
    if !kept.is_empty() {
        println(&format!(
            "kept in the file (not in mcpvisor's config; `mcpvisor import {}` first): {}",
            client.name(),
            kept.join(", ")
        ));
    }
    Ok(())
}

/// `disconnect CLIENT...`.
pub fn disconnect(g: &GlobalArgs, a: ClientArgs) -> CliResult<Exit> {
    for client in clients_named(&a.clients)? {
        disconnect_one(g, client)?;
    }
    Ok(Exit::Ok)
}

/// `disconnect` of one client.
fn disconnect_one(g: &GlobalArgs, client: cl::Client) -> CliResult<()> {
    let roots = cl::Roots::from_env()?;
    let place = client.places(&roots).remove(0);
    let Some(read) = cl::read(&place, &roots)? else {
        return Err(CliError::failed(format!(
            "{} has no config file at {}: nothing to disconnect",
            client.name(),
            place.path.display()
        )));
    };
    let record = moved_record(g, client)?;
    let moved = moved_servers(&record);
    let raw = cl::parse(&read.text, place.format, &place.path)?;
    let mut table = &raw;
    for k in &place.keys {
        table = table.get(k).unwrap_or(&Value::Null);
    }
    let mut edit = cl::Edit::default();
    if table.get(cl::ENTRY).is_some() {
        edit.remove.push(cl::ENTRY.to_owned());
    }
    let mut left = Map::new();
    for (name, value) in &moved {
        // A server of that name added since stays as it is; the moved one stays recorded.
        if table.get(name).is_none() {
            edit.put.push((name.clone(), value.clone()));
        } else {
            left.insert(name.clone(), value.clone());
        }
    }
    if edit.remove.is_empty() && edit.put.is_empty() {
        println(&format!("{}: not connected", client.name()));
        return Ok(());
    }
    let new = cl::edited(&place, &read.text, &edit)?;
    cl::write_if_unchanged(&place.path, Some(&read.text), &new)?;
    if left.is_empty() {
        let _ = std::fs::remove_file(&record);
    } else {
        let before = std::fs::read_to_string(&record).ok();
        let body = json!({"path": place.path, "moved": left});
        cl::write_if_unchanged(&record, before.as_deref(), &format!("{body:#}\n"))?;
        let names: Vec<&str> = left.keys().map(String::as_str).collect();
        eprintln!(
            "mcpvisor: not put back, the file has another server of the same name: {} (kept in {})",
            names.join(", "),
            record.display()
        );
    }
    println(&format!(
        "{}: mcpvisor's entry taken out of {}{}",
        client.name(),
        place.path.display(),
        if moved.is_empty() {
            String::new()
        } else {
            let names: Vec<&str> = moved.keys().map(String::as_str).collect();
            format!("; put back: {}", names.join(", "))
        }
    ));
    Ok(())
}
