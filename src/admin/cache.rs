//! The cache's admin endpoints (token required): the status snapshot, mirror health and the
//! clearing of a mirror's cooldown, a refresh, a cleanup and the eviction of one cached file.

use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::json;
use crate::admin::status::Status;
use crate::cache::inflight::{Download, Phase};
use crate::http::error::ApiError;
use crate::repo::path::RepoPath;
use crate::state::AppState;

/// How long an eviction waits for a download whose body is complete to be published.
const PUBLISH_WAIT: Duration = Duration::from_secs(60);

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

/// Query of `POST mirrors/reset-cooldown`.
#[derive(Debug, Deserialize)]
struct ResetCooldownQuery {
    upstream: String,
    /// A `MirrorStatus::url` (credentials shown redacted).
    url: String,
}

/// `POST mirrors/reset-cooldown?upstream=U&url=URL`: clear a mirror's cooldown and
/// consecutive failures; answers its status. `404` for an unknown upstream or URL.
pub(super) async fn reset_cooldown(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    crate::admin::auth::require(&req)?;
    let q = web::Query::<ResetCooldownQuery>::from_query(req.query_string())
        .map_err(|e| ApiError::BadRequest(format!("query: {e} (need ?upstream=U&url=URL)")))?;
    let status = state
        .pools
        .get(&q.upstream)
        .and_then(|pool| pool.reset_cooldown(&q.url))
        .ok_or_else(|| {
            ApiError::NotFoundWhy(format!("no mirror {} in upstream {}", q.url, q.upstream))
        })?;
    log::info!("admin: cooldown of {} cleared", status.url);
    Ok(json(&status))
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

/// Wait until `download` has an outcome (published, failed, …), as long as only its
/// publication is left: its body complete (verified, or every announced byte written). `false`
/// while the body is still arriving (or upstream has not answered), or when the outcome did
/// not come within `limit`.
async fn settled(download: &Arc<Download>, limit: Duration) -> bool {
    let mut rx = download.subscribe();
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let arriving = {
            let p = rx.borrow_and_update();
            match &p.phase {
                Phase::Connecting => true,
                Phase::Streaming(meta) => {
                    !(p.verified || meta.total.is_some_and(|total| p.written >= total))
                }
                _ => return true,
            }
        };
        if arriving {
            return false;
        }
        match tokio::time::timeout_at(deadline, rx.changed()).await {
            Ok(Ok(())) => {}
            // The task is gone (its outcome was sent before): nothing runs any more.
            Ok(Err(_)) => return true,
            Err(_) => return false,
        }
    }
}

/// Answer of `DELETE cache/...`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Evicted {
    pub path: String,
    pub bytes: u64,
}

/// The part of an `api/cache…` request's path after `/_pkgstash/api/cache` (`""` or `/…`),
/// not yet checked: the listing and the evict parse it each their way.
pub(super) fn cache_path(req: &HttpRequest) -> &str {
    req.path()
        .strip_prefix("/_pkgstash/api/cache")
        .unwrap_or_default()
}

/// `DELETE cache/<upstream>/<path>`: evict one cached file. `404` when it is not cached, `409`
/// while it is being downloaded.
pub(super) async fn evict(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    crate::admin::auth::require(&req)?;
    let path = RepoPath::parse(cache_path(&req))?;
    if state.pools.get(path.upstream()).is_none() {
        return Err(ApiError::NotFound);
    }
    if let Some(d) = state.registry.get(&path) {
        if !settled(&d, PUBLISH_WAIT).await {
            return Err(ApiError::Conflict(format!("{path} is being downloaded")));
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::inflight::BodyMeta;

    fn download() -> Arc<Download> {
        let path = RepoPath::parse("/arch/core/os/x86_64/a-1-1-any.pkg.tar.zst").expect("path");
        Arc::new(Download::detached(path))
    }

    fn meta(total: Option<u64>) -> BodyMeta {
        BodyMeta {
            total,
            last_modified: None,
        }
    }

    #[tokio::test]
    async fn a_body_still_arriving_is_a_conflict() {
        let d = download();
        assert!(!settled(&d, Duration::from_secs(5)).await, "connecting");
        d.set_streaming(meta(Some(100)), 10);
        assert!(!settled(&d, Duration::from_secs(5)).await, "streaming");
        d.set_streaming(meta(None), 100);
        assert!(!settled(&d, Duration::from_secs(5)).await, "length unknown");
    }

    #[tokio::test]
    async fn a_complete_body_is_waited_for_until_published() {
        for verified in [true, false] {
            let d = download();
            d.set_streaming(meta(Some(100)), 100);
            if verified {
                d.set_verified();
            }
            let publisher = d.clone();
            let t0 = tokio::time::Instant::now();
            let task = tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(300)).await;
                publisher.finish(Phase::Done(Arc::new(meta(Some(100)))));
            });
            assert!(settled(&d, Duration::from_secs(10)).await);
            assert!(
                t0.elapsed() >= Duration::from_millis(300),
                "waited for Done"
            );
            task.await.expect("task");
        }
        // Never published within the limit: still a conflict.
        let d = download();
        d.set_streaming(meta(Some(100)), 100);
        d.set_verified();
        assert!(!settled(&d, Duration::from_millis(100)).await);
        // Failed or done: no conflict.
        d.finish(Phase::NotFound);
        assert!(settled(&d, Duration::from_millis(100)).await);
    }
}
