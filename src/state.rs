//! The state shared by every worker of the faces ([`crate::http`], [`crate::admin`]):
//! config, cache, upstream pools, download tasks, custom repos, the AUR build server.
//! Only the faces and the server import it; layers below take the parts they need.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::watch;

use crate::cache::catalog::Catalog;
use crate::cache::index::CacheIndex;
use crate::cache::inflight::Registry;
use crate::cache::store::Store;
use crate::config::Config;
use crate::custom_repo::CustomRepos;
use crate::jobs::Jobs;
use crate::metrics::Metrics;
use crate::upstream::fetch::{FetchContext, Fetcher};
use crate::upstream::pool::Pools;

/// State shared by every worker.
pub struct AppState {
    pub(crate) cfg: Arc<Config>,
    pub(crate) store: Arc<Store>,
    pub(crate) index: Arc<CacheIndex>,
    pub(crate) registry: Arc<Registry>,
    pub(crate) pools: Arc<Pools>,
    pub(crate) fetcher: Fetcher,
    pub(crate) metrics: Arc<Metrics>,
    /// Custom repos.
    pub(crate) repos: Arc<CustomRepos>,
    pub(crate) started: Instant,
    /// Refresh, cleanup: their handle on the cache and the fetcher.
    pub(crate) jobs: Arc<Jobs>,
    /// The AUR build server, when `[aur]` is configured.
    pub(crate) aur: Option<Arc<crate::aur::AurService>>,
    /// Open handles of recently hit files (the fast path's).
    pub(crate) open_files: Arc<crate::cache::open_files::OpenFiles>,
    /// Draining after SIGTERM, and the open client connections.
    pub(crate) drain: Arc<Drain>,
    /// Is the cache writable (the health check's cached probe)?
    pub(crate) write_probe: Arc<crate::cache::probe::WriteProbe>,
}

impl AppState {
    /// Build the state. Must run inside an actix `System` (it starts the fetch arbiter).
    pub fn new(cfg: Config, store: Store, repos: CustomRepos) -> AppState {
        let cfg = Arc::new(cfg);
        let store = Arc::new(store);
        let pools = Arc::new(Pools::from_config(&cfg));
        let metrics = Arc::new(Metrics::new());
        for name in cfg.upstreams.keys() {
            metrics.add_upstream(name);
        }
        let started = Instant::now();
        let index = Arc::new(CacheIndex::scan(store.root()));
        log::info!(
            "cache index: {} files in {} ms",
            index.len(),
            started.elapsed().as_millis()
        );
        let catalog = Arc::new(Catalog::default());
        let registry = Arc::new(Registry::default());
        let fetcher = Fetcher::new(Arc::new(FetchContext {
            store: store.clone(),
            index: index.clone(),
            catalog: catalog.clone(),
            pools: pools.clone(),
            metrics: metrics.clone(),
            timeout: cfg.upstream_timeout,
            min_rate: cfg.min_rate,
            max_unknown_size: cfg.max_unknown_size,
            pairs: Default::default(),
            republished: Default::default(),
            registry: registry.clone(),
        }));
        let jobs = Arc::new(Jobs::new(
            cfg.clone(),
            store.clone(),
            index.clone(),
            catalog.clone(),
            registry.clone(),
            fetcher.clone(),
        ));
        let repos = Arc::new(repos);
        let aur = cfg.aur.as_ref().map(|aur_cfg| {
            let publisher: Arc<dyn crate::aur::Publisher> = Arc::new(
                crate::aur::publish::CustomRepoPublisher::new(repos.clone(), &aur_cfg.repo),
            );
            crate::aur::AurService::new(aur_cfg.clone(), &cfg.cache_dir, publisher)
        });
        let write_probe = Arc::new(crate::cache::probe::WriteProbe::new(
            store.root().join(crate::cache::store::PARTIAL_DIR),
        ));
        AppState {
            repos,
            aur,
            cfg,
            store,
            index,
            registry,
            pools,
            fetcher,
            metrics,
            started: Instant::now(),
            jobs,
            open_files: Arc::new(crate::cache::open_files::OpenFiles::sized_for_this_process()),
            drain: Arc::default(),
            write_probe,
        }
    }
}

/// The draining flag and the count of open client connections, shared by every worker: what
/// the faces refuse new work while draining, the server waits for the connections to end.
#[derive(Debug)]
pub struct Drain {
    draining: watch::Sender<bool>,
    connections: Arc<AtomicUsize>,
}

impl Default for Drain {
    fn default() -> Drain {
        Drain {
            draining: watch::Sender::new(false),
            connections: Arc::default(),
        }
    }
}

impl Drain {
    /// Begin draining (idempotent): wakes every idle connection.
    pub fn start(&self) {
        self.draining.send_replace(true);
    }

    /// Has the drain begun?
    pub fn is_draining(&self) -> bool {
        *self.draining.borrow()
    }

    /// Resolves once the drain has begun (at once if it has).
    pub async fn started(&self) {
        let mut rx = self.draining.subscribe();
        // `Err` only when the sender is gone, which `self` prevents.
        let _ = rx.wait_for(|d| *d).await;
    }

    /// Count one open client connection until the guard is dropped.
    pub fn connection(&self) -> ConnectionGuard {
        self.connections.fetch_add(1, Ordering::Relaxed);
        ConnectionGuard(self.connections.clone())
    }

    /// Client connections open now.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }
}

/// One open connection, counted by [`Drain::connection`].
#[derive(Debug)]
pub struct ConnectionGuard(Arc<AtomicUsize>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_web::test]
    async fn connections_are_counted_and_idle_ones_woken() {
        let d = Drain::default();
        let g = d.connection();
        assert_eq!(d.connections(), 1);
        drop(g);
        assert_eq!(d.connections(), 0);
        assert!(!d.is_draining());
        let woken = d.started();
        d.start();
        tokio::time::timeout(std::time::Duration::from_secs(1), woken)
            .await
            .expect("woken");
        assert!(d.is_draining());
    }
}
