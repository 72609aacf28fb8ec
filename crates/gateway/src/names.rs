//! Tool names as MCP clients accept them (DESIGN §13), pure: `[A-Za-z0-9_-]` only, at most 64
//! characters *including* the prefix the client adds itself (Claude Code names a tool
//! `mcp__<server>__<tool>`), so the gateway keeps to `64 - client_prefix`. A name is
//! `service__tool`; optionally a tool's bare name when no other service offers it. A collision
//! (two tools that sanitize or shorten to the same name) never aborts anything: every tool of the
//! colliding group gets a suffix derived from its service and own name, so the names of tools
//! not involved never change when another service comes or goes.

use std::collections::{BTreeMap, HashMap};

/// How names are made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Naming {
    /// Between service and tool (`__`).
    pub separator: String,
    /// Longest name the gateway exposes (64 minus the client-prefix allowance).
    pub budget: usize,
    /// Expose a tool by its bare name when no other service offers that name.
    pub unprefixed: bool,
}

/// The most a client accepts (the prefix it adds included).
pub const CLIENT_NAME_LIMIT: usize = 64;
/// The shortest budget that still leaves room for a hashed suffix.
const MIN_BUDGET: usize = 16;

impl Naming {
    /// From the config: the Store's separator and the gateway section.
    pub fn new(separator: &str, gateway: &mcpvisor_model::GatewayConfig) -> Naming {
        let prefix = usize::try_from(gateway.client_prefix).unwrap_or(CLIENT_NAME_LIMIT);
        Naming {
            separator: separator.to_owned(),
            budget: CLIENT_NAME_LIMIT.saturating_sub(prefix).max(MIN_BUDGET),
            unprefixed: gateway.unprefixed,
        }
    }
}

/// One tool offered by one service.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Offer {
    /// The service's name in the endpoint's scope.
    pub service: String,
    /// The server's own name for the tool.
    pub tool: String,
}

/// The exposed name of every offer, in the order given. Unique, within the charset and the
/// budget, and independent of the order of `offers`.
pub fn expose(naming: &Naming, offers: &[Offer]) -> Vec<String> {
    let mut bare_count: HashMap<String, usize> = HashMap::new();
    if naming.unprefixed {
        for o in offers {
            *bare_count.entry(sanitize(&o.tool)).or_default() += 1;
        }
    }
    let mut names: Vec<String> = offers
        .iter()
        .map(|o| {
            let bare = sanitize(&o.tool);
            let full = if naming.unprefixed && bare_count.get(&bare) == Some(&1) {
                bare
            } else {
                sanitize(&format!("{}{}{}", o.service, naming.separator, o.tool))
            };
            if full.len() > naming.budget {
                suffixed(&full, o, naming.budget)
            } else {
                full
            }
        })
        .collect();
    // Collisions: every member of a colliding group gets its own suffix (a group is decided by
    // the name alone, so the outcome does not depend on the order of the offers).
    let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, n) in names.iter().enumerate() {
        groups.entry(n.clone()).or_default().push(i);
    }
    for members in groups.into_values().filter(|m| m.len() > 1) {
        for i in members {
            names[i] = suffixed(&names[i], &offers[i], naming.budget);
        }
    }
    // A suffix could still meet another name (a 32-bit hash, or a server that named a tool
    // like a suffixed one): number those, in offer order sorted by (service, tool).
    let mut order: Vec<usize> = (0..offers.len()).collect();
    order.sort_by(|a, b| offers[*a].cmp(&offers[*b]));
    let mut taken: HashMap<String, usize> = HashMap::new();
    for i in order {
        let mut n = names[i].clone();
        let mut k = 2;
        while taken.contains_key(&n) {
            let tail = format!("_{k}");
            n = format!("{}{tail}", cut(&names[i], naming.budget - tail.len()));
            k += 1;
        }
        taken.insert(n.clone(), i);
        names[i] = n;
    }
    names
}

/// `[A-Za-z0-9_-]` only: anything else becomes `_`; an empty name becomes `_`.
pub fn sanitize(s: &str) -> String {
    let out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() {
        "_".to_owned()
    } else {
        out
    }
}

/// `name` shortened to leave room for `_` + 8 hex digits of the offer's identity.
fn suffixed(name: &str, offer: &Offer, budget: usize) -> String {
    let tag = format!("_{:08x}", fnv1a(offer));
    format!("{}{tag}", cut(name, budget - tag.len()))
}

/// At most `len` bytes of an ASCII name.
fn cut(name: &str, len: usize) -> &str {
    &name[..name.len().min(len)]
}

/// 32-bit FNV-1a of service and tool: stable across runs and releases (std's hasher is not
/// promised to be), and too small a job for a crate.
fn fnv1a(offer: &Offer) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in offer
        .service
        .bytes()
        .chain(std::iter::once(0))
        .chain(offer.tool.bytes())
    {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn naming(budget: usize, unprefixed: bool) -> Naming {
        Naming {
            separator: "__".into(),
            budget,
            unprefixed,
        }
    }

    fn offer(s: &str, t: &str) -> Offer {
        Offer {
            service: s.into(),
            tool: t.into(),
        }
    }

    #[test]
    fn plain_names_are_service_separator_tool() {
        let n = expose(
            &naming(49, false),
            &[offer("files", "read_file"), offer("git", "status")],
        );
        assert_eq!(n, ["files__read_file", "git__status"]);
    }

    #[test]
    fn characters_clients_reject_are_replaced() {
        let n = expose(&naming(49, false), &[offer("web", "fetch.url/v2 now")]);
        assert_eq!(n, ["web__fetch_url_v2_now"]);
    }

    #[test]
    fn long_names_fit_the_budget_with_a_stable_suffix() {
        let long = "a_really_long_tool_name_that_goes_on_and_on_and_on";
        let n = expose(&naming(49, false), &[offer("service", long)]);
        assert_eq!(n[0].len(), 49);
        assert!(n[0].starts_with("service__a_really_long"));
        assert_eq!(n, expose(&naming(49, false), &[offer("service", long)]));
    }

    #[test]
    fn a_collision_renames_only_the_colliding_tools() {
        // "a.b" and "a_b" both sanitize to "a_b".
        let offers = [offer("s", "a.b"), offer("s", "a_b"), offer("s", "other")];
        let n = expose(&naming(49, false), &offers);
        assert_ne!(n[0], n[1]);
        assert!(
            n[0].starts_with("s__a_b_") && n[1].starts_with("s__a_b_"),
            "{n:?}"
        );
        assert_eq!(n[2], "s__other");
    }

    #[test]
    fn unprefixed_names_only_when_unique() {
        let offers = [offer("a", "echo"), offer("b", "echo"), offer("b", "add")];
        let n = expose(&naming(49, true), &offers);
        assert_eq!(n, ["a__echo", "b__echo", "add"]);
    }

    #[test]
    fn a_bare_name_meeting_a_prefixed_one_is_split_apart() {
        let offers = [offer("x", "a__b"), offer("a", "b")];
        let n = expose(&naming(49, true), &offers);
        assert_ne!(n[0], n[1], "{n:?}");
    }

    proptest! {
        #[test]
        fn names_are_unique_valid_short_and_order_independent(
            raw in prop::collection::vec(("[a-c]{1,3}", "[a-c._ /]{0,70}"), 0..24),
            budget in 16usize..64,
            unprefixed in any::<bool>(),
        ) {
            let mut offers: Vec<Offer> = raw.iter().map(|(s, t)| offer(s, t)).collect();
            offers.sort();
            offers.dedup();
            let nm = naming(budget, unprefixed);
            let names = expose(&nm, &offers);
            let mut seen = std::collections::HashSet::new();
            for n in &names {
                prop_assert!(n.len() <= budget, "{n} over {budget}");
                prop_assert!(!n.is_empty());
                prop_assert!(n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'));
                prop_assert!(seen.insert(n.clone()), "duplicate {n}");
            }
            let mut reversed = offers.clone();
            reversed.reverse();
            let mut again = expose(&nm, &reversed);
            again.reverse();
            prop_assert_eq!(names, again);
        }
    }
}
