//! What the admin interface's AUR view shows (docs/admin-api.md, `GET api/aur` and
//! `api/aur/builds…`): every tracked package with its state, the queue, the builds in progress
//! and the build history, read from the build server's state.

use std::path::PathBuf;

use serde::Serialize;

use super::history::{Build, BuildEntry, BuildState};
use super::queue::{Approval, AurState, Job};
use super::AurService;

/// `GET api/aur`.
#[derive(Debug, Serialize)]
pub struct AurOverview {
    /// The custom repo builds are published to.
    pub repo: String,
    pub check_interval_secs: u64,
    pub concurrent_builds: usize,
    pub last_check: Option<u64>,
    pub last_check_error: Option<String>,
    /// One per name in `aur.packages`, in config order.
    pub packages: Vec<TrackedPackage>,
    /// Approved jobs not started yet, in build order.
    pub queue: Vec<Job>,
    pub building: Vec<Build>,
}

/// One tracked package.
#[derive(Debug, Serialize)]
pub struct TrackedPackage {
    pub name: String,
    /// `None` until a check resolved it.
    pub pkgbase: Option<String>,
    /// `building` | `queued` | `pending` | `failed` | `built` | `rejected` | `new`.
    pub state: &'static str,
    /// What the custom repo holds for `name`.
    pub repo_version: Option<String>,
    pub approved: Option<Approval>,
    pub pending: Option<PendingBrief>,
    pub rejected_rev: Option<String>,
    pub last_build: Option<Build>,
}

/// The revision waiting for an admin (its diff is in `GET api/aur/pending`).
#[derive(Debug, Serialize)]
pub struct PendingBrief {
    pub rev: String,
    pub version: String,
    pub since: u64,
}

/// `build` with the size of its log now when it is still being written (a stat).
fn fresh(entry: &BuildEntry) -> Build {
    let mut b = entry.build.clone();
    if b.state == BuildState::Building {
        b.log_bytes = std::fs::metadata(&entry.log).map_or(0, |m| m.len());
    }
    b
}

impl AurService {
    /// The AUR view (stats the logs of builds in progress: call it off the async worker).
    pub fn overview(&self) -> AurOverview {
        let (last_check, last_check_error) = self.last_check.lock().clone();
        let state = self.state.lock().clone();
        let building: Vec<Build> = state.builds.building().map(fresh).collect();
        let packages = self
            .cfg
            .packages
            .iter()
            .map(|name| self.tracked(&state, name, &building))
            .collect();
        let started = self.building.lock().clone();
        AurOverview {
            repo: self.cfg.repo.clone(),
            check_interval_secs: self.cfg.check_interval.as_secs(),
            concurrent_builds: self.cfg.builder.concurrent_builds,
            last_check,
            last_check_error,
            packages,
            queue: state
                .queue
                .iter()
                .filter(|j| !started.contains(j))
                .cloned()
                .collect(),
            building,
        }
    }

    fn tracked(&self, state: &AurState, name: &str, building: &[Build]) -> TrackedPackage {
        let pkgbase = state.resolve(name);
        let pkg = pkgbase.as_ref().and_then(|b| state.packages.get(b));
        let last_build = pkgbase
            .as_ref()
            .and_then(|b| state.builds.last_of(b))
            .map(fresh);
        let is = |f: &dyn Fn(&str) -> bool| pkgbase.as_deref().is_some_and(f);
        let state_word = if is(&|b| building.iter().any(|x| x.pkgbase == b)) {
            "building"
        } else if is(&|b| state.queue.iter().any(|j| j.pkgbase == b)) {
            "queued"
        } else if pkg.is_some_and(|p| p.pending.is_some()) {
            "pending"
        } else if let Some(b) = pkg.and_then(|p| p.last_build.as_ref()) {
            if b.ok {
                "built"
            } else {
                "failed"
            }
        } else if pkg.is_some_and(|p| p.rejected_rev.is_some()) {
            "rejected"
        } else {
            "new"
        };
        TrackedPackage {
            name: name.to_string(),
            state: state_word,
            repo_version: self.publisher.current_version(name),
            approved: pkg.and_then(|p| p.approved.clone()),
            pending: pkg.and_then(|p| p.pending.as_ref()).map(|p| PendingBrief {
                rev: p.rev.clone(),
                version: p.version.clone(),
                since: p.since,
            }),
            rejected_rev: pkg.and_then(|p| p.rejected_rev.clone()),
            last_build,
            pkgbase,
        }
    }

    /// Up to `limit` builds with ids below `before`, newest first (stats the logs of builds
    /// in progress).
    pub fn builds(&self, limit: usize, before: Option<u64>) -> Vec<Build> {
        let state = self.state.lock();
        state
            .builds
            .newest_first(limit, before)
            .into_iter()
            .map(fresh)
            .collect()
    }

    /// Build `id` and its log file.
    pub fn build(&self, id: u64) -> Option<(Build, PathBuf)> {
        let state = self.state.lock();
        state.builds.get(id).map(|e| (fresh(e), e.log.clone()))
    }

    /// Changes whenever build output is appended to a log, or a build starts or ends.
    pub fn log_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.log_signal.subscribe()
    }
}
