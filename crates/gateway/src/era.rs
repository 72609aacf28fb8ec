//! The protocol eras at the client edge (DESIGN §17): what a client of one revision must get
//! that the upstreams' answers, of either era, may lack. rmcp applies the rest of each
//! revision's rules on the way out (cache hints on a 2026-07-28 result, `resultType` stripped
//! for older clients, -32002 → -32602 for 2026-07-28, the inline `_meta` checks), so what is
//! written here holds for every transport.
//!
//! - Every result the gateway passes on from a server carries `resultType` (`"complete"`
//!   unless the server said otherwise): a handshake-era upstream's result has none, and the
//!   official SDKs of the new era refuse a result without it. rmcp takes it off again for a
//!   client before 2026-07-28.
//! - A resource that is not there is an error whose `data.uri` names it (SEP-2164).

use rmcp::model::{
    CallToolResult, CompleteResult, ErrorCode, GetPromptResult, ProtocolVersion,
    ReadResourceResult, ResultType,
};
use rmcp::ErrorData as McpError;

/// What a client's revision defines of the transport: the one place the gateway decides what
/// an event, header or status may be sent to a client of a revision (ARCHITECTURE.md has the
/// table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Revision {
    /// 2024-11-05 (HTTP+SSE), and anything older or unknown.
    V2024_11_05,
    /// 2025-03-26: streamable HTTP, `Mcp-Session-Id`, SSE event ids.
    V2025_03_26,
    /// 2025-06-18: the `MCP-Protocol-Version` header.
    V2025_06_18,
    /// 2025-11-25: SSE priming events and `retry` (SEP-1699).
    V2025_11_25,
    /// 2026-07-28: stateless requests, `resultType`, `Mcp-Method`/`Mcp-Name`.
    V2026_07_28,
}

impl Revision {
    /// The newest revision the gateway speaks.
    pub(crate) const NEWEST: Revision = Revision::V2026_07_28;

    /// The revision `version` names (a later date than any known: the newest).
    pub(crate) fn of(version: &ProtocolVersion) -> Revision {
        match version.as_str() {
            v if v >= "2026-07-28" => Revision::V2026_07_28,
            v if v >= "2025-11-25" => Revision::V2025_11_25,
            v if v >= "2025-06-18" => Revision::V2025_06_18,
            v if v >= "2025-03-26" => Revision::V2025_03_26,
            _ => Revision::V2024_11_05,
        }
    }

    /// SSE priming events (an event id with no data) and the `retry` field.
    pub(crate) fn sse_priming(self) -> bool {
        self >= Revision::V2025_11_25
    }
}

/// Whether `version` is the stateless era (2026-07-28 and later). ISO dates compare as
/// strings.
pub(crate) fn stateless(version: Option<&ProtocolVersion>) -> bool {
    version.is_some_and(|v| v.as_str() >= ProtocolVersion::V_2026_07_28.as_str())
}

/// A server's result as the gateway answers it: `resultType` set where it is missing.
pub(crate) trait Complete {
    /// `self` with `resultType: "complete"` unless it names one.
    fn completed(self) -> Self;
}

macro_rules! complete {
    ($($t:ty),*) => {$(
        impl Complete for $t {
            fn completed(mut self) -> Self {
                if self.result_type.is_none() {
                    self.result_type = Some(ResultType::COMPLETE);
                }
                self
            }
        }
    )*};
}
complete!(
    CallToolResult,
    ReadResourceResult,
    GetPromptResult,
    CompleteResult
);

/// Writes a server's raw `result` (a JSON object) to `out` with `resultType: "complete"` first
/// unless it names one — without parsing its members' values.
pub(crate) fn complete_raw(out: &mut Vec<u8>, result: &serde_json::value::RawValue) {
    let text = result.get().trim_start();
    let named =
        serde_json::from_str::<std::collections::HashMap<&str, &serde_json::value::RawValue>>(text)
            .is_ok_and(|m| m.contains_key("resultType"));
    match text.strip_prefix('{') {
        Some(rest) if !named => {
            out.extend_from_slice(br#"{"resultType":"complete""#);
            if !rest.trim_start().starts_with('}') {
                out.push(b',');
            }
            out.extend_from_slice(rest.as_bytes());
        }
        _ => out.extend_from_slice(text.as_bytes()),
    }
}

/// A resource error names the resource (SEP-2164: `data.uri`).
pub(crate) fn name_resource(mut error: McpError, uri: &str) -> McpError {
    let unknown =
        error.code == ErrorCode::RESOURCE_NOT_FOUND || error.code == ErrorCode::INVALID_PARAMS;
    if unknown && error.data.is_none() {
        error.data = Some(serde_json::json!({ "uri": uri }));
    }
    error
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmcp::model::ContentBlock;

    #[test]
    fn a_result_without_result_type_is_complete() {
        let raw: CallToolResult =
            serde_json::from_str(r#"{"content":[{"type":"text","text":"hi"}]}"#).unwrap();
        assert!(raw.result_type.is_none());
        let json = serde_json::to_value(raw.completed()).unwrap();
        assert_eq!(json["resultType"], "complete");
        let read: ReadResourceResult = serde_json::from_str(r#"{"contents":[]}"#).unwrap();
        let json = serde_json::to_value(read.completed()).unwrap();
        assert_eq!(json["resultType"], "complete");
    }

    #[test]
    fn a_raw_result_gets_result_type_unless_it_has_one() {
        let raw = |s: &str| serde_json::value::RawValue::from_string(s.to_owned()).unwrap();
        let done = |s: &str| {
            let mut out = Vec::new();
            complete_raw(&mut out, &raw(s));
            serde_json::from_slice::<serde_json::Value>(&out).unwrap()
        };
        let v = done(r#"{"content":[{"type":"text","text":"a \"resultType\": x"}]}"#);
        assert_eq!(v["resultType"], "complete");
        assert_eq!(v["content"][0]["type"], "text");
        assert_eq!(done("{}")["resultType"], "complete");
        assert_eq!(done(r#"{"resultType":"task","x":1}"#)["resultType"], "task");
    }

    #[test]
    fn a_result_type_given_is_kept() {
        let mut given = CallToolResult::success(vec![ContentBlock::text("x")]);
        given.result_type = Some(ResultType::TASK);
        assert_eq!(given.completed().result_type, Some(ResultType::TASK));
    }

    #[test]
    fn an_unknown_resource_names_its_uri() {
        let e = name_resource(
            McpError::new(ErrorCode::RESOURCE_NOT_FOUND, "no such resource", None),
            "test://nope",
        );
        assert_eq!(e.data.unwrap()["uri"], "test://nope");
        let other = name_resource(McpError::internal_error("boom", None), "test://x");
        assert!(other.data.is_none());
    }

    #[test]
    fn priming_events_exist_from_2025_11_25_on() {
        let of = |v: &str| Revision::of(&serde_json::from_value(v.into()).unwrap());
        assert!(!of("2024-11-05").sse_priming());
        assert!(!of("2025-03-26").sse_priming());
        assert!(!of("2025-06-18").sse_priming());
        assert!(of("2025-11-25").sse_priming());
        assert!(of("2026-07-28").sse_priming());
        assert_eq!(of("2027-01-01"), Revision::NEWEST);
    }

    #[test]
    fn only_2026_and_later_is_the_stateless_era() {
        assert!(stateless(Some(&ProtocolVersion::V_2026_07_28)));
        assert!(!stateless(Some(&ProtocolVersion::V_2025_11_25)));
        assert!(!stateless(None));
    }
}
