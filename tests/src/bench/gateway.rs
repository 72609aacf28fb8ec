//! The gateway scenario (DESIGN §12): one upstream server on stdio behind the Store, a client
//! through the gateway over streamable HTTP and over a byte stream (the `serve --stdio` path,
//! in process), beside the same client talking to the server directly — sequential call
//! p50/p99 and 16 calls in flight, measured in turn in one run.

use super::*;
use mcpvisor_gateway::{Endpoint, Gateway, HttpOptions};
use rmcp::transport::StreamableHttpClientTransport;

type Client = RunningService<RoleClient, ()>;

async fn call_ms(c: &Client, tool: &str, args: &Map<String, Value>) -> f64 {
    let t = Instant::now();
    let p = CallToolRequestParams::new(tool.to_owned()).with_arguments(args.clone());
    c.peer().call_tool(p).await.expect("call");
    t.elapsed().as_secs_f64() * 1000.0
}

/// Calls a second with 16 in flight for 3 s, and this process's CPU per call (µs) meanwhile.
async fn in_flight(c: Arc<Client>, tool: String, args: Map<String, Value>) -> (f64, f64) {
    const IN_FLIGHT: usize = 16;
    let window = Duration::from_secs(3);
    let done = Arc::new(AtomicU64::new(0));
    let cpu = own_cpu_ticks();
    let t = Instant::now();
    let tasks: Vec<_> = (0..IN_FLIGHT)
        .map(|_| {
            let (c, d, tool, args) = (c.clone(), done.clone(), tool.clone(), args.clone());
            tokio::spawn(async move {
                while t.elapsed() < window {
                    let p = CallToolRequestParams::new(tool.clone()).with_arguments(args.clone());
                    c.peer().call_tool(p).await.expect("call");
                    d.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for x in tasks {
        let _ = x.await;
    }
    let calls = done.load(Ordering::Relaxed) as f64;
    let cpu_us = (own_cpu_ticks() - cpu) as f64 / clock_ticks_per_second() * 1e6;
    (calls / t.elapsed().as_secs_f64(), cpu_us / calls.max(1.0))
}

/// A gateway for `store` on a loopback port and two rmcp clients connected to it over HTTP:
/// with rmcp's default HTTP client (no connection pool: a new connection per request) and with
/// a pooled one (kept-alive connections).
async fn serve_over_http(
    store: &Store,
) -> (Gateway, Client, Client, tokio_util::sync::CancellationToken) {
    let gw = Gateway::new(store.clone()).await.expect("gateway");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let options = HttpOptions::new(addr);
    let cancel = options.cancel.clone();
    let served = gw.clone();
    tokio::spawn(async move { served.serve_http(listener, options).await });
    let http = ()
        .serve(StreamableHttpClientTransport::from_uri(format!(
            "http://{addr}/mcp"
        )))
        .await
        .expect("connect over HTTP");
    let config =
        rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig::with_uri(
            format!("http://{addr}/mcp"),
        );
    let pooled = ()
        .serve(StreamableHttpClientTransport::with_client(
            reqwest::Client::new(),
            config,
        ))
        .await
        .expect("connect over HTTP (pooled)");
    (gw, http, pooled, cancel)
}

pub async fn gateway(s: &Server) {
    const N: usize = 1000;
    const WARM_UP: usize = 200;
    let bare = bare_client(s).await;
    let store = open().await;
    store
        .add_service(service_json(s, "svc"), Wait::Auto)
        .await
        .expect("add");
    let (gw, http, pooled, cancel) = serve_over_http(&store).await;
    let (client_io, server_io) = tokio::io::duplex(1 << 20);
    let (r, w) = tokio::io::split(server_io);
    let streamed = gw.clone();
    tokio::spawn(async move { streamed.serve_stream(Endpoint::Default, r, w).await });
    let stream = ().serve(client_io).await.expect("connect over a byte stream");

    // The same server over its own streamable HTTP (server-everything only): what an HTTP
    // client costs without any gateway in between.
    let direct_http = direct_http(s).await;

    let tool = format!("svc__{}", s.tool);
    for _ in 0..WARM_UP {
        call_ms(&bare, s.tool, &s.arguments).await;
        call_ms(&http, &tool, &s.arguments).await;
        call_ms(&pooled, &tool, &s.arguments).await;
        call_ms(&stream, &tool, &s.arguments).await;
        if let Some((c, _)) = &direct_http {
            call_ms(c, s.tool, &s.arguments).await;
        }
    }
    let (mut b, mut h, mut st, mut dh) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut hp = Vec::new();
    for _ in 0..N {
        b.push(call_ms(&bare, s.tool, &s.arguments).await);
        h.push(call_ms(&http, &tool, &s.arguments).await);
        hp.push(call_ms(&pooled, &tool, &s.arguments).await);
        st.push(call_ms(&stream, &tool, &s.arguments).await);
        if let Some((c, _)) = &direct_http {
            dh.push(call_ms(c, s.tool, &s.arguments).await);
        }
    }
    if let Some((c, mut server)) = direct_http {
        row(
            "the server's own HTTP, no gateway: call p50",
            pct(&mut dh, 0.5),
            Some(pct(&mut b.clone(), 0.5)),
            "ms",
            "- (what the HTTP client costs)",
        );
        let _ = c.cancel().await;
        let _ = server.kill().await;
    }
    let (b50, b99) = (pct(&mut b, 0.5), pct(&mut b, 0.99));
    row(
        "gateway over HTTP: call p50",
        pct(&mut h, 0.5),
        Some(b50),
        "ms",
        "<= 0.5 ms",
    );
    row(
        "gateway over HTTP: call p99",
        pct(&mut h, 0.99),
        Some(b99),
        "ms",
        "-",
    );
    row(
        "gateway over HTTP, pooled client: call p50",
        pct(&mut hp, 0.5),
        Some(b50),
        "ms",
        "<= 0.5 ms",
    );
    row(
        "gateway over HTTP, pooled client: call p99",
        pct(&mut hp, 0.99),
        Some(b99),
        "ms",
        "-",
    );
    row(
        "gateway over a byte stream: call p50",
        pct(&mut st, 0.5),
        Some(b50),
        "ms",
        "<= bare + 0.1 ms",
    );
    row(
        "gateway over a byte stream: call p99",
        pct(&mut st, 0.99),
        Some(b99),
        "ms",
        "-",
    );

    let (bare, http, stream) = (Arc::new(bare), Arc::new(http), Arc::new(stream));
    let pooled = Arc::new(pooled);
    let (b, b_cpu) = in_flight(bare.clone(), s.tool.to_owned(), s.arguments.clone()).await;
    let (h, _) = in_flight(http.clone(), tool.clone(), s.arguments.clone()).await;
    let (hp, _) = in_flight(pooled.clone(), tool.clone(), s.arguments.clone()).await;
    let (st, st_cpu) = in_flight(stream.clone(), tool.clone(), s.arguments.clone()).await;
    row(
        "gateway over HTTP: 16 in flight",
        h,
        Some(b),
        "/s",
        ">= 5,000/s",
    );
    row(
        "gateway over HTTP, pooled client: 16 in flight",
        hp,
        Some(b),
        "/s",
        ">= 5,000/s",
    );
    row(
        "gateway over a byte stream: 16 in flight",
        st,
        Some(b),
        "/s",
        ">= 0.7x bare",
    );
    row(
        "  this process's CPU per call, 16 in flight",
        st_cpu,
        Some(b_cpu),
        "us",
        "- (client + gateway + upstream client vs client)",
    );
    for c in [bare, http, pooled, stream] {
        if let Ok(c) = Arc::try_unwrap(c) {
            let _ = c.cancel().await;
        }
    }
    cancel.cancel();
    store.shutdown().await;
}

/// An rmcp client of the 2026-07-28 era (`server/discover`, self-contained requests) on
/// `transport`.
async fn discovering<T, E, A>(transport: T) -> Client
where
    T: rmcp::transport::IntoTransport<RoleClient, E, A>,
    E: std::error::Error + Send + Sync + 'static,
{
    use rmcp::service::{ClientLifecycleMode, ClientServiceExt};
    ().serve_with_lifecycle(
        transport,
        ClientLifecycleMode::Discover {
            preferred_versions: vec![rmcp::model::ProtocolVersion::V_2026_07_28],
        },
    )
    .await
    .expect("discover the gateway")
}

/// Both protocol eras through the gateway in one run (DESIGN §12: 2026-07-28 calls within
/// 10 % of the handshake era's): a pooled HTTP client and a byte-stream client of each era,
/// calls interleaved, then 16 in flight for each in turn. The "bare" column is the handshake
/// client on the same transport.
pub async fn gateway_eras(s: &Server) {
    const N: usize = 1000;
    const WARM_UP: usize = 200;
    let store = open().await;
    store
        .add_service(service_json(s, "svc"), Wait::Auto)
        .await
        .expect("add");
    let gw = Gateway::new(store.clone()).await.expect("gateway");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let options = HttpOptions::new(addr);
    let cancel = options.cancel.clone();
    let served = gw.clone();
    tokio::spawn(async move { served.serve_http(listener, options).await });
    let url = format!("http://{addr}/mcp");
    let pooled = |url: &str| {
        StreamableHttpClientTransport::with_client(
            reqwest::Client::new(),
            rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig::with_uri(
                url.to_owned(),
            ),
        )
    };
    let old_http = ().serve(pooled(&url)).await.expect("connect over HTTP");
    let new_http = discovering(pooled(&url)).await;
    let stream = |gw: &Gateway| {
        let (client_io, server_io) = tokio::io::duplex(1 << 20);
        let (r, w) = tokio::io::split(server_io);
        let streamed = gw.clone();
        tokio::spawn(async move { streamed.serve_stream(Endpoint::Default, r, w).await });
        client_io
    };
    let old_stream = ().serve(stream(&gw)).await.expect("connect over a byte stream");
    let new_stream = discovering(stream(&gw)).await;

    let tool = format!("svc__{}", s.tool);
    let clients = [&old_http, &new_http, &old_stream, &new_stream];
    for _ in 0..WARM_UP {
        for c in clients {
            call_ms(c, &tool, &s.arguments).await;
        }
    }
    let mut ms: [Vec<f64>; 4] = Default::default();
    for _ in 0..N {
        for (i, c) in clients.iter().enumerate() {
            ms[i].push(call_ms(c, &tool, &s.arguments).await);
        }
    }
    let [oh, nh, os, ns] = &mut ms;
    let (oh50, os50) = (pct(oh, 0.5), pct(os, 0.5));
    row(
        "2026-07-28 over HTTP (pooled): call p50",
        pct(nh, 0.5),
        Some(oh50),
        "ms",
        "within 10 % of the handshake era (the 'bare' column)",
    );
    row(
        "2026-07-28 over a byte stream: call p50",
        pct(ns, 0.5),
        Some(os50),
        "ms",
        "within 10 % of the handshake era",
    );
    let (old_http, new_http) = (Arc::new(old_http), Arc::new(new_http));
    let (old_stream, new_stream) = (Arc::new(old_stream), Arc::new(new_stream));
    let (oh, _) = in_flight(old_http.clone(), tool.clone(), s.arguments.clone()).await;
    let (nh, _) = in_flight(new_http.clone(), tool.clone(), s.arguments.clone()).await;
    let (os, _) = in_flight(old_stream.clone(), tool.clone(), s.arguments.clone()).await;
    let (ns, _) = in_flight(new_stream.clone(), tool.clone(), s.arguments.clone()).await;
    row(
        "2026-07-28 over HTTP (pooled): 16 in flight",
        nh,
        Some(oh),
        "/s",
        "within 10 % of the handshake era",
    );
    row(
        "2026-07-28 over a byte stream: 16 in flight",
        ns,
        Some(os),
        "/s",
        "within 10 % of the handshake era",
    );
    for c in [old_http, new_http, old_stream, new_stream] {
        if let Ok(c) = Arc::try_unwrap(c) {
            let _ = c.cancel().await;
        }
    }
    cancel.cancel();
    store.shutdown().await;
}

/// server-everything in its `streamableHttp` mode on a free loopback port, and an rmcp client
/// connected to it; `None` for other servers.
async fn direct_http(s: &Server) -> Option<(Client, tokio::process::Child)> {
    let js = s.args.first().filter(|a| a.ends_with("index.js"))?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let loopback = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("support/loopback.cjs");
    let server = tokio::process::Command::new(&s.command)
        .arg("-r")
        .arg(loopback)
        .arg(js)
        .arg("streamableHttp")
        .env("PORT", port.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .ok()?;
    let t = Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        if t.elapsed() > Duration::from_secs(20) {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let client = ()
        .serve(StreamableHttpClientTransport::from_uri(format!(
            "http://127.0.0.1:{port}/mcp"
        )))
        .await
        .ok()?;
    Some((client, server))
}

/// Upstream SIGKILLed → the same client session calls again (DESIGN §12: ≤ 0.5 s): `rounds`
/// kills of the one upstream behind an in-process gateway, each timed from the kill to the
/// first answered call of the same session, which calls at once and again after each failure
/// (a call racing the kill fails; later ones are held by the gateway while the service comes
/// back). The service's `reset_after` is 1 s and kills are 1.5 s apart, so each is "the first
/// failure after a stable period" (restarted at once).
pub async fn kill_same_session(s: &Server) {
    let rounds = 5;
    let store = open().await;
    let mut spec = service_json(s, "svc");
    spec["backoff"] = json!({"reset_after": "1s"});
    store.add_service(spec, Wait::Auto).await.expect("add");
    let (_gw, http, _pooled, cancel) = serve_over_http(&store).await;
    let tool = format!("svc__{}", s.tool);
    call_ms(&http, &tool, &s.arguments).await;
    let mut took = Vec::new();
    for _ in 0..rounds {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let Some(pid) = store.get_service_info("svc").await.ok().and_then(|v| v.pid) else {
            eprintln!("kill: the service has no pid");
            break;
        };
        let t = Instant::now();
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        // A call racing the kill fails ("lost its server during the call", never retried);
        // the client calls again at once, in the same session, until answered (bounded).
        for _ in 0..100 {
            let p = CallToolRequestParams::new(tool.clone()).with_arguments(s.arguments.clone());
            match http.peer().call_tool(p).await {
                Ok(r) if r.is_error != Some(true) => {
                    took.push(t.elapsed().as_secs_f64() * 1000.0);
                    break;
                }
                _ if t.elapsed() > Duration::from_secs(10) => {
                    eprintln!("kill: no answer within 10 s");
                    break;
                }
                _ => {}
            }
        }
    }
    row(
        "gateway: upstream killed -> same session answered, p50",
        pct(&mut took, 0.5),
        None,
        "ms",
        "<= 500 ms",
    );
    row(
        "gateway: upstream killed -> same session answered, max",
        took.iter().copied().fold(f64::NAN, f64::max),
        None,
        "ms",
        "-",
    );
    let _ = http.cancel().await;
    cancel.cancel();
    store.shutdown().await;
}

/// The gateway process's peak RSS with one upstream: the real `mcpvisor run --serve` (release
/// binary next to this one), an HTTP client making 2,000 sequential calls and 16 in flight for
/// 3 s through it, then `VmHWM` of the mcpvisor process (its child server not included).
pub async fn process_rss(s: &Server) {
    // The HTTP client below needs a TLS provider; no Store was opened in this process to
    // install one when this scenario runs alone.
    mcpvisor_supervisor::install_default_tls_provider();
    let config = json!({"mcpServers": {"svc": {"command": s.command, "args": s.args}}});
    let Some(mut run) = RunProcess::start("gateway-rss", config, &["--serve", "127.0.0.1:0"]).await
    else {
        return;
    };
    let mut url = None;
    let found = run
        .wait_for(Duration::from_secs(60), |line| {
            if let Some(rest) = line.strip_prefix("gateway: ") {
                url = rest.split_whitespace().next().map(str::to_owned);
            }
            line.starts_with("ready: ").then(|| url.clone())
        })
        .await
        .flatten();
    let Some(url) = found else {
        eprintln!("gateway-rss: mcpvisor run --serve did not print its gateway and get ready");
        return;
    };
    let http =
        ().serve(StreamableHttpClientTransport::from_uri(url))
            .await
            .expect("connect to the gateway");
    let tool = format!("svc__{}", s.tool);
    for _ in 0..2000 {
        call_ms(&http, &tool, &s.arguments).await;
    }
    let http = Arc::new(http);
    let (rate, _) = in_flight(http.clone(), tool, s.arguments.clone()).await;
    let mib = |f: &str| proc_status_mib(run.pid, f);
    row(
        "`mcpvisor run --serve` peak RSS, one upstream",
        mib("VmHWM:"),
        None,
        "MiB",
        "<= 20 MiB",
    );
    row("  (its 16-in-flight rate meanwhile)", rate, None, "/s", "-");
    if let Ok(c) = Arc::try_unwrap(http) {
        let _ = c.cancel().await;
    }
    run.stop().await;
}
