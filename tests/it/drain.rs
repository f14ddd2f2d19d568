//! Draining on SIGTERM and the health check, on one node (the pool behind HAProxy is in
//! `pool`): the health check answers 200 while serving and 503 from SIGTERM on; new requests
//! get 503 (`Retry-After`, `Connection: close`) on both front-end paths; transfers in
//! progress end with every byte, the download in flight is published, keep-alive connections
//! close after their response, idle ones at once; then the process exits 0. A second SIGTERM
//! or the end of `shutdown_grace` cuts the rest, leaving nothing at a final path.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::{arch_config, client, metric_sample, wait_for, Pkgstash};
use crate::upstream::{payload, Behaviour, FakeMirror};

const PKG: &str = "/core/os/x86_64/slow-1.0-1-x86_64.pkg.tar.zst";
const PKG_URL: &str = "/arch/core/os/x86_64/slow-1.0-1-x86_64.pkg.tar.zst";
const KEY: &str = "arch/core/os/x86_64/slow-1.0-1-x86_64.pkg.tar.zst";
const OTHER_URL: &str = "/arch/core/os/x86_64/other-1.0-1-x86_64.pkg.tar.zst";

/// The status of `GET /_pkgstash/health` and its body.
fn health(p: &Pkgstash) -> (u16, String) {
    let resp = client()
        .get(p.url("/_pkgstash/health"))
        .send()
        .expect("health");
    (resp.status().as_u16(), resp.text().unwrap_or_default())
}

/// A raw HTTP/1.1 keep-alive request for `path`; the reader positioned at the response.
fn raw_request(p: &Pkgstash, path: &str) -> BufReader<TcpStream> {
    let mut s = TcpStream::connect(p.addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    write!(s, "GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").expect("send");
    BufReader::new(s)
}

/// Read one response (head and `content-length` body): status, head lines, body.
fn read_response(r: &mut BufReader<TcpStream>) -> (u16, Vec<String>, Vec<u8>) {
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        r.read_line(&mut line).expect("head line");
        let line = line.trim_end().to_string();
        if line.is_empty() {
            break;
        }
        head.push(line.to_ascii_lowercase());
    }
    let status = head
        .first()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let len: usize = head
        .iter()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map(|v| v.trim().parse().expect("length"))
        .unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body).expect("body");
    (status, head, body)
}

/// Does the server close `r`'s connection (EOF) within `within`?
fn closes(r: &mut BufReader<TcpStream>, within: Duration) -> bool {
    r.get_ref().set_read_timeout(Some(within)).expect("timeout");
    let mut rest = Vec::new();
    r.read_to_end(&mut rest).is_ok() && rest.is_empty()
}

/// A trickling mirror (about 3 s for the package) and pkgstash in front of it.
fn slow_setup(extra: &str) -> (FakeMirror, Vec<u8>, Pkgstash) {
    let m = FakeMirror::start();
    let data = payload(600_000, 77);
    m.put(PKG, data.clone());
    m.put(
        "/core/os/x86_64/other-1.0-1-x86_64.pkg.tar.zst",
        payload(1000, 78),
    );
    m.set(Behaviour::Trickle(200_000));
    let p = Pkgstash::start(&arch_config("5s", &[m.url()], extra));
    (m, data, p)
}

fn drains_then_exits(fast_path: bool) {
    let (_m, data, mut p) = slow_setup(&format!(
        "shutdown_grace = \"30s\"\nfast_path = {fast_path}\n"
    ));
    let (status, body) = health(&p);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"ok\""), "{body}");
    // A transfer in progress on a keep-alive connection, and an idle keep-alive connection.
    let mut busy = raw_request(&p, PKG_URL);
    let mut idle = raw_request(&p, "/_pkgstash/status.json");
    assert_eq!(read_response(&mut idle).0, 200);
    wait_for("the download started", Duration::from_secs(5), || {
        p.partials() == 1
    });

    p.signal("TERM");
    wait_for("health 503", Duration::from_secs(5), || health(&p).0 == 503);
    assert!(health(&p).1.contains("\"draining\""));
    // actix alone (`fast_path = false`) closes an idle connection after its keep-alive (5 s).
    let keep_alive = Duration::from_secs(if fast_path { 2 } else { 7 });
    assert!(
        closes(&mut idle, keep_alive),
        "idle keep-alive connection closed"
    );
    // New work is refused, both as a plain package GET and as actix's request.
    for path in [OTHER_URL, "/arch/core/os/x86_64/core.db"] {
        let resp = client().get(p.url(path)).send().expect("get");
        assert_eq!(resp.status().as_u16(), 503, "{path}");
        assert_eq!(resp.headers()["retry-after"], "10");
        assert_eq!(resp.headers()["connection"], "close");
    }
    let metrics = p.metrics();
    assert_eq!(metric_sample(&metrics, "pkgstash_draining"), Some(1.0));
    assert_eq!(p.exited(), None, "still draining");

    // The transfer in progress ends with every byte; then its connection closes.
    let (status, _, body) = read_response(&mut busy);
    assert_eq!(status, 200);
    assert!(body == data, "the whole package");
    assert!(closes(&mut busy, keep_alive), "closed after the response");
    assert_eq!(p.wait_exit(Duration::from_secs(10)), 0, "{}", p.log());
    assert_eq!(
        std::fs::read(p.cache_dir.join(KEY)).expect("published"),
        data
    );
    assert!(p.log().contains("drained"), "{}", p.log());
}

#[test]
fn sigterm_drains_transfers_then_exits() {
    drains_then_exits(true);
}

#[test]
fn sigterm_drains_transfers_then_exits_without_fast_path() {
    drains_then_exits(false);
}

/// A download no client waits for any more is finished and published before the exit.
#[test]
fn downloads_in_flight_are_published_before_the_exit() {
    let (_m, data, mut p) = slow_setup("shutdown_grace = \"30s\"\n");
    let mut resp = client().get(p.url(PKG_URL)).send().expect("get");
    let mut some = [0u8; 1000];
    resp.read_exact(&mut some).expect("first bytes");
    drop(resp);
    p.signal("TERM");
    assert_eq!(p.wait_exit(Duration::from_secs(15)), 0, "{}", p.log());
    assert_eq!(
        std::fs::read(p.cache_dir.join(KEY)).expect("published"),
        data
    );
}

/// The transfer is cut, nothing is left at the final path, `.partial/` is emptied at the next
/// start.
fn assert_cut_cleanly(p: &mut Pkgstash, reader: std::thread::JoinHandle<reqwest::Result<Vec<u8>>>) {
    assert_eq!(p.wait_exit(Duration::from_secs(5)), 0, "{}", p.log());
    let got = reader.join().expect("reader");
    assert!(got.is_err(), "the client sees the body cut short");
    assert!(!p.cache_dir.join(KEY).exists(), "nothing at the final path");
}

#[test]
fn a_second_sigterm_stops_at_once() {
    let (_m, _data, mut p) = slow_setup("shutdown_grace = \"60s\"\n");
    let reader = crate::support::get_in_background(&p.url(PKG_URL));
    wait_for("the download started", Duration::from_secs(5), || {
        p.partials() == 1
    });
    p.signal("TERM");
    wait_for("health 503", Duration::from_secs(5), || health(&p).0 == 503);
    let started = Instant::now();
    p.signal("TERM");
    assert_cut_cleanly(&mut p, reader);
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(p.log().contains("SIGTERM: stopping now"), "{}", p.log());
}

#[test]
fn the_end_of_shutdown_grace_stops() {
    let (_m, _data, mut p) = slow_setup("shutdown_grace = \"1s\"\n");
    let reader = crate::support::get_in_background(&p.url(PKG_URL));
    wait_for("the download started", Duration::from_secs(5), || {
        p.partials() == 1
    });
    let started = Instant::now();
    p.signal("TERM");
    assert_cut_cleanly(&mut p, reader);
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert!(
        p.log().contains("shutdown_grace (1s) is over"),
        "{}",
        p.log()
    );
}

/// With nothing in progress, SIGTERM stops at once (the sample config's grace does not delay
/// an idle node's restart).
#[test]
fn an_idle_node_stops_at_once() {
    let (_m, _data, mut p) = slow_setup("");
    assert_eq!(health(&p).0, 200);
    let started = Instant::now();
    p.signal("TERM");
    assert_eq!(p.wait_exit(Duration::from_secs(5)), 0, "{}", p.log());
    assert!(started.elapsed() < Duration::from_secs(2));
}

/// A bad `shutdown_grace` is a config error naming the key (exit 2).
#[test]
fn bad_shutdown_grace_exits_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        "shutdown_grace = \"forever\"\n[upstreams.arch]\nmirrors = [\"http://127.0.0.1:1\"]\n",
    )
    .expect("write");
    let out = std::process::Command::new(crate::support::bin())
        .args(["check-config", "-c"])
        .arg(&cfg)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("shutdown_grace"));
}
