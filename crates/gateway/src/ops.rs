//! What an operator scrapes (DESIGN §15): `/metrics` in the Prometheus text format (through
//! `prometheus-client`), `/healthz` (the supervisor answers) and `/readyz` (start-up settled:
//! no service is still starting). Served beside the gateway's `/mcp`, or alone
//! (`run --metrics ADDR`).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use mcpvisor_model::{HistogramSnapshot, ServiceState};
use mcpvisor_supervisor::{ServiceView, Store};
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;

/// The router serving `/metrics`, `/healthz` and `/readyz` for `store` (every scope).
pub fn ops_router(store: Store) -> axum::Router {
    axum::Router::new()
        .route("/metrics", axum::routing::get(metrics))
        .route("/healthz", axum::routing::get(healthz))
        .route("/readyz", axum::routing::get(readyz))
        .with_state(store.all_scopes())
}

async fn healthz(State(store): State<Store>) -> Response {
    match store.list_services().await {
        Ok(_) => (StatusCode::OK, "ok\n").into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response(),
    }
}

async fn readyz(State(store): State<Store>) -> Response {
    match store.list_services().await {
        Ok(views) => {
            let starting: Vec<&str> = views
                .iter()
                .filter(|v| v.state == ServiceState::Starting)
                .map(|v| v.name.as_str())
                .collect();
            if starting.is_empty() {
                (StatusCode::OK, "ready\n").into_response()
            } else {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("starting: {}\n", starting.join(", ")),
                )
                    .into_response()
            }
        }
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response(),
    }
}

async fn metrics(State(store): State<Store>) -> Response {
    let views = match store.list_services().await {
        Ok(v) => v,
        Err(e) => return (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response(),
    };
    let mut registry = prometheus_client::registry::Registry::default();
    registry.register_collector(Box::new(Fleet {
        views,
        process: own_process(),
    }));
    let mut text = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &registry) {
        return (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response();
    }
    (
        StatusCode::OK,
        [(
            http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// This process's resident memory (bytes) and CPU time (seconds), from `/proc/self`.
fn own_process() -> Option<(u64, f64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let rss_kib: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = stat.rsplit(')').next()?.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on Linux.
    Some((rss_kib * 1024, ticks as f64 / 100.0))
}

/// One scrape's worth of the fleet.
#[derive(Debug)]
struct Fleet {
    views: Vec<ServiceView>,
    process: Option<(u64, f64)>,
}

/// A histogram whose counts are already known (cumulative per bound).
#[derive(Debug)]
struct Known<'a>(&'a HistogramSnapshot);

impl EncodeMetric for Known<'_> {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::MetricEncoder,
    ) -> Result<(), std::fmt::Error> {
        // The encoder accumulates: hand it per-bucket counts, +Inf last.
        let mut buckets = Vec::with_capacity(self.0.buckets.len() + 1);
        let mut below = 0;
        for (bound, cumulative) in &self.0.buckets {
            buckets.push((*bound, cumulative.saturating_sub(below)));
            below = *cumulative;
        }
        buckets.push((f64::MAX, self.0.count.saturating_sub(below)));
        encoder.encode_histogram::<NoLabelSet>(self.0.sum_s, self.0.count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

fn labels(v: &ServiceView) -> Vec<(&'static str, String)> {
    vec![("service", v.name.clone())]
}

impl prometheus_client::collector::Collector for Fleet {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let gauge = |encoder: &mut DescriptorEncoder,
                     name: &str,
                     help: &str,
                     value: &dyn Fn(&ServiceView) -> f64|
         -> Result<(), std::fmt::Error> {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for v in &self.views {
                let l = labels(v);
                family.encode_family(&l)?.encode_gauge(&value(v))?;
            }
            Ok(())
        };
        let counter = |encoder: &mut DescriptorEncoder,
                       name: &str,
                       help: &str,
                       value: &dyn Fn(&ServiceView) -> u64|
         -> Result<(), std::fmt::Error> {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for v in &self.views {
                let l = labels(v);
                family
                    .encode_family(&l)?
                    .encode_counter::<NoLabelSet, _, u64>(&value(v), None)?;
            }
            Ok(())
        };
        gauge(
            &mut encoder,
            "mcpvisor_service_up",
            "1 when the service is healthy or warning",
            &|v| f64::from(u8::from(v.state.is_up())),
        )?;
        {
            let mut family = encoder.encode_descriptor(
                "mcpvisor_service_state",
                "1 for the state the service is in",
                None,
                MetricType::Gauge,
            )?;
            for v in &self.views {
                let l = vec![("service", v.name.clone()), ("state", v.state.to_string())];
                family.encode_family(&l)?.encode_gauge(&1i64)?;
            }
        }
        gauge(
            &mut encoder,
            "mcpvisor_service_tools",
            "tools the service offers",
            &|v| v.tools as f64,
        )?;
        gauge(
            &mut encoder,
            "mcpvisor_service_availability_ratio",
            "share of time up since registration (0 to 1)",
            &|v| v.metrics.availability_pct.unwrap_or(0.0) / 100.0,
        )?;
        counter(
            &mut encoder,
            "mcpvisor_service_restarts",
            "re-establishments after the first connection",
            &|v| v.metrics.restarts,
        )?;
        counter(
            &mut encoder,
            "mcpvisor_service_calls",
            "tool calls finished",
            &|v| v.metrics.calls,
        )?;
        counter(
            &mut encoder,
            "mcpvisor_service_call_errors",
            "tool calls that failed",
            &|v| v.metrics.call_errors,
        )?;
        counter(
            &mut encoder,
            "mcpvisor_service_probes",
            "health probes sent",
            &|v| v.metrics.probes,
        )?;
        counter(
            &mut encoder,
            "mcpvisor_service_probe_failures",
            "health probes failed or timed out",
            &|v| v.metrics.probe_failures,
        )?;
        for (name, help, pick) in [
            (
                "mcpvisor_service_call_duration_seconds",
                "tool call latency",
                (|v: &ServiceView| &v.metrics.call_histogram)
                    as fn(&ServiceView) -> &HistogramSnapshot,
            ),
            (
                "mcpvisor_service_probe_duration_seconds",
                "health probe latency (answered probes)",
                |v: &ServiceView| &v.metrics.probe_histogram,
            ),
        ] {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Histogram)?;
            for v in &self.views {
                let l = labels(v);
                Known(pick(v)).encode(family.encode_family(&l)?)?;
            }
        }
        if let Some((rss, cpu)) = self.process {
            encoder
                .encode_descriptor(
                    "process_resident_memory_bytes",
                    "resident memory of the supervisor",
                    None,
                    MetricType::Gauge,
                )?
                .encode_gauge(&(rss as i64))?;
            encoder
                .encode_descriptor(
                    "process_cpu_seconds",
                    "CPU time of the supervisor (user + system)",
                    None,
                    MetricType::Counter,
                )?
                .encode_counter::<NoLabelSet, _, u64>(&cpu, None)?;
        }
        Ok(())
    }
}
