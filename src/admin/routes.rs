//! The `/_pkgstash/` routes: the web interface's files ([`crate::admin::ui`]), the public
//! `status.json`, `stats.json` and Prometheus metrics ([`crate::admin::page`]), the health check
//! ([`crate::admin::health`]), and the token-protected admin API under `/_pkgstash/api/` (JSON),
//! whose one route table is [`API_ROUTES`]: both the registration ([`configure`]) and the
//! `405 Method Not Allowed` answers with their `Allow` header (RFC 9110 §15.5.6) come from it.
//!
//! Every admin route checks [`crate::admin::auth::AdminAuth`] first, also for unknown routes, so
//! the API's shape is not visible without the token.

use std::sync::OnceLock;

use actix_web::dev::ResourceDef;
use actix_web::http::Method;
use actix_web::{guard, web, HttpRequest, HttpResponse, Route};

use crate::admin::{aur, cache, cache_browser, health, page, repos, ui};
use crate::http::error::ApiError;

// Wire names the CLI client imports from here.
pub use crate::admin::cache::Evicted;
pub use crate::admin::repos::SIGNATURE_HEADER;

/// Prefix of the admin API.
const API: &str = "/_pkgstash/api";

/// One admin API route.
pub struct ApiRoute {
    /// The one method this route answers.
    pub method: Method,
    /// An actix path pattern under [`API`]: `{name}` is one non-empty segment, `{path:.*}`
    /// the rest of the path.
    pub path: &'static str,
    /// Puts the handler on a route of `method`.
    handler: fn(Route) -> Route,
}

/// Every admin API route (token required). A path matches at most one pattern here; a path
/// that matches one but is asked with another method answers 405 with the pattern's methods.
pub const API_ROUTES: &[ApiRoute] = &[
    ApiRoute {
        method: Method::GET,
        path: "/status",
        handler: |r| r.to(cache::api_status),
    },
    ApiRoute {
        method: Method::POST,
        path: "/refresh",
        handler: |r| r.to(cache::refresh),
    },
    ApiRoute {
        method: Method::POST,
        path: "/cleanup",
        handler: |r| r.to(cache::cleanup),
    },
    ApiRoute {
        method: Method::GET,
        path: "/mirrors",
        handler: |r| r.to(cache::mirrors),
    },
    ApiRoute {
        method: Method::POST,
        path: "/mirrors/reset-cooldown",
        handler: |r| r.to(cache::reset_cooldown),
    },
    ApiRoute {
        method: Method::GET,
        path: "/cache",
        handler: |r| r.to(cache_browser::tree),
    },
    ApiRoute {
        method: Method::GET,
        path: "/cache/{path:.*}",
        handler: |r| r.to(cache_browser::list),
    },
    ApiRoute {
        method: Method::DELETE,
        path: "/cache/{path:.*}",
        handler: |r| r.to(cache::evict),
    },
    ApiRoute {
        method: Method::GET,
        path: "/repos",
        handler: |r| r.to(repos::summary),
    },
    ApiRoute {
        method: Method::GET,
        path: "/repos/{repo}/packages",
        handler: |r| r.to(repos::list),
    },
    ApiRoute {
        method: Method::PUT,
        path: "/repos/{repo}/packages",
        handler: |r| r.to(repos::upload),
    },
    ApiRoute {
        method: Method::DELETE,
        path: "/repos/{repo}/packages/{name}",
        handler: |r| r.to(repos::remove),
    },
    ApiRoute {
        method: Method::GET,
        path: "/aur",
        handler: |r| r.to(aur::overview),
    },
    ApiRoute {
        method: Method::GET,
        path: "/aur/builds",
        handler: |r| r.to(aur::builds),
    },
    ApiRoute {
        method: Method::GET,
        path: "/aur/builds/{id}",
        handler: |r| r.to(aur::build),
    },
    ApiRoute {
        method: Method::GET,
        path: "/aur/builds/{id}/log",
        handler: |r| r.to(aur::build_log),
    },
    ApiRoute {
        method: Method::GET,
        path: "/aur/pending",
        handler: |r| r.to(aur::pending),
    },
    ApiRoute {
        method: Method::POST,
        path: "/aur/approve/{name}",
        handler: |r| r.to(aur::approve),
    },
    ApiRoute {
        method: Method::POST,
        path: "/aur/reject/{name}",
        handler: |r| r.to(aur::reject),
    },
    ApiRoute {
        method: Method::POST,
        path: "/aur/check",
        handler: |r| r.to(aur::check),
    },
];

/// Register the `/_pkgstash` routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let get_or_head = || web::route().guard(guard::Any(guard::Get()).or(guard::Head()));
    cfg.route("/_pkgstash", web::get().to(page::redirect_to_page))
        .route("/_pkgstash/", get_or_head().to(ui::index))
        .route("/_pkgstash/ui/{path:.*}", get_or_head().to(ui::asset))
        .route("/_pkgstash/status.json", web::get().to(page::public_status))
        .route("/_pkgstash/stats.json", web::get().to(page::stats))
        .route("/_pkgstash/metrics", web::get().to(page::metrics))
        .route("/_pkgstash/health", web::get().to(health::health))
        .route("/_pkgstash/health", web::head().to(health::health))
        .service(
            web::scope(API)
                .configure(|api| {
                    for r in API_ROUTES {
                        api.route(r.path, (r.handler)(web::method(r.method.clone())));
                    }
                })
                .default_service(web::to(unknown)),
        );
}

/// Any other request under the API: 405 for a known path, else 404 (after the token check).
async fn unknown(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    crate::admin::auth::require(&req)?;
    let rel = req.path().strip_prefix(API).unwrap_or_default();
    match allowed_methods(rel) {
        Some(allow) => Err(ApiError::MethodNotAllowedHere(allow)),
        None => Err(ApiError::NotFound),
    }
}

/// The methods of the [`API_ROUTES`] pattern `rel` (a path under [`API`], with its leading
/// `/`) matches, as an `Allow` value in table order (`"GET, PUT"`); `None` for unknown paths.
fn allowed_methods(rel: &str) -> Option<&'static str> {
    static ALLOW: OnceLock<Vec<(ResourceDef, String)>> = OnceLock::new();
    let by_pattern = ALLOW.get_or_init(|| {
        let mut by_pattern: Vec<(ResourceDef, String)> = Vec::new();
        for r in API_ROUTES {
            match by_pattern
                .iter_mut()
                .find(|(def, _)| def.pattern() == Some(r.path))
            {
                Some((_, allow)) => {
                    allow.push_str(", ");
                    allow.push_str(r.method.as_str());
                }
                None => by_pattern.push((ResourceDef::new(r.path), r.method.to_string())),
            }
        }
        by_pattern
    });
    by_pattern
        .iter()
        .find(|(def, _)| def.is_match(rel))
        .map(|(_, allow)| allow.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_answers_come_from_the_table() {
        for (path, allow) in [
            ("/status", Some("GET")),
            ("/mirrors", Some("GET")),
            ("/mirrors/reset-cooldown", Some("POST")),
            ("/aur/pending", Some("GET")),
            ("/aur", Some("GET")),
            ("/aur/builds", Some("GET")),
            ("/aur/builds/7", Some("GET")),
            ("/aur/builds/7/log", Some("GET")),
            ("/refresh", Some("POST")),
            ("/cleanup", Some("POST")),
            ("/aur/check", Some("POST")),
            ("/aur/approve/foo", Some("POST")),
            ("/aur/reject/foo", Some("POST")),
            (
                "/cache/arch/core/os/x86_64/x-1-1-any.pkg.tar.zst",
                Some("GET, DELETE"),
            ),
            // Routed to the handlers too (which answer 404 for it).
            ("/cache/x", Some("GET, DELETE")),
            ("/cache", Some("GET")),
            ("/repos", Some("GET")),
            ("/repos/custom/packages", Some("GET, PUT")),
            ("/repos/custom/packages/foo", Some("DELETE")),
            ("", None),
            ("/", None),
            ("/status/", None),
            ("/aur/approve/", None),
            ("/aur/approve/a/b", None),
            ("/repos//packages", None),
            ("/repos/custom/packages/", None),
            ("/nope", None),
        ] {
            assert_eq!(allowed_methods(path), allow, "{path}");
        }
    }

    #[test]
    fn every_pattern_is_registered_once_per_method() {
        for (i, a) in API_ROUTES.iter().enumerate() {
            assert!(a.path.starts_with('/'), "{}", a.path);
            for b in &API_ROUTES[i + 1..] {
                assert!(
                    a.path != b.path || a.method != b.method,
                    "{} {} twice",
                    a.method,
                    a.path
                );
            }
        }
    }
}
