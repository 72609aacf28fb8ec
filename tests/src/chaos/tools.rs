//! Tool definitions (with JSON input schemas) and argument helpers of `chaos-mcp`.

use std::sync::Arc;

use rmcp::model::{JsonObject, Tool};
use serde_json::{json, Value};

/// Names of the `chaos` tool's actions.
pub const ACTIONS: &[&str] = &[
    "exit",
    "hang",
    "close_stdout",
    "garbage",
    "stderr_flood",
    "stderr_lines",
    "ignore_sigterm",
    "spawn_grandchild",
    "add_tool",
    "remove_tool",
    "no_ping",
    "forget_sessions",
    "request_id",
    "read_file",
    "write_file",
    "allocate",
    "fork",
    "open_files",
    "unix_request",
];

fn schema(value: Value) -> Arc<JsonObject> {
    match value {
        Value::Object(map) => Arc::new(map),
        _ => unreachable!("tool schemas are JSON objects"),
    }
}

/// The built-in tools plus `count` synthetic ones.
pub fn initial_tools(count: usize) -> Vec<Tool> {
    let mut tools = vec![
        Tool::new(
            "echo",
            "Return `text` unchanged.",
            schema(json!({
                "type": "object",
                "properties": {"text": {"type": "string", "description": "text to return"}},
                "required": ["text"],
            })),
        ),
        Tool::new(
            "add",
            "Return the sum a + b as text.",
            schema(json!({
                "type": "object",
                "properties": {
                    "a": {"type": "number", "description": "left operand"},
                    "b": {"type": "number", "description": "right operand"},
                },
                "required": ["a", "b"],
            })),
        ),
        Tool::new(
            "sleep",
            "Sleep `ms` milliseconds, then return \"slept <ms>\".",
            schema(json!({
                "type": "object",
                "properties": {"ms": {"type": "integer", "minimum": 0, "description": "milliseconds"},
                               "steps": {"type": "integer", "minimum": 0, "description": "progress notifications to send meanwhile"}},
                "required": ["ms"],
            })),
        ),
        Tool::new(
            "fail",
            "Return a tool error (isError: true) carrying `message`.",
            schema(json!({
                "type": "object",
                "properties": {"message": {"type": "string", "description": "error message"}},
            })),
        ),
        Tool::new(
            "pids",
            "Return JSON {pid, ppid, pgid, grandchild, grandchildren} of this server.",
            schema(json!({"type": "object", "properties": {}})),
        ),
        chaos_tool(),
    ];
    tools.extend((0..count).map(|i| echo_args_tool(&format!("tool_{i}"))));
    tools
}

/// A tool that returns its arguments as JSON text (synthetic and runtime-added tools).
pub fn echo_args_tool(name: &str) -> Tool {
    Tool::new(
        name.to_owned(),
        format!("Synthetic tool {name}: returns its arguments as JSON text."),
        schema(json!({
            "type": "object",
            "properties": {"text": {"type": "string", "description": "any text"}},
            "additionalProperties": true,
        })),
    )
}

fn chaos_tool() -> Tool {
    Tool::new(
        "chaos",
        "Inject a fault at run time. Actions: exit {code?, after_response?}, hang, close_stdout, \
         garbage {text?}, stderr_flood {bytes}, stderr_lines {count}, ignore_sigterm, \
         spawn_grandchild {keep_stdio?}, add_tool {name}, remove_tool {name}, no_ping {enabled?}, forget_sessions (HTTP: every session so far gets 404), \
         request_id (not a fault: answers with this call's JSON-RPC id, as JSON); for sandboxes: \
         read_file {path}, write_file {path, text?}, allocate {mib} (and touch it), fork {count} \
         (sleeping children, killed after), open_files {count}, unix_request {path, text} (one line \
         to a Unix socket, its first line of answer) — each answers what it got, or \
         the system's refusal as a tool error.",
        schema(json!({
            "type": "object",
            "properties": {
                "action": {"type": "string", "enum": ACTIONS, "description": "the fault to inject"},
                "code": {"type": "integer", "description": "exit: exit code (default 1)"},
                "path": {"type": "string", "description": "read_file, write_file, unix_request: the file"},
                "mib": {"type": "integer", "description": "allocate: mebibytes"},
                "count": {"type": "integer", "description": "stderr_lines, fork, open_files: how many"},
                "after_response": {"type": "boolean", "description": "exit: answer this call first (default false)"},
                "text": {"type": "string", "description": "garbage: the line to write"},
                "bytes": {"type": "integer", "minimum": 0, "description": "stderr_flood: bytes to write"},
                "count": {"type": "integer", "minimum": 0, "description": "stderr_lines: lines to write"},
                "keep_stdio": {"type": "boolean", "description": "spawn_grandchild: inherit stdout/stderr"},
                "name": {"type": "string", "description": "add_tool/remove_tool: tool name"},
                "enabled": {"type": "boolean", "description": "no_ping: refuse pings (default true)"},
            },
            "required": ["action"],
        })),
    )
}

/// Typed access to tool arguments; every error is a message for a tool error result.
pub struct ToolArgs<'a> {
    tool: &'a str,
    args: &'a JsonObject,
}

impl<'a> ToolArgs<'a> {
    pub fn new(tool: &'a str, args: &'a JsonObject) -> Self {
        Self { tool, args }
    }

    fn bad(&self, key: &str, what: &str) -> String {
        format!("{}: argument `{key}` must be {what}", self.tool)
    }

    fn missing(&self, key: &str) -> String {
        format!("{}: missing required argument `{key}`", self.tool)
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        self.args.get(key).filter(|value| !value.is_null())
    }

    pub fn opt_str(&self, key: &str) -> Result<Option<&'a str>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(self.bad(key, "a string")),
        }
    }

    pub fn str(&self, key: &str) -> Result<&'a str, String> {
        self.opt_str(key)?.ok_or_else(|| self.missing(key))
    }

    pub fn opt_u64(&self, key: &str) -> Result<Option<u64>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(value) => value
                .as_u64()
                .map(Some)
                .ok_or_else(|| self.bad(key, "a non-negative integer")),
        }
    }

    pub fn u64(&self, key: &str) -> Result<u64, String> {
        self.opt_u64(key)?.ok_or_else(|| self.missing(key))
    }

    pub fn opt_i32(&self, key: &str) -> Result<Option<i32>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(value) => value
                .as_i64()
                .and_then(|v| i32::try_from(v).ok())
                .map(Some)
                .ok_or_else(|| self.bad(key, "a 32-bit integer")),
        }
    }

    pub fn opt_bool(&self, key: &str) -> Result<Option<bool>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(self.bad(key, "a boolean")),
        }
    }

    pub fn number(&self, key: &str) -> Result<&'a serde_json::Number, String> {
        match self.get(key) {
            None => Err(self.missing(key)),
            Some(Value::Number(n)) => Ok(n),
            Some(_) => Err(self.bad(key, "a number")),
        }
    }
}

/// `a + b`, as an integer when both are integers and the sum fits, else as a float.
pub fn add_numbers(a: &serde_json::Number, b: &serde_json::Number) -> String {
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        if let Some(sum) = x.checked_add(y) {
            return sum.to_string();
        }
    }
    let sum = a.as_f64().unwrap_or(f64::NAN) + b.as_f64().unwrap_or(f64::NAN);
    sum.to_string()
}
