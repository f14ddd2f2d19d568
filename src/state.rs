//! The state shared by every worker of the faces ([`crate::http`], [`crate::admin`]):
//! config, cache, upstream pools, download tasks, custom repos, the AUR build server.
//! Only the faces and the server import it; layers below take the parts they need.

use std::sync::Arc;
use std::time::Instant;

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
}

impl AppState {
    /// Build the state. Must run inside an actix `System` (it starts the fetch arbiter).
    pub fn new(cfg: Config, store: Store, repos: CustomRepos) -> AppState {
        let cfg = Arc::new(cfg);
        let store = Arc::new(store);
        let pools = Arc::new(Pools::from_config(&cfg));
        let metrics = Arc::new(Metrics::new());
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
        }
    }
}
