//! What a server offers: its identity and its tools, as plain data (the MCP SDK's own types stay
//! inside the service actor).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A server's tool list, shared: the service actor converts it once and the registry, the
/// state file and every report hold the same allocation (tool schemas are the largest thing a
/// supervisor keeps, and 30 servers' worth of copies would cost megabytes).
pub type ToolList = std::sync::Arc<[ToolInfo]>;

/// One tool as the server lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolInfo {
    /// The server's own name for the tool.
    pub name: String,
    /// Its description, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON Schema of its arguments.
    #[serde(default)]
    pub input_schema: Map<String, Value>,
    /// The rest of the tool object as the server sent it (title, annotations, output schema,
    /// ...); `name`, `description` and `inputSchema` are kept once, in their own fields.
    #[serde(default)]
    pub raw: Value,
}

/// The server's identity from `initialize`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ServerInfo {
    /// `serverInfo.name`.
    pub name: String,
    /// `serverInfo.version`.
    pub version: String,
    /// The negotiated protocol version.
    pub protocol_version: String,
    /// `instructions`, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
}
