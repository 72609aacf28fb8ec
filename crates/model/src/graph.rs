//! The dependency graph: validation (unknown names, cycles), start levels, stop order.

use indexmap::{IndexMap, IndexSet};

use crate::config::ServiceSpec;
use crate::error::ConfigError;
use crate::name::{suggest, ServiceName};

/// Services and what each depends on, in registration order.
#[derive(Debug, Clone, Default)]
pub struct DependencyGraph {
    nodes: IndexMap<ServiceName, Vec<ServiceName>>,
}

impl DependencyGraph {
    /// A graph from `(service, dependencies)` pairs.
    pub fn new<I, D>(nodes: I) -> Self
    where
        I: IntoIterator<Item = (ServiceName, D)>,
        D: IntoIterator<Item = ServiceName>,
    {
        DependencyGraph {
            nodes: nodes
                .into_iter()
                .map(|(n, d)| (n, d.into_iter().collect()))
                .collect(),
        }
    }

    /// The graph of these services' `depends_on`.
    pub fn from_specs<'a>(specs: impl IntoIterator<Item = &'a ServiceSpec>) -> Self {
        Self::new(specs.into_iter().map(|s| {
            (
                s.name.clone(),
                s.config
                    .depends_on
                    .iter()
                    .map(|d| d.name.clone())
                    .collect::<Vec<_>>(),
            )
        }))
    }

    /// Every unknown dependency and every cycle (each cycle once), as config errors.
    pub fn check(&self) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        for (name, deps) in &self.nodes {
            for d in deps {
                if !self.nodes.contains_key(d) {
                    let close = suggest(d.as_str(), self.nodes.keys().map(|k| k.as_str()), 1);
                    errors.push(ConfigError::UnknownDependency {
                        service: name.to_string(),
                        dependency: d.to_string(),
                        suggestion: close
                            .first()
                            .map(|c| format!("; did you mean '{c}'?"))
                            .unwrap_or_else(|| "; add it or remove it from depends_on".into()),
                    });
                }
            }
        }
        for cycle in self.cycles() {
            errors.push(ConfigError::DependencyCycle {
                service: cycle[0].to_string(),
                cycle: cycle.iter().map(ToString::to_string).collect(),
            });
        }
        errors
    }

    /// Each elementary cycle found by depth-first search, rotated to start at its first
    /// service in registration order, the first service repeated at the end.
    pub fn cycles(&self) -> Vec<Vec<ServiceName>> {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            Active,
            Done,
        }
        let n = self.nodes.len();
        let mut mark = vec![Mark::New; n];
        let mut found: IndexSet<Vec<usize>> = IndexSet::new();
        for root in 0..n {
            if mark[root] != Mark::New {
                continue;
            }
            // Iterative DFS: stack of (node, next edge index).
            let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
            mark[root] = Mark::Active;
            while let Some((node, edge)) = stack.last().copied() {
                let deps = &self.nodes[node];
                if edge < deps.len() {
                    if let Some(top) = stack.last_mut() {
                        top.1 += 1;
                    }
                    let Some(next) = self.nodes.get_index_of(&deps[edge]) else {
                        continue;
                    };
                    match mark[next] {
                        Mark::New => {
                            mark[next] = Mark::Active;
                            stack.push((next, 0));
                        }
                        Mark::Active => {
                            let start = stack.iter().position(|(s, _)| *s == next).unwrap_or(0);
                            let mut cyc: Vec<usize> =
                                stack[start..].iter().map(|(s, _)| *s).collect();
                            let min_pos = cyc
                                .iter()
                                .enumerate()
                                .min_by_key(|(_, v)| **v)
                                .map(|(i, _)| i)
                                .unwrap_or(0);
                            cyc.rotate_left(min_pos);
                            found.insert(cyc);
                        }
                        Mark::Done => {}
                    }
                } else {
                    mark[node] = Mark::Done;
                    stack.pop();
                }
            }
        }
        found
            .into_iter()
            .map(|c| {
                let mut names: Vec<ServiceName> = c
                    .iter()
                    .filter_map(|i| self.nodes.get_index(*i).map(|(k, _)| k.clone()))
                    .collect();
                if let Some(first) = names.first().cloned() {
                    names.push(first);
                }
                names
            })
            .collect()
    }

    /// Start levels: level 0 has no (known) dependencies, level k depends only on levels < k.
    /// Services inside a level keep registration order. Services on a cycle are left out.
    pub fn start_levels(&self) -> Vec<Vec<ServiceName>> {
        let mut level: IndexMap<&ServiceName, usize> = IndexMap::new();
        let mut remaining: Vec<&ServiceName> = self.nodes.keys().collect();
        let mut current = 0;
        let mut levels = Vec::new();
        while !remaining.is_empty() {
            let ready: Vec<&ServiceName> = remaining
                .iter()
                .copied()
                .filter(|n| {
                    self.nodes[*n].iter().all(|d| {
                        !self.nodes.contains_key(d) || level.get(d).is_some_and(|l| *l < current)
                    })
                })
                .collect();
            if ready.is_empty() {
                break;
            }
            for r in &ready {
                level.insert(r, current);
            }
            remaining.retain(|n| !ready.contains(n));
            levels.push(ready.into_iter().cloned().collect());
            current += 1;
        }
        levels
    }

    /// The order to stop in: dependents before their dependencies (reverse start order).
    pub fn stop_order(&self) -> Vec<ServiceName> {
        self.start_levels().into_iter().rev().flatten().collect()
    }

    /// Services that depend on `name` directly.
    pub fn dependents(&self, name: &ServiceName) -> Vec<ServiceName> {
        self.nodes
            .iter()
            .filter(|(_, deps)| deps.contains(name))
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// What `name` depends on directly.
    pub fn dependencies(&self, name: &ServiceName) -> &[ServiceName] {
        self.nodes.get(name).map(Vec::as_slice).unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> ServiceName {
        ServiceName::parse(s).unwrap()
    }

    fn graph(edges: &[(&str, &[&str])]) -> DependencyGraph {
        DependencyGraph::new(
            edges
                .iter()
                .map(|(a, ds)| (n(a), ds.iter().map(|d| n(d)).collect::<Vec<_>>())),
        )
    }

    fn names(levels: Vec<Vec<ServiceName>>) -> Vec<Vec<String>> {
        levels
            .into_iter()
            .map(|l| l.into_iter().map(|s| s.to_string()).collect())
            .collect()
    }

    #[test]
    fn chain_starts_one_by_one_and_stops_in_reverse() {
        let g = graph(&[("app", &["api"]), ("api", &["db"]), ("db", &[])]);
        assert_eq!(
            names(g.start_levels()),
            vec![vec!["db"], vec!["api"], vec!["app"]]
        );
        let stop: Vec<String> = g.stop_order().into_iter().map(|s| s.to_string()).collect();
        assert_eq!(stop, vec!["app", "api", "db"]);
        assert!(g.check().is_empty());
    }

    #[test]
    fn diamond_shares_a_level() {
        let g = graph(&[
            ("top", &["l", "r"]),
            ("l", &["base"]),
            ("r", &["base"]),
            ("base", &[]),
        ]);
        assert_eq!(
            names(g.start_levels()),
            vec![vec!["base"], vec!["l", "r"], vec!["top"]]
        );
        assert_eq!(g.dependents(&n("base")), vec![n("l"), n("r")]);
    }

    #[test]
    fn cycle_is_reported_once_with_its_members() {
        let g = graph(&[("a", &["b"]), ("b", &["c"]), ("c", &["a"]), ("d", &["a"])]);
        let errs = g.check();
        assert_eq!(errs.len(), 1, "{errs:?}");
        match &errs[0] {
            ConfigError::DependencyCycle { cycle, .. } => assert_eq!(cycle, &["a", "b", "c", "a"]),
            e => panic!("{e:?}"),
        }
        assert!(errs[0].to_string().contains("a -> b -> c -> a"));
    }

    #[test]
    fn self_dependency_is_a_cycle() {
        let g = graph(&[("a", &["a"])]);
        assert!(
            matches!(&g.check()[0], ConfigError::DependencyCycle { cycle, .. } if cycle == &["a", "a"])
        );
    }

    #[test]
    fn unknown_dependency_suggests_a_close_name() {
        let g = graph(&[("app", &["dbb"]), ("db", &[])]);
        let e = g.check();
        assert!(
            matches!(&e[0], ConfigError::UnknownDependency { dependency, suggestion, .. }
            if dependency == "dbb" && suggestion.contains("'db'"))
        );
    }
}
