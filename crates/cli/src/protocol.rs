//! The control socket protocol: newline-delimited JSON over a Unix domain socket.
//!
//! A client writes one request per line and reads one response per line:
//!
//! ```text
//! → {"cmd": "call", "tool": "time__now", "args": {"tz": "UTC"}, "timeout_ms": 5000}
//! ← {"ok": true, "result": {"is_error": false, "result": {"content": [...]}}}
//! → {"cmd": "remove", "name": "nope"}
//! ← {"ok": false, "error": "no service named \"nope\"; ...", "code": 2}
//! ```
//!
//! `code` is the exit code the client should use (1 operation failed, 2 bad input). Several
//! requests may follow each other on one connection. `{"cmd": "events"}` turns the connection
//! into a stream: one response line, then one [`Event`](mcpvisor_model::Event) JSON object per
//! line until the client disconnects or the instance stops.
//!
//! Requests (`cmd`): `ping`, `status` (`name`?), `tools` (`service`?), `call` (`tool`, `args`?,
//! `timeout_ms`?), `add` (`config`: any accepted config JSON, `wait`), `remove` (`name`),
//! `start` / `restart` (`name`, `wait`), `stop` (`name`, `force`), `check`, `logs` (`name`,
//! `lines`?), `events`, `shutdown`. See [`Request`] for each result.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::io::{AsyncBufRead, AsyncBufReadExt};

use crate::error::{CliError, Exit};

/// Longest request line the server reads.
pub const MAX_REQUEST_BYTES: usize = 8 * 1024 * 1024;
/// Longest response line the client reads (tool results can be large).
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// One request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Is anybody there? Result: `{"pid", "version", "config", "state_dir", "started"}`
    /// (`started`: how the instance was started, in words).
    Ping,
    /// Result: an array of service views, or one view (with its stderr tail) when `name` is
    /// given.
    Status {
        /// One service only.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    /// Result: an array of tools (`name`, `service`, `tool`, `stale`).
    Tools {
        /// Tools of this service only.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        service: Option<String>,
        /// In this agent's scope.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        agent: Option<String>,
        /// Only the best matches of a query (the query, how many), best first.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        search: Option<(String, usize)>,
    },
    /// Result: an array of `{"uri", "name", "service", "original_uri", "resource"}`.
    Resources {
        /// In this agent's scope.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        agent: Option<String>,
    },
    /// Result: the `ReadResourceResult`.
    Read {
        /// The URI (as `resources` lists it, or one a template makes).
        uri: String,
        /// In this agent's scope.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        agent: Option<String>,
    },
    /// Result: an array of `{"name", "service", "original", "prompt"}`.
    Prompts {
        /// In this agent's scope.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        agent: Option<String>,
    },
    /// Result: the `GetPromptResult`.
    Prompt {
        /// `service__prompt`, or a bare name offered by one service only.
        name: String,
        /// The arguments object.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        args: Option<Map<String, Value>>,
        /// In this agent's scope.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        agent: Option<String>,
    },
    /// Result: `{"is_error": bool, "result": <CallToolResult>}`.
    Call {
        /// `service__tool` or a unique bare name.
        tool: String,
        /// The arguments object.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        args: Option<Map<String, Value>>,
        /// Overrides the service's call timeout.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_ms: Option<u64>,
        /// In this agent's scope.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        agent: Option<String>,
    },
    /// Result: `{"added": [names], "failed": [[name, [reasons]]], "services": [views]}`.
    Add {
        /// Any accepted config form: one service with `name`, `{"mcpServers": ...}`, ...
        config: Value,
        /// Wait for the added services to come up (or fail) before answering.
        #[serde(default)]
        wait: bool,
    },
    /// Result: `{"removed": name}`.
    Remove {
        /// The service.
        name: String,
    },
    /// Result: the service's view.
    Start {
        /// The service.
        name: String,
        /// Wait for it to come up (or fail).
        #[serde(default)]
        wait: bool,
    },
    /// Result: the service's view.
    Stop {
        /// The service.
        name: String,
        /// SIGKILL at once.
        #[serde(default)]
        force: bool,
    },
    /// Result: the service's view.
    Restart {
        /// The service.
        name: String,
        /// Wait for it to come up (or fail).
        #[serde(default)]
        wait: bool,
    },
    /// Result: an array of `{"name", "ok", "latency_ms", "state", "detail"}`.
    Check,
    /// Result: `{"service", "lines": [...]}`.
    Logs {
        /// The service.
        name: String,
        /// How many of the last lines.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lines: Option<usize>,
    },
    /// Streams events (see the module docs).
    Events,
    /// Stop every service and exit, as on SIGTERM. Result: `{"pid"}` of the instance, once
    /// the stop has begun.
    Shutdown,
}

/// A result as JSON text: encoded once where it is made and decoded once where it is used,
/// with no JSON tree in between (`status` of 1,000 services is a megabyte).
pub type Answer = Box<serde_json::value::RawValue>;

/// `value` as an [`Answer`].
pub fn answer_of(value: &impl Serialize) -> Result<Answer, CliError> {
    serde_json::value::to_raw_value(value)
        .map_err(|e| CliError::failed(format!("cannot encode the answer: {e}")))
}

/// One response line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Response {
    /// Whether the request succeeded.
    pub ok: bool,
    /// The result (when `ok`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Answer>,
    /// What went wrong (when not `ok`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The exit code the client should use (when not `ok`): 1 or 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<Exit>,
}

impl Response {
    /// A success.
    pub fn ok(result: Answer) -> Self {
        Response {
            ok: true,
            result: Some(result),
            error: None,
            code: None,
        }
    }

    /// A failure.
    pub fn err(e: &CliError) -> Self {
        Response {
            ok: false,
            result: None,
            error: Some(e.message.clone()),
            code: Some(e.code),
        }
    }

    /// Back to a result on the client side.
    pub fn into_result(self) -> Result<Answer, CliError> {
        if self.ok {
            match self.result {
                Some(r) => Ok(r),
                None => answer_of(&Value::Null),
            }
        } else {
            Err(CliError {
                code: match self.code {
                    Some(Exit::BadInput) => Exit::BadInput,
                    _ => Exit::Failed,
                },
                message: self
                    .error
                    .unwrap_or_else(|| "the instance reported an error without a message".into()),
            })
        }
    }

    /// The response as one line (with its newline).
    pub fn to_line(&self) -> String {
        let mut s = serde_json::to_string(self).unwrap_or_else(|e| {
            format!(r#"{{"ok":false,"error":"cannot encode the response: {e}","code":1}}"#)
        });
        s.push('\n');
        s
    }
}

/// What reading one line gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A whole line, without its newline.
    Text(String),
    /// The peer closed the connection (no partial line pending).
    Eof,
    /// The line is longer than allowed (the connection should be closed).
    TooLong,
}

/// Reads one `\n`-terminated line of at most `max` bytes. A last line without a newline
/// counts as a line.
pub async fn read_line<R: AsyncBufRead + Unpin>(r: &mut R, max: usize) -> std::io::Result<Line> {
    let mut buf = Vec::new();
    loop {
        let available = r.fill_buf().await?;
        if available.is_empty() {
            return Ok(if buf.is_empty() {
                Line::Eof
            } else {
                Line::Text(String::from_utf8_lossy(&buf).into_owned())
            });
        }
        let (used, done) = match available.iter().position(|b| *b == b'\n') {
            Some(i) => {
                buf.extend_from_slice(&available[..i]);
                (i + 1, true)
            }
            None => {
                buf.extend_from_slice(available);
                (available.len(), false)
            }
        };
        r.consume(used);
        if buf.len() > max {
            return Ok(Line::TooLong);
        }
        if done {
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
            return Ok(Line::Text(String::from_utf8_lossy(&buf).into_owned()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn requests_are_tagged_by_cmd() {
        let r: Request = serde_json::from_value(
            json!({"cmd": "call", "tool": "a__echo", "args": {"text": "hi"}}),
        )
        .unwrap();
        assert_eq!(
            r,
            Request::Call {
                tool: "a__echo".into(),
                args: Some(json!({"text": "hi"}).as_object().unwrap().clone()),
                timeout_ms: None,
                agent: None
            }
        );
        assert_eq!(
            serde_json::to_value(Request::Stop {
                name: "db".into(),
                force: true
            })
            .unwrap(),
            json!({"cmd": "stop", "name": "db", "force": true})
        );
        assert!(serde_json::from_value::<Request>(json!({"cmd": "explode"})).is_err());
        let typo = json!({"cmd": "stop", "name": "db", "forse": true});
        assert!(
            serde_json::from_value::<Request>(typo).is_err(),
            "a misspelt field is refused, not ignored"
        );
    }

    #[test]
    fn responses_carry_ok_result_or_error_and_code() {
        assert_eq!(
            Response::ok(answer_of(&json!([1])).unwrap()).to_line(),
            "{\"ok\":true,\"result\":[1]}\n"
        );
        let e = CliError::bad_input("no tool named \"x\"");
        let line = Response::err(&e).to_line();
        assert_eq!(
            line,
            "{\"ok\":false,\"error\":\"no tool named \\\"x\\\"\",\"code\":2}\n"
        );
        let back: Response = serde_json::from_str(&line).unwrap();
        assert_eq!(back.into_result().unwrap_err(), e);
    }

    #[tokio::test]
    async fn lines_are_bounded_and_a_last_unterminated_line_counts() {
        let mut r = tokio::io::BufReader::new(&b"one\r\ntwo\nthree"[..]);
        assert_eq!(
            read_line(&mut r, 10).await.unwrap(),
            Line::Text("one".into())
        );
        assert_eq!(
            read_line(&mut r, 10).await.unwrap(),
            Line::Text("two".into())
        );
        assert_eq!(
            read_line(&mut r, 10).await.unwrap(),
            Line::Text("three".into())
        );
        assert_eq!(read_line(&mut r, 10).await.unwrap(), Line::Eof);
        let mut r = tokio::io::BufReader::new(&b"0123456789abc\n"[..]);
        assert_eq!(read_line(&mut r, 10).await.unwrap(), Line::TooLong);
    }
}
