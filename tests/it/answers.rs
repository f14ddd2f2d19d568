//! What a request gets, whichever path answers it: `HEAD` of an uncached package (connecting,
//! streaming, done), ranges while the length is unknown upstream, `If-Range` and several
//! ranges on hits and downloads in flight, 414 for paths that cannot name a file, and 5xx
//! bodies without server-side detail.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::framing::{cached_server, PKG_REL, PKG_URL};
use crate::rawhttp::{find, Raw, Resp};
use crate::support::{arch_config, client, get_in_background, sha256_hex, wait_for, Pkgstash};
use crate::upstream::{payload, Behaviour, FakeMirror};

const PKG: &str = "/core/os/x86_64/foo-1.0-1-x86_64.pkg.tar.zst";

fn start(mirror: &str) -> Pkgstash {
    Pkgstash::start(&arch_config("3s", &[mirror.to_string()], ""))
}

/// One request on a new connection; its response.
fn ask(p: &Pkgstash, head: &str) -> Resp {
    let mut c = Raw::connect(p.addr);
    c.send(head.as_bytes());
    c.response(head.starts_with("HEAD ")).expect("a response")
}

/// A plain request (the sendfile fast path takes it) and one with a header that makes it
/// the mirror handler's without changing its meaning.
fn both_paths(method: &str, extra: &str) -> [String; 2] {
    [
        format!("{method} {PKG_URL} HTTP/1.1\r\nHost: x\r\n{extra}\r\n"),
        format!("{method} {PKG_URL} HTTP/1.1\r\nHost: x\r\nIf-None-Match: \"none\"\r\n{extra}\r\n"),
    ]
}

/// The headers a `HEAD` must share with the `GET`.
const SAME: [&str; 4] = [
    "content-length",
    "content-type",
    "last-modified",
    "accept-ranges",
];

#[test]
fn head_of_an_uncached_package_gets_upstreams_length_in_every_phase() {
    let len = 1_500_000;
    let data = payload(len, 7);
    let modified = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    for (i, req) in both_paths("HEAD", "").iter().enumerate() {
        let up = FakeMirror::start();
        up.put_at(PKG, data.clone(), modified);
        let p = start(&up.url());
        // Connecting: the mirror answers after a second; the HEAD waits for its length.
        up.set(Behaviour::DelayHead(Duration::from_millis(800)));
        let r = ask(&p, req);
        assert_eq!(r.status, 200, "path {i}: {r:?}");
        assert_eq!(
            r.header("content-length"),
            Some("1500000"),
            "path {i}: {r:?}"
        );
        assert_eq!(
            r.header("last-modified"),
            Some(httpdate::fmt_http_date(modified).as_str())
        );
        // Streaming: a GET is on its way; HEAD gets the headers the GET got.
        let other = "/core/os/x86_64/bar-1.0-1-x86_64.pkg.tar.zst";
        up.put_at(other, data.clone(), modified);
        up.set(Behaviour::Trickle(1 << 20));
        let url = PKG_URL.replace("foo-1.0-1", "bar-1.0-1");
        let mut get = Raw::connect(p.addr);
        get.send(format!("GET {url} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
        let g = get.response(true).expect("GET head");
        let r = ask(&p, &req.replace(PKG_URL, &url));
        assert_eq!(r.status, 200, "path {i}: {r:?}");
        for h in SAME {
            assert_eq!(r.header(h), g.header(h), "path {i}: {h}: {r:?} vs {g:?}");
        }
        assert_eq!(r.header("x-cache-status"), Some("joined"), "{r:?}");
        assert!(get.take(len) == data, "the GET's body");
        // Done: cached.
        wait_for("cached", Duration::from_secs(20), || {
            p.cache_dir.join(PKG_REL).is_file()
        });
        let r = ask(&p, req);
        assert_eq!(r.header("content-length"), Some("1500000"));
        assert_eq!(up.count(PKG), 1, "one download: {:?}", up.seen());
        assert_eq!(up.count(other), 1, "one download: {:?}", up.seen());
    }
}

/// A mirror that sends every file chunked (no length): `chunk` bytes every 50 ms.
struct ChunkedMirror {
    port: u16,
    hits: Arc<AtomicUsize>,
}

impl ChunkedMirror {
    fn start(path: &'static str, data: Vec<u8>, chunk: usize) -> ChunkedMirror {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let (data, h) = (data.clone(), h.clone());
                std::thread::spawn(move || {
                    let mut head = Vec::new();
                    let mut b = [0u8; 1];
                    while find(&head, b"\r\n\r\n").is_none() {
                        if conn.read(&mut b).unwrap_or(0) == 0 {
                            return;
                        }
                        head.push(b[0]);
                    }
                    let wanted = String::from_utf8_lossy(&head).contains(&format!(" {path} "));
                    if !wanted {
                        let _ = conn.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                        return;
                    }
                    h.fetch_add(1, Ordering::SeqCst);
                    let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
                    for c in data.chunks(chunk) {
                        let _ = write!(conn, "{:x}\r\n", c.len());
                        let _ = conn.write_all(c);
                        let _ = conn.write_all(b"\r\n");
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    let _ = conn.write_all(b"0\r\n\r\n");
                });
            }
        });
        ChunkedMirror { port, hits }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// A repo db (plain tar) listing `foo-1.0-1-x86_64.pkg.tar.zst` with `data`'s size and sha256.
fn core_db(data: &[u8]) -> Vec<u8> {
    let desc = format!(
        "%FILENAME%\nfoo-1.0-1-x86_64.pkg.tar.zst\n\n%NAME%\nfoo\n\n%VERSION%\n1.0-1\n\n%CSIZE%\n{}\n\n%SHA256SUM%\n{}\n\n%ARCH%\nx86_64\n\n",
        data.len(),
        sha256_hex(data)
    );
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(desc.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, "foo-1.0-1/desc", desc.as_bytes())
        .expect("tar");
    b.into_inner().expect("tar")
}

#[test]
fn a_range_on_a_download_of_unknown_length_gets_206() {
    let len = 1 << 20;
    let data = payload(len, 9);
    for with_db in [true, false] {
        // 32 chunks, 50 ms apart: the download lasts ~1.6 s.
        let up = ChunkedMirror::start(PKG, data.clone(), 32 << 10);
        let p = start(&up.url());
        if with_db {
            let db = p.cache_dir.join("arch/core/os/x86_64/core.db");
            std::fs::create_dir_all(db.parent().expect("dir")).expect("mkdir");
            std::fs::write(&db, core_db(&data)).expect("db");
        }
        let url = p.url(PKG_URL);
        let first = get_in_background(&url);
        std::thread::sleep(Duration::from_millis(300));
        if with_db {
            // While the body of unknown length still streams, the db's size is the length
            // clients are told: a HEAD gets it on both paths (so a Range needs no wait).
            for req in both_paths("HEAD", "") {
                let h = ask(&p, &req);
                assert_eq!(
                    h.header("x-cache-status"),
                    Some("joined"),
                    "in flight: {h:?}"
                );
                assert_eq!(h.header("content-length"), Some("1048576"), "{h:?}");
            }
        }
        let r = client()
            .get(&url)
            .header("range", "bytes=100000-")
            .send()
            .expect("range request");
        assert_eq!(r.status().as_u16(), 206, "db known: {with_db}");
        assert_eq!(
            r.headers()["content-range"],
            format!("bytes 100000-{}/{len}", len - 1).as_str()
        );
        assert!(r.bytes().expect("body").as_ref() == &data[100_000..]);
        assert!(first.join().expect("thread").expect("first") == data);
        assert_eq!(up.hits.load(Ordering::SeqCst), 1);
    }
}

/// The parts of a `multipart/byteranges` body: (Content-Range, bytes).
fn parts(r: &Resp) -> Vec<(String, Vec<u8>)> {
    let ct = r.header("content-type").expect("content-type");
    assert!(ct.starts_with("multipart/byteranges"), "{r:?}");
    let boundary = format!("--{}", ct.split("boundary=").nth(1).expect("boundary"));
    let mut out = Vec::new();
    let mut rest = &r.body[..];
    loop {
        let start = find(rest, boundary.as_bytes()).expect("delimiter") + boundary.len();
        rest = &rest[start..];
        if rest.starts_with(b"--") {
            return out;
        }
        let head_end = find(rest, b"\r\n\r\n").expect("part head") + 4;
        let head = String::from_utf8_lossy(&rest[..head_end]).to_string();
        let range = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-range:")
                    .map(|v| v.trim().to_string())
            })
            .expect("content-range");
        rest = &rest[head_end..];
        let end = find(rest, format!("\r\n{boundary}").as_bytes()).expect("part end");
        out.push((range, rest[..end].to_vec()));
        rest = &rest[end + 2..];
    }
}

#[test]
fn if_range_and_several_ranges_on_hits_and_downloads_in_flight() {
    let len = 100_000;
    let (_up, p, data) = cached_server(len, "");
    let full = ask(&p, &format!("GET {PKG_URL} HTTP/1.1\r\nHost: x\r\n\r\n"));
    let etag = full.header("etag").expect("etag").to_string();
    let lm = full.header("last-modified").expect("lm").to_string();
    let earlier = httpdate::fmt_http_date(
        httpdate::parse_http_date(&lm).expect("date") - Duration::from_secs(1),
    );
    let hit = |extra: &str| {
        ask(
            &p,
            &format!("GET {PKG_URL} HTTP/1.1\r\nHost: x\r\nRange: bytes=0-9\r\n{extra}\r\n"),
        )
    };
    for (if_range, status) in [
        (etag.clone(), 206),
        (lm.clone(), 206),
        ("\"other\"".to_string(), 200),
        (format!("W/{etag}"), 200),
        (earlier, 200),
    ] {
        let r = hit(&format!("If-Range: {if_range}\r\n"));
        assert_eq!(r.status, status, "If-Range: {if_range}: {r:?}");
        let want: &[u8] = if status == 206 { &data[..10] } else { &data };
        assert!(r.body == want, "If-Range: {if_range}");
    }
    let r = ask(
        &p,
        &format!("GET {PKG_URL} HTTP/1.1\r\nHost: x\r\nRange: bytes=0-0,5-10\r\n\r\n"),
    );
    assert_eq!(r.status, 206, "{r:?}");
    assert_eq!(
        parts(&r),
        vec![
            (format!("bytes 0-0/{len}"), data[0..1].to_vec()),
            (format!("bytes 5-10/{len}"), data[5..11].to_vec())
        ]
    );

    // The same on a download in flight.
    let up = FakeMirror::start();
    let data = payload(1 << 20, 11);
    up.put(PKG, data.clone());
    up.set(Behaviour::Trickle(1 << 20));
    let p = start(&up.url());
    let url = p.url(PKG_URL);
    let first = get_in_background(&url);
    std::thread::sleep(Duration::from_millis(300));
    let r = ask(
        &p,
        &format!(
            "GET {PKG_URL} HTTP/1.1\r\nHost: x\r\nRange: bytes=0-0,5-10,600000-600001\r\n\r\n"
        ),
    );
    assert_eq!(r.status, 206, "{r:?}");
    assert_eq!(
        parts(&r),
        vec![
            (format!("bytes 0-0/{}", data.len()), data[0..1].to_vec()),
            (format!("bytes 5-10/{}", data.len()), data[5..11].to_vec()),
            (
                format!("bytes 600000-600001/{}", data.len()),
                data[600_000..600_002].to_vec()
            ),
        ]
    );
    let r = ask(
        &p,
        &format!(
            "GET {PKG_URL} HTTP/1.1\r\nHost: x\r\nRange: bytes=0-9\r\nIf-Range: \"x\"\r\n\r\n"
        ),
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body == data);
    assert!(first.join().expect("thread").expect("first") == data);
    assert_eq!(up.count(PKG), 1);
}

#[test]
fn paths_that_cannot_name_a_file_get_414_before_any_upstream_request() {
    let up = FakeMirror::start();
    let p = start(&up.url());
    let many = format!("/arch/{}x-1-1-any.pkg.tar.zst", "abcdefgh/".repeat(466));
    assert!(many.len() > 4200);
    let one = format!(
        "/arch/core/os/x86_64/{}-1-1-any.pkg.tar.zst",
        "x".repeat(300)
    );
    for path in [many, one] {
        for method in ["GET", "HEAD"] {
            let r = ask(&p, &format!("{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n"));
            assert_eq!(r.status, 414, "{method} {}…: {r:?}", &path[..40]);
            assert!(!String::from_utf8_lossy(&r.body).contains("os error"));
        }
    }
    assert!(up.seen().is_empty(), "{:?}", up.seen());
}

#[test]
fn server_side_errors_carry_no_detail_in_the_body() {
    let up = FakeMirror::start();
    up.put(PKG, payload(10_000, 3));
    let p = start(&up.url());
    // Every download now fails locally: its partial file cannot be created.
    let partial = p.cache_dir.join(".partial");
    std::fs::remove_dir_all(&partial).expect("rm .partial");
    std::fs::write(&partial, b"not a directory").expect("write");
    for req in both_paths("GET", "") {
        let r = ask(&p, &req);
        // The cache's own trouble (not a full disk): 500 on both paths, as the handler maps it.
        assert_eq!(r.status, 500, "{r:?}");
        let body = String::from_utf8_lossy(&r.body);
        for secret in [
            "os error",
            "directory",
            "partial",
            "127.0.0.1",
            p.cache_dir.to_str().expect("utf-8"),
        ] {
            assert!(!body.contains(secret), "{secret:?} in {body:?}");
        }
    }
    // The detail is in the log, for the admin.
    assert!(p.log().contains("partial"), "{}", p.log());
}
