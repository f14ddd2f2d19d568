//! The build history: every build with an id (assigned when it starts, increasing), its job,
//! state (`building` | `built` | `failed`), times, log and outcome — the last [`MAX_BUILDS`],
//! persisted in `state.json` with the rest of the build server's state ([`super::queue`]).
//!
//! A state file written before ids existed gets its packages' last builds as the first
//! entries ([`BuildHistory::adopt`]); a build still `building` in a state read at start was
//! cut short by a stop (its job is still queued and runs again under a new id), so it is
//! recorded as failed ([`BuildHistory::interrupted`]).

use std::collections::VecDeque;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::queue::{ApprovedBy, BuildRecord, Job};

/// Builds kept.
pub const MAX_BUILDS: usize = 500;

/// Where a build stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BuildState {
    Building,
    Built,
    Failed,
}

/// One build, as the admin API shows it (docs/admin-api.md, `Build`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Build {
    pub id: u64,
    pub pkgbase: String,
    pub pkgnames: Vec<String>,
    /// `[epoch:]pkgver-pkgrel` being built.
    pub version: String,
    /// What the custom repo held before.
    pub old_version: Option<String>,
    /// The approved git revision (40 hex digits).
    pub rev: String,
    pub by: ApprovedBy,
    pub state: BuildState,
    /// Unix seconds: approved into the queue, started, ended.
    pub queued_at: u64,
    pub started_at: u64,
    pub ended_at: Option<u64>,
    pub duration_secs: Option<u64>,
    /// Size of its log, bytes (as of when it was last looked at).
    #[serde(default)]
    pub log_bytes: u64,
    /// Published package file names (`built`).
    #[serde(default)]
    pub packages: Vec<String>,
    /// Why it failed (`failed`).
    pub error: Option<String>,
}

/// A build and where its log is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildEntry {
    #[serde(flatten)]
    pub build: Build,
    pub log: PathBuf,
}

/// The last [`MAX_BUILDS`] builds, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildHistory {
    /// The id of the next build (ids start at 1).
    #[serde(default)]
    next_id: u64,
    #[serde(default)]
    entries: VecDeque<BuildEntry>,
}

impl BuildHistory {
    /// Record the start of `job`'s build at `now`, logging to `log`; answers its id.
    pub fn start(&mut self, job: &Job, log: PathBuf, now: u64) -> u64 {
        let id = self.next_id.max(1);
        self.next_id = id + 1;
        self.push(BuildEntry {
            build: Build {
                id,
                pkgbase: job.pkgbase.clone(),
                pkgnames: job.pkgnames.clone(),
                version: job.version.clone(),
                old_version: job.old_version.clone(),
                rev: job.rev.clone(),
                by: job.by,
                state: BuildState::Building,
                queued_at: job.queued_at,
                started_at: now,
                ended_at: None,
                duration_secs: None,
                log_bytes: 0,
                packages: Vec::new(),
                error: None,
            },
            log,
        });
        id
    }

    fn push(&mut self, entry: BuildEntry) {
        self.entries.push_back(entry);
        while self.entries.len() > MAX_BUILDS {
            self.entries.pop_front();
        }
    }

    /// Build `id` ended as `record` says, its log `log_bytes` long.
    pub fn finish(&mut self, id: u64, record: &BuildRecord, log_bytes: u64) {
        if let Some(e) = self.entries.iter_mut().find(|e| e.build.id == id) {
            let b = &mut e.build;
            b.state = if record.ok {
                BuildState::Built
            } else {
                BuildState::Failed
            };
            b.ended_at = Some(record.at);
            b.duration_secs = Some(record.at.saturating_sub(b.started_at));
            b.log_bytes = log_bytes;
            b.packages = record.packages.clone();
            b.error = record.error.clone();
        }
    }

    /// Build `id`.
    pub fn get(&self, id: u64) -> Option<&BuildEntry> {
        self.entries.iter().find(|e| e.build.id == id)
    }

    /// Up to `limit` builds with ids below `before` (all when `None`), newest first.
    pub fn newest_first(&self, limit: usize, before: Option<u64>) -> Vec<&BuildEntry> {
        self.entries
            .iter()
            .rev()
            .filter(|e| before.is_none_or(|b| e.build.id < b))
            .take(limit)
            .collect()
    }

    /// The newest build of `pkgbase`.
    pub fn last_of(&self, pkgbase: &str) -> Option<&BuildEntry> {
        self.entries
            .iter()
            .rev()
            .find(|e| e.build.pkgbase == pkgbase)
    }

    /// Builds in progress.
    pub fn building(&self) -> impl Iterator<Item = &BuildEntry> {
        self.entries
            .iter()
            .filter(|e| e.build.state == BuildState::Building)
    }

    /// A state read at start: builds still `building` were cut short by a stop.
    pub fn interrupted(&mut self, now: u64) {
        for e in self.entries.iter_mut() {
            let b = &mut e.build;
            if b.state == BuildState::Building {
                b.state = BuildState::Failed;
                b.ended_at = Some(now);
                b.duration_secs = Some(now.saturating_sub(b.started_at));
                b.error = Some("interrupted: the server stopped during the build".into());
            }
        }
    }

    /// A state written before build ids: its packages' last builds (`(pkgbase, record)`)
    /// become the first entries, oldest first.
    pub fn adopt<'a>(&mut self, last_builds: impl Iterator<Item = (&'a String, &'a BuildRecord)>) {
        if self.next_id > 0 || !self.entries.is_empty() {
            return;
        }
        let mut old: Vec<(&String, &BuildRecord)> = last_builds.collect();
        old.sort_by_key(|(_, r)| r.at);
        for (pkgbase, r) in old {
            let id = self.next_id.max(1);
            self.next_id = id + 1;
            self.push(BuildEntry {
                build: Build {
                    id,
                    pkgbase: pkgbase.clone(),
                    pkgnames: r.pkgnames.clone(),
                    version: r.version.clone(),
                    old_version: r.old_version.clone(),
                    rev: r.rev.clone(),
                    by: ApprovedBy::Auto,
                    state: if r.ok {
                        BuildState::Built
                    } else {
                        BuildState::Failed
                    },
                    queued_at: r.at,
                    started_at: r.at,
                    ended_at: Some(r.at),
                    duration_secs: None,
                    log_bytes: 0,
                    packages: r.packages.clone(),
                    error: r.error.clone(),
                },
                log: r.log.clone(),
            });
        }
        self.next_id = self.next_id.max(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(base: &str) -> Job {
        Job {
            pkgbase: base.into(),
            pkgnames: vec![base.into()],
            rev: "a".repeat(40),
            version: "1.0-1".into(),
            old_version: None,
            by: ApprovedBy::Admin,
            queued_at: 5,
        }
    }

    fn record(ok: bool, at: u64) -> BuildRecord {
        BuildRecord {
            rev: "a".repeat(40),
            version: "1.0-1".into(),
            ok,
            at,
            log: PathBuf::from("/logs/x.log"),
            packages: if ok {
                vec!["x.pkg.tar.zst".into()]
            } else {
                vec![]
            },
            error: (!ok).then(|| "makepkg failed (exit status: 4)".into()),
            pkgnames: vec!["x".into()],
            old_version: None,
        }
    }

    #[test]
    fn ids_increase_and_builds_end() {
        let mut h = BuildHistory::default();
        let a = h.start(&job("a"), "/l/a".into(), 10);
        let b = h.start(&job("b"), "/l/b".into(), 11);
        assert_eq!((a, b), (1, 2));
        assert_eq!(h.building().count(), 2);
        h.finish(a, &record(true, 40), 99);
        let e = h.get(a).expect("a");
        assert_eq!(e.build.state, BuildState::Built);
        assert_eq!(
            (e.build.ended_at, e.build.duration_secs),
            (Some(40), Some(30))
        );
        assert_eq!((e.build.log_bytes, e.build.queued_at), (99, 5));
        assert_eq!(e.build.packages, ["x.pkg.tar.zst"]);
        h.finish(b, &record(false, 12), 1);
        assert_eq!(h.get(b).expect("b").build.state, BuildState::Failed);
        assert_eq!(h.last_of("a").map(|e| e.build.id), Some(1));
        let ids: Vec<u64> = h
            .newest_first(10, None)
            .iter()
            .map(|e| e.build.id)
            .collect();
        assert_eq!(ids, [2, 1]);
        let ids: Vec<u64> = h
            .newest_first(10, Some(2))
            .iter()
            .map(|e| e.build.id)
            .collect();
        assert_eq!(ids, [1]);
        assert!(h.get(3).is_none());
    }

    #[test]
    fn only_the_last_builds_are_kept_and_ids_go_on() {
        let mut h = BuildHistory::default();
        for _ in 0..MAX_BUILDS + 20 {
            h.start(&job("a"), "/l".into(), 1);
        }
        assert_eq!(h.entries.len(), MAX_BUILDS);
        assert!(h.get(20).is_none() && h.get(21).is_some());
        assert_eq!(h.newest_first(1, None)[0].build.id, MAX_BUILDS as u64 + 20);
        let json = serde_json::to_string(&h).expect("json");
        let back: BuildHistory = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, h);
    }

    #[test]
    fn an_old_state_is_adopted_and_a_cut_build_is_failed() {
        let mut h = BuildHistory::default();
        let (a, b) = ("a".to_string(), "b".to_string());
        let (ra, rb) = (record(true, 50), record(false, 20));
        h.adopt([(&a, &ra), (&b, &rb)].into_iter());
        let ids: Vec<(u64, &str)> = h
            .newest_first(10, None)
            .iter()
            .map(|e| (e.build.id, e.build.pkgbase.as_str()))
            .collect();
        assert_eq!(ids, [(2, "a"), (1, "b")]);
        assert_eq!(h.get(1).expect("b").log, PathBuf::from("/logs/x.log"));
        // Adopted once only.
        h.adopt([(&a, &ra)].into_iter());
        assert_eq!(h.entries.len(), 2);
        let id = h.start(&job("c"), "/l/c".into(), 60);
        assert_eq!(id, 3);
        h.interrupted(70);
        let c = &h.get(id).expect("c").build;
        assert_eq!(c.state, BuildState::Failed);
        assert!(c.error.as_deref().unwrap_or("").contains("interrupted"));
    }
}
