//! The retention policy, applied after each refresh and by `pkgstash cleanup [--dry-run]`:
//!
//! 1. per package name + arch and directory, keep the `keep_versions` newest (by vercmp);
//! 2. with `max_age`, also drop versions no db lists that were not served for that long;
//! 3. with `max_size`, drop least-recently-served packages until the cache fits.
//!
//! Never removed: databases and other mutable files, files being downloaded, and any version
//! a cached db lists (clients may still ask for it). A package's `.sig` goes with it. Works
//! from the in-memory cache index (no disk walk); the removals themselves are blocking I/O.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::SystemTime;

use serde::Serialize;

use crate::cache::catalog::Catalog;
use crate::cache::index::{unix_secs, CacheIndex, FileInfo};
use crate::cache::inflight::Registry;
use crate::cache::store::Store;
use crate::config::CleanupConfig;
use crate::jobs::packages::{by_dir, versions};
use crate::jobs::{JobFailed, Jobs};

pub use crate::cache::index::Usage;

/// One file cleanup removed (or would remove, in a dry run).
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Removed {
    /// Cache path, `upstream/rel`.
    pub path: String,
    pub bytes: u64,
    pub reason: String,
}

/// What one cleanup did.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct CleanupReport {
    pub dry_run: bool,
    pub removed: Vec<Removed>,
    pub freed_bytes: u64,
    pub errors: Vec<String>,
}

/// Everything a cleanup needs, detached from the server state (so it can run on a blocking
/// thread).
pub struct Cleaner {
    pub store: Arc<Store>,
    pub index: Arc<CacheIndex>,
    pub catalog: Arc<Catalog>,
    pub registry: Arc<Registry>,
    pub policy: CleanupConfig,
}

impl Cleaner {
    pub fn new(jobs: &Jobs) -> Cleaner {
        Cleaner {
            store: jobs.store.clone(),
            index: jobs.index.clone(),
            catalog: jobs.catalog.clone(),
            registry: jobs.registry.clone(),
            policy: jobs.cfg.cleanup.clone(),
        }
    }

    /// Decide what to remove from the cached `files` at Unix time `now` (seconds): the steps
    /// of the module docs, then the `.sig`s of what goes, never a file being downloaded;
    /// sorted by path. Pure apart from reading cached dbs through the catalog.
    pub fn plan(&self, files: &[(String, FileInfo)], now: u64) -> Vec<Removed> {
        let by_key: HashMap<&str, &FileInfo> = files.iter().map(|(k, f)| (k.as_str(), f)).collect();
        let mut plan = Plan {
            reasons: Reasons::of(&self.policy),
            ..Plan::default()
        };
        for (dir_key, names) in &by_dir(files) {
            self.plan_dir(dir_key, names, &by_key, now, &mut plan);
        }
        let Plan {
            mut remove,
            evictable,
            protected,
            ..
        } = plan;
        if let Some(max) = self.policy.max_size {
            let total: u64 = files.iter().map(|(_, f)| f.size).sum();
            let size = total - remove.iter().map(|r| r.bytes).sum::<u64>();
            remove.extend(evict(max, size, evictable, protected));
        }
        // Signatures go with their package.
        let mut sig = String::new();
        let sigs: Vec<Removed> = remove
            .iter()
            .filter_map(|r| {
                sig.clear();
                sig.push_str(&r.path);
                sig.push_str(".sig");
                let info = by_key.get(sig.as_str())?;
                Some(Removed {
                    path: sig.clone(),
                    bytes: info.size,
                    reason: "signature of a removed package".into(),
                })
            })
            .collect();
        remove.extend(sigs);
        // Never a file being downloaded.
        remove.retain(|r| !self.registry.contains_key(&r.path));
        remove.sort_unstable_by(|a, b| a.path.cmp(&b.path));
        remove
    }

    /// Steps 1 and 2 for the packages among `names` in directory `dir_key`: a version the
    /// directory's cached dbs list is kept (and counted as protected); the others go
    /// ([`Reasons::why`]) or may go under `max_size`.
    fn plan_dir(
        &self,
        dir_key: &str,
        names: &[&str],
        by_key: &HashMap<&str, &FileInfo>,
        now: u64,
        plan: &mut Plan,
    ) {
        let indexes = self.catalog.indexes_in(&self.store.root().join(dir_key));
        let listed = |f: &str| indexes.iter().any(|i| i.by_filename(f).is_some());
        // One buffer for the keys looked up; a key is copied only for what may go.
        let mut key = String::with_capacity(dir_key.len() + 64);
        for versions in versions(names).values() {
            for (rank, (_, name)) in versions.iter().enumerate() {
                key.clear();
                key.push_str(dir_key);
                key.push('/');
                key.push_str(name);
                let Some(info) = by_key.get(key.as_str()) else {
                    continue;
                };
                if listed(name) {
                    plan.protected += info.size;
                    continue;
                }
                let idle = now.saturating_sub(info.last_served.max(info.mtime));
                match plan.reasons.why(rank, idle) {
                    Some(reason) => plan.remove.push(Removed {
                        path: key.clone(),
                        bytes: info.size,
                        reason: reason.to_string(),
                    }),
                    None => plan
                        .evictable
                        .push((info.last_served, key.clone(), info.size)),
                }
            }
        }
    }

    /// Plan and (unless `dry_run`) remove.
    pub fn run(&self, dry_run: bool) -> CleanupReport {
        let files = self.index.snapshot();
        let plan = self.plan(&files, unix_secs(SystemTime::now()));
        let mut report = CleanupReport {
            dry_run,
            ..CleanupReport::default()
        };
        for r in plan {
            if !dry_run {
                let Some((up, rel)) = r.path.split_once('/') else {
                    continue;
                };
                let Ok(path) = crate::repo::path::RepoPath::from_parts(up, rel) else {
                    continue;
                };
                match std::fs::remove_file(self.store.final_path(&path)) {
                    Ok(()) => {
                        self.index.remove(&r.path);
                        log::info!("cleanup: removed {} ({})", r.path, r.reason);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        self.index.remove(&r.path);
                    }
                    Err(e) => {
                        report.errors.push(format!("{}: {e}", r.path));
                        continue;
                    }
                }
            }
            report.freed_bytes += r.bytes;
            report.removed.push(r);
        }
        report
    }
}

/// What steps 1–2 decided so far.
#[derive(Default)]
struct Plan {
    remove: Vec<Removed>,
    /// Packages that may still go under `max_size`: (last served, key, size).
    evictable: Vec<(u64, String, u64)>,
    /// Bytes of versions a cached db lists (never removed).
    protected: u64,
    reasons: Reasons,
}

/// Why steps 1–2 remove a version no db lists, worded once per plan (not per file).
#[derive(Default)]
struct Reasons {
    keep_versions: usize,
    /// Past `keep_versions` newest.
    older: String,
    /// `max_age` (seconds) and the words for it.
    unused: Option<(u64, String)>,
}

impl Reasons {
    fn of(policy: &CleanupConfig) -> Reasons {
        Reasons {
            keep_versions: policy.keep_versions,
            older: format!("older than the {} newest version(s)", policy.keep_versions),
            unused: policy.max_age.map(|age| {
                (
                    age.as_secs(),
                    format!(
                        "in no db and unused for more than {}",
                        humantime::format_duration(age)
                    ),
                )
            }),
        }
    }

    /// Why a version no db lists goes under steps 1–2, if it does: `rank` among its
    /// package's cached versions (0: the newest), unused for `idle` seconds.
    fn why(&self, rank: usize, idle: u64) -> Option<&str> {
        if rank >= self.keep_versions {
            return Some(&self.older);
        }
        self.unused
            .as_ref()
            .filter(|(age, _)| idle > *age)
            .map(|(_, why)| why.as_str())
    }
}

/// Step 3: from a cache of `size` bytes after steps 1–2, the `evictable` packages (last
/// served, key, size) that go, least recently served first, until it fits in `max` bytes; a
/// warning when it cannot fit (`protected`: bytes the dbs list).
fn evict(
    max: u64,
    mut size: u64,
    mut evictable: Vec<(u64, String, u64)>,
    protected: u64,
) -> Vec<Removed> {
    let mut remove = Vec::new();
    evictable.sort_unstable();
    let reason = format!(
        "cache over max_size ({}), least recently served",
        bytesize::ByteSize(max)
    );
    for (_, key, bytes) in evictable {
        if size <= max {
            break;
        }
        size -= bytes;
        remove.push(Removed {
            path: key,
            bytes,
            reason: reason.clone(),
        });
    }
    if size > max {
        log::warn!(
            "cache is {} after cleanup, over max_size {}: {} are versions the dbs list",
            bytesize::ByteSize(size),
            bytesize::ByteSize(max),
            bytesize::ByteSize(protected)
        );
    }
    remove
}

/// Apply the retention policy on a blocking thread. A cleanup that panicked is an error,
/// never an empty report.
pub async fn cleanup_in_background(jobs: &Jobs, dry_run: bool) -> Result<CleanupReport, JobFailed> {
    let cleaner = Cleaner::new(jobs);
    actix_web::web::block(move || cleaner.run(dry_run))
        .await
        .map_err(|cause| JobFailed {
            job: "cleanup",
            cause,
        })
}

/// Cache usage per upstream.
pub fn usage(jobs: &Jobs) -> BTreeMap<String, Usage> {
    let mut out = jobs.index.usage();
    for name in jobs.cfg.upstreams.keys() {
        out.entry(name.clone()).or_default();
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::jobs::test_cache::{Listed, TestCache, CORE};
    use crate::repo::path::RepoPath;

    const DAY: u64 = 86_400;
    const NOW: u64 = 1_000 * DAY;

    fn cleaner(c: &TestCache, policy: CleanupConfig) -> Cleaner {
        Cleaner {
            store: c.store.clone(),
            index: Arc::new(CacheIndex::scan(c.store.root())),
            catalog: c.catalog.clone(),
            registry: Arc::new(Registry::default()),
            policy,
        }
    }

    fn policy(
        keep_versions: usize,
        max_age_days: Option<u64>,
        max_size: Option<u64>,
    ) -> CleanupConfig {
        CleanupConfig {
            keep_versions,
            max_age: max_age_days.map(|d| Duration::from_secs(d * DAY)),
            max_size,
        }
    }

    /// The plan as (file name, reason) pairs.
    fn names(plan: &[Removed]) -> Vec<(&str, &str)> {
        plan.iter()
            .map(|r| {
                let name = r.path.rsplit_once('/').map_or(r.path.as_str(), |(_, n)| n);
                (name, r.reason.as_str())
            })
            .collect()
    }

    #[test]
    fn keeps_the_newest_versions_and_what_a_db_lists_and_sigs_go_along() {
        let mut c = TestCache::new();
        c.db(CORE, "core.db", &[Listed("a-1.0-1-x86_64.pkg.tar.zst", 10)]);
        for (name, size) in [
            ("a-1.0-1-x86_64.pkg.tar.zst", 10),
            ("a-1.0-1-x86_64.pkg.tar.zst.sig", 1),
            ("a-1.1-1-x86_64.pkg.tar.zst", 11),
            ("a-1.1-1-x86_64.pkg.tar.zst.sig", 1),
            ("a-1.10-1-x86_64.pkg.tar.zst", 12),
            ("a-1.2-1-x86_64.pkg.tar.zst", 13),
            ("a-1.2-1-x86_64.pkg.tar.zst.sig", 1),
            ("b-1-1-any.pkg.tar.zst", 5),
            ("core.db.sig", 1),
            ("lastsync", 1),
        ] {
            c.file(CORE, name, size, NOW);
        }
        let plan = cleaner(&c, policy(2, None, None)).plan(&c.files, NOW);
        // Newest first by vercmp: 1.10, 1.2 kept; 1.1 goes with its .sig; 1.0 is in the db.
        assert_eq!(
            names(&plan),
            [
                (
                    "a-1.1-1-x86_64.pkg.tar.zst",
                    "older than the 2 newest version(s)"
                ),
                (
                    "a-1.1-1-x86_64.pkg.tar.zst.sig",
                    "signature of a removed package"
                ),
            ]
        );
        assert_eq!(plan[0].path, format!("{CORE}/a-1.1-1-x86_64.pkg.tar.zst"));
        assert_eq!((plan[0].bytes, plan[1].bytes), (11, 1));
        // keep_versions = 1: 1.2 goes too (with its .sig); the listed 1.0 still stays.
        let plan = cleaner(&c, policy(1, None, None)).plan(&c.files, NOW);
        assert_eq!(
            names(&plan).iter().map(|(n, _)| *n).collect::<Vec<_>>(),
            [
                "a-1.1-1-x86_64.pkg.tar.zst",
                "a-1.1-1-x86_64.pkg.tar.zst.sig",
                "a-1.2-1-x86_64.pkg.tar.zst",
                "a-1.2-1-x86_64.pkg.tar.zst.sig",
            ]
        );
    }

    #[test]
    fn max_age_removes_unused_versions_no_db_lists() {
        let mut c = TestCache::new();
        c.db(CORE, "core.db", &[Listed("listed-1-1-any.pkg.tar.zst", 10)]);
        c.file(CORE, "listed-1-1-any.pkg.tar.zst", 10, NOW - 400 * DAY);
        c.file(CORE, "idle-1-1-any.pkg.tar.zst", 10, NOW - 31 * DAY);
        c.file(CORE, "used-1-1-any.pkg.tar.zst", 10, NOW - 29 * DAY);
        c.file(CORE, "lastsync", 1, NOW - 400 * DAY);
        let plan = cleaner(&c, policy(3, Some(30), None)).plan(&c.files, NOW);
        assert_eq!(
            names(&plan),
            [(
                "idle-1-1-any.pkg.tar.zst",
                "in no db and unused for more than 30days"
            )]
        );
        // Without max_age nothing is old enough to go.
        assert!(cleaner(&c, policy(3, None, None))
            .plan(&c.files, NOW)
            .is_empty());
    }

    #[test]
    fn max_size_evicts_least_recently_served_never_dbs_or_listed_versions() {
        let mut c = TestCache::new();
        c.db(
            CORE,
            "core.db",
            &[Listed("listed-1-1-any.pkg.tar.zst", 1000)],
        );
        let db_size = c.files[0].1.size;
        c.file(CORE, "listed-1-1-any.pkg.tar.zst", 1000, NOW - 300);
        c.file(CORE, "c-1-1-any.pkg.tar.zst", 500, NOW - 100);
        c.file(CORE, "c-1-1-any.pkg.tar.zst.sig", 10, NOW - 100);
        c.file(CORE, "d-1-1-any.pkg.tar.zst", 500, NOW - 50);
        c.file(CORE, "e-1-1-any.pkg.tar.zst", 500, NOW - 10);
        // 900 bytes too many: c (the least recently served), then d; e fits.
        let max = db_size + 10 + 1000 + 500 + 100;
        let plan = cleaner(&c, policy(3, None, Some(max))).plan(&c.files, NOW);
        let over = format!(
            "cache over max_size ({}), least recently served",
            bytesize::ByteSize(max)
        );
        assert_eq!(
            names(&plan),
            [
                ("c-1-1-any.pkg.tar.zst", over.as_str()),
                (
                    "c-1-1-any.pkg.tar.zst.sig",
                    "signature of a removed package"
                ),
                ("d-1-1-any.pkg.tar.zst", over.as_str()),
            ]
        );
        // A cache that cannot fit: every package no db lists goes; the db and what it
        // lists stay.
        let plan = cleaner(&c, policy(3, None, Some(0))).plan(&c.files, NOW);
        assert_eq!(
            names(&plan).iter().map(|(n, _)| *n).collect::<Vec<_>>(),
            [
                "c-1-1-any.pkg.tar.zst",
                "c-1-1-any.pkg.tar.zst.sig",
                "d-1-1-any.pkg.tar.zst",
                "e-1-1-any.pkg.tar.zst",
            ]
        );
    }

    #[test]
    fn a_file_being_downloaded_is_never_removed() {
        let mut c = TestCache::new();
        c.file(CORE, "a-1-1-any.pkg.tar.zst", 10, NOW);
        c.file(CORE, "a-2-1-any.pkg.tar.zst", 10, NOW);
        c.file(CORE, "a-3-1-any.pkg.tar.zst", 10, NOW);
        let cl = cleaner(&c, policy(1, None, None));
        let path = RepoPath::parse(&format!("/{CORE}/a-1-1-any.pkg.tar.zst")).expect("path");
        let _in_flight = cl.registry.join_or_start(&path, || true).expect("started");
        let plan = cl.plan(&c.files, NOW);
        assert_eq!(
            names(&plan).iter().map(|(n, _)| *n).collect::<Vec<_>>(),
            ["a-2-1-any.pkg.tar.zst"]
        );
    }

    #[test]
    fn other_directories_keep_their_own_versions() {
        let mut c = TestCache::new();
        let extra = "arch/extra/os/x86_64";
        // core's db lists 1-1: that protects core's copy, not extra's.
        c.db(CORE, "core.db", &[Listed("a-1-1-any.pkg.tar.zst", 10)]);
        for dir in [CORE, extra] {
            c.file(dir, "a-1-1-any.pkg.tar.zst", 10, NOW);
            c.file(dir, "a-2-1-any.pkg.tar.zst", 10, NOW);
        }
        let plan = cleaner(&c, policy(1, None, None)).plan(&c.files, NOW);
        let paths: Vec<&str> = plan.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(paths, ["arch/extra/os/x86_64/a-1-1-any.pkg.tar.zst"]);
    }
}
