//! `mcpvisor validate`: check a config file without running anything.

use std::path::Path;

use mcpvisor_model::env::ProcessEnv;
use mcpvisor_model::{parse_file, DependencyGraph, ServicesConfig};
use serde_json::json;

use crate::error::Exit;
use crate::output::{self, println};

/// Prints every error (service, field, message) and returns exit 2, or a summary and 0.
pub fn validate(path: &Path, json_out: bool) -> Exit {
    let shown = path.display().to_string();
    match parse_file(path, &ProcessEnv) {
        Ok(cfg) => {
            if json_out {
                output::print_json(&json!({
                    "ok": true,
                    "file": shown,
                    "services": cfg.services.keys().map(|n| n.to_string()).collect::<Vec<_>>(),
                    "agents": cfg.agents.iter().map(|(a, ag)| (a.to_string(), json!(ag.services.len()))).collect::<serde_json::Map<_, _>>(),
                    "errors": [],
                }));
            } else {
                println(&summary(&shown, &cfg));
            }
            Exit::Ok
        }
        Err(errors) => {
            if json_out {
                let list: Vec<_> = errors
                    .iter()
                    .map(|e| json!({"service": e.service(), "field": e.field(), "message": e.to_string()}))
                    .collect();
                output::print_json(&json!({"ok": false, "file": shown, "errors": list}));
            } else {
                for e in errors.iter() {
                    println(&format!("{shown}: {e}"));
                }
                println(&format!(
                    "{shown}: {} error{}; nothing was started",
                    errors.len(),
                    if errors.len() == 1 { "" } else { "s" }
                ));
            }
            Exit::BadInput
        }
    }
}

/// "F: ok — 2 services; start order: a → b", plus agents.
pub fn summary(shown: &str, cfg: &ServicesConfig) -> String {
    let n = cfg.services.len();
    let mut s = format!("{shown}: ok — {n} service{}", if n == 1 { "" } else { "s" });
    if n > 0 {
        let levels = DependencyGraph::from_specs(cfg.services.values()).start_levels();
        let order: Vec<String> = levels
            .iter()
            .map(|l| {
                l.iter()
                    .map(|x| x.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .collect();
        s.push_str(&format!("; start order: {}", order.join(" → ")));
    }
    for (a, ag) in &cfg.agents {
        s.push_str(&format!("\n  agent {a}: {} service(s)", ag.services.len()));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcpvisor_model::env::MapEnv;
    use mcpvisor_model::parse_str;

    #[test]
    fn the_summary_gives_the_start_order() {
        let cfg = parse_str(
            r#"{"mcpServers": {"api": {"command": "x", "depends_on": ["db"]}, "db": {"command": "x"}}}"#,
            &MapEnv::default(),
        )
        .unwrap();
        assert_eq!(
            summary("f.json", &cfg),
            "f.json: ok — 2 services; start order: db → api"
        );
    }
}
