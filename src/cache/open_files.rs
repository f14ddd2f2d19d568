//! Open handles of recently hit cache files, so a hit costs one `stat` instead of
//! `open` + `fstat` + `close` (what nginx's `open_file_cache` does).
//!
//! A handle is only reused while the path still names the same file: every use stats the
//! path and compares device, inode, size and mtime with the handle's, so a file removed,
//! quarantined or replaced — by this process or any other (`pkgstash verify`, an admin's
//! `rm`) — is never served from an old handle. Handles idle for [`IDLE`] are closed by
//! [`OpenFiles::sweep`], so a removed file's disk space is released soon after; the cache
//! holds at most a fixed number of handles (from the process's file limit).

use std::collections::HashMap;
use std::fs::{File, Metadata};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// A handle unused this long is closed by the next sweep.
pub const IDLE: Duration = Duration::from_secs(10);

/// One open cache file, with what its response head needs.
#[derive(Debug)]
pub struct OpenFile {
    pub file: File,
    pub meta: Metadata,
}

impl OpenFile {
    /// Does `meta` (a fresh stat of the path) describe this very file, unchanged?
    fn same(&self, meta: &Metadata) -> bool {
        self.meta.dev() == meta.dev()
            && self.meta.ino() == meta.ino()
            && self.meta.len() == meta.len()
            && self.meta.mtime() == meta.mtime()
            && self.meta.mtime_nsec() == meta.mtime_nsec()
    }
}

struct Entry {
    open: Arc<OpenFile>,
    used: Instant,
}

/// The handle cache (shared by every worker thread).
pub struct OpenFiles {
    entries: Mutex<HashMap<String, Entry>>,
    capacity: usize,
}

impl OpenFiles {
    /// A cache of at most `capacity` handles (0: never caches).
    pub fn new(capacity: usize) -> OpenFiles {
        OpenFiles {
            entries: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    /// Sized from the open-file limit: an eighth of it, at most 1024.
    pub fn sized_for_this_process() -> OpenFiles {
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
            .current
            .unwrap_or(1024);
        OpenFiles::new((limit / 8).min(1024) as usize)
    }

    /// The regular file at `path` (cache key `key`), opened now or reused. `None` when it is
    /// not there (or not a regular file).
    pub fn get(&self, key: &str, path: &Path) -> Option<Arc<OpenFile>> {
        let meta = std::fs::metadata(path).ok()?;
        if !meta.is_file() {
            self.forget(key);
            return None;
        }
        let now = Instant::now();
        {
            let mut entries = self.entries.lock();
            if let Some(e) = entries.get_mut(key) {
                if e.open.same(&meta) {
                    e.used = now;
                    return Some(e.open.clone());
                }
                entries.remove(key);
            }
        }
        let file = File::open(path).ok()?;
        let meta = file.metadata().ok()?;
        if !meta.is_file() {
            return None;
        }
        let open = Arc::new(OpenFile { file, meta });
        if self.capacity > 0 {
            let mut entries = self.entries.lock();
            if entries.len() >= self.capacity {
                // Full: drop the least recently used.
                let oldest = entries
                    .iter()
                    .min_by_key(|(_, e)| e.used)
                    .map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    entries.remove(&k);
                }
            }
            entries.insert(
                key.to_string(),
                Entry {
                    open: open.clone(),
                    used: now,
                },
            );
        }
        Some(open)
    }

    /// Close `key`'s handle (the file was removed).
    pub fn forget(&self, key: &str) {
        self.entries.lock().remove(key);
    }

    /// Close handles unused for [`IDLE`].
    pub fn sweep(&self) {
        let now = Instant::now();
        self.entries
            .lock()
            .retain(|_, e| now.duration_since(e.used) < IDLE);
    }

    /// Handles held now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().len()
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;

    fn read_all(f: &OpenFile) -> String {
        let mut s = String::new();
        (&f.file).read_to_string(&mut s).expect("read");
        s
    }

    #[test]
    fn reuses_a_handle_only_while_the_path_names_the_same_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("a.pkg");
        std::fs::write(&p, "one").expect("write");
        let cache = OpenFiles::new(8);
        let first = cache.get("a", &p).expect("open");
        let again = cache.get("a", &p).expect("reuse");
        assert!(Arc::ptr_eq(&first, &again));
        // Replaced by another file (a new inode): opened anew.
        let tmp = dir.path().join("tmp");
        std::fs::write(&tmp, "two!").expect("write");
        std::fs::rename(&tmp, &p).expect("rename");
        let replaced = cache.get("a", &p).expect("reopen");
        assert!(!Arc::ptr_eq(&first, &replaced));
        assert_eq!(read_all(&replaced), "two!");
        // Removed: nothing, and the handle is gone.
        std::fs::remove_file(&p).expect("rm");
        assert!(cache.get("a", &p).is_none());
        assert!(cache.get("a", dir.path()).is_none(), "a directory");
        assert!(cache.is_empty());
    }

    #[test]
    fn stays_within_capacity_and_sweeps_idle_handles() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = OpenFiles::new(2);
        for name in ["a", "b", "c"] {
            let p = dir.path().join(name);
            std::fs::write(&p, name).expect("write");
            assert_eq!(read_all(&cache.get(name, &p).expect("open")), name);
        }
        assert_eq!(cache.len(), 2);
        assert!(!cache.entries.lock().contains_key("a"), "oldest dropped");
        cache.entries.lock().values_mut().for_each(|e| {
            e.used = Instant::now().checked_sub(IDLE).unwrap_or(e.used);
        });
        cache.sweep();
        assert!(cache.is_empty());
        let none = OpenFiles::new(0);
        let p = dir.path().join("a");
        assert!(none.get("a", &p).is_some());
        assert!(none.is_empty());
    }
}
