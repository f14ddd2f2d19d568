//! The build server's admin endpoints, under `/_pkgstash/api/aur/` (token required; routes in
//! [`crate::admin::routes`]'s table): the overview, held revisions, approve/reject (of exactly
//! the revision shown, when `rev` is given), a check, the builds and their logs
//! ([`crate::admin::build_log`]). `409 Conflict` when the build server is off (no `[aur]`) or
//! the revision differs, `404` when nothing is pending for `name` or no build has that id.

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::json;
use crate::aur::queue::DecisionError;
use crate::aur::AurService;
use crate::http::error::ApiError;
use crate::state::AppState;

/// Query of `POST aur/approve/{name}` and `POST aur/reject/{name}`.
#[derive(Debug, Deserialize)]
pub struct ApproveQuery {
    pub rev: Option<String>,
}

/// Query of `GET aur/builds`.
#[derive(Debug, Deserialize)]
struct BuildsQuery {
    limit: Option<usize>,
    before: Option<u64>,
}

/// Builds answered at most (and by default) by `GET aur/builds`.
const MAX_LIMIT: usize = crate::aur::history::MAX_BUILDS;
const DEFAULT_LIMIT: usize = 50;

/// The `rev` of an approve or reject query: a full git revision id, or none.
fn asked_rev(req: &HttpRequest) -> Result<Option<String>, ApiError> {
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
    Ok(rev.map(String::from))
}

/// `GET aur`: tracked packages and their state, the queue, the builds in progress.
pub(super) async fn overview(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let aur = service(&req, &state)?;
    let view = web::block(move || aur.overview())
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(json(&view))
}

/// `GET aur/builds?limit=N&before=ID`: builds, newest first (`limit` 1–500, default 50).
pub(super) async fn builds(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let aur = service(&req, &state)?;
    let q = web::Query::<BuildsQuery>::from_query(req.query_string())
        .map_err(|e| ApiError::BadRequest(format!("query: {e}")))?;
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    let before = q.before;
    let list = web::block(move || aur.builds(limit, before))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(json(&list))
}

/// The `{id}` of a build route (`404` for anything but a number).
fn build_id(req: &HttpRequest) -> Result<u64, ApiError> {
    req.match_info()
        .get("id")
        .and_then(|v| v.parse().ok())
        .ok_or(ApiError::NotFound)
}

/// `GET aur/builds/{id}`: one build.
pub(super) async fn build(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let aur = service(&req, &state)?;
    let id = build_id(&req)?;
    let found = web::block(move || aur.build(id))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let (b, _) = found.ok_or(ApiError::NotFound)?;
    Ok(json(&b))
}

/// `GET aur/builds/{id}/log`: the log, as a file or as Server-Sent Events.
pub(super) async fn build_log(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let aur = service(&req, &state)?;
    let id = build_id(&req)?;
    crate::admin::build_log::answer(&req, aur, id).await
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
    let rev = asked_rev(&req)?;
    let approval = aur
        .approve(&name, rev.as_deref())
        .await
        .map_err(decision_error)?;
    Ok(json(&approval))
}

/// `POST aur/reject/{name}?rev=SHA`: drop the pending revision (must be `SHA` when given); it
/// is not held again.
pub(super) async fn reject(
    req: HttpRequest,
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let aur = service(&req, &state)?;
    let rev = asked_rev(&req)?;
    let p = aur
        .reject(&name, rev.as_deref())
        .await
        .map_err(decision_error)?;
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
