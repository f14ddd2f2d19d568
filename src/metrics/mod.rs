//! Prometheus metrics, registered once in a private [`prometheus::Registry`].
//!
//! Hot-path counters are pre-resolved label children (`IntCounter`), so counting a hit is one
//! atomic add — no label lookup, no lock. Gauges that describe state (in-flight downloads,
//! cache size) are set when `/_pkgstash/metrics` is scraped.
//!
//! Requests and body bytes are also counted per minute ([`minutes`], behind `stats.json`):
//! [`Metrics::request`], [`Metrics::served_from_cache`], [`Metrics::served_from_download`] and
//! [`Metrics::fetched`] feed both, so both front ends (actix and the fast path) count the
//! same events in both places.

pub(crate) mod minutes;

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// How a mirror request was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Served from the cache.
    Hit,
    /// Started a new upstream download.
    Miss,
    /// Joined a download already in flight.
    Joined,
    /// A cached mutable file was confirmed current upstream.
    Revalidated,
    /// Upstream unreachable: a stale cached copy was served.
    Stale,
    /// 404 (upstream or ours).
    NotFound,
    /// Upstream failure or refused request.
    Error,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Hit => "hit",
            Outcome::Miss => "miss",
            Outcome::Joined => "joined",
            Outcome::Revalidated => "revalidated",
            Outcome::Stale => "stale",
            Outcome::NotFound => "not_found",
            Outcome::Error => "error",
        }
    }
}

const OUTCOMES: [Outcome; 7] = [
    Outcome::Hit,
    Outcome::Miss,
    Outcome::Joined,
    Outcome::Revalidated,
    Outcome::Stale,
    Outcome::NotFound,
    Outcome::Error,
];

/// Every metric pkgstash exports.
#[derive(Debug)]
pub struct Metrics {
    pub registry: Registry,
    requests: Vec<IntCounter>,
    /// Body bytes sent to clients from finished cache files ([`Metrics::served_from_cache`]).
    pub bytes_from_cache: IntCounter,
    /// Body bytes sent to clients from downloads in flight
    /// ([`Metrics::served_from_download`]).
    pub bytes_from_upstream: IntCounter,
    /// Body bytes received from mirrors, by upstream ([`Metrics::fetched`]).
    pub upstream_bytes: IntCounterVec,
    /// Failed mirror attempts, by upstream.
    pub mirror_failures: IntCounterVec,
    /// Downloads the cache could not store (local I/O errors), by kind
    /// (`no_space`, `read_only`, `other`).
    pub local_errors: IntCounterVec,
    pub download_seconds: Histogram,
    pub inflight: IntGauge,
    pub cache_bytes: IntGauge,
    pub cache_files: IntGauge,
    /// The same request and byte counts, per minute over the last 24 hours.
    pub minutes: minutes::MinuteRing,
    /// 1 from SIGTERM until the exit (new requests refused, health check failing), else 0.
    pub draining: IntGauge,
    /// Open client connections.
    pub connections: IntGauge,
    /// Client addresses the admin-auth limiter blocks now (too many failed attempts).
    pub admin_blocked_clients: IntGauge,
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new_custom(Some("pkgstash".into()), None).unwrap_or_default();
        let requests_vec = IntCounterVec::new(
            Opts::new("requests_total", "Mirror requests by result"),
            &["result"],
        )
        .expect("static metric definition");
        let requests = OUTCOMES
            .iter()
            .map(|o| requests_vec.with_label_values(&[o.as_str()]))
            .collect();
        let served = counters(
            "served_bytes_total",
            "Body bytes sent to clients, by source",
            "source",
        );
        let m = Metrics {
            bytes_from_cache: served.with_label_values(&["cache"]),
            bytes_from_upstream: served.with_label_values(&["upstream"]),
            upstream_bytes: counters(
                "upstream_bytes_total",
                "Body bytes received from mirrors",
                "upstream",
            ),
            mirror_failures: counters(
                "mirror_failures_total",
                "Failed mirror attempts",
                "upstream",
            ),
            local_errors: counters(
                "local_errors_total",
                "Downloads the cache could not store (local I/O errors)",
                "kind",
            ),
            download_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "download_duration_seconds",
                    "Duration of completed downloads",
                )
                .buckets(vec![0.05, 0.25, 1.0, 5.0, 15.0, 60.0, 300.0, 1800.0]),
            )
            .expect("static metric definition"),
            inflight: gauge("inflight_downloads", "Downloads in flight"),
            cache_bytes: gauge("cache_bytes", "Bytes in the cache"),
            cache_files: gauge("cache_files", "Files in the cache"),
            draining: gauge("draining", DRAINING_HELP),
            connections: gauge("connections", "Open client connections"),
            admin_blocked_clients: gauge("admin_blocked_clients", BLOCKED_HELP),
            requests,
            registry,
            minutes: minutes::MinuteRing::new(),
        };
        // Exported at 0 from the start, so a dashboard sees the series before the first error.
        for kind in ["no_space", "read_only", "other"] {
            m.local_errors.with_label_values(&[kind]);
        }
        for c in [
            Box::new(requests_vec) as Box<dyn prometheus::core::Collector>,
            Box::new(served),
            Box::new(m.upstream_bytes.clone()),
            Box::new(m.mirror_failures.clone()),
            Box::new(m.local_errors.clone()),
            Box::new(m.download_seconds.clone()),
            Box::new(m.inflight.clone()),
            Box::new(m.cache_bytes.clone()),
            Box::new(m.cache_files.clone()),
            Box::new(m.draining.clone()),
            Box::new(m.connections.clone()),
            Box::new(m.admin_blocked_clients.clone()),
        ] {
            if let Err(e) = m.registry.register(c) {
                log::error!("cannot register metric: {e}");
            }
        }
        m
    }

    /// Count one request (when its response head is sent).
    pub fn request(&self, outcome: Outcome) {
        if let Some(c) = OUTCOMES
            .iter()
            .position(|o| *o == outcome)
            .and_then(|i| self.requests.get(i))
        {
            c.inc();
        }
        self.minutes.request(outcome);
    }

    /// Count `n` body bytes sent to a client from a finished cache file.
    pub fn served_from_cache(&self, n: u64) {
        self.bytes_from_cache.inc_by(n);
        self.minutes.bytes(minutes::Bytes::ServedCache, n);
    }

    /// Count `n` body bytes sent to a client from a download in flight.
    pub fn served_from_download(&self, n: u64) {
        self.bytes_from_upstream.inc_by(n);
        self.minutes.bytes(minutes::Bytes::ServedInflight, n);
    }

    /// Show `upstream`'s byte counter at 0 before its first byte (a series that appears only
    /// later breaks `rate()` and alerts on its absence).
    pub fn add_upstream(&self, upstream: &str) {
        self.upstream_bytes.with_label_values(&[upstream]);
    }

    /// Count `n` body bytes received from a mirror of `upstream`.
    pub fn fetched(&self, upstream: &str, n: u64) {
        self.upstream_bytes.with_label_values(&[upstream]).inc_by(n);
        self.minutes.bytes(minutes::Bytes::FetchedUpstream, n);
    }

    /// Requests counted for `outcome` so far.
    pub fn requests_of(&self, outcome: Outcome) -> u64 {
        OUTCOMES
            .iter()
            .position(|o| *o == outcome)
            .and_then(|i| self.requests.get(i))
            .map(|c| c.get())
            .unwrap_or(0)
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        use prometheus::Encoder;
        let mut buf = Vec::new();
        let enc = prometheus::TextEncoder::new();
        if let Err(e) = enc.encode(&self.registry.gather(), &mut buf) {
            log::error!("cannot encode metrics: {e}");
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// Help of `pkgstash_draining`.
const DRAINING_HELP: &str = "1 while shutting down: new requests refused, transfers finishing";
/// Help of `pkgstash_admin_blocked_clients`.
const BLOCKED_HELP: &str = "Client addresses blocked by the admin API's failed-attempt limit";

/// Counters of a static definition with one label.
fn counters(name: &str, help: &str, label: &str) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), &[label]).expect("static metric definition")
}

/// A gauge of a static definition.
fn gauge(name: &str, help: &str) -> IntGauge {
    IntGauge::new(name, help).expect("static metric definition")
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render() {
        let m = Metrics::new();
        m.request(Outcome::Hit);
        m.request(Outcome::Hit);
        m.request(Outcome::Joined);
        m.add_upstream("other");
        m.upstream_bytes.with_label_values(&["arch"]).inc_by(10);
        let text = m.render();
        assert!(
            text.contains("pkgstash_requests_total{result=\"hit\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("pkgstash_requests_total{result=\"joined\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("pkgstash_upstream_bytes_total{upstream=\"arch\"} 10"),
            "{text}"
        );
        assert!(
            text.contains("pkgstash_upstream_bytes_total{upstream=\"other\"} 0"),
            "{text}"
        );
        assert_eq!(m.requests_of(Outcome::Hit), 2);
        m.local_errors.with_label_values(&["no_space"]).inc();
        assert!(
            m.render()
                .contains("pkgstash_local_errors_total{kind=\"no_space\"} 1"),
            "{}",
            m.render()
        );
    }
}
