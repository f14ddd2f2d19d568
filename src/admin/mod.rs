//! The `/_pkgstash/` face: the route table and its registration ([`routes`]), the admin token
//! check ([`auth`]), the status snapshot ([`status`]), and the handlers: the web interface's
//! embedded files ([`ui`]), the public status, per-minute stats and metrics ([`page`]), the
//! load balancers' health check ([`health`]), the cache's admin endpoints ([`cache`], the
//! browser's listings in [`cache_browser`]), the custom repos' ([`repos`]) and the AUR build
//! server's ([`aur`], its build logs in [`build_log`]).

pub(crate) mod aur;
pub(crate) mod auth;
pub(crate) mod build_log;
pub(crate) mod cache;
pub(crate) mod cache_browser;
pub(crate) mod health;
pub(crate) mod page;
pub(crate) mod repos;
pub(crate) mod routes;
pub(crate) mod status;
pub(crate) mod ui;

use actix_web::http::header;
use actix_web::HttpResponse;
use serde::Serialize;

/// A `200` JSON answer that no cache keeps (`Cache-Control: no-store`).
fn json<T: Serialize>(value: &T) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(value)
}
