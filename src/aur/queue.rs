//! The build server's persisted state, `<cache_dir>/.state/aur/state.json`: per package base
//! the last approved revision (the baseline of the next diff), the revision waiting for an
//! admin, the last rejected revision and the last build; the build queue; the approval
//! history; and the build history ([`super::history`]). Written atomically (temp file + rename) after every change, read at start, so the
//! queue survives restarts.
//!
//! Invariant: a [`Job`] only enters the queue through [`AurState::approve_pending`] or
//! [`AurState::auto_approve`], which record an [`Approval`] with the exact revision first —
//! nothing unapproved can be built.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Approval records kept in the history.
const MAX_HISTORY: usize = 1000;

/// Who approved a revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovedBy {
    /// The classifier: only version, checksums and version-substituted sources changed.
    Auto,
    /// An admin, through the API or `pkgstash aur approve`.
    Admin,
}

/// An approval: this exact revision may be built.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub pkgbase: String,
    /// Full git commit id.
    pub rev: String,
    /// AUR version at approval time.
    pub version: String,
    pub by: ApprovedBy,
    /// Unix seconds.
    pub at: u64,
}

/// A revision waiting for an admin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    pub pkgbase: String,
    pub pkgnames: Vec<String>,
    pub rev: String,
    /// The AUR's version of `rev`.
    pub version: String,
    /// What the custom repo holds.
    pub old_version: Option<String>,
    /// The baseline the diff is against (`None`: first review of this package).
    pub approved_rev: Option<String>,
    pub reasons: Vec<String>,
    pub diff: String,
    /// Unix seconds.
    pub since: u64,
}

/// An approved revision waiting to be built.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    pub pkgbase: String,
    pub pkgnames: Vec<String>,
    pub rev: String,
    pub version: String,
    pub old_version: Option<String>,
    pub by: ApprovedBy,
    pub queued_at: u64,
}

/// The outcome of one build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildRecord {
    pub rev: String,
    pub version: String,
    pub ok: bool,
    /// Unix seconds when the build ended.
    pub at: u64,
    pub log: PathBuf,
    /// Package files published.
    #[serde(default)]
    pub packages: Vec<String>,
    pub error: Option<String>,
    /// The job's package names and the repo's version before it (to queue it again).
    #[serde(default)]
    pub pkgnames: Vec<String>,
    #[serde(default)]
    pub old_version: Option<String>,
}

/// Everything known about one package base.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageState {
    /// The last approved revision: the baseline of the next review.
    pub approved: Option<Approval>,
    pub pending: Option<Pending>,
    /// A rejected revision is not held again (a newer one is).
    pub rejected_rev: Option<String>,
    pub last_build: Option<BuildRecord>,
}

/// The whole persisted state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AurState {
    #[serde(default)]
    pub packages: BTreeMap<String, PackageState>,
    #[serde(default)]
    pub queue: VecDeque<Job>,
    #[serde(default)]
    pub history: Vec<Approval>,
    /// Every recent build, with ids.
    #[serde(default)]
    pub builds: super::history::BuildHistory,
}

/// Why an approve/reject request cannot be done.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecisionError {
    #[error("nothing is pending for `{0}` (and its last build did not fail)")]
    NothingPending(String),
    #[error("`{name}`: the pending revision is {pending}, not {asked}")]
    RevMismatch {
        name: String,
        pending: String,
        asked: String,
    },
}

/// Unix seconds now.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl AurState {
    /// The package base `name` refers to: a package base with state, or the base of a
    /// pending revision or queued job listing `name` among its package names.
    pub fn resolve(&self, name: &str) -> Option<String> {
        if self.packages.contains_key(name) {
            return Some(name.to_string());
        }
        let pending = self
            .packages
            .values()
            .filter_map(|p| p.pending.as_ref())
            .find(|p| p.pkgnames.iter().any(|n| n == name))
            .map(|p| p.pkgbase.clone());
        pending.or_else(|| {
            self.packages
                .iter()
                .find(|(_, p)| {
                    p.last_build
                        .as_ref()
                        .is_some_and(|b| b.pkgnames.iter().any(|n| n == name))
                })
                .map(|(base, _)| base.clone())
        })
    }

    fn record(&mut self, approval: Approval, job: Job) {
        let pkg = self.packages.entry(approval.pkgbase.clone()).or_default();
        pkg.approved = Some(approval.clone());
        pkg.pending = None;
        self.queue.retain(|j| j.pkgbase != job.pkgbase);
        self.queue.push_back(job);
        self.history.push(approval);
        if self.history.len() > MAX_HISTORY {
            let drop = self.history.len() - MAX_HISTORY;
            self.history.drain(..drop);
        }
    }

    /// Approve `rev` without review (the classifier found only a version bump) and queue it.
    pub fn auto_approve(
        &mut self,
        pkgbase: &str,
        pkgnames: Vec<String>,
        rev: &str,
        version: &str,
        old_version: Option<String>,
    ) -> Approval {
        let at = now();
        let approval = Approval {
            pkgbase: pkgbase.to_string(),
            rev: rev.to_string(),
            version: version.to_string(),
            by: ApprovedBy::Auto,
            at,
        };
        let job = Job {
            pkgbase: pkgbase.to_string(),
            pkgnames,
            rev: rev.to_string(),
            version: version.to_string(),
            old_version,
            by: ApprovedBy::Auto,
            queued_at: at,
        };
        self.record(approval.clone(), job);
        approval
    }

    /// Hold a revision for an admin.
    pub fn hold(&mut self, pending: Pending) {
        let pkg = self.packages.entry(pending.pkgbase.clone()).or_default();
        pkg.pending = Some(pending);
    }

    /// An admin approves the pending revision of `name` (which must be `rev` when given).
    /// With nothing pending, a failed build of the approved revision is queued again (the
    /// admin fixed what made it fail).
    pub fn approve_pending(
        &mut self,
        name: &str,
        rev: Option<&str>,
    ) -> Result<Approval, DecisionError> {
        let base = self.resolve(name);
        let pkg = base.as_ref().and_then(|b| self.packages.get(b));
        let job = match pkg.and_then(|p| p.pending.clone()) {
            Some(pending) => Job {
                pkgbase: pending.pkgbase,
                pkgnames: pending.pkgnames,
                rev: pending.rev,
                version: pending.version,
                old_version: pending.old_version,
                by: ApprovedBy::Admin,
                queued_at: now(),
            },
            None => {
                let failed = pkg
                    .and_then(|p| p.last_build.clone().zip(p.approved.as_ref()))
                    .filter(|(b, a)| !b.ok && b.rev == a.rev)
                    .map(|(b, _)| b)
                    .filter(|b| !self.queue.iter().any(|j| j.rev == b.rev))
                    .ok_or_else(|| DecisionError::NothingPending(name.to_string()))?;
                Job {
                    pkgbase: base.clone().unwrap_or_default(),
                    pkgnames: failed.pkgnames,
                    rev: failed.rev,
                    version: failed.version,
                    old_version: failed.old_version,
                    by: ApprovedBy::Admin,
                    queued_at: now(),
                }
            }
        };
        if let Some(asked) = rev {
            if !asked.eq_ignore_ascii_case(&job.rev) {
                return Err(DecisionError::RevMismatch {
                    name: name.to_string(),
                    pending: job.rev,
                    asked: asked.to_string(),
                });
            }
        }
        let approval = Approval {
            pkgbase: job.pkgbase.clone(),
            rev: job.rev.clone(),
            version: job.version.clone(),
            by: ApprovedBy::Admin,
            at: job.queued_at,
        };
        self.record(approval.clone(), job);
        Ok(approval)
    }

    /// An admin rejects the pending revision of `name` (which must be `rev` when given): it is
    /// dropped and not held again.
    pub fn reject_pending(
        &mut self,
        name: &str,
        rev: Option<&str>,
    ) -> Result<Pending, DecisionError> {
        let base = self
            .resolve(name)
            .ok_or_else(|| DecisionError::NothingPending(name.to_string()))?;
        let pkg = self
            .packages
            .get_mut(&base)
            .ok_or_else(|| DecisionError::NothingPending(name.to_string()))?;
        let pending = pkg
            .pending
            .take()
            .ok_or_else(|| DecisionError::NothingPending(name.to_string()))?;
        if let Some(asked) = rev.filter(|r| !r.eq_ignore_ascii_case(&pending.rev)) {
            let mismatch = DecisionError::RevMismatch {
                name: name.to_string(),
                pending: pending.rev.clone(),
                asked: asked.to_string(),
            };
            pkg.pending = Some(pending);
            return Err(mismatch);
        }
        pkg.rejected_rev = Some(pending.rev.clone());
        Ok(pending)
    }

    /// Every pending revision, by package base.
    pub fn pending(&self) -> Vec<Pending> {
        self.packages
            .values()
            .filter_map(|p| p.pending.clone())
            .collect()
    }

    /// The build of `job` ended: record it and drop the job from the queue.
    pub fn finish(&mut self, job: &Job, record: BuildRecord) {
        self.queue
            .retain(|j| !(j.pkgbase == job.pkgbase && j.rev == job.rev));
        self.packages
            .entry(job.pkgbase.clone())
            .or_default()
            .last_build = Some(record);
    }

    /// Is `rev` of `pkgbase` already taken care of (queued, pending, rejected, built or
    /// failed)? Then a check has nothing to do for it.
    pub fn handled(&self, pkgbase: &str, rev: &str) -> bool {
        if self
            .queue
            .iter()
            .any(|j| j.pkgbase == pkgbase && j.rev == rev)
        {
            return true;
        }
        self.packages.get(pkgbase).is_some_and(|p| {
            p.pending.as_ref().is_some_and(|x| x.rev == rev)
                || p.rejected_rev.as_deref() == Some(rev)
                || p.last_build.as_ref().is_some_and(|b| b.rev == rev)
        })
    }
}

/// Where the state lives, and its atomic writes.
pub struct StateFile {
    path: PathBuf,
}

impl StateFile {
    pub fn new(dir: &Path) -> StateFile {
        StateFile {
            path: dir.join("state.json"),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Read the state; a missing file is an empty state. A corrupt file is moved aside
    /// (`state.json.corrupt`) and an empty state returned: the worst effect is that every
    /// package is held for review again — never that something is built unapproved.
    pub fn load(&self) -> AurState {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return AurState::default(),
            Err(e) => {
                log::error!("aur: cannot read {}: {e}", self.path.display());
                return AurState::default();
            }
        };
        match serde_json::from_slice(&bytes) {
            Ok(s) => s,
            Err(e) => {
                let aside = self.path.with_extension("json.corrupt");
                log::error!(
                    "aur: {} is not valid ({e}); moved to {} and starting empty",
                    self.path.display(),
                    aside.display()
                );
                let _ = std::fs::rename(&self.path, aside);
                AurState::default()
            }
        }
    }

    /// Write the state atomically and durably ([`crate::durable::write`]).
    pub fn save(&self, state: &AurState) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(state).map_err(std::io::Error::other)?;
        crate::durable::write(&self.path, &json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(rev: &str) -> Pending {
        Pending {
            pkgbase: "hello".into(),
            pkgnames: vec!["hello".into(), "hello-docs".into()],
            rev: rev.into(),
            version: "1.1-1".into(),
            old_version: Some("1.0-1".into()),
            approved_rev: None,
            reasons: vec!["x".into()],
            diff: String::new(),
            since: 0,
        }
    }

    #[test]
    fn approve_checks_the_revision_and_queues_it() {
        let mut s = AurState::default();
        assert_eq!(
            s.approve_pending("hello", None),
            Err(DecisionError::NothingPending("hello".into()))
        );
        s.hold(pending("aaaa"));
        assert!(s.handled("hello", "aaaa"));
        assert!(matches!(
            s.approve_pending("hello", Some("bbbb")),
            Err(DecisionError::RevMismatch { .. })
        ));
        assert!(s.queue.is_empty(), "nothing queued without approval");
        let a = s
            .approve_pending("hello-docs", Some("AAAA"))
            .expect("approve");
        assert_eq!((a.rev.as_str(), a.by), ("aaaa", ApprovedBy::Admin));
        assert_eq!(s.queue.len(), 1);
        assert!(s.packages["hello"].pending.is_none());
        assert_eq!(
            s.packages["hello"]
                .approved
                .as_ref()
                .map(|a| a.rev.as_str()),
            Some("aaaa")
        );
        let job = s.queue[0].clone();
        s.finish(
            &job,
            BuildRecord {
                rev: "aaaa".into(),
                version: "1.1-1".into(),
                ok: true,
                at: 0,
                log: PathBuf::from("/x"),
                packages: vec![],
                error: None,
                pkgnames: vec!["hello".into()],
                old_version: None,
            },
        );
        assert!(s.queue.is_empty());
        assert!(s.handled("hello", "aaaa"));
        assert!(!s.handled("hello", "cccc"));
        // A successful build is not queued again.
        assert_eq!(
            s.approve_pending("hello", None),
            Err(DecisionError::NothingPending("hello".into()))
        );
    }

    #[test]
    fn approving_a_failed_build_queues_it_again() {
        let mut s = AurState::default();
        s.hold(pending("aaaa"));
        s.approve_pending("hello", None).expect("approve");
        let job = s.queue[0].clone();
        let failed = BuildRecord {
            rev: "aaaa".into(),
            version: "1.1-1".into(),
            ok: false,
            at: 0,
            log: PathBuf::from("/x"),
            packages: vec![],
            error: Some("makepkg failed".into()),
            pkgnames: job.pkgnames.clone(),
            old_version: job.old_version.clone(),
        };
        s.finish(&job, failed);
        assert!(s.queue.is_empty());
        assert!(matches!(
            s.approve_pending("hello", Some("bbbb")),
            Err(DecisionError::RevMismatch { .. })
        ));
        // By a split package's name too.
        let a = s
            .approve_pending("hello-docs", Some("aaaa"))
            .expect("retry");
        assert_eq!((a.rev.as_str(), a.by), ("aaaa", ApprovedBy::Admin));
        assert_eq!(s.queue.len(), 1);
        assert_eq!(s.queue[0].pkgnames, job.pkgnames);
        assert_eq!(s.history.len(), 2, "the retry is on record");
        // Queued already: nothing more to approve.
        assert!(s.approve_pending("hello", None).is_err());
        assert_eq!(s.queue.len(), 1);
    }

    #[test]
    fn reject_remembers_the_revision() {
        let mut s = AurState::default();
        s.hold(pending("aaaa"));
        assert!(matches!(
            s.reject_pending("hello", Some("bbbb")),
            Err(DecisionError::RevMismatch { .. })
        ));
        assert_eq!(s.pending().len(), 1, "a stale revision rejects nothing");
        let p = s.reject_pending("hello", Some("AAAA")).expect("reject");
        assert_eq!(p.rev, "aaaa");
        assert!(s.pending().is_empty());
        assert!(s.handled("hello", "aaaa"));
        assert!(s.reject_pending("hello", None).is_err());
    }

    #[test]
    fn state_round_trips_through_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = StateFile::new(dir.path());
        assert_eq!(f.load(), AurState::default());
        let mut s = AurState::default();
        s.auto_approve("hello", vec!["hello".into()], "abcd", "1.0-1", None);
        s.hold(pending("ffff"));
        f.save(&s).expect("save");
        assert_eq!(f.load(), s);
        std::fs::write(f.path(), b"{not json").expect("write");
        assert_eq!(f.load(), AurState::default());
        assert!(dir.path().join("state.json.corrupt").is_file());
    }
}
