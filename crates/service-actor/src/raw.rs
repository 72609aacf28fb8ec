//! Tool calls relayed as the JSON they came in, on a stdio server's connection: what the
//! gateway's byte-stream clients call through (DESIGN §12 asks ≥ 0.7× a bare client's
//! throughput). The call's arguments are written to the server as they are, with an id of
//! ours (`"mcpvisor-N"`), and the server's answer is taken off the connection by the
//! transport's [`LineTap`] before rmcp parses it, and handed back unparsed. Everything else
//! on the connection — rmcp's own requests, the server's notifications and requests, progress
//! for these calls (routed by [`crate::progress`]) — goes the usual way.

use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rmcp::ErrorData;
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::process::ChildStdin;
use tokio::sync::oneshot;

use crate::stdio::{LineTap, LineWriter};

/// Our ids' prefix: a JSON string, so never one of rmcp's numeric ids.
const PREFIX: &str = "\"mcpvisor-";

/// The server's answer to a relayed call.
#[derive(Debug)]
pub(crate) enum Reply {
    /// The `result`, as it came.
    Result(Box<RawValue>),
    /// A JSON-RPC error.
    Error(ErrorData),
}

#[derive(Default)]
struct State {
    /// The live connection's number and writer.
    generation: u64,
    writer: Option<LineWriter<ChildStdin>>,
    /// The last stdio connection has ended and none has been made since: a call now would
    /// have gone to it (not to a remote server the typed way).
    ended: bool,
    next: u64,
    /// Calls waiting for their answer: id → (connection, where the answer goes).
    pending: HashMap<u64, (u64, oneshot::Sender<Reply>)>,
}

/// The relayed calls of one service, across its connections (shared by its handle and each
/// stdio connection's tap).
#[derive(Clone, Default)]
pub(crate) struct RawCalls {
    state: Arc<Mutex<State>>,
    /// `pending.len()`, read without the lock by every line the server sends.
    waiting: Arc<AtomicUsize>,
}

impl std::fmt::Debug for RawCalls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RawCalls({} waiting)",
            self.waiting.load(Ordering::Relaxed)
        )
    }
}

/// A call sent or about to be: its id and where its answer comes.
pub(crate) struct Pending {
    calls: RawCalls,
    pub(crate) id: u64,
    generation: u64,
    pub(crate) writer: LineWriter<ChildStdin>,
    pub(crate) reply: oneshot::Receiver<Reply>,
    /// Sent, and neither answered nor cancelled yet: dropped so (its caller gave up on the
    /// future), the server is told it is cancelled.
    pub(crate) outstanding: bool,
}

impl Pending {
    /// Its connection could not be written to: it has ended (before its transport has read
    /// the end), and no call goes to it any more.
    pub(crate) fn connection_ended(&self) {
        let mut s = self.calls.lock();
        if s.generation == self.generation {
            s.writer = None;
            s.ended = true;
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if self.outstanding {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                let writer = self.writer.clone();
                let line = cancel_line(self.id, "the caller went away");
                let grace = mcpvisor_model::defaults::CANCEL_GRACE;
                runtime.spawn(async move {
                    let _ = tokio::time::timeout(grace, writer.send_line(line)).await;
                });
            }
        }
        let mut s = self.calls.lock();
        if s.pending.remove(&self.id).is_some() {
            self.calls.waiting.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl RawCalls {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new connection writing to `writer`: the tap its transport reads through.
    pub(crate) fn attach(&self, writer: LineWriter<ChildStdin>) -> Arc<dyn LineTap> {
        let mut s = self.lock();
        s.generation += 1;
        s.writer = Some(writer);
        s.ended = false;
        Arc::new(Link {
            calls: self.clone(),
            generation: s.generation,
        })
    }

    /// Whether the last stdio connection has ended with none made since.
    pub(crate) fn ended(&self) -> bool {
        self.lock().ended
    }

    /// A connection was made (of any kind): calls go to it.
    pub(crate) fn connected(&self) {
        self.lock().ended = false;
    }

    /// A new call on the live stdio connection; `Ok(None)` when there is none because the
    /// server is remote, `Err(())` when the stdio connection has just ended.
    pub(crate) fn begin(&self) -> Result<Option<Pending>, ()> {
        let mut s = self.lock();
        let Some(writer) = s.writer.clone() else {
            return if s.ended { Err(()) } else { Ok(None) };
        };
        s.next += 1;
        let (id, generation) = (s.next, s.generation);
        let (tx, reply) = oneshot::channel();
        s.pending.insert(id, (generation, tx));
        self.waiting.fetch_add(1, Ordering::Relaxed);
        Ok(Some(Pending {
            calls: self.clone(),
            id,
            generation,
            writer,
            reply,
            outstanding: false,
        }))
    }
}

/// One connection's view of [`RawCalls`].
struct Link {
    calls: RawCalls,
    generation: u64,
}

/// What a line is, as far as telling one of our answers goes.
#[derive(Deserialize)]
struct Peek<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    result: Option<&'a RawValue>,
    #[serde(default)]
    error: Option<ErrorData>,
}

/// Our id's number in `raw` (`"mcpvisor-N"`).
fn our_id(raw: &RawValue) -> Option<u64> {
    raw.get()
        .strip_prefix(PREFIX)?
        .strip_suffix('"')?
        .parse()
        .ok()
}

impl LineTap for Link {
    fn claim(&self, line: &[u8]) -> bool {
        if self.calls.waiting.load(Ordering::Relaxed) == 0
            || memchr::memmem::find(line, PREFIX.as_bytes()).is_none()
        {
            return false;
        }
        let Ok(peek) = serde_json::from_slice::<Peek>(line) else {
            return false;
        };
        let reply = match (peek.result, peek.error) {
            (Some(r), None) => Reply::Result(r.to_owned()),
            (None, Some(e)) => Reply::Error(e),
            _ => return false,
        };
        let Some(id) = peek.id.and_then(our_id) else {
            return false;
        };
        let waiting = self.calls.lock().pending.remove(&id);
        match waiting {
            Some((_, tx)) => {
                self.calls.waiting.fetch_sub(1, Ordering::Relaxed);
                let _ = tx.send(reply);
                true
            }
            // Answered after its caller gave up (timed out, cancelled): dropped here.
            None => true,
        }
    }

    /// The connection is gone: its calls fail (their answers can no longer come).
    fn closed(&self) {
        let mut s = self.calls.lock();
        if s.generation == self.generation {
            s.writer = None;
            s.ended = true;
        }
        let before = s.pending.len();
        let generation = self.generation;
        s.pending.retain(|_, (g, _)| *g != generation);
        let gone = before - s.pending.len();
        self.calls.waiting.fetch_sub(gone, Ordering::Relaxed);
    }
}

/// The request line for a relayed call `id` of `tool` (its `arguments` as they came); with a
/// progress token (the id itself) when progress is wanted.
pub(crate) fn request_line(
    id: u64,
    tool: &str,
    arguments: Option<&RawValue>,
    progress: bool,
) -> Vec<u8> {
    let args = arguments.map_or(0, |a| a.get().len());
    let mut line = Vec::with_capacity(128 + tool.len() + args);
    let _ = write!(
        line,
        r#"{{"jsonrpc":"2.0","id":"mcpvisor-{id}","method":"tools/call","params":{{"name":"#
    );
    // A `&str` always serializes.
    let _ = serde_json::to_writer(&mut line, tool);
    if let Some(a) = arguments {
        line.extend_from_slice(br#","arguments":"#);
        line.extend_from_slice(a.get().as_bytes());
    }
    if progress {
        let _ = write!(line, r#","_meta":{{"progressToken":"mcpvisor-{id}"}}"#);
    }
    line.extend_from_slice(b"}}\n");
    line
}

/// `notifications/cancelled` for relayed call `id`.
pub(crate) fn cancel_line(id: u64, reason: &str) -> Vec<u8> {
    let mut line = Vec::with_capacity(128);
    let _ = write!(
        line,
        r#"{{"jsonrpc":"2.0","method":"notifications/cancelled","params":{{"requestId":"mcpvisor-{id}","reason":"#
    );
    let _ = serde_json::to_writer(&mut line, reason);
    line.extend_from_slice(b"}}\n");
    line
}

/// The progress token a relayed call `id` gets.
pub(crate) fn progress_token(id: u64) -> rmcp::model::ProgressToken {
    rmcp::model::ProgressToken(rmcp::model::NumberOrString::String(
        format!("mcpvisor-{id}").into(),
    ))
}

/// Whether a result says `isError: true`.
pub(crate) fn is_error(result: &RawValue) -> bool {
    #[derive(Deserialize)]
    struct Flag {
        #[serde(rename = "isError", default)]
        is_error: Option<bool>,
    }
    serde_json::from_str::<Flag>(result.get()).is_ok_and(|f| f.is_error == Some(true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines_are_the_arguments_as_they_came_under_our_id() {
        let args = RawValue::from_string(r#"{"b":1, "a":"x"}"#.into()).unwrap();
        let line = request_line(7, "echo \"q\"", Some(&args), true);
        let text = std::str::from_utf8(&line).unwrap();
        assert!(text.ends_with('\n'));
        let v: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(v["id"], "mcpvisor-7");
        assert_eq!(v["method"], "tools/call");
        assert_eq!(v["params"]["name"], "echo \"q\"");
        assert_eq!(v["params"]["_meta"]["progressToken"], "mcpvisor-7");
        // Byte for byte, key order and spacing kept.
        assert!(text.contains(r#""arguments":{"b":1, "a":"x"}"#));
        let bare: serde_json::Value =
            serde_json::from_slice(&request_line(8, "t", None, false)).unwrap();
        assert_eq!(
            bare,
            serde_json::json!({"jsonrpc":"2.0","id":"mcpvisor-8","method":"tools/call",
                "params":{"name":"t"}})
        );
        let c: serde_json::Value = serde_json::from_slice(&cancel_line(9, "why")).unwrap();
        assert_eq!(c["params"]["requestId"], "mcpvisor-9");
        assert_eq!(c["params"]["reason"], "why");
    }

    #[tokio::test]
    async fn a_tap_takes_only_answers_to_calls_waiting_and_the_connection_end_fails_them() {
        let calls = RawCalls::default();
        // The writer is a child's stdin: a real child's.
        let mut child = tokio::process::Command::new("cat")
            .stdin(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let lean = crate::stdio::LeanStdio::new("t", tokio::io::empty(), stdin);
        assert!(
            matches!(calls.begin(), Ok(None)),
            "never connected: a remote server's call"
        );
        let tap = calls.attach(lean.writer());
        let lean = lean.with_tap(tap.clone());
        // Nothing waiting: nothing is taken, not even a line with our id.
        assert!(!tap.claim(br#"{"jsonrpc":"2.0","id":"mcpvisor-1","result":{}}"#));
        let mut first = calls.begin().unwrap().unwrap();
        let second = calls.begin().unwrap().unwrap();
        assert_eq!((first.id, second.id), (1, 2));
        // rmcp's own answers, notifications and the server's requests pass.
        assert!(!tap.claim(br#"{"jsonrpc":"2.0","id":1,"result":{}}"#));
        assert!(
            !tap.claim(br#"{"jsonrpc":"2.0","id":"mcpvisor-1","method":"roots/list","params":{}}"#)
        );
        assert!(
            tap.claim(br#"{"jsonrpc":"2.0","id":"mcpvisor-1","result":{"content":[],"x":[1, 2]}}"#)
        );
        match first.reply.try_recv().unwrap() {
            Reply::Result(r) => assert_eq!(r.get(), r#"{"content":[],"x":[1, 2]}"#),
            other => panic!("{other:?}"),
        }
        drop(first);
        // The connection ends: the call still waiting fails at once.
        drop(lean);
        let mut second = second;
        assert!(second.reply.try_recv().is_err());
        assert!(
            calls.begin().is_err(),
            "the connection has just ended: no call"
        );
        calls.connected();
        assert!(
            matches!(calls.begin(), Ok(None)),
            "connected again (remotely): the typed way"
        );
        drop(second);
        assert_eq!(calls.waiting.load(Ordering::Relaxed), 0);
        let _ = child.kill().await;
    }
}
