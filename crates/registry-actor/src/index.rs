//! The tool index of one scope: which service offers a tool under which name.
//!
//! Every tool is reachable under its namespaced name `service{sep}tool` (and, when that is longer
//! than [`MAX_TOOL_NAME_LEN`], under its shortened form too) and under its bare name, which
//! resolves only while exactly one service of the scope offers it. The index is kept up to date
//! incrementally — a tools update removes the service's old entries and adds its new ones — so a
//! lookup is a hash-map probe whatever the number of tools.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use mcpvisor_model::defaults::MAX_TOOL_NAME_LEN;
use mcpvisor_model::{suggest, AgentId, ServiceId, ToolInfo};

use crate::view::{LookupError, Scope};

/// Characters the hash suffix of a shortened name takes: `_` and 8 hex digits.
const HASH_SUFFIX_LEN: usize = 9;

/// How many close names an unknown-tool error suggests.
pub(crate) const SUGGESTIONS: usize = 3;

/// FNV-1a, 64 bits: a small hash that is the same in every process and every release, unlike
/// std's randomly keyed hasher, so shortened tool names never change between runs.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes
        .iter()
        .fold(OFFSET, |h, b| (h ^ u64::from(*b)).wrapping_mul(PRIME))
}

/// `name` itself when it is at most [`MAX_TOOL_NAME_LEN`] bytes long; otherwise its first bytes
/// (cut on a character boundary) followed by `_` and 8 hex digits of the FNV-1a hash of the whole
/// name, at most [`MAX_TOOL_NAME_LEN`] bytes in all. The same name always gives the same result.
///
/// ```
/// use mcpvisor_registry_actor::shorten_tool_name;
/// assert_eq!(shorten_tool_name("git__status"), "git__status");
/// let long = format!("svc__{}", "x".repeat(80));
/// let short = shorten_tool_name(&long);
/// assert!(short.len() <= 64);
/// assert_eq!(short, shorten_tool_name(&long));
/// ```
pub fn shorten_tool_name(name: &str) -> Cow<'_, str> {
    if name.len() <= MAX_TOOL_NAME_LEN {
        return Cow::Borrowed(name);
    }
    let hash = fnv1a64(name.as_bytes());
    let folded = (hash ^ (hash >> 32)) as u32;
    let mut cut = MAX_TOOL_NAME_LEN - HASH_SUFFIX_LEN;
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    Cow::Owned(format!("{}_{folded:08x}", &name[..cut]))
}

/// The name a tool is listed under: `service{separator}tool`, shortened by
/// [`shorten_tool_name`] when too long.
///
/// ```
/// use mcpvisor_registry_actor::namespaced_tool_name;
/// assert_eq!(namespaced_tool_name("git", "__", "status"), "git__status");
/// ```
pub fn namespaced_tool_name(service: &str, separator: &str, tool: &str) -> String {
    let full = format!("{service}{separator}{tool}");
    match shorten_tool_name(&full) {
        Cow::Borrowed(_) => full,
        Cow::Owned(short) => short,
    }
}

/// One tool of one service, as the index points at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ToolRef {
    /// The service offering it.
    pub service: ServiceId,
    /// The server's own name for it.
    pub tool: String,
}

/// A successful lookup: the service and the server's own tool name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Resolved<'a> {
    pub service: &'a ServiceId,
    pub tool: &'a str,
}

/// The tool index of one scope.
#[derive(Debug, Default)]
pub(crate) struct ScopeIndex {
    /// Namespaced names (as listed, and the full form when it was shortened) to the tools
    /// answering to them. Normally one; several only when two services' names collide (possible
    /// with a one-character separator that also occurs in names).
    by_name: HashMap<String, Vec<ToolRef>>,
    /// Bare (server's own) names to the services offering them, each with its listed name.
    by_bare: HashMap<String, BTreeMap<ServiceId, String>>,
}

impl ScopeIndex {
    /// Adds the tools of `service`, known in this scope as `prefix`.
    pub fn insert(&mut self, prefix: &str, sep: &str, service: &ServiceId, tools: &[ToolInfo]) {
        for tool in tools {
            let full = format!("{prefix}{sep}{}", tool.name);
            let listed = shorten_tool_name(&full).into_owned();
            let target = ToolRef {
                service: service.clone(),
                tool: tool.name.clone(),
            };
            if listed != full {
                add_owner(&mut self.by_name, full, target.clone());
            }
            add_owner(&mut self.by_name, listed.clone(), target);
            self.by_bare
                .entry(tool.name.clone())
                .or_default()
                .insert(service.clone(), listed);
        }
    }

    /// Removes what [`ScopeIndex::insert`] added for the same arguments.
    pub fn remove(&mut self, prefix: &str, sep: &str, service: &ServiceId, tools: &[ToolInfo]) {
        for tool in tools {
            let full = format!("{prefix}{sep}{}", tool.name);
            let listed = shorten_tool_name(&full).into_owned();
            if listed != full {
                drop_owner(&mut self.by_name, &full, service);
            }
            drop_owner(&mut self.by_name, &listed, service);
            if let Some(owners) = self.by_bare.get_mut(&tool.name) {
                owners.remove(service);
                if owners.is_empty() {
                    self.by_bare.remove(&tool.name);
                }
            }
        }
    }

    /// Whether no tool is indexed.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty() && self.by_bare.is_empty()
    }

    /// Resolves `name`: a namespaced name first, then a bare name offered by exactly one service.
    pub fn resolve(&self, name: &str) -> Result<Resolved<'_>, LookupError> {
        if let Some(owners) = self.by_name.get(name) {
            return match owners.as_slice() {
                [one] => Ok(Resolved {
                    service: &one.service,
                    tool: &one.tool,
                }),
                many => Err(LookupError::AmbiguousTool {
                    name: name.to_owned(),
                    candidates: many
                        .iter()
                        .map(|t| format!("{} (service {})", t.tool, t.service))
                        .collect(),
                }),
            };
        }
        if let Some((bare, owners)) = self.by_bare.get_key_value(name) {
            let mut iter = owners.iter();
            return match (iter.next(), iter.next()) {
                (Some((service, _)), None) => Ok(Resolved {
                    service,
                    tool: bare.as_str(),
                }),
                _ => Err(LookupError::AmbiguousTool {
                    name: name.to_owned(),
                    candidates: owners.values().cloned().collect(),
                }),
            };
        }
        Err(LookupError::UnknownTool {
            name: name.to_owned(),
            suggestions: self.suggestions(name),
        })
    }

    /// Up to [`SUGGESTIONS`] indexed names (namespaced or bare) close to `name`.
    fn suggestions(&self, name: &str) -> Vec<String> {
        let names = self
            .by_name
            .keys()
            .chain(self.by_bare.keys())
            .map(String::as_str);
        suggest(name, names, SUGGESTIONS)
    }
}

/// The tool indexes of every scope: one per agent (and one for the store), plus one over all
/// services named by display id.
#[derive(Debug)]
pub(crate) struct ToolIndex {
    separator: String,
    /// Keyed by the owning agent; `None` is the store's own scope.
    scopes: HashMap<Option<AgentId>, ScopeIndex>,
    all: ScopeIndex,
}

impl ToolIndex {
    /// An empty index whose namespaced names use `separator`.
    pub fn new(separator: String) -> Self {
        ToolIndex {
            separator,
            scopes: HashMap::new(),
            all: ScopeIndex::default(),
        }
    }

    /// The separator of namespaced names.
    pub fn separator(&self) -> &str {
        &self.separator
    }

    /// Indexes `tools` of `service` in its own scope and in the all-services scope.
    pub fn add(&mut self, service: &ServiceId, tools: &[ToolInfo]) {
        if tools.is_empty() {
            return;
        }
        let local = self.scopes.entry(service.agent.clone()).or_default();
        local.insert(service.name.as_str(), &self.separator, service, tools);
        self.all
            .insert(&service.to_string(), &self.separator, service, tools);
    }

    /// Forgets what [`ToolIndex::add`] indexed for the same arguments.
    pub fn remove(&mut self, service: &ServiceId, tools: &[ToolInfo]) {
        if tools.is_empty() {
            return;
        }
        if let Some(local) = self.scopes.get_mut(&service.agent) {
            local.remove(service.name.as_str(), &self.separator, service, tools);
            if local.is_empty() {
                self.scopes.remove(&service.agent);
            }
        }
        self.all
            .remove(&service.to_string(), &self.separator, service, tools);
    }

    /// The index of `scope`, if any tool is indexed there.
    pub fn scope(&self, scope: &Scope) -> Option<&ScopeIndex> {
        match scope {
            Scope::Store => self.scopes.get(&None),
            Scope::Agent(a) => self.scopes.get(&Some(a.clone())),
            Scope::All => Some(&self.all),
        }
    }

    /// How many scope indexes exist (for tests: empty ones are dropped).
    #[cfg(test)]
    pub fn scope_count(&self) -> usize {
        self.scopes.len()
    }
}

fn add_owner(map: &mut HashMap<String, Vec<ToolRef>>, key: String, target: ToolRef) {
    let owners = map.entry(key).or_default();
    if !owners.contains(&target) {
        owners.push(target);
    }
}

fn drop_owner(map: &mut HashMap<String, Vec<ToolRef>>, key: &str, service: &ServiceId) {
    if let Some(owners) = map.get_mut(key) {
        owners.retain(|t| &t.service != service);
        if owners.is_empty() {
            map.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcpvisor_model::ServiceName;

    fn tool(name: &str) -> ToolInfo {
        ToolInfo {
            name: name.to_owned(),
            description: None,
            input_schema: Default::default(),
            raw: serde_json::Value::Null,
        }
    }

    fn id(name: &str) -> ServiceId {
        ServiceId::global(ServiceName::parse(name).unwrap())
    }

    #[test]
    fn fnv1a64_matches_the_reference_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn short_names_are_kept_as_they_are() {
        let exact = "x".repeat(MAX_TOOL_NAME_LEN);
        assert_eq!(shorten_tool_name(&exact), exact.as_str());
        assert!(matches!(shorten_tool_name(&exact), Cow::Borrowed(_)));
    }

    #[test]
    fn long_names_are_shortened_deterministically_within_the_limit() {
        let a = format!("service__{}", "a".repeat(100));
        let b = format!("service__{}b", "a".repeat(99));
        let sa = shorten_tool_name(&a).into_owned();
        let sb = shorten_tool_name(&b).into_owned();
        assert_eq!(sa.len(), MAX_TOOL_NAME_LEN);
        assert_eq!(sa, shorten_tool_name(&a), "same input, same output");
        assert_ne!(sa, sb, "names sharing a prefix still differ by their hash");
        assert!(sa.starts_with("service__aaaa"));
        let suffix = &sa[sa.len() - HASH_SUFFIX_LEN..];
        assert!(suffix.starts_with('_'));
        assert!(suffix[1..].chars().all(|c| c.is_ascii_hexdigit()));
        // Pinned: the hash is part of the names users and models see, so it must never change.
        let h = fnv1a64(a.as_bytes());
        assert!(sa.ends_with(&format!("_{:08x}", (h ^ (h >> 32)) as u32)));
    }

    #[test]
    fn shortening_cuts_on_a_character_boundary() {
        let name = "é".repeat(60); // 120 bytes, 2 per character
        let short = shorten_tool_name(&name);
        assert!(short.len() <= MAX_TOOL_NAME_LEN);
        assert!(short.starts_with("éé"));
    }

    #[test]
    fn removing_a_service_leaves_the_others_and_no_empty_keys() {
        let mut ix = ScopeIndex::default();
        let (a, b) = (id("a"), id("b"));
        ix.insert("a", "__", &a, &[tool("echo"), tool("add")]);
        ix.insert("b", "__", &b, &[tool("echo")]);
        assert!(ix.resolve("echo").is_err(), "ambiguous while both offer it");
        ix.remove("a", "__", &a, &[tool("echo"), tool("add")]);
        let hit = ix.resolve("echo").unwrap();
        assert_eq!(hit.service, &b);
        assert!(ix.resolve("a__add").is_err());
        ix.remove("b", "__", &b, &[tool("echo")]);
        assert!(ix.is_empty());
    }

    #[test]
    fn colliding_namespaced_names_are_ambiguous_not_silently_one() {
        // With separator "_", "a_b" + "c" and "a" + "b_c" both read "a_b_c".
        let mut ix = ScopeIndex::default();
        ix.insert("a_b", "_", &id("a_b"), &[tool("c")]);
        ix.insert("a", "_", &id("a"), &[tool("b_c")]);
        match ix.resolve("a_b_c") {
            Err(LookupError::AmbiguousTool { candidates, .. }) => assert_eq!(candidates.len(), 2),
            other => panic!("expected ambiguity, got {other:?}"),
        }
    }
}
