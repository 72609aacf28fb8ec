//! The fleet as one MCP server (issue 11): real rmcp clients over streamable HTTP and over a
//! byte stream against the gateway, in front of real chaos servers supervised by a Store.

use std::time::{Duration, Instant};

use mcpvisor_gateway::{Endpoint, Gateway, GatewayError, HttpOptions};
use mcpvisor_supervisor::{Store, StoreOptions, Wait};
use mcpvisor_tests::{chaos_bin, deadline, kill_pid};
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::{NotificationContext, RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{ClientHandler, ServiceExt};
use serde_json::{json, Value};
use tokio::sync::mpsc;

const LONG: Duration = Duration::from_secs(20);

fn chaos(name: &str, extra: &[&str]) -> Value {
    json!({
        "name": name,
        "command": chaos_bin().to_string_lossy(),
        "args": extra,
        "health": {"interval": "30s"},
        "backoff": {"initial": "20ms", "max": "200ms"},
        "timeouts": {"shutdown": "300ms"}
    })
}

/// A client that reports every `tools/list_changed` it gets.
#[derive(Clone)]
struct Client {
    changed: mpsc::UnboundedSender<()>,
}

impl ClientHandler for Client {
    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        let _ = self.changed.send(());
    }
}

type Connected = RunningService<RoleClient, Client>;

/// A store with services `a` and `b` (chaos servers, `a_args` for `a`), its gateway served on
/// a loopback port; the gateway's base URL.
async fn fleet(a_args: &[&str]) -> (Store, Gateway, String, tokio_util::sync::CancellationToken) {
    mcpvisor_service_actor::install_default_tls_provider();
    let store = Store::open(StoreOptions::new()).await.unwrap();
    store
        .add_service(chaos("a", a_args), Wait::Auto)
        .await
        .unwrap();
    store
        .add_service(chaos("b", &[]), Wait::Auto)
        .await
        .unwrap();
    let gateway = Gateway::new(store.clone()).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let options = HttpOptions::new(addr);
    let cancel = options.cancel.clone();
    let g = gateway.clone();
    tokio::spawn(async move { g.serve_http(listener, options).await });
    (store, gateway, format!("http://{addr}"), cancel)
}

async fn connect(url: &str) -> (Connected, mpsc::UnboundedReceiver<()>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let client = Client { changed: tx }
        .serve(StreamableHttpClientTransport::from_uri(url.to_owned()))
        .await
        .expect("connect to the gateway");
    (client, rx)
}

/// How a test client reaches the gateway.
#[derive(Clone, Copy, Debug)]
enum Over {
    Http,
    Stream,
}

/// `handler` connected to the gateway's default endpoint over `over`.
async fn attach<H: ClientHandler>(
    handler: H,
    over: Over,
    gateway: &Gateway,
    base: &str,
) -> RunningService<RoleClient, H> {
    match over {
        Over::Http => handler
            .serve(StreamableHttpClientTransport::from_uri(format!(
                "{base}/mcp"
            )))
            .await
            .expect("connect over HTTP"),
        Over::Stream => {
            let (client_io, server_io) = tokio::io::duplex(64 * 1024);
            let (read, write) = tokio::io::split(server_io);
            let g = gateway.clone();
            tokio::spawn(async move { g.serve_stream(Endpoint::Default, read, write).await });
            handler
                .serve(client_io)
                .await
                .expect("connect over a byte stream")
        }
    }
}

/// [`fleet`] with one client attached over `over`.
async fn fleet_with_client(
    over: Over,
) -> (
    Store,
    Gateway,
    tokio_util::sync::CancellationToken,
    Connected,
) {
    let (store, gateway, base, cancel) = fleet(&[]).await;
    let (tx, _) = mpsc::unbounded_channel();
    let client = attach(Client { changed: tx }, over, &gateway, &base).await;
    (store, gateway, cancel, client)
}

async fn names(client: &Connected) -> Vec<String> {
    client
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name.to_string())
        .collect()
}

async fn call(client: &Connected, tool: &str, args: Value) -> CallToolResult {
    mcpvisor_tests::mcp_call(client, tool, args).await
}

fn text(r: &CallToolResult) -> String {
    mcpvisor_tests::first_text(r)
}

#[tokio::test]
async fn an_http_client_sees_the_union_of_tools_and_each_call_lands_on_its_service() {
    let (store, _gateway, base, cancel) = fleet(&[]).await;
    let (client, _) = connect(&format!("{base}/mcp")).await;
    let listed = names(&client).await;
    for expected in ["a__echo", "a__add", "b__echo", "b__pids"] {
        assert!(
            listed.contains(&expected.to_owned()),
            "{expected} in {listed:?}"
        );
    }
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(listed, sorted, "tools/list order is deterministic (sorted)");
    assert_eq!(
        text(&call(&client, "a__echo", json!({"text": "to a"})).await),
        "to a"
    );
    assert_eq!(
        text(&call(&client, "b__add", json!({"a": 2, "b": 3})).await),
        "5"
    );
    // Each call went to its own service's process.
    let pid_a: Value =
        serde_json::from_str(&text(&call(&client, "a__pids", json!({})).await)).unwrap();
    let pid_b: Value =
        serde_json::from_str(&text(&call(&client, "b__pids", json!({})).await)).unwrap();
    assert_eq!(
        pid_a["pid"],
        json!(store.get_service_info("a").await.unwrap().pid)
    );
    assert_eq!(
        pid_b["pid"],
        json!(store.get_service_info("b").await.unwrap().pid)
    );
    // An unknown tool is a JSON-RPC error, and the session goes on.
    let err = client
        .call_tool(CallToolRequestParams::new("nope__nothing"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("unknown tool"), "{err}");
    assert_eq!(
        text(&call(&client, "a__echo", json!({"text": "still"})).await),
        "still"
    );
    client.cancel().await.unwrap();
    cancel.cancel();
    store.shutdown().await;
}

#[tokio::test]
async fn two_clients_share_one_server_process() {
    let (store, _gateway, base, cancel) = fleet(&[]).await;
    let (one, _) = connect(&format!("{base}/mcp")).await;
    let (two, _) = connect(&format!("{base}/mcp")).await;
    let p1: Value = serde_json::from_str(&text(&call(&one, "a__pids", json!({})).await)).unwrap();
    let p2: Value = serde_json::from_str(&text(&call(&two, "a__pids", json!({})).await)).unwrap();
    assert_eq!(p1["pid"], p2["pid"]);
    assert_eq!(store.get_service_info("a").await.unwrap().restarts, 0);
    one.cancel().await.unwrap();
    two.cancel().await.unwrap();
    cancel.cancel();
    store.shutdown().await;
}

#[tokio::test]
async fn a_killed_servers_tools_stay_listed_while_it_restarts_and_a_call_meanwhile_is_held() {
    // `a` takes 400 ms to start: a call made right after the kill has to wait for it.
    let (store, _gateway, base, cancel) = fleet(&["--startup-delay-ms", "400"]).await;
    let (client, mut changed) = connect(&format!("{base}/mcp")).await;
    assert!(names(&client).await.contains(&"a__echo".to_owned()));
    let mut events = store.subscribe().await.unwrap();
    let pid = store.get_service_info("a").await.unwrap().pid.unwrap();
    kill_pid(pid);
    mcpvisor_tests::next_transition_to(
        &mut events,
        mcpvisor_model::ServiceState::Reconnecting,
        LONG,
    )
    .await;
    // On its way back: its tools stay listed (an agent that lists again in the middle of a run
    // keeps the tool its model is about to call).
    let down = names(&client).await;
    assert!(down.contains(&"a__echo".to_owned()), "{down:?}");
    assert!(down.contains(&"b__echo".to_owned()), "{down:?}");
    // A call now is held until `a` is back, then answered.
    let asked = Instant::now();
    let out = call(&client, "a__echo", json!({"text": "held"})).await;
    assert_eq!(text(&out), "held", "{out:?}");
    eprintln!("call held during the reconnect for {:?}", asked.elapsed());
    assert!(names(&client).await.contains(&"a__echo".to_owned()));
    // The list never changed: no client was told it did (a change would have been told by
    // now, within the 400 ms the restart took).
    assert!(
        tokio::time::timeout(Duration::from_millis(300), changed.recv())
            .await
            .is_err(),
        "list_changed was sent for a restart"
    );
    client.cancel().await.unwrap();
    cancel.cancel();
    store.shutdown().await;
}

#[tokio::test]
async fn an_agent_endpoint_shows_only_that_agents_services() {
    let (store, _gateway, base, cancel) = fleet(&[]).await;
    store
        .for_agent("bot")
        .unwrap()
        .add_service(chaos("scratch", &[]), Wait::Auto)
        .await
        .unwrap();
    let (agent, _) = connect(&format!("{base}/agents/bot/mcp")).await;
    let listed = names(&agent).await;
    assert!(listed.contains(&"scratch__echo".to_owned()), "{listed:?}");
    assert!(
        listed.iter().all(|n| n.starts_with("scratch__")),
        "{listed:?}"
    );
    assert_eq!(
        text(&call(&agent, "scratch__echo", json!({"text": "bot"})).await),
        "bot"
    );
    let (all, _) = connect(&format!("{base}/mcp")).await;
    assert!(!names(&all).await.iter().any(|n| n.starts_with("scratch")));
    agent.cancel().await.unwrap();
    all.cancel().await.unwrap();
    cancel.cancel();
    store.shutdown().await;
}

#[tokio::test]
async fn a_client_over_a_byte_stream_is_served_like_over_http() {
    let store = Store::open(StoreOptions::new()).await.unwrap();
    store
        .add_service(chaos("a", &[]), Wait::Auto)
        .await
        .unwrap();
    let gateway = Gateway::new(store.clone()).await.unwrap();
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    let (read, write) = tokio::io::split(server_io);
    let served =
        tokio::spawn(async move { gateway.serve_stream(Endpoint::Default, read, write).await });
    let (tx, _rx) = mpsc::unbounded_channel();
    let client = Client { changed: tx }.serve(client_io).await.unwrap();
    assert!(names(&client).await.contains(&"a__echo".to_owned()));
    assert_eq!(
        text(&call(&client, "a__echo", json!({"text": "piped"})).await),
        "piped"
    );
    client.cancel().await.unwrap();
    deadline(LONG, "serve_stream returns when the client closes", served)
        .await
        .unwrap()
        .unwrap();
    store.shutdown().await;
}

/// Raw HTTP against the gateway: what a hostile or broken client gets.
#[tokio::test]
async fn foreign_origins_unknown_sessions_and_garbage_are_refused_and_the_gateway_keeps_serving() {
    let (store, _gateway, base, cancel) = fleet(&[]).await;
    let http = reqwest::Client::new();
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "raw", "version": "0"}}});
    let post = |body: String| {
        http.post(format!("{base}/mcp"))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(body)
    };
    // A page on another origin (DNS rebinding, a browser tab): 403.
    let r = post(init.to_string())
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    // A Host that is not ours: 403.
    let r = post(init.to_string())
        .header("host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    // A session the gateway never gave out: 404 (clients then re-initialize).
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    let r = post(list.to_string())
        .header("mcp-session-id", "0123456789abcdef")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    // Not JSON: a JSON-RPC error, not a dropped connection.
    let r = post("{this is not json".into()).send().await.unwrap();
    let status = r.status().as_u16();
    let body = r.text().await.unwrap();
    assert!((400..500).contains(&status), "{status} {body}");
    assert!(
        body.contains("\"jsonrpc\"") && body.contains("\"error\""),
        "{body}"
    );
    // JSON, but no JSON-RPC message: invalid request.
    let r = post(json!({"hello": "world"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], -32600, "{body}");
    // Too big: refused.
    let r = post(format!("\"{}\"", "x".repeat(5 * 1024 * 1024)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 413);
    // Session ids are long and random.
    let r = post(init.to_string()).send().await.unwrap();
    let id = r.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    assert!(id.len() >= 32, "{id}");
    // And a real client is still served.
    let (client, _) = connect(&format!("{base}/mcp")).await;
    assert_eq!(
        text(&call(&client, "a__echo", json!({"text": "alive"})).await),
        "alive"
    );
    client.cancel().await.unwrap();
    cancel.cancel();
    store.shutdown().await;
}

/// The SSE events of one answer, each as its fields (`data`, `id`, `retry`, ...).
fn sse_events(body: &str) -> Vec<Vec<(String, String)>> {
    body.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            e.lines()
                .filter(|l| !l.starts_with(':'))
                .map(|l| match l.split_once(':') {
                    Some((k, v)) => (k.to_owned(), v.strip_prefix(' ').unwrap_or(v).to_owned()),
                    None => (l.to_owned(), String::new()),
                })
                .collect()
        })
        .collect()
}

/// Raw SSE bytes of a list and a call, per revision (DESIGN §17): a client before 2025-11-25
/// never gets an event without data (a priming event) nor a `retry` field — Gemini CLI, on
/// 2025-06-18, fails at the first one; every event's data is one JSON-RPC message; a
/// 2026-07-28 result carries `resultType`, an older one does not.
#[tokio::test]
async fn every_sse_event_is_what_the_clients_revision_defines() {
    let (store, _gateway, base, cancel) = fleet(&[]).await;
    let http = reqwest::Client::new();
    let post = |body: Value, version: &str, session: Option<&str>| {
        let mut r = http
            .post(format!("{base}/mcp"))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", version)
            .body(body.to_string());
        if let Some(id) = session {
            r = r.header("mcp-session-id", id);
        }
        r
    };
    let call = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": {"name": "a__echo", "arguments": {"text": "hi"}}});
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    for version in ["2025-03-26", "2025-06-18", "2025-11-25"] {
        let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": version, "capabilities": {},
            "clientInfo": {"name": "raw", "version": "0"}}});
        let r = post(init, version, None).send().await.unwrap();
        let session = r.headers()["mcp-session-id"].to_str().unwrap().to_owned();
        let _ = r.text().await.unwrap();
        let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        post(initialized, version, Some(&session))
            .send()
            .await
            .unwrap();
        for request in [&list, &call] {
            let r = post(request.clone(), version, Some(&session))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 200, "{version} {request}");
            let body = r.text().await.unwrap();
            let events = sse_events(&body);
            assert!(!events.is_empty(), "{version}: no event in {body:?}");
            let mut answered = false;
            for event in &events {
                let data: String = event
                    .iter()
                    .filter(|(k, _)| k == "data")
                    .map(|(_, v)| v.as_str())
                    .collect();
                let primes = data.is_empty();
                let retry = event.iter().any(|(k, _)| k == "retry");
                if version < "2025-11-25" {
                    assert!(!primes, "{version}: an event without data: {body:?}");
                    assert!(!retry, "{version}: a retry field: {body:?}");
                }
                if primes {
                    continue;
                }
                let message: Value = serde_json::from_str(&data)
                    .unwrap_or_else(|e| panic!("{version}: data not JSON ({e}): {body:?}"));
                assert_eq!(message["jsonrpc"], "2.0", "{body:?}");
                if message["id"] == request["id"] {
                    answered = true;
                    assert!(
                        message["result"]["resultType"].is_null(),
                        "{version}: {body}"
                    );
                }
            }
            assert!(answered, "{version}: no answer in {body:?}");
        }
    }
    // 2026-07-28: no session, every request says who asks.
    let meta = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "0"},
        "io.modelcontextprotocol/clientCapabilities": {}});
    for (method, name, params) in [
        ("tools/list", None, json!({"_meta": meta})),
        (
            "tools/call",
            Some("a__echo"),
            json!({"_meta": meta, "name": "a__echo", "arguments": {"text": "hi"}}),
        ),
    ] {
        let body = json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params});
        let mut r = post(body, "2026-07-28", None).header("mcp-method", method);
        if let Some(name) = name {
            r = r.header("mcp-name", name);
        }
        let r = r.send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200, "2026-07-28 {method}");
        let text = r.text().await.unwrap();
        let answers: Vec<Value> = if text.trim_start().starts_with('{') {
            vec![serde_json::from_str(&text).unwrap()]
        } else {
            sse_events(&text)
                .iter()
                .filter_map(|e| e.iter().find(|(k, _)| k == "data").map(|(_, v)| v.clone()))
                .filter(|d| !d.is_empty())
                .map(|d| serde_json::from_str(&d).unwrap())
                .collect()
        };
        let answer = answers
            .iter()
            .find(|m| m["id"] == 7)
            .unwrap_or_else(|| panic!("2026-07-28 {method}: no answer in {text}"));
        assert_eq!(answer["result"]["resultType"], "complete", "{text}");
    }
    cancel.cancel();
    store.shutdown().await;
}

/// A 2026-07-28 client (rmcp, `server/discover`, no session) follows the fleet on one
/// `subscriptions/listen` stream: acknowledged with the filter it asked for, then told when a
/// service's tools join the list; a list change it did not ask for is not sent.
#[tokio::test]
async fn a_2026_client_listens_for_the_fleets_list_changes() {
    use rmcp::model::{ProtocolVersion, ServerNotification, SubscriptionFilter};
    use rmcp::service::{ClientLifecycleMode, ClientServiceExt};
    let (store, _gateway, base, cancel) = fleet(&[]).await;
    let client = ()
        .serve_with_lifecycle(
            StreamableHttpClientTransport::from_uri(format!("{base}/mcp")),
            ClientLifecycleMode::Discover {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            },
        )
        .await
        .expect("discover the gateway");
    assert_eq!(
        client
            .peer()
            .peer_info()
            .map(|i| i.protocol_version.clone()),
        Some(ProtocolVersion::V_2026_07_28)
    );
    let mut subscription = deadline(
        LONG,
        "the listen acknowledgement",
        client
            .peer()
            .listen(SubscriptionFilter::builder().tools_list_changed().build()),
    )
    .await
    .expect("listen");
    assert_eq!(subscription.acknowledged().tools_list_changed, Some(true));
    assert_eq!(subscription.acknowledged().prompts_list_changed, None);
    store
        .add_service(chaos("c", &[]), Wait::Auto)
        .await
        .unwrap();
    let note = deadline(
        LONG,
        "tools/list_changed on the stream",
        subscription.next(),
    )
    .await
    .expect("the stream")
    .expect("a notification");
    assert!(
        matches!(note, ServerNotification::ToolListChangedNotification(_)),
        "{note:?}"
    );
    let tools = client.list_all_tools().await.unwrap();
    assert!(tools.iter().any(|t| t.name == "c__echo"), "{tools:?}");
    // The client ends it; the gateway's listener goes with it (no error either side).
    subscription.cancel().await.unwrap();
    cancel.cancel();
    store.shutdown().await;
}

#[tokio::test]
async fn a_token_is_required_off_loopback_and_checked_when_set() {
    let store = Store::open(StoreOptions::new()).await.unwrap();
    let gateway = Gateway::new(store.clone()).await.unwrap();
    let off_loopback = HttpOptions::new("0.0.0.0:4711".parse().unwrap());
    assert!(matches!(
        gateway.router(&off_loopback),
        Err(GatewayError::TokenRequired(_))
    ));
    // With a token (served on loopback here): no token or a wrong one is 401.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut options = HttpOptions::new(addr);
    options.token = Some("s3cret-token".into());
    let cancel = options.cancel.clone();
    let g = gateway.clone();
    tokio::spawn(async move { g.serve_http(listener, options).await });
    let http = reqwest::Client::new();
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "raw", "version": "0"}}});
    for auth in [None, Some("Bearer wrong"), Some("Bearer s3cret-token")] {
        let mut req = http
            .post(format!("http://{addr}/mcp"))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(init.to_string());
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let status = req.send().await.unwrap().status().as_u16();
        let expected = if auth == Some("Bearer s3cret-token") {
            200
        } else {
            401
        };
        assert_eq!(status, expected, "{auth:?}");
    }
    cancel.cancel();
    store.shutdown().await;
}

/// Waits (bounded) until a line of `service`'s stderr matches.
async fn logged(store: &Store, service: &str, what: &str, matches: impl Fn(&str) -> bool) {
    deadline(LONG, what, async {
        while !store
            .service_logs(service, 50)
            .unwrap_or_default()
            .iter()
            .any(|l| matches(l))
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn a_client_cancelling_a_call_cancels_it_upstream() {
    cancelling_a_call_cancels_it_upstream(Over::Http).await;
}

/// Over a byte stream the call is relayed as JSON: cancelled the same.
#[tokio::test]
async fn a_client_cancelling_a_relayed_call_cancels_it_upstream() {
    cancelling_a_call_cancels_it_upstream(Over::Stream).await;
}

async fn cancelling_a_call_cancels_it_upstream(over: Over) {
    let (store, gateway, cancel, client) = fleet_with_client(over).await;
    let params = CallToolRequestParams::new("a__sleep")
        .with_arguments(json!({"ms": 30_000}).as_object().cloned().unwrap());
    let request =
        rmcp::model::ClientRequest::CallToolRequest(rmcp::model::CallToolRequest::new(params));
    let handle = client
        .send_cancellable_request(request, rmcp::service::PeerRequestOptions::no_options())
        .await
        .unwrap();
    // Let the call reach the server, then give up on it.
    logged(&store, "a", "the sleep reached the server", |l| {
        l.contains("tools/call") && l.contains("sleep")
    })
    .await;
    assert_eq!(gateway.relayed_calls(), 1, "{over:?}");
    handle.cancel(Some("changed my mind".into())).await.unwrap();
    // The server hears of it: its sleep ends early.
    logged(&store, "a", "the server saw the cancellation", |l| {
        l.contains("sleep cancelled by the client")
    })
    .await;
    // The session goes on.
    assert_eq!(
        text(&call(&client, "a__echo", json!({"text": "after"})).await),
        "after"
    );
    client.cancel().await.unwrap();
    cancel.cancel();
    store.shutdown().await;
}

/// A client that closes its HTTP session with a call running (rmcp's client drops the call's
/// response stream, then deletes the session): the call is cancelled at the server.
#[tokio::test]
async fn closing_an_http_session_cancels_its_calls_upstream() {
    let (store, gateway, cancel, client) = fleet_with_client(Over::Http).await;
    let peer = client.peer().clone();
    let sleeping = tokio::spawn(async move {
        let p = CallToolRequestParams::new("a__sleep")
            .with_arguments(json!({"ms": 30_000}).as_object().cloned().unwrap());
        peer.call_tool(p).await
    });
    logged(&store, "a", "the sleep reached the server", |l| {
        l.contains("tools/call") && l.contains("sleep")
    })
    .await;
    assert_eq!(gateway.relayed_calls(), 1);
    // Closing the client ends its session (DELETE).
    client.cancel().await.unwrap();
    logged(&store, "a", "the server saw the cancellation", |l| {
        l.contains("sleep cancelled by the client")
    })
    .await;
    assert!(deadline(LONG, "the call ends", sleeping).await.is_ok());
    cancel.cancel();
    store.shutdown().await;
}

/// A client whose connection drops mid-call has not cancelled it (the streamable HTTP
/// transport: disconnection is not cancellation): the server runs it to the end.
#[tokio::test]
async fn an_http_call_whose_connection_drops_runs_on_at_the_server() {
    let (store, gateway, base, cancel) = fleet(&[]).await;
    let http = reqwest::Client::new();
    let url = format!("{base}/mcp");
    let post = |body: Value, session: Option<&str>| {
        let mut r = http
            .post(&url)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(s) = session {
            r = r
                .header("mcp-session-id", s)
                .header("mcp-protocol-version", "2025-06-18");
        }
        r.send()
    };
    let init = post(
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "dropper", "version": "1"}}}),
        None,
    )
    .await
    .unwrap();
    let session = init.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(init.text().await.unwrap().contains("serverInfo"));
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    assert!(post(note, Some(&session))
        .await
        .unwrap()
        .status()
        .is_success());
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "a__sleep", "arguments": {"ms": 400}}});
    let response = post(call, Some(&session)).await.unwrap();
    logged(&store, "a", "the sleep reached the server", |l| {
        l.contains("tools/call") && l.contains("sleep")
    })
    .await;
    assert_eq!(gateway.relayed_calls(), 1);
    // The client goes away before the answer.
    drop(response);
    drop(http);
    logged(&store, "a", "the sleep ran to its end", |l| {
        l.contains("slept 400 ms to the end")
    })
    .await;
    let said = store.service_logs("a", 200).unwrap_or_default();
    assert!(
        !said.iter().any(|l| l.contains("sleep cancelled")),
        "{said:?}"
    );
    cancel.cancel();
    store.shutdown().await;
}

/// Over a byte stream a call goes to the server as the JSON it came in (under the gateway's
/// own id, which the server reports), and every answer is the one a session gets over HTTP
/// through rmcp: results and tool errors.
#[tokio::test]
async fn a_byte_stream_call_is_relayed_as_json_and_answered_like_over_http() {
    let (store, gateway, base, cancel) = fleet(&[]).await;
    let (tx, _changed) = mpsc::unbounded_channel();
    let http = attach(
        Client {
            changed: tx.clone(),
        },
        Over::Http,
        &gateway,
        &base,
    )
    .await;
    let stream = attach(Client { changed: tx }, Over::Stream, &gateway, &base).await;
    let id = |r: CallToolResult| serde_json::from_str::<Value>(&text(&r)).unwrap();
    assert_eq!(gateway.relayed_calls(), 0);
    let relayed = id(call(&stream, "a__chaos", json!({"action": "request_id"})).await);
    assert_eq!(
        gateway.relayed_calls(),
        1,
        "the stream's first call is relayed"
    );
    assert!(
        relayed.as_str().is_some_and(|s| s.starts_with("mcpvisor-")),
        "a relayed call carries the gateway's id: {relayed}"
    );
    // A session over HTTP is answered without rmcp's session machinery, relayed the same way.
    let other = id(call(&http, "a__chaos", json!({"action": "request_id"})).await);
    assert!(
        other.as_str().is_some_and(|s| s.starts_with("mcpvisor-")) && other != relayed,
        "{other}"
    );
    assert_eq!(
        gateway.relayed_calls(),
        2,
        "the HTTP session's call is relayed"
    );
    // Each answer is the one rmcp's typed model gives (the Store's own call).
    for (tool, args) in [
        ("a__echo", json!({"text": "same \"quoted\" ünïcode"})),
        ("b__add", json!({"a": 2, "b": 40.5})),
        ("a__fail", json!({"message": "no"})),
        ("a__echo", json!({"wrong": 1})),
    ] {
        let over_stream = call(&stream, tool, args.clone()).await;
        assert_eq!(over_stream, call(&http, tool, args.clone()).await, "{tool}");
        let typed = store
            .call_tool(tool, args.as_object().cloned(), None)
            .await
            .unwrap();
        let typed: CallToolResult = serde_json::from_value(typed.result).unwrap();
        assert_eq!(over_stream, typed, "{tool}");
    }
    // Many at once, each answer to its own call.
    let calls: Vec<_> = (0..32)
        .map(|i| {
            let peer = stream.peer().clone();
            tokio::spawn(async move {
                let p = CallToolRequestParams::new("a__echo").with_arguments(
                    json!({"text": format!("n{i}")})
                        .as_object()
                        .cloned()
                        .unwrap(),
                );
                (i, peer.call_tool(p).await.unwrap())
            })
        })
        .collect();
    for c in calls {
        let (i, r) = c.await.unwrap();
        assert_eq!(text(&r), format!("n{i}"));
    }
    // Every call was relayed.
    assert_eq!(gateway.relayed_calls(), 2 + 4 * 2 + 32);
    stream.cancel().await.unwrap();
    http.cancel().await.unwrap();
    cancel.cancel();
    store.shutdown().await;
}

/// A byte-stream client's call to a remote server (no stdio connection to relay on) goes the
/// typed way and is answered the same; a stdio service beside it is still relayed.
#[tokio::test]
async fn a_byte_stream_call_to_a_remote_server_is_answered_the_typed_way() {
    use tokio::io::AsyncBufReadExt;
    let (store, gateway, base, cancel) = fleet(&[]).await;
    let mut remote = mcpvisor_tests::ChaosProcess::spawn(&["--http", "127.0.0.1:0"]).unwrap();
    let stdout = remote.stdout.take().unwrap();
    let url = deadline(LONG, "the remote server's address", async {
        tokio::io::BufReader::new(stdout).lines().next_line().await
    })
    .await
    .unwrap()
    .unwrap();
    store
        .add_service(json!({"name": "far", "url": url}), Wait::For(LONG))
        .await
        .unwrap();
    let (tx, _changed) = mpsc::unbounded_channel();
    let client = attach(Client { changed: tx }, Over::Stream, &gateway, &base).await;
    assert!(names(&client).await.contains(&"far__echo".to_owned()));
    let out = call(&client, "far__echo", json!({"text": "over there"})).await;
    assert_eq!(text(&out), "over there", "{out:?}");
    let id = call(&client, "far__chaos", json!({"action": "request_id"})).await;
    assert!(
        serde_json::from_str::<Value>(&text(&id))
            .unwrap()
            .is_number(),
        "{id:?}"
    );
    let failed = call(&client, "far__fail", json!({"message": "no"})).await;
    assert_eq!(failed.is_error, Some(true));
    assert_eq!(text(&failed), "no");
    client.cancel().await.unwrap();
    cancel.cancel();
    store.shutdown().await;
    remote.kill_all();
}

/// JSON-RPC lines over a byte stream, by hand: a client that closes its input still gets the
/// answers to the calls it made (they are relayed: the gateway waits for them before closing),
/// and a call it cancelled is not answered, its server told.
#[tokio::test]
async fn a_client_closing_its_input_gets_its_answers_and_none_for_what_it_cancelled() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let (store, gateway, _base, cancel) = fleet(&[]).await;
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    let (read, write) = tokio::io::split(server_io);
    let g = gateway.clone();
    let served = tokio::spawn(async move { g.serve_stream(Endpoint::Default, read, write).await });
    let (from, mut to) = tokio::io::split(client_io);
    let mut lines = tokio::io::BufReader::new(from).lines();
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "by-hand", "version": "1"}}});
    to.write_all(format!("{init}\n").as_bytes()).await.unwrap();
    let answer = deadline(LONG, "the initialize answer", lines.next_line())
        .await
        .unwrap()
        .unwrap();
    assert!(answer.contains("\"id\":1"), "{answer}");
    let call = |id: u32, ms: u32| {
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
               "params": {"name": "a__sleep", "arguments": {"ms": ms}}})
    };
    let cancelled = json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                           "params": {"requestId": 3, "reason": "no longer wanted"}});
    let rest = format!(
        "{}\n{}\n{}\n{cancelled}\n",
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        call(2, 300),
        call(3, 30_000),
    );
    to.write_all(rest.as_bytes()).await.unwrap();
    logged(
        &store,
        "a",
        "the cancelled sleep ended at the server",
        |l| l.contains("sleep cancelled by the client"),
    )
    .await;
    // Input closed with call 2 still running.
    to.shutdown().await.unwrap();
    let mut answers = Vec::new();
    deadline(LONG, "the gateway answers, then closes the stream", async {
        while let Some(line) = lines.next_line().await.unwrap() {
            answers.push(serde_json::from_str::<Value>(&line).unwrap());
        }
    })
    .await;
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert_eq!(answers[0]["id"], 2);
    assert_eq!(answers[0]["result"]["content"][0]["text"], "slept 300");
    assert_eq!(gateway.relayed_calls(), 2);
    deadline(LONG, "serve_stream returns", served)
        .await
        .unwrap()
        .unwrap();
    cancel.cancel();
    store.shutdown().await;
}

/// A relayed call in flight when its server dies fails at once with a tool error naming the
/// service, and is not made again; the next call goes to the new server.
#[tokio::test]
async fn a_relayed_call_whose_server_dies_fails_clearly_and_is_not_retried() {
    let (store, gateway, cancel, client) = fleet_with_client(Over::Stream).await;
    let pid = store.get_service_info("a").await.unwrap().pid.unwrap();
    let peer = client.peer().clone();
    let sleeping = tokio::spawn(async move {
        let p = CallToolRequestParams::new("a__sleep")
            .with_arguments(json!({"ms": 30_000}).as_object().cloned().unwrap());
        peer.call_tool(p).await
    });
    logged(&store, "a", "the sleep reached the server", |l| {
        l.contains("tools/call") && l.contains("sleep")
    })
    .await;
    assert_eq!(gateway.relayed_calls(), 1);
    kill_pid(pid);
    let out = deadline(LONG, "the call fails when its server dies", sleeping)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out.is_error, Some(true), "{out:?}");
    let said = text(&out);
    assert!(
        said.contains("service 'a'") && said.contains("not retried"),
        "{said}"
    );
    // Back on a new process (the old one's state may still read healthy for an instant).
    back_on_a_new_process(&store, "a", pid).await;
    let again = call(&client, "a__echo", json!({"text": "back"})).await;
    assert_eq!(text(&again), "back");
    client.cancel().await.unwrap();
    cancel.cancel();
    store.shutdown().await;
}

/// Waits until `service` is healthy on a process other than `old`; its pid.
async fn back_on_a_new_process(store: &Store, service: &str, old: u32) -> u32 {
    let end = Instant::now() + LONG;
    loop {
        let info = store.get_service_info(service).await.unwrap();
        if let (mcpvisor_model::ServiceState::Healthy, Some(pid)) = (info.state, info.pid) {
            if pid != old {
                return pid;
            }
        }
        assert!(Instant::now() < end, "{service} is back on a new process");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_call_made_the_instant_its_server_died_is_held_and_answered_over_http() {
    a_call_made_the_instant_its_server_died_is_held_and_answered(Over::Http).await;
}

#[tokio::test]
async fn a_call_made_the_instant_its_server_died_is_held_and_answered_over_a_byte_stream() {
    a_call_made_the_instant_its_server_died_is_held_and_answered(Over::Stream).await;
}

/// The instant after a server dies its state still reads healthy until the supervisor has
/// seen the end: a call made then was never sent, so it is held for the new process and
/// answered — not failed as one that "may or may not have taken effect".
async fn a_call_made_the_instant_its_server_died_is_held_and_answered(over: Over) {
    let (store, _gateway, cancel, client) = fleet_with_client(over).await;
    assert_eq!(
        text(&call(&client, "a__echo", json!({"text": "up"})).await),
        "up"
    );
    let mut pid = store.get_service_info("a").await.unwrap().pid.unwrap();
    for round in 0..5 {
        kill_pid(pid);
        // Gone, every thread (so its pipes are closed), then called at once: before or after
        // the supervisor has heard, the call is answered.
        let end = Instant::now() + LONG;
        let threads = || std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |d| d.count());
        while mcpvisor_tests::pid_alive(pid) || threads() > 1 {
            assert!(Instant::now() < end, "pid {pid} outlived SIGKILL");
            std::hint::spin_loop();
        }
        let said = format!("round {round}");
        let out = call(&client, "a__echo", json!({ "text": said })).await;
        assert_eq!(text(&out), said, "{over:?}: {out:?}");
        pid = back_on_a_new_process(&store, "a", pid).await;
    }
    client.cancel().await.unwrap();
    cancel.cancel();
    store.shutdown().await;
}

/// A client that keeps the progress notifications it gets.
#[derive(Clone)]
struct ProgressClient {
    seen: mpsc::UnboundedSender<rmcp::model::ProgressNotificationParam>,
}

impl ClientHandler for ProgressClient {
    async fn on_progress(
        &self,
        params: rmcp::model::ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        let _ = self.seen.send(params);
    }
}

#[tokio::test]
async fn upstream_progress_reaches_the_calling_client_under_its_own_token() {
    progress_reaches_the_calling_client(Over::Http).await;
}

#[tokio::test]
async fn upstream_progress_of_a_relayed_call_reaches_the_calling_client() {
    progress_reaches_the_calling_client(Over::Stream).await;
}

async fn progress_reaches_the_calling_client(over: Over) {
    let (store, gateway, base, cancel) = fleet(&[]).await;
    let (tx, mut seen) = mpsc::unbounded_channel();
    let client = attach(ProgressClient { seen: tx }, over, &gateway, &base).await;
    let params = CallToolRequestParams::new("a__sleep")
        .with_arguments(json!({"ms": 150, "steps": 3}).as_object().cloned().unwrap());
    let request =
        rmcp::model::ClientRequest::CallToolRequest(rmcp::model::CallToolRequest::new(params));
    let handle = client
        .send_cancellable_request(request, rmcp::service::PeerRequestOptions::no_options())
        .await
        .unwrap();
    let token = handle.progress_token.clone();
    let answer = handle.await_response().await.unwrap();
    assert_eq!(gateway.relayed_calls(), 1, "{over:?}");
    assert!(format!("{answer:?}").contains("slept 150"), "{answer:?}");
    // All three, in order, with the client's token. (The gateway writes them before the
    // answer; rmcp's client hands each notification to its own task, so here they may land
    // just after it: wait for them, with a deadline.)
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while got.len() < 3 {
        match tokio::time::timeout_at(deadline, seen.recv()).await {
            Ok(Some(p)) => got.push(p),
            _ => break,
        }
    }
    let steps: Vec<f64> = got.iter().map(|p| p.progress).collect();
    assert_eq!(steps, [1.0, 2.0, 3.0], "{got:?}");
    assert!(got
        .iter()
        .all(|p| p.progress_token == token && p.total == Some(3.0)));
    assert_eq!(got[2].message.as_deref(), Some("step 3 of 3"));
    client.cancel().await.unwrap();
    cancel.cancel();
    store.shutdown().await;
}

/// Through the Store, a call's progress is all in the caller's channel, in order, by the time
/// the call returns (rmcp runs each notification's handler in its own task: a relay fed by
/// handlers lost the last steps whenever the answer overtook them).
#[tokio::test]
async fn store_call_progress_is_complete_and_in_order_when_the_call_returns() {
    let (store, _gateway, _base, cancel) = fleet(&[]).await;
    for round in 0..300 {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let control = mcpvisor_supervisor::CallControl {
            progress: Some(tx),
            ..Default::default()
        };
        let out = store
            .call_tool_with(
                "a__sleep",
                json!({"ms": 0, "steps": 5}).as_object().cloned(),
                None,
                &control,
            )
            .await
            .unwrap();
        assert!(!out.is_error, "{out:?}");
        let steps: Vec<f64> = std::iter::from_fn(|| rx.try_recv().ok())
            .map(|p| p.progress)
            .collect();
        assert_eq!(steps, [1.0, 2.0, 3.0, 4.0, 5.0], "round {round}");
    }
    cancel.cancel();
    store.shutdown().await;
}

#[tokio::test]
async fn metrics_parse_as_prometheus_text_and_agree_with_status() {
    let (store, _gateway, base, cancel) = fleet(&[]).await;
    let (client, _) = connect(&format!("{base}/mcp")).await;
    for i in 0..5 {
        call(&client, "a__echo", json!({"text": format!("{i}")})).await;
    }
    let http = reqwest::Client::new();
    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .expect("Prometheus text format");
    let value = |metric: &str, service: &str| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == metric && s.labels.get("service") == Some(service))
            .map(|s| s.value.clone())
            .unwrap_or_else(|| panic!("{metric}{{service={service}}} missing:\n{text}"))
    };
    // The parser reads a counter's `_total` sample as untyped (its TYPE line names the family
    // without the suffix, OpenMetrics-style): compare the numbers.
    let number = |v: prometheus_parse::Value| match v {
        prometheus_parse::Value::Counter(x)
        | prometheus_parse::Value::Gauge(x)
        | prometheus_parse::Value::Untyped(x) => x,
        other => panic!("not a number: {other:?}"),
    };
    let status = store.list_services().await.unwrap();
    for v in &status {
        let up = if v.state.is_up() { 1.0 } else { 0.0 };
        assert_eq!(
            value("mcpvisor_service_up", &v.name),
            prometheus_parse::Value::Gauge(up)
        );
        assert_eq!(
            number(value("mcpvisor_service_calls_total", &v.name)),
            v.metrics.calls as f64
        );
        assert_eq!(
            number(value("mcpvisor_service_restarts_total", &v.name)),
            v.restarts as f64
        );
        assert_eq!(
            value("mcpvisor_service_tools", &v.name),
            prometheus_parse::Value::Gauge(v.tools as f64)
        );
    }
    assert_eq!(number(value("mcpvisor_service_calls_total", "a")), 5.0);
    match value("mcpvisor_service_call_duration_seconds", "a") {
        prometheus_parse::Value::Histogram(buckets) => {
            let inf = buckets.last().expect("buckets");
            assert!(
                inf.less_than.is_infinite() && inf.count == 5.0,
                "{buckets:?}"
            );
        }
        other => panic!("not a histogram: {other:?}"),
    }
    assert!(text.contains("process_resident_memory_bytes"), "{text}");
    for path in ["/healthz", "/readyz"] {
        let r = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200, "{path}");
    }
    client.cancel().await.unwrap();
    cancel.cancel();
    store.shutdown().await;
}

#[tokio::test]
async fn kept_tools_of_down_services_answer_with_errors_naming_service_and_state() {
    let config = mcpvisor_model::parse_value(
        json!({"mcpServers": {}, "gateway": {"down_tools": "keep", "hold": "300ms"}}),
        &mcpvisor_model::env::MapEnv::default(),
    )
    .unwrap();
    let store = Store::open(StoreOptions::new().with_config(config))
        .await
        .unwrap();
    store
        .add_service(chaos("a", &[]), Wait::Auto)
        .await
        .unwrap();
    // `b` takes 3 s to come back: longer than the 300 ms hold.
    store
        .add_service(chaos("b", &["--startup-delay-ms", "3000"]), Wait::Auto)
        .await
        .unwrap();
    let gateway = Gateway::new(store.clone()).await.unwrap();
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    let (read, write) = tokio::io::split(server_io);
    tokio::spawn(async move { gateway.serve_stream(Endpoint::Default, read, write).await });
    let (tx, _rx) = mpsc::unbounded_channel();
    let client = Client { changed: tx }.serve(client_io).await.unwrap();

    // Stopped by hand: still listed (keep), and a call says so at once.
    store.stop_service("a", false).await.unwrap();
    assert!(names(&client).await.contains(&"a__echo".to_owned()));
    let out = call(&client, "a__echo", json!({"text": "x"})).await;
    assert_eq!(out.is_error, Some(true));
    assert!(text(&out).contains("service 'a' is stopped"), "{out:?}");

    // Reconnecting for longer than the hold: the call waits 300 ms, then says why.
    let pid = store.get_service_info("b").await.unwrap().pid.unwrap();
    kill_pid(pid);
    deadline(LONG, "b seen down", async {
        while store.get_service_status("b").await.unwrap().is_up() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    let asked = Instant::now();
    let out = call(&client, "b__echo", json!({"text": "x"})).await;
    let waited = asked.elapsed();
    assert_eq!(out.is_error, Some(true));
    assert!(
        text(&out).contains("service 'b' is") && text(&out).contains("gateway.hold"),
        "{out:?}"
    );
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(2),
        "{waited:?}"
    );
    assert!(
        names(&client).await.contains(&"b__echo".to_owned()),
        "kept while down"
    );
    client.cancel().await.unwrap();
    store.shutdown().await;
}

#[tokio::test]
async fn an_idle_service_stays_listed_a_call_wakes_it_and_no_list_changed_churns() {
    let (store, _gateway, base, cancel) = fleet(&[]).await;
    let mut lazy = chaos("lazy", &[]);
    lazy["start"] = json!("lazy");
    lazy["idle_stop"] = json!("400ms");
    store.add_service(lazy, Wait::None).await.unwrap();
    // It learns its tools once, then is idle.
    store
        .wait_for(&["lazy"], mcpvisor_model::ServiceState::Idle, LONG)
        .await
        .unwrap();
    let (client, mut changed) = connect(&format!("{base}/mcp")).await;
    assert!(names(&client).await.contains(&"lazy__echo".to_owned()));
    // A call wakes it through the gateway; then it goes idle again.
    assert_eq!(
        text(&call(&client, "lazy__echo", json!({"text": "awake"})).await),
        "awake"
    );
    assert!(store.get_service_info("lazy").await.unwrap().state.is_up());
    store
        .wait_for(&["lazy"], mcpvisor_model::ServiceState::Idle, LONG)
        .await
        .unwrap();
    assert!(names(&client).await.contains(&"lazy__echo".to_owned()));
    // A real change now: exactly one list_changed arrives before it shows. Notifications go
    // out in event order, so any churn from the wake and the idle stop would come first.
    store
        .add_service(chaos("c", &[]), Wait::None)
        .await
        .unwrap();
    let mut told = 0;
    while !names(&client).await.contains(&"c__echo".to_owned()) {
        deadline(LONG, "list_changed for c", changed.recv()).await;
        told += 1;
    }
    if told == 0 {
        deadline(LONG, "list_changed for c", changed.recv()).await;
        told = 1;
    }
    while changed.try_recv().is_ok() {
        told += 1;
    }
    assert_eq!(told, 1, "only the added service changed the list");
    client.cancel().await.unwrap();
    cancel.cancel();
    store.shutdown().await;
}
