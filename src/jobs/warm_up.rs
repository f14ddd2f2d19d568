//! Start-up: every cached repo db of a configured upstream is read into the catalog on a
//! thread of its own while the server already listens, so that no request waits for a parse
//! (Arch's `extra.db` takes a quarter of a CPU-second; the first miss of a repo after start-up
//! used to wait for it). A request that needs a db being read meanwhile waits for that one
//! parse ([`crate::cache::catalog::Catalog`]: one parse per db version), and a download does
//! not even wait to ask upstream ([`crate::upstream::fetch`] looks the db up beside it).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use crate::cache::catalog::is_db_name;
use crate::cache::index::FileInfo;
use crate::cache::store::Store;
use crate::jobs::Jobs;
use crate::repo::path::RepoPath;

/// The final paths of the cached repo dbs (`*.db`) among `files` (the cache index's keys)
/// of the upstreams `configured` says are, sorted.
pub fn cached_dbs(
    files: &[(String, FileInfo)],
    store: &Store,
    configured: impl Fn(&str) -> bool,
) -> Vec<PathBuf> {
    let mut dbs: Vec<PathBuf> = files
        .iter()
        .filter_map(|(key, _)| {
            let (up, rel) = key.split_once('/')?;
            let name = rel.rsplit('/').next()?;
            (configured(up) && is_db_name(name)).then_some(())?;
            RepoPath::from_parts(up, rel).ok()
        })
        .map(|p| store.final_path(&p))
        .collect();
    dbs.sort();
    dbs
}

/// Read the cached dbs into the catalog on a new thread (logged when done). An error to
/// start the thread is logged: requests then parse what they need, as they would anyway.
pub fn start(jobs: &Arc<Jobs>) {
    let jobs = jobs.clone();
    let spawned = std::thread::Builder::new()
        .name("catalog-warm-up".into())
        .spawn(move || {
            let started = Instant::now();
            let dbs = cached_dbs(&jobs.index.snapshot(), &jobs.store, |up| {
                jobs.cfg.upstreams.contains_key(up)
            });
            let read = jobs.catalog.warm(&dbs);
            log::info!(
                "catalog: {read} of {} cached repo db(s) read in {} ms",
                dbs.len(),
                started.elapsed().as_millis()
            );
        });
    if let Err(e) = spawned {
        log::warn!("cannot start reading the cached repo dbs in the background: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::catalog::{Expected, Verification};
    use crate::jobs::test_cache::{listed_sha256, Listed, TestCache, CORE};

    #[test]
    fn every_cached_db_of_a_configured_upstream_is_read_once_before_any_request() {
        let mut cache = TestCache::new();
        let pkg = "a-1-1-x86_64.pkg.tar.zst";
        cache.db(CORE, "core.db", &[Listed(pkg, 42)]);
        cache.db(CORE, "core.files", &[Listed(pkg, 42)]);
        cache.file(CORE, pkg, 42, 0);
        cache.db("other/core/os/x86_64", "core.db", &[]);
        let dbs = cached_dbs(&cache.files, &cache.store, |up| up == "arch");
        assert_eq!(dbs, [cache.dir.path().join(CORE).join("core.db")]);

        let dir = cache.dir.path().join(CORE);
        assert_eq!(
            cache.catalog.verification_if_parsed(&dir, pkg),
            None,
            "not parsed yet: only the blocking lookup can tell"
        );
        assert_eq!(cache.catalog.warm(&dbs), 1);
        let known = Verification::Known(Expected {
            size: 42,
            sha256: listed_sha256(pkg),
        });
        // From memory now: no parse on the request path.
        assert_eq!(
            cache.catalog.verification_if_parsed(&dir, pkg),
            Some(known.clone())
        );
        assert_eq!(cache.catalog.verification(&dir, pkg), known);
        assert_eq!(cache.catalog.parses(), 1);
    }
}
