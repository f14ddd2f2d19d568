//! The `/_pkgstash/` routes: the public web status page, `status.json` and Prometheus metrics,
//! and the token-protected admin API under `/_pkgstash/api/` (JSON):
//!
//! | route | does |
//! |---|---|
//! | `GET status` | [`Status`] snapshot |
//! | `POST refresh` | revalidate dbs, prefetch updates, cleanup; answers the report |
//! | `POST cleanup?dry_run=true` | apply (or only plan) the retention policy |
//! | `DELETE cache/<upstream>/<path>` | evict one cached file |
//! | `GET mirrors` | mirror health |
//! | `… aur/…` | AUR build server: see [`crate::aur::api`] |
//!
//! Every admin route checks [`crate::auth::AdminAuth`] first, also for unknown routes, so
//! the API's shape is not visible without the token.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::path::RepoPath;
use crate::server::AppState;
use crate::status::Status;

/// Prefix of every pkgstash-own route.
pub const PREFIX: &str = "/_pkgstash";

/// The status page, embedded in the binary.
const STATUS_PAGE: &str = include_str!("status_page.html");

/// Register the `/_pkgstash` routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/_pkgstash", web::get().to(redirect_to_page))
        .route("/_pkgstash/", web::get().to(page))
        .route("/_pkgstash/status.json", web::get().to(public_status))
        .route("/_pkgstash/metrics", web::get().to(metrics))
        .service(
            web::scope("/_pkgstash/api")
                .route("/status", web::get().to(api_status))
                .route("/refresh", web::post().to(refresh))
                .route("/cleanup", web::post().to(cleanup))
                .route("/mirrors", web::get().to(mirrors))
                .route("/cache/{path:.*}", web::delete().to(evict))
                .configure(crate::aur::api::configure)
                .default_service(web::to(unknown)),
        );
}

fn json<T: Serialize>(value: &T) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(value)
}

async fn redirect_to_page() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, "/_pkgstash/"))
        .finish()
}

async fn page() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
             connect-src 'self'; img-src 'self' data:",
        ))
        .body(STATUS_PAGE)
}

/// Read-only status behind the web page: no token needed.
async fn public_status(state: web::Data<AppState>) -> HttpResponse {
    json(&Status::collect(&state))
}

async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let m = &state.metrics;
    m.inflight.set(state.registry.snapshot().len() as i64);
    let usage = state.index.usage();
    m.cache_bytes
        .set(usage.values().map(|u| u.bytes).sum::<u64>() as i64);
    m.cache_files
        .set(usage.values().map(|u| u.files).sum::<u64>() as i64);
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(m.render())
}

async fn api_status(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state.auth.check(&req)?;
    Ok(json(&Status::collect(&state)))
}

async fn mirrors(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state.auth.check(&req)?;
    let all: Vec<_> = state.pools.iter().flat_map(|p| p.status()).collect();
    Ok(json(&all))
}

async fn refresh(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state.auth.check(&req)?;
    if state.refresh_lock.try_lock().is_err() {
        return Err(ApiError::Conflict("a refresh is already running".into()));
    }
    log::info!("admin: refresh requested");
    let report = crate::refresh::refresh_now(&state).await;
    Ok(json(&report))
}

/// Query of `POST cleanup`.
#[derive(Debug, Deserialize)]
pub struct CleanupQuery {
    #[serde(default)]
    pub dry_run: bool,
}

async fn cleanup(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state.auth.check(&req)?;
    let q = web::Query::<CleanupQuery>::from_query(req.query_string())
        .map_err(|e| ApiError::BadRequest(format!("query: {e}")))?;
    log::info!("admin: cleanup requested (dry run: {})", q.dry_run);
    let report = crate::cleanup::cleanup_in_background(&state, q.dry_run).await;
    Ok(json(&report))
}

/// Answer of `DELETE cache/...`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Evicted {
    pub path: String,
    pub bytes: u64,
}

async fn evict(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state.auth.check(&req)?;
    let raw = req
        .path()
        .strip_prefix("/_pkgstash/api/cache")
        .unwrap_or_default();
    let path = RepoPath::parse(raw)?;
    if state.pools.get(path.upstream()).is_none() {
        return Err(ApiError::NotFound);
    }
    if state.registry.get(&path).is_some() {
        return Err(ApiError::Conflict(format!("{path} is being downloaded")));
    }
    let file = state.store.final_path(&path);
    let bytes = match std::fs::metadata(&file) {
        Ok(m) if m.is_file() => m.len(),
        Ok(_) => return Err(ApiError::NotFound),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(ApiError::NotFound),
        Err(e) => return Err(ApiError::Internal(format!("cannot read {path}: {e}"))),
    };
    std::fs::remove_file(&file)
        .map_err(|e| ApiError::Internal(format!("cannot remove {path}: {e}")))?;
    state.index.remove(&path.key());
    log::info!("admin: evicted {path} ({bytes} bytes)");
    Ok(json(&Evicted {
        path: path.to_string(),
        bytes,
    }))
}

async fn unknown(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state.auth.check(&req)?;
    Err(ApiError::NotFound)
}
