//! The retention policy, applied after each refresh and by `pkgstash cleanup [--dry-run]`:
//!
//! 1. per package name + arch and directory, keep the `keep_versions` newest (by vercmp);
//! 2. with `max_age`, also drop versions no db lists that were not served for that long;
//! 3. with `max_size`, drop least-recently-served packages until the cache fits.
//!
//! Never removed: databases and other mutable files, files being downloaded, and any version
//! a cached db lists (clients may still ask for it). A package's `.sig` goes with it. Works
//! from the in-memory cache index (no disk walk); the removals themselves are blocking I/O.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::SystemTime;

use serde::Serialize;

use crate::cache::catalog::{is_package_name, Catalog};
use crate::cache::index::{unix_secs, CacheIndex, FileInfo};
use crate::cache::inflight::Registry;
use crate::cache::store::Store;
use crate::config::CleanupConfig;
use crate::jobs::{JobFailed, Jobs};
use crate::repo::vercmp::{parse_pkg_filename, vercmp};

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

    /// Decide what to remove (pure apart from reading cached dbs through the catalog).
    pub fn plan(&self, files: &[(String, FileInfo)], now: u64) -> Vec<Removed> {
        let by_key: HashMap<&str, &FileInfo> = files.iter().map(|(k, f)| (k.as_str(), f)).collect();
        let mut dirs: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (key, _) in files {
            if let Some((dir, name)) = key.rsplit_once('/') {
                dirs.entry(dir).or_default().push(name);
            }
        }
        let mut remove: Vec<Removed> = Vec::new();
        let mut removed_keys: HashSet<String> = HashSet::new();
        // Packages that may still go under max_size: (last_served, key, size).
        let mut evictable: Vec<(u64, String, u64)> = Vec::new();
        let mut protected = 0u64;
        for (dir_key, names) in &dirs {
            let indexes = self.catalog.indexes_in(&self.store.root().join(dir_key));
            let listed = |f: &str| indexes.iter().any(|i| i.by_filename(f).is_some());
            let mut groups: HashMap<(String, String), Vec<(String, &str)>> = HashMap::new();
            for name in names.iter().filter(|n| is_package_name(n)) {
                if let Some(p) = parse_pkg_filename(name) {
                    groups
                        .entry((p.name, p.arch))
                        .or_default()
                        .push((p.version, name));
                }
            }
            for versions in groups.values_mut() {
                versions.sort_by(|a, b| vercmp(&b.0, &a.0));
                for (rank, (_, name)) in versions.iter().enumerate() {
                    let key = format!("{dir_key}/{name}");
                    let Some(info) = by_key.get(key.as_str()) else {
                        continue;
                    };
                    if listed(name) {
                        protected += info.size;
                        continue;
                    }
                    let idle = now.saturating_sub(info.last_served.max(info.mtime));
                    let reason = if rank >= self.policy.keep_versions {
                        Some(format!(
                            "older than the {} newest version(s)",
                            self.policy.keep_versions
                        ))
                    } else {
                        self.policy
                            .max_age
                            .filter(|age| idle > age.as_secs())
                            .map(|age| {
                                format!(
                                    "in no db and unused for more than {}",
                                    humantime::format_duration(age)
                                )
                            })
                    };
                    match reason {
                        Some(reason) => {
                            removed_keys.insert(key.clone());
                            remove.push(Removed {
                                path: key,
                                bytes: info.size,
                                reason,
                            });
                        }
                        None => evictable.push((info.last_served, key, info.size)),
                    }
                }
            }
        }
        if let Some(max) = self.policy.max_size {
            let total: u64 = files.iter().map(|(_, f)| f.size).sum();
            let mut size = total - remove.iter().map(|r| r.bytes).sum::<u64>();
            evictable.sort();
            for (_, key, bytes) in evictable {
                if size <= max {
                    break;
                }
                size -= bytes;
                removed_keys.insert(key.clone());
                remove.push(Removed {
                    path: key,
                    bytes,
                    reason: format!(
                        "cache over max_size ({}), least recently served",
                        bytesize::ByteSize(max)
                    ),
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
        }
        // Signatures go with their package.
        let sigs: Vec<Removed> = remove
            .iter()
            .filter_map(|r| {
                let sig = format!("{}.sig", r.path);
                let info = by_key.get(sig.as_str())?;
                Some(Removed {
                    path: sig,
                    bytes: info.size,
                    reason: "signature of a removed package".into(),
                })
            })
            .collect();
        remove.extend(sigs);
        // Never a file being downloaded.
        remove.retain(|r| !self.registry.contains_key(&r.path));
        remove.sort_by(|a, b| a.path.cmp(&b.path));
        remove
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
