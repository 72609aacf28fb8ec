//! Everything printed for people: aligned tables, transition lines, details. Colour only when
//! stdout is a terminal (and `NO_COLOR` is unset). Machine output is `--json`, printed as is.

use std::io::{IsTerminal, Write};

use comfy_table::{presets, Attribute, Cell, CellAlignment, Color, ContentArrangement, Table};
use mcpvisor_model::{Event, ServiceState, Timestamp};
use mcpvisor_supervisor::{ServiceView, ToolEntry};
use owo_colors::OwoColorize;
use serde_json::Value;

/// Whether stdout gets colour.
pub fn color_stdout() -> bool {
    std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal()
}

/// Whether stderr is a terminal (progress lines go there only then).
pub fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal()
}

static JSON_LOG: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// `run --log-format json`: [`log`] and [`log_event`] write JSON objects.
pub fn set_json_log() {
    JSON_LOG.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Whether `run` logs JSON.
pub fn json_log() -> bool {
    JSON_LOG.load(std::sync::atomic::Ordering::Relaxed)
}

/// A line of `run`'s log: the text, or `{"at", "message"}` in JSON mode.
pub fn log(text: &str) {
    if JSON_LOG.load(std::sync::atomic::Ordering::Relaxed) {
        let line = serde_json::json!({"at": Timestamp::now(), "message": text});
        println(&line.to_string());
    } else {
        println(text);
    }
}

/// An event in `run`'s log: its line, or the event itself as JSON.
pub fn log_event(e: &Event, color: bool) {
    if JSON_LOG.load(std::sync::atomic::Ordering::Relaxed) {
        println(&serde_json::to_string(e).unwrap_or_default());
    } else {
        println(&event_line(e, color));
    }
}

/// Writes `text` and a newline to stdout. A closed stdout (`mcpvisor status | head -1`) is not
/// an error worth a panic: the output is simply dropped.
pub fn println(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.write_all(b"\n");
    let _ = out.flush();
}

/// Replaces the current terminal line of stdout with `text` (no newline): live counters.
pub fn redraw(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = write!(out, "\r\x1b[2K{text}");
    let _ = out.flush();
}

/// Replaces the current terminal line of stderr with `text` (no newline): progress while
/// waiting.
pub fn redraw_stderr(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "\r\x1b[2K{text}");
    let _ = err.flush();
}

/// Writes `value` as pretty JSON to stdout.
pub fn print_json(value: &Value) {
    println(&serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string()));
}

/// JSON `text` as pretty JSON, the same as [`print_json`] prints its value, but re-encoded as
/// it is read (no tree: `status` of 1,000 services is a megabyte). `text` that is not one JSON
/// value is refused.
pub fn pretty_json(text: &str) -> serde_json::Result<String> {
    let mut pretty = Vec::with_capacity(text.len() * 2);
    let mut de = serde_json::Deserializer::from_str(text);
    serde_transcode::transcode(&mut de, &mut serde_json::Serializer::pretty(&mut pretty))?;
    de.end()?;
    Ok(String::from_utf8_lossy(&pretty).into_owned())
}

/// Writes one compact JSON line to stdout (streams).
pub fn print_json_line(value: &impl serde::Serialize) {
    if let Ok(s) = serde_json::to_string(value) {
        println(&s);
    }
}

/// The table colour of a state.
fn state_color(s: ServiceState) -> Color {
    match s {
        ServiceState::Healthy => Color::Green,
        ServiceState::Warning => Color::Yellow,
        ServiceState::Reconnecting | ServiceState::Unreachable | ServiceState::Failed => Color::Red,
        ServiceState::Starting | ServiceState::Stopping => Color::Cyan,
        ServiceState::NotStarted | ServiceState::Stopped => Color::DarkGrey,
        ServiceState::Idle => Color::Blue,
    }
}

/// A state's name, coloured for a terminal when `color`.
pub fn paint_state(s: ServiceState, color: bool) -> String {
    if !color {
        return s.as_str().to_owned();
    }
    let t = s.as_str();
    match s {
        ServiceState::Healthy => t.green().to_string(),
        ServiceState::Warning => t.yellow().to_string(),
        ServiceState::Reconnecting | ServiceState::Unreachable | ServiceState::Failed => {
            t.red().bold().to_string()
        }
        ServiceState::Starting | ServiceState::Stopping => t.cyan().to_string(),
        ServiceState::NotStarted | ServiceState::Stopped => t.dimmed().to_string(),
        ServiceState::Idle => t.blue().to_string(),
    }
}

/// Narrower terminals (or a pseudo-terminal reporting no size) get unwrapped tables.
const MIN_WRAP_WIDTH: u16 = 60;

fn table(headers: &[&str], color: bool) -> Table {
    let mut t = Table::new();
    t.load_preset(presets::NOTHING);
    if !color {
        t.force_no_tty();
    }
    // Wrap long cells to the terminal's width, when there is a usable one.
    if t.width().is_some_and(|w| w >= MIN_WRAP_WIDTH) {
        t.set_content_arrangement(ContentArrangement::Dynamic);
    }
    t.set_header(headers.iter().map(|h| {
        let c = Cell::new(h);
        if color {
            c.add_attribute(Attribute::Bold)
        } else {
            c
        }
    }));
    // No padding on the left of the first column, one space between columns.
    for col in t.column_iter_mut() {
        col.set_padding((0, 2));
    }
    t
}

fn state_cell(s: ServiceState, color: bool) -> Cell {
    let c = Cell::new(s.as_str());
    if color {
        c.fg(state_color(s))
    } else {
        c
    }
}

fn dash(s: Option<String>) -> String {
    s.filter(|s| !s.is_empty()).unwrap_or_else(|| "-".into())
}

/// Milliseconds as a short age: `850ms`, `12s`, `4m`, `3h`, `2d`.
pub fn short_duration(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0 => format!("{ms}ms"),
        1..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        7200..=172_799 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// The `status` table.
pub fn status_table(views: &[ServiceView], color: bool) -> String {
    if views.is_empty() {
        return "no services; add one with `mcpvisor add NAME -- COMMAND ARGS...`".into();
    }
    let mut t = table(
        &[
            "NAME",
            "STATE",
            "TRANSPORT",
            "TOOLS",
            "RESTARTS",
            "PID",
            "FOR",
            "LAST ERROR",
        ],
        color,
    );
    for v in views {
        let tools = if v.tools_stale {
            format!("{} (stale)", v.tools)
        } else {
            v.tools.to_string()
        };
        t.add_row(vec![
            Cell::new(&v.name),
            state_cell(v.state, color),
            Cell::new(v.transport.as_str()),
            Cell::new(tools).set_alignment(CellAlignment::Right),
            Cell::new(v.restarts).set_alignment(CellAlignment::Right),
            Cell::new(dash(v.pid.map(|p| p.to_string()))),
            Cell::new(short_duration(v.state_for_ms)),
            Cell::new(dash(v.last_error.clone())),
        ]);
    }
    format!("{}\n{}", trim_lines(&t.to_string()), footer(views))
}

/// "3/4 up (2 healthy, 1 warning)": `warning` is up but not healthy, and says so; idle
/// services (lazy, or stopped for want of calls) are counted apart: "1/3 up (1 healthy), 2 idle".
fn footer(views: &[ServiceView]) -> String {
    let count = |s: ServiceState| views.iter().filter(|v| v.state == s).count();
    let up = views.iter().filter(|v| v.state.is_up()).count();
    let warning = count(ServiceState::Warning);
    let healthy = count(ServiceState::Healthy);
    let idle = count(ServiceState::Idle);
    let mut out = if warning == 0 {
        format!("{up}/{} up ({healthy} healthy)", views.len())
    } else {
        format!(
            "{up}/{} up ({healthy} healthy, {warning} warning)",
            views.len()
        )
    };
    if idle > 0 {
        out.push_str(&format!(", {idle} idle"));
    }
    out
}

/// One service in detail (`status NAME`).
pub fn service_detail(v: &ServiceView, color: bool) -> String {
    let mut out = Vec::new();
    out.push(format!("name:       {}", v.name));
    out.push(format!(
        "state:      {} for {}{}",
        paint_state(v.state, color),
        short_duration(v.state_for_ms),
        if v.reason.is_empty() {
            String::new()
        } else {
            format!(" ({})", v.reason)
        }
    ));
    out.push(format!("transport:  {}", v.transport));
    if let Some(s) = &v.server {
        out.push(format!(
            "server:     {} {} (protocol {})",
            s.name, s.version, s.protocol_version
        ));
    }
    out.push(format!(
        "tools:      {}{}",
        v.tools,
        if v.tools_stale { " (last known)" } else { "" }
    ));
    out.push(format!(
        "pid:        {}",
        dash(v.pid.map(|p| p.to_string()))
    ));
    if let Some(s) = &v.sandbox {
        out.push(format!("sandbox:    {}", sandbox_summary(s)));
    }
    out.push(format!("restarts:   {}", v.restarts));
    out.push(format!("last error: {}", dash(v.last_error.clone())));
    let m = &v.metrics;
    out.push(format!(
        "calls:      {} ({} failed), probes {} ({} failed), availability {}",
        m.calls,
        m.call_errors,
        m.probes,
        m.probe_failures,
        m.availability_pct
            .map(|a| format!("{a:.1}%"))
            .unwrap_or_else(|| "-".into())
    ));
    out.push(format!(
        "config:     {}",
        serde_json::to_string(&v.config).unwrap_or_default()
    ));
    if !v.stderr_tail.is_empty() {
        out.push("stderr (last lines):".into());
        for l in &v.stderr_tail {
            out.push(format!("  {l}"));
        }
    }
    out.join("\n")
}

/// A table of plain text rows (first line of each cell, at most 80 characters).
pub fn plain_table<const N: usize>(headers: &[&str], rows: &[[String; N]]) -> String {
    if rows.is_empty() {
        return "none".into();
    }
    let mut t = table(headers, color_stdout());
    for r in rows {
        t.add_row(r.iter().map(|c| {
            let first = c.lines().next().unwrap_or("");
            let short: String = if first.chars().count() > 80 {
                first.chars().take(77).collect::<String>() + "..."
            } else {
                first.to_owned()
            };
            Cell::new(short)
        }));
    }
    trim_lines(&t.to_string())
}

/// The `tools` table.
pub fn tools_table(tools: &[ToolEntry], color: bool) -> String {
    if tools.is_empty() {
        return "no tools".into();
    }
    let mut t = table(&["TOOL", "SERVICE", "DESCRIPTION"], color);
    for e in tools {
        let mut desc = e
            .tool
            .description
            .as_deref()
            .and_then(|d| d.lines().next())
            .unwrap_or("")
            .to_owned();
        if desc.chars().count() > 80 {
            desc = desc.chars().take(77).collect::<String>() + "...";
        }
        if e.stale {
            desc = format!("(last known) {desc}");
        }
        t.add_row(vec![
            Cell::new(&e.name),
            Cell::new(e.service.to_string()),
            Cell::new(desc),
        ]);
    }
    trim_lines(&t.to_string())
}

/// The `check` table; rows are `{name, ok, latency_ms, state, detail}`.
pub fn check_table(rows: &[Value], color: bool) -> String {
    if rows.is_empty() {
        return "no services".into();
    }
    let mut t = table(
        &["NAME", "PROBE", "LATENCY", "STATE", "DETAIL", "SANDBOX"],
        color,
    );
    for r in rows {
        let ok = r["ok"].as_bool().unwrap_or(false);
        let state = r["state"]
            .as_str()
            .and_then(ServiceState::parse)
            .unwrap_or(ServiceState::NotStarted);
        let probe = if ok {
            "ok"
        } else if check_skipped(state) {
            "skipped"
        } else {
            "FAILED"
        };
        let probe_cell = match (color, ok) {
            (false, _) => Cell::new(probe),
            (true, true) => Cell::new(probe).fg(Color::Green),
            (true, false) => Cell::new(probe).fg(Color::Red),
        };
        t.add_row(vec![
            Cell::new(r["name"].as_str().unwrap_or("?")),
            probe_cell,
            Cell::new(format!("{:.1}ms", r["latency_ms"].as_f64().unwrap_or(0.0)))
                .set_alignment(CellAlignment::Right),
            state_cell(state, color),
            Cell::new(dash(r["detail"].as_str().map(str::to_owned))),
            Cell::new(dash(
                r.get("sandbox")
                    .filter(|s| !s.is_null())
                    .map(sandbox_summary),
            )),
        ]);
    }
    trim_lines(&t.to_string())
}

/// A running server's sandbox in one line: each part, its limit and what enforces it, and
/// what this machine could not give.
pub fn sandbox_summary(s: &Value) -> String {
    let mut parts = Vec::new();
    if let Some(fs) = s.get("filesystem") {
        let n = |k: &str| fs[k].as_array().map_or(0, Vec::len);
        parts.push(format!(
            "files: {} folders read, {} written ({})",
            n("read"),
            n("write"),
            fs["enforced_by"].as_str().unwrap_or("?")
        ));
    }
    if let Some(net) = s.get("network").and_then(Value::as_str) {
        parts.push(format!("network: {net}"));
    }
    for (key, word, limit) in [
        ("memory", "memory", "limit"),
        ("processes", "processes", "limit"),
        ("cpu", "cores", "cores"),
        ("open_files", "open files", "limit"),
    ] {
        if let Some(p) = s.get(key) {
            let value = match &p[limit] {
                Value::String(t) => t.clone(),
                other => other.to_string(),
            };
            parts.push(format!(
                "{word}: {value} ({})",
                p["enforced_by"].as_str().unwrap_or("?")
            ));
        }
    }
    if let Some(missing) = s.get("missing").and_then(Value::as_array) {
        let missing: Vec<&str> = missing.iter().filter_map(Value::as_str).collect();
        parts.push(format!("NOT GIVEN: {}", missing.join("; ")));
    }
    parts.join(", ")
}

/// A probe of a service that is not meant to run (stopped, not started) is not a failure.
pub fn check_skipped(state: ServiceState) -> bool {
    matches!(
        state,
        ServiceState::NotStarted | ServiceState::Stopped | ServiceState::Stopping
    )
}

/// One line per event: time, service, from → to, reason.
pub fn event_line(e: &Event, color: bool) -> String {
    let time = |at: &Timestamp| {
        let t = at.rfc3339();
        if color {
            t.dimmed().to_string()
        } else {
            t
        }
    };
    match e {
        Event::StateChanged {
            service,
            from,
            to,
            reason,
            at,
        } => {
            let mut s = format!(
                "{}  {}  {} → {}",
                time(at),
                if color {
                    service.to_string().bold().to_string()
                } else {
                    service.to_string()
                },
                paint_state(*from, color),
                paint_state(*to, color)
            );
            if !reason.is_empty() {
                s.push_str(&format!("  ({reason})"));
            }
            s
        }
        Event::ToolsChanged { service, count, at } => {
            format!("{}  {service}  tools: {count}", time(at))
        }
        Event::ConfigChanged {
            service,
            change,
            at,
        } => {
            let what = serde_json::to_value(change)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            format!("{}  {service}  config {what}", time(at))
        }
        Event::PersistenceError { path, message, at } => {
            format!("{}  cannot write {path}: {message}", time(at))
        }
        Event::PersistenceRecovered { path, at } => {
            format!("{}  writing {path} works again", time(at))
        }
        Event::Lagged { missed } => format!("... {missed} events missed (output too slow)"),
        Event::ListChanged { service, list, at } => {
            format!("{}  {service}  {list} changed", time(at))
        }
        Event::ResourceUpdated { service, uri, at } => {
            format!("{}  {service}  resource updated: {uri}", time(at))
        }
        Event::ServerLog {
            service,
            level,
            logger,
            data,
            at,
        } => {
            let text = match data {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let from = logger.as_deref().map(|l| format!(" {l}:")).unwrap_or_default();
            format!("{}  {service}  [{level}]{from} {text}", time(at))
        }
        Event::AlertSent {
            rule,
            service,
            notice,
            action,
            attempts,
            at,
        } => {
            let tries = if *attempts > 1 {
                format!(" (after {attempts} attempts)")
            } else {
                String::new()
            };
            format!(
                "{}  {service}  alert '{rule}' {notice}: {action} delivered{tries}",
                time(at)
            )
        }
        Event::AlertFailed {
            rule,
            service,
            notice,
            action,
            error,
            attempts,
            at,
        } => format!(
            "{}  {service}  alert '{rule}' {notice}: {action} failed after {attempts} attempts: {error}",
            time(at)
        ),
        #[allow(unreachable_patterns)]
        other => serde_json::to_string(other).unwrap_or_default(),
    }
}

/// A tool result for people: its text contents, one after the other; other contents and
/// structured content as JSON.
pub fn call_text(result: &Value) -> String {
    let mut parts = Vec::new();
    if let Some(items) = result.get("content").and_then(Value::as_array) {
        for item in items {
            match (item.get("type").and_then(Value::as_str), item.get("text")) {
                (Some("text"), Some(Value::String(t))) => parts.push(t.clone()),
                _ => parts.push(serde_json::to_string_pretty(item).unwrap_or_default()),
            }
        }
    }
    if parts.is_empty() {
        if let Some(s) = result.get("structuredContent") {
            parts.push(serde_json::to_string_pretty(s).unwrap_or_default());
        }
    }
    parts.join("\n")
}

/// comfy-table pads every cell; drop the trailing spaces.
fn trim_lines(s: &str) -> String {
    s.lines().map(str::trim_end).collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcpvisor_model::{ServiceId, ServiceName};
    use serde_json::json;

    #[test]
    fn pretty_json_of_text_is_the_pretty_json_of_its_value() {
        let v = json!({
            "z": [1, -2, 3.5, 1e300, null, true, "é\"\n"],
            "a": {}, "e": [], "n": {"k": [{"x": u64::MAX}]}
        });
        let text = v.to_string();
        assert_eq!(
            pretty_json(&text).unwrap(),
            serde_json::to_string_pretty(&v).unwrap()
        );
        assert!(pretty_json("{\"a\": 1} trailing").is_err());
        assert!(pretty_json("{\"a\":").is_err());
    }

    #[test]
    fn the_status_footer_does_not_count_warning_as_healthy() {
        let view = |name: &str, state: ServiceState| -> ServiceView {
            serde_json::from_value(json!({
                "id": {"name": name}, "name": name, "state": state, "reason": "",
                "transport": "stdio", "tools": 0, "tools_stale": false, "restarts": 0,
                "pid": null, "last_error": null, "config": {}, "server": null,
                "metrics": mcpvisor_model::MetricsSnapshot::default(), "state_for_ms": 0
            }))
            .expect("a view")
        };
        let views = [
            view("a", ServiceState::Healthy),
            view("b", ServiceState::Warning),
            view("c", ServiceState::Reconnecting),
        ];
        assert_eq!(footer(&views), "2/3 up (1 healthy, 1 warning)");
        assert_eq!(footer(&views[..1]), "1/1 up (1 healthy)");
        let with_idle = [
            view("a", ServiceState::Healthy),
            view("b", ServiceState::Idle),
            view("c", ServiceState::Idle),
        ];
        assert_eq!(footer(&with_idle), "1/3 up (1 healthy), 2 idle");
    }

    #[test]
    fn a_transition_line_has_time_service_from_to_and_reason() {
        let e = Event::StateChanged {
            service: ServiceId::global(ServiceName::parse("db").unwrap()),
            from: ServiceState::Healthy,
            to: ServiceState::Reconnecting,
            reason: "child exited: signal 9".into(),
            at: Timestamp(1_700_000_000_123),
        };
        assert_eq!(
            event_line(&e, false),
            "2023-11-14T22:13:20.123Z  db  healthy → reconnecting  (child exited: signal 9)"
        );
    }

    #[test]
    fn tool_results_print_their_text() {
        let r =
            json!({"content": [{"type": "text", "text": "hi"}, {"type": "text", "text": "there"}]});
        assert_eq!(call_text(&r), "hi\nthere");
        let r = json!({"content": [], "structuredContent": {"a": 1}});
        assert_eq!(call_text(&r), "{\n  \"a\": 1\n}");
    }

    #[test]
    fn ages_are_short() {
        assert_eq!(short_duration(850), "850ms");
        assert_eq!(short_duration(12_000), "12s");
        assert_eq!(short_duration(600_000), "10m");
        assert_eq!(short_duration(3 * 3_600_000), "3h");
        assert_eq!(short_duration(3 * 86_400_000), "3d");
    }

    #[test]
    fn the_check_table_aligns_columns_without_colour() {
        let rows = vec![
            json!({"name": "a", "ok": true, "latency_ms": 1.25, "state": "healthy", "detail": ""}),
            json!({"name": "long-name", "ok": false, "latency_ms": 0.0, "state": "stopped", "detail": ""}),
        ];
        let t = check_table(&rows, false);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3, "{t}");
        assert!(lines[0].starts_with("NAME"), "{t}");
        let col = lines[0].find("PROBE").unwrap();
        assert_eq!(&lines[1][col..col + 2], "ok", "{t}");
        assert_eq!(&lines[2][col..col + 7], "skipped", "{t}");
        assert!(!t.contains('\u{1b}'), "no escape codes without colour");
    }
}
