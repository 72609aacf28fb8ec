//! Shared runtime records that several actors hold handles to: the stderr tail of a service and
//! its metrics counters. Plain data behind locks and atomics: no I/O, no clocks (durations and
//! times are passed in).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A bounded ring of the last bytes a server wrote to stderr, kept as lines.
#[derive(Debug, Clone)]
pub struct LogRing {
    inner: Arc<Mutex<LogRingInner>>,
}

#[derive(Debug)]
struct LogRingInner {
    lines: VecDeque<String>,
    bytes: usize,
    cap: usize,
    total: u64,
}

impl LogRing {
    /// A ring keeping about `cap_bytes` of text.
    pub fn new(cap_bytes: usize) -> Self {
        LogRing {
            inner: Arc::new(Mutex::new(LogRingInner {
                lines: VecDeque::new(),
                bytes: 0,
                cap: cap_bytes.max(1),
                total: 0,
            })),
        }
    }

    /// Appends one line (without its newline); old lines fall out past the cap. A single line
    /// longer than the cap is cut to the cap.
    pub fn push_line(&self, line: &str) {
        let mut g = lock(&self.inner);
        let cap = g.cap;
        let mut line = line.to_owned();
        if line.len() > cap {
            let mut cut = cap;
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            line.truncate(cut);
        }
        g.total += line.len() as u64 + 1;
        g.bytes += line.len();
        g.lines.push_back(line);
        while g.bytes > cap {
            match g.lines.pop_front() {
                Some(old) => g.bytes -= old.len(),
                None => break,
            }
        }
    }

    /// The last `n` lines, oldest first.
    pub fn tail(&self, n: usize) -> Vec<String> {
        let g = lock(&self.inner);
        let skip = g.lines.len().saturating_sub(n);
        g.lines.iter().skip(skip).cloned().collect()
    }

    /// Bytes ever written (including those that fell out).
    pub fn total_bytes(&self) -> u64 {
        lock(&self.inner).total
    }
}

impl Default for LogRing {
    fn default() -> Self {
        LogRing::new(crate::defaults::STDERR_RING_BYTES)
    }
}

/// Latency samples kept per kind for percentiles.
const LATENCY_SAMPLES: usize = 1024;

/// The last samples and their summary, computed once per change: a status query over many
/// idle services sorts nothing (1,000 services × 2 kinds × 1,024 samples otherwise).
#[derive(Debug, Default)]
struct Latencies {
    samples: VecDeque<u32>, // microseconds
    max_us: u64,
    summary: Option<LatencySummary>,
}

impl Latencies {
    fn record(&mut self, d: Duration) {
        self.summary = None;
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.max_us = self.max_us.max(us);
        if self.samples.len() == LATENCY_SAMPLES {
            self.samples.pop_front();
        }
        self.samples
            .push_back(u32::try_from(us).unwrap_or(u32::MAX));
    }

    fn summary(&mut self) -> LatencySummary {
        if let Some(cached) = self.summary {
            return cached;
        }
        let summary = self.compute();
        self.summary = Some(summary);
        summary
    }

    fn compute(&self) -> LatencySummary {
        let mut v: Vec<u32> = self.samples.iter().copied().collect();
        v.sort_unstable();
        let pick = |q: f64| -> Option<f64> {
            if v.is_empty() {
                return None;
            }
            let i = ((v.len() as f64 - 1.0) * q).round() as usize;
            Some(f64::from(v[i.min(v.len() - 1)]) / 1000.0)
        };
        LatencySummary {
            p50_ms: pick(0.5),
            p95_ms: pick(0.95),
            max_ms: (self.max_us > 0 || !v.is_empty()).then(|| self.max_us as f64 / 1000.0),
            samples: v.len(),
        }
    }
}

/// Upper bounds (seconds) of the cumulative latency histograms (`/metrics`).
pub const LATENCY_BUCKETS_S: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Every latency since registration, counted per bucket (Prometheus-style, cumulative on read).
#[derive(Debug, Default)]
struct Histogram {
    /// Per bucket of [`LATENCY_BUCKETS_S`], then one for everything above.
    counts: [AtomicU64; LATENCY_BUCKETS_S.len() + 1],
    sum_us: AtomicU64,
}

impl Histogram {
    fn record(&self, d: Duration) {
        let s = d.as_secs_f64();
        let i = LATENCY_BUCKETS_S
            .iter()
            .position(|b| s <= *b)
            .unwrap_or(LATENCY_BUCKETS_S.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    fn snapshot(&self) -> HistogramSnapshot {
        let mut running = 0;
        let mut buckets = Vec::with_capacity(LATENCY_BUCKETS_S.len());
        for (i, bound) in LATENCY_BUCKETS_S.iter().enumerate() {
            running += self.counts[i].load(Ordering::Relaxed);
            buckets.push((*bound, running));
        }
        let count = running + self.counts[LATENCY_BUCKETS_S.len()].load(Ordering::Relaxed);
        HistogramSnapshot {
            buckets,
            count,
            sum_s: self.sum_us.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }
}

/// A latency histogram at one moment: cumulative counts per upper bound (seconds), the total
/// count and the sum (seconds).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct HistogramSnapshot {
    /// `(upper bound in seconds, samples at or below it)`, ascending.
    pub buckets: Vec<(f64, u64)>,
    /// All samples.
    pub count: u64,
    /// Their sum, in seconds.
    pub sum_s: f64,
}

/// Percentiles over the last samples, in milliseconds (`None` before the first sample).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Median.
    pub p50_ms: Option<f64>,
    /// 95th percentile.
    pub p95_ms: Option<f64>,
    /// Largest ever seen.
    pub max_ms: Option<f64>,
    /// Samples the percentiles are drawn from (the last 1,024).
    pub samples: usize,
}

/// Live counters of one service, shared by its actor (writer) and the registry (reader).
#[derive(Debug, Clone, Default)]
pub struct ServiceMetrics {
    inner: Arc<MetricsInner>,
}

#[derive(Debug, Default)]
struct MetricsInner {
    calls: AtomicU64,
    call_errors: AtomicU64,
    probes: AtomicU64,
    probe_failures: AtomicU64,
    restarts: AtomicU64,
    transitions: AtomicU64,
    up_ms: AtomicU64,
    down_ms: AtomicU64,
    call_latency: Mutex<Latencies>,
    probe_latency: Mutex<Latencies>,
    call_histogram: Histogram,
    probe_histogram: Histogram,
    /// The last probe: latency in microseconds + 1 (0 = none yet), and whether it failed.
    last_probe_us: AtomicU64,
    last_probe_failed: std::sync::atomic::AtomicBool,
}

impl ServiceMetrics {
    /// A finished call: its latency and whether it failed (transport error, timeout or tool
    /// error).
    pub fn record_call(&self, latency: Duration, failed: bool) {
        self.inner.calls.fetch_add(1, Ordering::Relaxed);
        if failed {
            self.inner.call_errors.fetch_add(1, Ordering::Relaxed);
        }
        lock(&self.inner.call_latency).record(latency);
        self.inner.call_histogram.record(latency);
    }

    /// A finished probe.
    pub fn record_probe(&self, latency: Duration, ok: bool) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX - 1);
        self.inner.last_probe_failed.store(!ok, Ordering::Relaxed);
        self.inner.last_probe_us.store(us + 1, Ordering::Relaxed);
        self.inner.probes.fetch_add(1, Ordering::Relaxed);
        if ok {
            lock(&self.inner.probe_latency).record(latency);
            self.inner.probe_histogram.record(latency);
        } else {
            self.inner.probe_failures.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A re-establishment of the process or connection after the first.
    pub fn record_restart(&self) {
        self.inner.restarts.fetch_add(1, Ordering::Relaxed);
    }

    /// A state transition; `counted` (see [`crate::ServiceState::availability`]) and `spent` say
    /// whether the previous state counted as available, as unavailable or not at all, and how
    /// long it lasted, for the availability figure.
    pub fn record_transition(&self, counted: Option<bool>, spent: Duration) {
        self.inner.transitions.fetch_add(1, Ordering::Relaxed);
        let ms = u64::try_from(spent.as_millis()).unwrap_or(u64::MAX);
        match counted {
            Some(true) => self.inner.up_ms.fetch_add(ms, Ordering::Relaxed),
            Some(false) => self.inner.down_ms.fetch_add(ms, Ordering::Relaxed),
            None => 0,
        };
    }

    /// Probes so far and the last one (latency, whether it answered), without a snapshot.
    pub fn last_probe(&self) -> (u64, Option<(Duration, bool)>) {
        let i = &self.inner;
        let probes = i.probes.load(Ordering::Relaxed);
        let us = i.last_probe_us.load(Ordering::Relaxed);
        let ok = !i.last_probe_failed.load(Ordering::Relaxed);
        (
            probes,
            (us > 0).then(|| (Duration::from_micros(us - 1), ok)),
        )
    }

    /// Restarts so far.
    pub fn restarts(&self) -> u64 {
        self.inner.restarts.load(Ordering::Relaxed)
    }

    /// A snapshot. `current` (see [`crate::ServiceState::availability`]) and `current_for` describe
    /// the state the service is in now, so availability includes it.
    pub fn snapshot(&self, current: Option<bool>, current_for: Duration) -> MetricsSnapshot {
        let i = &self.inner;
        let cur = u64::try_from(current_for.as_millis()).unwrap_or(u64::MAX);
        let up = i.up_ms.load(Ordering::Relaxed) + if current == Some(true) { cur } else { 0 };
        let down = i.down_ms.load(Ordering::Relaxed) + if current == Some(false) { cur } else { 0 };
        MetricsSnapshot {
            availability_pct: (up + down > 0).then(|| 100.0 * up as f64 / (up + down) as f64),
            calls: i.calls.load(Ordering::Relaxed),
            call_errors: i.call_errors.load(Ordering::Relaxed),
            probes: i.probes.load(Ordering::Relaxed),
            probe_failures: i.probe_failures.load(Ordering::Relaxed),
            restarts: i.restarts.load(Ordering::Relaxed),
            transitions: i.transitions.load(Ordering::Relaxed),
            call_latency: lock(&i.call_latency).summary(),
            probe_latency: lock(&i.probe_latency).summary(),
            call_histogram: i.call_histogram.snapshot(),
            probe_histogram: i.probe_histogram.snapshot(),
        }
    }
}

/// Metrics of one service at one moment.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct MetricsSnapshot {
    /// Share of time spent `healthy`/`warning` since registration, in percent.
    pub availability_pct: Option<f64>,
    /// Calls finished.
    pub calls: u64,
    /// Calls that failed.
    pub call_errors: u64,
    /// Probes sent.
    pub probes: u64,
    /// Probes that failed or timed out.
    pub probe_failures: u64,
    /// Re-establishments after the first connection.
    pub restarts: u64,
    /// State transitions.
    pub transitions: u64,
    /// Call latency.
    pub call_latency: LatencySummary,
    /// Probe latency.
    pub probe_latency: LatencySummary,
    /// Every call's latency since registration (for `/metrics`).
    #[serde(default)]
    pub call_histogram: HistogramSnapshot,
    /// Every successful probe's latency since registration.
    #[serde(default)]
    pub probe_histogram: HistogramSnapshot,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_histogram_is_cumulative_with_count_and_sum() {
        let h = Histogram::default();
        for ms in [0, 3, 3, 40, 20_000] {
            h.record(Duration::from_millis(ms));
        }
        let s = h.snapshot();
        assert_eq!(s.count, 5);
        assert_eq!(s.buckets[0], (0.0005, 1));
        assert_eq!(s.buckets[3], (0.005, 3));
        assert_eq!(s.buckets[6], (0.05, 4));
        assert_eq!(
            s.buckets.last(),
            Some(&(10.0, 4)),
            "20 s is above every bound"
        );
        assert!((s.sum_s - 20.046).abs() < 1e-9);
    }

    #[test]
    fn a_latency_summary_is_computed_once_per_change() {
        let mut l = Latencies::default();
        assert_eq!(l.summary().samples, 0);
        for ms in [1, 2, 3] {
            l.record(Duration::from_millis(ms));
        }
        let first = l.summary();
        assert_eq!(first.p50_ms, Some(2.0));
        assert_eq!(l.summary, Some(first), "kept until the next sample");
        l.record(Duration::from_millis(10));
        assert_eq!(l.summary, None, "a new sample invalidates it");
        assert_eq!(l.summary().max_ms, Some(10.0));
    }

    #[test]
    fn log_ring_keeps_the_newest_lines_within_its_cap() {
        let r = LogRing::new(10);
        for i in 0..100 {
            r.push_line(&format!("l{i}"));
        }
        assert_eq!(r.tail(3), vec!["l97", "l98", "l99"]);
        assert!(r.tail(100).iter().map(String::len).sum::<usize>() <= 10);
        r.push_line(&"x".repeat(50));
        assert_eq!(r.tail(1)[0].len(), 10);
    }

    #[test]
    fn metrics_percentiles_and_availability() {
        let m = ServiceMetrics::default();
        for ms in 1..=100u64 {
            m.record_call(Duration::from_millis(ms), ms % 10 == 0);
        }
        m.record_transition(Some(true), Duration::from_secs(3));
        m.record_transition(Some(false), Duration::from_secs(1));
        // Time idle (or stopped on purpose) is neither.
        m.record_transition(None, Duration::from_secs(100));
        let s = m.snapshot(Some(true), Duration::ZERO);
        assert_eq!(s.calls, 100);
        assert_eq!(s.call_errors, 10);
        assert_eq!(s.call_latency.p50_ms, Some(51.0));
        assert_eq!(s.call_latency.max_ms, Some(100.0));
        assert_eq!(s.availability_pct, Some(75.0));
        assert_eq!(s.probe_latency.p50_ms, None);
    }
}
