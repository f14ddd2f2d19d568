//! Draining: what a node does between SIGTERM and its exit, as both front-end paths see it.
//!
//! While [`crate::state::Drain::is_draining`]:
//! - new work is refused: a request for anything but `/_pkgstash/…` is answered
//!   `503 Service Unavailable` with `Retry-After` and `Connection: close` ([`refuses`],
//!   [`REFUSAL`], and [`refuse_new_work`] on the actix side). A load balancer retries it on
//!   another node (HAProxy: `retry-on 503`, `option redispatch`); pacman moves on to its next
//!   `Server`. The listeners stay open, so `GET /_pkgstash/health` can answer `503` and a
//!   balancer marks the node down through its health check rather than a refused connection;
//! - responses in progress go on to their end, and then their connection closes (a response
//!   whose head is written after the drain began says `Connection: close`); idle keep-alive
//!   connections close at once ([`crate::state::Drain::started`]).
//!
//! The flag is [`crate::state::Drain`]'s. The server ([`crate::server`]) starts the drain,
//! counts connections ([`crate::state::Drain::connection`]) and stops when none is left and no download is in flight, or when `shutdown_grace` ends.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse};

use crate::state::AppState;

/// Seconds a refused client is told to wait (`Retry-After`): a restart's order of magnitude.
pub const RETRY_AFTER_SECS: u32 = 10;

/// The front end's answer to a request refused while draining (RFC 9110 §15.6.4, §10.2.3).
pub const REFUSAL: &str = "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\nretry-after: 10\r\ncache-control: no-store\r\ncontent-length: 34\r\nconnection: close\r\n\r\nshutting down: try another mirror\n";

/// The body of a refusal (both paths).
pub const REFUSAL_BODY: &str = "shutting down: try another mirror\n";

/// Is a request for `target` new work that a draining node refuses? Everything but
/// `/_pkgstash/…` (the health check, status and metrics keep answering; admin calls are short).
pub fn refuses(target: &str) -> bool {
    !(target == "/_pkgstash"
        || target.starts_with("/_pkgstash/")
        || target.starts_with("/_pkgstash?"))
}

/// actix middleware: while draining, refuse new work ([`refuses`]) and close every connection
/// after its response (`Connection: close`).
pub async fn refuse_new_work(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let draining = |req: &ServiceRequest| {
        req.app_data::<web::Data<AppState>>()
            .is_some_and(|s| s.drain.is_draining())
    };
    if draining(&req) && refuses(req.path()) {
        let mut resp = HttpResponse::ServiceUnavailable()
            .insert_header((header::RETRY_AFTER, RETRY_AFTER_SECS.to_string()))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .content_type("text/plain; charset=utf-8")
            .body(REFUSAL_BODY);
        resp.head_mut()
            .set_connection_type(actix_web::http::ConnectionType::Close);
        return Ok(req.into_response(resp).map_into_right_body());
    }
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let mut res = next.call(req).await?;
    if state.is_some_and(|s| s.drain.is_draining()) {
        res.response_mut()
            .head_mut()
            .set_connection_type(actix_web::http::ConnectionType::Close);
    }
    Ok(res.map_into_left_body())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_is_well_formed() {
        let (head, body) = REFUSAL.split_once("\r\n\r\n").expect("head");
        assert_eq!(body, REFUSAL_BODY);
        assert!(head.contains(&format!("content-length: {}", body.len())));
        assert!(head.contains(&format!("retry-after: {RETRY_AFTER_SECS}")));
    }

    #[test]
    fn only_pkgstash_pages_answer_while_draining() {
        assert!(refuses("/arch/core/os/x86_64/core.db"));
        assert!(refuses("/"));
        assert!(refuses("/_pkgstashx"));
        assert!(!refuses("/_pkgstash/health"));
        assert!(!refuses("/_pkgstash"));
        assert!(!refuses("/_pkgstash/metrics"));
    }
}
