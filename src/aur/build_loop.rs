//! The build loop (steps 3–4 of [`crate::aur`]): takes approved jobs off the persisted queue,
//! up to `aur.builder.concurrent_builds` at a time and one per package base, builds each
//! ([`super::builder`]), publishes its packages ([`super::publish`]), records the outcome in the
//! state and notifies it.

use std::path::Path;
use std::sync::Arc;

use actix_web::web;

use super::builder;
use super::git::GitMirror;
use super::notify::{self, Event, Notice};
use super::queue::{self, BuildRecord, Job};
use super::{AurError, AurService};

/// Log lines sent with a failure notification.
const LOG_TAIL_LINES: usize = 40;

/// The build loop: up to `concurrent_builds` jobs at a time, resuming the persisted queue at start.
pub(super) async fn build_loop(svc: Arc<AurService>) {
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

impl AurService {
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
        let id = self
            .update(|s| s.builds.start(&job, log_path.clone(), queue::now()))
            .await;
        builder::signal(&self.log_signal);
        log::info!(
            "aur: building {} {} (build {id}, rev {}, approved {:?}); log {}",
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
        let log_bytes = std::fs::metadata(&log_path).map_or(0, |m| m.len());
        self.update(|s| {
            s.builds.finish(id, &record, log_bytes);
            s.finish(&job, record)
        })
        .await;
        self.done_building(&job);
        builder::signal(&self.log_signal);
        let log_tail = match &result {
            Ok(_) => None,
            Err(_) => {
                let log = log_path.clone();
                let tail = web::block(move || builder::log_tail(&log, LOG_TAIL_LINES)).await;
                Some(tail.unwrap_or_else(|e| format!("(the log could not be read: {e})")))
            }
        };
        notify::send(
            self.cfg.webhook.as_deref(),
            &build_notice(&job, &log_path, log_tail, result),
        )
        .await;
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
        builder::run_makepkg(ws, &builder_cfg, log_path, &self.log_signal).await?;
        let mut published = Vec::new();
        for (pkg, sig) in ws.packages() {
            let publisher = self.publisher.clone();
            let name = pkg
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            web::block(move || publisher.publish(&pkg, sig.as_deref()))
                .await?
                .map_err(|cause| AurError::Publish {
                    name: name.clone(),
                    cause,
                })?;
            log::info!("aur: published {name} to repo {}", self.cfg.repo);
            published.push(name);
        }
        Ok(published)
    }
}

/// The notification of a finished build of `job` (with the log's tail, read by the caller,
/// when it failed).
fn build_notice(
    job: &Job,
    log_path: &Path,
    log_tail: Option<String>,
    result: Result<Vec<String>, AurError>,
) -> Notice {
    Notice {
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
    }
}
