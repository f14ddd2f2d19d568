//! The cache's admin endpoints (token required): the status snapshot, mirror health, a
//! refresh, a cleanup and the eviction of one cached file.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::json;
use crate::admin::status::Status;
use crate::http::error::ApiError;
use crate::repo::path::RepoPath;
use crate::state::AppState;

/// `GET status`: the [`Status`] snapshot.
pub(super) async fn api_status(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    crate::admin::auth::require(&req)?;
    Ok(json(&Status::collect(&state)))
}

/// `GET mirrors`: every upstream's mirror health.
pub(super) async fn mirrors(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    crate::admin::auth::require(&req)?;
    let all: Vec<_> = state.pools.iter().flat_map(|p| p.status()).collect();
    Ok(json(&all))
}

/// `POST refresh`: revalidate dbs, prefetch updates, cleanup; answers the report. `409` while
/// another refresh runs.
pub(super) async fn refresh(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    crate::admin::auth::require(&req)?;
    if state.jobs.refresh_lock.try_lock().is_err() {
        return Err(ApiError::Conflict("a refresh is already running".into()));
    }
    log::info!("admin: refresh requested");
    let report = crate::jobs::refresh::refresh_now(&state.jobs).await;
    Ok(json(&report))
}

/// Query of `POST cleanup`.
#[derive(Debug, Deserialize)]
pub struct CleanupQuery {
    #[serde(default)]
    pub dry_run: bool,
}

/// `POST cleanup?dry_run=true`: apply (or only plan) the retention policy.
pub(super) async fn cleanup(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    crate::admin::auth::require(&req)?;
    let q = web::Query::<CleanupQuery>::from_query(req.query_string())
        .map_err(|e| ApiError::BadRequest(format!("query: {e}")))?;
    log::info!("admin: cleanup requested (dry run: {})", q.dry_run);
    let report = crate::jobs::cleanup::cleanup_in_background(&state.jobs, q.dry_run)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(json(&report))
}

/// Answer of `DELETE cache/...`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Evicted {
    pub path: String,
    pub bytes: u64,
}

/// `DELETE cache/<upstream>/<path>`: evict one cached file. `404` when it is not cached, `409`
/// while it is being downloaded.
pub(super) async fn evict(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    crate::admin::auth::require(&req)?;
    let raw = req
        .path()
        .strip_prefix("/_pkgstash/api/cache")
        .unwrap_or_default();
    let path = RepoPath::parse(raw)?;
    if state.pools.get(path.upstream()).is_none() {
        return Err(ApiError::NotFound);
    }
    // A download that has published (its task is just ending) is no conflict.
    let downloading = state.registry.get(&path).is_some_and(|d| {
        matches!(
            d.progress().phase,
            crate::cache::inflight::Phase::Connecting | crate::cache::inflight::Phase::Streaming(_)
        )
    });
    if downloading {
        return Err(ApiError::Conflict(format!("{path} is being downloaded")));
    }
    // A stat and the unlink of a file that may be large (some filesystems take their time
    // to free it): off the async worker.
    let (store, target) = (state.store.clone(), path.clone());
    let bytes = web::block(move || {
        let bytes = match std::fs::metadata(store.final_path(&target)) {
            Ok(m) if m.is_file() => m.len(),
            Ok(_) => return Err(ApiError::NotFound),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(ApiError::NotFound),
            Err(e) => return Err(ApiError::Internal(format!("cannot read {target}: {e}"))),
        };
        // Another eviction (or cleanup) may have removed it since: it is gone, as asked.
        match store.remove(&target) {
            Ok(true) => Ok(bytes),
            Ok(false) => Err(ApiError::NotFound),
            Err(e) => Err(ApiError::Internal(format!("cannot remove {target}: {e}"))),
        }
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))??;
    state.index.remove(&path.key());
    state.open_files.forget(&path.key());
    log::info!("admin: evicted {path} ({bytes} bytes)");
    Ok(json(&Evicted {
        path: path.to_string(),
        bytes,
    }))
}
