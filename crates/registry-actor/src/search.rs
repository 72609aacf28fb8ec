//! Tool search: a BM25 index (the `bm25` crate: English stemming and stop words) over each
//! tool's listed name and own name split into words (`read_text_file`, `getUserInfo` → "read
//! text file", "get user info"), its service's name, title, description, and parameter names
//! and descriptions. One home for the ranking: the gateway's `search_tools` and
//! `Store::search_tools` (`mcpvisor tools --search`) both rank with it.

use bm25::{Language, SearchEngine, SearchEngineBuilder};
use serde_json::Value;

use crate::view::ToolEntry;

/// The most distinct words of a query that count (a longer query costs more, finds no more).
pub const MAX_QUERY_WORDS: usize = 32;

/// Tools indexed for search; ids are the caller's (positions in its list).
#[derive(Debug)]
pub struct ToolSearch {
    engine: SearchEngine<usize>,
}

impl ToolSearch {
    /// The index of `tools`: (id, the tool, the name it is listed under).
    pub fn new<'a>(tools: impl IntoIterator<Item = (usize, &'a ToolEntry, &'a str)>) -> ToolSearch {
        let docs: Vec<bm25::Document<usize>> = tools
            .into_iter()
            .map(|(i, t, listed)| bm25::Document::new(i, document(t, listed)))
            .collect();
        ToolSearch {
            engine: SearchEngineBuilder::<usize>::with_documents(Language::English, docs).build(),
        }
    }

    /// The ids of the best matches of `query`, best first (ties by id: the same answer every
    /// time), at most `limit`. Of the query, its first [`MAX_QUERY_WORDS`] distinct words count.
    pub fn search(&self, query: &str, limit: usize) -> Vec<usize> {
        // A query is words already: only its separators are spaces (a "GitHub" in it is not
        // "git hub", as in a tool's name `getUserInfo` is "get user info").
        let mut seen: Vec<&str> = Vec::new();
        let separator = |c: char| c.is_whitespace() || matches!(c, '_' | '-' | '.' | '/' | ':');
        for w in query.split(separator) {
            if !w.is_empty() && !seen.contains(&w) && seen.len() < MAX_QUERY_WORDS {
                seen.push(w);
            }
        }
        let mut found = self.engine.search(&seen.join(" "), None);
        found.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then(a.document.id.cmp(&b.document.id))
        });
        found
            .into_iter()
            .take(limit)
            .map(|r| r.document.id)
            .collect()
    }
}

/// What a tool is found by.
fn document(t: &ToolEntry, listed: &str) -> String {
    let tool = &t.tool;
    let mut text = vec![
        words(listed),
        words(&tool.name),
        words(t.service.name.as_str()),
    ];
    if let Some(title) = tool.raw.get("title").and_then(Value::as_str) {
        text.push(title.to_owned());
    }
    if let Some(d) = &tool.description {
        text.push(d.clone());
    }
    if let Some(Value::Object(props)) = tool.input_schema.get("properties") {
        for (name, p) in props {
            text.push(words(name));
            if let Some(d) = p.get("description").and_then(Value::as_str) {
                text.push(d.to_owned());
            }
        }
    }
    text.join(" ")
}

/// An identifier or a query as words: `_`, `-`, `.`, `/` and `:` are spaces, and a lower-case
/// letter or digit followed by an upper-case one starts a word.
pub fn words(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    let mut prev_lower = false;
    for c in s.chars() {
        if matches!(c, '_' | '-' | '.' | '/' | ':') {
            out.push(' ');
            prev_lower = false;
            continue;
        }
        if c.is_uppercase() && prev_lower {
            out.push(' ');
        }
        prev_lower = c.is_lowercase() || c.is_ascii_digit();
        out.extend(c.to_lowercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::words;

    #[test]
    fn names_are_split_into_words() {
        assert_eq!(words("fs__read_text_file"), "fs  read text file");
        assert_eq!(words("getUserInfo"), "get user info");
        assert_eq!(words("git-log.v2"), "git log v2");
    }
}
