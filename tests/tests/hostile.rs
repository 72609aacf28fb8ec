//! Hostile input at the gateway (issue "Soak and hostile input"): the real `mcpvisor run
//! --serve`, with hundreds of connections that idle, stall mid-header (slow-loris), declare a
//! huge body and stall, or send garbage, and a flood of sessions past the limit — while a real
//! MCP client (rmcp over streamable HTTP) goes on calling tools: every call answered, its
//! latency bounded, the instance's memory bounded, the flood refused in words.

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use rmcp::transport::StreamableHttpClientTransport;
use rmcp::ServiceExt;
use serde_json::json;

/// Resident memory of `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// `n` echo calls one after another: their latencies in ms, sorted (every call answered).
async fn calls(peer: &rmcp::Peer<rmcp::RoleClient>, n: usize) -> Vec<f64> {
    let mut ms = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        let r = mcpvisor_tests::deadline(
            Duration::from_secs(10),
            "an echo call",
            mcpvisor_tests::mcp_call(peer, "c__echo", json!({"text": format!("n{i}")})),
        )
        .await;
        assert_eq!(mcpvisor_tests::first_text(&r), format!("n{i}"));
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    ms.sort_by(f64::total_cmp);
    ms
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_serves_its_clients_through_stalled_connections_and_a_session_flood() {
    mcpvisor_service_actor::install_default_tls_provider();
    let instance = mcpvisor_tests::RunServe::start(&json!({"mcpServers": {
        "c": {"command": mcpvisor_tests::chaos_bin()}}}));
    let client = ()
        .serve(StreamableHttpClientTransport::from_uri(
            instance.url.clone(),
        ))
        .await
        .expect("a client connects");
    let before = calls(client.peer(), 100).await;
    let rss_before = rss_kib(instance.pid());
    let addr = instance
        .url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_owned();

    // 400 connections that say nothing, 100 that stop in the middle of their headers, 10 that
    // declare 64 MiB of body and send 256 KiB of it, 20 that send garbage.
    let mut held: Vec<TcpStream> = Vec::new();
    for i in 0..530 {
        let mut s = TcpStream::connect(&addr).expect("connect");
        s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
        match i {
            0..400 => {}
            400..500 => {
                let _ = s.write_all(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty");
            }
            500..510 => {
                let _ = s.write_all(
                    b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\n\
                      accept: application/json, text/event-stream\r\ncontent-length: 67108864\r\n\r\n",
                );
                let _ = s.write_all(&vec![b'['; 256 * 1024]);
            }
            _ => {
                let _ = s.write_all(b"\x00\xff\xfe garbage that is not HTTP at all \r\n\r\n");
            }
        }
        held.push(s);
    }

    // Sessions past the limit: each initialize without a close. The limit holds, in words.
    let http = reqwest::Client::new();
    let (mut opened, mut refused) = (0usize, 0usize);
    let mut refusal = String::new();
    for i in 0..300 {
        let r = http
            .post(&instance.url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(
                json!({"jsonrpc": "2.0", "id": i, "method": "initialize", "params": {
                    "protocolVersion": "2025-06-18", "capabilities": {},
                    "clientInfo": {"name": "flood", "version": "0"}}})
                .to_string(),
            )
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .expect("an answer to each initialize");
        if r.status().is_success() && r.headers().contains_key("mcp-session-id") {
            opened += 1;
        } else {
            refused += 1;
            refusal = r.text().await.unwrap_or_default();
        }
    }
    assert!(opened < 256, "at most the limit: {opened} opened");
    assert!(
        refused > 0 && refusal.contains("too many sessions"),
        "{refusal}"
    );

    // Meanwhile the first client is served as before.
    let during = calls(client.peer(), 100).await;
    let (p50_before, p50_during) = (before[50], during[50]);
    assert!(
        p50_during <= (p50_before * 3.0).max(p50_before + 5.0),
        "p50 {p50_during:.2} ms during, {p50_before:.2} ms before"
    );
    let rss_during = rss_kib(instance.pid());
    eprintln!(
        "p50 {p50_before:.2} ms before, {p50_during:.2} ms during; RSS {rss_before} KiB before, \
         {rss_during} KiB during; sessions: {opened} opened, {refused} refused"
    );
    assert!(
        rss_during <= rss_before + 64 * 1024,
        "{rss_before} KiB before, {rss_during} KiB during"
    );
    drop(held);
    let _ = client.cancel().await;
}
