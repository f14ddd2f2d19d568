//! Scheduled and on-demand refresh: revalidate every cached repo database upstream (a
//! conditional GET through the in-flight registry, so it coalesces with client requests), then
//! **prefetch** new versions of packages already in the cache, then apply the cleanup policy.
//!
//! Prefetches go through the same registry as client misses: a client asking for a file while
//! it is being prefetched joins that download. Concurrency is bounded by
//! `refresh.prefetch_concurrency`; only one refresh runs at a time.

use std::collections::HashSet;
use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt;
use serde::Serialize;

use crate::cache::catalog::Catalog;
use crate::cache::index::{unix_secs, FileInfo};
use crate::cache::inflight::{Failure, Phase};
use crate::jobs::packages::{by_dir, versions, NameArch};
use crate::jobs::Jobs;
use crate::repo::path::{FileKind, RepoPath};
use crate::repo::vercmp::vercmp;
use crate::upstream::fetch::Expected;

/// Databases revalidated at once.
const REVALIDATE_CONCURRENCY: usize = 4;

/// What one refresh did.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct RefreshReport {
    /// Unix time (seconds) the refresh started.
    pub started_at: u64,
    pub duration_ms: u64,
    /// Cached databases revalidated upstream.
    pub dbs_checked: usize,
    /// Databases that changed upstream.
    pub dbs_updated: usize,
    /// Packages prefetched (cache paths).
    pub prefetched: Vec<String>,
    /// Cached packages (and signatures) removed since the previous refresh because a newly
    /// published db lists them with another size or sha256 — re-published upstream under the
    /// same file name; the next request (or this refresh's prefetch) fetches the new build.
    #[serde(default)]
    pub republished: Vec<String>,
    /// Files removed by the cleanup that follows the refresh.
    pub cleaned: usize,
    /// Human-readable problems.
    pub errors: Vec<String>,
}

/// Fetch `path` through the registry (joining a download in flight) and wait for the outcome.
/// `if_modified_since` makes it a revalidation.
pub async fn fetch_and_wait(
    jobs: &Jobs,
    path: &RepoPath,
    if_modified_since: Option<SystemTime>,
    expected: Option<Expected>,
) -> Phase {
    let Some((download, _)) = jobs
        .fetcher
        .join_or_start(path, if_modified_since, expected, || true)
    else {
        return Phase::Failed(Failure::Internal("not started".into()));
    };
    let mut rx = download.subscribe();
    let done = rx
        .wait_for(|p| {
            matches!(
                p.phase,
                Phase::Done(_) | Phase::NotModified | Phase::NotFound | Phase::Failed(_)
            )
        })
        .await;
    match done {
        Ok(p) => p.phase.clone(),
        Err(_) => Phase::Failed(Failure::Internal("download task went away".into())),
    }
}

/// A package to prefetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefetchItem {
    pub upstream: String,
    /// Path below the upstream.
    pub rel: String,
    pub expected: Option<Expected>,
}

/// Which new package versions to prefetch: for every name+arch cached in a directory whose
/// cached db lists a newer version than the newest cached one, that file (and its `.sig`
/// when the newest cached version had its signature cached). Blocking (parses dbs).
pub fn plan_prefetch(
    files: &[(String, FileInfo)],
    catalog: &Catalog,
    root: &std::path::Path,
) -> Vec<PrefetchItem> {
    let mut out = Vec::new();
    for (dir_key, names) in by_dir(files) {
        let Some((upstream, rel_dir)) = dir_key.split_once('/') else {
            continue;
        };
        // A set: a directory holds thousands of files, each asked about twice.
        let cached: HashSet<&str> = names.iter().copied().collect();
        // newest cached version per (name, arch), and whether its .sig is cached
        let newest: Vec<(NameArch, (&str, bool))> = versions(&names)
            .into_iter()
            .filter_map(|(k, v)| {
                let (version, name) = v.into_iter().next()?;
                let has_sig = cached.contains(format!("{name}.sig").as_str());
                Some((k, (version, has_sig)))
            })
            .collect();
        if newest.is_empty() {
            continue;
        }
        let indexes = catalog.indexes_in(&root.join(dir_key));
        for ((name, arch), (version, has_sig)) in newest {
            let Some(entry) = indexes.iter().find_map(|i| i.by_name_arch(name, arch)) else {
                continue;
            };
            if vercmp(&entry.version, version) != std::cmp::Ordering::Greater
                || cached.contains(entry.filename.as_str())
            {
                continue;
            }
            let expected = match (entry.csize, &entry.sha256) {
                (Some(size), Some(sha)) => Some(Expected {
                    size,
                    sha256: sha.clone(),
                }),
                _ => None,
            };
            out.push(PrefetchItem {
                upstream: upstream.to_string(),
                rel: format!("{rel_dir}/{}", entry.filename),
                expected,
            });
            if has_sig {
                out.push(PrefetchItem {
                    upstream: upstream.to_string(),
                    rel: format!("{rel_dir}/{}.sig", entry.filename),
                    expected: None,
                });
            }
        }
    }
    out.sort_by(|a, b| (&a.upstream, &a.rel).cmp(&(&b.upstream, &b.rel)));
    out
}

/// The re-published packages among `keys` (cache keys) to fetch again, with what they must
/// now be (their `.sig`s come with their package when it is fetched by a client).
/// Blocking (reads dbs).
pub fn plan_refetch(
    keys: &[String],
    catalog: &Catalog,
    root: &std::path::Path,
) -> Vec<PrefetchItem> {
    keys.iter()
        .filter_map(|key| {
            let (dir, name) = key.rsplit_once('/')?;
            let (upstream, rel) = key.split_once('/')?;
            let crate::cache::catalog::Verification::Known(expected) =
                catalog.verification(&root.join(dir), name)
            else {
                return None;
            };
            Some(PrefetchItem {
                upstream: upstream.to_string(),
                rel: rel.to_string(),
                expected: Some(expected),
            })
        })
        .collect()
}

/// The cached mutable files of configured upstreams to revalidate; a db's `.sig` is not
/// listed when its db is: it is revalidated with it, in the same step.
fn to_revalidate(jobs: &Jobs) -> Vec<RepoPath> {
    let mut mutable: Vec<RepoPath> = jobs
        .index
        .snapshot()
        .iter()
        .filter_map(|(key, _)| {
            let (up, rel) = key.split_once('/')?;
            jobs.cfg.upstreams.get(up)?;
            RepoPath::from_parts(up, rel).ok()
        })
        .filter(|p| p.kind() == FileKind::Mutable)
        .collect();
    let cached: std::collections::HashSet<RepoPath> = mutable.iter().cloned().collect();
    mutable.retain(|p| {
        crate::upstream::fetch::pair::Pair::of(p)
            .is_none_or(|pair| *p == pair.db || !cached.contains(&pair.db))
    });
    mutable
}

/// Run one refresh now (one at a time) and remember its report in the jobs.
pub async fn refresh_now(jobs: &Jobs) -> RefreshReport {
    let _one_at_a_time = jobs.refresh_lock.lock().await;
    let started = Instant::now();
    let mut report = RefreshReport {
        started_at: unix_secs(SystemTime::now()),
        ..RefreshReport::default()
    };

    // 1. Revalidate every cached mutable file (dbs, their signatures, lastsync…).
    revalidate_all(jobs, &mut report).await;
    report.republished = jobs.fetcher.context().republished.drain();

    // 2. Prefetch new versions of cached packages, and new builds of re-published ones.
    if jobs.cfg.refresh.prefetch {
        prefetch(jobs, &mut report).await;
    }

    // 3. Apply the retention policy.
    match crate::jobs::cleanup::cleanup_in_background(jobs, false).await {
        Ok(cleanup) => report.cleaned = cleanup.removed.len(),
        Err(e) => report.errors.push(e.to_string()),
    }

    report.duration_ms = started.elapsed().as_millis() as u64;
    log_report(&report);
    *jobs.last_refresh.lock() = Some(report.clone());
    jobs.index.persist_off_worker().await;
    report
}

/// Step 1: revalidate every cached mutable file of a configured upstream (a repo db with its
/// `.sig`), [`REVALIDATE_CONCURRENCY`] at a time; counted in `report`.
async fn revalidate_all(jobs: &Jobs, report: &mut RefreshReport) {
    let mutable = to_revalidate(jobs);
    let results: Vec<(RepoPath, Phase)> = futures::stream::iter(mutable)
        .map(|path| async move {
            // One stat per cached db: not worth a blocking-pool hop.
            let ims = std::fs::metadata(jobs.store.final_path(&path))
                .and_then(|m| m.modified())
                .ok();
            let phase = fetch_and_wait(jobs, &path, ims, None).await;
            (path, phase)
        })
        .buffer_unordered(REVALIDATE_CONCURRENCY)
        .collect()
        .await;
    for (path, phase) in results {
        report.dbs_checked += 1;
        match phase {
            Phase::Done(_) => report.dbs_updated += 1,
            Phase::NotModified => {}
            Phase::NotFound => report.errors.push(format!("{path}: gone upstream (404)")),
            Phase::Failed(e) => report.errors.push(format!("{path}: {e}")),
            Phase::Connecting | Phase::Streaming(_) => {}
        }
    }
}

/// Step 2: plan ([`plan_prefetch`], [`plan_refetch`] for `report.republished`) on a
/// blocking thread, then fetch, `refresh.prefetch_concurrency` at a time; counted in `report`.
async fn prefetch(jobs: &Jobs, report: &mut RefreshReport) {
    let files = jobs.index.snapshot();
    let catalog = jobs.catalog.clone();
    let root = jobs.store.root().to_path_buf();
    let republished = report.republished.clone();
    let plan = actix_web::web::block(move || {
        let mut plan = plan_prefetch(&files, &catalog, &root);
        plan.extend(plan_refetch(&republished, &catalog, &root));
        plan
    })
    .await
    .unwrap_or_else(|e| {
        report
            .errors
            .push(format!("prefetch planning did not finish: {e}"));
        Vec::new()
    });
    if !plan.is_empty() {
        log::info!("refresh: prefetching {} file(s)", plan.len());
    }
    let done: Vec<(String, Phase)> = futures::stream::iter(plan)
        .filter_map(|item| async move {
            let path = RepoPath::from_parts(&item.upstream, &item.rel).ok()?;
            Some((path, item.expected))
        })
        .map(|(path, expected)| async move {
            let phase = fetch_and_wait(jobs, &path, None, expected).await;
            (path.key(), phase)
        })
        .buffer_unordered(jobs.cfg.refresh.prefetch_concurrency)
        .collect()
        .await;
    for (key, phase) in done {
        match phase {
            Phase::Done(_) => report.prefetched.push(key),
            Phase::NotFound => report
                .errors
                .push(format!("prefetch {key}: not found upstream")),
            Phase::Failed(e) => report.errors.push(format!("prefetch {key}: {e}")),
            _ => {}
        }
    }
    report.prefetched.sort();
}

/// The refresh's summary line, and each of its problems, in the log.
fn log_report(report: &RefreshReport) {
    log::info!(
        "refresh: {} db(s) checked, {} updated, {} re-published package file(s) dropped, {} prefetched, {} removed by cleanup, {} error(s) in {} ms",
        report.dbs_checked,
        report.dbs_updated,
        report.republished.len(),
        report.prefetched.len(),
        report.cleaned,
        report.errors.len(),
        report.duration_ms
    );
    for e in &report.errors {
        log::warn!("refresh: {e}");
    }
}

/// Refresh every `interval` until the server stops.
pub async fn run_schedule(jobs: std::sync::Arc<Jobs>, interval: Duration) {
    log::info!(
        "scheduled refresh every {}",
        humantime::format_duration(interval)
    );
    loop {
        tokio::time::sleep(interval).await;
        refresh_now(&jobs).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::test_cache::{listed_sha256, Listed, TestCache, CORE};

    /// `(upstream/rel, expected size)` of a plan.
    fn items(plan: &[PrefetchItem]) -> Vec<(String, Option<u64>)> {
        plan.iter()
            .map(|i| {
                (
                    format!("{}/{}", i.upstream, i.rel),
                    i.expected.as_ref().map(|e| e.size),
                )
            })
            .collect()
    }

    #[test]
    fn prefetch_plans_the_newer_version_a_db_lists_with_its_sig_when_cached() {
        let mut c = TestCache::new();
        c.db(
            CORE,
            "core.db",
            &[
                Listed("a-1.1-1-x86_64.pkg.tar.zst", 111),
                Listed("b-2-1-any.pkg.tar.zst", 222),
                Listed("c-0.9-1-any.pkg.tar.zst", 99),
                Listed("d-2-1-any.pkg.tar.zst", 20),
                Listed("notcached-1-1-any.pkg.tar.zst", 1),
            ],
        );
        for name in [
            // newer upstream, signature cached: both come
            "a-1.0-1-x86_64.pkg.tar.zst",
            "a-1.0-1-x86_64.pkg.tar.zst.sig",
            "a-0.9-1-x86_64.pkg.tar.zst",
            // newer upstream, no signature cached: the package alone
            "b-1-1-any.pkg.tar.zst",
            // the cached version is newer than the db's: nothing
            "c-1-1-any.pkg.tar.zst",
            // the db's version is cached already: nothing
            "d-1-1-any.pkg.tar.zst",
            "d-2-1-any.pkg.tar.zst",
            // in no db: nothing
            "e-1-1-any.pkg.tar.zst",
        ] {
            c.file(CORE, name, 1, 0);
        }
        // Another directory is planned from its own dbs only (it has none).
        c.file("arch/extra/os/x86_64", "a-1.0-1-x86_64.pkg.tar.zst", 1, 0);
        let plan = plan_prefetch(&c.files, &c.catalog, c.store.root());
        assert_eq!(
            items(&plan),
            [
                (format!("{CORE}/a-1.1-1-x86_64.pkg.tar.zst"), Some(111)),
                (format!("{CORE}/a-1.1-1-x86_64.pkg.tar.zst.sig"), None),
                (format!("{CORE}/b-2-1-any.pkg.tar.zst"), Some(222)),
            ]
        );
        let a = &plan[0];
        assert_eq!(a.upstream, "arch");
        assert_eq!(a.rel, "core/os/x86_64/a-1.1-1-x86_64.pkg.tar.zst");
        assert_eq!(
            a.expected.as_ref().map(|e| e.sha256.clone()),
            Some(listed_sha256("a-1.1-1-x86_64.pkg.tar.zst"))
        );
    }

    #[test]
    fn refetch_plans_republished_packages_with_what_the_db_now_says() {
        let mut c = TestCache::new();
        c.db(CORE, "core.db", &[Listed("a-1-1-any.pkg.tar.zst", 123)]);
        let keys = [
            format!("{CORE}/a-1-1-any.pkg.tar.zst"),
            // no longer listed: nothing to fetch
            format!("{CORE}/gone-1-1-any.pkg.tar.zst"),
            // not a package
            format!("{CORE}/a-1-1-any.pkg.tar.zst.sig"),
        ];
        let plan = plan_refetch(&keys, &c.catalog, c.store.root());
        assert_eq!(
            plan,
            [PrefetchItem {
                upstream: "arch".into(),
                rel: "core/os/x86_64/a-1-1-any.pkg.tar.zst".into(),
                expected: Some(Expected {
                    size: 123,
                    sha256: listed_sha256("a-1-1-any.pkg.tar.zst"),
                }),
            }]
        );
    }
}
