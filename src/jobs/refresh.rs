//! Scheduled and on-demand refresh: revalidate every cached repo database upstream (a
//! conditional GET through the in-flight registry, so it coalesces with client requests), then
//! **prefetch** new versions of packages already in the cache, then apply the cleanup policy.
//!
//! Prefetches go through the same registry as client misses: a client asking for a file while
//! it is being prefetched joins that download. Concurrency is bounded by
//! `refresh.prefetch_concurrency`; only one refresh runs at a time.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt;
use serde::Serialize;

use crate::cache::catalog::{is_package_name, Catalog};
use crate::cache::index::{unix_secs, FileInfo};
use crate::cache::inflight::{Failure, Phase};
use crate::jobs::Jobs;
use crate::repo::path::{FileKind, RepoPath};
use crate::repo::vercmp::{parse_pkg_filename, vercmp};
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
    // dir key ("upstream/dir") → file names there
    let mut dirs: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (key, _) in files {
        if let Some((dir, name)) = key.rsplit_once('/') {
            dirs.entry(dir).or_default().push(name);
        }
    }
    let mut out = Vec::new();
    for (dir_key, names) in dirs {
        let Some((upstream, rel_dir)) = dir_key.split_once('/') else {
            continue;
        };
        // newest cached version per (name, arch), and whether its .sig is cached
        let mut newest: HashMap<(String, String), (String, bool)> = HashMap::new();
        for name in names.iter().filter(|n| is_package_name(n)) {
            let Some(p) = parse_pkg_filename(name) else {
                continue;
            };
            let has_sig = names.contains(&format!("{name}.sig").as_str());
            let k = (p.name.clone(), p.arch.clone());
            let replace = newest
                .get(&k)
                .is_none_or(|(v, _)| vercmp(&p.version, v) == std::cmp::Ordering::Greater);
            if replace {
                newest.insert(k, (p.version.clone(), has_sig));
            }
        }
        if newest.is_empty() {
            continue;
        }
        let indexes = catalog.indexes_in(&root.join(dir_key));
        for ((name, arch), (version, has_sig)) in newest {
            let Some(entry) = indexes.iter().find_map(|i| i.by_name_arch(&name, &arch)) else {
                continue;
            };
            if vercmp(&entry.version, &version) != std::cmp::Ordering::Greater
                || names.contains(&entry.filename.as_str())
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

    report.republished = jobs.fetcher.context().republished.drain();

    // 2. Prefetch new versions of cached packages, and new builds of re-published ones.
    if jobs.cfg.refresh.prefetch {
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

    // 3. Apply the retention policy.
    match crate::jobs::cleanup::cleanup_in_background(jobs, false).await {
        Ok(cleanup) => report.cleaned = cleanup.removed.len(),
        Err(e) => report.errors.push(e.to_string()),
    }

    report.duration_ms = started.elapsed().as_millis() as u64;
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
    *jobs.last_refresh.lock() = Some(report.clone());
    let index = jobs.index.clone();
    match actix_web::web::block(move || index.persist()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => log::warn!("cannot persist last-served times: {e}"),
        Err(e) => log::warn!("cannot persist last-served times: {e}"),
    }
    report
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
