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
use crate::catalog::Catalog;
use crate::inflight::{BodyMeta, Download, EntryGuard, Phase};
use crate::metrics::Metrics;
use crate::path::{FileKind, RepoPath};
use crate::store::Store;
use crate::upstream::{MirrorPool, Pools};

/// Window over which a download's rate is compared with `min_rate`.
const SLOW_WINDOW: Duration = Duration::from_secs(10);
/// Clients are told of progress every this many bytes...
const NOTIFY_BYTES: u64 = 1 << 20;
/// ... or this long after bytes they have not heard of were written.
const NOTIFY_DELAY: Duration = Duration::from_millis(50);

/// What the repo db says a package must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub size: u64,
    pub sha256: String,
}

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
}

/// One download to run.
pub struct FetchRequest {
    pub download: Arc<Download>,
    pub guard: EntryGuard,
    /// For revalidating a cached mutable file: its mtime.
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
                let expected = match expected {
                    Some(e) => Some(e),
                    None => lookup_expected(&ctx, &download.path).await,
                };
                let client = CLIENT.with(|c| c.get_or_init(|| build_client(ctx.timeout)).clone());
                let job = Job {
                    ctx: &ctx,
                    pool: &pool,
                    client,
                    download: &download,
                    ims: if_modified_since,
                    expected,
                    partial: None,
                    written: 0,
                    notified: 0,
                    notified_at: Instant::now(),
                    hasher: Sha256::new(),
                    meta: None,
                };
                job.run().await;
                drop(guard);
            });
        });
        if !accepted {
            log::error!("fetch arbiter is not running; cannot download");
        }
    }
}

/// Ask the catalog (off the event loop: it may parse a db) what a package must be.
async fn lookup_expected(ctx: &Arc<FetchContext>, path: &RepoPath) -> Option<Expected> {
    if path.kind() != FileKind::Immutable {
        return None;
    }
    let catalog = ctx.catalog.clone();
    let dir = ctx.store.final_path(path).parent()?.to_path_buf();
    let name = path.file_name().to_string();
    tokio::task::spawn_blocking(move || catalog.expected(&dir, &name))
        .await
        .ok()
        .flatten()
}

/// How one attempt on one mirror ended.
enum Attempt {
    Complete,
    NotModified,
    NotFound,
    /// The mirror failed (counts against its health); try the next one.
    Failed(String),
}

/// The state of one download across mirror attempts.
struct Job<'a> {
    ctx: &'a FetchContext,
    pool: &'a MirrorPool,
    client: awc::Client,
    download: &'a Download,
    ims: Option<SystemTime>,
    expected: Option<Expected>,
    partial: Option<tempfile::NamedTempFile>,
    written: u64,
    /// `written` as clients last heard it, and when.
    notified: u64,
    notified_at: Instant,
    hasher: Sha256,
    meta: Option<BodyMeta>,
}

impl Job<'_> {
    async fn run(mut self) {
        let path = self.download.path.clone();
        let started = Instant::now();
        let order = self.pool.order(&path);
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
            let attempt = self.attempt(i, &path).await;
            self.notify_progress();
            match attempt {
                Attempt::Complete => {
                    self.complete(i, &path, started).await;
                    return;
                }
                Attempt::NotModified => {
                    log::info!(
                        "revalidated {path}: not modified ({})",
                        self.pool.mirrors[i].base
                    );
                    self.pool.record_success(i, &path);
                    self.ctx.store.mark_validated(&path);
                    self.download.finish(Phase::NotModified);
                    return;
                }
                Attempt::NotFound => {
                    log::debug!("{} has no {path}", self.pool.mirrors[i].base);
                    not_found += 1;
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
            log::info!("{path}: not found on any mirror");
            self.ctx.store.mark_not_found(&path);
            self.download.finish(Phase::NotFound);
        } else {
            log::warn!(
                "download of {path} failed after {} bytes: {last_error}",
                self.written
            );
            self.download
                .finish(Phase::Failed(Arc::from(last_error.as_str())));
        }
    }

    /// One request to mirror `i`, resuming at `self.written`.
    async fn attempt(&mut self, i: usize, path: &RepoPath) -> Attempt {
        let url = self.pool.url(i, path);
        let timeout = self.ctx.timeout;
        let mut req = self.client.get(&url);
        if self.written > 0 {
            req = req.insert_header((header::RANGE, format!("bytes={}-", self.written)));
        } else if let Some(ims) = self.ims {
            req = req.insert_header((header::IF_MODIFIED_SINCE, httpdate::fmt_http_date(ims)));
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
            StatusCode::NOT_MODIFIED if self.written == 0 && self.ims.is_some() => {
                return Attempt::NotModified
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
        if let (Some(ims), Some(lm), 0) = (self.ims, last_modified, self.written) {
            if lm <= ims {
                // A mirror that lags behind ours: keep what we have.
                return Attempt::NotModified;
            }
        }
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
            // Without a length from upstream (a chunked body), the repo db's size is the
            // length clients are told (and held to: the body must end exactly there), so a
            // Range on the download in flight gets its 206.
            let known = total.or(self.expected.as_ref().map(|e| e.size));
            match self.open_partial(known, last_modified) {
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

    /// Create the partial file and let clients start.
    fn open_partial(
        &mut self,
        total: Option<u64>,
        last_modified: Option<SystemTime>,
    ) -> std::io::Result<()> {
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
        let Some(partial) = self.partial.take() else {
            self.download
                .finish(Phase::Failed(Arc::from("no partial file")));
            return;
        };
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
        let published =
            match actix_web::rt::task::spawn_blocking(move || store.publish(partial, &p2, mtime))
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
