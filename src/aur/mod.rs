//! The AUR build server: watch tracked AUR packages, review their new revisions, build the
//! approved ones and publish them to the custom repo.
//!
//! 1. **Check** (every `aur.check_interval`, or on `POST aur/check`): one RPC `info` query
//!    ([`rpc`]); for every package base whose AUR version is newer ([`crate::repo::vercmp`]) than
//!    what the custom repo holds ([`Publisher::current_version`]), fetch its git repo
//!    ([`git`]). A head revision already handled (queued, pending, rejected, built or
//!    failed) is left alone.
//! 2. **Review** ([`approval`]): the head is compared with the last approved revision. Only
//!    version/checksum/version-substituted-source changes are approved automatically; a
//!    package's first revision and everything else is held, with a notification ([`notify`])
//!    carrying the diff, until an admin approves (`pkgstash aur approve NAME --rev SHA`) or
//!    rejects it.
//! 3. **Build** ([`builder`]): one job at a time (`concurrent_builds`) from the persisted
//!    queue ([`queue`]), dependencies from the served repos ([`deps`], [`overlay`]): the
//!    exact approved revision is exported into a throw-away directory, makepkg runs there as
//!    an unprivileged user with a time limit, the log is kept under `<state>/logs/`.
//! 4. **Publish** ([`publish`]): every built package goes to the custom repo; a failure
//!    anywhere is recorded, notified, and leaves the repo unchanged.
//!
//! State lives in `<cache_dir>/.state/aur/` (`state.json`, `git/`, `logs/`); a restart resumes
//! the queue (a build killed mid-way runs again).

pub(crate) mod approval;
pub(crate) mod builder;
pub(crate) mod deps;
pub(crate) mod git;
pub(crate) mod notify;
pub(crate) mod overlay;
pub(crate) mod process_group;
pub(crate) mod publish;
pub mod queue;
pub(crate) mod rpc;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use self::approval::Verdict;
use self::git::GitMirror;
use self::notify::{Event, Notice};
pub use self::publish::Publisher;
use self::queue::{Approval, AurState, BuildRecord, DecisionError, Job, Pending, StateFile};
use crate::config::aur::{self as config, AurConfig};
use crate::repo::vercmp::vercmp;

/// RPC request time limit.
const RPC_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest diff kept for a pending revision.
const MAX_PENDING_DIFF: usize = 256 << 10;
/// Log lines sent with a failure notification.
const LOG_TAIL_LINES: usize = 40;

/// `<cache_dir>/.state/aur`.
pub fn state_dir(cache_dir: &Path) -> PathBuf {
    cache_dir.join(crate::cache::index::STATE_DIR).join("aur")
}

/// Why a check of a package base, or a build, did not go through (the text is what the
/// status page, the build record and the notification say).
#[derive(Debug, thiserror::Error)]
pub enum AurError {
    #[error(transparent)]
    Git(#[from] git::GitError),
    #[error(transparent)]
    Build(#[from] builder::BuildError),
    /// The custom repo refused or failed to add a built package.
    #[error("publishing {name}: {source}")]
    Publish {
        /// The package file's name.
        name: String,
        #[source]
        source: crate::custom_repo::RepoError,
    },
    /// A blocking step (git, the repo's version lookup, publishing) panicked or was cancelled.
    #[error(transparent)]
    Unfinished(#[from] actix_web::error::BlockingError),
}

/// One recent build, for the status page.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BuildSummary {
    pub pkgbase: String,
    pub version: String,
    pub rev: String,
    pub ok: bool,
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
    pub builds: Vec<BuildSummary>,
}

/// The running build server. Cheap to share (`Arc`); its loops run on the actix runtime.
pub struct AurService {
    cfg: AurConfig,
    dir: PathBuf,
    file: Arc<StateFile>,
    /// std-style mutex: never held across `.await`, nor while the state file is written.
    state: Arc<Mutex<AurState>>,
    /// Held while the state file is written: one writer at a time.
    saving: Arc<Mutex<()>>,
    publisher: Arc<dyn Publisher>,
    /// Wakes the build loop when a job is queued.
    wake_builder: Notify,
    /// Wakes the check loop (`POST aur/check`).
    wake_check: Notify,
    /// Jobs being built now (at most `aur.builder.concurrent_builds`, one per package base).
    building: Mutex<Vec<Job>>,
    last_check: Mutex<(Option<u64>, Option<String>)>,
    /// This server's own URL (its first bound listener, a wildcard made loopback): builds
    /// download their dependencies through it. Set by [`run`].
    server_url: std::sync::OnceLock<String>,
}

impl AurService {
    /// Open the state under `cache_dir` (an unreadable state starts empty: see [`StateFile`]).
    pub fn new(cfg: AurConfig, cache_dir: &Path, publisher: Arc<dyn Publisher>) -> Arc<Self> {
        let dir = state_dir(cache_dir);
        for sub in ["git", "logs"] {
            if let Err(e) = std::fs::create_dir_all(dir.join(sub)) {
                log::error!("aur: cannot create {}: {e}", dir.join(sub).display());
            }
        }
        let file = StateFile::new(&dir);
        let state = file.load();
        Arc::new(AurService {
            cfg,
            dir,
            file: Arc::new(file),
            state: Arc::new(Mutex::new(state)),
            saving: Arc::new(Mutex::new(())),
            publisher,
            wake_builder: Notify::new(),
            wake_check: Notify::new(),
            building: Mutex::new(Vec::new()),
            last_check: Mutex::new((None, None)),
            server_url: std::sync::OnceLock::new(),
        })
    }

    /// Apply `change` to the state and persist it; the state file is written (and fsynced)
    /// off the async worker.
    async fn update<R>(&self, change: impl FnOnce(&mut AurState) -> R) -> R {
        let result = change(&mut self.state.lock());
        let (state, file, saving) = (self.state.clone(), self.file.clone(), self.saving.clone());
        let saved = web::block(move || {
            let _one_writer = saving.lock();
            // The state as it is now: a write never replaces a later state with an earlier one.
            let latest = state.lock().clone();
            file.save(&latest)
        })
        .await;
        match saved {
            Ok(Ok(())) => {}
            Ok(Err(e)) => log::error!("aur: cannot save {}: {e}", self.file.path().display()),
            Err(e) => log::error!(
                "aur: saving {} did not finish: {e}",
                self.file.path().display()
            ),
        }
        result
    }

    /// Revisions waiting for an admin.
    pub fn pending(&self) -> Vec<Pending> {
        self.state.lock().pending()
    }

    /// An admin approves `name`'s pending revision (`rev`, when given, must be it), or queues
    /// its failed build again.
    pub async fn approve(&self, name: &str, rev: Option<&str>) -> Result<Approval, DecisionError> {
        let approval = self.update(|s| s.approve_pending(name, rev)).await?;
        log::info!(
            "aur: admin approved {} {} (rev {}); queued",
            approval.pkgbase,
            approval.version,
            approval.rev
        );
        self.wake_builder.notify_one();
        Ok(approval)
    }

    /// An admin rejects `name`'s pending revision.
    pub async fn reject(&self, name: &str) -> Result<Pending, DecisionError> {
        let p = self.update(|s| s.reject_pending(name)).await?;
        log::info!(
            "aur: admin rejected {} {} (rev {})",
            p.pkgbase,
            p.version,
            p.rev
        );
        Ok(p)
    }

    /// Ask the check loop to check now.
    pub fn check_soon(&self) {
        self.wake_check.notify_one();
    }

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
            building: {
                let now: Vec<String> = self
                    .building
                    .lock()
                    .iter()
                    .map(|j| format!("{} {}", j.pkgbase, j.version))
                    .collect();
                (!now.is_empty()).then(|| now.join(", "))
            },
            last_check,
            last_check_error,
            builds,
        }
    }

    fn git_root(&self) -> PathBuf {
        self.dir.join("git")
    }

    /// One check of every tracked package (see the module doc, steps 1–2).
    pub async fn check_once(&self) {
        let names = self.cfg.packages.clone();
        if names.is_empty() {
            return;
        }
        let result = rpc::info(&self.cfg.rpc_url, &names, RPC_TIMEOUT).await;
        let infos = match result {
            Ok(i) => i,
            Err(e) => {
                log::warn!("aur: check failed: {e}");
                *self.last_check.lock() = (Some(queue::now()), Some(e.to_string()));
                return;
            }
        };
        // Package base → (tracked names, AUR version).
        let mut bases: BTreeMap<String, (Vec<String>, String)> = BTreeMap::new();
        for name in &names {
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
        let mut errors = Vec::new();
        for (base, (pkgnames, version)) in bases {
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
        let publisher = self.publisher.clone();
        let names = pkgnames.clone();
        let current = web::block(move || {
            names
                .iter()
                .filter_map(|n| publisher.current_version(n))
                .max_by(|a, b| vercmp(a, b))
        })
        .await?;
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
        let (root, b, h, old) = (
            self.git_root(),
            base.to_string(),
            head.clone(),
            baseline.clone(),
        );
        let (verdict, diff, baseline) = web::block(move || {
            let mirror = GitMirror::new(&root, &b);
            // A baseline the repository no longer has (force-push) cannot be diffed against.
            let old = old.filter(|r| mirror.has_commit(r));
            let new_files = mirror.files(&h)?;
            let verdict = match &old {
                Some(r) => approval::classify(&mirror.files(r)?, &new_files),
                None => Verdict::Held(vec![
                    "first review of this package: no approved revision to compare with".into(),
                ]),
            };
            let diff = mirror.diff(old.as_deref(), &h)?;
            Ok::<_, git::GitError>((verdict, diff, old))
        })
        .await??;
        match verdict {
            Verdict::Auto => {
                self.update(|s| s.auto_approve(base, pkgnames, &head, version, current.clone()))
                    .await;
                log::info!(
                    "aur: {base} {} → {version} (rev {head}) auto-approved: only version/checksums changed; queued",
                    current.as_deref().unwrap_or("-")
                );
                self.wake_builder.notify_one();
            }
            Verdict::Held(reasons) => {
                let pending = Pending {
                    pkgbase: base.to_string(),
                    pkgnames: pkgnames.clone(),
                    rev: head.clone(),
                    version: version.to_string(),
                    old_version: current.clone(),
                    approved_rev: baseline,
                    reasons: reasons.clone(),
                    diff: notify::truncate(&diff, MAX_PENDING_DIFF),
                    since: queue::now(),
                };
                self.update(|s| s.hold(pending)).await;
                let notice = Notice {
                    event: Event::Held,
                    package: base.to_string(),
                    pkgnames,
                    old_version: current,
                    new_version: version.to_string(),
                    rev: head,
                    reasons,
                    diff: Some(notify::truncate(&diff, notify::MAX_DIFF)),
                    log: None,
                    log_tail: None,
                    error: None,
                };
                notify::send(self.cfg.webhook.as_deref(), &notice).await;
            }
        }
        Ok(())
    }

    /// The next job to build, if any: the first queued one whose package base is not being
    /// built already. It counts as building from now on.
    fn take_next_job(&self) -> Option<Job> {
        let state = self.state.lock();
        let mut building = self.building.lock();
        let job = state
            .queue
            .iter()
            .find(|j| !building.iter().any(|b| b.pkgbase == j.pkgbase))?
            .clone();
        building.push(job.clone());
        Some(job)
    }

    /// `job` is no longer building.
    fn done_building(&self, job: &Job) {
        self.building.lock().retain(|b| b != job);
    }

    /// Was exactly `job.rev` approved? (Defence in depth: the queue only gets approved jobs.)
    fn is_approved(&self, job: &Job) -> bool {
        let state = self.state.lock();
        let current = state
            .packages
            .get(&job.pkgbase)
            .and_then(|p| p.approved.as_ref())
            .is_some_and(|a| a.rev == job.rev);
        current
            || state
                .history
                .iter()
                .any(|a| a.pkgbase == job.pkgbase && a.rev == job.rev)
    }

    /// Build one job, publish its packages, record and notify the outcome (steps 3–4).
    async fn run_job(&self, job: Job) {
        let at = queue::now();
        let log_path = self.dir.join("logs").join(format!(
            "{}-{}-{}-{at}.log",
            job.pkgbase,
            job.version.replace([':', '/'], "_"),
            &job.rev[..job.rev.len().min(12)]
        ));
        if !self.is_approved(&job) {
            log::error!(
                "aur: refusing to build {} rev {}: no approval record",
                job.pkgbase,
                job.rev
            );
            self.update(|s| s.queue.retain(|j| j != &job)).await;
            self.done_building(&job);
            return;
        }
        log::info!(
            "aur: building {} {} (rev {}, approved {:?}); log {}",
            job.pkgbase,
            job.version,
            job.rev,
            job.by,
            log_path.display()
        );
        let result = self.build_and_publish(&job, &log_path).await;
        let record = BuildRecord {
            rev: job.rev.clone(),
            version: job.version.clone(),
            ok: result.is_ok(),
            at: queue::now(),
            log: log_path.clone(),
            packages: result.as_ref().cloned().unwrap_or_default(),
            error: result.as_ref().err().map(AurError::to_string),
            pkgnames: job.pkgnames.clone(),
            old_version: job.old_version.clone(),
        };
        self.update(|s| s.finish(&job, record)).await;
        self.done_building(&job);
        let log_tail = match &result {
            Ok(_) => None,
            Err(_) => {
                let log = log_path.clone();
                let tail = web::block(move || builder::log_tail(&log, LOG_TAIL_LINES)).await;
                Some(tail.unwrap_or_else(|e| format!("(the log could not be read: {e})")))
            }
        };
        let notice = Notice {
            event: if result.is_ok() {
                Event::Built
            } else {
                Event::BuildFailed
            },
            package: job.pkgbase.clone(),
            pkgnames: job.pkgnames.clone(),
            old_version: job.old_version.clone(),
            new_version: job.version.clone(),
            rev: job.rev.clone(),
            reasons: Vec::new(),
            diff: None,
            log: Some(log_path.display().to_string()),
            log_tail,
            error: result.err().as_ref().map(AurError::to_string),
        };
        notify::send(self.cfg.webhook.as_deref(), &notice).await;
    }

    /// Export, build, publish. Answers the published file names.
    async fn build_and_publish(&self, job: &Job, log_path: &Path) -> Result<Vec<String>, AurError> {
        let ws = builder::Workspace::create()?;
        let result = self.build_in(&ws, job, log_path).await;
        // Removing the build tree (sources, objects: it can be large) blocks: off the worker.
        if let Err(e) = web::block(move || drop(ws)).await {
            log::warn!("aur: removing a build directory did not finish: {e}");
        }
        result
    }

    /// [`Self::build_and_publish`] in the workspace `ws`.
    async fn build_in(
        &self,
        ws: &builder::Workspace,
        job: &Job,
        log_path: &Path,
    ) -> Result<Vec<String>, AurError> {
        let (root, base, rev, tree) = (
            self.git_root(),
            job.pkgbase.clone(),
            job.rev.clone(),
            ws.tree(),
        );
        web::block(move || GitMirror::new(&root, &base).export(&rev, &tree)).await??;
        let mut builder_cfg = self.cfg.builder.clone();
        if let Some(url) = self.server_url.get() {
            builder_cfg.server_url = url.clone();
        }
        builder::run_makepkg(ws, &builder_cfg, log_path).await?;
        let mut published = Vec::new();
        for (pkg, sig) in ws.packages() {
            let publisher = self.publisher.clone();
            let name = pkg
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            web::block(move || publisher.publish(&pkg, sig.as_deref()))
                .await?
                .map_err(|source| AurError::Publish {
                    name: name.clone(),
                    source,
                })?;
            log::info!("aur: published {name} to repo {}", self.cfg.repo);
            published.push(name);
        }
        Ok(published)
    }
}

/// The build loop: up to `concurrent_builds` jobs at a time, resuming the persisted queue at start.
async fn build_loop(svc: Arc<AurService>) {
    let queued = svc.state.lock().queue.len();
    if queued > 0 {
        log::info!("aur: resuming {queued} queued build(s)");
    }
    let limit = svc.cfg.builder.concurrent_builds;
    let mut running = futures::stream::FuturesUnordered::new();
    loop {
        while running.len() < limit {
            let Some(job) = svc.take_next_job() else {
                break;
            };
            let svc = svc.clone();
            running.push(async move { svc.run_job(job).await });
        }
        tokio::select! {
            Some(()) = futures::StreamExt::next(&mut running), if !running.is_empty() => {}
            _ = svc.wake_builder.notified() => {}
        }
    }
}

/// Run the build server: the build loop and the check loop, until this future is dropped
/// (the server stops: a build in progress is killed and stays queued for the next start).
/// Spawn it on the actix runtime.
pub async fn run(svc: Arc<AurService>, server_url: String) {
    log::info!(
        "aur: build server on: {} package(s), checking every {}, publishing to repo {}",
        svc.cfg.packages.len(),
        humantime::format_duration(svc.cfg.check_interval),
        svc.cfg.repo
    );
    let _ = svc.server_url.set(server_url);
    if svc.cfg.builder.dependencies == config::Dependencies::Repos
        && !svc
            .cfg
            .builder
            .dep_repos()
            .iter()
            .any(|r| matches!(r, config::DepRepoRef::Upstream { .. }))
    {
        log::warn!(
            "aur: build dependencies the build host lacks are installed only from the custom \
             repos; list upstream repos too in aur.builder.dep_repos (e.g. \
             [\"{}\", \"archlinux/core\", \"archlinux/extra\"])",
            svc.cfg.repo
        );
    }
    tokio::join!(build_loop(svc.clone()), check_loop(svc));
}

/// The check loop: every `check_interval`, or when woken (`POST aur/check`).
async fn check_loop(svc: Arc<AurService>) {
    loop {
        svc.check_once().await;
        tokio::select! {
            _ = tokio::time::sleep(svc.cfg.check_interval) => {}
            _ = svc.wake_check.notified() => {}
        }
    }
}
