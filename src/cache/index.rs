//! The cache index: every published file (key `upstream/rel`) with its size, mtime, when it
//! was last served and how many times. Built by one directory walk at start, then kept current
//! by the code that publishes and removes files, so status, cleanup and refresh never walk the
//! disk.
//!
//! Last-served times and hit counts live in memory (a hit costs one short lock and no write)
//! and are persisted in batches to `<cache_dir>/.state/last-served.tsv` (lines
//! `<unix secs>\t<hits>\t<key>`; the older `<unix secs>\t<key>` is read too) by
//! [`CacheIndex::persist`] (every few minutes, after each refresh, and when the server stops),
//! so a restart keeps the LRU order that `max_size` cleanup relies on, and the counts the
//! admin interface shows.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use serde::Serialize;

/// Directory (below the cache root) for pkgstash's own state files.
pub(crate) const STATE_DIR: &str = ".state";
const LAST_SERVED_FILE: &str = "last-served.tsv";

/// What the index knows about one cached file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileInfo {
    pub size: u64,
    /// Modification time (upstream's Last-Modified), Unix seconds.
    pub mtime: u64,
    /// Last time a client was served this file (or it was published), Unix seconds.
    pub last_served: u64,
    /// `GET` requests answered with this file since it was cached (hits, the clients of its
    /// download, revalidated and stale answers).
    pub hits: u64,
}

/// Files and bytes in the cache of one upstream.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Usage {
    pub files: u64,
    pub bytes: u64,
}

/// All cached files.
#[derive(Debug)]
pub struct CacheIndex {
    root: PathBuf,
    files: Mutex<HashMap<String, FileInfo>>,
    dirty: AtomicBool,
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn now_secs() -> u64 {
    unix_secs(SystemTime::now())
}

impl CacheIndex {
    /// Walk `root` (skipping dot-directories such as `.partial`) and load persisted
    /// last-served times.
    pub fn scan(root: &Path) -> CacheIndex {
        let mut files = HashMap::new();
        let mut stack: Vec<(PathBuf, String)> = vec![(root.to_path_buf(), String::new())];
        while let Some((dir, prefix)) = stack.pop() {
            let entries = match std::fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) => {
                    log::warn!("cannot list {}: {e}", dir.display());
                    continue;
                }
            };
            for entry in entries.flatten() {
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                if name.starts_with('.') {
                    continue;
                }
                let key = if prefix.is_empty() {
                    name.to_string()
                } else {
                    format!("{prefix}/{name}")
                };
                match entry.file_type() {
                    Ok(t) if t.is_dir() => stack.push((entry.path(), key)),
                    Ok(t) if t.is_file() && !prefix.is_empty() => {
                        if let Ok(m) = entry.metadata() {
                            let mtime = m.modified().map(unix_secs).unwrap_or(0);
                            files.insert(
                                key,
                                FileInfo {
                                    size: m.len(),
                                    mtime,
                                    last_served: mtime,
                                    hits: 0,
                                },
                            );
                        }
                    }
                    _ => {}
                }
            }
        }
        let index = CacheIndex {
            root: root.to_path_buf(),
            files: Mutex::new(files),
            dirty: AtomicBool::new(false),
        };
        index.load_last_served();
        index
    }

    fn state_file(&self) -> PathBuf {
        self.root.join(STATE_DIR).join(LAST_SERVED_FILE)
    }

    fn load_last_served(&self) {
        let Ok(text) = std::fs::read_to_string(self.state_file()) else {
            return;
        };
        let mut files = self.files.lock();
        for line in text.lines() {
            let Some((secs, rest)) = line.split_once('\t') else {
                continue;
            };
            let Ok(secs) = secs.parse::<u64>() else {
                continue;
            };
            // Keys never hold a tab (`RepoPath` refuses control characters).
            let (hits, key) = match rest.split_once('\t') {
                Some((hits, key)) => (hits.parse::<u64>().unwrap_or(0), key),
                None => (0, rest),
            };
            if let Some(f) = files.get_mut(key) {
                f.last_served = f.last_served.max(secs);
                f.hits = hits;
            }
        }
    }

    /// Write last-served times if they changed since the last call, replacing the file
    /// atomically and durably ([`crate::durable::write`]). Blocking (write + fsync): call it off
    /// the async workers. After a failure the times count as changed (the next call retries).
    pub(crate) fn persist(&self) -> std::io::Result<()> {
        use std::fmt::Write as _;
        if !self.dirty.swap(false, Ordering::Relaxed) {
            return Ok(());
        }
        let mut out = String::new();
        for (key, f) in self.files.lock().iter() {
            let _ = writeln!(out, "{}\t{}\t{key}", f.last_served, f.hits);
        }
        let written = crate::durable::write(&self.state_file(), out.as_bytes());
        if written.is_err() {
            self.dirty.store(true, Ordering::Relaxed);
        }
        written
    }

    /// [`CacheIndex::persist`] on a blocking thread, awaited (what the refresh, the periodic
    /// save and the stop of the server call); a failure is logged, and retried by the next
    /// save.
    pub(crate) async fn persist_off_worker(self: &std::sync::Arc<Self>) {
        let index = self.clone();
        match tokio::task::spawn_blocking(move || index.persist()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => log::warn!("cannot persist last-served times: {e}"),
            Err(e) => log::warn!("cannot persist last-served times: {e}"),
        }
    }

    /// A file was published (or replaced).
    pub(crate) fn insert(&self, key: &str, size: u64, mtime: Option<SystemTime>) {
        let now = now_secs();
        self.files.lock().insert(
            key.to_string(),
            FileInfo {
                size,
                mtime: mtime.map(unix_secs).unwrap_or(now),
                last_served: now,
                hits: 0,
            },
        );
        self.dirty.store(true, Ordering::Relaxed);
    }

    /// Add `n` hits to `key` (the clients of the download that published it).
    pub(crate) fn add_hits(&self, key: &str, n: u64) {
        if let Some(f) = self.files.lock().get_mut(key) {
            f.hits += n;
            self.dirty.store(true, Ordering::Relaxed);
        }
    }

    /// A file was removed.
    pub(crate) fn remove(&self, key: &str) -> Option<FileInfo> {
        self.dirty.store(true, Ordering::Relaxed);
        self.files.lock().remove(key)
    }

    /// A client was served `key` from the cache; a `GET` (`get`) counts as a hit of it.
    pub(crate) fn served(&self, key: &str, get: bool) {
        let now = now_secs();
        if let Some(f) = self.files.lock().get_mut(key) {
            if get {
                f.hits += 1;
                self.dirty.store(true, Ordering::Relaxed);
            }
            if f.last_served != now {
                f.last_served = now;
                self.dirty.store(true, Ordering::Relaxed);
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn get(&self, key: &str) -> Option<FileInfo> {
        self.files.lock().get(key).copied()
    }

    /// Every file (a copy: callers may take their time).
    pub(crate) fn snapshot(&self) -> Vec<(String, FileInfo)> {
        self.files
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    }

    /// Files and bytes per upstream (first key segment).
    pub(crate) fn usage(&self) -> BTreeMap<String, Usage> {
        let mut out: BTreeMap<String, Usage> = BTreeMap::new();
        for (k, f) in self.files.lock().iter() {
            let up = k.split('/').next().unwrap_or_default();
            let u = out.entry(up.to_string()).or_default();
            u.files += 1;
            u.bytes += f.size;
        }
        out
    }

    /// Files in the index.
    pub(crate) fn len(&self) -> usize {
        self.files.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_skips_dot_dirs_and_tracks_changes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        std::fs::create_dir_all(root.join("arch/core/os/x86_64")).expect("mkdir");
        std::fs::create_dir_all(root.join(".partial")).expect("mkdir");
        std::fs::write(root.join("arch/core/os/x86_64/core.db"), b"db").expect("write");
        std::fs::write(
            root.join("arch/core/os/x86_64/a-1-1-any.pkg.tar.zst"),
            b"pkg!",
        )
        .expect("write");
        std::fs::write(root.join(".partial/dl-x"), b"partial").expect("write");
        std::fs::write(root.join("stray-file"), b"x").expect("write");
        let idx = CacheIndex::scan(root);
        assert_eq!(idx.len(), 2);
        assert_eq!(idx.usage()["arch"], Usage { files: 2, bytes: 6 });
        let mut keys: Vec<String> = idx.snapshot().into_iter().map(|(k, _)| k).collect();
        keys.sort();
        assert_eq!(
            keys,
            vec![
                "arch/core/os/x86_64/a-1-1-any.pkg.tar.zst",
                "arch/core/os/x86_64/core.db"
            ]
        );
        idx.insert("arch/core/os/x86_64/b-1-1-any.pkg.tar.zst", 10, None);
        assert_eq!(idx.usage()["arch"].bytes, 16);
        assert!(idx.remove("arch/core/os/x86_64/core.db").is_some());
        assert_eq!(idx.usage()["arch"].files, 2);
    }

    #[test]
    fn last_served_survives_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        std::fs::create_dir_all(root.join("arch/x")).expect("mkdir");
        std::fs::write(root.join("arch/x/f"), b"f").expect("write");
        let idx = CacheIndex::scan(root);
        let before = idx.get("arch/x/f").expect("indexed").last_served;
        idx.files
            .lock()
            .get_mut("arch/x/f")
            .expect("entry")
            .last_served = before + 1000;
        idx.dirty.store(true, Ordering::Relaxed);
        idx.persist().expect("persist");
        let idx = CacheIndex::scan(root);
        assert_eq!(
            idx.get("arch/x/f").expect("indexed").last_served,
            before + 1000
        );
    }

    #[test]
    fn hits_are_counted_for_gets_and_survive_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        std::fs::create_dir_all(root.join("arch/x")).expect("mkdir");
        std::fs::write(root.join("arch/x/f"), b"f").expect("write");
        std::fs::write(root.join("arch/x/g"), b"g").expect("write");
        let idx = CacheIndex::scan(root);
        assert_eq!(idx.get("arch/x/f").expect("indexed").hits, 0);
        idx.served("arch/x/f", true);
        idx.served("arch/x/f", true);
        idx.served("arch/x/f", false); // a HEAD
        idx.served("arch/x/nothing", true);
        idx.insert("arch/x/h", 1, None);
        idx.add_hits("arch/x/h", 3);
        assert_eq!(idx.get("arch/x/f").expect("indexed").hits, 2);
        idx.persist().expect("persist");
        std::fs::write(root.join("arch/x/h"), b"h").expect("write");
        let idx = CacheIndex::scan(root);
        assert_eq!(idx.get("arch/x/f").expect("indexed").hits, 2);
        assert_eq!(idx.get("arch/x/g").expect("indexed").hits, 0);
        assert_eq!(idx.get("arch/x/h").expect("indexed").hits, 3);
        // The older format (no hits column) still loads its times.
        let old = format!("{}\tarch/x/g\n", 4_000_000_000u64);
        std::fs::write(root.join(STATE_DIR).join(LAST_SERVED_FILE), old).expect("write");
        let idx = CacheIndex::scan(root);
        let g = idx.get("arch/x/g").expect("indexed");
        assert_eq!((g.last_served, g.hits), (4_000_000_000, 0));
    }
}
