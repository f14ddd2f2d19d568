//! The web interface's HTTP side (docs/admin-api.md, "Static interface" and `stats.json`):
//! the embedded files with their types, security headers and ETags; `dev/` never served; the
//! per-minute counters counted by both front ends (the sendfile fast path and actix).

use crate::support::{client, Pkgstash};
use crate::upstream::{payload, FakeMirror};

const PKG: &str = "/core/os/x86_64/foo-1.0-1-x86_64.pkg.tar.zst";
const PKG_URL: &str = "/arch/core/os/x86_64/foo-1.0-1-x86_64.pkg.tar.zst";
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn start(up: &FakeMirror) -> Pkgstash {
    Pkgstash::start(&format!("[upstreams.arch]\nmirrors = [\"{}\"]\n", up.url()))
}

fn header(r: &reqwest::blocking::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

#[test]
fn interface_files_are_served_with_types_csp_and_etags() {
    let up = FakeMirror::start();
    let p = start(&up);
    for (path, ctype, must_contain) in [
        ("/_pkgstash/", "text/html; charset=utf-8", "ui/js/main.js"),
        (
            "/_pkgstash/ui/js/main.js",
            "text/javascript; charset=utf-8",
            "import",
        ),
        ("/_pkgstash/ui/css/app.css", "text/css; charset=utf-8", "{"),
        ("/_pkgstash/ui/favicon.svg", "image/svg+xml", "<svg"),
        (
            "/_pkgstash/ui/vendor/uplot/uPlot.esm.js",
            "text/javascript; charset=utf-8",
            "uPlot",
        ),
        (
            "/_pkgstash/ui/vendor/uplot/LICENSE",
            "text/plain; charset=utf-8",
            "MIT",
        ),
    ] {
        let r = client().get(p.url(path)).send().expect("get");
        assert_eq!(r.status().as_u16(), 200, "{path}");
        assert_eq!(header(&r, "content-type"), ctype, "{path}");
        assert_eq!(header(&r, "content-security-policy"), CSP, "{path}");
        assert_eq!(header(&r, "x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header(&r, "x-frame-options"), "DENY", "{path}");
        assert_eq!(header(&r, "referrer-policy"), "no-referrer", "{path}");
        assert_eq!(header(&r, "cache-control"), "no-cache", "{path}");
        let etag = header(&r, "etag");
        assert!(etag.starts_with('"') && etag.len() > 10, "{path}: {etag}");
        let body = r.text().expect("body");
        assert!(body.contains(must_contain), "{path}");
        // Revalidation costs nothing.
        let r = client()
            .get(p.url(path))
            .header("If-None-Match", &etag)
            .send()
            .expect("get");
        assert_eq!(r.status().as_u16(), 304, "{path}");
        assert_eq!(header(&r, "etag"), etag);
        assert_eq!(r.bytes().expect("body").len(), 0);
        let r = client()
            .get(p.url(path))
            .header("If-None-Match", "\"something-else\"")
            .send()
            .expect("get");
        assert_eq!(r.status().as_u16(), 200, "{path}");
    }
    // HEAD gets the headers.
    let r = client()
        .head(p.url("/_pkgstash/ui/js/main.js"))
        .send()
        .expect("head");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(header(&r, "content-type"), "text/javascript; charset=utf-8");
    // Development files are not embedded; nothing else is served under ui/.
    for path in [
        "/_pkgstash/ui/dev/mock_server.py",
        "/_pkgstash/ui/dev/",
        "/_pkgstash/ui/",
        "/_pkgstash/ui/nope.js",
        "/_pkgstash/ui/../../etc/passwd",
        "/_pkgstash/ui/%2e%2e/Cargo.toml",
        "/_pkgstash/ui/js/",
    ] {
        let r = client().get(p.url(path)).send().expect("get");
        assert_eq!(r.status().as_u16(), 404, "{path}");
    }
    let r = client()
        .post(p.url("/_pkgstash/ui/js/main.js"))
        .send()
        .expect("post");
    assert!(r.status().is_client_error(), "{}", r.status());
    // The old address still leads to the page.
    let r = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .get(p.url("/_pkgstash"))
        .send()
        .expect("get");
    assert_eq!(r.status().as_u16(), 308);
    assert_eq!(header(&r, "location"), "/_pkgstash/");
}

fn stats(p: &Pkgstash, range: &str) -> serde_json::Value {
    let r = client()
        .get(p.url(&format!("/_pkgstash/stats.json{range}")))
        .send()
        .expect("stats");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(header(&r, "cache-control"), "no-store");
    r.json().expect("json")
}

/// The sum of a series (nulls are no data).
fn sum(v: &serde_json::Value) -> u64 {
    v.as_array()
        .expect("array")
        .iter()
        .filter_map(serde_json::Value::as_u64)
        .sum()
}

#[test]
fn stats_count_requests_and_bytes_per_minute_on_both_front_ends() {
    let up = FakeMirror::start();
    let data = payload(300_000, 3);
    up.put(PKG, data.clone());
    let p = start(&up);
    let s = stats(&p, "");
    assert_eq!(s["range"], "1h");
    assert_eq!(
        (s["buckets"].as_u64(), s["step_secs"].as_u64()),
        (Some(60), Some(60))
    );
    let start = s["start"].as_u64().expect("start");
    let now = s["now"].as_u64().expect("now");
    assert_eq!(start % 60, 0);
    assert!(now >= start + 59 * 60 && now < start + 3600, "{s}");
    for key in [
        "hit",
        "miss",
        "joined",
        "revalidated",
        "stale",
        "not_found",
        "error",
    ] {
        assert_eq!(
            s["requests"][key].as_array().map(Vec::len),
            Some(60),
            "{key}"
        );
        assert_eq!(sum(&s["requests"][key]), 0, "{key}");
    }
    // Minutes before the start have no data (null), the current one has.
    assert!(s["requests"]["hit"][0].is_null(), "{s}");
    assert_eq!(s["requests"]["hit"][59], 0);
    assert!(s["since"].as_u64().expect("since") <= now);

    // A miss and a hit by the fast path (plain GETs), a ranged hit by actix, a 404.
    assert_eq!(p.get(PKG_URL).1.expect("miss").len(), data.len());
    p.wait_cached("arch/core/os/x86_64/foo-1.0-1-x86_64.pkg.tar.zst");
    assert_eq!(p.get(PKG_URL).1.expect("hit").len(), data.len());
    let r = client()
        .get(p.url(PKG_URL))
        .header("Range", "bytes=0-999")
        .send()
        .expect("range");
    assert_eq!(r.status().as_u16(), 206);
    assert_eq!(header(&r, "x-cache-status"), "hit");
    assert_eq!(r.bytes().expect("body").len(), 1000);
    assert_eq!(
        p.get("/arch/core/os/x86_64/nope-1-1-any.pkg.tar.zst").0,
        404
    );

    let s = stats(&p, "?range=1h");
    assert_eq!(sum(&s["requests"]["miss"]), 1, "{s}");
    assert_eq!(sum(&s["requests"]["hit"]), 2, "{s}");
    assert_eq!(sum(&s["requests"]["not_found"]), 1, "{s}");
    assert_eq!(sum(&s["bytes"]["fetched_upstream"]), data.len() as u64);
    // The miss is served from the download in flight (or, if it ended first, the file).
    let inflight = sum(&s["bytes"]["served_inflight"]);
    let cache = sum(&s["bytes"]["served_cache"]);
    assert_eq!(inflight + cache, 2 * data.len() as u64 + 1000, "{s}");
    assert!(cache >= data.len() as u64 + 1000, "{s}");
    // The same events as the Prometheus counters.
    let m = p.metrics();
    let sample = |name: &str| crate::support::metric_sample(&m, name).unwrap_or(-1.0) as u64;
    assert_eq!(sample("pkgstash_requests_total{result=\"hit\"}"), 2, "{m}");
    assert_eq!(
        sample("pkgstash_served_bytes_total{source=\"cache\"}"),
        cache
    );
    assert_eq!(
        sample("pkgstash_served_bytes_total{source=\"upstream\"}"),
        inflight
    );

    let day = stats(&p, "?range=24h");
    assert_eq!(day["range"], "24h");
    assert_eq!(day["buckets"], 1440);
    assert_eq!(day["requests"]["hit"].as_array().map(Vec::len), Some(1440));
    assert_eq!(sum(&day["requests"]["hit"]), 2);

    for bad in ["?range=2h", "?range=", "?range=1h&range=24h"] {
        let r = client()
            .get(p.url(&format!("/_pkgstash/stats.json{bad}")))
            .send()
            .expect("stats");
        assert_eq!(r.status().as_u16(), 400, "{bad}");
        assert_eq!(
            r.text().expect("body").trim(),
            "bad request: range must be 1h or 24h",
            "{bad}"
        );
    }
}
