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
//!
//! This module holds the service handle ([`AurService`]: its state, the admin's decisions,
//! [`run`]) and why a check or a build failed ([`AurError`]); the check loop (steps 1–2), the build loop (steps 3–4) and the status summary
//! ([`AurSummary`]) are its private submodules `check`, `build_loop` and `summary`.

pub(crate) mod approval;
mod build_loop;
pub(crate) mod builder;
mod check;
pub(crate) mod deps;
pub(crate) mod git;
pub(crate) mod history;
pub(crate) mod notify;
pub(crate) mod overlay;
pub(crate) mod overview;
mod pkgbuild;
pub(crate) mod process_group;
pub(crate) mod publish;
pub(crate) mod queue;
pub(crate) mod rpc;
mod summary;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use actix_web::web;
use parking_lot::Mutex;
use tokio::sync::Notify;

pub use self::publish::Publisher;
use self::queue::{Approval, AurState, DecisionError, Job, Pending, StateFile};
pub use self::summary::AurSummary;
use crate::config::aur::{self as config, AurConfig};

/// `<cache_dir>/.state/aur`.
pub fn state_dir(cache_dir: &Path) -> PathBuf {
    cache_dir.join(crate::cache::index::STATE_DIR).join("aur")
}

/// Why a check of a package base, or a build, did not go through (the text is what the
/// status page, the build record and the notification say). A cause written into a message is
/// not also a `source`: printed with its sources, each cause shows once.
#[derive(Debug, thiserror::Error)]
pub enum AurError {
    #[error(transparent)]
    Git(#[from] git::GitError),
    #[error(transparent)]
    Build(#[from] builder::BuildError),
    /// The custom repo refused or failed to add a built package.
    #[error("publishing {name}: {cause}")]
    Publish {
        /// The package file's name.
        name: String,
        cause: crate::custom_repo::CustomRepoError,
    },
    /// A blocking step (git, the repo's version lookup, publishing, the build setup) panicked
    /// or was cancelled.
    #[error(transparent)]
    Unfinished(#[from] actix_web::error::BlockingError),
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
    /// Bumped when build output is appended to a log, and when a build starts or ends.
    log_signal: builder::LogSignal,
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
        let mut state = file.load();
        let last_builds: Vec<(String, queue::BuildRecord)> = state
            .packages
            .iter()
            .filter_map(|(base, p)| p.last_build.clone().map(|b| (base.clone(), b)))
            .collect();
        state
            .builds
            .adopt(last_builds.iter().map(|(base, b)| (base, b)));
        state.builds.interrupted(queue::now());
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
            log_signal: Arc::new(tokio::sync::watch::channel(0).0),
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

    /// An admin rejects `name`'s pending revision (`rev`, when given, must be it).
    pub async fn reject(&self, name: &str, rev: Option<&str>) -> Result<Pending, DecisionError> {
        let p = self.update(|s| s.reject_pending(name, rev)).await?;
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

    /// `<state>/git`: the package bases' git mirrors.
    fn git_root(&self) -> PathBuf {
        self.dir.join("git")
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
    tokio::join!(build_loop::build_loop(svc.clone()), check::check_loop(svc));
}
