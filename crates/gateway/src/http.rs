//! The gateway over streamable HTTP: `/mcp` and `/agents/<id>/mcp`, on rmcp's server, with the
//! MCP transport spec's security (DESIGN §13): `Host` and `Origin` validated (403), a bearer
//! token required off loopback (compared in constant time), random session ids, unknown
//! sessions 404, bounded bodies, sessions and calls in flight.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::core::{Core, Endpoint};
use crate::handler::Session;
use crate::sessions::Sessions;
use crate::GatewayError;

/// How the HTTP gateway is exposed.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Where it listens (for the Host check and the token rule).
    pub bind: SocketAddr,
    /// Bearer token clients must send (`Authorization: Bearer ...`); required off loopback.
    pub token: Option<String>,
    /// More `Host` values to accept (a DNS name the gateway is reached by).
    pub allowed_hosts: Vec<String>,
    /// More browser origins to accept (`https://app.example.com:443`); loopback origins are
    /// always accepted.
    pub allowed_origins: Vec<String>,
    /// Stops serving when cancelled.
    pub cancel: CancellationToken,
}

impl HttpOptions {
    /// Loopback defaults for `bind`.
    pub fn new(bind: SocketAddr) -> HttpOptions {
        HttpOptions {
            bind,
            token: None,
            allowed_hosts: Vec::new(),
            allowed_origins: Vec::new(),
            cancel: CancellationToken::new(),
        }
    }
}

type Service = StreamableHttpService<Session, Sessions>;

struct Routes {
    core: Arc<Core>,
    config: StreamableHttpServerConfig,
    default: Service,
    agents: Mutex<HashMap<String, Service>>,
}

fn service(core: &Arc<Core>, endpoint: Endpoint, config: &StreamableHttpServerConfig) -> Service {
    let core = core.clone();
    let calls = crate::fast_http::HttpCalls::new(core.clone(), endpoint.clone());
    let sessions = Arc::new(Sessions::new(crate::MAX_SESSIONS, calls.clone()));
    StreamableHttpService::new(
        move || {
            let mut session = Session::new(core.clone(), endpoint.clone());
            session.http_calls = Some(calls.clone());
            Ok(session)
        },
        sessions,
        config.clone(),
    )
}

/// The router serving `/mcp` and `/agents/<id>/mcp`.
pub(crate) fn router(core: Arc<Core>, options: &HttpOptions) -> Result<axum::Router, GatewayError> {
    let loopback = options.bind.ip().is_loopback();
    if !loopback && options.token.as_deref().is_none_or(str::is_empty) {
        return Err(GatewayError::TokenRequired(options.bind));
    }
    let mut hosts: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    if !loopback {
        hosts.push(options.bind.ip().to_string());
    }
    hosts.extend(options.allowed_hosts.iter().cloned());
    let mut origins: Vec<String> = vec![
        "http://localhost:*".into(),
        "http://127.0.0.1:*".into(),
        "http://[::1]:*".into(),
    ];
    origins.extend(options.allowed_origins.iter().cloned());
    let config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(hosts)
        .with_allowed_origins(origins)
        .enforce_origin_validation()
        .with_max_request_body_bytes(crate::MAX_BODY_BYTES)
        .with_sse_retry(None)
        .with_cancellation_token(options.cancel.child_token());
    let routes = Arc::new(Routes {
        default: service(&core, Endpoint::Default, &config),
        core,
        config,
        agents: Mutex::new(HashMap::new()),
    });
    let mut router = axum::Router::new()
        .route("/mcp", axum::routing::any(default_endpoint))
        .route("/agents/{id}/mcp", axum::routing::any(agent_endpoint))
        .with_state(routes.clone())
        .merge(crate::ops::ops_router(routes.core.store.clone()));
    if let Some(token) = options.token.clone().filter(|t| !t.is_empty()) {
        let token = Arc::new(token);
        router = router.layer(axum::middleware::from_fn(
            move |req: Request, next: Next| {
                let token = token.clone();
                async move { bearer(&token, req, next).await }
            },
        ));
    }
    Ok(router)
}

async fn default_endpoint(State(routes): State<Arc<Routes>>, request: Request) -> Response {
    forward(routes.default.clone(), request).await
}

async fn agent_endpoint(
    State(routes): State<Arc<Routes>>,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    if routes.core.store.for_agent(&id).is_err() {
        return (StatusCode::NOT_FOUND, format!("no agent '{id}'\n")).into_response();
    }
    let svc = {
        let mut agents = routes.agents.lock().unwrap_or_else(|p| p.into_inner());
        agents
            .entry(id.clone())
            .or_insert_with(|| service(&routes.core, Endpoint::Agent(id), &routes.config))
            .clone()
    };
    forward(svc, request).await
}

async fn forward(svc: Service, request: Request) -> Response {
    let request = match checked(request).await {
        Ok(r) => r,
        Err(refusal) => return refusal,
    };
    let delete = request.method() == http::Method::DELETE;
    match svc.oneshot(request).await {
        Ok(mut response) => {
            // A session ended by DELETE is answered 200, as the SDKs' own servers do (rmcp
            // says 202, which the Python SDK reports as a failed termination).
            if delete && response.status() == StatusCode::ACCEPTED {
                *response.status_mut() = StatusCode::OK;
            }
            response.map(axum::body::Body::new)
        }
        Err(never) => match never {},
    }
}

/// `Authorization: Bearer <token>`, compared in constant time; 401 otherwise.
async fn bearer(token: &str, request: Request, next: Next) -> Response {
    use subtle::ConstantTimeEq;
    let given = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let ok: bool = given.as_bytes().ct_eq(token.as_bytes()).into();
    if ok {
        next.run(request).await
    } else {
        (
            StatusCode::UNAUTHORIZED,
            [(http::header::WWW_AUTHENTICATE, "Bearer")],
            "a bearer token is required (Authorization: Bearer ...)\n",
        )
            .into_response()
    }
}

/// A POST body read (bounded) and checked: not JSON → a JSON-RPC parse error (-32700), JSON
/// but no JSON-RPC message → invalid request (-32600), too big → 413. Clients get an answer
/// they can read; rmcp's own would be plain text.
async fn checked(request: Request) -> Result<Request, Response> {
    if request.method() != http::Method::POST {
        return Ok(request);
    }
    let (parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, crate::MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(_) => {
            return Err((
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body over {} bytes\n", crate::MAX_BODY_BYTES),
            )
                .into_response())
        }
    };
    // One parse on the common path; the JSON-or-not question only once that failed.
    let problem = match serde_json::from_slice::<rmcp::model::ClientJsonRpcMessage>(&bytes) {
        Ok(_) => None,
        Err(e) => match serde_json::from_slice::<serde::de::IgnoredAny>(&bytes) {
            Err(e) => Some((-32700, format!("parse error: {e}"))),
            Ok(_) => Some((-32600, format!("invalid request: {e}"))),
        },
    };
    if let Some((code, message)) = problem {
        let body = serde_json::json!({
            "jsonrpc": "2.0",
            "id": null,
            "error": {"code": code, "message": message},
        });
        return Err((
            StatusCode::BAD_REQUEST,
            [(http::header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response());
    }
    Ok(Request::from_parts(parts, axum::body::Body::from(bytes)))
}
