//! Bodies as mirrors frame them (RFC 9112 §6.3): declared length, chunked, close-delimited,
//! empty, endless. Never an empty or unverifiable file at a final path, never an unbounded
//! download: a body of unknown length stops at the db's size, else at `max_unknown_size`.

use std::io::Read;
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

use crate::support::{arch_config, client, sha256_hex, wait_for, Pkgstash};
use crate::upstream::{payload, Behaviour, FakeMirror};

const PKG: &str = "/core/os/x86_64/bar-1.0-1-x86_64.pkg.tar.zst";
const PKG_URL: &str = "/arch/core/os/x86_64/bar-1.0-1-x86_64.pkg.tar.zst";
const CACHED: &str = "arch/core/os/x86_64/bar-1.0-1-x86_64.pkg.tar.zst";
const DB: &str = "/core/os/x86_64/core.db";
const DB_URL: &str = "/arch/core/os/x86_64/core.db";
const DB_CACHED: &str = "arch/core/os/x86_64/core.db";

fn start(mirrors: &[String], extra: &str) -> Pkgstash {
    Pkgstash::start(&arch_config("2s", mirrors, extra))
}

fn mirror_status(p: &Pkgstash, i: usize) -> Value {
    p.status_json()["mirrors"][i].clone()
}

/// A gzip-compressed repo db listing `name-1.0-1` with `filename`, `csize` and `sha256`.
pub fn make_db(entries: &[(&str, &str, u64, &str)]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    for (name, filename, csize, sha256) in entries {
        let desc = format!(
            "%FILENAME%\n{filename}\n\n%NAME%\n{name}\n\n%VERSION%\n1.0-1\n\n%ARCH%\nx86_64\n\n\
             %CSIZE%\n{csize}\n\n%SHA256SUM%\n{sha256}\n\n"
        );
        let mut h = tar::Header::new_gnu();
        h.set_size(desc.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        tar.append_data(&mut h, format!("{name}-1.0-1/desc"), desc.as_bytes())
            .expect("tar entry");
    }
    tar.into_inner().expect("tar").finish().expect("gzip")
}

#[test]
fn close_delimited_http11_body_is_a_mirror_failure_never_an_empty_file() {
    let odd = FakeMirror::start();
    let good = FakeMirror::start();
    let data = payload(200_000, 51);
    odd.put(PKG, data.clone());
    good.put(PKG, data.clone());
    odd.set(Behaviour::CloseDelimited);
    let p = start(&[odd.url(), good.url()], "");
    let (s, body) = p.get(PKG_URL);
    assert_eq!((s, body.expect("body")), (200, data.clone()));
    let m = mirror_status(&p, 0);
    assert!(
        m["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("closing the connection")),
        "{m}"
    );

    // The only mirror frames bodies that way: no empty package, no empty db, ever.
    let p = start(&[odd.url()], "");
    odd.put(DB, make_db(&[]));
    let (s, _) = p.get(PKG_URL);
    assert_eq!(s, 502, "not an empty 200");
    let (s, _) = p.get(DB_URL);
    assert_eq!(s, 502, "not an empty db");
    std::thread::sleep(Duration::from_millis(300));
    assert!(!p.cache_dir.join(CACHED).exists());
    assert!(!p.cache_dir.join(DB_CACHED).exists());
}

#[test]
fn chunked_and_http10_bodies_are_read_to_the_end() {
    let chunked = FakeMirror::start();
    let data = payload(1 << 20, 52);
    chunked.put(PKG, data.clone());
    chunked.set(Behaviour::Chunked);
    let p = start(&[chunked.url()], "");
    let (s, body) = p.get(PKG_URL);
    assert_eq!(s, 200);
    assert_eq!(sha256_hex(&body.expect("body")), sha256_hex(&data));
    wait_for("cached", Duration::from_secs(10), || {
        p.cache_dir.join(CACHED).is_file()
    });

    let http10 = FakeMirror::start();
    http10.put(PKG, data.clone());
    http10.set(Behaviour::CloseDelimitedHttp10);
    let p = start(&[http10.url()], "");
    let (s, body) = p.get(PKG_URL);
    assert_eq!(s, 200);
    assert_eq!(sha256_hex(&body.expect("body")), sha256_hex(&data));
}

#[test]
fn empty_bodies_are_never_published() {
    let empty = FakeMirror::start();
    let good = FakeMirror::start();
    let data = payload(10_000, 53);
    empty.put(PKG, Vec::new());
    good.put(PKG, data.clone());
    // An empty chunked body, then a Content-Length: 0 one: the next mirror is asked.
    for b in [Behaviour::Chunked, Behaviour::Normal] {
        empty.set(b.clone());
        let p = start(&[empty.url(), good.url()], "");
        let (s, body) = p.get(PKG_URL);
        assert_eq!((s, body.expect("body")), (200, data.clone()), "{b:?}");
        assert!(mirror_status(&p, 0)["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("0 bytes")));
    }
    // Alone: a clean failure, nothing cached.
    let p = start(&[empty.url()], "");
    let (s, _) = p.get(PKG_URL);
    assert_eq!(s, 502);
    empty.put(DB, Vec::new());
    let (s, _) = p.get(DB_URL);
    assert_eq!(s, 502);
    assert!(!p.cache_dir.join(CACHED).exists());
    assert!(!p.cache_dir.join(DB_CACHED).exists());
}

#[test]
fn unreadable_db_never_replaces_the_cached_one() {
    let m = FakeMirror::start();
    let good_db = make_db(&[(
        "bar",
        "bar-1.0-1-x86_64.pkg.tar.zst",
        5,
        &sha256_hex(b"bar-1"),
    )]);
    let old = SystemTime::now() - Duration::from_secs(3600);
    m.put_at(DB, good_db.clone(), old);
    let p = start(&[m.url()], "db_max_age = \"0s\"");
    let (s, body) = p.get(DB_URL);
    assert_eq!((s, body.expect("body")), (200, good_db.clone()));
    // The mirror now serves a newer "db" that is no db at all (an error page, a truncated file).
    let garbage = b"<html>Service temporarily unavailable</html>".to_vec();
    m.put(DB, garbage.clone());
    let (s, body) = p.get(DB_URL);
    // The client tailing the download is aborted (the last byte of a db is only sent once it
    // is published), or gets the cached copy: never the garbage with a clean end.
    match body {
        Ok(b) => assert_eq!((s, b), (200, good_db.clone())),
        Err(_) => assert_eq!(s, 200),
    }
    assert_eq!(
        std::fs::read(p.cache_dir.join(DB_CACHED)).expect("cached db"),
        good_db
    );
    assert!(mirror_status(&p, 0)["last_error"]
        .as_str()
        .is_some_and(|e| e.contains("unreadable repo db")));
}

/// The server's log has (or gets within 5 s) a line containing `text`. A client can see an
/// aborted body before the test's reader of the server's stderr has caught up with the line
/// the server wrote just before the abort.
fn assert_logged(p: &Pkgstash, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !p.log().contains(text) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        p.log().contains(text),
        "`{text}` not in the log:\n{}",
        p.log()
    );
}

/// Read a streamed body until it ends or fails: (bytes read, ended cleanly).
fn drain(path: &str, p: &Pkgstash) -> (u64, bool) {
    let mut resp = client().get(p.url(path)).send().expect("request");
    if resp.status().as_u16() != 200 {
        return (0, false);
    }
    let mut buf = vec![0u8; 1 << 16];
    let mut n = 0u64;
    loop {
        match resp.read(&mut buf) {
            Ok(0) => return (n, true),
            Ok(k) => n += k as u64,
            Err(_) => return (n, false),
        }
    }
}

#[test]
fn endless_body_stops_at_max_unknown_size() {
    let endless = FakeMirror::start();
    endless.put(PKG, payload(256 << 10, 54));
    endless.set(Behaviour::Endless);
    let p = start(&[endless.url()], "max_unknown_size = \"3MiB\"");
    let started = Instant::now();
    let (n, clean) = drain(PKG_URL, &p);
    assert!(
        !clean,
        "the client must see an aborted body, not a clean end"
    );
    assert!(n <= 3 << 20, "{n} bytes passed the bound");
    assert!(started.elapsed() < Duration::from_secs(30));
    wait_for("partial removed", Duration::from_secs(5), || {
        p.partials() == 0
    });
    assert!(!p.cache_dir.join(CACHED).exists());
    assert_logged(&p, "max_unknown_size");
    // An endless body is the mirror's fault.
    assert_eq!(mirror_status(&p, 0)["failures"], 1);
}

#[test]
fn declared_length_above_max_unknown_size_is_refused_up_front() {
    let m = FakeMirror::start();
    m.put(PKG, payload(2 << 20, 55));
    let p = start(&[m.url()], "max_unknown_size = \"1MiB\"");
    let (s, _) = p.get(PKG_URL);
    assert_eq!(s, 502);
    assert_eq!(m.count(PKG), 1, "not retried");
    // Policy, not the mirror's fault.
    let st = mirror_status(&p, 0);
    assert_eq!(
        (st["failures"].as_u64(), st["healthy"].as_bool()),
        (Some(0), Some(true))
    );
    assert_eq!(p.partials(), 0);
}

#[test]
fn body_longer_than_the_db_says_fails_at_once() {
    let m = FakeMirror::start();
    let data = payload(100_000, 56);
    let db = make_db(&[(
        "bar",
        "bar-1.0-1-x86_64.pkg.tar.zst",
        data.len() as u64,
        &sha256_hex(&data),
    )]);
    m.put(DB, db);
    let p = start(&[m.url()], "");
    let (s, _) = p.get(DB_URL);
    assert_eq!(s, 200);
    // The mirror streams the package without end: stopped at the db's 100,000 bytes.
    m.put(PKG, data.clone());
    m.set(Behaviour::Endless);
    let started = Instant::now();
    let (n, clean) = drain(PKG_URL, &p);
    assert!(
        !clean && n <= data.len() as u64,
        "{n} bytes, clean end {clean}"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_logged(&p, "the repo db says");
    wait_for("partial removed", Duration::from_secs(5), || {
        p.partials() == 0
    });
    assert!(!p.cache_dir.join(CACHED).exists());
    // A well-behaved answer afterwards is verified and cached.
    m.set(Behaviour::Normal);
    let (s, body) = p.get(PKG_URL);
    assert_eq!((s, body.expect("body")), (200, data));
}
