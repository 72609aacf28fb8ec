//! `Store::apply`: reconcile the running fleet to a desired configuration as a diff.
//!
//! [`diff`] (pure) compares the running configuration with the desired one: services that
//! appeared are added, services that disappeared are removed, services whose object as written
//! differs are updated (restarted only if where or how they run changed); the others are not
//! touched. `run --watch` applies every valid edit of the config file through it.

use mcpvisor_model::ServicesConfig;
use serde_json::{Map, Value};

use crate::{ServiceInput, Store, StoreError, Wait};

/// One service that changed: its scope, its name and its object as written.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The agent owning it, or `None` for the store's own services.
    pub agent: Option<String>,
    /// Its name within the scope.
    pub name: String,
    /// Its new object (for removals: the old one).
    pub raw: Map<String, Value>,
}

impl Change {
    /// `name` or `agent/name`.
    pub fn display(&self) -> String {
        match &self.agent {
            Some(a) => format!("{a}/{}", self.name),
            None => self.name.clone(),
        }
    }
}

/// What differs between the running configuration and the desired one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Diff {
    /// In the file, not running.
    pub added: Vec<Change>,
    /// Running, not in the file.
    pub removed: Vec<Change>,
    /// In both, with a different object.
    pub updated: Vec<Change>,
    /// `defaults` or `supervisor` differ (applied to services added or updated from now on).
    pub settings_changed: bool,
}

impl Diff {
    /// Nothing to do.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.updated.is_empty()
            && !self.settings_changed
    }
}

type Scoped<'a> = Vec<(Option<String>, Vec<(String, &'a Map<String, Value>)>)>;

fn scopes(c: &ServicesConfig) -> Scoped<'_> {
    let mut out = vec![(
        None,
        c.services
            .iter()
            .map(|(n, s)| (n.to_string(), &s.raw))
            .collect(),
    )];
    for (a, ag) in &c.agents {
        out.push((
            Some(a.to_string()),
            ag.services
                .iter()
                .map(|(n, s)| (n.to_string(), &s.raw))
                .collect(),
        ));
    }
    out
}

/// What to do to turn `running` into `wanted`.
pub fn diff(running: &ServicesConfig, wanted: &ServicesConfig) -> Diff {
    let mut d = Diff::default();
    let old = scopes(running);
    let new = scopes(wanted);
    let find =
        |set: &Scoped<'_>, agent: &Option<String>, name: &str| -> Option<Map<String, Value>> {
            set.iter()
                .find(|(a, _)| a == agent)
                .and_then(|(_, svcs)| svcs.iter().find(|(n, _)| n == name))
                .map(|(_, raw)| (*raw).clone())
        };
    for (agent, svcs) in &new {
        for (name, raw) in svcs {
            let change = Change {
                agent: agent.clone(),
                name: name.clone(),
                raw: (*raw).clone(),
            };
            match find(&old, agent, name) {
                None => d.added.push(change),
                Some(before) if before != **raw => d.updated.push(change),
                Some(_) => {}
            }
        }
    }
    for (agent, svcs) in &old {
        for (name, raw) in svcs {
            if find(&new, agent, name).is_none() {
                d.removed.push(Change {
                    agent: agent.clone(),
                    name: name.clone(),
                    raw: (*raw).clone(),
                });
            }
        }
    }
    d.settings_changed = running.defaults != wanted.defaults
        || running.extra.get("supervisor") != wanted.extra.get("supervisor");
    d
}

fn scope(store: &Store, agent: &Option<String>) -> Result<Store, StoreError> {
    match agent {
        None => Ok(store.clone()),
        Some(a) => store.for_agent(a),
    }
}

/// Applies `d`: additions (as one batch per scope, so dependencies among them resolve), then
/// updates, then removals (dependents first). Returns one line per thing done or refused.
pub(crate) async fn apply(store: &Store, d: Diff) -> Vec<String> {
    let mut lines = Vec::new();
    let mut agents: Vec<Option<String>> = Vec::new();
    for c in &d.added {
        if !agents.contains(&c.agent) {
            agents.push(c.agent.clone());
        }
    }
    for agent in agents {
        let batch: Map<String, Value> = d
            .added
            .iter()
            .filter(|c| c.agent == agent)
            .map(|c| (c.name.clone(), Value::Object(c.raw.clone())))
            .collect();
        let mut doc = Map::new();
        doc.insert("mcpServers".into(), Value::Object(batch));
        let result = match scope(store, &agent) {
            Ok(s) => {
                s.add_service(ServiceInput::Json(Value::Object(doc)), Wait::None)
                    .await
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(report) => {
                for n in report.added {
                    lines.push(format!("added {n}"));
                }
                for (n, why) in report.failed {
                    lines.push(format!("cannot add {n}: {}", why.join("; ")));
                }
            }
            Err(e) => lines.push(format!("cannot add: {e}")),
        }
    }
    for c in &d.updated {
        let r = match scope(store, &c.agent) {
            Ok(s) => {
                s.update_service(&c.name, Value::Object(c.raw.clone()))
                    .await
            }
            Err(e) => Err(e),
        };
        lines.push(match r {
            Ok(true) => format!("updated {} (restarted)", c.display()),
            Ok(false) => format!("updated {} (applied without a restart)", c.display()),
            Err(e) => format!("cannot update {}: {e}", c.display()),
        });
    }
    let mut pending: Vec<&Change> = d.removed.iter().collect();
    // Each pass removes at least one service or stops: at most d.removed.len() passes.
    for _ in 0..d.removed.len() {
        let before = pending.len();
        let mut blocked = Vec::new();
        let mut refusals = Vec::new();
        for c in pending {
            let r = match scope(store, &c.agent) {
                Ok(s) => s.remove_service(&c.name).await,
                Err(e) => Err(e),
            };
            match r {
                Ok(()) => lines.push(format!("removed {}", c.display())),
                Err(e @ StoreError::InUse { .. }) => {
                    refusals.push(format!("cannot remove {}: {e}", c.display()));
                    blocked.push(c);
                }
                Err(e) => lines.push(format!("cannot remove {}: {e}", c.display())),
            }
        }
        let stuck = blocked.len() == before;
        pending = blocked;
        if pending.is_empty() {
            break;
        }
        if stuck {
            lines.extend(refusals);
            break;
        }
    }
    if d.settings_changed {
        lines.push(
            "defaults/supervisor changed: they apply to services added or updated from now on; \
             restart `mcpvisor run` to apply them to every service"
                .into(),
        );
    }
    lines
}

impl Store {
    /// Reconciles the fleet to `wanted` as a diff: adds what appeared (one batch per scope, so
    /// dependencies among them resolve), updates what changed (restarting only services whose
    /// endpoint changed), removes what disappeared (dependents first), leaves the rest alone.
    /// Returns one line per thing done or refused, in the user's terms; an empty list means
    /// nothing differed.
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), mcpvisor_supervisor::StoreError> {
    /// use mcpvisor_supervisor::{model, Store, StoreOptions};
    /// let store = Store::open(StoreOptions::new()).await?;
    /// let text = r#"{"mcpServers": {"a": {"command": "a-mcp", "disabled": true}}}"#;
    /// let wanted = model::parse_str(text, &model::env::ProcessEnv).expect("valid");
    /// assert_eq!(store.apply(&wanted).await?, ["added a"]);
    /// assert!(store.apply(&wanted).await?.is_empty(), "nothing differs any more");
    /// store.shutdown().await;
    /// # Ok(()) }
    /// ```
    pub async fn apply(&self, wanted: &ServicesConfig) -> Result<Vec<String>, StoreError> {
        let running = self.config().await?;
        let d = diff(&running, wanted);
        if d.is_empty() {
            return Ok(Vec::new());
        }
        Ok(apply(self, d).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcpvisor_model::env::MapEnv;
    use mcpvisor_model::parse_str;

    fn cfg(text: &str) -> ServicesConfig {
        parse_str(text, &MapEnv::default()).unwrap()
    }

    #[test]
    fn only_services_whose_object_changed_are_touched() {
        let running = cfg(r#"{"mcpServers": {
            "keep": {"command": "a"},
            "gone": {"command": "b"},
            "changed": {"command": "c", "args": ["1"]}
        }}"#);
        let wanted = cfg(r#"{"mcpServers": {
            "changed": {"command": "c", "args": ["2"]},
            "keep": {"command": "a"},
            "fresh": {"command": "d", "depends_on": ["keep"]}
        }}"#);
        let d = diff(&running, &wanted);
        let names = |v: &[Change]| v.iter().map(Change::display).collect::<Vec<_>>();
        assert_eq!(names(&d.added), ["fresh"]);
        assert_eq!(names(&d.removed), ["gone"]);
        assert_eq!(names(&d.updated), ["changed"]);
        assert_eq!(d.updated[0].raw["args"], serde_json::json!(["2"]));
        assert!(!d.settings_changed);
    }

    #[test]
    fn the_same_services_reordered_or_reformatted_are_no_change() {
        let a = cfg(
            r#"{"mcpServers": {"x": {"command": "a", "args": ["1"]}, "y": {"url": "http://127.0.0.1:1/mcp"}}}"#,
        );
        let b = cfg("{\n \"mcpServers\": {\n  \"y\": {\"url\": \"http://127.0.0.1:1/mcp\"},\n  \"x\": {\"args\": [\"1\"], \"command\": \"a\"}\n }\n}");
        assert!(diff(&a, &b).is_empty());
    }

    #[test]
    fn agent_services_and_settings_are_compared_too() {
        let a = cfg(
            r#"{"mcpServers": {}, "agents": {"bot": {"mcpServers": {"db": {"command": "a"}}}}}"#,
        );
        let b = cfg(r#"{"mcpServers": {}, "supervisor": {"max_restarts": 9},
                        "agents": {"bot": {"mcpServers": {"db": {"command": "b"}}}}}"#);
        let d = diff(&a, &b);
        assert_eq!(d.updated.len(), 1);
        assert_eq!(d.updated[0].display(), "bot/db");
        assert!(d.settings_changed);
    }
}
