//! One download across mirror attempts: the [`Job`] a fetch task runs (the steps are in the
//! doc of [`super`]). Three steps, which [`super::pair`] orders across the two files of a repo
//! db pair:
//! 1. [`Job::fetch`], the mirror loop here: each try is one [`attempt`] (its body received by
//!    [`body`]) and ends in an [`attempt::Attempt`]; whose fault it is decides what follows: a
//!    mirror's failure uses up the failure budget and moves on; a slow mirror is left for one
//!    not yet tried, without a failure; a local storage error ends the download at once and
//!    blames nobody upstream;
//! 2. [`Job::verify`] ([`publish`]): a complete body is checked against the repo db and
//!    [`super::admit`]ted;
//! 3. [`Job::conclude`]: publish a verified body ([`publish`]), or record the outcome; then
//!    clients are told.

mod attempt;
mod body;
mod publish;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use url::Url;

use self::attempt::Attempt;
use super::expect::{self, Expectation};
use super::partial::PartialFile;
use super::{Expected, FetchContext};
use crate::cache::inflight::{Download, Failure, Phase};
use crate::cache::store::StorageError;
use crate::cache::validators::Validators;
use crate::repo::db_index::RepoIndex;
use crate::upstream::pool::MirrorPool;

/// How fetching one file from the pool ended, before anything is published or told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fetched {
    /// The whole body is in the partial file; from mirror `i`.
    Complete(usize),
    /// Mirror `i` confirmed the cached copy.
    NotModified(usize),
    /// Every mirror answered 404.
    NotFound,
    /// The file could not be delivered (the partial file is gone): whose fault, and why.
    Failed(Failure),
}

/// The state of one download across mirror attempts.
pub(crate) struct Job<'a> {
    ctx: &'a FetchContext,
    pool: &'a MirrorPool,
    client: awc::Client,
    download: &'a Download,
    /// The validators of the cached copy being revalidated (a conditional request).
    conditional: Option<Validators>,
    /// The validators of the body received.
    received: Validators,
    /// What the body must be by the repo db (known, or being looked up beside the download).
    expected: Expectation,
    partial: PartialFile<'a>,
    /// Mirror indices in the order they are tried.
    order: Vec<usize>,
    /// Mirrors (by pool index) found under `min_rate` in this download.
    slow: Vec<bool>,
    /// Where the last body bytes came from, and from which mirror: resuming on that mirror
    /// asks that URL, not the mirror's base (a redirector may send elsewhere next time).
    resume_at: Option<(usize, Url)>,
    /// The URL the body came from when it was not the mirror's own (a redirect), for the log.
    via: Option<Url>,
    /// Set by [`Job::verify`] once a complete body passed its checks: for a repo db, its
    /// parsed index (handed to the catalog and to [`crate::cache::republish`] when published).
    admitted: Option<Option<Arc<RepoIndex>>>,
    started: Instant,
}

impl<'a> Job<'a> {
    pub(crate) fn new(
        ctx: &'a FetchContext,
        pool: &'a MirrorPool,
        client: awc::Client,
        download: &'a Download,
        conditional: Option<Validators>,
        expected: Option<Expected>,
    ) -> Job<'a> {
        Job {
            ctx,
            pool,
            client,
            download,
            conditional: conditional.filter(|v| !v.is_empty()),
            received: Validators::default(),
            expected: Expectation::given(expected),
            partial: PartialFile::new(download),
            order: pool.order(&download.path),
            slow: vec![false; pool.mirrors.len()],
            resume_at: None,
            via: None,
            admitted: None,
            started: Instant::now(),
        }
    }

    /// What the body must be, or the lookup that will tell ([`expect`]).
    pub(crate) fn expecting(mut self, expected: Expectation) -> Self {
        self.expected = expected;
        self
    }

    /// Ask only mirror `i` (the other file of a db pair comes from the same mirror).
    pub(crate) fn only_from(mut self, i: usize) -> Self {
        self.order = vec![i];
        self
    }

    /// The validators of what this job has: the body received, or the copy a 304 confirmed.
    pub(crate) fn validators(&self, fetched: &Fetched) -> Option<&Validators> {
        match fetched {
            Fetched::Complete(_) => Some(&self.received),
            Fetched::NotModified(_) => self.conditional.as_ref(),
            _ => None,
        }
        .filter(|v| !v.is_empty())
    }

    /// sha256 (hex) of the body received so far: hashed while it arrived when a digest was
    /// wanted then, else read back from the partial file (off the event loop).
    pub(crate) async fn body_sha256(&self) -> std::io::Result<String> {
        if let Some(digest) = self.partial.sha256() {
            return Ok(digest);
        }
        let file = self.partial.reader()?;
        actix_web::rt::task::spawn_blocking(move || super::partial::sha256_of(file))
            .await
            .map_err(std::io::Error::other)?
    }

    /// Fetch, verify, then publish and tell clients.
    pub(crate) async fn run(&mut self) {
        let fetched = self.fetch().await;
        self.conclude(fetched).await;
    }

    /// Try mirrors until one delivers the whole body (or confirms the cached copy).
    pub(crate) async fn fetch(&mut self) -> Fetched {
        let path = self.download.path.clone();
        let n = self.order.len().max(1);
        // Attempts that deliver nothing use this budget; leaving a slow mirror does not.
        let max_failures = 3 * n + 3;
        let (mut failures, mut no_progress, mut not_found) = (0usize, 0usize, 0usize);
        let mut pos = 0usize;
        let mut last_error = String::from("no mirror configured");
        while failures < max_failures && no_progress < n {
            let Some(&i) = self.order.get(pos % n) else {
                break;
            };
            self.download.mirror.store(i as u64, Ordering::Relaxed);
            let before = self.partial.written();
            let mut outcome = self.attempt(i, &path).await;
            if matches!(outcome, Attempt::NotOurs) {
                // The conditional request is dropped: the same mirror is asked for its version.
                outcome = self.attempt(i, &path).await;
            }
            self.partial.notify();
            let mirror = &self.pool.mirrors[i].url;
            match outcome {
                Attempt::Complete => return Fetched::Complete(i),
                Attempt::NotModified => return Fetched::NotModified(i),
                Attempt::NotFound => {
                    log::debug!("{mirror} has no {path}");
                    not_found += 1;
                    failures += 1;
                    pos += 1;
                }
                Attempt::NotOurs => {
                    last_error = format!("{mirror}: answered 304 twice");
                    failures += 1;
                    pos += 1;
                }
                Attempt::Slow(rate) => {
                    self.slow[i] = true;
                    if let Some(j) = self.faster_candidate(i) {
                        log::info!(
                            "{path}: {mirror} is too slow ({}/s, under min_rate); switching to {} \
                             at byte {}",
                            bytesize::ByteSize(rate),
                            self.pool.mirrors[j].url,
                            self.partial.written()
                        );
                        pos = self.order.iter().position(|&k| k == j).unwrap_or(pos);
                    }
                }
                Attempt::Failed(e) => {
                    last_error = format!("{mirror}: {e}");
                    self.mirror_failed(i, &e);
                    failures += 1;
                    pos += 1;
                }
                Attempt::Fatal(e) => {
                    let why = format!("{mirror}: {e}");
                    self.mirror_failed(i, &e);
                    return self.failed(Failure::upstream(&why));
                }
                Attempt::Refused(e) => return self.failed(Failure::upstream(&e)),
                Attempt::Unverifiable(why) => return self.unverifiable(&why),
                Attempt::Storage(e) => return self.storage_failed(e),
            }
            if self.partial.written() > before {
                no_progress = 0;
                not_found = 0;
            } else {
                no_progress += 1;
            }
        }
        self.partial.discard();
        if self.partial.written() == 0 && not_found >= n {
            Fetched::NotFound
        } else {
            self.failed(Failure::upstream(&last_error))
        }
    }

    /// Act on how [`Job::fetch`] ended: verify and publish a complete body, or record the
    /// outcome; then tell clients.
    pub(crate) async fn conclude(&mut self, fetched: Fetched) {
        let path = self.download.path.clone();
        match self.verify(fetched).await {
            Fetched::Complete(i) => self.publish(i, &path).await,
            Fetched::NotModified(i) => {
                log::info!(
                    "revalidated {path}: not modified ({})",
                    self.pool.mirrors[i].url
                );
                self.pool.record_success(i, &path);
                self.ctx.store.mark_validated(&path);
                self.download.finish(Phase::NotModified);
            }
            Fetched::NotFound => {
                log::info!("{path}: not found on any mirror");
                self.ctx.store.mark_not_found(&path);
                self.download.finish(Phase::NotFound);
            }
            Fetched::Failed(failure) => {
                self.partial.discard();
                self.download.finish(Phase::Failed(failure));
            }
        }
    }

    /// The first mirror, in this download's order, that is healthy and not yet found slow.
    fn faster_candidate(&self, i: usize) -> Option<usize> {
        self.order
            .iter()
            .copied()
            .find(|&j| j != i && !self.slow[j] && self.pool.is_healthy(j))
    }

    /// A local I/O error while doing `op`: logged in full (with its path) here, classified
    /// for clients and status.
    fn storage(&self, op: &'static str, e: std::io::Error) -> Attempt {
        log::error!(
            "cache storage error while downloading {}: {op}: {e}",
            self.download.path
        );
        Attempt::Storage(StorageError::new(op, &e))
    }

    /// Mirror `i` failed with `e`: count it and cool the mirror down.
    fn mirror_failed(&self, i: usize, e: &str) {
        self.ctx
            .metrics
            .mirror_failures
            .with_label_values(&[&self.pool.upstream])
            .inc();
        self.pool.record_failure(i, e);
    }

    /// The download failed with `failure`: the partial is deleted (clients are told by
    /// [`Job::conclude`]).
    fn failed(&mut self, failure: Failure) -> Fetched {
        self.partial.discard();
        log::warn!(
            "download of {} failed after {} bytes: {failure}",
            self.download.path,
            self.partial.written()
        );
        Fetched::Failed(failure)
    }

    /// The repo db entry of the package is malformed (`why`, found while the body came): the
    /// download ends, no mirror is blamed, clients are refused (issue 16's fail-closed rule).
    fn unverifiable(&mut self, why: &str) -> Fetched {
        self.partial.discard();
        let msg = expect::malformed_message(&self.download.path, why);
        log::warn!("{msg}");
        Fetched::Failed(Failure::Unverifiable(Arc::from(msg.as_str())))
    }

    /// The cache could not store the file: no mirror is blamed, the admin sees it in status
    /// and metrics, clients get a generic 507 or 500.
    fn storage_failed(&mut self, e: StorageError) -> Fetched {
        self.ctx
            .metrics
            .local_errors
            .with_label_values(&[e.kind.as_str()])
            .inc();
        self.ctx.store.note_error(&e);
        self.partial.discard();
        log::error!(
            "download of {} stopped after {} bytes: the cache cannot store it ({e}); \
             mirrors are not blamed",
            self.download.path,
            self.partial.written()
        );
        Fetched::Failed(Failure::Storage(e))
    }
}
