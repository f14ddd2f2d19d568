//! The download task: upstream body → partial file → verify → publish.
//!
//! Every download runs on one dedicated fetch arbiter (a thread with its own event loop), not
//! on the worker of the client that caused it: awc is `!Send`, and a download must never
//! depend on a client — if every client goes away it still finishes and is cached.
//!
//! Steps of a download (`job::Job::run`):
//! 1. try mirrors in the pool's order, following their redirects ([`request`]); before the
//!    first body byte, connection errors, timeouts, 5xx and 404 move on to the next mirror;
//! 2. the first mirror whose head passes [`head::check`] (status, framing, lengths) gets a
//!    partial file, with its declared length reserved on disk, and clients are told the length;
//! 3. body bytes are appended, hashed (sha256) and announced to clients as they arrive, never
//!    past a bound: the db's size, the declared length, else `max_unknown_size`;
//! 4. a mirror that drops or stalls (no byte for `upstream_timeout`) is replaced by the next
//!    one, resuming with `Range: bytes=N-` at the URL the body came from (a 206 must match
//!    `Content-Range`; a 200 is consumed from the start and its first N bytes must equal ours);
//!    one under `min_rate` is left for a mirror not yet tried in this download — a switch, not
//!    a failure: when every mirror is slow the download goes on where it is;
//! 5. the complete file is checked (length, size + sha256 from the repo db when known, and
//!    [`admit`]: never empty, dbs must parse within their bounds), then published by rename;
//!    on any failure the partial is deleted and clients are aborted.
//!
//! Whose fault a failure is decides what follows: a mirror's counts against its health and
//! moves on; the cache's own (a local I/O error: [`crate::cache::store::StorageError`]) leaves every
//! mirror alone, is not retried upstream, and reaches clients as a generic 507 or 500.
//!
//! A cached mutable file is revalidated with the mirror's own validators
//! ([`crate::cache::validators`], `revalidate`); a repo db and its `.sig` are fetched and published
//! as one ([`pair`]); publishing a db first removes cached packages it now describes
//! differently ([`crate::cache::republish`]). `Job::fetch` (the mirror loop), `Job::verify` and
//! `Job::conclude` (publish, or record the outcome) are the steps of `Job::run` that [`pair`]
//! orders across the two files of a pair.

pub(crate) mod admit;
mod expect;
pub(crate) mod head;
mod job;
pub(crate) mod pair;
mod partial;
pub(crate) mod request;
mod revalidate;

pub(crate) use revalidate::conditional_for;

use std::cell::OnceCell;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use actix_rt::ArbiterHandle;
use awc::http::header;

use crate::cache::catalog::{Catalog, Verification};
use crate::cache::index::CacheIndex;
use crate::cache::inflight::{Download, EntryGuard, Failure, Joined, Phase, Registry};
use crate::cache::store::Store;
use crate::metrics::Metrics;
use crate::repo::path::RepoPath;
use crate::upstream::pool::Pools;
use expect::Expectation;

pub use crate::cache::catalog::Expected;

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
    /// Largest download when no repo db gives the file's size (bytes).
    pub max_unknown_size: u64,
    /// One revalidation per repo db + `.sig` pair at a time.
    pub pairs: pair::PairLocks,
    /// Packages removed because a db published since the last refresh changed their entry.
    pub republished: crate::cache::republish::Journal,
    /// Downloads in flight: at most one per cache key.
    pub registry: Arc<Registry>,
}

/// How a caller came to a download: [`Fetcher::join_or_start`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A download of the file was already in flight.
    Joined,
    /// This caller registered the download and its fetch task was started.
    Started,
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
        // Redirects are followed by `request::send`, which keeps credentials on their host
        // and refuses schemes other than http(s).
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

    /// Join the download of `path` in flight, or register one and start its fetch task: the
    /// one place where the registry's "started" becomes a running task. `needed` is asked
    /// under the registry lock before a download is registered (`false`, e.g. because the
    /// file was published a moment ago: `None`). `if_modified_since` and `expected` are the
    /// [`FetchRequest`]'s, used only when this call starts the download.
    pub fn join_or_start(
        &self,
        path: &RepoPath,
        if_modified_since: Option<SystemTime>,
        expected: Option<Expected>,
        needed: impl FnOnce() -> bool,
    ) -> Option<(Arc<Download>, Role)> {
        match self.ctx.registry.join_or_start(path, needed)? {
            Joined::Existing(d) => Some((d, Role::Joined)),
            Joined::Started(d, guard) => {
                log::debug!("miss: {path}");
                self.start(FetchRequest {
                    download: d.clone(),
                    guard,
                    if_modified_since,
                    expected,
                });
                Some((d, Role::Started))
            }
        }
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
                // The upstream request does not wait for the catalog: what it does not know
                // from memory is looked up beside the request (`expect`).
                let expectation = match Expectation::start(&ctx, &download.path, expected) {
                    Ok(e) => e,
                    Err(why) => {
                        refuse_malformed(&download, &why);
                        drop(guard);
                        return;
                    }
                };
                let conditional = match revalidate {
                    true => conditional_for(&ctx, &download.path).await,
                    false => None,
                };
                job::Job::new(&ctx, &pool, client, &download, conditional, None)
                    .expecting(expectation)
                    .run()
                    .await;
                drop(guard);
            });
        });
        if !accepted {
            log::error!("fetch arbiter is not running; cannot download");
        }
    }
}

/// A package whose repo db entry is malformed is not fetched: serving it unverified would
/// treat the db as if it did not list it. The client gets a 502 saying the entry is malformed
/// (pacman then tries its next `Server`), the log names it; the mirror is not blamed.
fn refuse_malformed(download: &Download, why: &str) {
    let msg = expect::malformed_message(&download.path, why);
    log::warn!("{msg}");
    download.finish(Phase::Failed(Failure::Unverifiable(Arc::from(
        msg.as_str(),
    ))));
}

/// Ask the catalog (off the event loop: it may parse a db) what a package must be.
async fn lookup_expected(ctx: &FetchContext, path: &RepoPath) -> Verification {
    let catalog = ctx.catalog.clone();
    let Some((dir, name)) = expect::lookup_target(ctx, path) else {
        return Verification::Unknown;
    };
    unverifiable_if_unfinished(
        tokio::task::spawn_blocking(move || catalog.verification(&dir, &name)).await,
    )
}

/// A lookup that panicked (a db the parser chokes on) must not pass for "not listed": the
/// package would be served unverified.
fn unverifiable_if_unfinished(
    lookup: Result<Verification, tokio::task::JoinError>,
) -> Verification {
    lookup.unwrap_or_else(|e| Verification::Malformed(format!("its db could not be read: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicked_db_lookup_is_no_licence_to_serve_unverified() {
        let lookup = tokio::task::spawn_blocking(|| -> Verification { panic!("parser bug") });
        match unverifiable_if_unfinished(lookup.await) {
            Verification::Malformed(why) => assert!(why.contains("panic"), "{why}"),
            other => panic!("{other:?}"),
        }
    }
}
