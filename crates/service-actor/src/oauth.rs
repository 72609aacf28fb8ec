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
    AuthClient, AuthError, AuthorizationManager, AuthorizationRequest, ClientCredentialsConfig,
    CredentialStore, OAuthState, StoredCredentials,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The file of a service's tokens in `dir` (the state dir's `oauth/`): `<service>.json`
/// (`agent.name.json` for an agent's service).
pub fn token_file(dir: &Path, service: &str) -> PathBuf {
    dir.join(format!("{}.json", service.replace('/', ".")))
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
    let tmp = path.with_extension("json.tmp");
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

/// An authorization manager for `url` whose credentials live in `file`. Loopback and private
/// addresses are allowed for metadata: mcpvisor supervises local servers too.
async fn manager(url: &str, file: &Path) -> Result<AuthorizationManager, String> {
    let mut manager = AuthorizationManager::new_allowing_private_addresses(url)
        .await
        .map_err(|e| format!("OAuth set-up for {url}: {e}"))?;
    manager.set_credential_store(FileCredentialStore::new(file.to_path_buf()));
    Ok(manager)
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
        let (Some(id), Some(secret)) = (&cfg.client_id, &cfg.client_secret) else {
            return Err("oauth.client_credentials needs client_id and client_secret".into());
        };
        let mut m = AuthorizationManager::new_allowing_private_addresses(url)
            .await
            .map_err(|e| format!("OAuth set-up for {url}: {e}"))?;
        if let Some(f) = file {
            m.set_credential_store(FileCredentialStore::new(f.to_path_buf()));
        }
        let mut state = OAuthState::Unauthorized(m);
        state
            .authenticate_client_credentials(ClientCredentialsConfig::ClientSecret {
                client_id: id.clone(),
                client_secret: secret.clone(),
                scopes: cfg.scopes.clone(),
                resource: Some(url.to_owned()),
            })
            .await
            .map_err(|e| format!("the client_credentials grant was refused: {e}"))?;
        return match state.into_authorization_manager() {
            Some(m) => Ok(Some(AuthClient::new(http, m))),
            None => Err("the client_credentials grant gave no token".into()),
        };
    }
    let Some(file) = file.filter(|f| f.exists()) else {
        return Ok(None);
    };
    let mut m = manager(url, file).await?;
    match m.initialize_from_store().await {
        Ok(true) => Ok(Some(AuthClient::new(http, m))),
        Ok(false) => Ok(None),
        Err(e) => Err(format!(
            "the OAuth tokens in {} cannot be used ({e}); run `mcpvisor login` again",
            file.display()
        )),
    }
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
    let mut state = OAuthState::Unauthorized(manager(url, file).await?);
    let mut request = AuthorizationRequest::new(redirect).with_client_name("mcpvisor");
    if let Some(cfg) = oauth {
        if let Some(id) = &cfg.client_id {
            request = request.with_preregistered_client(id.clone());
        }
        if let Some(secret) = &cfg.client_secret {
            request = request.with_client_secret(secret.clone());
        }
        if !cfg.scopes.is_empty() {
            request = request.with_scopes(cfg.scopes.clone());
        }
    }
    // The server's own 401 names its metadata and the scope it wants (RFC 9728, RFC 6750).
    if let Some(challenge) = challenge(url).await {
        request = request.with_challenge(challenge);
    }
    state
        .start_authorization(request)
        .await
        .map_err(|e| format!("cannot start signing in to {url}: {e}"))?;
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
    Ok(())
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
