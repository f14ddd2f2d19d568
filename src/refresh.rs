//! Scheduled and on-demand refresh: revalidate every cached repo database, then prefetch new
//! versions of cached packages. (Being implemented: see issue 6.)

use serde::Serialize;

use crate::server::AppState;

/// What one refresh did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RefreshReport {
    /// Unix time (seconds) the refresh started.
    pub started_at: u64,
    pub duration_ms: u64,
    /// Cached databases revalidated upstream.
    pub dbs_checked: usize,
    /// Databases that changed upstream.
    pub dbs_updated: usize,
    /// Packages prefetched (cache paths).
    pub prefetched: Vec<String>,
    /// Human-readable problems.
    pub errors: Vec<String>,
}

/// Run one refresh now and remember its report in the state.
pub async fn refresh_now(state: &AppState) -> RefreshReport {
    let report = RefreshReport {
        started_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        errors: vec!["refresh is not implemented yet".into()],
        ..RefreshReport::default()
    };
    *state.last_refresh.lock() = Some(report.clone());
    report
}
