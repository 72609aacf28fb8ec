//! Remote failures in the user's terms. rmcp's errors print the transport's Rust type path
//! ("Transport [rmcp::transport::worker::WorkerTransport<...>] error: Auth required"); what a
//! user needs is what went wrong and what to change. This walks an error's chain for the parts
//! that say it (HTTP status, refused connection, certificate problem) and words them.

use std::collections::BTreeMap;
use std::error::Error;

use rmcp::service::{ClientInitializeError, ServiceError};
use rmcp::transport::streamable_http_client::StreamableHttpError;
use rmcp::transport::DynamicTransportError;

/// A 401 from a server that names its OAuth metadata (RFC 9728).
pub(crate) const OAUTH_REQUIRED: &str =
    "unauthorized (HTTP 401): the server wants an OAuth sign-in: run `mcpvisor login <service>` \
     (or set headers.Authorization)";

/// The unauthorized wording (also used by the legacy SSE transport).
pub(crate) const UNAUTHORIZED: &str =
    "unauthorized (HTTP 401): check headers.Authorization / the token";

/// A failed `initialize` against `url` (a remote server), in words.
/// `headers` are the configured ones (a 404 looks at the usual paths on the same origin).
pub(crate) async fn initialize(
    e: &ClientInitializeError,
    url: &str,
    headers: &BTreeMap<String, String>,
) -> String {
    let explained = match e {
        ClientInitializeError::TransportError { error, .. } => transport(error, Some(url)),
        ClientInitializeError::ConnectionClosed(_) => {
            Some("the server closed the connection during initialize".to_owned())
        }
        ClientInitializeError::JsonRpcError(err) => Some(format!(
            "the server refused initialize: {} (code {})",
            err.message, err.code.0
        )),
        _ => None,
    };
    let text = explained.unwrap_or_else(|| format!("initialize failed: {e}"));
    if text.starts_with("HTTP 404 at ") {
        match path_hint(url, headers).await {
            Some(hint) => format!("{text} ({hint})"),
            None => text,
        }
    } else {
        text
    }
}

/// A request that failed on the transport (a call or a probe), in words.
pub(crate) fn service_error(e: &ServiceError) -> String {
    match e {
        ServiceError::TransportSend(error) => {
            transport(error, None).unwrap_or_else(|| format!("sending failed: {}", error.error))
        }
        ServiceError::TransportClosed => "the connection to the server closed".to_owned(),
        other => other.to_string(),
    }
}

/// The server's `WWW-Authenticate` when `e` is a 403 `insufficient_scope` (the token is good
/// but not for this request): not a loss of the connection.
pub(crate) fn insufficient_scope(e: &ServiceError) -> Option<String> {
    let ServiceError::TransportSend(error) = e else {
        return None;
    };
    chain(error).find_map(
        |err| match err.downcast_ref::<StreamableHttpError<reqwest::Error>>() {
            Some(StreamableHttpError::InsufficientScope(scope)) => {
                Some(scope.www_authenticate_header.clone())
            }
            _ => None,
        },
    )
}

/// A transport error and its sources, outermost first.
fn chain(e: &DynamicTransportError) -> impl Iterator<Item = &(dyn Error + 'static)> {
    let first: &(dyn Error + 'static) = e.error.as_ref();
    std::iter::successors(Some(first), |&err| err.source())
}

/// The wording of a transport error, if its chain holds something we can say plainly.
fn transport(e: &DynamicTransportError, url: Option<&str>) -> Option<String> {
    for err in chain(e) {
        if let Some(h) = err.downcast_ref::<StreamableHttpError<reqwest::Error>>() {
            if let Some(text) = streamable(h, url) {
                return Some(text);
            }
        }
        if let Some(r) = err.downcast_ref::<reqwest::Error>() {
            return Some(request(r));
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return Some(io_error(io, url));
        }
        // Our own SSE transport words its errors already.
        if let Some(sse) = err.downcast_ref::<crate::sse::SseError>() {
            return Some(sse.to_string());
        }
    }
    None
}

fn streamable(e: &StreamableHttpError<reqwest::Error>, url: Option<&str>) -> Option<String> {
    Some(match e {
        StreamableHttpError::AuthRequired(e)
            if e.www_authenticate_header.contains("resource_metadata") =>
        {
            OAUTH_REQUIRED.to_owned()
        }
        StreamableHttpError::AuthRequired(_) => UNAUTHORIZED.to_owned(),
        StreamableHttpError::InsufficientScope(scope) => match &scope.required_scope {
            Some(s) => format!("forbidden (HTTP 403): the token lacks the scope '{s}'"),
            None => "forbidden (HTTP 403): the token is not allowed here".to_owned(),
        },
        StreamableHttpError::HttpStatus(s) => status(s.status, url),
        StreamableHttpError::UnexpectedServerResponse(text) => {
            // rmcp words a failed status "HTTP 404 Not Found: <body>".
            let code = text
                .strip_prefix("HTTP ")
                .and_then(|rest| rest.get(..3))
                .and_then(|c| c.parse::<u16>().ok());
            match code {
                Some(code) => status(code, url),
                None => format!("the server's answer is not MCP: {text}"),
            }
        }
        StreamableHttpError::UnexpectedContentType(ct) => format!(
            "the server answered with content type {} instead of MCP (JSON or an event stream): \
             is the URL right?",
            ct.as_deref().unwrap_or("(none)")
        ),
        StreamableHttpError::SessionExpired => {
            "the server forgot the session (HTTP 404); re-initializing".to_owned()
        }
        StreamableHttpError::Client(r) => request(r),
        StreamableHttpError::Io(io) => io_error(io, url),
        _ => return None,
    })
}

/// An HTTP status with what to check.
pub(crate) fn status(code: u16, url: Option<&str>) -> String {
    let path = url
        .and_then(|u| url::Url::parse(u).ok())
        .map(|u| u.path().to_owned())
        .unwrap_or_default();
    match code {
        401 => UNAUTHORIZED.to_owned(),
        403 => "forbidden (HTTP 403): the token or the Origin is not allowed".to_owned(),
        404 => format!("HTTP 404 at {path}: is the path right?"),
        405 => format!(
            "HTTP 405 at {path}: the server does not take MCP requests here \
             (a legacy SSE server needs \"transport\": \"sse\")"
        ),
        429 => "rate limited by the server (HTTP 429)".to_owned(),
        500..=599 => format!("the server failed (HTTP {code})"),
        _ => format!("the server answered HTTP {code}"),
    }
}

/// A failed HTTP request (no answer): which address and why.
pub(crate) fn request(e: &reqwest::Error) -> String {
    let at = e.url().map(host_port).unwrap_or_default();
    if let Some(tls) = find::<rustls::Error>(e) {
        return tls_error(tls, e.url());
    }
    if let Some(io) = find::<std::io::Error>(e) {
        if let Some(text) = io_kind(io.kind(), &at) {
            return text;
        }
    }
    if e.is_timeout() {
        return format!("no answer from {at} in time");
    }
    if e.is_connect() {
        return format!("cannot connect to {at}: {}", innermost(e));
    }
    if let Some(code) = e.status() {
        return status(code.as_u16(), e.url().map(|u| u.as_str()));
    }
    format!("request to {at} failed: {}", innermost(e))
}

fn io_error(e: &std::io::Error, url: Option<&str>) -> String {
    let at = url
        .and_then(|u| url::Url::parse(u).ok())
        .map(|u| host_port(&u))
        .unwrap_or_else(|| "the server".to_owned());
    if let Some(tls) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        return tls_error(tls, url.and_then(|u| url::Url::parse(u).ok()).as_ref());
    }
    io_kind(e.kind(), &at).unwrap_or_else(|| format!("connection to {at} failed: {e}"))
}

fn io_kind(kind: std::io::ErrorKind, at: &str) -> Option<String> {
    use std::io::ErrorKind as K;
    Some(match kind {
        K::ConnectionRefused => format!("nothing listening on {at} (connection refused)"),
        K::ConnectionReset => format!("{at} reset the connection"),
        K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof => {
            format!("{at} closed the connection")
        }
        K::TimedOut => format!("no answer from {at} in time"),
        K::HostUnreachable | K::NetworkUnreachable => format!("{at} is unreachable"),
        _ => return None,
    })
}

/// A certificate problem: whose certificate and why it was refused.
fn tls_error(e: &rustls::Error, url: Option<&url::Url>) -> String {
    use rustls::CertificateError as C;
    let host = url
        .and_then(|u| u.host_str())
        .unwrap_or("the server")
        .to_owned();
    let why = match e {
        rustls::Error::InvalidCertificate(c) => match c {
            C::UnknownIssuer => "it is not signed by a trusted authority \
                 (add its CA to SSL_CERT_FILE or SSL_CERT_DIR)"
                .to_owned(),
            C::Expired | C::ExpiredContext { .. } => "it has expired".to_owned(),
            C::NotValidYet | C::NotValidYetContext { .. } => "it is not valid yet".to_owned(),
            C::NotValidForName | C::NotValidForNameContext { .. } => {
                format!("it is not issued for the name {host}")
            }
            C::Revoked => "it has been revoked".to_owned(),
            C::BadSignature => "its signature is wrong".to_owned(),
            other => format!("{other:?}"),
        },
        other => return format!("TLS with {host} failed: {other}"),
    };
    format!("TLS: the certificate of {host} was refused: {why}")
}

/// `host:port` (`host_str` brackets an IPv6 address already).
fn host_port(u: &url::Url) -> String {
    let host = u.host_str().unwrap_or("?");
    match u.port_or_known_default() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

/// The first error of type `T` in `e`'s chain (through `io::Error`s' inner errors too).
fn find<'a, T: Error + 'static>(e: &'a (dyn Error + 'static)) -> Option<&'a T> {
    let mut current: Option<&(dyn Error + 'static)> = Some(e);
    while let Some(err) = current {
        if let Some(t) = err.downcast_ref::<T>() {
            return Some(t);
        }
        if let Some(inner) = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            // An io::Error's `source()` skips the error it wraps: step into it.
            current = Some(inner);
            continue;
        }
        current = err.source();
    }
    None
}

/// The innermost message of `e`'s chain (the most specific words).
fn innermost(e: &(dyn Error + 'static)) -> String {
    let mut last = e;
    while let Some(next) = last.source() {
        last = next;
    }
    last.to_string()
}

/// On a 404: which of the usual MCP paths this server does serve (at most three bounded
/// requests), so the reason can say "this server serves /sse".
async fn path_hint(url: &str, headers: &BTreeMap<String, String>) -> Option<String> {
    let base = url::Url::parse(url).ok()?;
    let client = crate::http_client::client(headers).ok()?;
    for (path, kind) in [("/mcp", "streamable HTTP"), ("/sse", "legacy SSE")] {
        if base.path() == path {
            continue;
        }
        let mut candidate = base.clone();
        candidate.set_path(path);
        candidate.set_query(None);
        let answer = tokio::time::timeout(
            mcpvisor_model::defaults::PATH_HINT_TIMEOUT,
            client
                .get(candidate)
                .header(reqwest::header::ACCEPT, "text/event-stream")
                .send(),
        )
        .await;
        let Ok(Ok(response)) = answer else { continue };
        let code = response.status().as_u16();
        let event_stream = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("text/event-stream"));
        drop(response);
        let found = match path {
            // A streamable HTTP endpoint answers a bare GET with a stream, 400 or 405.
            "/mcp" => event_stream || matches!(code, 400 | 405 | 406),
            _ => event_stream,
        };
        if found {
            let transport = if path == "/sse" {
                "; set \"transport\": \"sse\""
            } else {
                ""
            };
            return Some(format!("this server serves {path}: {kind}{transport}"));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_say_what_to_check() {
        let url = Some("http://127.0.0.1:4711/mcp");
        assert_eq!(status(401, url), UNAUTHORIZED);
        assert_eq!(status(404, url), "HTTP 404 at /mcp: is the path right?");
        assert!(status(405, url).contains("\"transport\": \"sse\""));
        assert_eq!(status(503, url), "the server failed (HTTP 503)");
    }

    #[test]
    fn a_certificate_problem_names_the_host_and_why() {
        let url = url::Url::parse("https://mcp.example.com/mcp").unwrap();
        let e = rustls::Error::InvalidCertificate(rustls::CertificateError::Expired);
        assert_eq!(
            tls_error(&e, Some(&url)),
            "TLS: the certificate of mcp.example.com was refused: it has expired"
        );
        // Wrapped twice in io errors, as hyper and rustls hand it over, it is still found.
        let wrapped = std::io::Error::other(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        ));
        assert!(find::<rustls::Error>(&wrapped).is_some());
    }

    #[test]
    fn an_ipv6_address_is_bracketed() {
        let url = url::Url::parse("http://[::1]:4711/mcp").unwrap();
        assert_eq!(host_port(&url), "[::1]:4711");
    }
}
