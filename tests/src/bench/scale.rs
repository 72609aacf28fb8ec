//! Many live services (issue 15, DESIGN §12): N = 100, 300 and 1,000 stdio servers (use
//! `--server chaos`: a small Rust binary, so 1,000 fit in memory), beside a bare rmcp client
//! starting the same N concurrently, in one run: cold start to all tools listed, `status` and
//! `list_tools` latency, one service's call p50 while the others idle, idle CPU, this process's
//! RSS, and 100 servers SIGKILLed at once → all healthy again.

use super::*;

/// The open-file limit up to the hard one: N servers take 3 pipes each, on both sides.
pub fn raise_nofile() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

async fn timed<F: std::future::Future>(f: F) -> (f64, F::Output) {
    let t = Instant::now();
    let out = f.await;
    (t.elapsed().as_secs_f64() * 1000.0, out)
}

pub async fn scale(s: &Server) {
    raise_nofile();
    let sizes: Vec<usize> = std::env::var("BENCH_SCALE")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![100, 300, 1000]);
    for n in sizes {
        // Bare: N clients concurrently, initialize + tools/list each.
        let cpu = own_cpu_ticks();
        let (bare, clients) = timed(bare_clients(s, n)).await;
        let bare_cpu = own_cpu_ticks() - cpu;
        futures::future::join_all(clients.into_iter().map(|c| c.cancel())).await;

        let store = open().await;
        let cpu = own_cpu_ticks();
        let (ours, names) = timed(start_many(&store, s, "s", n)).await;
        let ours_cpu = own_cpu_ticks() - cpu;
        row(
            &format!("{n} servers: cold start -> tools listed"),
            ours,
            Some(bare),
            "ms",
            "<= 1.10x bare",
        );
        // The servers' own start-up shares the two cores with this: what this process spent.
        let ms = |ticks: u64| ticks as f64 * 1000.0 / clock_ticks_per_second();
        row(
            &format!("{n} servers: cold start, this process's CPU"),
            ms(ours_cpu),
            Some(ms(bare_cpu)),
            "ms",
            "-",
        );

        let all = store.all_scopes();
        let mut status = Vec::new();
        let mut tools = Vec::new();
        for _ in 0..20 {
            status.push(timed(all.list_services()).await.0);
            tools.push(timed(all.list_tools()).await.0);
        }
        row(
            &format!("{n} servers: status (list_services) p50"),
            pct(&mut status, 0.5),
            None,
            "ms",
            "< 50 ms at 1,000",
        );
        row(
            &format!("{n} servers: list_tools p50"),
            pct(&mut tools, 0.5),
            None,
            "ms",
            "-",
        );

        let tool = format!("{}__{}", names[0], s.tool);
        let mut calls = Vec::new();
        for _ in 0..300 {
            let (ms, r) = timed(store.call_tool(&tool, Some(s.arguments.clone()), None)).await;
            r.expect("call");
            calls.push(ms);
        }
        row(
            &format!("{n} servers: one service's call p50"),
            pct(&mut calls, 0.5),
            None,
            "ms",
            "-",
        );

        let secs = 30.0;
        let t0 = own_cpu_ticks();
        tokio::time::sleep(Duration::from_secs_f64(secs)).await;
        let ticks = (own_cpu_ticks() - t0) as f64;
        row(
            &format!("{n} servers: idle CPU (% of a core)"),
            100.0 * ticks / clock_ticks_per_second() / secs,
            None,
            "%",
            "< 1 %",
        );
        let rss = own_status("VmRSS:").unwrap_or(0) as f64 / 1024.0;
        row(
            &format!("{n} servers: this process's RSS (Store + servers' pipes)"),
            rss,
            None,
            "MiB",
            "<= 64 MiB at 1,000",
        );

        // 100 (or all, if fewer) SIGKILLed at once.
        let k = n.min(100);
        let mut pids = Vec::new();
        for name in &names[..k] {
            pids.push(
                store
                    .get_service_info(name)
                    .await
                    .expect("info")
                    .pid
                    .expect("pid"),
            );
        }
        let victims: Vec<&str> = names[..k].iter().map(String::as_str).collect();
        let t = Instant::now();
        for pid in pids {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        // Wait until each one left `healthy` and came back.
        let mut back = 0;
        for name in &victims {
            loop {
                let info = store.get_service_info(name).await.expect("info");
                if info.state == ServiceState::Healthy && info.restarts > 0 {
                    back += 1;
                    break;
                }
                assert!(t.elapsed() < Duration::from_secs(120), "{name} not back");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        row(
            &format!("{n} servers: {back} SIGKILLed at once -> all healthy"),
            t.elapsed().as_secs_f64() * 1000.0,
            None,
            "ms",
            "<= 5,000 ms",
        );
        store.shutdown().await;
    }
}
