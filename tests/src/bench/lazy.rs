//! The lazy-start scenario (DESIGN §12, §16): the first call to a lazy (idle) service — the
//! Store starts it, waits for it and calls — beside a bare rmcp client spawning the same server,
//! initializing and making one call. Rounds alternate between the two; the service is put back
//! to `idle` by its `idle_stop` between rounds.

use super::*;

const ROUNDS: usize = 10;

pub async fn lazy(s: &Server) {
    let store = open().await;
    let mut spec = service_json(s, "lazy");
    spec["start"] = json!("lazy");
    spec["idle_stop"] = json!("300ms");
    store.add_service(spec, Wait::None).await.expect("add");
    let tool = format!("lazy__{}", s.tool);
    let mut ours = Vec::new();
    let mut bare = Vec::new();
    for _ in 0..ROUNDS {
        store
            .wait_for(&["lazy"], ServiceState::Idle, Duration::from_secs(60))
            .await
            .expect("idle");
        let t = Instant::now();
        store
            .call_tool(&tool, Some(s.arguments.clone()), None)
            .await
            .expect("first call");
        ours.push(t.elapsed().as_secs_f64() * 1000.0);

        let t = Instant::now();
        let c = bare_client(s).await;
        let p = CallToolRequestParams::new(s.tool).with_arguments(s.arguments.clone());
        c.peer().call_tool(p).await.expect("bare call");
        bare.push(t.elapsed().as_secs_f64() * 1000.0);
        let _ = c.cancel().await;
    }
    store.shutdown().await;
    row(
        "lazy service: first call (start + call), p50",
        pct(&mut ours, 0.5),
        Some(pct(&mut bare, 0.5)),
        "ms",
        "<= 1.1x cold start + one call",
    );
}
