//! `GET /_pkgstash/health` (and `HEAD`): the load balancer's question "may I send this node
//! requests?", answered without a token, without a disk walk:
//! - `200 {"status":"ok"}` while serving;
//! - `503 {"status":"draining"}` from SIGTERM on ([`crate::http::drain`]): the balancer takes
//!   the node out before it stops, while its transfers finish;
//! - `503 {"status":"cache_not_writable","reason":…}` when a file cannot be created in the
//!   cache (read-only remount, full disk, lost permissions): every miss would fail there.
//!
//! The writability answer is [`crate::cache::probe`]'s, a few seconds old at most. HAProxy:
//! `option httpchk GET /_pkgstash/health` + `http-check expect status 200`
//! (`packaging/haproxy/pkgstash.cfg`).

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use serde::Serialize;

use crate::state::AppState;

/// The health answer's body.
#[derive(Debug, Serialize)]
struct Health {
    /// `ok`, `draining` or `cache_not_writable`.
    status: &'static str,
    /// Why the cache is not writable (the OS error), when it is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

/// `GET|HEAD /_pkgstash/health`.
pub(super) async fn health(state: web::Data<AppState>) -> HttpResponse {
    let (ok, body) = if state.drain.is_draining() {
        (
            false,
            Health {
                status: "draining",
                reason: None,
            },
        )
    } else {
        let writable = match state.write_probe.cached() {
            Some(r) => r,
            None => {
                let probe = state.write_probe.clone();
                web::block(move || probe.probe())
                    .await
                    .unwrap_or_else(|e| Err(format!("the probe did not run: {e}")))
            }
        };
        match writable {
            Ok(()) => (
                true,
                Health {
                    status: "ok",
                    reason: None,
                },
            ),
            Err(reason) => {
                log::warn!("health: {reason}");
                (
                    false,
                    Health {
                        status: "cache_not_writable",
                        reason: Some(reason),
                    },
                )
            }
        }
    };
    let mut resp = if ok {
        HttpResponse::Ok()
    } else {
        HttpResponse::ServiceUnavailable()
    };
    resp.insert_header((header::CACHE_CONTROL, "no-store"))
        .json(body)
}
