//! A lean newline-delimited JSON-RPC transport over a child's pipes, in place of rmcp's
//! `AsyncRwTransport` for stdio servers.
//!
//! Why not rmcp's: it holds an 8 KiB `BufReader`, an 8 KiB `FramedWrite` buffer and a line
//! buffer as large as the largest message for the whole life of every connection — about
//! 20 KiB a service, 20 MiB at 1,000 live services (measured with heaptrack; DESIGN §12 sets
//! 64 MiB for all of it). Here a read gets a 4 KiB buffer only once the pipe has data (see
//! [`Source`]), grown only for a message that needs it and given back once its messages are
//! consumed, so an idle connection holds none; a
//! message to the server is serialized into its own buffer and written whole, so nothing is
//! kept between writes either.
//!
//! Behaviour kept from rmcp's transport: a UTF-8 BOM and a `\r` before the newline are
//! tolerated, blank lines are skipped, a line longer than [`MAX_LINE`] is dropped once it
//! passes the limit (its tail is skipped, never buffered), and a line that is not a JSON-RPC
//! message is logged and skipped — the connection stays up. Invariant: `receive` is cancel-safe (bytes read are kept
//! in the struct, never in the future), as rmcp's service loop polls it inside a `select!`.

use std::borrow::Cow;
use std::future::Future;
use std::sync::Arc;

use rmcp::service::{RxJsonRpcMessage, ServiceRole, TxJsonRpcMessage};
use rmcp::transport::Transport;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::Mutex;

/// The largest message accepted from a server (rmcp's default too).
pub const MAX_LINE: usize = 16 * 1024 * 1024;
/// A read's buffer (allocated for the read, freed once its messages are consumed).
const READ: usize = 4096;

/// What the transport reads: a server's stdout, which can say when a read would find data, so
/// no read buffer is held while the connection idles.
pub trait Source: AsyncRead + Unpin {
    /// Keep the read buffer (up to 64 KiB) once its messages are consumed: for a busy
    /// stream that never idles long, not a fleet's connections.
    const KEEPS_BUFFER: bool = false;

    /// Returns once a read may find data (or the end).
    fn ready(&self) -> impl Future<Output = std::io::Result<()>> + Send + '_;
}

impl Source for tokio::net::unix::pipe::Receiver {
    fn ready(&self) -> impl Future<Output = std::io::Result<()>> + Send + '_ {
        self.readable()
    }
}

/// In memory (tests): there is always something to read, or the end.
impl Source for &'static [u8] {
    fn ready(&self) -> impl Future<Output = std::io::Result<()>> + Send + '_ {
        std::future::ready(Ok(()))
    }
}

impl Source for tokio::io::Empty {
    fn ready(&self) -> impl Future<Output = std::io::Result<()>> + Send + '_ {
        std::future::ready(Ok(()))
    }
}

/// Any reader as a [`Source`] that is always ready, keeping its read buffer between reads
/// (the gateway's few client streams, not a fleet's servers).
pub struct AnyRead<R>(std::sync::Mutex<R>);

impl<R> AnyRead<R> {
    /// `read` as a source.
    pub fn new(read: R) -> Self {
        // The mutex only makes the reader `Sync` (a transport's future borrows it across an
        // await); it is never locked: reads go through `get_mut`.
        AnyRead(std::sync::Mutex::new(read))
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for AnyRead<R> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let read = self.0.get_mut().unwrap_or_else(|p| p.into_inner());
        std::pin::Pin::new(read).poll_read(cx, buf)
    }
}

impl<R: AsyncRead + Unpin + Send> Source for AnyRead<R> {
    const KEEPS_BUFFER: bool = true;

    fn ready(&self) -> impl Future<Output = std::io::Result<()>> + Send + '_ {
        std::future::ready(Ok(()))
    }
}

/// Sees every message line from the peer before it is parsed: a line it claims goes no
/// further (a relay that passes messages on as they came, without rmcp's typed model).
pub trait LineTap: Send + Sync {
    /// Whether `line` (one message, without its newline) is taken here.
    fn claim(&self, line: &[u8]) -> bool;
    /// The connection ended (the transport is dropped).
    fn closed(&self) {}
    /// The transport is being closed: what to wait for (at most [`DRAIN`]) before its writer
    /// goes — answers the tap's claims still owe the peer.
    fn closing(&self) -> Option<std::pin::Pin<Box<dyn Future<Output = ()> + Send>>> {
        None
    }
}

/// How long a closing transport waits for its tap's answers (rmcp waits as long for its own
/// handlers).
pub const DRAIN: std::time::Duration = std::time::Duration::from_secs(5);

/// Writes whole lines to the peer, in turn with the transport's own messages.
pub struct LineWriter<W>(Arc<Mutex<Option<W>>>);

impl<W> Clone for LineWriter<W> {
    fn clone(&self) -> Self {
        LineWriter(self.0.clone())
    }
}

impl<W: AsyncWrite + Unpin + Send + 'static> LineWriter<W> {
    /// [`write_line`](Self::write_line), never cut off halfway: a write that cannot finish at
    /// once finishes in a task of its own even if the caller stops waiting (a partial line
    /// would corrupt the next message on the connection).
    pub async fn send_line(&self, line: Vec<u8>) -> std::io::Result<()> {
        let writer = self.clone();
        let mut write = Box::pin(async move { writer.write_line(&line).await });
        match futures::poll!(write.as_mut()) {
            std::task::Poll::Ready(r) => r,
            std::task::Poll::Pending => tokio::spawn(write).await.unwrap_or_else(|e| {
                Err(std::io::Error::other(format!("the write task failed: {e}")))
            }),
        }
    }
}

impl<W: AsyncWrite + Unpin> LineWriter<W> {
    /// Writes `line` (one message ending in a newline) and flushes it.
    pub async fn write_line(&self, line: &[u8]) -> std::io::Result<()> {
        let mut guard = self.0.lock().await;
        let Some(w) = guard.as_mut() else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotConnected,
                "the connection is closed",
            ));
        };
        w.write_all(line).await?;
        w.flush().await
    }
}

/// The transport: `R` is the server's stdout, `W` its stdin.
pub struct LeanStdio<R, W> {
    read: R,
    /// Bytes read and not yet consumed: `buf[start..]`.
    buf: Vec<u8>,
    start: usize,
    /// Skipping the rest of an oversized line, up to its newline.
    discarding: bool,
    write: Arc<Mutex<Option<W>>>,
    /// The service, for what is logged.
    service: String,
    /// Sees each line first.
    tap: Option<Arc<dyn LineTap>>,
}

impl<R, W> Drop for LeanStdio<R, W> {
    fn drop(&mut self) {
        if let Some(tap) = &self.tap {
            tap.closed();
        }
    }
}

impl<R, W> LeanStdio<R, W> {
    /// A transport reading `service`'s messages from `read` and writing to it on `write`.
    pub fn new(service: impl Into<String>, read: R, write: W) -> Self {
        LeanStdio {
            read,
            buf: Vec::new(),
            start: 0,
            discarding: false,
            write: Arc::new(Mutex::new(Some(write))),
            service: service.into(),
            tap: None,
        }
    }

    /// Lines go to `tap` first; what it claims is not parsed here.
    pub fn with_tap(mut self, tap: Arc<dyn LineTap>) -> Self {
        self.tap = Some(tap);
        self
    }

    /// A writer of whole lines to the peer, beside the transport's own messages.
    pub fn writer(&self) -> LineWriter<W> {
        LineWriter(self.write.clone())
    }
}

enum Next {
    /// A whole line: `buf[start..end]`, the newline at `end`.
    Line(usize),
    Eof,
}

impl<R: Source, W> LeanStdio<R, W> {
    /// The next whole line's end, reading as needed; oversized lines are skipped here.
    async fn next_line(&mut self) -> std::io::Result<Next> {
        // How much of `buf[start..]` is known to hold no newline.
        let mut seen = 0;
        loop {
            let pending = &self.buf[self.start..];
            if let Some(i) = newline(&pending[seen..]) {
                let end = self.start + seen + i;
                if self.discarding {
                    self.discarding = false;
                    self.consume(end + 1);
                    seen = 0;
                    continue;
                }
                return Ok(Next::Line(end));
            }
            if self.discarding {
                self.consume(self.buf.len());
            } else if pending.len() > MAX_LINE {
                tracing::warn!(
                    service = %self.service,
                    max = MAX_LINE,
                    "a message from the server is longer than the limit; it is dropped"
                );
                self.discarding = true;
                self.consume(self.buf.len());
            }
            seen = self.buf.len() - self.start;
            if self.buf.is_empty() {
                // Idle: no buffer until there is something to read.
                self.read.ready().await?;
            }
            self.make_room();
            if self.read.read_buf(&mut self.buf).await? == 0 {
                return Ok(Next::Eof);
            }
        }
    }

    /// Drops `buf[..upto]`; an emptied buffer is given back (unless the source keeps it), so
    /// an idle connection holds none.
    fn consume(&mut self, upto: usize) {
        self.start = upto;
        if self.start >= self.buf.len() {
            self.start = 0;
            if R::KEEPS_BUFFER && self.buf.capacity() <= READ * 16 {
                self.buf.clear();
            } else {
                self.buf = Vec::new();
            }
        }
    }

    /// Room for the next read: unconsumed bytes moved to the front, at least half of `READ`
    /// free.
    fn make_room(&mut self) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        let free = self.buf.capacity() - self.buf.len();
        if free < READ / 2 {
            // Doubling for a long message, `READ` for the usual ones.
            self.buf.reserve(self.buf.len().max(READ));
        }
    }
}

fn newline(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| b == b'\n')
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

impl<Role, R, W> Transport<Role> for LeanStdio<R, W>
where
    Role: ServiceRole,
    R: Source + Send + Sync + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    type Error = std::io::Error;

    fn name() -> Cow<'static, str> {
        "stdio".into()
    }

    fn send(
        &mut self,
        item: TxJsonRpcMessage<Role>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        let write = self.write.clone();
        async move {
            let mut bytes = Vec::with_capacity(256);
            serde_json::to_writer(&mut bytes, &item)?;
            bytes.push(b'\n');
            LineWriter(write).write_line(&bytes).await
        }
    }

    async fn receive(&mut self) -> Option<RxJsonRpcMessage<Role>> {
        loop {
            let end = match self.next_line().await {
                Ok(Next::Line(end)) => end,
                Ok(Next::Eof) => return None,
                Err(e) => {
                    tracing::debug!(service = %self.service, "reading from the server failed: {e}");
                    return None;
                }
            };
            let line = &self.buf[self.start..end];
            let line = line.strip_prefix(BOM).unwrap_or(line);
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let parsed = if line.iter().all(u8::is_ascii_whitespace)
                || self.tap.as_ref().is_some_and(|t| t.claim(line))
            {
                None
            } else {
                match serde_json::from_slice::<RxJsonRpcMessage<Role>>(line) {
                    Ok(message) => Some(message),
                    Err(e) => {
                        tracing::debug!(
                            service = %self.service,
                            "skipping a line from the server that is not a JSON-RPC message: {e}"
                        );
                        None
                    }
                }
            };
            self.consume(end + 1);
            if parsed.is_some() {
                return parsed;
            }
        }
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        if let Some(wait) = self.tap.as_ref().and_then(|t| t.closing()) {
            let _ = tokio::time::timeout(DRAIN, wait).await;
        }
        drop(self.write.lock().await.take());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
    use rmcp::RoleClient;

    fn client(input: &'static [u8]) -> LeanStdio<&'static [u8], tokio::io::Sink> {
        LeanStdio::new("test", input, tokio::io::sink())
    }

    async fn all(mut t: LeanStdio<&'static [u8], tokio::io::Sink>) -> Vec<ServerJsonRpcMessage> {
        let mut out = Vec::new();
        while let Some(m) = Transport::<RoleClient>::receive(&mut t).await {
            out.push(m);
        }
        out
    }

    const PONG: &str = r#"{"jsonrpc":"2.0","id":1,"result":{}}"#;

    #[tokio::test]
    async fn messages_are_read_across_bom_crlf_blank_and_junk_lines() {
        let input = Box::leak(
            format!("\u{feff}{PONG}\r\n\n   \nnot json\n{{\"jsonrpc\":\"2.0\"}}\n{PONG}\n{PONG}")
                .into_bytes()
                .into_boxed_slice(),
        );
        let got = all(client(input)).await;
        // Two whole lines; the last one has no newline (an incomplete message at EOF).
        assert_eq!(got.len(), 2);
        for m in got {
            assert_eq!(serde_json::to_value(&m).unwrap()["id"], 1);
        }
    }

    #[tokio::test]
    async fn a_large_message_is_read_and_its_buffer_given_back() {
        let text = "x".repeat(200_000);
        let big = format!(
            r#"{{"jsonrpc":"2.0","id":2,"result":{{"content":[{{"type":"text","text":"{text}"}}]}}}}"#
        );
        let input = Box::leak(format!("{big}\n{PONG}\n").into_bytes().into_boxed_slice());
        let mut t = client(input);
        let first = Transport::<RoleClient>::receive(&mut t).await.expect("big");
        assert_eq!(serde_json::to_value(&first).unwrap()["id"], 2);
        let second = Transport::<RoleClient>::receive(&mut t)
            .await
            .expect("pong");
        assert_eq!(serde_json::to_value(&second).unwrap()["id"], 1);
        // Everything read was consumed: the buffer is given back.
        assert_eq!(t.buf.capacity(), 0);
    }

    #[tokio::test]
    async fn an_oversized_line_is_dropped_and_the_next_message_read() {
        let mut input = vec![b'x'; MAX_LINE + 10];
        input.push(b'\n');
        input.extend_from_slice(PONG.as_bytes());
        input.push(b'\n');
        let got = all(client(Box::leak(input.into_boxed_slice()))).await;
        assert_eq!(got.len(), 1);
        assert_eq!(serde_json::to_value(&got[0]).unwrap()["id"], 1);
    }

    #[tokio::test]
    async fn sent_messages_are_one_line_each_and_closing_refuses_more() {
        let (ours, mut theirs) = tokio::io::duplex(4096);
        let mut t = LeanStdio::new("test", tokio::io::empty(), ours);
        let ping: ClientJsonRpcMessage =
            serde_json::from_str(r#"{"jsonrpc":"2.0","id":7,"method":"ping"}"#).unwrap();
        Transport::<RoleClient>::send(&mut t, ping.clone())
            .await
            .unwrap();
        Transport::<RoleClient>::send(&mut t, ping.clone())
            .await
            .unwrap();
        Transport::<RoleClient>::close(&mut t).await.unwrap();
        let err = Transport::<RoleClient>::send(&mut t, ping)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::NotConnected);
        let mut text = String::new();
        theirs.read_to_string(&mut text).await.unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text:?}");
        for l in lines {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            assert_eq!(v["method"], "ping");
        }
    }

    #[tokio::test]
    async fn an_idle_connection_holds_no_read_buffer() {
        let (mut tx, rx) = tokio::net::unix::pipe::pipe().unwrap();
        let mut t = LeanStdio::new("test", rx, tokio::io::sink());
        {
            // One poll with nothing to read: the receive waits (and is then dropped).
            let mut f = std::pin::pin!(Transport::<RoleClient>::receive(&mut t));
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            assert!(f.as_mut().poll(&mut cx).is_pending());
        }
        assert_eq!(t.buf.capacity(), 0, "waiting for data holds no buffer");
        tx.write_all(format!("{PONG}\n").as_bytes()).await.unwrap();
        let m = Transport::<RoleClient>::receive(&mut t).await;
        assert!(m.is_some());
        assert_eq!(t.buf.capacity(), 0, "given back once consumed");
        drop(tx);
        assert!(
            Transport::<RoleClient>::receive(&mut t).await.is_none(),
            "the end"
        );
    }
}
