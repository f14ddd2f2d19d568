//! The public part of `/_pkgstash/` (no token) besides the interface's files
//! ([`crate::admin::ui`]): the read-only `status.json` and `stats.json` behind it, and
//! Prometheus metrics (text exposition format 0.0.4).

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::json;
use crate::admin::status::Status;
use crate::http::error::ApiError;
use crate::metrics::minutes::MINUTES;
use crate::state::AppState;

/// `GET /_pkgstash`: a permanent redirect to the page.
pub(super) async fn redirect_to_page() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, "/_pkgstash/"))
        .finish()
}

/// Read-only status behind the web page: no token needed.
pub(super) async fn public_status(state: web::Data<AppState>) -> HttpResponse {
    json(&Status::collect(&state))
}

/// Query of `stats.json`.
#[derive(Debug, Deserialize)]
struct StatsQuery {
    range: Option<String>,
}

/// `GET /_pkgstash/stats.json?range=1h|24h`: requests by result and bytes by source, per
/// minute ([`crate::metrics::minutes`]); `1h` (60 buckets) by default.
pub(super) async fn stats(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let bad = || ApiError::BadRequest("range must be 1h or 24h".into());
    let q = web::Query::<StatsQuery>::from_query(req.query_string()).map_err(|_| bad())?;
    let minutes = match q.range.as_deref() {
        None | Some("1h") => 60,
        Some("24h") => MINUTES,
        Some(_) => return Err(bad()),
    };
    let range = if minutes == 60 { "1h" } else { "24h" };
    Ok(json(&state.metrics.minutes.snapshot(range, minutes)))
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
