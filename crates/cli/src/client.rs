//! The client side of the control socket: connect to the running instance, send a request,
//! read the answer (or a stream of events).

use std::path::{Path, PathBuf};
use std::time::Duration;

use mcpvisor_model::Event;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;

use crate::error::{CliError, CliResult};
use crate::protocol::{read_line, Line, Request, Response, MAX_RESPONSE_BYTES};

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest any request may take (the instance bounds its own work well below this).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// A connection to a running instance.
#[derive(Debug)]
pub struct Client {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    socket: PathBuf,
}

/// Why connecting failed.
#[derive(Debug)]
pub enum ConnectError {
    /// No instance is listening there (no socket, or a stale one).
    NotRunning,
    /// Something else (permissions, ...).
    Other(CliError),
}

impl Client {
    /// Connects to the instance whose socket is `socket`.
    pub async fn connect(socket: &Path) -> Result<Client, ConnectError> {
        let stream = match tokio::time::timeout(CONNECT_TIMEOUT, UnixStream::connect(socket)).await
        {
            Err(_) => {
                return Err(ConnectError::Other(CliError::failed(format!(
                    "the instance at {} did not accept the connection within {}s",
                    socket.display(),
                    CONNECT_TIMEOUT.as_secs()
                ))))
            }
            Ok(Ok(s)) => s,
            Ok(Err(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                ) =>
            {
                return Err(ConnectError::NotRunning)
            }
            Ok(Err(e)) => {
                return Err(ConnectError::Other(CliError::failed(format!(
                    "cannot connect to {}: {e}",
                    socket.display()
                ))))
            }
        };
        let (r, w) = stream.into_split();
        Ok(Client {
            reader: BufReader::new(r),
            writer: w,
            socket: socket.to_path_buf(),
        })
    }

    async fn send(&mut self, req: &Request) -> CliResult<()> {
        let mut line = serde_json::to_string(req)
            .map_err(|e| CliError::failed(format!("cannot encode the request: {e}")))?;
        line.push('\n');
        self.writer
            .write_all(line.as_bytes())
            .await
            .map_err(|e| self.lost(e))
    }

    async fn receive(&mut self) -> CliResult<Option<String>> {
        match read_line(&mut self.reader, MAX_RESPONSE_BYTES)
            .await
            .map_err(|e| self.lost(e))?
        {
            Line::Text(t) => Ok(Some(t)),
            Line::Eof => Ok(None),
            Line::TooLong => Err(CliError::failed(format!(
                "the instance sent a line longer than {MAX_RESPONSE_BYTES} bytes"
            ))),
        }
    }

    fn lost(&self, e: std::io::Error) -> CliError {
        CliError::failed(format!(
            "lost the connection to the instance at {}: {e}",
            self.socket.display()
        ))
    }

    /// Sends `req` and returns its result.
    pub async fn request(&mut self, req: &Request) -> CliResult<crate::protocol::Answer> {
        let exchange = async {
            self.send(req).await?;
            match self.receive().await? {
                Some(line) => serde_json::from_str::<Response>(&line)
                    .map_err(|e| {
                        CliError::failed(format!("the instance sent an unreadable answer: {e}"))
                    })?
                    .into_result(),
                None => Err(CliError::failed(
                    "the instance closed the connection without answering (is it shutting down?)",
                )),
            }
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
            Ok(r) => r,
            Err(_) => Err(CliError::failed(format!(
                "no answer from the instance within {}s",
                REQUEST_TIMEOUT.as_secs()
            ))),
        }
    }

    /// [`request`](Self::request), the answer as a JSON value.
    pub async fn request_value(&mut self, req: &Request) -> CliResult<serde_json::Value> {
        let answer = self.request(req).await?;
        serde_json::from_str(answer.get())
            .map_err(|e| CliError::failed(format!("the instance sent an unreadable answer: {e}")))
    }

    /// Subscribes to events, calls `subscribed` once the instance confirmed, then `each` for
    /// every event until the instance closes the stream (it stopped).
    pub async fn events(
        mut self,
        subscribed: impl FnOnce(),
        mut each: impl FnMut(Event),
    ) -> CliResult<()> {
        self.request(&Request::Events).await?;
        subscribed();
        while let Some(line) = self.receive().await? {
            match serde_json::from_str::<Event>(&line) {
                Ok(e) => each(e),
                Err(e) => tracing::warn!("skipping an event this version cannot read: {e}"),
            }
        }
        Ok(())
    }
}
