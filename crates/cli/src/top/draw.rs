//! Drawing the dashboard: the services table (state, time in state, restarts, tools, calls, call
//! p50/p95, availability and an up/down history), a pane for the selected service (reason, last
//! error and a call-latency sparkline — or its logs), and a key line.

use mcpvisor_model::ServiceState;
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Sparkline, Table, TableState, Wrap};
use ratatui::Frame;

use super::model::{Dashboard, Sample, HISTORY};
use crate::output::short_duration;

fn state_style(s: ServiceState) -> Style {
    let c = match s {
        ServiceState::Healthy => Color::Green,
        ServiceState::Warning => Color::Yellow,
        ServiceState::Reconnecting | ServiceState::Unreachable | ServiceState::Failed => Color::Red,
        ServiceState::Starting | ServiceState::Stopping => Color::Cyan,
        ServiceState::Idle => Color::Blue,
        ServiceState::NotStarted | ServiceState::Stopped => Color::DarkGray,
    };
    Style::default().fg(c)
}

fn ms(v: Option<f64>) -> String {
    match v {
        Some(x) if x < 10.0 => format!("{x:.2}ms"),
        Some(x) => format!("{x:.0}ms"),
        None => "-".into(),
    }
}

/// The last `width` samples as one character each: up `▇`, down `▁`, not asked to run `·`.
pub fn history_line(samples: Option<&std::collections::VecDeque<Sample>>, width: usize) -> String {
    let Some(h) = samples else {
        return String::new();
    };
    h.iter()
        .skip(h.len().saturating_sub(width))
        .map(|s| match s.up {
            Some(true) => '▇',
            Some(false) => '▁',
            None => '·',
        })
        .collect()
}

/// Draws the whole screen.
pub fn draw(frame: &mut Frame, d: &Dashboard) {
    let [head, table, pane, keys] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(8),
        Constraint::Length(1),
    ])
    .areas(frame.area());

    let up = d.services.iter().filter(|v| v.state.is_up()).count();
    let idle = d
        .services
        .iter()
        .filter(|v| v.state == ServiceState::Idle)
        .count();
    let mut title = format!("mcpvisor top — {up}/{} up", d.services.len());
    if idle > 0 {
        title.push_str(&format!(", {idle} idle"));
    }
    frame.render_widget(
        Paragraph::new(title).style(Style::default().add_modifier(Modifier::BOLD)),
        head,
    );

    const HISTORY_COLS: usize = 20;
    let header = Row::new([
        "SERVICE", "STATE", "FOR", "RESTARTS", "TOOLS", "CALLS", "P50", "P95", "AVAIL", "HISTORY",
    ])
    .style(Style::default().add_modifier(Modifier::BOLD));
    let rows = d.services.iter().map(|v| {
        let m = &v.metrics;
        Row::new([
            Cell::new(v.name.clone()),
            Cell::new(v.state.as_str()).style(state_style(v.state)),
            Cell::new(short_duration(v.state_for_ms)),
            Cell::new(v.restarts.to_string()),
            Cell::new(v.tools.to_string()),
            Cell::new(m.calls.to_string()),
            Cell::new(ms(m.call_latency.p50_ms)),
            Cell::new(ms(m.call_latency.p95_ms)),
            Cell::new(
                m.availability_pct
                    .map(|a| format!("{a:.1}%"))
                    .unwrap_or_else(|| "-".into()),
            ),
            Cell::new(history_line(d.history.get(&v.name), HISTORY_COLS)),
        ])
    });
    let widths = [
        Constraint::Min(10),
        Constraint::Length(12),
        Constraint::Length(6),
        Constraint::Length(8),
        Constraint::Length(5),
        Constraint::Length(7),
        Constraint::Length(8),
        Constraint::Length(8),
        Constraint::Length(7),
        Constraint::Length(HISTORY_COLS as u16),
    ];
    let mut state = TableState::default().with_selected(Some(d.selected));
    frame.render_stateful_widget(
        Table::new(rows, widths)
            .header(header)
            .row_highlight_style(Style::default().add_modifier(Modifier::REVERSED))
            .highlight_symbol("> ")
            .block(Block::default().borders(Borders::TOP | Borders::BOTTOM)),
        table,
        &mut state,
    );

    if let Some((service, lines)) = &d.logs {
        let text: Vec<Line> = if lines.is_empty() {
            vec![Line::from("(nothing on stderr)")]
        } else {
            let keep = usize::from(pane.height.saturating_sub(2));
            lines
                .iter()
                .skip(lines.len().saturating_sub(keep))
                .map(|l| Line::from(l.clone()))
                .collect()
        };
        frame.render_widget(
            Paragraph::new(text).block(
                Block::default()
                    .borders(Borders::ALL)
                    .title(format!(" {service}: stderr (l or Esc closes) ")),
            ),
            pane,
        );
    } else if let Some(v) = d.services.get(d.selected) {
        let [words, spark] =
            Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)])
                .areas(pane);
        let mut lines = vec![Line::from(vec![
            Span::styled(v.state.as_str(), state_style(v.state)),
            Span::raw(format!(": {}", v.reason)),
        ])];
        if let Some(e) = &v.last_error {
            lines.push(Line::from(format!("last error: {e}")));
        }
        if let Some(pid) = v.pid {
            lines.push(Line::from(format!("pid {pid}, {}", v.transport)));
        } else {
            lines.push(Line::from(v.transport.to_string()));
        }
        frame.render_widget(
            Paragraph::new(lines).wrap(Wrap { trim: true }).block(
                Block::default()
                    .borders(Borders::ALL)
                    .title(format!(" {} ", v.name)),
            ),
            words,
        );
        let points: Vec<u64> = d
            .history
            .get(&v.name)
            .map(|h| {
                h.iter()
                    .map(|s| s.p50_ms.map(|x| (x * 1000.0) as u64).unwrap_or(0))
                    .collect()
            })
            .unwrap_or_default();
        frame.render_widget(
            Sparkline::default()
                .data(&points)
                .style(Style::default().fg(Color::Cyan))
                .block(
                    Block::default()
                        .borders(Borders::ALL)
                        .title(format!(" call p50, last {HISTORY} reads ")),
                ),
            spark,
        );
    }

    let mut help = "↑/↓ select  s start  x stop  r restart  l logs  q quit".to_owned();
    if !d.message.is_empty() {
        help.push_str("   ");
        help.push_str(&d.message);
    }
    frame.render_widget(Paragraph::new(help), keys);
}
