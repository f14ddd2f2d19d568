//! Errors of the HTTP layer. [`ApiError`] is the only place that picks status codes; handlers
//! return it and actix renders it as a short `text/plain` body.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};

use crate::inflight::Failure;
use crate::path::PathError;
use crate::store::StorageErrorKind;

/// An error answered to an HTTP client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("not found")]
    NotFound,
    #[error("not found: {0}")]
    NotFoundWhy(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    /// A known admin route asked with another method; the value is the `Allow` header.
    #[error("method not allowed (allowed: {0})")]
    MethodNotAllowedHere(&'static str),
    #[error("upstream failed: {0}")]
    Upstream(String),
    #[error("upstream did not answer in time")]
    UpstreamTimeout,
    #[error("unauthorized: missing or wrong admin token")]
    Unauthorized,
    #[error("admin API disabled: no PKGSTASH_TOKEN is configured")]
    AdminDisabled,
    #[error("too many failed authentication attempts; try again later")]
    TooManyRequests,
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("payload too large: {0}")]
    PayloadTooLarge(String),
    #[error("internal error: {0}")]
    Internal(String),
    /// The cache's filesystem is full (RFC 4918 §11.5); details are in the log only.
    #[error("insufficient storage")]
    InsufficientStorage,
}

/// A failed download as answered to its clients: the mirrors' fault is a 502; the cache's own
/// trouble a 507 (full) or a 500 — never with the local error text or a path in the body.
impl From<&Failure> for ApiError {
    fn from(f: &Failure) -> Self {
        match f {
            Failure::Upstream(why) => ApiError::Upstream(why.to_string()),
            Failure::Storage(e) if e.kind == StorageErrorKind::NoSpace => {
                ApiError::InsufficientStorage
            }
            Failure::Storage(_) => ApiError::Internal("the cache cannot store files".into()),
            Failure::Internal(why) => ApiError::Internal(why.to_string()),
        }
    }
}

impl From<PathError> for ApiError {
    fn from(e: PathError) -> Self {
        match e {
            PathError::BadRequest(why) => ApiError::BadRequest(why.to_string()),
            PathError::NotFound(_) => ApiError::NotFound,
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound | ApiError::NotFoundWhy(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed | ApiError::MethodNotAllowedHere(_) => {
                StatusCode::METHOD_NOT_ALLOWED
            }
            ApiError::Upstream(_) => StatusCode::BAD_GATEWAY,
            ApiError::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::AdminDisabled => StatusCode::FORBIDDEN,
            ApiError::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::InsufficientStorage => StatusCode::INSUFFICIENT_STORAGE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut resp = HttpResponse::build(self.status_code());
        resp.insert_header((header::CONTENT_TYPE, "text/plain; charset=utf-8"))
            .insert_header((header::CACHE_CONTROL, "no-store"));
        match self {
            ApiError::Unauthorized => {
                resp.insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"pkgstash\""));
            }
            ApiError::MethodNotAllowed => {
                resp.insert_header((header::ALLOW, "GET, HEAD"));
            }
            ApiError::MethodNotAllowedHere(allow) => {
                resp.insert_header((header::ALLOW, *allow));
            }
            _ => {}
        }
        resp.body(format!("{self}\n"))
    }
}
