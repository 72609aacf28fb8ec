//! Service and agent names, and close-match suggestions for names that do not exist.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest accepted name, in characters.
pub const MAX_NAME_LEN: usize = 64;

/// A validated service name: 1–64 characters of `[A-Za-z0-9_-]`, without `__` (the default
/// tool-name separator, so `service__tool` always splits one way).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ServiceName(String);

/// An agent's id follows the same rules as a service name.
pub type AgentId = ServiceName;

/// Why a name is rejected (see [`ServiceName::parse`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Empty.
    #[error("the name is empty")]
    Empty,
    /// Over [`MAX_NAME_LEN`] characters.
    #[error("the name has {0} characters, at most 64 are allowed")]
    TooLong(usize),
    /// A character outside `[A-Za-z0-9_-]`.
    #[error("the character {0:?} is not allowed")]
    BadChar(char),
    /// Contains `__`.
    #[error("the name contains '__', which separates service and tool names")]
    DoubleUnderscore,
}

impl ServiceName {
    /// Validates `s` as a name.
    ///
    /// ```
    /// use mcpvisor_model::ServiceName;
    /// assert!(ServiceName::parse("git-hub_2").is_ok());
    /// assert!(ServiceName::parse("a__b").is_err());
    /// ```
    pub fn parse(s: &str) -> Result<Self, NameError> {
        if s.is_empty() {
            return Err(NameError::Empty);
        }
        let n = s.chars().count();
        if n > MAX_NAME_LEN {
            return Err(NameError::TooLong(n));
        }
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
        {
            return Err(NameError::BadChar(c));
        }
        if s.contains("__") {
            return Err(NameError::DoubleUnderscore);
        }
        Ok(ServiceName(s.to_owned()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ServiceName {
    type Error = NameError;
    fn try_from(s: String) -> Result<Self, NameError> {
        ServiceName::parse(&s)
    }
}

impl From<ServiceName> for String {
    fn from(n: ServiceName) -> String {
        n.0
    }
}

impl fmt::Display for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for ServiceName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for ServiceName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// Levenshtein distance between two strings (by characters).
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// Up to `limit` candidates close to `wanted`, closest first: those within an edit distance of
/// a third of the longer name (at least 2), or that contain `wanted` or are contained in it.
///
/// ```
/// let s = mcpvisor_model::suggest("eccho", ["echo", "add", "sleep"], 3);
/// assert_eq!(s, vec!["echo".to_string()]);
/// ```
pub fn suggest<'a, I>(wanted: &str, candidates: I, limit: usize) -> Vec<String>
where
    I: IntoIterator<Item = &'a str>,
{
    let w = wanted.to_ascii_lowercase();
    let mut scored: Vec<(usize, String)> = candidates
        .into_iter()
        .filter_map(|c| {
            let lc = c.to_ascii_lowercase();
            let d = edit_distance(&w, &lc);
            let max = (w.chars().count().max(lc.chars().count()) / 3).max(2);
            let contains = !w.is_empty() && (lc.contains(&w) || w.contains(&lc));
            (d <= max || contains).then(|| (if d <= max { d } else { max + 1 }, c.to_owned()))
        })
        .collect();
    scored.sort();
    scored.dedup_by(|a, b| a.1 == b.1);
    scored.into_iter().take(limit).map(|(_, c)| c).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_letters_digits_dash_underscore() {
        for ok in ["a", "A-b_c9", &"x".repeat(64), "_lead", "trail_"] {
            assert!(ServiceName::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_each_rule() {
        assert_eq!(ServiceName::parse(""), Err(NameError::Empty));
        assert_eq!(
            ServiceName::parse(&"x".repeat(65)),
            Err(NameError::TooLong(65))
        );
        assert_eq!(ServiceName::parse("a.b"), Err(NameError::BadChar('.')));
        assert_eq!(ServiceName::parse("a b"), Err(NameError::BadChar(' ')));
        assert_eq!(ServiceName::parse("é"), Err(NameError::BadChar('é')));
        assert_eq!(ServiceName::parse("a__b"), Err(NameError::DoubleUnderscore));
    }

    #[test]
    fn suggestions_are_close_and_limited() {
        let c = ["memory", "memo", "time", "everything"];
        assert!(suggest("memroy", c, 3).contains(&"memory".to_string()));
        assert_eq!(suggest("memroy", c, 1).len(), 1);
        assert_eq!(suggest("tim", c, 3), vec!["time".to_string()]);
        assert!(suggest("zzzzzzzz", c, 3).is_empty());
    }
}
