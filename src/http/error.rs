//! Errors of the HTTP layer. [`ApiError`] is the only place that picks status codes, and how
//! an error counts as a request's outcome ([`ApiError::outcome`]); handlers return it and
//! actix renders it as a short `text/plain` body (the fast path sends that same response).
//!
//! A 4xx body says what was wrong with the request (our own words about the client's input).
//! A 5xx body is a fixed sentence per kind: its detail — OS error texts, file paths, mirror
//! URLs and their answers — goes to the server log only ([`ApiError::public_text`]).

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};

use crate::cache::inflight::Failure;
use crate::cache::store::StorageErrorKind;
use crate::metrics::Outcome;
use crate::repo::path::PathError;

/// An error answered to an HTTP client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("bad request: {0}")]
    BadRequest(String),
    /// A request target too long to name a file (RFC 9110 §15.5.15).
    #[error("URI too long: {0}")]
    UriTooLong(&'static str),
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
    /// A package whose repo db entry is malformed: 502 (pacman tries its next `Server`).
    #[error("bad gateway: {0}")]
    Unverifiable(String),
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
            Failure::Unverifiable(why) => ApiError::Unverifiable(why.to_string()),
        }
    }
}

impl From<PathError> for ApiError {
    fn from(e: PathError) -> Self {
        match e {
            PathError::BadRequest(why) => ApiError::BadRequest(why.to_string()),
            PathError::TooLong(why) => ApiError::UriTooLong(why),
            PathError::NotFound(_) => ApiError::NotFound,
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::UriTooLong(_) => StatusCode::URI_TOO_LONG,
            ApiError::NotFound | ApiError::NotFoundWhy(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed | ApiError::MethodNotAllowedHere(_) => {
                StatusCode::METHOD_NOT_ALLOWED
            }
            ApiError::Upstream(_) | ApiError::Unverifiable(_) => StatusCode::BAD_GATEWAY,
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
        resp.body(self.public_text())
    }
}

impl ApiError {
    /// How a request answered with this error counts, in the metrics and the access log, on
    /// both front ends (the mirror handler and the fast path): a 404 is
    /// [`Outcome::NotFound`], anything else [`Outcome::Error`].
    pub fn outcome(&self) -> Outcome {
        match self.status_code() {
            StatusCode::NOT_FOUND => Outcome::NotFound,
            _ => Outcome::Error,
        }
    }

    /// The body a client gets. Server-side failures (5xx) get a fixed sentence, and their
    /// detail is logged here (once per response), never sent.
    pub fn public_text(&self) -> String {
        let status = self.status_code();
        if !status.is_server_error() {
            return format!("{self}\n");
        }
        log::warn!("answered {}: {self}", status.as_u16());
        let text = match self {
            ApiError::Upstream(_) => "bad gateway: no upstream mirror delivered this file",
            ApiError::UpstreamTimeout => "gateway timeout: no upstream mirror answered in time",
            ApiError::Unverifiable(_) => {
                "bad gateway: the repo db entry of this file is malformed; it is not served \
                 unverified"
            }
            ApiError::InsufficientStorage => "insufficient storage: the cache is full",
            _ => "internal server error",
        };
        format!("{text} (details are in the server log)\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(e: ApiError) -> (u16, String) {
        let resp = e.error_response();
        let status = resp.status().as_u16();
        let bytes = actix_web::body::to_bytes(resp.into_body())
            .await
            .unwrap_or_default();
        (status, String::from_utf8_lossy(&bytes).to_string())
    }

    #[actix_web::test]
    async fn server_side_detail_never_reaches_the_client() {
        let detail = "cannot open /var/cache/pkgstash/arch/x: File name too long (os error 36)";
        for e in [
            ApiError::Internal(detail.into()),
            ApiError::Upstream(format!("http://mirror.example: {detail}")),
        ] {
            let (status, text) = body(e).await;
            assert!(status >= 500);
            assert!(
                !text.contains("os error")
                    && !text.contains('/')
                    && !text.contains("mirror.example"),
                "{text}"
            );
        }
        // A failed download answers by whose fault it was, with a fixed sentence each.
        let storage = crate::cache::store::StorageError {
            kind: StorageErrorKind::NoSpace,
            op: "write partial file",
            detail: detail.into(),
        };
        for (failure, want, words) in [
            (
                Failure::upstream(&format!("http://mirror.example: {detail}")),
                502,
                "bad gateway",
            ),
            (Failure::Storage(storage), 507, "insufficient storage"),
            (
                Failure::Internal(detail.into()),
                500,
                "internal server error",
            ),
            (
                Failure::Unverifiable(format!("core/x.pkg.tar.zst: %CSIZE% {detail}").into()),
                502,
                "repo db entry of this file is malformed",
            ),
        ] {
            let (status, text) = body(ApiError::from(&failure)).await;
            assert_eq!(status, want, "{failure:?}");
            assert!(text.contains(words), "{text}");
            assert!(
                !text.contains("os error") && !text.contains('/') && !text.contains("CSIZE"),
                "{text}"
            );
        }
        let (status, text) = body(ApiError::UriTooLong("path too long")).await;
        assert_eq!(
            (status, text.as_str()),
            (414, "URI too long: path too long\n")
        );
        let (_, text) = body(ApiError::BadRequest("dot segment".into())).await;
        assert_eq!(text, "bad request: dot segment\n");
    }
}
