//! The custom repos' admin endpoints (token required): the repos' summary, upload, list and
//! remove packages of a [`crate::custom_repo`]. The web interface and `pkgstash repo add`
//! upload through the same `PUT` (the same checks, the same messages). Errors map to statuses: no such repo or package `404`; a bad
//! package, architecture or signature `400`; an upload over the repo's `max_upload` `413`;
//! storage or signing failures `500`.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::json;
use crate::custom_repo::CustomRepoError;
use crate::http::error::ApiError;
use crate::state::AppState;

/// Header carrying an upload's detached signature, base64.
pub const SIGNATURE_HEADER: &str = "x-pkgstash-signature";

impl From<CustomRepoError> for ApiError {
    fn from(e: CustomRepoError) -> Self {
        use CustomRepoError as R;
        match e {
            R::NoSuchRepo(_) | R::NoSuchPackage { .. } => ApiError::NotFoundWhy(e.to_string()),
            R::BadPackage(_) | R::WrongArch { .. } | R::BadSignature(_) => {
                ApiError::BadRequest(e.to_string())
            }
            R::Io { .. } | R::Sign { .. } => ApiError::Internal(e.to_string()),
        }
    }
}

/// One repo in `GET repos`.
#[derive(Debug, Serialize)]
struct RepoSummary {
    name: String,
    arch: Vec<String>,
    packages: usize,
    /// Sum of the packages' archive sizes (`csize`).
    bytes: u64,
    /// A `sign_key` is configured: the server signs uploads and dbs.
    signed: bool,
    max_upload: u64,
    /// The AUR build server publishes into this repo.
    aur: bool,
}

/// `GET repos`: every custom repo with its package count and settings, by name.
pub(super) async fn summary(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    crate::admin::auth::require(&req)?;
    let aur_repo = state.cfg.aur.as_ref().map(|a| a.repo.as_str());
    let mut out = Vec::new();
    for repo in state.repos.iter() {
        let name = repo.cfg.name.clone();
        let packages = state.repos.list(&name)?;
        out.push(RepoSummary {
            arch: repo.cfg.arch.clone(),
            packages: packages.len(),
            bytes: packages.iter().map(|p| p.csize).sum(),
            signed: repo.cfg.sign_key.is_some(),
            max_upload: repo.cfg.max_upload,
            aur: aur_repo == Some(name.as_str()),
            name,
        });
    }
    Ok(json(&out))
}

/// Query of the upload.
#[derive(Debug, Deserialize)]
pub struct UploadQuery {
    pub filename: String,
}

/// `PUT repos/<repo>/packages?filename=F`: the body is the package, its detached signature
/// (if any) is in [`SIGNATURE_HEADER`]; answers [`crate::custom_repo::Added`].
pub(super) async fn upload(
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
    let filename = upload_filename(&req)?;
    let sig = signature(&req)?;
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

/// The upload's `?filename=`: a package file name, no `/`.
fn upload_filename(req: &HttpRequest) -> Result<String, ApiError> {
    let q = web::Query::<UploadQuery>::from_query(req.query_string()).map_err(|e| {
        ApiError::BadRequest(format!("query: {e} (need ?filename=NAME.pkg.tar.zst)"))
    })?;
    let filename = q.filename.clone();
    if !crate::repo::package::is_package_file_name(&filename) || filename.contains('/') {
        return Err(ApiError::BadRequest(format!(
            "`{filename}` is not a package file name (name-version-arch.pkg.tar.zst)"
        )));
    }
    Ok(filename)
}

/// The detached signature in [`SIGNATURE_HEADER`] (base64), if any.
fn signature(req: &HttpRequest) -> Result<Option<Vec<u8>>, ApiError> {
    use base64::Engine;
    let Some(v) = req.headers().get(SIGNATURE_HEADER) else {
        return Ok(None);
    };
    let text = v
        .to_str()
        .map_err(|_| ApiError::BadRequest("signature header is not ASCII".into()))?;
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map(Some)
        .map_err(|e| ApiError::BadRequest(format!("signature is not base64: {e}")))
}

/// `GET repos/<repo>/packages`: the repo's current packages, sorted by name.
pub(super) async fn list(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    crate::admin::auth::require(&req)?;
    let repo = req.match_info().get("repo").unwrap_or_default();
    Ok(json(&state.repos.list(repo)?))
}

/// `DELETE repos/<repo>/packages/<name>`: remove a package from the repo's dbs; answers its
/// metadata.
pub(super) async fn remove(
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
