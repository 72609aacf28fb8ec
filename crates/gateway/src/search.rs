//! `tools: "search"` (`gateway.endpoints.<id>.tools`): a client lists two meta-tools —
//! `search_tools` (a query: the best matching tools of the endpoint, with their full input
//! schemas) and `call_tool` (a found tool's name and arguments) — and what `pinned` names,
//! instead of every tool of the fleet. The ranking is the registry's `ToolSearch` (BM25). The
//! index is the endpoint's view's: it follows the fleet as the view does, idle lazy services
//! included, and holds only what the endpoint's allow and deny lists admit, so search and call
//! see the same.

use std::sync::Arc;

use rmcp::model::{CallToolRequestParams, CallToolResult, ContentBlock, Tool};
use serde_json::{json, Map, Value};

use crate::core::{tool_of, Offered};

/// The meta-tool that searches.
pub(crate) const SEARCH_TOOL: &str = "search_tools";
/// The meta-tool that calls a found tool.
pub(crate) const CALL_TOOL: &str = "call_tool";
/// Which of `all` (sorted by exposed name) a list of at most `max` shows (`max_tools`): the
/// services take turns in name order, each giving its next listed tool in name order, until
/// the list is full — every service keeps some tools, and the same fleet always gives the
/// same list.
pub(crate) fn cut(all: &[Offered], max: usize, listed: impl Fn(&Offered) -> bool) -> Vec<bool> {
    let mut by_service: std::collections::BTreeMap<&str, std::collections::VecDeque<usize>> =
        Default::default();
    for (i, o) in all.iter().enumerate().filter(|(_, o)| listed(o)) {
        by_service
            .entry(o.entry.service.name.as_str())
            .or_default()
            .push_back(i);
    }
    let mut shown = vec![false; all.len()];
    let mut left = max;
    while left > 0 && by_service.values().any(|q| !q.is_empty()) {
        for queue in by_service.values_mut() {
            if left == 0 {
                break;
            }
            if let Some(i) = queue.pop_front() {
                shown[i] = true;
                left -= 1;
            }
        }
    }
    shown
}

/// Whether `name` is a meta-tool's.
pub(crate) fn is_meta(name: &str) -> bool {
    name == SEARCH_TOOL || name == CALL_TOOL
}

/// Results a search answers unless asked for another number.
const DEFAULT_LIMIT: usize = 5;
/// The most a search answers.
const MAX_LIMIT: usize = 20;

/// An endpoint's tools, indexed for search (ids are positions in the view's `all`).
pub(crate) type Index = mcpvisor_supervisor::ToolSearch;

/// The index of `tools` (position, tool) of a view.
pub(crate) fn index<'a>(tools: impl Iterator<Item = (usize, &'a Offered)>) -> Arc<Index> {
    Arc::new(Index::new(
        tools.map(|(i, o)| (i, &o.entry, o.exposed.as_str())),
    ))
}

/// The two meta-tools, as `tools/list` shows them under `tools: "search"`.
pub fn meta_tools() -> Vec<Tool> {
    let tool = |v: Value| serde_json::from_value::<Tool>(v).ok();
    [
        tool(json!({
            "name": SEARCH_TOOL,
            "title": "Search tools",
            "description": "Find the tools for a task among every tool this gateway can call \
                (they are not all listed, to keep the list short). Answers the best matches, \
                each with its name, description and input schema; call one with call_tool \
                (or by its name).",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "query": {"type": "string", "description": "what the tool should do, in a few words"},
                    "limit": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT,
                              "description": format!("how many tools to answer (default {DEFAULT_LIMIT})")}
                },
                "required": ["query"]
            },
            "annotations": {"readOnlyHint": true}
        })),
        tool(json!({
            "name": CALL_TOOL,
            "title": "Call a tool",
            "description": "Call a tool found by search_tools, by its name, with its arguments.",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "description": "the tool's name, as search_tools answered it"},
                    "arguments": {"type": "object", "description": "the tool's arguments, as its input schema says"}
                },
                "required": ["name"]
            }
        })),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The answer to a `search_tools` call with `arguments` over `tools` (the view's, with the
/// index of those a search may find).
pub(crate) fn answer(
    all: &[Offered],
    index: &Index,
    arguments: Option<&Map<String, Value>>,
) -> CallToolResult {
    let query = arguments
        .and_then(|a| a.get("query"))
        .and_then(Value::as_str)
        .map(str::trim)
        .unwrap_or("");
    if query.is_empty() {
        return CallToolResult::error(vec![ContentBlock::text(
            "search_tools needs a 'query': what the tool should do, in a few words",
        )]);
    }
    let limit = arguments
        .and_then(|a| a.get("limit"))
        .and_then(Value::as_u64)
        .map_or(DEFAULT_LIMIT, |n| (n as usize).clamp(1, MAX_LIMIT));
    let found: Vec<Value> = index
        .search(query, limit)
        .into_iter()
        .filter_map(|i| all.get(i))
        .filter_map(|o| {
            let mut v = serde_json::to_value(tool_of(o)?).ok()?;
            v["service"] = Value::String(o.entry.service.name.to_string());
            Some(v)
        })
        .collect();
    let text = json!({
        "query": query,
        "tools": found,
        "how": "call one with call_tool {\"name\": NAME, \"arguments\": {...}}, or by its name",
    });
    let mut result = CallToolResult::success(vec![ContentBlock::text(text.to_string())]);
    result.structured_content = Some(text);
    result
}

/// A `call_tool` call as the call of the tool it names; an error says what is missing.
pub(crate) fn unwrap_call(
    mut request: CallToolRequestParams,
) -> Result<CallToolRequestParams, String> {
    let args = request.arguments.take().unwrap_or_default();
    let Some(name) = args.get("name").and_then(Value::as_str) else {
        return Err(
            "call_tool needs 'name': the name of a tool search_tools answered, and its \
             'arguments'"
                .into(),
        );
    };
    request.name = name.to_owned().into();
    request.arguments = match args.get("arguments") {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) => Some(m.clone()),
        Some(_) => return Err("call_tool's 'arguments' must be an object".into()),
    };
    Ok(request)
}
