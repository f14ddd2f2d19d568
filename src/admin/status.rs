//! The server's status as one serializable value: the admin API's `status`, the public
//! `/_pkgstash/status.json` behind the web page, and the CLI's `status` table all use it.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::cache::index::unix_secs;
use crate::cache::inflight::Phase;
use crate::jobs::refresh::RefreshReport;
use crate::metrics::{Metrics, Outcome};
use crate::state::AppState;
use crate::upstream::pool::MirrorStatus;

/// Bytes and files of one upstream's cache.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UpstreamUsage {
    pub bytes: u64,
    pub files: u64,
}

/// One download in flight.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InflightStatus {
    /// URL path, `/<upstream>/<rel>`.
    pub path: String,
    /// connecting | streaming | finishing
    pub phase: String,
    pub bytes_done: u64,
    pub bytes_total: Option<u64>,
    /// Average download rate so far, bytes per second.
    pub rate_bps: u64,
    pub clients: usize,
    pub elapsed_ms: u64,
    /// Mirror the bytes come from (credentials redacted).
    pub mirror: Option<String>,
}

/// Request counters since start.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RequestCounts {
    pub hit: u64,
    pub miss: u64,
    pub joined: u64,
    pub revalidated: u64,
    pub stale: u64,
    pub not_found: u64,
    pub error: u64,
}

/// The cache's last local storage error (disk full, read-only, …): what and when, never a path.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StorageStatus {
    /// Unix time of the last error.
    pub at: u64,
    /// `no_space`, `read_only` or `other`.
    pub kind: String,
    /// What failed, e.g. "write partial file: No space left on device (os error 28)".
    pub message: String,
    /// Local storage errors since start.
    pub errors: u64,
}

/// Everything the status page and `pkgstash status` show.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    pub version: String,
    pub uptime_secs: u64,
    /// Unix time of this snapshot.
    pub now: u64,
    pub cache_bytes: u64,
    pub cache_files: u64,
    pub upstreams: BTreeMap<String, UpstreamUsage>,
    pub requests: RequestCounts,
    /// Hits (incl. revalidated) over answered file requests, 0..1.
    pub hit_ratio: f64,
    /// Body bytes served from finished cache files: bytes that did not cross the WAN again.
    pub bytes_saved: u64,
    /// Body bytes served from downloads in flight.
    pub bytes_from_upstream: u64,
    pub inflight: Vec<InflightStatus>,
    pub mirrors: Vec<MirrorStatus>,
    /// The last time the cache could not store a download (`None`: never since start).
    #[serde(default)]
    pub storage_error: Option<StorageStatus>,
    pub last_refresh: Option<RefreshReport>,
    /// Is the admin API enabled (a token configured)?
    pub admin_enabled: bool,
    /// The AUR build server (`None`: off).
    #[serde(default)]
    pub aur: Option<crate::aur::AurSummary>,
}

impl Status {
    /// A snapshot of `state` now.
    pub fn collect(state: &AppState) -> Status {
        let m = &state.metrics;
        let requests = RequestCounts::since_start(m);
        let upstreams = upstream_usage(state);
        Status {
            version: env!("CARGO_PKG_VERSION").to_string(),
            uptime_secs: state.started.elapsed().as_secs(),
            now: unix_secs(SystemTime::now()),
            cache_bytes: upstreams.values().map(|u| u.bytes).sum(),
            cache_files: upstreams.values().map(|u| u.files).sum(),
            upstreams,
            hit_ratio: requests.hit_ratio(),
            requests,
            bytes_saved: m.bytes_from_cache.get(),
            bytes_from_upstream: m.bytes_from_upstream.get(),
            inflight: inflight(state),
            mirrors: state.pools.iter().flat_map(|p| p.status()).collect(),
            storage_error: state
                .store
                .last_error()
                .map(|(at, e, errors)| StorageStatus {
                    at: unix_secs(at),
                    kind: e.kind.as_str().to_string(),
                    message: e.to_string(),
                    errors,
                }),
            last_refresh: state.jobs.last_refresh.lock().clone(),
            admin_enabled: state.cfg.token.is_some(),
            aur: state.aur.as_ref().map(|a| a.summary()),
        }
    }
}

impl RequestCounts {
    /// The counters of `m`.
    fn since_start(m: &Metrics) -> RequestCounts {
        RequestCounts {
            hit: m.requests_of(Outcome::Hit),
            miss: m.requests_of(Outcome::Miss),
            joined: m.requests_of(Outcome::Joined),
            revalidated: m.requests_of(Outcome::Revalidated),
            stale: m.requests_of(Outcome::Stale),
            not_found: m.requests_of(Outcome::NotFound),
            error: m.requests_of(Outcome::Error),
        }
    }

    /// Hits (incl. revalidated and stale) over answered file requests, 0..1 (0 with none).
    fn hit_ratio(&self) -> f64 {
        let served_local = self.hit + self.revalidated + self.stale;
        let answered = served_local + self.miss + self.joined;
        if answered == 0 {
            0.0
        } else {
            served_local as f64 / answered as f64
        }
    }
}

/// Bytes and files cached per upstream.
fn upstream_usage(state: &AppState) -> BTreeMap<String, UpstreamUsage> {
    crate::jobs::cleanup::usage(&state.jobs)
        .into_iter()
        .map(|(k, u)| {
            (
                k,
                UpstreamUsage {
                    bytes: u.bytes,
                    files: u.files,
                },
            )
        })
        .collect()
}

/// The downloads in flight now, sorted by path.
fn inflight(state: &AppState) -> Vec<InflightStatus> {
    let mut inflight: Vec<InflightStatus> = state
        .registry
        .snapshot()
        .iter()
        .map(|d| {
            let p = d.progress();
            let (phase, total) = match &p.phase {
                Phase::Connecting => ("connecting", None),
                Phase::Streaming(meta) => ("streaming", meta.total),
                _ => ("finishing", None),
            };
            let elapsed = d.started.elapsed();
            let secs = elapsed.as_secs_f64().max(0.001);
            let mirror = state.pools.get(d.path.upstream()).and_then(|pool| {
                let i = d.mirror.load(std::sync::atomic::Ordering::Relaxed) as usize;
                pool.mirrors.get(i).map(|m| m.url.to_string())
            });
            InflightStatus {
                path: format!("/{}", d.path.key()),
                phase: phase.to_string(),
                bytes_done: p.written,
                bytes_total: total,
                rate_bps: (p.written as f64 / secs) as u64,
                clients: d.clients(),
                elapsed_ms: elapsed.as_millis() as u64,
                mirror,
            }
        })
        .collect();
    inflight.sort_by(|a, b| a.path.cmp(&b.path));
    inflight
}
