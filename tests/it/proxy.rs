//! The core proxy over real sockets: hits, misses, one download per file, tails, Range, 304s,
//! db revalidation and stale-if-error, hostile paths, upstream failures, crash recovery.

use std::io::Read;
use std::time::{Duration, Instant, SystemTime};

use reqwest::header;

use crate::support::{arch_config, client, get_body, get_in_background, sha256_hex, Pkgstash};
use crate::upstream::{payload, Behaviour, FakeMirror};

const PKG: &str = "/core/os/x86_64/foo-1:2.0-1-x86_64.pkg.tar.zst";
const PKG_URL: &str = "/arch/core/os/x86_64/foo-1%3A2.0-1-x86_64.pkg.tar.zst";
const DB: &str = "/core/os/x86_64/core.db";

fn config(mirrors: &[&FakeMirror], extra: &str) -> String {
    let urls: Vec<String> = mirrors.iter().map(|m| m.url()).collect();
    arch_config("2s", &urls, extra)
}

#[test]
fn miss_then_hit_is_byte_identical_and_fetched_once() {
    let up = FakeMirror::start();
    let data = payload(3 << 20, 1);
    up.put(PKG, data.clone());
    let p = Pkgstash::start(&config(&[&up], ""));
    let (s, body) = get_body(&p.url(PKG_URL));
    assert_eq!(s, 200);
    assert_eq!(sha256_hex(&body), sha256_hex(&data));
    p.wait_cached("arch/core/os/x86_64/foo-1:2.0-1-x86_64.pkg.tar.zst");
    let (s, body) = get_body(&p.url(PKG_URL));
    assert_eq!(s, 200);
    assert_eq!(sha256_hex(&body), sha256_hex(&data));
    assert_eq!(up.count(PKG), 1, "second request must be a hit");
    let cached = std::fs::read(
        p.cache_dir
            .join("arch/core/os/x86_64/foo-1:2.0-1-x86_64.pkg.tar.zst"),
    )
    .expect("cached file");
    assert_eq!(cached, data);
    assert_eq!(p.partials(), 0);
}

#[test]
fn twenty_concurrent_clients_share_one_download() {
    let up = FakeMirror::start();
    let data = payload(2 << 20, 2);
    up.put(PKG, data.clone());
    up.set(Behaviour::Trickle(4 << 20)); // ~0.5 s body: every client joins mid-download
    let p = Pkgstash::start(&config(&[&up], ""));
    let url = p.url(PKG_URL);
    let handles: Vec<_> = (0..20)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                let started = Instant::now();
                let mut resp = client().get(&url).send().expect("request");
                let mut first = [0u8; 1];
                resp.read_exact(&mut first).expect("first byte");
                let ttfb = started.elapsed();
                let mut rest = Vec::new();
                resp.read_to_end(&mut rest).expect("body");
                let mut all = first.to_vec();
                all.extend(rest);
                (ttfb, all)
            })
        })
        .collect();
    for h in handles {
        let (ttfb, body) = h.join().expect("client thread");
        assert_eq!(sha256_hex(&body), sha256_hex(&data));
        assert!(ttfb < Duration::from_secs(5), "first byte took {ttfb:?}");
    }
    assert_eq!(
        up.count(PKG),
        1,
        "exactly one upstream GET: {:?}",
        up.seen()
    );
}

#[test]
fn client_disconnecting_does_not_stop_the_download() {
    let up = FakeMirror::start();
    let data = payload(1 << 20, 3);
    up.put(PKG, data.clone());
    up.set(Behaviour::Trickle(2 << 20));
    let p = Pkgstash::start(&config(&[&up], ""));
    {
        let mut resp = client().get(p.url(PKG_URL)).send().expect("request");
        let mut some = [0u8; 1000];
        resp.read_exact(&mut some).expect("some bytes");
        // dropped here: the client goes away mid-body
    }
    let cached = p
        .cache_dir
        .join("arch/core/os/x86_64/foo-1:2.0-1-x86_64.pkg.tar.zst");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cached.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        std::fs::read(&cached).expect("download finished and was cached"),
        data
    );
    let (_, body) = get_body(&p.url(PKG_URL));
    assert_eq!(body, data);
    assert_eq!(up.count(PKG), 1);
}

#[test]
fn upstream_dropping_mid_body_aborts_client_and_caches_nothing() {
    let up = FakeMirror::start();
    up.put(PKG, payload(1 << 20, 4));
    up.set(Behaviour::CloseAfter(300_000));
    let p = Pkgstash::start(&config(&[&up], ""));
    let resp = client().get(p.url(PKG_URL)).send().expect("request");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.content_length(), Some(1 << 20));
    let body = resp.bytes();
    assert!(
        body.is_err(),
        "a short body must be an error, never a clean end"
    );
    std::thread::sleep(Duration::from_millis(200));
    assert!(!p
        .cache_dir
        .join("arch/core/os/x86_64/foo-1:2.0-1-x86_64.pkg.tar.zst")
        .exists());
    assert_eq!(p.partials(), 0, "partial deleted");
}

#[test]
fn range_requests_on_a_hit() {
    let up = FakeMirror::start();
    let data = payload(100_000, 5);
    up.put(PKG, data.clone());
    let p = Pkgstash::start(&config(&[&up], ""));
    assert_eq!(get_body(&p.url(PKG_URL)).0, 200);
    let c = client();
    let r = c
        .get(p.url(PKG_URL))
        .header(header::RANGE, "bytes=100-199")
        .send()
        .expect("req");
    assert_eq!(r.status().as_u16(), 206);
    assert_eq!(r.headers()[header::CONTENT_RANGE], "bytes 100-199/100000");
    assert_eq!(r.bytes().expect("body").as_ref(), &data[100..200]);
    let r = c
        .get(p.url(PKG_URL))
        .header(header::RANGE, "bytes=99000-")
        .send()
        .expect("req");
    assert_eq!(r.status().as_u16(), 206);
    assert_eq!(r.bytes().expect("body").as_ref(), &data[99000..]);
    let r = c
        .get(p.url(PKG_URL))
        .header(header::RANGE, "bytes=-10")
        .send()
        .expect("req");
    assert_eq!(r.status().as_u16(), 206);
    assert_eq!(r.bytes().expect("body").as_ref(), &data[100_000 - 10..]);
    let r = c
        .get(p.url(PKG_URL))
        .header(header::RANGE, "bytes=200000-")
        .send()
        .expect("req");
    assert_eq!(r.status().as_u16(), 416);
}

#[test]
fn range_on_a_download_in_flight() {
    let up = FakeMirror::start();
    let data = payload(1 << 20, 6);
    up.put(PKG, data.clone());
    up.set(Behaviour::Trickle(1 << 20));
    let p = Pkgstash::start(&config(&[&up], ""));
    let url = p.url(PKG_URL);
    let first = get_in_background(&url);
    std::thread::sleep(Duration::from_millis(200));
    let r = client()
        .get(&url)
        .header(header::RANGE, "bytes=500000-")
        .send()
        .expect("range request");
    assert_eq!(r.status().as_u16(), 206);
    assert_eq!(
        r.headers()[header::CONTENT_RANGE],
        format!("bytes 500000-{}/{}", data.len() - 1, data.len())
    );
    assert_eq!(r.bytes().expect("body").as_ref(), &data[500_000..]);
    let r = client()
        .get(&url)
        .header(header::RANGE, "bytes=100-109")
        .send()
        .expect("req");
    assert_eq!(r.status().as_u16(), 206);
    assert_eq!(r.bytes().expect("body").as_ref(), &data[100..110]);
    assert_eq!(first.join().expect("thread").expect("first body"), data);
    assert_eq!(up.count(PKG), 1, "{:?}", up.seen());
}

#[test]
fn conditional_requests_on_a_hit_give_304() {
    let up = FakeMirror::start();
    let modified = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    up.put_at(PKG, payload(1000, 7), modified);
    let p = Pkgstash::start(&config(&[&up], ""));
    let r = client().get(p.url(PKG_URL)).send().expect("req");
    assert_eq!(
        r.headers()[header::LAST_MODIFIED],
        httpdate::fmt_http_date(modified)
    );
    assert_eq!(r.bytes().expect("body").len(), 1000);
    p.wait_cached("arch/core/os/x86_64/foo-1:2.0-1-x86_64.pkg.tar.zst");
    let r = client().get(p.url(PKG_URL)).send().expect("req");
    let lm = r.headers()[header::LAST_MODIFIED].clone();
    let etag = r.headers()[header::ETAG].clone();
    assert_eq!(
        lm.to_str().expect("ascii"),
        httpdate::fmt_http_date(modified)
    );
    let r = client()
        .get(p.url(PKG_URL))
        .header(header::IF_MODIFIED_SINCE, lm)
        .send()
        .expect("req");
    assert_eq!(r.status().as_u16(), 304);
    let r = client()
        .get(p.url(PKG_URL))
        .header(header::IF_NONE_MATCH, etag)
        .send()
        .expect("req");
    assert_eq!(r.status().as_u16(), 304);
    let r = client().head(p.url(PKG_URL)).send().expect("req");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()[header::CONTENT_LENGTH], "1000");
}

#[test]
fn db_is_revalidated_and_stale_served_when_upstream_fails() {
    // Real (parseable) repo dbs: pkgstash never publishes a db it cannot read.
    let db = |version: u64| {
        crate::bodies::make_db(&[(
            "foo",
            &format!("foo-{version}-1-x86_64.pkg.tar.zst"),
            version,
            &sha256_hex(&version.to_le_bytes()),
        )])
    };
    let (v1, v2) = (db(1), db(2));
    let up = FakeMirror::start();
    let t1 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    up.put_at(DB, v1.clone(), t1);
    let p = Pkgstash::start(&config(&[&up], "db_max_age = \"1s\""));
    let db_url = p.url("/arch/core/os/x86_64/core.db");
    assert_eq!(get_body(&db_url).1, v1);
    let asked = up.count(DB);
    // Within db_max_age: a hit.
    assert_eq!(get_body(&db_url).1, v1);
    assert_eq!(up.count(DB), asked, "no upstream request for a fresh db");
    assert_eq!(
        up.seen()
            .iter()
            .filter(|s| s.path == DB && s.status == 200)
            .count(),
        1,
        "one download"
    );
    // pacman -Sy's conditional request gets 304 from the cached copy.
    let r = client()
        .get(&db_url)
        .header(header::IF_MODIFIED_SINCE, httpdate::fmt_http_date(t1))
        .send()
        .expect("req");
    assert_eq!(r.status().as_u16(), 304);
    // After db_max_age: revalidated with If-Modified-Since; unchanged → upstream 304.
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(get_body(&db_url).1, v1);
    // (The db's `.sig` is asked in the same step: see upstream::db_and_sig_*.)
    let seen: Vec<_> = up.seen().into_iter().filter(|s| s.path == DB).collect();
    let last = seen.last().expect("a request");
    assert_eq!(last.status, 304, "{seen:?}");
    assert_eq!(
        last.if_modified_since.as_deref(),
        Some(httpdate::fmt_http_date(t1).as_str()),
        "the mirror's own Last-Modified"
    );
    // Upstream changes: the new db is served and cached with the new Last-Modified.
    let t2 = t1 + Duration::from_secs(3600);
    up.put_at(DB, v2.clone(), t2);
    std::thread::sleep(Duration::from_millis(1100));
    let r = client().get(&db_url).send().expect("req");
    assert_eq!(
        r.headers()[header::LAST_MODIFIED],
        httpdate::fmt_http_date(t2)
    );
    assert_eq!(r.bytes().expect("body").as_ref(), v2.as_slice());
    assert_eq!(get_body(&db_url).1, v2);
    // Upstream broken: the stale copy is served, never the error page.
    up.set(Behaviour::Status(500));
    std::thread::sleep(Duration::from_millis(1100));
    let (s, body) = get_body(&db_url);
    assert_eq!((s, body.as_slice()), (200, v2.as_slice()));
    assert!(p.log().contains("serving stale"), "{}", p.log());
}

#[test]
fn upstream_404_is_a_quick_404_and_nothing_is_cached() {
    let up = FakeMirror::start();
    let p = Pkgstash::start(&config(&[&up], ""));
    let started = Instant::now();
    let (s, _) = get_body(&p.url("/arch/core/os/x86_64/core.db.sig"));
    assert_eq!(s, 404);
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(!p.cache_dir.join("arch/core/os/x86_64/core.db.sig").exists());
    // A repeated 404 within db_max_age is answered without asking upstream again.
    assert_eq!(get_body(&p.url("/arch/core/os/x86_64/core.db.sig")).0, 404);
    assert_eq!(up.count("/core/os/x86_64/core.db.sig"), 1);
}

#[test]
fn hostile_and_unknown_paths_are_refused() {
    let up = FakeMirror::start();
    up.put("/etc/passwd", b"not this".to_vec());
    let p = Pkgstash::start(&config(&[&up], ""));
    std::fs::write(p.cache_dir.join("secret"), b"secret").expect("write");
    for (path, want) in [
        ("/arch/../secret", 400),
        ("/arch/%2e%2e/secret", 400),
        ("/arch/%2E%2E%2Fsecret", 400),
        ("/arch/..%2fsecret", 400),
        ("/arch/%252e%252e/secret", 400),
        ("/arch/a%00b", 400),
        ("/arch/..%5csecret", 400),
        ("/arch/.partial/x", 400),
        ("/arch//etc/passwd", 400),
        ("/arch/core/os/", 404),
        ("/arch", 404),
        ("/nope/core/os/x86_64/core.db", 404),
        ("/", 404),
    ] {
        // Send the raw path: no client-side normalisation.
        let (s, body) = raw_get(p.addr, path);
        assert_eq!(s, want, "{path}");
        assert!(
            !body.contains("secret") && !body.contains("not this"),
            "{path}: {body}"
        );
    }
    let (s, _) = raw_request(
        p.addr,
        "GET http://127.0.0.1:1/arch/x HTTP/1.1\r\nHost: evil\r\n\r\n",
    );
    assert_eq!(s, 400, "absolute-form target");
    assert!(up
        .seen()
        .iter()
        .all(|s| !s.path.contains("passwd") && !s.path.contains("secret")));
    let r = client()
        .post(p.url("/arch/core/os/x86_64/core.db"))
        .send()
        .expect("req");
    assert_eq!(r.status().as_u16(), 405);
}

fn raw_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    raw_request(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
    )
}

fn raw_request(addr: std::net::SocketAddr, req: &str) -> (u16, String) {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(req.as_bytes()).expect("write");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

#[test]
fn restart_after_kill9_mid_download_serves_correct_bytes() {
    let up = FakeMirror::start();
    let data = payload(1 << 20, 8);
    up.put(PKG, data.clone());
    up.set(Behaviour::Trickle(256 << 10));
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = dir.path().join("cache");
    let cfg = config(&[&up], "");
    let p = Pkgstash::start_in(dir.path(), &cache, &cfg, &[], None);
    let mut resp = client().get(p.url(PKG_URL)).send().expect("request");
    let mut some = [0u8; 10_000];
    resp.read_exact(&mut some).expect("some bytes");
    assert_eq!(p.partials(), 1, "a partial exists mid-download");
    p.kill9();
    drop(resp);
    up.set(Behaviour::Normal);
    let p = Pkgstash::start_in(dir.path(), &cache, &cfg, &[], None);
    assert_eq!(p.partials(), 0, "orphaned partial removed at start");
    assert!(p.log().contains("orphaned"), "{}", p.log());
    assert_eq!(get_body(&p.url(PKG_URL)).1, data);
}

#[test]
fn sigterm_shuts_down_cleanly() {
    let up = FakeMirror::start();
    up.put(PKG, payload(1000, 9));
    let p = Pkgstash::start(&config(&[&up], ""));
    assert_eq!(get_body(&p.url(PKG_URL)).0, 200);
    assert_eq!(p.terminate(), Some(0));
}

/// The cache index's last-served times are saved when the server stops (SIGTERM), not only
/// every few minutes: a package served just before the stop is still "recently served" after
/// the restart, though upstream dates it a month back — the cleanup's `max_age` keeps it.
#[test]
fn last_served_times_survive_a_sigterm_restart() {
    const KEY: &str = "arch/core/os/x86_64/foo-1:2.0-1-x86_64.pkg.tar.zst";
    const TOKEN: &str = "t0ken-last-served-3c1d";
    let up = FakeMirror::start();
    let month_ago = SystemTime::now() - Duration::from_secs(30 * 86400);
    up.put_at(PKG, payload(1000, 17), month_ago);
    let dir = tempfile::tempdir().expect("tempdir");
    let (work, cache) = (dir.path(), dir.path().join("cache"));
    let cfg = config(&[&up], "[cleanup]\nmax_age = \"7d\"\n");
    let env = [("PKGSTASH_TOKEN", TOKEN)];
    let started = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("clock")
        .as_secs();

    let p = Pkgstash::start_in(work, &cache, &cfg, &env, None);
    assert_eq!(p.get(PKG_URL).0, 200);
    p.wait_cached(KEY);
    assert_eq!(p.get(PKG_URL).0, 200, "a hit");
    assert_eq!(p.terminate(), Some(0));

    let saved = std::fs::read_to_string(cache.join(".state/last-served.tsv"))
        .expect("last-served times written at stop");
    let served_at: u64 = saved
        .lines()
        // `served_at \t hits \t key` (hits since issue 19; the older two-column form loads too).
        .find_map(|l| {
            let served_at = l.split('\t').next()?.parse().ok()?;
            (l.rsplit('\t').next()? == KEY).then_some(served_at)
        })
        .unwrap_or_else(|| panic!("{KEY} not in the saved index:\n{saved}"));
    assert!(served_at >= started, "{served_at} < {started}");

    let p = Pkgstash::start_in(work, &cache, &cfg, &env, None);
    let report: serde_json::Value = client()
        .post(p.url("/_pkgstash/api/cleanup?dry_run=true"))
        .bearer_auth(TOKEN)
        .send()
        .and_then(|r| r.error_for_status())
        .and_then(|r| r.json())
        .expect("cleanup report");
    assert_eq!(report["removed"], serde_json::json!([]), "{report}");
    assert_eq!(p.terminate(), Some(0));
}

/// Read one HTTP/1.1 response (head + `content-length` body) from a raw connection.
fn read_response(
    r: &mut std::io::BufReader<std::net::TcpStream>,
    head_only: bool,
) -> (String, Vec<u8>) {
    use std::io::{BufRead, Read};
    let mut head = String::new();
    loop {
        let mut line = String::new();
        r.read_line(&mut line).expect("head line");
        assert!(!line.is_empty(), "connection closed mid-head: {head}");
        head.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    let len = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; if head_only { 0 } else { len }];
    r.read_exact(&mut body).expect("body");
    (head, body)
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[test]
fn keep_alive_connection_mixes_fast_hits_pipelining_and_ranges() {
    let up = FakeMirror::start();
    let data = payload(300_000, 21);
    up.put(PKG, data.clone());
    let p = Pkgstash::start(&config(&[&up], ""));
    assert_eq!(get_body(&p.url(PKG_URL)).1, data);
    p.wait_cached("arch/core/os/x86_64/foo-1:2.0-1-x86_64.pkg.tar.zst");

    use std::io::Write;
    let conn = std::net::TcpStream::connect(p.addr).expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut w = conn.try_clone().expect("clone");
    let mut r = std::io::BufReader::new(conn);
    // Two hits and a HEAD pipelined in one write, then a Range and a conditional request
    // (answered by the full handler) on the same connection, then a hit again.
    let req = |extra: &str, method: &str| {
        format!("{method} {PKG_URL} HTTP/1.1\r\nHost: x\r\n{extra}\r\n")
    };
    w.write_all(format!("{}{}{}", req("", "GET"), req("", "GET"), req("", "HEAD")).as_bytes())
        .expect("write");
    let (h1, b1) = read_response(&mut r, false);
    let (h2, b2) = read_response(&mut r, false);
    let (h3, b3) = read_response(&mut r, true);
    for (h, b) in [(&h1, &b1), (&h2, &b2)] {
        assert!(h.starts_with("HTTP/1.1 200"), "{h}");
        assert_eq!(header(h, "x-cache-status"), Some("hit"));
        assert!(b == &data, "hit body");
    }
    assert!(h3.starts_with("HTTP/1.1 200") && b3.is_empty(), "{h3}");
    assert_eq!(header(&h3, "content-length"), Some("300000"));
    let etag = header(&h1, "etag").expect("etag").to_string();

    w.write_all(req("Range: bytes=100-199\r\n", "GET").as_bytes())
        .expect("write");
    let (h4, b4) = read_response(&mut r, false);
    assert!(h4.starts_with("HTTP/1.1 206"), "{h4}");
    assert_eq!(b4, &data[100..200]);
    // The same validators whichever path answered.
    assert_eq!(header(&h4, "etag"), Some(etag.as_str()));
    w.write_all(req(&format!("If-None-Match: {etag}\r\n"), "GET").as_bytes())
        .expect("write");
    let (h5, _) = read_response(&mut r, true);
    assert!(h5.starts_with("HTTP/1.1 304"), "{h5}");
    w.write_all(req("", "GET").as_bytes()).expect("write");
    let (h6, b6) = read_response(&mut r, false);
    assert!(h6.starts_with("HTTP/1.1 200"), "{h6}");
    assert!(b6 == data);
    assert_eq!(up.count(PKG), 1);
}

#[test]
fn a_hit_never_comes_from_a_file_removed_or_replaced_behind_the_servers_back() {
    let up = FakeMirror::start();
    let data = payload(256 << 10, 7);
    up.put(PKG, data.clone());
    let p = Pkgstash::start(&config(&[&up], ""));
    let cached = p
        .cache_dir
        .join("arch/core/os/x86_64/foo-1:2.0-1-x86_64.pkg.tar.zst");
    assert_eq!(get_body(&p.url(PKG_URL)).1, data);
    p.wait_cached("arch/core/os/x86_64/foo-1:2.0-1-x86_64.pkg.tar.zst");
    // Hits (the second keeps the file's handle open in the server).
    for _ in 0..2 {
        let resp = client().get(p.url(PKG_URL)).send().expect("hit");
        assert_eq!(resp.headers()["x-cache-status"], "hit");
        assert_eq!(resp.bytes().expect("body").to_vec(), data);
    }
    // Removed by someone else (an admin's rm, `pkgstash verify`'s quarantine): a miss again.
    std::fs::remove_file(&cached).expect("rm");
    let resp = client().get(p.url(PKG_URL)).send().expect("miss");
    assert_ne!(resp.headers()["x-cache-status"], "hit");
    assert_eq!(resp.bytes().expect("body").to_vec(), data);
    assert_eq!(up.count(PKG), 2, "fetched again");
    p.wait_cached("arch/core/os/x86_64/foo-1:2.0-1-x86_64.pkg.tar.zst");
    // Replaced by other bytes (same size, a new file): those are served, not the old handle's.
    let other = payload(256 << 10, 8);
    let tmp = p.cache_dir.join("arch/core/os/x86_64/replacement");
    std::fs::write(&tmp, &other).expect("write");
    std::fs::rename(&tmp, &cached).expect("rename");
    let (s, body) = get_body(&p.url(PKG_URL));
    assert_eq!(s, 200);
    assert_eq!(body, other);
}
