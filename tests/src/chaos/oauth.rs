//! `--oauth`: the HTTP server is its own OAuth 2.1 authorization server, just enough for
//! mcpvisor's sign-in and refresh to be exercised end to end on loopback: protected resource
//! metadata (RFC 9728), authorization server metadata (RFC 8414), dynamic registration, an
//! `/authorize` that redirects at once with a code (no person), and a `/token` endpoint for the
//! `authorization_code` and `refresh_token` grants. MCP requests need the access token issued
//! last; `POST /revoke` invalidates it (as a server rotating its keys would), so the client's
//! next request gets a 401 and only a refresh brings it back. Each grant is logged
//! (`oauth: issued access-N by authorization_code|refresh_token`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json, Router};
use serde_json::json;

/// The authorization server's state.
#[derive(Default)]
pub struct OAuth {
    /// The origin (`http://127.0.0.1:PORT`), known once bound.
    origin: Mutex<String>,
    issued: AtomicU64,
    /// The one access token MCP requests may carry (none after a revoke).
    valid: Mutex<Option<String>>,
}

impl OAuth {
    /// Sets the origin the metadata names.
    pub fn set_origin(&self, origin: String) {
        *self.origin.lock().unwrap_or_else(|p| p.into_inner()) = origin;
    }

    fn origin(&self) -> String {
        self.origin
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn issue(&self, grant: &str) -> serde_json::Value {
        let n = self.issued.fetch_add(1, Ordering::SeqCst) + 1;
        let token = format!("access-{n}");
        *self.valid.lock().unwrap_or_else(|p| p.into_inner()) = Some(token.clone());
        chaos_log!("oauth: issued {token} by {grant}");
        json!({"access_token": token, "token_type": "Bearer", "expires_in": 3600,
               "refresh_token": "refresh-1"})
    }

    fn accepts(&self, authorization: Option<&[u8]>) -> bool {
        let valid = self.valid.lock().unwrap_or_else(|p| p.into_inner());
        match (valid.as_deref(), authorization) {
            (Some(t), Some(a)) => a == format!("Bearer {t}").as_bytes(),
            _ => false,
        }
    }
}

/// The OAuth routes, merged into the server's router.
pub fn routes(oauth: Arc<OAuth>) -> Router {
    Router::new()
        .route(
            "/.well-known/oauth-protected-resource/mcp",
            axum::routing::get(resource_metadata),
        )
        .route(
            "/.well-known/oauth-authorization-server",
            axum::routing::get(server_metadata),
        )
        .route("/register", axum::routing::post(register))
        .route("/authorize", axum::routing::get(authorize))
        .route("/token", axum::routing::post(token))
        .route("/revoke", axum::routing::post(revoke))
        .with_state(oauth)
}

/// Refuses MCP requests (under `/mcp`) without the valid token: 401 naming the metadata.
pub async fn guard(oauth: Arc<OAuth>, request: Request, next: Next) -> Response {
    if !request.uri().path().starts_with("/mcp") {
        return next.run(request).await;
    }
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes().to_vec());
    if oauth.accepts(authorization.as_deref()) {
        return next.run(request).await;
    }
    chaos_log!("oauth: refused a request without a valid token (401)");
    let challenge = format!(
        "Bearer resource_metadata=\"{}/.well-known/oauth-protected-resource/mcp\"",
        oauth.origin()
    );
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, challenge)],
    )
        .into_response()
}

async fn resource_metadata(State(oauth): State<Arc<OAuth>>) -> Json<serde_json::Value> {
    let origin = oauth.origin();
    Json(json!({"resource": format!("{origin}/mcp"), "authorization_servers": [origin]}))
}

async fn server_metadata(State(oauth): State<Arc<OAuth>>) -> Json<serde_json::Value> {
    let origin = oauth.origin();
    Json(json!({
        "issuer": origin,
        "authorization_endpoint": format!("{origin}/authorize"),
        "token_endpoint": format!("{origin}/token"),
        "registration_endpoint": format!("{origin}/register"),
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none"],
    }))
}

async fn register(Json(body): Json<serde_json::Value>) -> impl IntoResponse {
    (
        StatusCode::CREATED,
        Json(
            json!({"client_id": "chaos-client", "redirect_uris": body["redirect_uris"],
                    "token_endpoint_auth_method": "none"}),
        ),
    )
}

#[derive(serde::Deserialize)]
struct AuthorizeQuery {
    redirect_uri: String,
    state: Option<String>,
}

async fn authorize(Query(q): Query<AuthorizeQuery>) -> Response {
    let Ok(mut to) = url::Url::parse(&q.redirect_uri) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    // Only a loopback redirect: this server signs nobody in anywhere else.
    if !matches!(to.host_str(), Some("127.0.0.1" | "localhost" | "[::1]")) {
        return StatusCode::BAD_REQUEST.into_response();
    }
    to.query_pairs_mut().append_pair("code", "chaos-code");
    if let Some(s) = &q.state {
        to.query_pairs_mut().append_pair("state", s);
    }
    Redirect::to(to.as_str()).into_response()
}

#[derive(serde::Deserialize)]
struct TokenForm {
    grant_type: String,
    code: Option<String>,
    refresh_token: Option<String>,
}

async fn token(State(oauth): State<Arc<OAuth>>, Form(f): Form<TokenForm>) -> Response {
    let ok = match f.grant_type.as_str() {
        "authorization_code" => f.code.as_deref() == Some("chaos-code"),
        "refresh_token" => f.refresh_token.as_deref() == Some("refresh-1"),
        _ => false,
    };
    if !ok {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_grant"})),
        )
            .into_response();
    }
    Json(oauth.issue(&f.grant_type)).into_response()
}

async fn revoke(State(oauth): State<Arc<OAuth>>) -> StatusCode {
    *oauth.valid.lock().unwrap_or_else(|p| p.into_inner()) = None;
    chaos_log!("oauth: revoked the access token");
    StatusCode::NO_CONTENT
}
