//! Three-way merge of the config file, so a runtime change never wipes out an edit made by
//! hand since mcpvisor last read or wrote the file.
//!
//! `base` is the document as mcpvisor last saw it on disk, `ours` the runtime's current config,
//! `theirs` what the file holds now. Services (of the store and of each agent) are the unit:
//! a service the runtime changed (added, updated, removed) since `base` takes the runtime's
//! version unless the file changed that same service differently, in which case the file's
//! version is kept and the service is reported as a conflict. Top-level keys (`defaults`,
//! `supervisor`, unknown ones) merge the same way, one key at a time. Everything else —
//! services and keys only the file changed, key order — is the file's. Pure: no I/O.

use indexmap::IndexMap;
use mcpvisor_model::{AgentConfig, AgentId, ServiceName, ServiceSpec, ServicesConfig};

/// The result of [`merge`].
#[derive(Debug, Clone, PartialEq)]
pub struct Merged {
    /// The merged document (not yet validated as a whole: the caller re-parses it).
    pub config: ServicesConfig,
    /// Services (`name` or `agent/name`) changed both at run time and in the file, in
    /// different ways: the file's version was kept.
    pub conflicts: Vec<String>,
}

/// Merges the runtime's changes since `base` into `theirs`.
///
/// ```
/// use mcpvisor_model::{env::MapEnv, parse_str};
/// use mcpvisor_persistence_actor::merge;
/// let env = MapEnv::default();
/// let base = parse_str(r#"{"mcpServers": {"a": {"command": "a"}}}"#, &env).unwrap();
/// // At run time: b added. In the file, by hand: a's command changed.
/// let ours = parse_str(r#"{"mcpServers": {"a": {"command": "a"}, "b": {"command": "b"}}}"#, &env).unwrap();
/// let theirs = parse_str(r#"{"mcpServers": {"a": {"command": "a2"}}}"#, &env).unwrap();
/// let merged = merge(&base, &ours, &theirs);
/// assert!(merged.conflicts.is_empty());
/// assert_eq!(
///     merged.config.to_json().to_string(),
///     r#"{"mcpServers":{"a":{"command":"a2"},"b":{"command":"b"}}}"#
/// );
/// ```
pub fn merge(base: &ServicesConfig, ours: &ServicesConfig, theirs: &ServicesConfig) -> Merged {
    let mut config = theirs.clone();
    let mut conflicts = Vec::new();
    merge_top_level(base, ours, &mut config, &mut conflicts);
    merge_services(
        &base.services,
        &ours.services,
        &mut config.services,
        None,
        &mut conflicts,
    );
    let empty = AgentConfig::default();
    let agents = union_keys(&base.agents, &ours.agents);
    for id in agents {
        let b = base.agents.get(&id);
        let o = ours.agents.get(&id);
        match config.agents.get_mut(&id) {
            Some(t) => merge_services(
                &b.unwrap_or(&empty).services,
                &o.unwrap_or(&empty).services,
                &mut t.services,
                Some(&id),
                &mut conflicts,
            ),
            None => {
                // The file has no such agent now.
                let (b_services, o_services) =
                    (&b.unwrap_or(&empty).services, &o.unwrap_or(&empty).services);
                if b.is_none() {
                    // Created at run time: add it with the runtime's services.
                    if let Some(o) = o {
                        config.agents.insert(id.clone(), o.clone());
                    }
                } else if !same_services(b_services, o_services) {
                    // Removed by hand while the runtime changed it: the removal stands.
                    conflicts
                        .extend(changed_names(b_services, o_services).map(|n| format!("{id}/{n}")));
                }
            }
        }
    }
    Merged { config, conflicts }
}

/// Top-level keys other than the services (`defaults`, `supervisor`, unknown keys), each one
/// unit: the runtime's change is applied where the file did not change that key too.
fn merge_top_level(
    base: &ServicesConfig,
    ours: &ServicesConfig,
    target: &mut ServicesConfig,
    conflicts: &mut Vec<String>,
) {
    let keys: Vec<String> = base
        .extra
        .keys()
        .chain(ours.extra.keys().filter(|k| !base.extra.contains_key(*k)))
        .filter(|k| *k != "agents")
        .cloned()
        .collect();
    for key in &keys {
        let (b, o) = (base.extra.get(key), ours.extra.get(key));
        if o == b {
            continue;
        }
        let t = target.extra.get(key);
        if t == b {
            match o {
                Some(v) => {
                    target.extra.insert(key.clone(), v.clone());
                }
                None => {
                    // Keep the services where they were among the top-level keys.
                    if let Some(i) = target.extra.keys().position(|k| k == key) {
                        if i < target.services_index {
                            target.services_index -= 1;
                        }
                    }
                    target.extra.shift_remove(key);
                }
            }
        } else if t != o {
            conflicts.push(format!("top-level `{key}`"));
        }
    }
}

/// Applies the runtime's per-service changes (`base` → `ours`) to `target` (the file's map).
fn merge_services(
    base: &IndexMap<ServiceName, ServiceSpec>,
    ours: &IndexMap<ServiceName, ServiceSpec>,
    target: &mut IndexMap<ServiceName, ServiceSpec>,
    agent: Option<&AgentId>,
    conflicts: &mut Vec<String>,
) {
    for name in union_keys(base, ours) {
        let b = base.get(&name).map(|s| &s.raw);
        let o = ours.get(&name);
        if o.map(|s| &s.raw) == b {
            continue; // not changed at run time: the file's version stands
        }
        let t = target.get(&name).map(|s| &s.raw);
        if t == b {
            match o {
                Some(spec) => {
                    // Replaced in place, or appended if new.
                    target.insert(name.clone(), spec.clone());
                }
                None => {
                    target.shift_remove(&name);
                }
            }
        } else if t != o.map(|s| &s.raw) {
            conflicts.push(match agent {
                Some(a) => format!("{a}/{name}"),
                None => name.to_string(),
            });
        }
    }
}

fn same_services(
    a: &IndexMap<ServiceName, ServiceSpec>,
    b: &IndexMap<ServiceName, ServiceSpec>,
) -> bool {
    a.len() == b.len()
        && a.iter()
            .all(|(n, s)| b.get(n).is_some_and(|t| t.raw == s.raw))
}

fn changed_names<'a>(
    base: &'a IndexMap<ServiceName, ServiceSpec>,
    ours: &'a IndexMap<ServiceName, ServiceSpec>,
) -> impl Iterator<Item = ServiceName> + 'a {
    union_keys(base, ours)
        .into_iter()
        .filter(|n| base.get(n).map(|s| &s.raw) != ours.get(n).map(|s| &s.raw))
}

/// Keys of `a` then those only in `b`, each once, in order.
fn union_keys<K: Clone + std::hash::Hash + Eq, V>(
    a: &IndexMap<K, V>,
    b: &IndexMap<K, V>,
) -> Vec<K> {
    a.keys()
        .chain(b.keys().filter(|k| !a.contains_key(*k)))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcpvisor_model::{env::MapEnv, parse_str};
    use serde_json::json;

    fn cfg(v: serde_json::Value) -> ServicesConfig {
        parse_str(&v.to_string(), &MapEnv::default()).expect("valid config")
    }

    fn names(c: &ServicesConfig) -> Vec<String> {
        c.services.keys().map(|n| n.to_string()).collect()
    }

    #[test]
    fn no_hand_edit_gives_the_runtime_version() {
        let base = cfg(json!({"mcpServers": {"a": {"command": "a"}}}));
        let ours = cfg(json!({"mcpServers": {"b": {"command": "b"}}}));
        let m = merge(&base, &ours, &base);
        assert_eq!(m.config.to_json(), ours.to_json());
        assert!(m.conflicts.is_empty());
    }

    #[test]
    fn hand_edits_to_other_services_and_sections_survive_runtime_changes() {
        let base = cfg(json!({
            "defaults": {"timeouts": {"call": "30s"}},
            "mcpServers": {"a": {"command": "a"}, "b": {"command": "b"}, "c": {"command": "c"}}
        }));
        // Run time: b removed, d added, c updated.
        let ours = cfg(json!({
            "defaults": {"timeouts": {"call": "30s"}},
            "mcpServers": {"a": {"command": "a"}, "c": {"command": "c2"}, "d": {"command": "d"}}
        }));
        // By hand: a changed, e added, defaults changed, a comment-like unknown key added.
        let theirs = cfg(json!({
            "note": "edited by hand",
            "defaults": {"timeouts": {"call": "60s"}},
            "mcpServers": {"e": {"command": "e"}, "a": {"command": "a-hand"}, "b": {"command": "b"}, "c": {"command": "c"}}
        }));
        let m = merge(&base, &ours, &theirs);
        assert!(m.conflicts.is_empty(), "{:?}", m.conflicts);
        assert_eq!(
            m.config.to_json(),
            json!({
                "note": "edited by hand",
                "defaults": {"timeouts": {"call": "60s"}},
                "mcpServers": {"e": {"command": "e"}, "a": {"command": "a-hand"}, "c": {"command": "c2"}, "d": {"command": "d"}}
            })
        );
    }

    #[test]
    fn top_level_keys_changed_at_run_time_are_applied_unless_edited_by_hand() {
        let base = cfg(json!({"gen": 1, "mcpServers": {}, "keep": true, "drop": 1}));
        let ours = cfg(json!({"gen": 2, "mcpServers": {}, "keep": true, "new": "x"}));
        let theirs = cfg(json!({"gen": 1, "mcpServers": {}, "keep": false, "drop": 1}));
        let m = merge(&base, &ours, &theirs);
        assert!(m.conflicts.is_empty(), "{:?}", m.conflicts);
        assert_eq!(
            m.config.to_json().to_string(),
            json!({"gen": 2, "mcpServers": {}, "keep": false, "new": "x"}).to_string()
        );
        let theirs = cfg(json!({"gen": 3, "mcpServers": {}, "keep": true, "drop": 1}));
        let m = merge(&base, &ours, &theirs);
        assert_eq!(m.conflicts, vec!["top-level `gen`".to_owned()]);
    }

    #[test]
    fn a_service_changed_both_ways_keeps_the_file_version_and_is_a_conflict() {
        let base = cfg(json!({"mcpServers": {"a": {"command": "a"}, "b": {"command": "b"}}}));
        let ours = cfg(json!({"mcpServers": {"a": {"command": "a-runtime"}}}));
        let theirs =
            cfg(json!({"mcpServers": {"a": {"command": "a-hand"}, "b": {"command": "b-hand"}}}));
        let m = merge(&base, &ours, &theirs);
        assert_eq!(m.conflicts, vec!["a".to_owned(), "b".to_owned()]);
        assert_eq!(m.config.to_json(), theirs.to_json());
    }

    #[test]
    fn the_same_change_on_both_sides_is_no_conflict() {
        let base = cfg(json!({"mcpServers": {"a": {"command": "a"}}}));
        let both = cfg(json!({"mcpServers": {"a": {"command": "a"}, "n": {"command": "n"}}}));
        let m = merge(&base, &both, &both);
        assert!(m.conflicts.is_empty());
        assert_eq!(names(&m.config), ["a", "n"]);
    }

    #[test]
    fn a_service_removed_by_hand_stays_removed_unless_the_runtime_changed_it() {
        let base = cfg(json!({"mcpServers": {"a": {"command": "a"}, "b": {"command": "b"}}}));
        let theirs = cfg(json!({"mcpServers": {"b": {"command": "b"}}}));
        let m = merge(&base, &base, &theirs);
        assert_eq!(names(&m.config), ["b"]);
        assert!(m.conflicts.is_empty());
        let ours = cfg(json!({"mcpServers": {"a": {"command": "a2"}, "b": {"command": "b"}}}));
        let m = merge(&base, &ours, &theirs);
        assert_eq!(names(&m.config), ["b"]);
        assert_eq!(m.conflicts, vec!["a".to_owned()]);
    }

    #[test]
    fn agents_merge_per_service_and_new_agents_are_added() {
        let base = cfg(json!({
            "mcpServers": {},
            "agents": {"bot": {"mcpServers": {"x": {"command": "x"}}}}
        }));
        let ours = cfg(json!({
            "mcpServers": {},
            "agents": {
                "bot": {"mcpServers": {"x": {"command": "x"}, "y": {"command": "y"}}},
                "new": {"mcpServers": {"z": {"command": "z"}}}
            }
        }));
        let theirs = cfg(json!({
            "mcpServers": {"hand": {"command": "h"}},
            "agents": {"bot": {"mcpServers": {"x": {"command": "x-hand"}}}}
        }));
        let m = merge(&base, &ours, &theirs);
        assert!(m.conflicts.is_empty(), "{:?}", m.conflicts);
        assert_eq!(
            m.config.to_json(),
            json!({
                "mcpServers": {"hand": {"command": "h"}},
                "agents": {
                    "bot": {"mcpServers": {"x": {"command": "x-hand"}, "y": {"command": "y"}}},
                    "new": {"mcpServers": {"z": {"command": "z"}}}
                }
            })
        );
    }
}
