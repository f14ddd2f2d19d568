//! The end of a [`Job`] whose body is complete: [`Job::verify`] (size and sha256 against the
//! repo db — as it was when the download started, and as it is now — and the content checks of
//! [`admit`]), then [`Job::publish`]: a new db first removes the cached packages it describes
//! differently ([`crate::cache::republish`]), then the file is renamed into place with the mirror's
//! validators, and clients are told.

use std::path::PathBuf;
use std::sync::Arc;

use super::{Fetched, Job};
use crate::cache::catalog::Verification;
use crate::cache::inflight::{Failure, Phase};
use crate::cache::store::StorageError;
use crate::config::mirror_url::Shown;
use crate::repo::db_index::RepoIndex;
use crate::repo::path::{FileKind, RepoPath};
use crate::upstream::fetch::admit::{self, Refusal};
use crate::upstream::fetch::lookup_expected;
use crate::upstream::fetch::partial::Finished;

impl Job<'_> {
    /// Check a complete body before anything is published (a no-op for other outcomes, and
    /// for a body already verified): `Failed` when it must not be published.
    pub(crate) async fn verify(&mut self, fetched: Fetched) -> Fetched {
        let Fetched::Complete(i) = fetched else {
            return fetched;
        };
        if self.admitted.is_some() {
            return fetched;
        }
        let path = self.download.path.clone();
        let mirror = &self.pool.mirrors[i].url;
        let written = self.partial.written();
        let digest = self.partial.sha256();
        if let Some(exp) = &self.expected {
            if exp.size != written || !exp.sha256.eq_ignore_ascii_case(&digest) {
                let why = format!(
                    "{mirror} served {path} with {written} bytes / sha256 {digest}, but the repo db says {} bytes / sha256 {}; discarded",
                    exp.size, exp.sha256
                );
                self.mirror_failed(i, "served a file that does not match the repo db");
                log::error!("{why}");
                return self.failed(Failure::upstream(&why));
            }
        }
        if let Err(why) = self.still_listed_so(&path, &digest).await {
            return self.failed(Failure::upstream(&why));
        }
        let file = match self.partial.reader() {
            Ok(f) => f,
            Err(e) => {
                log::error!("cache storage error for {path}: read downloaded file: {e}");
                return self.storage_failed(StorageError::new("read downloaded file", &e));
            }
        };
        // Parsing a db is blocking work.
        let p2 = path.clone();
        let checked =
            actix_web::rt::task::spawn_blocking(move || admit::check_content(&p2, &file)).await;
        match checked {
            Ok(Ok(index)) => {
                self.admitted = Some(index.map(Arc::new));
                fetched
            }
            Ok(Err(Refusal::Content(why))) => {
                self.mirror_failed(i, &why);
                self.failed(Failure::upstream(&format!("{mirror}: {why}")))
            }
            Ok(Err(Refusal::Io(e))) => {
                log::error!("cache storage error for {path}: read downloaded file: {e}");
                self.storage_failed(StorageError::new("read downloaded file", &e))
            }
            Err(e) => self.failed(Failure::Internal(Arc::from(
                format!("content check failed: {e}").as_str(),
            ))),
        }
    }

    /// Does the package still match what the cached db says now? A db published while the
    /// download ran may have changed the entry (a package re-published under the same name):
    /// then these bytes are an old build, and are not published (the mirror is not blamed).
    async fn still_listed_so(&self, path: &RepoPath, digest: &str) -> Result<(), String> {
        if path.kind() != FileKind::Immutable {
            return Ok(());
        }
        match lookup_expected(self.ctx, path).await {
            Verification::Known(e) if e.size != self.partial.written() || !e.sha256.eq_ignore_ascii_case(digest) => Err(format!(
                "{path}: the repo db changed during the download (it now says {} bytes / sha256 {}); discarded",
                e.size, e.sha256
            )),
            Verification::Malformed(why) => Err(format!(
                "{path}: its repo db entry became malformed during the download ({why}); discarded"
            )),
            _ => Ok(()),
        }
    }

    /// Before a new db (its index `new`, to be published at `path`) replaces the cached one:
    /// remove the cached packages it describes differently ([`crate::cache::republish`]).
    async fn supersede(&self, path: &RepoPath, new: Arc<RepoIndex>) {
        let (catalog, old_db) = (self.ctx.catalog.clone(), self.ctx.store.final_path(path));
        let c = self.ctx;
        let old = move || catalog.index(&old_db);
        crate::cache::republish::before_db_publish(
            &c.store,
            &c.index,
            &c.republished,
            path,
            new,
            old,
        )
        .await;
    }

    /// The body is complete and verified ([`Job::verify`]): publish it, tell clients.
    pub(super) async fn publish(&mut self, i: usize, path: &RepoPath) {
        let pool = self.pool;
        let mirror = &pool.mirrors[i].url;
        let written = self.partial.written();
        let index = self.admitted.take().flatten();
        let Some(Finished {
            file: partial,
            meta,
        }) = self.partial.finish()
        else {
            let failed = self.failed(Failure::Internal(Arc::from("no partial file")));
            return self.conclude_failed(failed);
        };
        // Correct bytes: clients of a package may finish now (the fsync of a big file takes a
        // while). A db is released only once published: the next request (pacman -Sy, then
        // packages) must find it in the cache to verify packages against it.
        if path.kind() == FileKind::Immutable {
            self.download.set_verified();
        }
        let is_db = crate::cache::catalog::is_db_name(path.file_name());
        // A new db: cached packages it describes differently go first (a client that sees
        // the new db must not get an old build from the cache).
        if let (true, Some(new)) = (is_db, &index) {
            self.supersede(path, new.clone()).await;
        }
        // The fsync and rename run off this thread: it runs every download.
        let store = self.ctx.store.clone();
        let (p2, mtime) = (path.clone(), meta.last_modified);
        let validators = (path.kind() == FileKind::Mutable).then(|| self.received.clone());
        let published = actix_web::rt::task::spawn_blocking(move || {
            store.publish(partial, &p2, mtime, validators.as_ref())
        })
        .await;
        let dest: PathBuf = match published {
            Ok(Ok(dest)) => dest,
            Ok(Err(e)) => {
                log::error!("cache storage error for {path}: publish into the cache: {e}");
                let failed = self.storage_failed(StorageError::new("publish into the cache", &e));
                return self.conclude_failed(failed);
            }
            Err(e) => {
                let why = format!("publish task failed: {e}");
                let failed = self.failed(Failure::Internal(Arc::from(why.as_str())));
                return self.conclude_failed(failed);
            }
        };
        self.ctx.store.mark_validated(path);
        if is_db {
            self.ctx.catalog.db_published(&dest);
            if let Some(index) = index {
                self.ctx.catalog.remember(&dest, index);
            }
        }
        self.ctx
            .index
            .insert(&path.key(), written, meta.last_modified);
        // In the index first, then its clients' count: a client counted later goes there.
        let served = self.download.hand_over_served();
        self.ctx.index.add_hits(&path.key(), served);
        pool.record_success(i, path);
        let secs = self.started.elapsed().as_secs_f64();
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

    /// Tell clients of a failure found while publishing.
    fn conclude_failed(&mut self, failed: Fetched) {
        if let Fetched::Failed(failure) = failed {
            self.download.finish(Phase::Failed(failure));
        }
    }
}
