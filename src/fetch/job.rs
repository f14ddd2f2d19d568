//! One download across mirror attempts: the [`Job`] a fetch task runs (the steps are in the
//! doc of [`super`]). An attempt ends in an [`Attempt`], and whose fault it is decides what
//! follows: a mirror's failure uses up the failure budget and moves on; a slow mirror is left
//! for one not yet tried, without a failure; a local storage error ends the download at once
//! and blames nobody upstream.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt;
use url::Url;

use super::admit::{self, NotPublished};
use super::head::{self, BodyPlan, Head, Known};
use super::partial::{Finished, PartialFile};
use super::request::{self, Ask};
use super::{Expected, FetchContext};
use crate::inflight::{Download, Failure, Phase};
use crate::mirror_url::Shown;
use crate::path::{FileKind, RepoPath};
use crate::store::StorageError;
use crate::upstream::MirrorPool;

/// Window over which a download's rate is compared with `min_rate`.
const SLOW_WINDOW: Duration = Duration::from_secs(10);

/// How one attempt on one mirror ended.
enum Attempt {
    Complete,
    NotModified,
    NotFound,
    /// Under `min_rate` (bytes/s measured) while a mirror not yet tried may be faster: move
    /// on. Not a failure: no cooldown, no use of the failure budget.
    Slow(u64),
    /// The mirror failed (counts against its health); try the next one.
    Failed(String),
    /// The mirror sent a body past its bound: counts against it, and ends the download (the
    /// bytes so far are suspect, so they are not resumed elsewhere).
    Fatal(String),
    /// The file is refused by policy (`max_unknown_size`): ends the download, no mirror blamed.
    Refused(String),
    /// The cache could not store the body: ends the download, no mirror blamed, no retry.
    Storage(StorageError),
}

/// The state of one download across mirror attempts.
pub(super) struct Job<'a> {
    ctx: &'a FetchContext,
    pool: &'a MirrorPool,
    client: awc::Client,
    download: &'a Download,
    ims: Option<SystemTime>,
    expected: Option<Expected>,
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
}

impl<'a> Job<'a> {
    pub(super) fn new(
        ctx: &'a FetchContext,
        pool: &'a MirrorPool,
        client: awc::Client,
        download: &'a Download,
        ims: Option<SystemTime>,
        expected: Option<Expected>,
    ) -> Job<'a> {
        Job {
            ctx,
            pool,
            client,
            download,
            ims,
            expected,
            partial: PartialFile::new(download),
            order: pool.order(&download.path),
            slow: vec![false; pool.mirrors.len()],
            resume_at: None,
            via: None,
        }
    }

    pub(super) async fn run(mut self) {
        let path = self.download.path.clone();
        let started = Instant::now();
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
            let outcome = self.attempt(i, &path).await;
            self.partial.notify();
            let mirror = &self.pool.mirrors[i].url;
            match outcome {
                Attempt::Complete => {
                    self.complete(i, &path, started).await;
                    return;
                }
                Attempt::NotModified => {
                    log::info!("revalidated {path}: not modified ({mirror})");
                    self.pool.record_success(i, &path);
                    self.ctx.store.mark_validated(&path);
                    self.download.finish(Phase::NotModified);
                    return;
                }
                Attempt::NotFound => {
                    log::debug!("{mirror} has no {path}");
                    not_found += 1;
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
                    self.fail(&path, Failure::upstream(&why));
                    return;
                }
                Attempt::Refused(e) => {
                    self.fail(&path, Failure::upstream(&e));
                    return;
                }
                Attempt::Storage(e) => {
                    self.storage_failed(&path, e);
                    return;
                }
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
            log::info!("{path}: not found on any mirror");
            self.ctx.store.mark_not_found(&path);
            self.download.finish(Phase::NotFound);
        } else {
            self.fail(&path, Failure::upstream(&last_error));
        }
    }

    /// The first mirror, in this download's order, that is healthy and not yet found slow.
    fn faster_candidate(&self, i: usize) -> Option<usize> {
        self.order
            .iter()
            .copied()
            .find(|&j| j != i && !self.slow[j] && self.pool.is_healthy(j))
    }

    /// One request to mirror `i` (redirects followed), resuming at the bytes written.
    async fn attempt(&mut self, i: usize, path: &RepoPath) -> Attempt {
        let mirror = &self.pool.mirrors[i].url;
        let written = self.partial.written();
        let resume = match &self.resume_at {
            Some((m, url)) if *m == i && written > 0 => Some(url.to_string()),
            _ => None,
        };
        let from_base = resume.is_none();
        let start = resume.unwrap_or_else(|| self.pool.url(i, path));
        let ask = Ask {
            url: &start,
            base: mirror.base(),
            credentials: mirror.credentials(),
            from: written,
            if_modified_since: self.ims,
            timeout: self.ctx.timeout,
        };
        let answer = match request::send(&self.client, &ask).await {
            Ok(a) => a,
            Err(e) => {
                self.forget_resume(from_base);
                return Attempt::Failed(e);
            }
        };
        if from_base {
            let target = answer
                .redirected
                .then(|| request::shown_base(&answer.url, &path.rel_url_encoded()));
            self.pool.record_redirect(i, target);
        }
        let request::Answer {
            response: mut resp,
            url,
            redirected,
        } = answer;
        let name = path.file_name();
        let known = Known {
            written,
            if_modified_since: self.ims,
            first_total: self.partial.total(),
            expected_size: self.expected.as_ref().map(|e| e.size),
            kind: path.kind(),
            never_empty: admit::never_empty(path),
            max_unknown_size: self.ctx.max_unknown_size,
        };
        let plan = match head::check(resp.status(), resp.version(), resp.headers(), &known) {
            Head::Body(plan) => plan,
            Head::NotModified => return Attempt::NotModified,
            Head::NotFound => return Attempt::NotFound,
            Head::Failed(e) => {
                self.forget_resume(from_base);
                return Attempt::Failed(e);
            }
            Head::Refused(e) => return Attempt::Refused(format!("{name}: {e}")),
        };
        if !self.partial.is_open() {
            let reserve = self.expected.as_ref().map(|e| e.size).or(plan.total);
            let opened =
                self.partial
                    .open(&self.ctx.store, reserve, plan.total, plan.last_modified);
            if let Err((op, e)) = opened {
                return self.storage(op, e);
            }
        }
        if redirected || !from_base {
            log::debug!("{path}: body from {} ({mirror})", Shown(url.clone()));
        }
        let outcome = self.body(i, path, &mut resp, plan).await;
        if self.partial.written() > written {
            self.via = (redirected || !from_base).then(|| url.clone());
            self.resume_at = Some((i, url));
        } else {
            self.forget_resume(from_base);
        }
        outcome
    }

    /// An attempt from a remembered URL failed: the next one on that mirror starts at its base.
    fn forget_resume(&mut self, from_base: bool) {
        if !from_base {
            self.resume_at = None;
        }
    }

    /// Receive the body of an accepted response.
    async fn body(
        &mut self,
        i: usize,
        path: &RepoPath,
        resp: &mut awc::ClientResponse,
        plan: BodyPlan,
    ) -> Attempt {
        let timeout = self.ctx.timeout;
        let mut skip = plan.skip;
        let total = plan.total.or(self.partial.total());
        let (bound, over) = head::bound(
            self.expected.as_ref().map(|e| e.size),
            total,
            self.ctx.max_unknown_size,
        );
        let mut window = RateWindow::new();
        loop {
            // Bytes clients have not heard of yet are announced at the latest NOTIFY_DELAY
            // after the last announcement, also while upstream is quiet.
            let next = match self.partial.notify_due() {
                Some(due) => match tokio::time::timeout_at(due.into(), resp.next()).await {
                    Ok(c) => Ok(c),
                    Err(_) => {
                        self.partial.notify();
                        tokio::time::timeout(timeout, resp.next()).await
                    }
                },
                None => tokio::time::timeout(timeout, resp.next()).await,
            };
            let chunk = match next {
                Err(_) => {
                    return Attempt::Failed(format!(
                        "stalled: no data for {}",
                        humantime::format_duration(timeout)
                    ))
                }
                Ok(None) => break,
                Ok(Some(Err(e))) => return Attempt::Failed(format!("body error: {e}")),
                Ok(Some(Ok(c))) => c,
            };
            let mut chunk = &chunk[..];
            if skip > 0 {
                let n = (skip as usize).min(chunk.len());
                let offset = self.partial.written() - skip;
                match self.partial.matches(offset, &chunk[..n]) {
                    Ok(true) => {}
                    Ok(false) => {
                        return Attempt::Failed(
                            "mirror ignored Range and its bytes differ from the first mirror's"
                                .into(),
                        )
                    }
                    Err(e) => return self.storage("read partial file", e),
                }
                skip -= n as u64;
                chunk = &chunk[n..];
                if chunk.is_empty() {
                    continue;
                }
            }
            if self.partial.written() + chunk.len() as u64 > bound {
                return Attempt::Fatal(over);
            }
            if let Err(e) = self.partial.append(chunk) {
                return self.storage("write partial file", e);
            }
            self.pool.add_bytes(i, chunk.len() as u64);
            self.ctx
                .metrics
                .upstream_bytes
                .with_label_values(&[&self.pool.upstream])
                .inc_by(chunk.len() as u64);
            if let (Some(min), Some(rate)) = (self.ctx.min_rate, window.add(chunk.len())) {
                if rate < min && self.faster_candidate(i).is_some() {
                    return Attempt::Slow(rate);
                }
            }
        }
        if skip > 0 {
            return Attempt::Failed("body shorter than what was already received".into());
        }
        let written = self.partial.written();
        if total.is_some_and(|t| written < t) {
            return Attempt::Failed(format!(
                "body ended early at {written} of {} bytes",
                total.unwrap_or_default()
            ));
        }
        if let Err(why) = admit::check_length(path, written, total.is_some()) {
            return Attempt::Failed(why);
        }
        Attempt::Complete
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

    /// End the download with `failure`: the partial is deleted, clients are aborted.
    fn fail(&mut self, path: &RepoPath, failure: Failure) {
        self.partial.discard();
        log::warn!(
            "download of {path} failed after {} bytes: {failure}",
            self.partial.written()
        );
        self.download.finish(Phase::Failed(failure));
    }

    /// The cache could not store the file: no mirror is blamed, the admin sees it in status
    /// and metrics, clients get a generic 507 or 500.
    fn storage_failed(&mut self, path: &RepoPath, e: StorageError) {
        self.ctx
            .metrics
            .local_errors
            .with_label_values(&[e.kind.as_str()])
            .inc();
        self.ctx.store.note_error(&e);
        self.partial.discard();
        log::error!(
            "download of {path} stopped after {} bytes: the cache cannot store it ({e}); \
             mirrors are not blamed",
            self.partial.written()
        );
        self.download.finish(Phase::Failed(Failure::Storage(e)));
    }

    /// The body is complete: verify, publish, tell clients.
    async fn complete(&mut self, i: usize, path: &RepoPath, started: Instant) {
        let pool = self.pool;
        let mirror = &pool.mirrors[i].url;
        let written = self.partial.written();
        let Some(Finished {
            file: partial,
            sha256: digest,
            meta,
        }) = self.partial.finish()
        else {
            self.fail(path, Failure::Internal(Arc::from("no partial file")));
            return;
        };
        if let Some(exp) = &self.expected {
            if exp.size != written || !exp.sha256.eq_ignore_ascii_case(&digest) {
                let why = format!(
                    "{mirror} served {path} with {written} bytes / sha256 {digest}, but the repo db says {} bytes / sha256 {}; discarded",
                    exp.size, exp.sha256
                );
                self.mirror_failed(i, "served a file that does not match the repo db");
                log::error!("{why}");
                drop(partial);
                self.fail(path, Failure::upstream(&why));
                return;
            }
        }
        // Correct bytes: clients of a package may finish now (the fsync of a big file takes a
        // while). A db is released only once published: the next request (pacman -Sy, then
        // packages) must find it in the cache to verify packages against it.
        if path.kind() == FileKind::Immutable {
            self.download.set_verified();
        }
        // The content checks, fsync and rename run off this thread: it runs every download.
        let store = self.ctx.store.clone();
        let (p2, mtime) = (path.clone(), meta.last_modified);
        let published = actix_web::rt::task::spawn_blocking(move || {
            admit::check_and_publish(&store, partial, &p2, mtime)
        })
        .await;
        let dest: PathBuf = match published {
            Ok(Ok(dest)) => dest,
            Ok(Err(NotPublished::Content(why))) => {
                self.mirror_failed(i, &why);
                self.fail(path, Failure::upstream(&format!("{mirror}: {why}")));
                return;
            }
            Ok(Err(NotPublished::Storage(op, e))) => {
                log::error!("cache storage error for {path}: {op}: {e}");
                self.storage_failed(path, StorageError::new(op, &e));
                return;
            }
            Err(e) => {
                let why = format!("publish task failed: {e}");
                self.fail(path, Failure::Internal(Arc::from(why.as_str())));
                return;
            }
        };
        self.ctx.store.mark_validated(path);
        if crate::catalog::is_db_name(path.file_name()) {
            self.ctx.catalog.db_published(&dest);
        }
        self.ctx
            .index
            .insert(&path.key(), written, meta.last_modified);
        pool.record_success(i, path);
        let secs = started.elapsed().as_secs_f64();
        self.ctx.metrics.download_seconds.observe(secs);
        let via = self
            .via
            .as_ref()
            .map(|u| format!(" via {}", Shown(u.clone())))
            .unwrap_or_default();
        log::info!(
            "fetched {path} ({}) from {mirror}{via} in {secs:.1}s",
            bytesize::ByteSize(written),
        );
        self.download.finish(Phase::Done(Arc::new(meta)));
    }
}

/// A download's rate, measured over windows of [`SLOW_WINDOW`].
struct RateWindow {
    start: Instant,
    bytes: u64,
}

impl RateWindow {
    fn new() -> RateWindow {
        RateWindow {
            start: Instant::now(),
            bytes: 0,
        }
    }

    /// Count `n` bytes; at the end of a window, its rate (bytes/s), and a new window starts.
    fn add(&mut self, n: usize) -> Option<u64> {
        self.bytes += n as u64;
        let elapsed = self.start.elapsed();
        if elapsed < SLOW_WINDOW {
            return None;
        }
        let rate = (self.bytes as f64 / elapsed.as_secs_f64()) as u64;
        *self = RateWindow::new();
        Some(rate)
    }
}
