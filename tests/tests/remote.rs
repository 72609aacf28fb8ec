//! Remote servers supervised as tightly as local ones (issue 10): a streamable-HTTP server's
//! death is seen at once through its event stream (not at the next probe), and a server back
//! on the same port is picked up with its tools.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;

use mcpvisor_model::{Event, ServiceState};
use mcpvisor_supervisor::{Store, StoreOptions, Wait};
use mcpvisor_tests::ChaosProcess;
use mcpvisor_tests::{deadline, next_transition_to};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::task::JoinHandle;

use ServiceState as S;

const LONG: Duration = Duration::from_secs(20);

/// chaos-mcp with `args` (one of them `--http ADDR`): the process, its log and its URL.
async fn chaos_http(args: &[&str]) -> (ChaosProcess, mcpvisor_tests::StderrCapture, String) {
    let mut process = ChaosProcess::spawn(args).expect("spawn chaos-mcp");
    let log = process.capture_stderr();
    let stdout = process.stdout.take().expect("stdout");
    let url = deadline(LONG, "address line", async {
        BufReader::new(stdout).lines().next_line().await
    })
    .await
    .expect("read")
    .expect("address line");
    (process, log, url)
}

/// A chaos server over streamable HTTP on `addr`; its URL.
async fn http_server(addr: &str) -> (ChaosProcess, String) {
    let (process, _log, url) = chaos_http(&["--http", addr]).await;
    (process, url)
}

#[tokio::test]
async fn a_killed_http_server_is_seen_at_once_and_picked_up_again_on_the_same_port() {
    let (mut server, url) = http_server("127.0.0.1:0").await;
    let addr = url
        .trim_start_matches("http://")
        .trim_end_matches("/mcp")
        .to_owned();
    let store = Store::open(StoreOptions::new()).await.unwrap();
    let mut events = store.subscribe().await.unwrap();
    // Probes every 30 s: only the event stream can tell of the death within a second.
    store
        .add_service(
            json!({"name": "remote", "url": url,
                   "health": {"interval": "30s"},
                   "backoff": {"initial": "50ms", "max": "500ms"}}),
            Wait::Auto,
        )
        .await
        .unwrap();
    assert_eq!(
        store.get_service_status("remote").await.unwrap(),
        S::Healthy
    );

    let killed = Instant::now();
    server.kill_all();
    let seen = next_transition_to(&mut events, S::Reconnecting, LONG).await;
    let took = killed.elapsed();
    eprintln!("HTTP server SIGKILLed → reconnecting event: {took:?}");
    assert!(
        took < Duration::from_secs(1),
        "reconnecting after {took:?} ({seen})"
    );

    // Back on the same port: healthy again with its tools, within backoff.max + a connect.
    let (mut again, _) = http_server(&addr).await;
    store.wait_for(&["remote"], S::Healthy, LONG).await.unwrap();
    let tools = store.list_tools().await.unwrap();
    assert!(tools.iter().any(|t| t.name == "remote__echo"), "{tools:?}");
    let out = store
        .call_tool(
            "remote__echo",
            json!({"text": "back"}).as_object().cloned(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(out.result["content"][0]["text"], "back");
    store.shutdown().await;
    again.kill_all();
}

/// The reason of the first failed connect of `name`, from the event stream.
async fn first_failure(events: &mut mcpvisor_supervisor::EventStream, name: &str) -> String {
    deadline(LONG, "a failed connect", async {
        loop {
            match events.next().await {
                Some(Event::StateChanged {
                    service, reason, ..
                }) if service.name.as_str() == name && reason.starts_with("connect failed") => {
                    return reason
                }
                Some(_) => {}
                None => panic!("event stream ended"),
            }
        }
    })
    .await
}

/// A reason in the user's terms names no Rust type.
fn assert_plain(reason: &str) {
    for rust in ["rmcp::", "reqwest::", "WorkerTransport", "Transport ["] {
        assert!(
            !reason.contains(rust),
            "a Rust type in the reason: {reason}"
        );
    }
}

#[tokio::test]
async fn remote_failures_are_worded_for_the_user_401_refused_and_wrong_path() {
    let (mut server, url) = {
        let mut process = ChaosProcess::spawn(&["--http", "127.0.0.1:0", "--bearer", "s3cret"])
            .expect("spawn chaos-mcp");
        let _stderr = process.capture_stderr();
        let stdout = process.stdout.take().expect("stdout");
        let url = deadline(LONG, "address line", async {
            BufReader::new(stdout).lines().next_line().await
        })
        .await
        .expect("read")
        .expect("address line");
        (process, url)
    };
    // A port nothing listens on: bind one, note it, close it.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let store = Store::open(StoreOptions::new()).await.unwrap();
    let mut events = store.subscribe().await.unwrap();
    let slow = json!({"initial": "10s", "max": "10s"});

    store
        .add_service(
            json!({"name": "noauth", "url": url, "backoff": slow}),
            Wait::None,
        )
        .await
        .unwrap();
    let reason = first_failure(&mut events, "noauth").await;
    eprintln!("401: {reason}");
    assert_plain(&reason);
    assert!(
        reason.contains("unauthorized (HTTP 401): check headers.Authorization / the token"),
        "{reason}"
    );

    // The same server with the token: healthy.
    store
        .add_service(
            json!({"name": "authed", "url": url,
                   "headers": {"Authorization": "Bearer s3cret"}}),
            Wait::Auto,
        )
        .await
        .unwrap();
    assert_eq!(
        store.get_service_status("authed").await.unwrap(),
        S::Healthy
    );

    store
        .add_service(
            json!({"name": "nobody", "url": format!("http://{closed}/mcp"), "backoff": slow}),
            Wait::None,
        )
        .await
        .unwrap();
    let reason = first_failure(&mut events, "nobody").await;
    eprintln!("refused: {reason}");
    assert_plain(&reason);
    assert!(
        reason.contains(&format!(
            "nothing listening on {closed} (connection refused)"
        )),
        "{reason}"
    );

    let wrong = url.replace("/mcp", "/wrong");
    store
        .add_service(
            json!({"name": "lost", "url": wrong,
                   "headers": {"Authorization": "Bearer s3cret"}, "backoff": slow}),
            Wait::None,
        )
        .await
        .unwrap();
    let reason = first_failure(&mut events, "lost").await;
    eprintln!("wrong path: {reason}");
    assert_plain(&reason);
    assert!(
        reason.contains(
            "HTTP 404 at /wrong: is the path right? (this server serves /mcp: streamable HTTP)"
        ),
        "{reason}"
    );
    // The reason is what `status` shows too.
    let info = store.get_service_info("nobody").await.unwrap();
    assert!(
        info.last_error
            .as_deref()
            .is_some_and(|e| e.contains("connection refused")),
        "{info:?}"
    );
    store.shutdown().await;
    server.kill_all();
}

/// A legacy SSE server (on loopback) whose `endpoint` event points to another origin
/// (`localhost` instead of `127.0.0.1`, another port); that origin counts what it receives.
async fn sse_server_naming_another_origin() -> (String, Arc<AtomicUsize>, Vec<JoinHandle<()>>) {
    let decoy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let decoy_port = decoy.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let decoy_app = axum::Router::new().fallback(move || {
        let counted = counted.clone();
        async move {
            counted.fetch_add(1, Ordering::SeqCst);
            axum::http::StatusCode::ACCEPTED
        }
    });
    let sse = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sse_addr = sse.local_addr().unwrap();
    let endpoint = format!("event: endpoint\ndata: http://localhost:{decoy_port}/messages\n\n");
    let sse_app = axum::Router::new().route(
        "/sse",
        axum::routing::get(move || {
            let first = endpoint.clone();
            async move {
                let body =
                    futures::stream::once(async move { Ok::<_, std::convert::Infallible>(first) })
                        .chain(futures::stream::pending());
                (
                    [(axum::http::header::CONTENT_TYPE, "text/event-stream")],
                    axum::body::Body::from_stream(body),
                )
            }
        }),
    );
    let tasks = vec![
        tokio::spawn(async move {
            let _ = axum::serve(decoy, decoy_app).await;
        }),
        tokio::spawn(async move {
            let _ = axum::serve(sse, sse_app).await;
        }),
    ];
    (format!("http://{sse_addr}/sse"), hits, tasks)
}

#[tokio::test]
async fn an_sse_endpoint_on_another_origin_is_refused_and_never_receives_the_token() {
    let (url, hits, tasks) = sse_server_naming_another_origin().await;
    let store = Store::open(StoreOptions::new()).await.unwrap();
    let mut events = store.subscribe().await.unwrap();
    store
        .add_service(
            json!({"name": "legacy", "url": url, "transport": "sse",
                   "headers": {"Authorization": "Bearer s3cret"},
                   "backoff": {"initial": "10s", "max": "10s"}}),
            Wait::None,
        )
        .await
        .unwrap();
    let reason = first_failure(&mut events, "legacy").await;
    eprintln!("foreign endpoint: {reason}");
    assert!(reason.contains("refused the endpoint"), "{reason}");
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "the other origin got a request"
    );
    store.shutdown().await;
    for t in tasks {
        t.abort();
    }
}

#[tokio::test]
async fn a_session_the_server_forgot_is_re_initialized_at_once_as_an_event() {
    let (mut server, url) = http_server("127.0.0.1:0").await;
    let store = Store::open(StoreOptions::new()).await.unwrap();
    let mut events = store.subscribe().await.unwrap();
    store
        .add_service(
            json!({"name": "forgetful", "url": url, "health": {"interval": "30s"},
                   "backoff": {"initial": "10ms", "max": "500ms"}}),
            Wait::Auto,
        )
        .await
        .unwrap();
    store
        .call_tool(
            "forgetful__chaos",
            json!({"action": "forget_sessions"}).as_object().cloned(),
            None,
        )
        .await
        .unwrap();
    // The next request meets the 404: it fails clearly (not retried behind the caller's back)...
    let forgotten = Instant::now();
    let err = store
        .call_tool(
            "forgetful__echo",
            json!({"text": "x"}).as_object().cloned(),
            None,
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("forgot the session"), "{err}");
    // ...and the service re-initializes at once, as events: reconnecting, then healthy.
    let reason = next_transition_to(&mut events, S::Reconnecting, LONG).await;
    assert!(reason.contains("forgot the session (HTTP 404)"), "{reason}");
    store
        .wait_for(&["forgetful"], S::Healthy, LONG)
        .await
        .unwrap();
    eprintln!(
        "session 404 → healthy on a new session: {:?}",
        forgotten.elapsed()
    );
    let out = store
        .call_tool(
            "forgetful__echo",
            json!({"text": "new session"}).as_object().cloned(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(out.result["content"][0]["text"], "new session");
    store.shutdown().await;
    server.kill_all();
}

/// chaos-mcp `--oauth` (its own authorization server, see `chaos::oauth`): the process, its
/// log and its MCP URL.
async fn oauth_server() -> (ChaosProcess, mcpvisor_tests::StderrCapture, String) {
    chaos_http(&["--http", "127.0.0.1:0", "--oauth"]).await
}

/// `login` to `url` for the service `name`, with tokens in `dir`: following the printed URL
/// plays the browser (the authorization server redirects at once). The token file.
async fn sign_in(url: &str, dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    let file = mcpvisor_service_actor::oauth::token_file(dir, name);
    let (tx, rx) = tokio::sync::oneshot::channel::<String>();
    let browser = tokio::spawn(async move {
        let at = rx.await.expect("an authorization URL");
        reqwest::Client::new()
            .get(at)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map(|r| r.status())
    });
    mcpvisor_service_actor::oauth::login(url, &file, None, LONG, |at| {
        let _ = tx.send(at.to_owned());
    })
    .await
    .expect("signed in");
    assert!(browser.await.unwrap().unwrap().is_success());
    file
}

/// A Store whose services' OAuth tokens are in `dir`.
async fn store_with_tokens(dir: &std::path::Path) -> Store {
    let options = StoreOptions {
        token_dir: Some(dir.to_path_buf()),
        ..StoreOptions::new()
    };
    Store::open(options).await.unwrap()
}

/// OAuth end to end on loopback (chaos-mcp `--oauth` is its own authorization server):
/// `login` signs in and stores the tokens (mode 0600); the service connects with them; when the
/// server stops honouring the access token (a 401 to a token that has not expired), the refresh
/// token gets a new one and the request is answered — within the session, and at a reconnect —
/// with no new sign-in. No token appears in what an operator sees.
#[tokio::test]
async fn a_401_to_a_live_token_is_answered_by_a_refresh_in_session_and_at_reconnect() {
    use std::os::unix::fs::PermissionsExt;
    mcpvisor_service_actor::install_default_tls_provider();
    let (mut server, log, url) = oauth_server().await;
    let origin = url.trim_end_matches("/mcp").to_owned();
    let dir = tempfile::tempdir().unwrap();
    let file = sign_in(&url, dir.path(), "api").await;
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the token file is private");
    assert!(
        log.wait_for(LONG, |l| l
            .contains("issued access-1 by authorization_code"))
            .await
    );

    let store = store_with_tokens(dir.path()).await;
    store
        .add_service(json!({"name": "api", "url": url}), Wait::For(LONG))
        .await
        .unwrap();
    assert_eq!(store.get_service_status("api").await.unwrap(), S::Healthy);
    let echo = |text: &'static str| {
        let store = store.clone();
        async move {
            store
                .call_tool(
                    "api__echo",
                    json!({ "text": text }).as_object().cloned(),
                    None,
                )
                .await
        }
    };
    assert!(echo("signed in").await.is_ok());

    // The server stops honouring access-1 (it has an hour left): the next call meets a 401,
    // the refresh token gets access-2, and the call is answered in the same session.
    let revoke = || async {
        let r = reqwest::Client::new()
            .post(format!("{origin}/revoke"))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    };
    revoke().await;
    let answer = echo("after a revoke")
        .await
        .expect("answered with a new token");
    assert!(answer.result.to_string().contains("after a revoke"));
    assert!(
        log.wait_for(LONG, |l| l.contains("issued access-2 by refresh_token"))
            .await
    );
    assert_eq!(store.get_service_status("api").await.unwrap(), S::Healthy);
    assert_eq!(
        log.text().matches("initialize from").count(),
        1,
        "same session"
    );
    assert!(
        std::fs::read_to_string(&file).unwrap().contains("access-2"),
        "stored"
    );
    // Again, then a reconnect: its initialize meets the 401 and is refreshed the same way.
    revoke().await;
    let mut events = store.subscribe().await.unwrap();
    store.restart_service("api").await.unwrap();
    next_transition_to(&mut events, S::Healthy, LONG).await;
    assert!(
        log.wait_for(LONG, |l| l.contains("issued access-3 by refresh_token"))
            .await
    );
    let again = echo("after a reconnect").await;
    assert!(again.is_ok(), "{again:?}\n{}", log.text());
    // No token in what an operator sees.
    let shown = serde_json::to_string(&store.list_services().await.unwrap()).unwrap();
    assert!(!shown.contains("access-"), "{shown}");

    store.shutdown().await;
    server.kill_all();
}

/// A legacy SSE server that wants OAuth from chaos-mcp's authorization server at `issuer`:
/// resource metadata naming it, a 401 to an unauthenticated request; it keeps the
/// `Authorization` header of each stream GET and message POST it gets.
async fn sse_server_wanting_oauth(
    issuer: String,
) -> (
    String,
    tokio::sync::mpsc::UnboundedReceiver<String>,
    JoinHandle<()>,
) {
    use axum::http::{header, HeaderMap, StatusCode};
    use axum::response::IntoResponse;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let (seen, heard) = tokio::sync::mpsc::unbounded_channel();
    let challenge =
        format!("Bearer resource_metadata=\"{origin}/.well-known/oauth-protected-resource/sse\"");
    let refuse = move || {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, challenge.clone())],
        )
            .into_response()
    };
    let (on_get, on_post) = (seen.clone(), seen.clone());
    let (refuse_get, refuse_post) = (refuse.clone(), refuse.clone());
    let resource = format!("{origin}/sse");
    let app = axum::Router::new()
        .route(
            "/.well-known/oauth-protected-resource/sse",
            axum::routing::get(move || {
                let body = json!({"resource": resource, "authorization_servers": [issuer]});
                async move { axum::Json(body) }
            }),
        )
        .route(
            "/sse",
            axum::routing::get(move |headers: HeaderMap| {
                let seen = on_get.clone();
                let refuse = refuse_get.clone();
                async move {
                    let Some(auth) = headers.get(header::AUTHORIZATION) else {
                        return refuse();
                    };
                    let _ = seen.send(format!("GET {}", auth.to_str().unwrap_or("")));
                    let first = "event: endpoint\ndata: /messages\n\n".to_owned();
                    let body =
                        futures::stream::once(
                            async move { Ok::<_, std::convert::Infallible>(first) },
                        )
                        .chain(futures::stream::pending());
                    (
                        [(header::CONTENT_TYPE, "text/event-stream")],
                        axum::body::Body::from_stream(body),
                    )
                        .into_response()
                }
            })
            .post(move || {
                let refuse = refuse_post.clone();
                async move { refuse() }
            }),
        )
        .route(
            "/messages",
            axum::routing::post(move |headers: HeaderMap| {
                let seen = on_post.clone();
                async move {
                    let auth = headers
                        .get(header::AUTHORIZATION)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned();
                    let _ = seen.send(format!("POST {auth}"));
                    StatusCode::ACCEPTED
                }
            }),
        );
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("{origin}/sse"), heard, task)
}

/// OAuth for a legacy SSE server: `login` signs in through the server's metadata, and the
/// connection sends the token with the event stream and with its messages.
#[tokio::test]
async fn a_legacy_sse_server_gets_the_oauth_token_on_its_stream_and_messages() {
    mcpvisor_service_actor::install_default_tls_provider();
    let (mut auth_server, log, auth_url) = oauth_server().await;
    let issuer = auth_url.trim_end_matches("/mcp").to_owned();
    let (url, mut heard, task) = sse_server_wanting_oauth(issuer).await;
    let dir = tempfile::tempdir().unwrap();
    sign_in(&url, dir.path(), "legacy").await;
    assert!(log.wait_for(LONG, |l| l.contains("issued access-1")).await);
    let store = store_with_tokens(dir.path()).await;
    store
        .add_service(
            json!({"name": "legacy", "url": url, "transport": "sse",
                   "timeouts": {"connect": "2s"}, "backoff": {"initial": "10s", "max": "10s"}}),
            Wait::None,
        )
        .await
        .unwrap();
    // The stream and the initialize POST both carry the token (this server answers no MCP).
    deadline(LONG, "the stream and a message with the token", async {
        let (mut get, mut post) = (false, false);
        while !(get && post) {
            match heard.recv().await.as_deref() {
                Some("GET Bearer access-1") => get = true,
                Some("POST Bearer access-1") => post = true,
                Some(other) => panic!("the server got {other:?}"),
                None => panic!("the server stopped"),
            }
        }
    })
    .await;
    store.shutdown().await;
    task.abort();
    auth_server.kill_all();
}
