//! The web admin interface: the static files of `web/` (minus `web/dev/`), embedded in the
//! binary at compile time (`rust-embed`; no Node, no CDN at run time) and served as
//! `docs/admin-api.md` ("Static interface") says: `index.html` at `/_pkgstash/`, every other
//! file at `/_pkgstash/ui/<path>`.
//!
//! Every answer carries a strict `Content-Security-Policy` (scripts, styles and connections
//! from this origin only; no inline script or style, no framing), `X-Content-Type-Options:
//! nosniff`, `X-Frame-Options: DENY` and `Referrer-Policy: no-referrer`; an `ETag` (the file's
//! sha256) with `Cache-Control: no-cache`, so browsers revalidate and a new binary is seen at
//! once while an unchanged file costs a `304`.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse};

use crate::http::error::ApiError;

/// The interface's files, from `web/` at build time.
#[derive(rust_embed::RustEmbed)]
#[folder = "web/"]
#[exclude = "dev/*"]
struct Web;

/// The policy the page and its assets are sent with (the interface builds its DOM with text
/// nodes and loads only its own modules and stylesheet).
pub(crate) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// `Content-Type` of an interface file, by its name.
fn content_type(path: &str) -> &'static str {
    let name = path.rsplit('/').next().unwrap_or(path);
    let ext = name.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    match ext {
        "html" => "text/html; charset=utf-8",
        // Module scripts are refused under any other type.
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "json" | "map" => "application/json",
        "woff2" => "font/woff2",
        // LICENSE, VERSION, README.md, checksums: read as text.
        _ => "text/plain; charset=utf-8",
    }
}

/// `GET /_pkgstash/`: the interface's `index.html`.
pub(super) async fn index(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    serve(&req, "index.html")
}

/// `GET /_pkgstash/ui/<path>`: one file of the interface; `404` for anything else (`dev/`
/// is not embedded).
pub(super) async fn asset(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let path = req.match_info().get("path").unwrap_or_default().to_string();
    if path.is_empty() || path.ends_with('/') || path.starts_with("dev/") {
        return Err(ApiError::NotFound);
    }
    serve(&req, &path)
}

/// The embedded file `path`, or `304` when the client's `If-None-Match` names its `ETag`.
fn serve(req: &HttpRequest, path: &str) -> Result<HttpResponse, ApiError> {
    let file = Web::get(path).ok_or(ApiError::NotFound)?;
    let etag = format!("\"{}\"", hex::encode(&file.metadata.sha256_hash()[..16]));
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .map(str::trim)
                .any(|t| t == "*" || t.trim_start_matches("W/") == etag)
        });
    let mut resp = if fresh {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    resp.insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, "no-cache"));
    security_headers(&mut resp);
    if fresh {
        return Ok(resp.finish());
    }
    Ok(resp
        .insert_header((header::CONTENT_TYPE, content_type(path)))
        .body(file.data.into_owned()))
}

/// The headers every interface file is sent with.
fn security_headers(resp: &mut actix_web::HttpResponseBuilder) {
    resp.insert_header((
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    ))
    .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
    .insert_header((header::X_FRAME_OPTIONS, "DENY"))
    .insert_header((header::REFERRER_POLICY, "no-referrer"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interface_is_embedded_without_dev() {
        let names: Vec<String> = Web::iter().map(|n| n.into_owned()).collect();
        for must in [
            "index.html",
            "js/main.js",
            "css/app.css",
            "vendor/uplot/uPlot.esm.js",
            "vendor/uplot/LICENSE",
        ] {
            assert!(names.iter().any(|n| n == must), "{must} in {names:?}");
        }
        assert!(!names.iter().any(|n| n.starts_with("dev/")), "{names:?}");
    }

    #[test]
    fn types_by_name() {
        assert_eq!(content_type("js/main.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("css/app.css"), "text/css; charset=utf-8");
        assert_eq!(content_type("favicon.svg"), "image/svg+xml");
        assert_eq!(
            content_type("vendor/uplot/LICENSE"),
            "text/plain; charset=utf-8"
        );
        assert_eq!(content_type("README.md"), "text/plain; charset=utf-8");
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
    }

    #[test]
    fn every_embedded_file_has_a_type_it_is_meant_to_have() {
        // A new kind of file in web/ must get its type here, not `text/plain` by accident.
        for name in Web::iter() {
            let known = ["html", "js", "css", "svg", "md"]
                .iter()
                .any(|e| name.ends_with(&format!(".{e}")))
                || name.ends_with("LICENSE")
                || name.ends_with("VERSION");
            assert!(known, "{name}: give it a content type in content_type()");
        }
    }
}
