//! OAuth 2.1 for remote servers that demand it, on rmcp's `auth` feature: `login` runs the
//! authorization code flow with PKCE and a loopback redirect (discovery, dynamic client
//! registration or a client ID metadata document, as the server's authorization server
//! offers), and stores the tokens in one file per service in the state dir (mode 0600);
//! [`authorized_client`] gives a connection an HTTP client that sends the token and refreshes
//! it before it expires (and after a 401). Tokens are never printed or logged.

use std::path::{Path, PathBuf};
use std::time::Duration;

use mcpvisor_model::{OAuthConfig, OAuthGrant};
use rmcp::transport::auth::{
    AuthClient, AuthError, AuthorizationManager, AuthorizationMetadata, AuthorizationRequest,
    AuthorizationSession, ClientCredentialsConfig, CredentialStore, OAuthState, StoredCredentials,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The file of a service's tokens in `dir` (the state dir's `oauth/`): `<service>.json`
/// (`agent.name.json` for an agent's service).
pub fn token_file(dir: &Path, service: &str) -> PathBuf {
    dir.join(format!("{}.json", service.replace('/', ".")))
}

/// Where the server's last demand for more scope (the `WWW-Authenticate` of a 403
/// `insufficient_scope`) is kept beside the tokens: the next `login` asks for that scope.
pub fn challenge_file(token_file: &Path) -> PathBuf {
    token_file.with_extension("challenge")
}

/// Keeps a 403's `WWW-Authenticate` for the next `login` (mode 0600, like the tokens).
pub fn save_challenge(token_file: &Path, www_authenticate: &str) {
    let _ = write_private(&challenge_file(token_file), www_authenticate.as_bytes());
}

/// Stored credentials in one file, written atomically with mode 0600.
#[derive(Debug, Clone)]
pub struct FileCredentialStore {
    path: PathBuf,
}

impl FileCredentialStore {
    /// The store at `path`.
    pub fn new(path: PathBuf) -> Self {
        FileCredentialStore { path }
    }
}

fn store_error(path: &Path, e: impl std::fmt::Display) -> AuthError {
    AuthError::InternalError(format!("token file {}: {e}", path.display()))
}

#[async_trait::async_trait]
impl CredentialStore for FileCredentialStore {
    async fn load(&self) -> Result<Option<StoredCredentials>, AuthError> {
        match tokio::fs::read(&self.path).await {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| store_error(&self.path, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(store_error(&self.path, e)),
        }
    }

    async fn save(&self, credentials: StoredCredentials) -> Result<(), AuthError> {
        let path = self.path.clone();
        let bytes = serde_json::to_vec(&credentials).map_err(|e| store_error(&path, e))?;
        tokio::task::spawn_blocking(move || write_private(&path, &bytes))
            .await
            .map_err(|e| AuthError::InternalError(e.to_string()))?
    }

    async fn clear(&self) -> Result<(), AuthError> {
        match tokio::fs::remove_file(&self.path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(store_error(&self.path, e)),
        }
    }
}

/// Writes `bytes` to `path` through a 0600 temp file, fsync and rename.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), AuthError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| store_error(path, e))?;
    // Its own temp file per target (the tokens and the challenge sit side by side).
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!("{name}.tmp"));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| store_error(path, e))?;
    f.write_all(bytes).map_err(|e| store_error(path, e))?;
    f.sync_all().map_err(|e| store_error(path, e))?;
    std::fs::rename(&tmp, path).map_err(|e| store_error(path, e))
}

/// An authorization manager for `url` whose credentials live in `file` (none: kept in memory).
/// Loopback and private addresses are allowed for metadata: mcpvisor supervises local servers
/// too.
async fn manager(url: &str, file: Option<&Path>) -> Result<AuthorizationManager, String> {
    let mut manager = AuthorizationManager::new_allowing_private_addresses(url)
        .await
        .map_err(|e| format!("OAuth set-up for {url}: {e}"))?;
    if let Some(file) = file {
        manager.set_credential_store(FileCredentialStore::new(file.to_path_buf()));
    }
    Ok(manager)
}

/// Finds the server's authorization server metadata (RFC 9728 then RFC 8414, seeded by the
/// server's `challenge` when there is one) and gives it to `m`.
///
/// A server of the 2025-03-26 protocol publishes no resource metadata; its authorization
/// server's metadata sits at its own origin's root and may name an issuer with a path on
/// that origin, which strict RFC 8414 matching refuses. That one case is accepted: the
/// metadata came from the very origin mcpvisor is configured to trust.
async fn discover(
    m: &mut AuthorizationManager,
    url: &str,
    challenge: Option<&str>,
) -> Result<(), String> {
    match m.resolve_metadata_from_challenge(challenge).await {
        Ok(found) => {
            m.set_metadata(found.metadata);
            Ok(())
        }
        Err(AuthError::AuthorizationServerMismatch {
            received_issuer, ..
        }) if same_origin(&received_issuer, url) => {
            m.set_metadata(root_metadata(url).await?);
            Ok(())
        }
        Err(e) => Err(format!(
            "cannot find how to sign in to {url} (its OAuth metadata): {e}"
        )),
    }
}

fn same_origin(a: &str, b: &str) -> bool {
    match (url::Url::parse(a), url::Url::parse(b)) {
        (Ok(a), Ok(b)) => a.origin() == b.origin(),
        _ => false,
    }
}

/// `<origin>/.well-known/oauth-authorization-server` of `url`.
async fn root_metadata(url: &str) -> Result<AuthorizationMetadata, String> {
    let mut at = url::Url::parse(url).map_err(|e| format!("{url}: {e}"))?;
    at.set_path("/.well-known/oauth-authorization-server");
    at.set_query(None);
    let http = crate::http_client::no_redirect_client()?;
    let answer = http
        .get(at.clone())
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map_err(|e| format!("OAuth metadata at {at}: {e}"))?;
    // Anything but 200 — a redirect included: it is not followed — is no metadata here.
    if !answer.status().is_success() {
        return Err(format!("OAuth metadata at {at}: HTTP {}", answer.status()));
    }
    let metadata = answer
        .json::<AuthorizationMetadata>()
        .await
        .map_err(|e| format!("OAuth metadata at {at} is not readable: {e}"))?;
    // Trusted only as the server's own: every endpoint on its origin.
    let endpoints = [
        Some(&metadata.authorization_endpoint),
        Some(&metadata.token_endpoint),
        metadata.issuer.as_ref(),
        metadata.registration_endpoint.as_ref(),
    ];
    if let Some(foreign) = endpoints
        .into_iter()
        .flatten()
        .find(|e| !same_origin(e, url))
    {
        return Err(format!(
            "OAuth metadata at {at} names {foreign}, not on the server's own origin: refused"
        ));
    }
    Ok(metadata)
}

/// The client-credentials configuration of `cfg`: a secret, or a private key (RFC 7523).
fn client_credentials(cfg: &OAuthConfig, url: &str) -> Result<ClientCredentialsConfig, String> {
    let Some(id) = &cfg.client_id else {
        return Err("oauth.client_credentials needs client_id".into());
    };
    if let Some(key) = &cfg.private_key {
        use rmcp::transport::auth::JwtSigningAlgorithm as A;
        let algorithm = match cfg.signing_algorithm.as_deref().unwrap_or("RS256") {
            "RS384" => A::RS384,
            "RS512" => A::RS512,
            "ES256" => A::ES256,
            "ES384" => A::ES384,
            _ => A::RS256,
        };
        return Ok(ClientCredentialsConfig::PrivateKeyJwt {
            client_id: id.clone(),
            signing_key: key.as_bytes().to_vec(),
            signing_algorithm: algorithm,
            token_endpoint_audience: None,
            scopes: cfg.scopes.clone(),
            resource: Some(url.to_owned()),
        });
    }
    match &cfg.client_secret {
        Some(secret) => Ok(ClientCredentialsConfig::ClientSecret {
            client_id: id.clone(),
            client_secret: secret.clone(),
            scopes: cfg.scopes.clone(),
            resource: Some(url.to_owned()),
        }),
        None => Err("oauth.client_credentials needs client_secret or private_key".into()),
    }
}

/// The HTTP client of a connection to `url`: with the `client_credentials` grant, a token
/// fetched now; else the tokens `mcpvisor login` stored in `file`. `Ok(None)` when there are
/// none (the server is asked without a token).
pub async fn authorized_client(
    url: &str,
    file: Option<&Path>,
    oauth: Option<&OAuthConfig>,
    http: reqwest::Client,
) -> Result<Option<AuthClient<reqwest::Client>>, String> {
    if let Some(cfg) = oauth.filter(|c| c.grant == OAuthGrant::ClientCredentials) {
        let credentials = client_credentials(cfg, url)?;
        // rmcp's client-credentials flow discovers the metadata itself (strict RFC 8414: the
        // 2025-03-26 root-metadata case is for signed-in tokens only).
        let m = manager(url, file).await?;
        let state = client_credentials_exchange(OAuthState::Unauthorized(m), credentials).await?;
        return match state.into_authorization_manager() {
            Some(m) => Ok(Some(AuthClient::new(http, m))),
            None => Err("the client_credentials grant gave no token".into()),
        };
    }
    let Some(file) = file.filter(|f| f.exists()) else {
        return Ok(None);
    };
    let mut m = manager(url, Some(file)).await?;
    discover(&mut m, url, None).await?;
    match m.initialize_from_store().await {
        Ok(true) => Ok(Some(AuthClient::new(http, m))),
        Ok(false) => Ok(None),
        Err(e) => Err(format!(
            "the OAuth tokens in {} cannot be used ({e}); run `mcpvisor login` again",
            file.display()
        )),
    }
}

/// Runs the client-credentials token request. rmcp's future for it holds a non-`Send` value
/// across an await (with its JWT client authentication compiled in), so it cannot run on the
/// multi-threaded runtime's tasks: it runs on a current-thread runtime of its own, on a
/// blocking thread, and hands the authorized state back.
async fn client_credentials_exchange(
    mut state: OAuthState,
    credentials: ClientCredentialsConfig,
) -> Result<OAuthState, String> {
    tokio::task::spawn_blocking(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot run the client_credentials grant: {e}"))?;
        rt.block_on(async {
            tokio::time::timeout(
                Duration::from_secs(30),
                state.authenticate_client_credentials(credentials),
            )
            .await
            .map_err(|_| "the authorization server did not answer within 30s".to_owned())?
            .map_err(|e| format!("the client_credentials grant was refused: {e}"))
        })?;
        Ok(state)
    })
    .await
    .map_err(|e| format!("the client_credentials grant failed: {e}"))?
}

/// Signs in to the server at `url`: prints nothing itself — `show_url` gets the URL to open
/// (a browser, or anything that follows its redirect to the loopback listener) — and waits up
/// to `limit` for the redirect; the tokens go to `file`.
pub async fn login(
    url: &str,
    file: &Path,
    oauth: Option<&OAuthConfig>,
    limit: Duration,
    show_url: impl FnOnce(&str),
) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("cannot listen for the sign-in redirect on 127.0.0.1: {e}"))?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let redirect = format!("http://127.0.0.1:{port}/callback");
    let mut m = manager(url, Some(file)).await?;
    // What the server last demanded (a 403 for more scope during a call), else its own 401
    // to an unauthenticated `initialize`: each names its metadata and the scope it wants
    // (RFC 9728, RFC 6750). A kept demand that no longer leads anywhere is dropped.
    let mut challenge = std::fs::read_to_string(challenge_file(file)).ok();
    if challenge.is_some() && discover(&mut m, url, challenge.as_deref()).await.is_err() {
        let _ = std::fs::remove_file(challenge_file(file));
        challenge = None;
    }
    if challenge.is_none() {
        challenge = self::challenge(url).await;
        discover(&mut m, url, challenge.as_deref()).await?;
    }
    let mut request = AuthorizationRequest::new(redirect).with_client_name("mcpvisor");
    if let Some(cfg) = oauth {
        if let Some(id) = &cfg.client_id {
            request = request.with_preregistered_client(id.clone());
        }
        if let Some(secret) = &cfg.client_secret {
            request = request.with_client_secret(secret.clone());
        }
        if !cfg.scopes.is_empty() {
            // The configured scopes, and what the server asked for on top.
            let mut scopes = cfg.scopes.clone();
            for s in challenge
                .as_deref()
                .map(|c| challenge_scopes(c, url))
                .unwrap_or_default()
            {
                if !scopes.contains(&s) {
                    scopes.push(s);
                }
            }
            request = request.with_scopes(scopes);
        }
        if let Some(doc) = &cfg.client_metadata_url {
            request = request.with_client_metadata_url(doc.clone());
        }
    }
    if let Some(c) = &challenge {
        request = request.with_challenge(c.clone());
    }
    let session = AuthorizationSession::new(m, request)
        .await
        .map_err(|(_, e)| format!("cannot start signing in to {url}: {e}"))?;
    let mut state = OAuthState::Session(session);
    let auth_url = state
        .get_authorization_url()
        .await
        .map_err(|e| format!("no authorization URL for {url}: {e}"))?;
    show_url(&auth_url);
    let path = tokio::time::timeout(limit, callback(&listener))
        .await
        .map_err(|_| {
            format!(
                "nobody completed the sign-in within {} (open the URL printed above)",
                humantime::format_duration(limit)
            )
        })??;
    state
        .handle_callback_url(&format!("http://127.0.0.1:{port}{path}"))
        .await
        .map_err(|e| format!("the authorization server refused the sign-in: {e}"))?;
    // rmcp completes the session with the callback; an older flow needs the explicit step.
    if matches!(state, OAuthState::Session(_)) {
        state
            .complete_authorization()
            .await
            .map_err(|e| format!("signing in: {e}"))?;
    }
    if !file.exists() {
        return Err("signed in, but no tokens were stored".into());
    }
    let _ = std::fs::remove_file(challenge_file(file));
    Ok(())
}

/// The `scope` of a `WWW-Authenticate` challenge to `url` (RFC 6750), split (rmcp's parser).
fn challenge_scopes(challenge: &str, url: &str) -> Vec<String> {
    let Ok(base) = url::Url::parse(url) else {
        return Vec::new();
    };
    rmcp::transport::auth::WWWAuthenticateParams::parse(challenge, &base)
        .scope
        .map(|s| s.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default()
}

/// The `WWW-Authenticate` of the server's 401 to an unauthenticated `initialize`, if any.
async fn challenge(url: &str) -> Option<String> {
    let http = crate::http_client::client(&Default::default()).ok()?;
    let body = serde_json::json!({
        "jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                   "clientInfo": {"name": "mcpvisor", "version": env!("CARGO_PKG_VERSION")}}
    });
    let answer = http
        .post(url)
        .timeout(Duration::from_secs(10))
        .header("accept", "application/json, text/event-stream")
        .json(&body)
        .send()
        .await
        .ok()?;
    if answer.status() != reqwest::StatusCode::UNAUTHORIZED {
        return None;
    }
    answer
        .headers()
        .get(reqwest::header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Accepts connections until one is the redirect (`GET /callback?...`); answers it with a
/// short page; returns its path and query.
async fn callback(listener: &tokio::net::TcpListener) -> Result<String, String> {
    // Bounded: each connection gets one read of at most 16 KiB; the caller bounds the time.
    loop {
        let (mut stream, _) = listener.accept().await.map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; 16 * 1024];
        let n = match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await {
            Ok(Ok(n)) => n,
            _ => continue,
        };
        let head = String::from_utf8_lossy(&buf[..n]);
        let target = head
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("GET "))
            .and_then(|l| l.split_whitespace().next())
            .map(str::to_owned);
        match target {
            Some(t) if t.starts_with("/callback?") => {
                let body = "mcpvisor: signed in; you can close this page.\n";
                let _ = stream
                    .write_all(
                        format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        )
                        .as_bytes(),
                    )
                    .await;
                return Ok(t);
            }
            _ => {
                let _ = stream
                    .write_all(
                        b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                    )
                    .await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A loopback HTTP server answering every request with what `answer` gives for its origin
    /// (status line, JSON body; a redirect elsewhere when the status says so); its origin.
    async fn fixed_http(answer: impl Fn(&str) -> (&'static str, String)) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        let (status, body) = answer(&origin);
        tokio::spawn(async move {
            for _ in 0..8 {
                let Ok((mut tcp, _)) = listener.accept().await else {
                    return;
                };
                let mut buf = vec![0u8; 4096];
                let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf)).await;
                let text = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\nlocation: \
                     http://example.com/x\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tcp.write_all(text.as_bytes()).await;
            }
        });
        origin
    }

    fn metadata_naming(origin: &str, token_origin: &str) -> String {
        serde_json::json!({
            "issuer": format!("{origin}/oauth"),
            "authorization_endpoint": format!("{origin}/oauth/authorize"),
            "token_endpoint": format!("{token_origin}/oauth/token"),
            "response_types_supported": ["code"],
        })
        .to_string()
    }

    #[tokio::test]
    async fn root_metadata_is_taken_only_from_the_servers_own_origin() {
        crate::install_default_tls_provider();
        let own = fixed_http(|o| ("200 OK", metadata_naming(o, o))).await;
        let m = root_metadata(&format!("{own}/mcp")).await.expect("its own");
        assert_eq!(m.token_endpoint, format!("{own}/oauth/token"));
        // A token endpoint elsewhere would receive the code: refused.
        let foreign = fixed_http(|o| ("200 OK", metadata_naming(o, "http://127.0.0.2:9"))).await;
        let e = root_metadata(&format!("{foreign}/mcp")).await.unwrap_err();
        assert!(e.contains("not on the server's own origin"), "{e}");
        // A redirect is not followed.
        let moved = fixed_http(|_| ("302 Found", String::new())).await;
        let e = root_metadata(&format!("{moved}/mcp")).await.unwrap_err();
        assert!(e.contains("302"), "{e}");
    }

    #[test]
    fn a_challenges_scopes_are_read() {
        assert_eq!(
            challenge_scopes(
                r#"Bearer scope="mcp:basic mcp:write", resource_metadata="http://x/y", error="insufficient_scope""#,
                "http://x/mcp"
            ),
            ["mcp:basic", "mcp:write"]
        );
        assert!(
            challenge_scopes("Bearer resource_metadata=\"http://x\"", "http://x/mcp").is_empty()
        );
    }

    #[tokio::test]
    async fn tokens_are_stored_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let file = token_file(&dir.path().join("oauth"), "bot/api");
        assert!(file.ends_with("oauth/bot.api.json"));
        let store = FileCredentialStore::new(file.clone());
        assert!(store.load().await.unwrap().is_none());
        store
            .save(StoredCredentials::new(
                "client-1".into(),
                None,
                vec![],
                None,
            ))
            .await
            .unwrap();
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(store.load().await.unwrap().unwrap().client_id, "client-1");
        store.clear().await.unwrap();
        assert!(!file.exists());
    }
}
