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
//! | `PUT repos/<repo>/packages?filename=F` | upload a package (body; signature in `X-Pkgstash-Signature`, base64) |
//! | `GET repos/<repo>/packages` | list a custom repo |
//! | `DELETE repos/<repo>/packages/<name>` | remove a package from a custom repo |
//! | `… aur/…` | AUR build server: see [`crate::admin::aur`] |
//!
//! Every admin route checks [`crate::admin::auth::AdminAuth`] first, also for unknown routes, so
//! the API's shape is not visible without the token.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use crate::admin::status::Status;
use crate::http::error::ApiError;
use crate::repo::path::RepoPath;
use crate::state::AppState;

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
                .route("/repos/{repo}/packages", web::put().to(repo_upload))
                .route("/repos/{repo}/packages", web::get().to(repo_list))
                .route(
                    "/repos/{repo}/packages/{name}",
                    web::delete().to(repo_remove),
                )
                .configure(crate::admin::aur::configure)
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
    crate::admin::auth::require(&req)?;
    Ok(json(&Status::collect(&state)))
}

async fn mirrors(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    crate::admin::auth::require(&req)?;
    let all: Vec<_> = state.pools.iter().flat_map(|p| p.status()).collect();
    Ok(json(&all))
}

async fn refresh(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
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

async fn cleanup(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
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

async fn evict(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
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

async fn unknown(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    crate::admin::auth::require(&req)?;
    let rel = req
        .path()
        .strip_prefix("/_pkgstash/api/")
        .unwrap_or_default();
    match allowed_methods(rel) {
        Some(allow) => Err(ApiError::MethodNotAllowedHere(allow)),
        None => Err(ApiError::NotFound),
    }
}

/// The methods of a known admin route (for 405 + `Allow`), `None` for unknown paths.
fn allowed_methods(rel: &str) -> Option<&'static str> {
    let parts: Vec<&str> = rel.split('/').collect();
    match parts.as_slice() {
        ["status"] | ["mirrors"] | ["aur", "pending"] => Some("GET"),
        ["refresh"] | ["cleanup"] | ["aur", "check"] => Some("POST"),
        ["aur", "approve" | "reject", name] if !name.is_empty() => Some("POST"),
        ["cache", ..] if parts.len() > 2 => Some("DELETE"),
        ["repos", repo, "packages"] if !repo.is_empty() => Some("GET, PUT"),
        ["repos", repo, "packages", name] if !repo.is_empty() && !name.is_empty() => Some("DELETE"),
        _ => None,
    }
}

/// Header carrying an upload's detached signature, base64.
pub const SIGNATURE_HEADER: &str = "x-pkgstash-signature";

impl From<crate::custom_repo::RepoError> for ApiError {
    fn from(e: crate::custom_repo::RepoError) -> Self {
        use crate::custom_repo::RepoError as R;
        match e {
            R::NoSuchRepo(_) | R::NoSuchPackage { .. } => ApiError::NotFoundWhy(e.to_string()),
            R::BadPackage(_) | R::WrongArch { .. } | R::BadSignature(_) => {
                ApiError::BadRequest(e.to_string())
            }
            R::Io { .. } | R::Sign { .. } => ApiError::Internal(e.to_string()),
        }
    }
}

/// Query of the upload.
#[derive(Debug, Deserialize)]
pub struct UploadQuery {
    pub filename: String,
}

async fn repo_upload(
    req: HttpRequest,
    state: web::Data<AppState>,
    mut body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    use futures::StreamExt;
    use std::io::Write;
    crate::admin::auth::require(&req)?;
    let repo_name = req.match_info().get("repo").unwrap_or_default().to_string();
    let repo = state
        .repos
        .get(&repo_name)
        .ok_or_else(|| ApiError::NotFoundWhy(format!("no repo named `{repo_name}`")))?;
    let q = web::Query::<UploadQuery>::from_query(req.query_string()).map_err(|e| {
        ApiError::BadRequest(format!("query: {e} (need ?filename=NAME.pkg.tar.zst)"))
    })?;
    let filename = q.filename.clone();
    if !crate::repo::package::is_package_file_name(&filename) || filename.contains('/') {
        return Err(ApiError::BadRequest(format!(
            "`{filename}` is not a package file name (name-version-arch.pkg.tar.zst)"
        )));
    }
    let sig = match req.headers().get(SIGNATURE_HEADER) {
        Some(v) => {
            use base64::Engine;
            let text = v
                .to_str()
                .map_err(|_| ApiError::BadRequest("signature header is not ASCII".into()))?;
            Some(
                base64::engine::general_purpose::STANDARD
                    .decode(text.trim())
                    .map_err(|e| ApiError::BadRequest(format!("signature is not base64: {e}")))?,
            )
        }
        None => None,
    };
    let limit = repo.cfg.max_upload;
    if let Some(len) = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if len > limit {
            return Err(ApiError::PayloadTooLarge(format!(
                "{len} bytes is over the repo's max_upload of {limit}"
            )));
        }
    }
    // Streamed to a temp file next to the pool: deleted when dropped, so an interrupted or
    // refused upload leaves no trace. (Chunks go to the page cache, no fsync: the durable copy
    // into the pool runs off the async worker, below.)
    let mut tmp = tempfile::NamedTempFile::new_in(repo.upload_dir())
        .map_err(|e| ApiError::Internal(format!("cannot create upload file: {e}")))?;
    let mut size = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| ApiError::BadRequest(format!("upload interrupted: {e}")))?;
        size += chunk.len() as u64;
        if size > limit {
            return Err(ApiError::PayloadTooLarge(format!(
                "upload is over the repo's max_upload of {limit} bytes"
            )));
        }
        tmp.write_all(&chunk)
            .map_err(|e| ApiError::Internal(format!("cannot write upload: {e}")))?;
    }
    if size == 0 {
        return Err(ApiError::BadRequest("empty upload".into()));
    }
    let repos = state.repos.clone();
    let added = web::block(move || {
        let r = repos.add_upload(&repo_name, tmp.path(), &filename, sig);
        drop(tmp);
        r
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))??;
    Ok(json(&added))
}

async fn repo_list(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    crate::admin::auth::require(&req)?;
    let repo = req.match_info().get("repo").unwrap_or_default();
    Ok(json(&state.repos.list(repo)?))
}

async fn repo_remove(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    crate::admin::auth::require(&req)?;
    let repo = req.match_info().get("repo").unwrap_or_default().to_string();
    let name = req.match_info().get("name").unwrap_or_default().to_string();
    let repos = state.repos.clone();
    let removed = web::block(move || repos.remove(&repo, &name))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))??;
    Ok(json(&removed))
}
