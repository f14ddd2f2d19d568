//! The build server's part of the status snapshot ([`crate::admin::status::Status`]'s `aur`):
//! tracked, pending, queued and building packages, the last check and the recent builds.

use serde::{Deserialize, Serialize};

use super::AurService;

/// One recent build, for the status page.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BuildSummary {
    pub pkgbase: String,
    pub version: String,
    pub rev: String,
    pub ok: bool,
    /// Unix seconds the build finished.
    pub at: u64,
    pub error: Option<String>,
}

/// The build server's part of the status snapshot.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AurSummary {
    pub tracked: usize,
    /// Revisions waiting for an admin.
    pub pending: usize,
    pub pending_names: Vec<String>,
    /// Approved revisions waiting to be built (incl. the one building).
    pub queued: usize,
    /// `pkgbase version` being built now.
    pub building: Option<String>,
    /// Unix seconds of the last finished check.
    pub last_check: Option<u64>,
    pub last_check_error: Option<String>,
    /// The last build of every package base, newest first.
    pub builds: Vec<BuildSummary>,
}

impl AurService {
    /// The status page's view.
    pub fn summary(&self) -> AurSummary {
        let state = self.state.lock();
        let pending = state.pending();
        let (last_check, last_check_error) = self.last_check.lock().clone();
        let mut builds: Vec<BuildSummary> = state
            .packages
            .iter()
            .filter_map(|(base, p)| {
                p.last_build.as_ref().map(|b| BuildSummary {
                    pkgbase: base.clone(),
                    version: b.version.clone(),
                    rev: b.rev.clone(),
                    ok: b.ok,
                    at: b.at,
                    error: b.error.clone(),
                })
            })
            .collect();
        builds.sort_by_key(|b| std::cmp::Reverse(b.at));
        AurSummary {
            tracked: self.cfg.packages.len(),
            pending: pending.len(),
            pending_names: pending.iter().map(|p| p.pkgbase.clone()).collect(),
            queued: state.queue.len(),
            building: self.building_now(),
            last_check,
            last_check_error,
            builds,
        }
    }

    /// `pkgbase version` of every job building now, comma-separated; `None` when idle.
    fn building_now(&self) -> Option<String> {
        let now: Vec<String> = self
            .building
            .lock()
            .iter()
            .map(|j| format!("{} {}", j.pkgbase, j.version))
            .collect();
        (!now.is_empty()).then(|| now.join(", "))
    }
}
