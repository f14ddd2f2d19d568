//! The build server's admin endpoints, under `/_pkgstash/api/aur/` (token required; routes in
//! [`crate::admin::routes`]'s table). `409 Conflict` when the build server is off (no `[aur]`)
//! or the revision differs, `404` when nothing is pending for `name`.

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::json;
use crate::aur::queue::DecisionError;
use crate::aur::AurService;
use crate::http::error::ApiError;
use crate::state::AppState;

/// Query of `POST aur/approve/{name}`.
#[derive(Debug, Deserialize)]
pub struct ApproveQuery {
    pub rev: Option<String>,
}

/// Answer of `POST aur/reject/{name}` and `POST aur/check`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Done {
    pub pkgbase: Option<String>,
    pub rev: Option<String>,
    pub message: String,
}

fn service(req: &HttpRequest, state: &AppState) -> Result<Arc<AurService>, ApiError> {
    crate::admin::auth::require(req)?;
    state.aur.clone().ok_or_else(|| {
        ApiError::Conflict("the AUR build server is off (no [aur] section in the config)".into())
    })
}

fn decision_error(e: DecisionError) -> ApiError {
    match e {
        DecisionError::NothingPending(_) => ApiError::NotFound,
        e @ DecisionError::RevMismatch { .. } => ApiError::Conflict(e.to_string()),
    }
}

/// `GET aur/pending`: revisions waiting for approval, with reasons and diff.
pub(super) async fn pending(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let aur = service(&req, &state)?;
    Ok(json(&aur.pending()))
}

/// `POST aur/approve/{name}?rev=SHA`: approve the pending revision (must be `SHA` when given)
/// and queue it; with none pending, queue a failed build of the approved revision again.
pub(super) async fn approve(
    req: HttpRequest,
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let aur = service(&req, &state)?;
    let q = web::Query::<ApproveQuery>::from_query(req.query_string())
        .map_err(|e| ApiError::BadRequest(format!("query: {e}")))?;
    let rev = q.rev.as_deref().map(str::trim).filter(|r| !r.is_empty());
    if let Some(r) = rev {
        if !crate::aur::git::is_full_rev(r) {
            return Err(ApiError::BadRequest(format!(
                "`{r}` is not a full git revision id (40 hex digits)"
            )));
        }
    }
    let approval = aur.approve(&name, rev).await.map_err(decision_error)?;
    Ok(json(&approval))
}

/// `POST aur/reject/{name}`: drop the pending revision; it is not held again.
pub(super) async fn reject(
    req: HttpRequest,
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let aur = service(&req, &state)?;
    let p = aur.reject(&name).await.map_err(decision_error)?;
    Ok(json(&Done {
        message: format!("rejected {} {} (rev {})", p.pkgbase, p.version, p.rev),
        pkgbase: Some(p.pkgbase),
        rev: Some(p.rev),
    }))
}

/// `POST aur/check`: check the AUR now.
pub(super) async fn check(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let aur = service(&req, &state)?;
    aur.check_soon();
    Ok(json(&Done {
        pkgbase: None,
        rev: None,
        message: "AUR check started".into(),
    }))
}
