//! The on-disk cache: `<cache_dir>/<upstream>/<rel>` mirrors the URL space, in-progress
//! downloads live in `<cache_dir>/.partial/` (same filesystem, so publishing is one `rename`).
//!
//! Invariants: a file at a final path is always complete and verified (it only ever gets there
//! by [`Store::publish`]: fsync file → rename → fsync dir, [`crate::durable`]'s rule); `.partial/` holds nothing across a
//! restart ([`Store::open`] empties it); a final path is only ever built from a [`RepoPath`].
//!
//! Also owns the in-memory freshness facts: when a mutable file was last revalidated, and
//! which paths upstream recently answered 404 for (a short negative cache); on disk, the
//! mirror's validators of each cached mutable file ([`Validators`], a JSON sidecar under
//! `.state/validators/<upstream>/<rel>` that names the file it describes by inode, size and
//! mtime, so a sidecar that outlived its file or a crash is never applied to another file);
//! and the disk's own trouble: [`StorageError`] classifies a local I/O failure (full,
//! read-only, other) so it is never blamed on a mirror, and the last one is kept for the
//! status page.
//!
//! The `.sig` of a repo db is as fresh as its db ([`SIG_FOLLOWS_DB`]): pacman asks for it right
//! after the db, and must get the signature of the db it just got.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::cache::validators::Validators;
use crate::repo::path::RepoPath;

/// A repo db's `.sig` counts as fresh for at least this long after the pair was validated,
/// whatever `db_max_age` (even 0): it is the signature of the db a client just received.
pub(crate) const SIG_FOLLOWS_DB: Duration = Duration::from_secs(30);

/// Directory (below the cache root) of the validators sidecars.
const VALIDATORS_DIR: &str = ".state/validators";

/// A sidecar: the validators, and the file they belong to.
#[derive(Debug, Serialize, Deserialize)]
struct Sidecar {
    validators: Validators,
    ino: u64,
    len: u64,
    mtime_ns: i128,
}

/// (inode, size, mtime in ns) of a file.
fn file_identity(meta: &fs::Metadata) -> (u64, u64, i128) {
    use std::os::unix::fs::MetadataExt;
    (
        meta.ino(),
        meta.len(),
        i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
    )
}

/// Is `p` the detached signature of a repo db (`core.db.sig`, `core.files.sig`, …)?
fn is_db_signature(p: &RepoPath) -> bool {
    p.file_name()
        .strip_suffix(".sig")
        .is_some_and(crate::repo::path::is_repo_db_name)
}

/// How long `p` stays fresh, given `max_age`.
fn freshness(p: &RepoPath, max_age: Duration) -> Duration {
    if is_db_signature(p) {
        max_age.max(SIG_FOLLOWS_DB)
    } else {
        max_age
    }
}

/// Name of the directory holding in-progress downloads.
pub(crate) const PARTIAL_DIR: &str = ".partial";

/// The cache directory.
#[derive(Debug)]
pub struct Store {
    root: PathBuf,
    partial_dir: PathBuf,
    /// key → when it was last fetched or revalidated upstream.
    validated: Mutex<HashMap<String, Instant>>,
    /// key → when every mirror answered 404.
    not_found: Mutex<HashMap<String, Instant>>,
    /// The last local storage error and when it happened.
    last_error: Mutex<Option<(SystemTime, StorageError)>>,
    /// Local storage errors since start.
    errors: AtomicU64,
}

/// What a local storage error means for the cache (and for the HTTP answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageErrorKind {
    /// The filesystem or the quota is full (`ENOSPC`, `EDQUOT`): 507 Insufficient Storage.
    NoSpace,
    /// The cache is on a read-only filesystem (`EROFS`).
    ReadOnly,
    /// Any other local I/O error (permissions, I/O error, …).
    Other,
}

impl StorageErrorKind {
    /// Short name for metrics labels and status output.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            StorageErrorKind::NoSpace => "no_space",
            StorageErrorKind::ReadOnly => "read_only",
            StorageErrorKind::Other => "other",
        }
    }
}

/// A local I/O failure while storing a download: the cache's fault, never a mirror's.
/// `detail` is the OS's text without any path (safe for the unauthenticated status page);
/// the log line written where it happened has the full error with its path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{op}: {detail}")]
pub struct StorageError {
    pub kind: StorageErrorKind,
    /// What was being done, e.g. "write partial file".
    pub op: &'static str,
    pub detail: Arc<str>,
}

impl StorageError {
    /// Classify `e`, which happened while doing `op`.
    pub(crate) fn new(op: &'static str, e: &io::Error) -> StorageError {
        use rustix::io::Errno;
        let code = os_code(e);
        let errno = code.map(Errno::from_raw_os_error);
        let kind = if errno.is_some_and(|n| n == Errno::NOSPC || n == Errno::DQUOT)
            || matches!(
                e.kind(),
                io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
            ) {
            StorageErrorKind::NoSpace
        } else if errno == Some(Errno::ROFS) || e.kind() == io::ErrorKind::ReadOnlyFilesystem {
            StorageErrorKind::ReadOnly
        } else {
            StorageErrorKind::Other
        };
        let detail = match code {
            Some(c) => io::Error::from_raw_os_error(c).to_string(),
            None => e.kind().to_string(),
        };
        StorageError {
            kind,
            op,
            detail: Arc::from(detail),
        }
    }
}

/// The OS error code of `e`, also when a library wrapped it (tempfile adds the path).
fn os_code(e: &io::Error) -> Option<i32> {
    if let Some(c) = e.raw_os_error() {
        return Some(c);
    }
    let mut source = e
        .get_ref()
        .map(|inner| inner as &(dyn std::error::Error + 'static));
    while let Some(err) = source {
        if let Some(c) = err
            .downcast_ref::<io::Error>()
            .and_then(io::Error::raw_os_error)
        {
            return Some(c);
        }
        source = err.source();
    }
    None
}

/// Reserve `len` bytes of disk for `file` without changing its length (`fallocate` with
/// `FALLOC_FL_KEEP_SIZE`), so a file that cannot fit fails before any byte is fetched.
/// Only a lack of space is an error: a filesystem without `fallocate` simply is not reserved.
pub(crate) fn reserve(file: &File, len: u64) -> io::Result<()> {
    if len == 0 {
        return Ok(());
    }
    match rustix::fs::fallocate(file, rustix::fs::FallocateFlags::KEEP_SIZE, 0, len) {
        Ok(()) => Ok(()),
        Err(e) if e == rustix::io::Errno::NOSPC || e == rustix::io::Errno::DQUOT => {
            Err(io::Error::from(e))
        }
        Err(e) => {
            log::debug!("cannot reserve {len} bytes for a download: {e}");
            Ok(())
        }
    }
}

/// Why the cache directory cannot be used.
#[derive(Debug, thiserror::Error)]
/// (The cause is in the message, so it is no `source`: printed once.)
#[error("cache_dir {path}: {what}: {cause}")]
pub struct StoreError {
    pub path: PathBuf,
    pub what: &'static str,
    pub cause: io::Error,
}

impl Store {
    /// Create the cache layout, check it is writable, and delete orphaned partial downloads
    /// left by a crash.
    pub fn open(root: &Path) -> Result<Store, StoreError> {
        let err = |what, cause| StoreError {
            path: root.to_path_buf(),
            what,
            cause,
        };
        fs::create_dir_all(root).map_err(|e| err("cannot create", e))?;
        let partial_dir = root.join(PARTIAL_DIR);
        fs::create_dir_all(&partial_dir).map_err(|e| err("cannot create .partial", e))?;
        let mut orphans = 0usize;
        for entry in fs::read_dir(&partial_dir).map_err(|e| err("cannot list .partial", e))? {
            let entry = entry.map_err(|e| err("cannot list .partial", e))?;
            let p = entry.path();
            let removed = if p.is_dir() {
                fs::remove_dir_all(&p)
            } else {
                fs::remove_file(&p)
            };
            match removed {
                Ok(()) => orphans += 1,
                Err(e) => log::warn!("cannot remove orphaned partial {}: {e}", p.display()),
            }
        }
        if orphans > 0 {
            log::info!(
                "removed {orphans} orphaned partial download(s) from {}",
                partial_dir.display()
            );
        }
        // Probe writability now, so a bad cache_dir fails at start, not on the first miss.
        tempfile::Builder::new()
            .prefix("probe-")
            .tempfile_in(&partial_dir)
            .map_err(|e| err("not writable", e))?;
        Ok(Store {
            root: root.to_path_buf(),
            partial_dir,
            validated: Mutex::new(HashMap::new()),
            not_found: Mutex::new(HashMap::new()),
            last_error: Mutex::new(None),
            errors: AtomicU64::new(0),
        })
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// The final path of a cached file.
    pub(crate) fn final_path(&self, p: &RepoPath) -> PathBuf {
        let mut out = self.root.join(p.upstream());
        for seg in p.rel().split('/') {
            out.push(seg);
        }
        out
    }

    /// A new, uniquely named partial file (deleted when dropped unless published).
    pub(crate) fn new_partial(&self) -> io::Result<tempfile::NamedTempFile> {
        tempfile::Builder::new()
            .prefix("dl-")
            .tempfile_in(&self.partial_dir)
    }

    /// Publish a complete, verified partial file at `p`'s final path: fsync, set mtime
    /// (upstream's `Last-Modified`), rename, fsync the directory; then record the mirror's
    /// `validators` of it (none: revalidated unconditionally next time).
    pub(crate) fn publish(
        &self,
        partial: tempfile::NamedTempFile,
        p: &RepoPath,
        mtime: Option<SystemTime>,
        validators: Option<&Validators>,
    ) -> io::Result<PathBuf> {
        let dest = self.final_path(p);
        if let Some(t) = mtime {
            partial.as_file().set_modified(t)?;
        }
        crate::durable::persist(partial, &dest)?;
        match validators.filter(|v| !v.is_empty()) {
            Some(v) => {
                if let Err(e) = self.save_validators(p, &dest, v) {
                    log::warn!("cannot record the validators of {p}: {e}");
                }
            }
            None => self.remove_validators(p),
        }
        Ok(dest)
    }

    /// Remember a local storage error (for status): the last one, and how many.
    pub(crate) fn note_error(&self, e: &StorageError) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        *self.last_error.lock() = Some((SystemTime::now(), e.clone()));
    }

    /// The last local storage error, when it happened, and how many there were since start.
    pub(crate) fn last_error(&self) -> Option<(SystemTime, StorageError, u64)> {
        let last = self.last_error.lock().clone()?;
        Some((last.0, last.1, self.errors.load(Ordering::Relaxed)))
    }

    fn sidecar_path(&self, p: &RepoPath) -> PathBuf {
        let mut out = self.root.join(VALIDATORS_DIR).join(p.upstream());
        for seg in p.rel().split('/') {
            out.push(seg);
        }
        out
    }

    fn save_validators(&self, p: &RepoPath, file: &Path, v: &Validators) -> io::Result<()> {
        let (ino, len, mtime_ns) = file_identity(&fs::metadata(file)?);
        let sidecar = Sidecar {
            validators: v.clone(),
            ino,
            len,
            mtime_ns,
        };
        crate::durable::write(&self.sidecar_path(p), &serde_json::to_vec(&sidecar)?)
    }

    /// The mirror's validators of the cached file of `p`, when they are known for this very
    /// file.
    pub(crate) fn validators(&self, p: &RepoPath) -> Option<Validators> {
        let meta = fs::metadata(self.final_path(p)).ok()?;
        let text = fs::read(self.sidecar_path(p)).ok()?;
        let sidecar: Sidecar = serde_json::from_slice(&text).ok()?;
        (file_identity(&meta) == (sidecar.ino, sidecar.len, sidecar.mtime_ns))
            .then_some(sidecar.validators)
    }

    /// Forget the validators of `p` (its cached file is gone or replaced).
    pub(crate) fn remove_validators(&self, p: &RepoPath) {
        match fs::remove_file(self.sidecar_path(p)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => log::warn!("cannot remove the validators of {p}: {e}"),
        }
    }

    /// Remove the cached file of `p` (and its validators). `Ok(false)`: it was not there —
    /// someone else removed it first, which is no error for whoever lost that race.
    pub(crate) fn remove(&self, p: &RepoPath) -> io::Result<bool> {
        let removed = match fs::remove_file(self.final_path(p)) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => return Err(e),
        };
        self.remove_validators(p);
        Ok(removed)
    }

    /// Remember that `p` was fetched or revalidated upstream just now.
    pub(crate) fn mark_validated(&self, p: &RepoPath) {
        self.validated.lock().insert(p.key(), Instant::now());
        self.not_found.lock().remove(&p.key());
    }

    /// Was `p` validated within `max_age` (for a repo db's `.sig`: within
    /// [`SIG_FOLLOWS_DB`] at least)?
    pub(crate) fn is_fresh(&self, p: &RepoPath, max_age: Duration) -> bool {
        let max_age = freshness(p, max_age);
        self.validated
            .lock()
            .get(&p.key())
            .is_some_and(|t| t.elapsed() < max_age)
    }

    /// Was `p` validated (or found missing) upstream after `since`?
    pub(crate) fn validated_since(&self, p: &RepoPath, since: Instant) -> bool {
        let key = p.key();
        let after = |t: Option<&Instant>| t.is_some_and(|t| *t > since);
        after(self.validated.lock().get(&key)) || after(self.not_found.lock().get(&key))
    }

    /// Remember that every mirror answered 404 for `p`.
    pub(crate) fn mark_not_found(&self, p: &RepoPath) {
        let mut map = self.not_found.lock();
        if map.len() > 100_000 {
            map.clear();
        }
        map.insert(p.key(), Instant::now());
    }

    /// Did every mirror answer 404 for `p` within `ttl` (for a repo db's `.sig`: within
    /// [`SIG_FOLLOWS_DB`] at least)?
    pub(crate) fn recently_not_found(&self, p: &RepoPath, ttl: Duration) -> bool {
        let ttl = freshness(p, ttl);
        self.not_found
            .lock()
            .get(&p.key())
            .is_some_and(|t| t.elapsed() < ttl)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn open_removes_orphans_and_publish_is_atomic() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("cache");
        fs::create_dir_all(root.join(PARTIAL_DIR)).expect("mkdir");
        fs::write(root.join(PARTIAL_DIR).join("dl-old"), b"half").expect("write");
        let store = Store::open(&root).expect("open");
        assert_eq!(fs::read_dir(root.join(PARTIAL_DIR)).expect("ls").count(), 0);

        let p = RepoPath::parse("/arch/core/os/x86_64/a-1-1-any.pkg.tar.zst").expect("path");
        let mut part = store.new_partial().expect("partial");
        part.write_all(b"payload").expect("write");
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let dest = store.publish(part, &p, Some(t), None).expect("publish");
        assert_eq!(dest, root.join("arch/core/os/x86_64/a-1-1-any.pkg.tar.zst"));
        assert_eq!(fs::read(&dest).expect("read"), b"payload");
        assert_eq!(
            fs::metadata(&dest)
                .expect("meta")
                .modified()
                .expect("mtime"),
            t
        );
        assert_eq!(fs::read_dir(root.join(PARTIAL_DIR)).expect("ls").count(), 0);
    }

    #[test]
    fn validators_belong_to_the_file_they_were_published_with() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let p = RepoPath::parse("/arch/core/os/x86_64/core.db").expect("path");
        let v = Validators {
            etag: Some("\"1-2\"".into()),
            last_modified: Some("Tue, 14 Nov 2023 22:13:20 GMT".into()),
        };
        let mut part = store.new_partial().expect("partial");
        part.write_all(b"db v1").expect("write");
        let dest = store.publish(part, &p, None, Some(&v)).expect("publish");
        assert_eq!(store.validators(&p), Some(v.clone()));
        // The file is replaced behind the sidecar's back: the sidecar no longer applies.
        fs::write(&dest, b"something else").expect("write");
        assert_eq!(store.validators(&p), None);
        // Published without validators: none.
        let mut part = store.new_partial().expect("partial");
        part.write_all(b"db v2").expect("write");
        store.publish(part, &p, None, Some(&v)).expect("publish");
        let mut part = store.new_partial().expect("partial");
        part.write_all(b"db v3").expect("write");
        store.publish(part, &p, None, None).expect("publish");
        assert_eq!(store.validators(&p), None);
        assert!(store.remove(&p).expect("remove"));
        assert!(!store.remove(&p).expect("already gone"));
    }

    #[test]
    fn a_db_signature_follows_its_db() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let sig = RepoPath::parse("/arch/core/os/x86_64/core.db.sig").expect("path");
        let other = RepoPath::parse("/arch/core/os/x86_64/lastupdate").expect("path");
        let before = Instant::now();
        store.mark_validated(&sig);
        store.mark_validated(&other);
        assert!(store.is_fresh(&sig, Duration::ZERO));
        assert!(!store.is_fresh(&other, Duration::ZERO));
        assert!(store.validated_since(&sig, before));
        assert!(!store.validated_since(&sig, Instant::now()));
    }

    #[test]
    fn unwritable_cache_dir_is_an_error() {
        let e = Store::open(Path::new("/proc/pkgstash-cannot-exist")).expect_err("must fail");
        assert!(e.to_string().contains("cache_dir"), "{e}");
    }

    #[test]
    fn storage_errors_are_classified_without_paths() {
        let full = io::Error::from_raw_os_error(rustix::io::Errno::NOSPC.raw_os_error());
        let e = StorageError::new("write partial file", &full);
        assert_eq!(e.kind, StorageErrorKind::NoSpace);
        assert_eq!(e.to_string(), format!("write partial file: {full}"));
        // tempfile wraps the OS error with the path: the kind is still found, the path dropped.
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("no-such-dir");
        let wrapped = tempfile::Builder::new()
            .tempfile_in(&missing)
            .expect_err("cannot create in a missing dir");
        assert!(wrapped.to_string().contains("no-such-dir"), "{wrapped}");
        let e = StorageError::new("create partial file", &wrapped);
        assert_eq!(e.kind, StorageErrorKind::Other);
        assert!(!e.to_string().contains("no-such-dir"), "{e}");
        let ro = io::Error::from_raw_os_error(rustix::io::Errno::ROFS.raw_os_error());
        assert_eq!(StorageError::new("x", &ro).kind, StorageErrorKind::ReadOnly);
        let quota = io::Error::from_raw_os_error(rustix::io::Errno::DQUOT.raw_os_error());
        assert_eq!(
            StorageError::new("x", &quota).kind,
            StorageErrorKind::NoSpace
        );

        let store = Store::open(dir.path()).expect("open");
        assert!(store.last_error().is_none());
        store.note_error(&StorageError::new("write partial file", &full));
        let (_, last, count) = store.last_error().expect("noted");
        assert_eq!((last.kind, count), (StorageErrorKind::NoSpace, 1));
    }

    #[test]
    fn freshness_and_negative_cache() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let p = RepoPath::parse("/arch/core/os/x86_64/core.db").expect("path");
        assert!(!store.is_fresh(&p, Duration::from_secs(30)));
        store.mark_validated(&p);
        assert!(store.is_fresh(&p, Duration::from_secs(30)));
        assert!(!store.is_fresh(&p, Duration::ZERO));
        store.mark_not_found(&p);
        assert!(store.recently_not_found(&p, Duration::from_secs(30)));
        store.mark_validated(&p);
        assert!(!store.recently_not_found(&p, Duration::from_secs(30)));
    }
}
