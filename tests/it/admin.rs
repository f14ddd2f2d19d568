//! Admin side: the token-protected API (auth matrix on every route, rate limit, evict), the
//! `pkgstash` client commands against a running server, Prometheus counters and the public
//! status JSON. The web interface in a real browser is [`crate::browser`]'s.

use std::io::Read;
use std::process::Command;
use std::time::Duration;

use reqwest::Method;

use crate::support::{bin, client, exit_and_output, metric_sample, wait_for, Pkgstash};
use crate::upstream::{payload, Behaviour, FakeMirror};

const TOKEN: &str = "t0ken-for-tests-5f2a9c";
const PKG: &str = "/core/os/x86_64/foo-1.0-1-x86_64.pkg.tar.zst";
const PKG_URL: &str = "/arch/core/os/x86_64/foo-1.0-1-x86_64.pkg.tar.zst";
const CACHED: &str = "arch/core/os/x86_64/foo-1.0-1-x86_64.pkg.tar.zst";

fn start(up: &FakeMirror, token: Option<&str>) -> Pkgstash {
    let cfg = format!("[upstreams.arch]\nmirrors = [\"{}\"]\n", up.url());
    match token {
        Some(t) => Pkgstash::start_env(&cfg, &[("PKGSTASH_TOKEN", t)]),
        None => Pkgstash::start(&cfg),
    }
}

/// Every admin route: (method, path below `/_pkgstash/api/`, status with the right token).
const ROUTES: &[(&str, &str, u16)] = &[
    ("GET", "status", 200),
    ("GET", "mirrors", 200),
    ("POST", "refresh", 200),
    ("POST", "cleanup?dry_run=true", 200),
    (
        "DELETE",
        "cache/arch/core/os/x86_64/nothing-1.0-1-x86_64.pkg.tar.zst",
        404,
    ),
    ("GET", "no-such-route", 404),
    ("GET", "cache", 200),
    ("GET", "cache/arch", 404),
    (
        "POST",
        "mirrors/reset-cooldown?upstream=arch&url=http%3A%2F%2Fnowhere",
        404,
    ),
    ("GET", "repos", 200),
    ("GET", "aur", 409),
    ("GET", "aur/builds", 409),
    ("GET", "aur/builds/1", 409),
    ("GET", "aur/builds/1/log", 409),
];

fn call(p: &Pkgstash, method: &str, path: &str, auth: Option<&str>) -> reqwest::blocking::Response {
    let m = Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = client().request(m, p.url(&format!("/_pkgstash/api/{path}")));
    if let Some(a) = auth {
        req = req.header("Authorization", a);
    }
    req.send().expect("request")
}

/// Every route of `routes` on `p`: 401 without or with a wrong token, its status with it.
fn auth_matrix(p: &Pkgstash, routes: &[(&str, &str, u16)]) {
    let right = format!("Bearer {TOKEN}");
    for (method, path, ok_status) in routes {
        let r = call(p, method, path, None);
        assert_eq!(r.status().as_u16(), 401, "{method} {path} without token");
        let challenge = r
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        assert!(
            challenge.starts_with("Bearer"),
            "{method} {path}: {challenge}"
        );
        let r = call(p, method, path, Some("Bearer wrong-token"));
        assert_eq!(
            r.status().as_u16(),
            401,
            "{method} {path} with a wrong token"
        );
        let r = call(p, method, path, Some(&right));
        assert_eq!(
            r.status().as_u16(),
            *ok_status,
            "{method} {path} with the token"
        );
        let body = r.text().expect("body");
        assert!(!body.contains(TOKEN), "the token is never echoed");
    }
}

#[test]
fn admin_auth_matrix_on_every_route() {
    let up = FakeMirror::start();
    let right = format!("Bearer {TOKEN}");
    // Two refused attempts per route: a fresh server every few routes stays under the limit
    // of failed attempts per client.
    for routes in ROUTES.chunks(6) {
        let p = start(&up, Some(TOKEN));
        auth_matrix(&p, routes);
        let log = p.log();
        assert!(
            log.contains("admin: refused"),
            "refusals are logged:\n{log}"
        );
        assert!(!log.contains(TOKEN), "the token never appears in the log");
    }
    let p = start(&up, Some(TOKEN));
    // A known route with the wrong method: 405 with the right `Allow`.
    for (method, path, allow) in [
        ("GET", "refresh", "POST"),
        ("POST", "status", "GET"),
        (
            "POST",
            "cache/arch/core/os/x86_64/x-1-1-any.pkg.tar.zst",
            "GET, DELETE",
        ),
    ] {
        let r = call(&p, method, path, Some(&right));
        assert_eq!(r.status().as_u16(), 405, "{method} {path}");
        assert_eq!(
            r.headers().get("allow").and_then(|v| v.to_str().ok()),
            Some(allow),
            "{method} {path}"
        );
    }
    assert!(
        !p.log().contains(TOKEN),
        "the token never appears in the log"
    );

    // No token configured: the admin API is disabled, for every route.
    let p = start(&up, None);
    for (method, path, _) in ROUTES {
        for auth in [None, Some(right.as_str())] {
            let r = call(&p, method, path, auth);
            assert_eq!(
                r.status().as_u16(),
                403,
                "{method} {path} with no token set"
            );
        }
    }
}

#[test]
fn admin_failed_attempts_are_rate_limited() {
    let up = FakeMirror::start();
    let p = start(&up, Some(TOKEN));
    let mut statuses = Vec::new();
    for i in 0..25 {
        statuses.push(
            call(&p, "GET", "status", Some(&format!("Bearer guess-{i}")))
                .status()
                .as_u16(),
        );
    }
    assert!(statuses[..20].iter().all(|s| *s == 401), "{statuses:?}");
    assert!(statuses[20..].iter().all(|s| *s == 429), "{statuses:?}");
    // Blocked means blocked: even the right token waits for the window to pass.
    let r = call(&p, "GET", "status", Some(&format!("Bearer {TOKEN}")));
    assert_eq!(r.status().as_u16(), 429);
}

#[test]
fn admin_evict_removes_one_cached_file() {
    let up = FakeMirror::start();
    let data = payload(100_000, 11);
    up.put(PKG, data.clone());
    let p = start(&up, Some(TOKEN));
    let r = client().get(p.url(PKG_URL)).send().expect("get");
    assert_eq!(r.bytes().expect("body").len(), data.len());
    let cached = p.cache_dir.join(CACHED);
    wait_for("cached", Duration::from_secs(10), || cached.is_file());
    let right = format!("Bearer {TOKEN}");
    let r = call(&p, "DELETE", &format!("cache/{CACHED}"), Some(&right));
    assert_eq!(r.status().as_u16(), 200);
    let v: serde_json::Value = r.json().expect("json");
    assert_eq!(v["bytes"], 100_000);
    assert!(!cached.exists(), "evicted from disk");
    // Hostile paths never reach outside the cache.
    let r = call(&p, "DELETE", "cache/arch/../../etc/passwd", Some(&right));
    assert!(matches!(r.status().as_u16(), 400 | 404), "{}", r.status());
    // The next request fetches it again.
    let r = client().get(p.url(PKG_URL)).send().expect("get");
    assert_eq!(r.bytes().expect("body").len(), data.len());
    assert_eq!(up.count(PKG), 2);
}

/// Run the `pkgstash` CLI against `p`: listen address via env, token as given.
pub fn cli(p: &Pkgstash, args: &[&str], token: Option<&str>) -> (i32, String, String) {
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .arg("-c")
        .arg(&p.config_path)
        .env("PKGSTASH__LISTEN", p.addr.to_string())
        .env_remove("PKGSTASH_TOKEN")
        .env_remove("PKGSTASH_CONFIG")
        .env("RUST_LOG", "warn");
    if let Some(t) = token {
        cmd.env("PKGSTASH_TOKEN", t);
    }
    exit_and_output(&cmd.output().expect("run pkgstash"))
}

#[test]
fn cli_client_commands_against_a_running_server() {
    let up = FakeMirror::start();
    up.put(PKG, payload(50_000, 12));
    let p = start(&up, Some(TOKEN));
    let r = client().get(p.url(PKG_URL)).send().expect("get");
    assert_eq!(r.status().as_u16(), 200);
    let _ = r.bytes();
    wait_for("cached", Duration::from_secs(10), || {
        p.cache_dir.join(CACHED).is_file()
    });
    let t = Some(TOKEN);

    let (code, out, err) = cli(&p, &["status"], t);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("UPSTREAM") && out.contains("arch"), "{out}");
    assert!(out.contains("1 miss"), "{out}");

    let (code, out, err) = cli(&p, &["status", "--json"], t);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("status --json is JSON");
    assert_eq!(v["cache_files"], 1);
    assert_eq!(v["upstreams"]["arch"]["bytes"], 50_000);

    let (code, out, err) = cli(&p, &["mirrors"], t);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&up.url()) && out.contains("healthy"), "{out}");

    let (code, out, err) = cli(&p, &["cleanup", "--dry-run"], t);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("would remove 0 files"), "{out}");

    let (code, out, err) = cli(&p, &["refresh", "--json"], t);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("refresh --json is JSON");
    assert!(v["dbs_checked"].is_number(), "{out}");

    let (code, out, err) = cli(&p, &["evict", &format!("/{CACHED}")], t);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("evicted /arch/core/os/x86_64/foo-1.0-1"),
        "{out}"
    );
    assert!(!p.cache_dir.join(CACHED).exists());
    let (code, _, err) = cli(&p, &["evict", CACHED], t);
    assert_eq!(code, 1, "evicting what is not cached fails");
    assert!(err.contains("404"), "{err}");

    // Failures: a wrong token, no token, no server.
    let (code, _, err) = cli(&p, &["status"], Some("wrong"));
    assert_eq!(code, 1);
    assert!(err.contains("401"), "{err}");
    let (code, _, err) = cli(&p, &["status"], None);
    assert_eq!(code, 2);
    assert!(err.contains("PKGSTASH_TOKEN"), "{err}");
    let port = p.addr.port();
    drop(p);
    let mut cmd = Command::new(bin());
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!("listen = \"127.0.0.1:{port}\"\ncache_dir = \"/tmp/x\"\n[upstreams.arch]\nmirrors = [\"http://127.0.0.1:1\"]\n"),
    )
    .expect("config");
    let out = cmd
        .args(["status", "-c"])
        .arg(&cfg)
        .env("PKGSTASH_TOKEN", TOKEN)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot reach pkgstash"), "{err}");
}

/// Value of one sample line of the Prometheus text, e.g. `pkgstash_requests_total{result="hit"}`.
fn sample(text: &str, name: &str) -> f64 {
    metric_sample(text, name).unwrap_or_else(|| panic!("no sample {name} in:\n{text}"))
}

#[test]
fn metrics_count_miss_joined_hit_and_bytes() {
    let up = FakeMirror::start();
    let data = payload(1 << 20, 13);
    up.put(PKG, data.clone());
    up.set(Behaviour::Trickle(1 << 20));
    let p = start(&up, None);
    let url = p.url(PKG_URL);
    let get = |url: String| {
        std::thread::spawn(move || {
            let mut r = client().get(&url).send().expect("get");
            let mut body = Vec::new();
            r.read_to_end(&mut body).expect("body");
            body
        })
    };
    let first = get(url.clone());
    // Join while the first download is in flight (visible in the public status).
    wait_for("download in flight", Duration::from_secs(10), || {
        let v = p.status_json_or_null();
        v["inflight"].as_array().is_some_and(|a| !a.is_empty())
    });
    let joiners: Vec<_> = (0..2).map(|_| get(url.clone())).collect();
    assert_eq!(first.join().expect("thread"), data);
    for j in joiners {
        assert_eq!(j.join().expect("thread"), data);
    }
    // Published and its task ended (the duration is observed when it ends; clients may have
    // the last byte a moment earlier).
    wait_for("cached, download ended", Duration::from_secs(10), || {
        p.cache_dir.join(CACHED).is_file()
            && p.status_json_or_null()["inflight"]
                .as_array()
                .is_some_and(|a| a.is_empty())
    });
    let hit = client()
        .get(&url)
        .send()
        .expect("get")
        .bytes()
        .expect("body");
    assert_eq!(hit.len(), data.len());
    let text = p.metrics();
    let len = data.len() as f64;
    assert_eq!(
        sample(&text, "pkgstash_requests_total{result=\"miss\"}"),
        1.0
    );
    assert_eq!(
        sample(&text, "pkgstash_requests_total{result=\"joined\"}"),
        2.0
    );
    assert_eq!(
        sample(&text, "pkgstash_requests_total{result=\"hit\"}"),
        1.0
    );
    assert_eq!(
        sample(&text, "pkgstash_served_bytes_total{source=\"cache\"}"),
        len
    );
    assert_eq!(
        sample(&text, "pkgstash_served_bytes_total{source=\"upstream\"}"),
        3.0 * len
    );
    assert_eq!(
        sample(&text, "pkgstash_upstream_bytes_total{upstream=\"arch\"}"),
        len
    );
    assert_eq!(
        sample(&text, "pkgstash_download_duration_seconds_count"),
        1.0
    );
    assert_eq!(sample(&text, "pkgstash_cache_files"), 1.0);
    assert_eq!(sample(&text, "pkgstash_inflight_downloads"), 0.0);
    // And the access log has one line per request with its result.
    let log = p.log();
    let access: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("pkgstash::access"))
        .collect();
    assert_eq!(
        access.iter().filter(|l| l.ends_with(" miss")).count(),
        1,
        "{log}"
    );
    assert_eq!(
        access.iter().filter(|l| l.ends_with(" joined")).count(),
        2,
        "{log}"
    );
    assert_eq!(
        access.iter().filter(|l| l.ends_with(" hit")).count(),
        1,
        "{log}"
    );
}

#[test]
fn status_page_and_json_are_public() {
    let up = FakeMirror::start();
    let p = start(&up, Some(TOKEN));
    let r = client().get(p.url("/_pkgstash/")).send().expect("page");
    assert_eq!(r.status().as_u16(), 200);
    let html = r.text().expect("html");
    // The web interface (web/index.html), its module script and stylesheet under ui/.
    assert!(
        html.contains("src=\"ui/js/main.js\"") && html.contains("href=\"ui/css/app.css\""),
        "the interface is served:\n{html}"
    );
    for asset in ["/_pkgstash/ui/js/main.js", "/_pkgstash/ui/css/app.css"] {
        let r = client().get(p.url(asset)).send().expect("asset");
        assert_eq!(r.status().as_u16(), 200, "{asset}");
    }
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no external assets"
    );
    let r = client()
        .get(p.url("/_pkgstash/status.json"))
        .send()
        .expect("json");
    assert_eq!(r.status().as_u16(), 200);
    let v: serde_json::Value = r.json().expect("json");
    assert_eq!(v["admin_enabled"], true);
    assert_eq!(v["mirrors"][0]["url"], up.url());
}
