//! `mcpvisor top`: a live dashboard of the running instance (ratatui). It reads `status` over
//! the control socket once per `--interval`, keeps a short history per service for its
//! sparklines, and turns keys into `start`, `stop`, `restart` and `logs` requests.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossterm::event::{Event as TermEvent, KeyEventKind};
use mcpvisor_supervisor::ServiceView;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::args::{GlobalArgs, TopArgs};
use crate::client::Client;
use crate::error::{CliError, CliResult};
use crate::protocol::Request;
use crate::Exit;

pub mod draw;
pub mod model;

use model::{Action, Dashboard};

/// Runs the dashboard until `q`, Esc or Ctrl-C.
pub async fn top(g: &GlobalArgs, a: TopArgs) -> CliResult<Exit> {
    if !std::io::stdout().is_terminal() {
        return Err(CliError::bad_input(
            "top draws on a terminal; off one, use `mcpvisor status --json` or `mcpvisor events --json`",
        ));
    }
    let (client, socket) = crate::commands::instance(
        g,
        "top needs one: start it with `mcpvisor run --config FILE` (or pass the --state-dir it \
         uses)",
    )
    .await?;
    let mut terminal = ratatui::init();
    let stop = Arc::new(AtomicBool::new(false));
    let keys = read_keys(stop.clone());
    let result = run(&mut terminal, client, &socket, keys, a.interval).await;
    stop.store(true, Ordering::Relaxed);
    ratatui::restore();
    result.map(|()| Exit::Ok)
}

/// Terminal events from a thread (crossterm's reads block), until `stop`.
fn read_keys(stop: Arc<AtomicBool>) -> mpsc::UnboundedReceiver<TermEvent> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            match crossterm::event::poll(Duration::from_millis(100)) {
                Ok(true) => match crossterm::event::read() {
                    Ok(e) => {
                        if tx.send(e).is_err() {
                            return;
                        }
                    }
                    Err(_) => return,
                },
                Ok(false) => {}
                Err(_) => return,
            }
        }
    });
    rx
}

async fn run(
    terminal: &mut ratatui::DefaultTerminal,
    mut client: Client,
    socket: &std::path::Path,
    mut keys: mpsc::UnboundedReceiver<TermEvent>,
    interval: Duration,
) -> CliResult<()> {
    let mut d = Dashboard::default();
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut connected = true;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if !connected {
                    if let Ok(c) = Client::connect(socket).await {
                        client = c;
                        connected = true;
                    }
                }
                if connected {
                    connected = refresh(&mut client, &mut d).await;
                }
            }
            key = keys.recv() => {
                let Some(TermEvent::Key(k)) = key else {
                    if key.is_none() {
                        return Ok(());
                    }
                    draw(terminal, &d)?;
                    continue;
                };
                if k.kind != KeyEventKind::Press {
                    continue;
                }
                match d.key(k) {
                    Some(Action::Quit) => return Ok(()),
                    Some(action) if connected => {
                        d.message = describe(&action, "…");
                        draw(terminal, &d)?;
                        act(&mut client, &mut d, action).await;
                        connected = refresh(&mut client, &mut d).await;
                    }
                    Some(_) => d.message = "not connected to the instance".into(),
                    None => {}
                }
            }
        }
        draw(terminal, &d)?;
    }
}

fn draw(terminal: &mut ratatui::DefaultTerminal, d: &Dashboard) -> CliResult<()> {
    terminal
        .draw(|f| draw::draw(f, d))
        .map(|_| ())
        .map_err(|e| CliError::failed(format!("cannot draw on the terminal: {e}")))
}

/// Reads the services; false (and a message) when the instance went away.
async fn refresh(client: &mut Client, d: &mut Dashboard) -> bool {
    match client.request(&Request::Status { name: None }).await {
        Ok(v) => match serde_json::from_str::<Vec<ServiceView>>(v.get()) {
            Ok(views) => {
                d.update(views);
                true
            }
            Err(e) => {
                d.message = format!("cannot read the instance's answer: {e}");
                true
            }
        },
        Err(e) => {
            d.message = format!("lost the instance ({e}); retrying");
            false
        }
    }
}

fn describe(action: &Action, outcome: &str) -> String {
    match action {
        Action::Start(n) => format!("start {n}: {outcome}"),
        Action::Stop(n) => format!("stop {n}: {outcome}"),
        Action::Restart(n) => format!("restart {n}: {outcome}"),
        Action::Logs(n) => format!("logs of {n}: {outcome}"),
        Action::Quit => String::new(),
    }
}

async fn act(client: &mut Client, d: &mut Dashboard, action: Action) {
    let req = match &action {
        Action::Start(name) => Request::Start {
            name: name.clone(),
            wait: false,
        },
        Action::Stop(name) => Request::Stop {
            name: name.clone(),
            force: false,
        },
        Action::Restart(name) => Request::Restart {
            name: name.clone(),
            wait: false,
        },
        Action::Logs(name) => Request::Logs {
            name: name.clone(),
            lines: Some(200),
        },
        Action::Quit => return,
    };
    match client.request_value(&req).await {
        Ok(v) => {
            if let Action::Logs(name) = &action {
                let lines = v
                    .get("lines")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|l| l.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                d.logs = Some((name.clone(), lines));
                d.message.clear();
            } else {
                d.message = describe(&action, "done");
            }
        }
        Err(e) => d.message = describe(&action, &e.to_string()),
    }
}

#[cfg(test)]
mod tests;
