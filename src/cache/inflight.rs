//! The in-flight registry: at most one download per cache key, however many clients.
//!
//! A [`Download`] is shared (`Arc`) by the fetch task that writes it and by every client that
//! tails it. The fetch task publishes [`Progress`] on a `tokio::sync::watch` channel; readers
//! wait on that channel (never poll the file) and read the partial file through the shared
//! file handle with positional reads, so renaming or unlinking the partial never races a reader.
//!
//! The registry map is a `parking_lot::Mutex<HashMap>` that is never held across an `.await`.
//! An entry is removed by [`EntryGuard`] when its fetch task ends — even by panic — and only
//! after the outcome (published file or failure) is visible on the channel.

use std::collections::HashMap;
use std::fs::File;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Instant, SystemTime};

use parking_lot::Mutex;
use tokio::sync::watch;

use crate::cache::store::StorageError;
use crate::repo::path::RepoPath;

/// What a client needs to answer once upstream has answered: length and date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyMeta {
    /// Total length, when upstream sent `Content-Length` (or `Content-Range`).
    pub total: Option<u64>,
    pub last_modified: Option<SystemTime>,
}

/// Where a download stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Looking for a mirror that answers.
    Connecting,
    /// Body bytes are arriving; `written` bytes of the partial file are final.
    Streaming(Arc<BodyMeta>),
    /// Complete, verified and published at its final path (`written` is the length).
    Done(Arc<BodyMeta>),
    /// Upstream says the cached copy (the conditional request's) is current.
    NotModified,
    /// Every mirror answered 404.
    NotFound,
    /// The file could not be delivered; the partial is gone.
    Failed(Failure),
}

/// Why a download failed: whose fault decides the client's answer (502, 507, 500).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// No mirror delivered a usable file; the text says what the last one did (for logs and
    /// reports: clients get a generic answer).
    #[error("{0}")]
    Upstream(Arc<str>),
    /// The cache could not store the file (disk full, read-only, …): not the mirrors' fault.
    #[error("cannot store the file in the cache: {0}")]
    Storage(StorageError),
    /// The download task itself went wrong (it ended without an outcome, …).
    #[error("{0}")]
    Internal(Arc<str>),
    /// A cached repo db lists the file, but its entry cannot be read: it is not fetched, as
    /// serving it unverified would treat the db as if it did not list it. Not the mirrors'
    /// fault (their health is left alone); the text names the entry (for logs).
    #[error("{0}")]
    Unverifiable(Arc<str>),
}

impl Failure {
    /// A failure of the mirrors, described by `why`.
    pub(crate) fn upstream(why: &str) -> Failure {
        Failure::Upstream(Arc::from(why))
    }
}

/// The value on a download's watch channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Progress {
    pub phase: Phase,
    /// Bytes of the partial file that are written and may be read.
    pub written: u64,
    /// Every byte is written and verified (length, and sha256 when the db knows it): clients
    /// may have the last byte even before the file is fsynced and published.
    pub verified: bool,
}

impl Progress {
    /// Has the download left `Connecting` (headers known, or an outcome)?
    pub(crate) fn answered(&self) -> bool {
        !matches!(self.phase, Phase::Connecting)
    }
}

/// The flag of `Download::served` saying the count went to the cache index.
const HANDED_OVER: u64 = 1 << 63;

/// One download of one file, shared by its fetch task and its clients.
#[derive(Debug)]
pub struct Download {
    pub path: RepoPath,
    pub started: Instant,
    /// The partial file, set once (before the phase becomes `Streaming`).
    file: OnceLock<Arc<File>>,
    tx: watch::Sender<Progress>,
    clients: AtomicUsize,
    /// `GET` requests answered from the growing file (the index counts them as hits of the
    /// file once it is published), and [`HANDED_OVER`] once the count went to the index.
    served: AtomicU64,
    /// Index of the mirror currently streaming (for status pages).
    pub mirror: AtomicU64,
}

impl Download {
    fn new(path: RepoPath) -> Download {
        let (tx, _rx) = watch::channel(Progress {
            phase: Phase::Connecting,
            written: 0,
            verified: false,
        });
        Download {
            path,
            started: Instant::now(),
            file: OnceLock::new(),
            tx,
            clients: AtomicUsize::new(0),
            served: AtomicU64::new(0),
            mirror: AtomicU64::new(0),
        }
    }

    /// A download outside the registry: the other file of a repo db pair, fetched with the
    /// requested one ([`crate::upstream::fetch::pair`]) — no client tails it.
    pub(crate) fn detached(path: RepoPath) -> Download {
        Download::new(path)
    }

    /// A receiver of progress updates.
    pub(crate) fn subscribe(&self) -> watch::Receiver<Progress> {
        self.tx.subscribe()
    }

    /// The current progress.
    pub(crate) fn progress(&self) -> Progress {
        self.tx.borrow().clone()
    }

    /// The shared handle of the partial file, once it exists.
    pub(crate) fn file(&self) -> Option<Arc<File>> {
        self.file.get().cloned()
    }

    /// Clients currently attached.
    /// Count a `GET` answered from this download's file; `false` when the count was already
    /// handed to the cache index ([`Download::hand_over_served`]): count it there.
    pub(crate) fn count_served(&self) -> bool {
        self.served
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n & HANDED_OVER == 0).then_some(n + 1)
            })
            .is_ok()
    }

    /// The `GET`s counted so far, for the cache index (the file is in it now); later ones are
    /// refused by [`Download::count_served`], so each is counted exactly once.
    pub(crate) fn hand_over_served(&self) -> u64 {
        self.served.fetch_or(HANDED_OVER, Ordering::AcqRel) & !HANDED_OVER
    }

    pub(crate) fn clients(&self) -> usize {
        self.clients.load(Ordering::Relaxed)
    }

    /// Count a client for as long as the returned guard lives.
    pub(crate) fn attach(self: &Arc<Self>) -> ClientGuard {
        self.clients.fetch_add(1, Ordering::Relaxed);
        ClientGuard(self.clone())
    }

    // ---- writer side (the fetch task) ----

    /// Set the partial file handle (first call wins).
    pub(crate) fn set_file(&self, file: Arc<File>) {
        let _ = self.file.set(file);
    }

    /// Headers are in: clients may start answering.
    pub(crate) fn set_streaming(&self, meta: BodyMeta, written: u64) {
        self.tx.send_replace(Progress {
            phase: Phase::Streaming(Arc::new(meta)),
            written,
            verified: false,
        });
    }

    /// `written` bytes are now in the partial file.
    pub(crate) fn advance(&self, written: u64) {
        self.tx.send_modify(|p| p.written = written);
    }

    /// The body is complete and verified; publishing follows.
    pub(crate) fn set_verified(&self) {
        self.tx.send_modify(|p| p.verified = true);
    }

    /// Final outcome.
    pub(crate) fn finish(&self, phase: Phase) {
        self.tx.send_modify(|p| p.phase = phase);
    }
}

/// Keeps a download's client count while a client is attached.
#[derive(Debug)]
pub(crate) struct ClientGuard(Arc<Download>);

impl Drop for ClientGuard {
    fn drop(&mut self) {
        self.0.clients.fetch_sub(1, Ordering::Relaxed);
    }
}

/// All downloads in flight, by cache key.
#[derive(Debug, Default)]
pub struct Registry {
    map: Mutex<HashMap<String, Arc<Download>>>,
}

/// Removes a download from the registry when dropped (normally at the end of its fetch task,
/// also on panic). If the task died without an outcome, clients see a failure.
#[derive(Debug)]
pub struct EntryGuard {
    registry: Arc<Registry>,
    download: Arc<Download>,
}

impl Drop for EntryGuard {
    fn drop(&mut self) {
        let p = self.download.progress();
        if matches!(p.phase, Phase::Connecting | Phase::Streaming(_)) {
            self.download
                .finish(Phase::Failed(Failure::Internal(Arc::from(
                    "download task ended unexpectedly",
                ))));
        }
        let key = self.download.path.key();
        let mut map = self.registry.map.lock();
        if map
            .get(&key)
            .is_some_and(|d| Arc::ptr_eq(d, &self.download))
        {
            map.remove(&key);
        }
    }
}

/// Result of [`Registry::join_or_start`].
pub(crate) enum Joined {
    /// A download for this key was already running.
    Existing(Arc<Download>),
    /// A new download was registered; the caller must start its fetch task with the guard.
    Started(Arc<Download>, EntryGuard),
}

impl Registry {
    /// Join the download of `path`, or register a new one. `still_needed` is called under the
    /// registry lock before a new download is registered; returning false (e.g. because the file
    /// was published a moment ago) yields `None`. A download that already failed (its task is
    /// just ending) is not joined: a request arriving after the failure gets a new attempt.
    pub(crate) fn join_or_start(
        self: &Arc<Self>,
        path: &RepoPath,
        still_needed: impl FnOnce() -> bool,
    ) -> Option<Joined> {
        let key = path.key();
        let mut map = self.map.lock();
        if let Some(d) = map.get(&key) {
            if !matches!(d.progress().phase, Phase::Failed(_)) {
                return Some(Joined::Existing(d.clone()));
            }
        }
        if !still_needed() {
            return None;
        }
        let d = Arc::new(Download::new(path.clone()));
        map.insert(key, d.clone());
        let guard = EntryGuard {
            registry: self.clone(),
            download: d.clone(),
        };
        Some(Joined::Started(d, guard))
    }

    /// The download of `path`, if one is running.
    pub(crate) fn get(&self, path: &RepoPath) -> Option<Arc<Download>> {
        self.map.lock().get(&path.key()).cloned()
    }

    /// A snapshot of every download in flight.
    pub(crate) fn snapshot(&self) -> Vec<Arc<Download>> {
        self.map.lock().values().cloned().collect()
    }

    /// Is this key being downloaded right now?
    pub(crate) fn contains_key(&self, key: &str) -> bool {
        self.map.lock().contains_key(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn served_gets_are_counted_once_before_or_after_the_hand_over() {
        let d = Download::detached(RepoPath::parse("/a/x-1-1-any.pkg.tar.zst").expect("path"));
        assert!(d.count_served());
        assert!(d.count_served());
        assert_eq!(d.hand_over_served(), 2);
        assert!(!d.count_served(), "later ones go to the index");
    }

    #[test]
    fn one_download_per_key_and_guard_removes_it() {
        let reg = Arc::new(Registry::default());
        let p = RepoPath::parse("/a/x-1-1-any.pkg.tar.zst").expect("path");
        let first = reg.join_or_start(&p, || true).expect("registered");
        let (d, guard) = match first {
            Joined::Started(d, g) => (d, g),
            Joined::Existing(_) => panic!("first must start"),
        };
        match reg.join_or_start(&p, || panic!("must not be asked")) {
            Some(Joined::Existing(d2)) => assert!(Arc::ptr_eq(&d, &d2)),
            _ => panic!("second must join"),
        }
        let mut rx = d.subscribe();
        drop(guard);
        assert!(reg.get(&p).is_none());
        // The task ended without an outcome: clients see a failure.
        assert!(matches!(rx.borrow_and_update().phase, Phase::Failed(_)));
        assert!(reg.join_or_start(&p, || false).is_none());
    }

    #[test]
    fn a_failed_download_is_not_joined() {
        let reg = Arc::new(Registry::default());
        let p = RepoPath::parse("/a/x-1-1-any.pkg.tar.zst").expect("path");
        let Some(Joined::Started(failed, old_guard)) = reg.join_or_start(&p, || true) else {
            panic!("first must start");
        };
        failed.finish(Phase::Failed(Failure::upstream("mirror broke")));
        let Some(Joined::Started(again, new_guard)) = reg.join_or_start(&p, || true) else {
            panic!("a failed download is not joined");
        };
        // The old task ending does not remove the new download.
        drop(old_guard);
        assert!(reg.get(&p).is_some_and(|d| Arc::ptr_eq(&d, &again)));
        drop(new_guard);
        assert!(reg.get(&p).is_none());
    }

    #[test]
    fn client_count_follows_guards() {
        let p = RepoPath::parse("/a/b").expect("path");
        let d = Arc::new(Download::new(p));
        let g1 = d.attach();
        let g2 = d.attach();
        assert_eq!(d.clients(), 2);
        drop(g1);
        drop(g2);
        assert_eq!(d.clients(), 0);
    }
}
