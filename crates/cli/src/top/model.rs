//! The dashboard's state, without a terminal: the services as last read, a short history per
//! service for its sparklines, the selection, the logs pane, and what each key does.

use std::collections::{HashMap, VecDeque};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use mcpvisor_supervisor::ServiceView;

/// Samples kept per service (one per refresh).
pub const HISTORY: usize = 60;

/// One refresh of one service.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// `Some(up)` while asked to run; `None` when stopped, idle or not started.
    pub up: Option<bool>,
    /// Call p50 then, in milliseconds.
    pub p50_ms: Option<f64>,
}

/// What a key asks the instance for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start the service.
    Start(String),
    /// Stop it (gracefully).
    Stop(String),
    /// Stop then start it.
    Restart(String),
    /// Show its stderr.
    Logs(String),
    /// Leave.
    Quit,
}

/// The dashboard.
#[derive(Debug, Default)]
pub struct Dashboard {
    /// The services, sorted by name.
    pub services: Vec<ServiceView>,
    /// The last [`HISTORY`] reads of each service.
    pub history: HashMap<String, VecDeque<Sample>>,
    /// The selected row.
    pub selected: usize,
    /// The logs pane: service and lines, while open.
    pub logs: Option<(String, Vec<String>)>,
    /// The last action's outcome, or why the instance cannot be read.
    pub message: String,
}

impl Dashboard {
    /// A new read of the services.
    pub fn update(&mut self, mut views: Vec<ServiceView>) {
        views.sort_by(|a, b| a.name.cmp(&b.name));
        let selected = self.selected_name();
        for v in &views {
            let h = self.history.entry(v.name.clone()).or_default();
            if h.len() == HISTORY {
                h.pop_front();
            }
            h.push_back(Sample {
                up: v.state.availability(),
                p50_ms: v.metrics.call_latency.p50_ms,
            });
        }
        self.history
            .retain(|name, _| views.iter().any(|v| &v.name == name));
        self.services = views;
        // The selection follows the service, not the row.
        self.selected = selected
            .and_then(|n| self.services.iter().position(|v| v.name == n))
            .unwrap_or(self.selected)
            .min(self.services.len().saturating_sub(1));
    }

    /// The selected service's name.
    pub fn selected_name(&self) -> Option<String> {
        self.services.get(self.selected).map(|v| v.name.clone())
    }

    /// A key: moves the selection or opens/closes the logs here; what the instance must do is
    /// returned.
    pub fn key(&mut self, key: KeyEvent) -> Option<Action> {
        if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
            return Some(Action::Quit);
        }
        let name = self.selected_name();
        match key.code {
            KeyCode::Char('q') => Some(Action::Quit),
            KeyCode::Esc if self.logs.is_some() => {
                self.logs = None;
                None
            }
            KeyCode::Esc => Some(Action::Quit),
            KeyCode::Down | KeyCode::Char('j') => {
                if self.selected + 1 < self.services.len() {
                    self.selected += 1;
                }
                self.logs = None;
                None
            }
            KeyCode::Up | KeyCode::Char('k') => {
                self.selected = self.selected.saturating_sub(1);
                self.logs = None;
                None
            }
            KeyCode::Char('s') => name.map(Action::Start),
            KeyCode::Char('x') => name.map(Action::Stop),
            KeyCode::Char('r') => name.map(Action::Restart),
            KeyCode::Char('l') | KeyCode::Enter => {
                if self.logs.is_some() {
                    self.logs = None;
                    None
                } else {
                    name.map(Action::Logs)
                }
            }
            _ => None,
        }
    }
}
