//! Background and on-demand jobs over the cache: db refresh and prefetch ([`refresh`]),
//! retention ([`cleanup`]), verification against the dbs ([`verify`]), the cached dbs read at
//! start-up ([`warm_up`]); the cached packages as the cleanup and prefetch plans see them
//! ([`packages`]).
//!
//! The jobs get what they need of the server as one [`Jobs`] handle (the cache's parts and the
//! fetcher), never the faces' state: they sit below the faces that start them.

pub mod cleanup;
pub(crate) mod packages;
pub(crate) mod refresh;
#[cfg(test)]
mod test_cache;
pub mod verify;
pub mod warm_up;

use std::sync::Arc;

use crate::cache::catalog::Catalog;
use crate::cache::index::CacheIndex;
use crate::cache::inflight::Registry;
use crate::cache::store::Store;
use crate::config::Config;
use crate::upstream::fetch::Fetcher;

/// The cache and upstream parts the jobs work on, and the refresh job's own state.
pub struct Jobs {
    pub cfg: Arc<Config>,
    pub store: Arc<Store>,
    pub index: Arc<CacheIndex>,
    pub catalog: Arc<Catalog>,
    pub registry: Arc<Registry>,
    pub fetcher: Fetcher,
    /// Report of the last refresh, if any ran.
    pub last_refresh: parking_lot::Mutex<Option<refresh::RefreshReport>>,
    /// Held while a refresh runs: one at a time.
    pub refresh_lock: tokio::sync::Mutex<()>,
}

impl Jobs {
    pub fn new(
        cfg: Arc<Config>,
        store: Arc<Store>,
        index: Arc<CacheIndex>,
        catalog: Arc<Catalog>,
        registry: Arc<Registry>,
        fetcher: Fetcher,
    ) -> Jobs {
        Jobs {
            cfg,
            store,
            index,
            catalog,
            registry,
            fetcher,
            last_refresh: parking_lot::Mutex::new(None),
            refresh_lock: tokio::sync::Mutex::new(()),
        }
    }
}

/// A job that could not run to its end (its blocking part panicked or was cancelled). The
/// cause is in the message, so it is no `source` (printed once).
#[derive(Debug, thiserror::Error)]
#[error("{job} did not finish: {cause}")]
pub struct JobFailed {
    pub job: &'static str,
    pub cause: actix_web::error::BlockingError,
}
