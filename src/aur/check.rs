//! The check (steps 1–2 of [`crate::aur`]): ask the AUR for every tracked package's version,
//! fetch the git repo of each package base that is newer than the custom repo's, review the
//! new head against the last approved revision, and queue it (auto-approved) or hold it for
//! an admin with a notification.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actix_web::web;

use super::approval::{self, Verdict};
use super::git::{self, GitMirror};
use super::notify::{self, Event, Notice};
use super::queue::{self, Pending};
use super::{AurError, AurService};
use crate::config::aur as config;
use crate::repo::vercmp::vercmp;

/// RPC request time limit.
const RPC_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest diff kept for a pending revision.
const MAX_PENDING_DIFF: usize = 256 << 10;

/// A new head of a package base, newer in the AUR than in the custom repo.
struct Candidate {
    base: String,
    /// The tracked packages of this base.
    pkgnames: Vec<String>,
    /// The AUR's version.
    version: String,
    /// The custom repo's version, if it has one.
    current: Option<String>,
    /// The git head revision.
    head: String,
}

/// What reviewing a head found.
struct Review {
    verdict: Verdict,
    /// Diff from the baseline (or the whole tree without one).
    diff: String,
    /// The approved revision compared with, when the repository still has it.
    baseline: Option<String>,
}

/// The check loop: a check at start, then every `aur.check_interval` or when woken
/// ([`AurService::check_soon`]).
pub(super) async fn check_loop(svc: Arc<AurService>) {
    loop {
        svc.check_once().await;
        tokio::select! {
            _ = tokio::time::sleep(svc.cfg.check_interval) => {}
            _ = svc.wake_check.notified() => {}
        }
    }
}

impl AurService {
    /// One check of every tracked package (see the module doc, steps 1–2).
    pub async fn check_once(&self) {
        let names = self.cfg.packages.clone();
        if names.is_empty() {
            return;
        }
        let result = super::rpc::info(&self.cfg.rpc_url, &names, RPC_TIMEOUT).await;
        let infos = match result {
            Ok(i) => i,
            Err(e) => {
                log::warn!("aur: check failed: {e}");
                *self.last_check.lock() = (Some(queue::now()), Some(e.to_string()));
                return;
            }
        };
        let mut errors = Vec::new();
        for (base, (pkgnames, version)) in by_package_base(&names, &infos) {
            if let Err(e) = self.check_base(&base, pkgnames, &version).await {
                log::warn!("aur: {base}: {e}");
                errors.push(format!("{base}: {e}"));
            }
        }
        *self.last_check.lock() = (
            Some(queue::now()),
            (!errors.is_empty()).then(|| errors.join("; ")),
        );
    }

    /// Check one package base whose AUR version is `version`.
    async fn check_base(
        &self,
        base: &str,
        pkgnames: Vec<String>,
        version: &str,
    ) -> Result<(), AurError> {
        let current = self.published_version(&pkgnames).await?;
        if let Some(c) = &current {
            if vercmp(version, c) != std::cmp::Ordering::Greater {
                log::debug!("aur: {base} is up to date ({c})");
                return Ok(());
            }
        }
        let url = self.cfg.git_url_for(base);
        let (root, b) = (self.git_root(), base.to_string());
        let head = web::block(move || GitMirror::new(&root, &b).sync(&url)).await??;
        if self.state.lock().handled(base, &head) {
            return Ok(());
        }
        let baseline = self
            .state
            .lock()
            .packages
            .get(base)
            .and_then(|p| p.approved.as_ref().map(|a| a.rev.clone()));
        if baseline.as_deref() == Some(head.as_str()) {
            log::debug!("aur: {base}: head {head} was approved before; nothing new");
            return Ok(());
        }
        let Review {
            verdict,
            diff,
            baseline,
        } = self.review(base, &head, baseline).await?;
        let found = Candidate {
            base: base.to_string(),
            pkgnames,
            version: version.to_string(),
            current,
            head,
        };
        match verdict {
            Verdict::Auto => self.queue_approved(found).await,
            Verdict::Held(reasons) => self.hold(found, reasons, &diff, baseline).await,
        }
        Ok(())
    }

    /// The highest version of `pkgnames` the custom repo holds.
    async fn published_version(&self, pkgnames: &[String]) -> Result<Option<String>, AurError> {
        let publisher = self.publisher.clone();
        let names = pkgnames.to_vec();
        web::block(move || {
            names
                .iter()
                .filter_map(|n| publisher.current_version(n))
                .max_by(|a, b| vercmp(a, b))
        })
        .await
        .map_err(AurError::from)
    }

    /// Classify `head` against the approved `baseline` ([`approval::classify`]); without a
    /// baseline the repository still has, the revision is held as a first review.
    async fn review(
        &self,
        base: &str,
        head: &str,
        baseline: Option<String>,
    ) -> Result<Review, AurError> {
        let (root, b, h) = (self.git_root(), base.to_string(), head.to_string());
        web::block(move || {
            let mirror = GitMirror::new(&root, &b);
            // A baseline the repository no longer has (force-push) cannot be diffed against.
            let old = baseline.filter(|r| mirror.has_commit(r));
            let new_files = mirror.files(&h)?;
            let verdict = match &old {
                Some(r) => approval::classify(&mirror.files(r)?, &new_files),
                None => Verdict::Held(vec![
                    "first review of this package: no approved revision to compare with".into(),
                ]),
            };
            let diff = mirror.diff(old.as_deref(), &h)?;
            Ok::<_, git::GitError>(Review {
                verdict,
                diff,
                baseline: old,
            })
        })
        .await?
        .map_err(AurError::from)
    }

    /// Auto-approved: queue the build.
    async fn queue_approved(&self, c: Candidate) {
        let Candidate {
            base,
            pkgnames,
            version,
            current,
            head,
        } = c;
        self.update(|s| s.auto_approve(&base, pkgnames, &head, &version, current.clone()))
            .await;
        log::info!(
            "aur: {base} {} → {version} (rev {head}) auto-approved: only version/checksums changed; queued",
            current.as_deref().unwrap_or("-")
        );
        self.wake_builder.notify_one();
    }

    /// Needs an admin for `reasons`: keep it pending (with its `diff` from `baseline`) and
    /// notify.
    async fn hold(&self, c: Candidate, reasons: Vec<String>, diff: &str, baseline: Option<String>) {
        let pending = Pending {
            pkgbase: c.base.clone(),
            pkgnames: c.pkgnames.clone(),
            rev: c.head.clone(),
            version: c.version.clone(),
            old_version: c.current.clone(),
            approved_rev: baseline,
            reasons: reasons.clone(),
            diff: notify::truncate(diff, MAX_PENDING_DIFF),
            since: queue::now(),
        };
        self.update(|s| s.hold(pending)).await;
        let notice = Notice {
            event: Event::Held,
            package: c.base,
            pkgnames: c.pkgnames,
            old_version: c.current,
            new_version: c.version,
            rev: c.head,
            reasons,
            diff: Some(notify::truncate(diff, notify::MAX_DIFF)),
            log: None,
            log_tail: None,
            error: None,
        };
        notify::send(self.cfg.webhook.as_deref(), &notice).await;
    }
}

/// The tracked `names` grouped by the package base the AUR names for them: base → (tracked
/// names, AUR version). Names the AUR lacks, or with an invalid base, are logged and left out.
fn by_package_base(
    names: &[String],
    infos: &[super::rpc::AurInfo],
) -> BTreeMap<String, (Vec<String>, String)> {
    let mut bases: BTreeMap<String, (Vec<String>, String)> = BTreeMap::new();
    for name in names {
        match infos.iter().find(|i| &i.name == name) {
            Some(info) if config::valid_package_name(&info.package_base) => {
                let entry = bases
                    .entry(info.package_base.clone())
                    .or_insert_with(|| (Vec::new(), info.version.clone()));
                entry.0.push(name.clone());
            }
            Some(info) => log::warn!(
                "aur: {name}: the AUR names an invalid package base {:?}",
                info.package_base
            ),
            None => log::warn!("aur: {name} is not in the AUR"),
        }
    }
    bases
}
