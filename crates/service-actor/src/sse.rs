//! The legacy HTTP+SSE transport (MCP 2024-11-05), which rmcp 3.x no longer ships: `GET url`
//! opens an event stream whose first `endpoint` event names the URL to `POST` messages to;
//! the server's messages arrive as `message` events. Built as a (sink, stream) pair that rmcp
//! turns into a transport.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::time::Duration;

use futures::{Sink, Stream, StreamExt};
use rmcp::service::{RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::RoleClient;
use sse_stream::SseStream;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Messages to the server.
pub(crate) type SseSink = Pin<Box<dyn Sink<TxJsonRpcMessage<RoleClient>, Error = SseError> + Send>>;
/// Messages from the server; ends when the event stream ends.
pub(crate) type SseMessages = Pin<Box<dyn Stream<Item = RxJsonRpcMessage<RoleClient>> + Send>>;

/// A failed POST of a message, in words.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct SseError(String);

/// The URL the `endpoint` event names, joined to the SSE URL, if it stays on the SSE URL's
/// origin (scheme, host and port). Another origin is refused: every POST carries the configured
/// headers (an `Authorization` token among them), and a server must not be able to send them
/// elsewhere.
pub(crate) fn endpoint_on_origin(base: &url::Url, data: &str) -> Result<url::Url, String> {
    let endpoint = base.join(data.trim()).map_err(|e| {
        format!(
            "the server named an invalid endpoint '{}': {e}",
            data.trim()
        )
    })?;
    if endpoint.origin() != base.origin() {
        return Err(format!(
            "refused the endpoint {} the server named: it is not on {} (the configured headers \
             would be sent there)",
            endpoint,
            base.origin().ascii_serialization()
        ));
    }
    Ok(endpoint)
}

/// Opens the event stream at `url`, waits (up to `timeout`) for the `endpoint` event, and
/// returns the message sink and stream. The reader stops when `cancel` fires or the stream
/// is dropped.
pub(crate) async fn connect(
    url: &str,
    headers: &BTreeMap<String, String>,
    timeout: Duration,
    cancel: CancellationToken,
) -> Result<(SseSink, SseMessages), String> {
    let client = crate::http_client::client(headers)?;
    let base = url::Url::parse(url).map_err(|e| format!("bad url {url}: {e}"))?;
    let response = tokio::time::timeout(
        timeout,
        client
            .get(base.clone())
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .send(),
    )
    .await
    .map_err(|_| {
        format!(
            "no answer from {url} within {} (timeouts.connect)",
            humantime::format_duration(timeout)
        )
    })?
    .map_err(|e| crate::diagnose::request(&e))?;
    if !response.status().is_success() {
        return Err(crate::diagnose::status(
            response.status().as_u16(),
            Some(url),
        ));
    }
    let mut events = SseStream::from_bytes_stream(response.bytes_stream());
    // The first event names where to POST.
    let endpoint = tokio::time::timeout(timeout, async {
        while let Some(ev) = events.next().await {
            let ev = ev.map_err(|e| format!("event stream broke: {e}"))?;
            if ev.event.as_deref() == Some("endpoint") {
                return endpoint_on_origin(&base, &ev.data.unwrap_or_default());
            }
        }
        Err("event stream ended before the endpoint event".to_owned())
    })
    .await
    .map_err(|_| {
        format!(
            "no endpoint event from {url} within {} (is this a legacy SSE server?)",
            humantime::format_duration(timeout)
        )
    })??;

    let (tx, rx) = mpsc::channel::<RxJsonRpcMessage<RoleClient>>(256);
    tokio::spawn(async move {
        loop {
            let ev = tokio::select! {
                ev = events.next() => ev,
                _ = cancel.cancelled() => break,
                _ = tx.closed() => break,
            };
            match ev {
                Some(Ok(ev)) if matches!(ev.event.as_deref(), None | Some("message")) => {
                    let Some(data) = ev.data else { continue };
                    match serde_json::from_str(&data) {
                        Ok(msg) => {
                            if tx.send(msg).await.is_err() {
                                break;
                            }
                        }
                        Err(e) => tracing::debug!("ignoring unparsable SSE message: {e}"),
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    tracing::debug!("event stream broke: {e}");
                    break;
                }
                None => break,
            }
        }
    });
    let messages: SseMessages = Box::pin(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|m| (m, rx))
    }));
    let sink: SseSink = Box::pin(futures::sink::unfold(
        (client, endpoint),
        |(client, endpoint), msg: TxJsonRpcMessage<RoleClient>| async move {
            let body = serde_json::to_vec(&msg).map_err(|e| SseError(e.to_string()))?;
            // Bounded: a server that accepts the connection and never answers must not
            // hold the sender (and every message behind it) for ever.
            let resp = client
                .post(endpoint.clone())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .timeout(mcpvisor_model::defaults::SSE_POST_TIMEOUT)
                .body(body)
                .send()
                .await
                .map_err(|e| SseError(crate::diagnose::request(&e)))?;
            if !resp.status().is_success() {
                return Err(SseError(crate::diagnose::status(
                    resp.status().as_u16(),
                    Some(endpoint.as_str()),
                )));
            }
            Ok((client, endpoint))
        },
    ));
    Ok((sink, messages))
}

#[cfg(test)]
mod tests {
    use super::endpoint_on_origin;

    #[test]
    fn an_endpoint_on_the_sse_origin_is_taken_relative_or_absolute() {
        let base = url::Url::parse("http://127.0.0.1:4711/sse").unwrap();
        let rel = endpoint_on_origin(&base, "/messages?sessionId=1").unwrap();
        assert_eq!(rel.as_str(), "http://127.0.0.1:4711/messages?sessionId=1");
        let abs = endpoint_on_origin(&base, " http://127.0.0.1:4711/m\n").unwrap();
        assert_eq!(abs.as_str(), "http://127.0.0.1:4711/m");
    }

    #[test]
    fn an_endpoint_on_another_origin_is_refused_with_the_reason() {
        let base = url::Url::parse("http://127.0.0.1:4711/sse").unwrap();
        for other in [
            "http://evil.example/messages",
            "http://127.0.0.1:4712/messages",
            "https://127.0.0.1:4711/messages",
            "//evil.example/messages",
        ] {
            let err = endpoint_on_origin(&base, other).unwrap_err();
            assert!(err.contains("refused the endpoint"), "{other}: {err}");
            assert!(err.contains("http://127.0.0.1:4711"), "{other}: {err}");
        }
    }
}
