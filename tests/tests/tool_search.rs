//! Tool search (issue "Fifty servers in one context window"): an endpoint with `tools:
//! "search"` lists `search_tools`, `call_tool` and its pinned tools; a real MCP client (rmcp
//! over streamable HTTP, through the real `mcpvisor run --serve`) finds a tool of the fleet by
//! what it does and calls it through `call_tool` or by its name; the endpoint's deny list holds
//! for search and call alike.

use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::ServiceExt;
use serde_json::{json, Value};

/// chaos-mcp as `c` and server-everything as `every`, with `gateway` as the gateway section.
fn fleet(gateway: Value) -> Value {
    json!({
        "mcpServers": {
            "c": {"command": mcpvisor_tests::chaos_bin()},
            "every": {"command": "node", "args": ["-r", mcpvisor_tests::loopback_preload(),
                      mcpvisor_tests::node_server("server-everything"), "stdio"]}
        },
        "gateway": gateway
    })
}

/// The tools a `search_tools` call with `args` answered: their names, best first.
async fn found(peer: &rmcp::Peer<rmcp::RoleClient>, args: Value) -> Vec<String> {
    let r = mcpvisor_tests::mcp_call(peer, "search_tools", args.clone()).await;
    assert_ne!(r.is_error, Some(true), "{args}: {r:?}");
    let v: Value = serde_json::from_str(&mcpvisor_tests::first_text(&r)).unwrap();
    let tools = v["tools"].as_array().unwrap();
    for t in tools {
        assert_eq!(t["inputSchema"]["type"], "object", "a full schema: {t}");
    }
    tools
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_finds_a_tool_by_what_it_does_and_calls_it() {
    mcpvisor_service_actor::install_default_tls_provider();
    let instance = mcpvisor_tests::RunServe::start(&fleet(json!({"endpoints": {"default": {
        "tools": "search", "pinned": ["c__add"], "deny": ["every__get-env"]}}})));
    let client = ()
        .serve(StreamableHttpClientTransport::from_uri(
            instance.url.clone(),
        ))
        .await
        .unwrap();
    let peer = client.peer();
    // The list is the two meta-tools and the pinned one, not the fleet's 20.
    let listed = mcpvisor_tests::tool_names(peer).await;
    assert_eq!(listed, ["search_tools", "call_tool", "c__add"]);

    // Found by what they do, with their schemas.
    assert_eq!(
        found(peer, json!({"query": "tiny image"}))
            .await
            .first()
            .map(String::as_str),
        Some("every__get-tiny-image")
    );
    let sums = found(peer, json!({"query": "sum of two numbers", "limit": 3})).await;
    assert!(sums.len() <= 3, "{sums:?}");
    assert_eq!(
        sums.first().map(String::as_str),
        Some("every__get-sum"),
        "{sums:?}"
    );
    assert!(sums.iter().any(|n| n == "c__add"), "{sums:?}");
    // What the endpoint denies is never found.
    let env = found(
        peer,
        json!({"query": "environment variables of the server", "limit": 20}),
    )
    .await;
    assert!(!env.iter().any(|n| n == "every__get-env"), "{env:?}");

    // Called through call_tool, or by its name.
    let r = mcpvisor_tests::mcp_call(
        peer,
        "call_tool",
        json!({"name": "c__echo", "arguments": {"text": "found and called"}}),
    )
    .await;
    assert_eq!(mcpvisor_tests::first_text(&r), "found and called");
    let r = mcpvisor_tests::mcp_call(peer, "c__echo", json!({"text": "by its name"})).await;
    assert_eq!(mcpvisor_tests::first_text(&r), "by its name");
    // Denied: not callable either; a search without a query says what it needs.
    let denied = peer
        .call_tool(
            CallToolRequestParams::new("call_tool").with_arguments(
                json!({"name": "every__get-env"})
                    .as_object()
                    .cloned()
                    .unwrap(),
            ),
        )
        .await;
    assert!(
        denied.is_err() || denied.as_ref().is_ok_and(|r| r.is_error == Some(true)),
        "{denied:?}"
    );
    let empty = mcpvisor_tests::mcp_call(peer, "search_tools", json!({})).await;
    assert_eq!(empty.is_error, Some(true));
    assert!(mcpvisor_tests::first_text(&empty).contains("query"));

    // The same through `serve --stdio` (the byte-stream path relays calls of listed names
    // itself; the meta-tools are answered by the gateway).
    let mut cmd = tokio::process::Command::new(mcpvisor_tests::mcpvisor_bin());
    cmd.arg("--state-dir")
        .arg(&instance.state)
        .args(["serve", "--stdio"]);
    let (transport, _) = rmcp::transport::TokioChildProcess::builder(cmd)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdio = ().serve(transport).await.unwrap();
    assert_eq!(
        found(stdio.peer(), json!({"query": "tiny image"}))
            .await
            .first()
            .map(String::as_str),
        Some("every__get-tiny-image")
    );
    let r = mcpvisor_tests::mcp_call(
        stdio.peer(),
        "call_tool",
        json!({"name": "c__echo", "arguments": {"text": "over stdio"}}),
    )
    .await;
    assert_eq!(mcpvisor_tests::first_text(&r), "over stdio");
    let _ = stdio.cancel().await;

    // A service stopped: its tools are no longer found.
    let (code, _, err) = mcpvisor_tests::finished(
        mcpvisor_tests::mcpvisor_on(&instance.state).args(["stop", "every"]),
    );
    assert_eq!(code, Some(0), "{err}");
    let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let names = found(peer, json!({"query": "tiny image", "limit": 20})).await;
        if !names.iter().any(|n| n.starts_with("every__")) {
            break;
        }
        assert!(std::time::Instant::now() < end, "still found: {names:?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let _ = client.cancel().await;
}

#[test]
fn the_cli_and_the_library_rank_the_fleets_tools_the_same_way() {
    let dir = tempfile::Builder::new()
        .prefix("tsearch")
        .tempdir()
        .unwrap();
    let file = dir.path().join("mcp.json");
    std::fs::write(&file, fleet(json!({})).to_string()).unwrap();
    let (code, out, err) = mcpvisor_tests::finished(
        mcpvisor_tests::mcpvisor_on(&dir.path().join("state"))
            .arg("--config")
            .arg(&file)
            .args([
                "tools",
                "--search",
                "sum of two numbers",
                "--limit",
                "2",
                "--json",
            ]),
    );
    assert_eq!(code, Some(0), "{err}");
    let tools: Vec<Value> = serde_json::from_str(&out).unwrap();
    let names: Vec<&str> = tools.iter().filter_map(|t| t["name"].as_str()).collect();
    assert_eq!(names, ["every__get-sum", "c__add"], "{out}");
}

/// The retrieval set (`tests/fixtures/tool-search`): 185 tools of 18 real servers from npm and
/// PyPI, 185 queries written for them. Recall@1 and @5 of the ranking `search_tools` uses,
/// and the size of `tools/list` in bytes and tokens (cl100k) under `"all"` and `"search"`.
#[test]
fn the_retrieval_set_finds_the_tool_for_a_task_and_the_list_shrinks() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/tool-search");
    let read = |f: &str| -> Value {
        serde_json::from_str(&std::fs::read_to_string(root.join(f)).unwrap()).unwrap()
    };
    let (tools, queries) = (read("tools.json"), read("queries.json"));
    let entries: Vec<mcpvisor_supervisor::ToolEntry> = tools["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let service = t["service"].as_str().unwrap();
            let name = t["name"].as_str().unwrap();
            serde_json::from_value(json!({
                "name": format!("{service}__{name}"),
                "service": {"name": service},
                "tool": {"name": name, "description": t["description"],
                         "input_schema": t["inputSchema"],
                         "raw": {"title": t["title"]}},
                "stale": false
            }))
            .unwrap()
        })
        .collect();
    let index = mcpvisor_supervisor::ToolSearch::new(
        entries
            .iter()
            .enumerate()
            .map(|(i, t)| (i, t, t.name.as_str())),
    );
    let queries = queries["queries"].as_array().unwrap();
    let (mut at1, mut at5) = (0usize, 0usize);
    let mut missed = Vec::new();
    for q in queries {
        let answers: Vec<&str> = q["answers"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let found: Vec<&str> = index
            .search(q["query"].as_str().unwrap(), 5)
            .into_iter()
            .map(|i| entries[i].name.as_str())
            .collect();
        if found.first().is_some_and(|f| answers.contains(f)) {
            at1 += 1;
        }
        if found.iter().any(|f| answers.contains(f)) {
            at5 += 1;
        } else {
            missed.push(format!("{} -> {found:?}", q["query"]));
        }
    }
    let n = queries.len() as f64;
    let (r1, r5) = (at1 as f64 / n, at5 as f64 / n);
    // The list a client gets: every tool, or the two meta-tools.
    let all: Vec<Value> = tools["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            json!({"name": format!("{}__{}", t["service"].as_str().unwrap(), t["name"].as_str().unwrap()),
                   "description": t["description"], "inputSchema": t["inputSchema"]})
        })
        .collect();
    let all = json!({"tools": all}).to_string();
    let search = json!({"tools": mcpvisor_gateway::meta_tools()}).to_string();
    let bpe = tiktoken_rs::cl100k_base().unwrap();
    let tokens = |s: &str| bpe.encode_with_special_tokens(s).len();
    eprintln!(
        "{} tools, {} queries: recall@1 {r1:.3}, recall@5 {r5:.3}; tools/list: all {} bytes / {} \
         tokens, search {} bytes / {} tokens; missed at 5: {missed:#?}",
        entries.len(),
        queries.len(),
        all.len(),
        tokens(&all),
        search.len(),
        tokens(&search)
    );
    assert!(entries.len() >= 150 && queries.len() >= 150);
    assert!(r1 >= 0.75, "recall@1 {r1:.3}");
    assert!(r5 >= 0.95, "recall@5 {r5:.3}: {missed:#?}");
    assert!(tokens(&search) * 50 < tokens(&all));
}

#[test]
fn the_python_sdk_finds_and_calls_a_tool_in_both_eras() {
    let instance = mcpvisor_tests::RunServe::start(&json!({
        "mcpServers": {"every": {"command": "node", "args": ["-r", mcpvisor_tests::loopback_preload(),
                                 mcpvisor_tests::node_server("server-everything"), "stdio"]}},
        "gateway": {"endpoints": {"default": {"tools": "search"}}}
    }));
    let python = mcpvisor_tests::servers_dir().join("pysdk/bin/python");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("support/sdk_search.py");
    for (mode, version) in [("auto", "2026-07-28"), ("legacy", "2025-11-25")] {
        let out = std::process::Command::new(&python)
            .arg(&script)
            .args([mode, instance.url.as_str()])
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run the Python SDK");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{mode}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let seen: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
        assert_eq!(seen["version"], version, "{seen}");
        assert_eq!(
            seen["tools"],
            json!(["search_tools", "call_tool"]),
            "{seen}"
        );
        assert_eq!(seen["found"][0], "every__echo", "{seen}");
        assert_eq!(seen["called"], "Echo: found by the SDK", "{seen}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_tools_cuts_the_list_by_turns_and_tells_the_client() {
    mcpvisor_service_actor::install_default_tls_provider();
    let instance = mcpvisor_tests::RunServe::start(&fleet(
        json!({"endpoints": {"default": {"max_tools": 6}}}),
    ));
    let client = ()
        .serve(StreamableHttpClientTransport::from_uri(
            instance.url.clone(),
        ))
        .await
        .unwrap();
    let listed = client.peer().list_tools(None).await.unwrap();
    let names: Vec<String> = listed.tools.iter().map(|t| t.name.to_string()).collect();
    // Turns in service order, each service's tools in name order: three each.
    assert_eq!(
        names,
        [
            "c__add",
            "c__chaos",
            "c__echo",
            "every__echo",
            "every__get-annotated-message",
            "every__get-env"
        ]
    );
    let meta = serde_json::to_value(&listed.meta).unwrap();
    let cut = &meta["io.mcpvisor/cut"];
    assert_eq!(cut["listed"], 6, "{meta}");
    assert!(cut["of"].as_u64().unwrap() > 6, "{meta}");
    assert!(
        cut["why"].as_str().unwrap().contains("\"search\""),
        "{meta}"
    );
    // The rest stay callable by name.
    let r = mcpvisor_tests::mcp_call(client.peer(), "c__sleep", json!({"ms": 1})).await;
    assert_eq!(mcpvisor_tests::first_text(&r), "slept 1");
    let _ = client.cancel().await;
}

/// A client that reports every `tools/list_changed` it gets.
#[derive(Clone)]
struct Watcher(tokio::sync::mpsc::UnboundedSender<()>);

impl rmcp::ClientHandler for Watcher {
    async fn on_tool_list_changed(
        &self,
        _context: rmcp::service::NotificationContext<rmcp::RoleClient>,
    ) {
        let _ = self.0.send(());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_dynamic_mode_the_tools_a_search_found_join_the_sessions_list() {
    mcpvisor_service_actor::install_default_tls_provider();
    let instance = mcpvisor_tests::RunServe::start(&json!({
        "mcpServers": {"every": {"command": "node", "args": ["-r", mcpvisor_tests::loopback_preload(),
                                 mcpvisor_tests::node_server("server-everything"), "stdio"]}},
        "gateway": {"endpoints": {"default": {"tools": "dynamic"}}}
    }));
    let (tx, mut changed) = tokio::sync::mpsc::unbounded_channel();
    let client = Watcher(tx)
        .serve(StreamableHttpClientTransport::from_uri(
            instance.url.clone(),
        ))
        .await
        .unwrap();
    let peer = client.peer();
    assert_eq!(
        mcpvisor_tests::tool_names(peer).await,
        ["search_tools", "call_tool"]
    );
    let hit = found(peer, json!({"query": "tiny image", "limit": 1})).await;
    assert_eq!(hit, ["every__get-tiny-image"]);
    // Told, and listed to this session from now on.
    mcpvisor_tests::deadline(
        std::time::Duration::from_secs(10),
        "list_changed after a search found a tool",
        changed.recv(),
    )
    .await
    .expect("a list_changed");
    assert_eq!(
        mcpvisor_tests::tool_names(peer).await,
        ["search_tools", "call_tool", "every__get-tiny-image"]
    );
    // The same search again adds nothing, and says nothing.
    found(peer, json!({"query": "tiny image", "limit": 1})).await;
    let again = tokio::time::timeout(std::time::Duration::from_millis(300), changed.recv()).await;
    assert!(again.is_err(), "no second list_changed");
    // Another session's list is its own.
    let other = ()
        .serve(StreamableHttpClientTransport::from_uri(
            instance.url.clone(),
        ))
        .await
        .unwrap();
    assert_eq!(
        mcpvisor_tests::tool_names(other.peer()).await,
        ["search_tools", "call_tool"]
    );
    let _ = other.cancel().await;
    let _ = client.cancel().await;
}
