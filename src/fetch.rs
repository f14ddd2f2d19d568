//! The download task: upstream body → partial file → verify → publish.
//!
//! Every download runs on one dedicated fetch arbiter (a thread with its own event loop), not
//! on the worker of the client that caused it: awc is `!Send`, and a download must never
//! depend on a client — if every client goes away it still finishes and is cached.
//!
//! Steps of a download ([`Job::run`]):
//! 1. try mirrors in the pool's order; before the first body byte, connection errors,
//!    timeouts, 5xx and 404 move on to the next mirror;
//! 2. the first mirror that answers 200 creates the partial file and tells clients the length;
//! 3. body bytes are appended, hashed (sha256) and announced to clients as they arrive;
//! 4. a mirror that drops, stalls (no byte for `upstream_timeout`) or stays under `min_rate`
//!    is replaced by the next one, resuming with `Range: bytes=N-` (a 206 must match
//!    `Content-Range`; a 200 is consumed from the start and its first N bytes must equal ours);
//! 5. the complete file is checked (length, and size + sha256 from the repo db when known),
//!    then published by rename; on any failure the partial is deleted and clients are aborted.
//!
//! A cached mutable file is revalidated with the mirror's own validators
//! ([`crate::validators`]); a repo db and its `.sig` are fetched and published as one
//! ([`pair`]); publishing a db first removes cached packages it now describes
//! differently ([`crate::republish`]). [`Job::fetch`] and [`Job::conclude`] are the two halves of
//! [`Job::run`] that [`pair`] orders across the two files of a pair.

use std::cell::OnceCell;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use actix_rt::ArbiterHandle;
use awc::http::{header, StatusCode};
use futures::StreamExt;
use sha2::{Digest, Sha256};

use crate::cache_index::CacheIndex;
use crate::catalog::{Catalog, Verification};
use crate::inflight::{BodyMeta, Download, EntryGuard, Phase};
use crate::metrics::Metrics;
use crate::path::{FileKind, RepoPath};
use crate::store::Store;
use crate::upstream::{MirrorPool, Pools};
use crate::validators::Validators;

pub mod pair;
mod revalidate;

pub(crate) use revalidate::conditional_for;

/// Window over which a download's rate is compared with `min_rate`.
const SLOW_WINDOW: Duration = Duration::from_secs(10);
/// Clients are told of progress every this many bytes...
const NOTIFY_BYTES: u64 = 1 << 20;
/// ... or this long after bytes they have not heard of were written.
const NOTIFY_DELAY: Duration = Duration::from_millis(50);

pub use crate::catalog::Expected;

/// Shared settings and state of all download tasks.
#[derive(Debug)]
pub struct FetchContext {
    pub store: Arc<Store>,
    pub index: Arc<CacheIndex>,
    pub catalog: Arc<Catalog>,
    pub pools: Arc<Pools>,
    pub metrics: Arc<Metrics>,
    /// Connect / first byte / stall limit per mirror.
    pub timeout: Duration,
    /// Switch mirrors when a download stays under this rate (bytes/s).
    pub min_rate: Option<u64>,
    /// One revalidation per repo db + `.sig` pair at a time.
    pub pairs: pair::PairLocks,
    /// Packages removed because a db published since the last refresh changed their entry.
    pub republished: crate::republish::Journal,
}

/// One download to run.
pub struct FetchRequest {
    pub download: Arc<Download>,
    pub guard: EntryGuard,
    /// `Some` (the cached copy's mtime): revalidate a cached mutable file. The request then
    /// carries the validators the mirror sent with that copy, never this date.
    pub if_modified_since: Option<SystemTime>,
    /// What the file must be; when `None`, the cached repo db of its directory is asked.
    pub expected: Option<Expected>,
}

/// Starts download tasks on the fetch arbiters (one thread per core, downloads spread
/// round-robin: receiving, hashing and writing bodies is real CPU work).
#[derive(Clone)]
pub struct Fetcher {
    arbiters: Arc<Vec<ArbiterHandle>>,
    next: Arc<std::sync::atomic::AtomicUsize>,
    ctx: Arc<FetchContext>,
}

thread_local! {
    /// The fetch arbiter's HTTP client (awc clients are `!Send`, one per thread).
    static CLIENT: OnceCell<awc::Client> = const { OnceCell::new() };
}

fn build_client(timeout: Duration) -> awc::Client {
    let connector = awc::Connector::new().timeout(timeout).limit(256);
    awc::Client::builder()
        .connector(connector)
        // Our own timeouts apply per phase (head, each chunk); awc's would cut long bodies.
        .disable_timeout()
        // Never follow a mirror to a host that is not configured.
        .disable_redirects()
        .add_default_header((
            header::USER_AGENT,
            concat!("pkgstash/", env!("CARGO_PKG_VERSION")),
        ))
        .finish()
}

impl Fetcher {
    /// Start the fetch arbiters. Must be called inside a running actix `System`.
    pub fn new(ctx: Arc<FetchContext>) -> Fetcher {
        let n = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .clamp(1, 8);
        let arbiters = (0..n).map(|_| actix_rt::Arbiter::new().handle()).collect();
        Fetcher {
            arbiters: Arc::new(arbiters),
            next: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
            ctx,
        }
    }

    pub fn context(&self) -> &Arc<FetchContext> {
        &self.ctx
    }

    /// Run `req` on the fetch arbiter. If the arbiter is gone (shutdown), the request's guard
    /// is dropped, which fails the download for its clients.
    pub fn start(&self, req: FetchRequest) {
        let ctx = self.ctx.clone();
        let i = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % self.arbiters.len();
        let accepted = self.arbiters[i].spawn_fn(move || {
            actix_rt::spawn(async move {
                let FetchRequest {
                    download,
                    guard,
                    if_modified_since,
                    expected,
                } = req;
                let Some(pool) = ctx.pools.get(download.path.upstream()).cloned() else {
                    download.finish(Phase::NotFound);
                    drop(guard);
                    return;
                };
                let client = CLIENT.with(|c| c.get_or_init(|| build_client(ctx.timeout)).clone());
                let revalidate = if_modified_since.is_some();
                if let Some(pair) = pair::Pair::of(&download.path) {
                    pair::run(&ctx, &pool, client, &download, pair, revalidate).await;
                    drop(guard);
                    return;
                }
                let expected = match expected {
                    Some(e) => Some(e),
                    None => match lookup_expected(&ctx, &download.path).await {
                        Verification::Known(e) => Some(e),
                        Verification::Unknown => None,
                        Verification::Malformed(why) => {
                            refuse_malformed(&download, &why);
                            drop(guard);
                            return;
                        }
                    },
                };
                let conditional = match revalidate {
                    true => conditional_for(&ctx, &download.path).await,
                    false => None,
                };
                let mut job = Job::new(&ctx, &pool, client, &download, conditional, expected);
                job.run().await;
                drop(guard);
            });
        });
        if !accepted {
            log::error!("fetch arbiter is not running; cannot download");
        }
    }
}

/// A package whose repo db entry is malformed is not fetched: serving it unverified would
/// treat the db as if it did not list it. The client gets a 502 naming the entry (pacman then
/// tries its next `Server`); the mirror is not blamed.
fn refuse_malformed(download: &Download, why: &str) {
    let msg = format!(
        "{}: its repo db entry is malformed ({why}); not serving it unverified",
        download.path
    );
    log::warn!("{msg}");
    download.finish(Phase::Failed(Arc::from(msg.as_str())));
}

/// Ask the catalog (off the event loop: it may parse a db) what a package must be.
async fn lookup_expected(ctx: &FetchContext, path: &RepoPath) -> Verification {
    if path.kind() != FileKind::Immutable {
        return Verification::Unknown;
    }
    let catalog = ctx.catalog.clone();
    let Some(dir) = ctx.store.final_path(path).parent().map(|d| d.to_path_buf()) else {
        return Verification::Unknown;
    };
    let name = path.file_name().to_string();
    tokio::task::spawn_blocking(move || catalog.verification(&dir, &name))
        .await
        .unwrap_or(Verification::Unknown)
}

/// How one attempt on one mirror ended.
enum Attempt {
    Complete,
    NotModified,
    /// A 304 for another version than ours ([`Validators::confirmed_by`]): ask the same mirror
    /// again, unconditionally.
    NotOurs,
    NotFound,
    /// The mirror failed (counts against its health); try the next one.
    Failed(String),
}

/// How fetching one file from the pool ended, before anything is published or told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fetched {
    /// The whole body is in the partial file; from mirror `i`.
    Complete(usize),
    /// Mirror `i` confirmed the cached copy.
    NotModified(usize),
    /// Every mirror answered 404.
    NotFound,
    /// No mirror could deliver it: the last error.
    Failed(String),
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
    /// Only this mirror is asked (the other file of a db pair comes from the same mirror).
    only: Option<usize>,
    expected: Option<Expected>,
    partial: Option<tempfile::NamedTempFile>,
    written: u64,
    /// `written` as clients last heard it, and when.
    notified: u64,
    notified_at: Instant,
    hasher: Sha256,
    meta: Option<BodyMeta>,
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
            only: None,
            expected,
            partial: None,
            written: 0,
            notified: 0,
            notified_at: Instant::now(),
            hasher: Sha256::new(),
            meta: None,
            started: Instant::now(),
        }
    }

    /// Ask only mirror `i`.
    pub(crate) fn only_from(mut self, i: usize) -> Self {
        self.only = Some(i);
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

    /// sha256 (hex) of the body received so far.
    pub(crate) fn body_sha256(&self) -> String {
        hex::encode(self.hasher.clone().finalize())
    }

    /// Fetch, then publish and tell clients.
    pub(crate) async fn run(&mut self) {
        let fetched = self.fetch().await;
        self.conclude(fetched).await;
    }

    /// Try mirrors until one delivers the whole body (or confirms the cached copy).
    pub(crate) async fn fetch(&mut self) -> Fetched {
        let path = self.download.path.clone();
        let order = match self.only {
            Some(i) => vec![i],
            None => self.pool.order(&path),
        };
        let n = order.len().max(1);
        let max_attempts = 3 * n + 3;
        let mut no_progress = 0usize;
        let mut not_found = 0usize;
        let mut last_error = String::from("no mirror configured");
        for attempt in 0..max_attempts {
            if no_progress >= n {
                break;
            }
            let i = order[attempt % n];
            self.download
                .mirror
                .store(i as u64, std::sync::atomic::Ordering::Relaxed);
            let before = self.written;
            let mut attempt = self.attempt(i, &path).await;
            if matches!(attempt, Attempt::NotOurs) {
                attempt = self.attempt(i, &path).await;
            }
            self.notify_progress();
            match attempt {
                Attempt::Complete => return Fetched::Complete(i),
                Attempt::NotModified => return Fetched::NotModified(i),
                Attempt::NotFound => {
                    log::debug!("{} has no {path}", self.pool.mirrors[i].base);
                    not_found += 1;
                }
                Attempt::NotOurs => {
                    last_error = format!("{}: answered 304 twice", self.pool.mirrors[i].base);
                }
                Attempt::Failed(e) => {
                    self.ctx
                        .metrics
                        .mirror_failures
                        .with_label_values(&[&self.pool.upstream])
                        .inc();
                    self.pool.record_failure(i, &e);
                    last_error = format!("{}: {e}", self.pool.mirrors[i].base);
                }
            }
            if self.written > before {
                no_progress = 0;
                not_found = 0;
            } else {
                no_progress += 1;
            }
        }
        self.partial = None; // deletes the partial file
        if self.written == 0 && not_found >= n {
            Fetched::NotFound
        } else {
            log::warn!(
                "download of {path} failed after {} bytes: {last_error}",
                self.written
            );
            Fetched::Failed(last_error)
        }
    }

    /// Act on how [`Job::fetch`] ended: publish a complete body, or record the outcome; then
    /// tell clients.
    pub(crate) async fn conclude(&mut self, fetched: Fetched) {
        let path = self.download.path.clone();
        match fetched {
            Fetched::Complete(i) => self.complete(i, &path, self.started).await,
            Fetched::NotModified(i) => {
                log::info!(
                    "revalidated {path}: not modified ({})",
                    self.pool.mirrors[i].base
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
            Fetched::Failed(last_error) => {
                self.partial = None;
                self.download
                    .finish(Phase::Failed(Arc::from(last_error.as_str())));
            }
        }
    }

    /// One request to mirror `i`, resuming at `self.written`.
    async fn attempt(&mut self, i: usize, path: &RepoPath) -> Attempt {
        let url = self.pool.url(i, path);
        let timeout = self.ctx.timeout;
        let mut req = self.client.get(&url);
        if self.written > 0 {
            req = req.insert_header((header::RANGE, format!("bytes={}-", self.written)));
        } else if let Some(v) = &self.conditional {
            for h in v.conditional_headers() {
                req = req.insert_header(h);
            }
        }
        log::debug!("GET {url} (from byte {})", self.written);
        let mut resp = match tokio::time::timeout(timeout, req.send()).await {
            Err(_) => {
                return Attempt::Failed(format!(
                    "no response within {}",
                    humantime::format_duration(timeout)
                ))
            }
            Ok(Err(e)) => return Attempt::Failed(e.to_string()),
            Ok(Ok(r)) => r,
        };
        let status = resp.status();
        match status {
            StatusCode::NOT_MODIFIED if self.written == 0 && self.conditional.is_some() => {
                return self.not_modified(resp.headers());
            }
            StatusCode::NOT_FOUND | StatusCode::GONE => return Attempt::NotFound,
            StatusCode::OK | StatusCode::PARTIAL_CONTENT => {}
            s => return Attempt::Failed(format!("HTTP {}", s.as_u16())),
        }
        let headers = resp.headers();
        let is_html = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| {
                ct.trim_start()
                    .to_ascii_lowercase()
                    .starts_with("text/html")
            });
        if is_html && path.kind() == FileKind::Immutable {
            return Attempt::Failed("served an HTML page instead of a package".into());
        }
        let last_modified = headers
            .get(header::LAST_MODIFIED)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok());
        let content_length = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let (mut skip, total) = if status == StatusCode::PARTIAL_CONTENT {
            let range = headers
                .get(header::CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_content_range);
            match range {
                Some((start, end, total)) if start == self.written && end + 1 == total => {
                    (0, Some(total))
                }
                _ => {
                    return Attempt::Failed(
                        "206 with a Content-Range that does not match the request".into(),
                    )
                }
            }
        } else {
            (self.written, content_length)
        };
        if let (Some(known), Some(t)) = (self.meta.as_ref().and_then(|m| m.total), total) {
            if known != t {
                return Attempt::Failed(format!(
                    "file is {t} bytes here but {known} on the first mirror"
                ));
            }
        }
        if let (Some(exp), Some(t)) = (&self.expected, total) {
            if exp.size != t {
                return Attempt::Failed(format!(
                    "file is {t} bytes but the repo db says {}",
                    exp.size
                ));
            }
        }
        if self.partial.is_none() {
            // The mirror's current version is the truth, whatever its date: a repaired file
            // may well be older than the broken one it replaces.
            self.received = Validators::from_headers(headers);
            match self.open_partial(total, last_modified) {
                Ok(()) => {}
                Err(e) => return Attempt::Failed(format!("cannot create partial file: {e}")),
            }
        }
        let total = total.or(self.meta.as_ref().and_then(|m| m.total));
        let mut window_start = Instant::now();
        let mut window_bytes = 0u64;
        loop {
            // Bytes clients have not heard of yet are announced at the latest NOTIFY_DELAY
            // after the last announcement, also while upstream is quiet.
            let next = if self.written > self.notified {
                let due = self.notified_at + NOTIFY_DELAY;
                match tokio::time::timeout_at(due.into(), resp.next()).await {
                    Ok(c) => Ok(c),
                    Err(_) => {
                        self.notify_progress();
                        tokio::time::timeout(timeout, resp.next()).await
                    }
                }
            } else {
                tokio::time::timeout(timeout, resp.next()).await
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
                let offset = self.written - skip;
                if !self.matches_written(offset, &chunk[..n]) {
                    return Attempt::Failed(
                        "mirror ignored Range and its bytes differ from the first mirror's".into(),
                    );
                }
                skip -= n as u64;
                chunk = &chunk[n..];
                if chunk.is_empty() {
                    continue;
                }
            }
            if total.is_some_and(|t| self.written + chunk.len() as u64 > t) {
                return Attempt::Failed("body longer than Content-Length".into());
            }
            if let Err(e) = self.append(chunk) {
                return Attempt::Failed(format!("cannot write partial file: {e}"));
            }
            self.pool.add_bytes(i, chunk.len() as u64);
            self.ctx
                .metrics
                .upstream_bytes
                .with_label_values(&[&self.pool.upstream])
                .inc_by(chunk.len() as u64);
            if let Some(min) = self.ctx.min_rate {
                window_bytes += chunk.len() as u64;
                let elapsed = window_start.elapsed();
                if elapsed >= SLOW_WINDOW {
                    let rate = window_bytes as f64 / elapsed.as_secs_f64();
                    if rate < min as f64 && self.pool.another_healthy(i) {
                        return Attempt::Failed(format!(
                            "too slow: {}/s",
                            bytesize::ByteSize(rate as u64)
                        ));
                    }
                    window_start = Instant::now();
                    window_bytes = 0;
                }
            }
        }
        if skip > 0 {
            return Attempt::Failed("body shorter than what was already received".into());
        }
        if let Some(t) = total {
            if self.written < t {
                return Attempt::Failed(format!(
                    "body ended early at {} of {t} bytes",
                    self.written
                ));
            }
        }
        Attempt::Complete
    }

    /// Does the package still match what the cached db says now? A db published while the
    /// download ran may have changed the entry (a package re-published under the same name):
    /// then these bytes are an old build, and are not published (the mirror is not blamed).
    async fn still_listed_so(&self, path: &RepoPath, digest: &str) -> Result<(), String> {
        if path.kind() != FileKind::Immutable {
            return Ok(());
        }
        match lookup_expected(self.ctx, path).await {
            Verification::Known(e) if e.size != self.written || !e.sha256.eq_ignore_ascii_case(digest) => Err(format!(
                "{path}: the repo db changed during the download (it now says {} bytes / sha256 {}); discarded",
                e.size, e.sha256
            )),
            Verification::Malformed(why) => Err(format!(
                "{path}: its repo db entry became malformed during the download ({why}); discarded"
            )),
            _ => Ok(()),
        }
    }

    /// Before a new db (`new_db`, to be published at `path`) replaces the cached one: remove
    /// the cached packages it describes differently ([`crate::republish`]); its index, if read.
    async fn supersede(
        &self,
        path: &RepoPath,
        new_db: &std::path::Path,
    ) -> Option<Arc<crate::repoindex::RepoIndex>> {
        if !crate::catalog::is_db_name(path.file_name()) {
            return None;
        }
        let (catalog, old_db) = (self.ctx.catalog.clone(), self.ctx.store.final_path(path));
        let c = self.ctx;
        let old = move || catalog.index(&old_db);
        crate::republish::before_db_publish(&c.store, &c.index, &c.republished, path, new_db, old)
            .await
    }

    /// The `Last-Modified` clients get for this body ([`revalidate::served_last_modified`]).
    fn served_last_modified(
        &self,
        lm: Option<SystemTime>,
        total: Option<u64>,
    ) -> Option<SystemTime> {
        let path = &self.download.path;
        let cached = match path.kind() {
            FileKind::Mutable => std::fs::metadata(self.ctx.store.final_path(path)).ok(),
            FileKind::Immutable => None,
        };
        let served = revalidate::served_last_modified(lm, total, cached.as_ref());
        if served != lm {
            log::info!(
                "{path}: the mirror's new version is not dated after the cached one; served as of {}",
                served.map(httpdate::fmt_http_date).unwrap_or_default()
            );
        }
        served
    }

    /// A 304 to our conditional request: the cached copy is current only if the 304 agrees
    /// with the validators sent; otherwise it was about another version (a server comparing
    /// dates with "earlier or equal"), and the next attempt asks unconditionally.
    fn not_modified(&mut self, headers: &awc::http::header::HeaderMap) -> Attempt {
        match &self.conditional {
            Some(v) if v.confirmed_by(headers) => Attempt::NotModified,
            _ => {
                log::info!(
                    "{}: a 304 for another version than ours; asking again unconditionally",
                    self.download.path
                );
                self.conditional = None;
                Attempt::NotOurs
            }
        }
    }

    /// Create the partial file and let clients start.
    fn open_partial(
        &mut self,
        total: Option<u64>,
        last_modified: Option<SystemTime>,
    ) -> std::io::Result<()> {
        let last_modified = self.served_last_modified(last_modified, total);
        let partial = self.ctx.store.new_partial()?;
        let reader = partial.as_file().try_clone()?;
        self.download.set_file(Arc::new(reader));
        let meta = BodyMeta {
            total,
            last_modified,
        };
        self.download.set_streaming(meta.clone(), 0);
        self.meta = Some(meta);
        self.partial = Some(partial);
        Ok(())
    }

    fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let partial = self
            .partial
            .as_mut()
            .ok_or_else(|| std::io::Error::other("no partial file"))?;
        partial.as_file_mut().write_all(bytes)?;
        self.hasher.update(bytes);
        self.written += bytes.len() as u64;
        // Clients hear of progress in steps, not per socket read (a read is often a few KiB:
        // waking every tailing client for each would cost more than sending the bytes); the
        // first bytes at once, then every NOTIFY_BYTES, the rest by the body loop's deadline.
        if self.notified == 0 || self.written - self.notified >= NOTIFY_BYTES {
            self.notify_progress();
        }
        Ok(())
    }

    /// Tell clients how much is written (if that changed).
    fn notify_progress(&mut self) {
        if self.written != self.notified {
            self.download.advance(self.written);
            self.notified = self.written;
            self.notified_at = Instant::now();
        }
    }

    /// Are the bytes at `offset` of the partial file equal to `data`?
    fn matches_written(&self, offset: u64, data: &[u8]) -> bool {
        let Some(partial) = self.partial.as_ref() else {
            return false;
        };
        let mut buf = vec![0u8; data.len()];
        partial.as_file().read_exact_at(&mut buf, offset).is_ok() && buf == data
    }

    /// The body is complete: verify, publish, tell clients.
    async fn complete(&mut self, i: usize, path: &RepoPath, started: Instant) {
        let digest = hex::encode(std::mem::take(&mut self.hasher).finalize());
        if let Some(exp) = &self.expected {
            if exp.size != self.written || !exp.sha256.eq_ignore_ascii_case(&digest) {
                let why = format!(
                    "{} served {path} with {} bytes / sha256 {digest}, but the repo db says {} bytes / sha256 {}; discarded",
                    self.pool.mirrors[i].base, self.written, exp.size, exp.sha256
                );
                self.pool
                    .record_failure(i, "served a file that does not match the repo db");
                log::error!("{why}");
                self.partial = None;
                self.download.finish(Phase::Failed(Arc::from(why.as_str())));
                return;
            }
        }
        if let Err(why) = self.still_listed_so(path, &digest).await {
            log::warn!("{why}");
            self.partial = None;
            self.download.finish(Phase::Failed(Arc::from(why.as_str())));
            return;
        }
        let Some(partial) = self.partial.take() else {
            self.download
                .finish(Phase::Failed(Arc::from("no partial file")));
            return;
        };
        // A new db: cached packages it describes differently go first (a client that sees
        // the new db must not get an old build from the cache).
        let new_index = self.supersede(path, partial.path()).await;
        let mut meta = self.meta.clone().unwrap_or(BodyMeta {
            total: None,
            last_modified: None,
        });
        meta.total = Some(self.written);
        // Correct bytes: clients of a package may finish now (the fsync of a big file takes a
        // while). A db is released only once published: the next request (pacman -Sy, then
        // packages) must find it in the cache to verify packages against it.
        if path.kind() == crate::path::FileKind::Immutable {
            self.download.set_verified();
        }
        // The fsync + rename run off this thread: it runs every download.
        let store = self.ctx.store.clone();
        let (p2, mtime) = (path.clone(), meta.last_modified);
        let validators = (path.kind() == FileKind::Mutable).then(|| self.received.clone());
        let published = match actix_web::rt::task::spawn_blocking(move || {
            store.publish(partial, &p2, mtime, validators.as_ref())
        })
        .await
        {
            Ok(r) => r,
            Err(e) => Err(std::io::Error::other(format!("publish task failed: {e}"))),
        };
        let store = &self.ctx.store;
        match published {
            Ok(dest) => {
                store.mark_validated(path);
                if crate::catalog::is_db_name(path.file_name()) {
                    self.ctx.catalog.db_published(&dest);
                    if let Some(index) = new_index {
                        self.ctx.catalog.remember(&dest, index);
                    }
                }
                self.ctx
                    .index
                    .insert(&path.key(), self.written, meta.last_modified);
                self.pool.record_success(i, path);
                let secs = started.elapsed().as_secs_f64();
                self.ctx.metrics.download_seconds.observe(secs);
                log::info!(
                    "fetched {path} ({}) from {} in {:.1}s",
                    bytesize::ByteSize(self.written),
                    self.pool.mirrors[i].base,
                    secs
                );
                self.download.finish(Phase::Done(Arc::new(meta)));
            }
            Err(e) => {
                log::error!("cannot publish {path} into the cache: {e}");
                self.download.finish(Phase::Failed(Arc::from(
                    format!("cannot publish: {e}").as_str(),
                )));
            }
        }
    }
}

/// Parse `Content-Range: bytes START-END/TOTAL`.
pub fn parse_content_range(v: &str) -> Option<(u64, u64, u64)> {
    let rest = v.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (start, end) = range.split_once('-')?;
    let (start, end, total) = (
        start.trim().parse().ok()?,
        end.trim().parse().ok()?,
        total.trim().parse().ok()?,
    );
    (start <= end && end < total).then_some((start, end, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_parsing() {
        assert_eq!(
            parse_content_range("bytes 100-199/200"),
            Some((100, 199, 200))
        );
        assert_eq!(parse_content_range("bytes 0-0/1"), Some((0, 0, 1)));
        assert_eq!(parse_content_range("bytes 100-199/150"), None);
        assert_eq!(parse_content_range("bytes */200"), None);
        assert_eq!(parse_content_range("items 1-2/3"), None);
        assert_eq!(parse_content_range("bytes 5-4/10"), None);
    }
}
