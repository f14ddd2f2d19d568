//! The public part of `/_pkgstash/` (no token): the status web page, the read-only
//! `status.json` behind it, and Prometheus metrics (text exposition format 0.0.4).

use actix_web::http::header;
use actix_web::{web, HttpResponse};

use super::json;
use crate::admin::status::Status;
use crate::state::AppState;

/// The status page, embedded in the binary.
const STATUS_PAGE: &str = include_str!("status_page.html");

/// `GET /_pkgstash`: a permanent redirect to the page.
pub(super) async fn redirect_to_page() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, "/_pkgstash/"))
        .finish()
}

/// `GET /_pkgstash/`: the status web page.
pub(super) async fn page() -> HttpResponse {
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
pub(super) async fn public_status(state: web::Data<AppState>) -> HttpResponse {
    json(&Status::collect(&state))
}

/// `GET /_pkgstash/metrics`: Prometheus metrics, the gauges updated now.
pub(super) async fn metrics(
    state: web::Data<AppState>,
    req: actix_web::HttpRequest,
) -> HttpResponse {
    let m = &state.metrics;
    m.inflight.set(state.registry.snapshot().len() as i64);
    m.draining.set(i64::from(state.drain.is_draining()));
    m.connections.set(state.drain.connections() as i64);
    if let Some(auth) = req.app_data::<web::Data<crate::admin::auth::AdminAuth>>() {
        m.admin_blocked_clients.set(auth.blocked_clients() as i64);
    }
    let usage = state.index.usage();
    m.cache_bytes
        .set(usage.values().map(|u| u.bytes).sum::<u64>() as i64);
    m.cache_files
        .set(usage.values().map(|u| u.files).sum::<u64>() as i64);
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(m.render())
}
