//! The mirror pool over real sockets: failover before the first byte, resume on another mirror
//! mid-body (Range), stalls, slow mirrors, mirrors that ignore Range or serve HTML, cooldown.

use std::time::{Duration, Instant};

use crate::support::{arch_config, get, sha256_hex, Pkgstash};
use crate::upstream::{payload, Behaviour, FakeMirror};

const PKG: &str = "/core/os/x86_64/bar-1.0-1-x86_64.pkg.tar.zst";
const PKG_URL: &str = "/arch/core/os/x86_64/bar-1.0-1-x86_64.pkg.tar.zst";
const CACHED: &str = "arch/core/os/x86_64/bar-1.0-1-x86_64.pkg.tar.zst";

fn config(mirrors: &[String], extra: &str) -> String {
    arch_config("2s", mirrors, extra)
}

/// A port nothing listens on.
fn closed_port_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    drop(l);
    format!("http://127.0.0.1:{port}")
}

#[test]
fn refused_first_mirror_fails_over_and_cools_down() {
    let good = FakeMirror::start();
    let data = payload(200_000, 11);
    good.put(PKG, data.clone());
    good.put(
        "/core/os/x86_64/other-1-1-any.pkg.tar.zst",
        b"other".to_vec(),
    );
    let p = Pkgstash::start(&config(&[closed_port_url(), good.url()], ""));
    let (s, body) = get(&p.url(PKG_URL));
    assert_eq!(s, 200);
    assert_eq!(body.expect("body"), data);
    // The refused mirror is now cooling down: the next miss goes straight to the good one.
    let started = Instant::now();
    let (s, body) = get(&p.url("/arch/core/os/x86_64/other-1-1-any.pkg.tar.zst"));
    assert_eq!((s, body.expect("body")), (200, b"other".to_vec()));
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(p.log().contains("cooling down"), "{}", p.log());
}

#[test]
fn status_500_and_404_move_on_and_all_404_is_404() {
    let broken = FakeMirror::start();
    broken.set(Behaviour::Status(503));
    let lagging = FakeMirror::start(); // has nothing yet: 404
    let good = FakeMirror::start();
    let data = payload(50_000, 12);
    good.put(PKG, data.clone());
    let p = Pkgstash::start(&config(&[broken.url(), lagging.url(), good.url()], ""));
    let (s, body) = get(&p.url(PKG_URL));
    assert_eq!((s, body.expect("body")), (200, data));
    assert_eq!(lagging.count(PKG), 1);
    // Every mirror lacks it (the broken one is cooling down but still asked last).
    let (s, _) = get(&p.url("/arch/core/os/x86_64/missing-1-1-any.pkg.tar.zst"));
    assert_eq!(s, 502, "one mirror failed, so not every mirror said 404");
    broken.set(Behaviour::NotFound);
    let p = Pkgstash::start(&config(&[broken.url(), lagging.url(), good.url()], ""));
    let (s, _) = get(&p.url("/arch/core/os/x86_64/missing-1-1-any.pkg.tar.zst"));
    assert_eq!(s, 404);
}

#[test]
fn all_mirrors_failing_is_a_502_with_a_short_text() {
    let broken = FakeMirror::start();
    broken.set(Behaviour::Status(500));
    let p = Pkgstash::start(&config(&[closed_port_url(), broken.url()], ""));
    let (s, body) = get(&p.url(PKG_URL));
    assert_eq!(s, 502);
    let text = String::from_utf8(body.expect("body")).expect("utf8");
    assert!(text.contains("upstream") && text.len() < 2000, "{text}");
    assert!(!p.cache_dir.join(CACHED).exists());
}

#[test]
fn mirror_dropping_mid_body_is_resumed_on_the_next_with_range() {
    let first = FakeMirror::start();
    let second = FakeMirror::start();
    let data = payload(2 << 20, 13);
    first.put(PKG, data.clone());
    second.put(PKG, data.clone());
    first.set(Behaviour::CloseAfter(700_000));
    let p = Pkgstash::start(&config(&[first.url(), second.url()], ""));
    let (s, body) = get(&p.url(PKG_URL));
    assert_eq!(s, 200);
    assert_eq!(
        sha256_hex(&body.expect("client sees no error")),
        sha256_hex(&data)
    );
    let seen = second.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].range.as_deref(), Some("bytes=700000-"));
    assert_eq!(
        second.body_bytes(),
        data.len() as u64 - 700_000,
        "no byte fetched twice"
    );
    assert_eq!(p.wait_cached(CACHED), data);
}

#[test]
fn stalled_mirror_is_replaced_after_the_timeout() {
    let first = FakeMirror::start();
    let second = FakeMirror::start();
    let data = payload(1 << 20, 14);
    first.put(PKG, data.clone());
    second.put(PKG, data.clone());
    first.set(Behaviour::StallAfter(300_000, Duration::from_secs(30)));
    let p = Pkgstash::start(&config(&[first.url(), second.url()], ""));
    let started = Instant::now();
    let (s, body) = get(&p.url(PKG_URL));
    assert_eq!(s, 200);
    assert_eq!(body.expect("body"), data);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(second.seen()[0].range.as_deref(), Some("bytes=300000-"));
}

#[test]
fn mirror_ignoring_range_is_consumed_and_checked() {
    let first = FakeMirror::start();
    let second = FakeMirror::start();
    let data = payload(1 << 20, 15);
    first.put(PKG, data.clone());
    second.put(PKG, data.clone());
    first.set(Behaviour::CloseAfter(400_000));
    second.set(Behaviour::IgnoreRange);
    let p = Pkgstash::start(&config(&[first.url(), second.url()], ""));
    let (s, body) = get(&p.url(PKG_URL));
    assert_eq!(s, 200);
    assert_eq!(body.expect("body"), data);
    assert_eq!(p.wait_cached(CACHED), data);
}

#[test]
fn mirror_ignoring_range_with_other_bytes_fails_cleanly() {
    let first = FakeMirror::start();
    let second = FakeMirror::start();
    first.put(PKG, payload(1 << 20, 16));
    second.put(PKG, payload(1 << 20, 17)); // same length, other content
    first.set(Behaviour::CloseAfter(400_000));
    second.set(Behaviour::IgnoreRange);
    let p = Pkgstash::start(&config(&[first.url(), second.url()], ""));
    let (s, body) = get(&p.url(PKG_URL));
    assert_eq!(s, 200);
    assert!(body.is_err(), "client must see an aborted body");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !p.cache_dir.join(CACHED).exists(),
        "never cache a mixed file"
    );
}

#[test]
fn html_instead_of_a_package_is_rejected() {
    let portal = FakeMirror::start();
    portal.put(PKG, b"x".to_vec());
    portal.set(Behaviour::Html);
    let good = FakeMirror::start();
    let data = payload(10_000, 18);
    good.put(PKG, data.clone());
    let p = Pkgstash::start(&config(&[portal.url(), good.url()], ""));
    let (s, body) = get(&p.url(PKG_URL));
    assert_eq!((s, body.expect("body")), (200, data));
}

#[test]
fn slow_mirror_is_switched_for_a_healthy_one() {
    let slow = FakeMirror::start();
    let fast = FakeMirror::start();
    let data = payload(3 << 20, 19);
    slow.put(PKG, data.clone());
    fast.put(PKG, data.clone());
    slow.set(Behaviour::Trickle(100 << 10)); // 100 KiB/s: would take 30 s
    let p = Pkgstash::start(&config(
        &[slow.url(), fast.url()],
        "min_rate = \"500KiB/s\"",
    ));
    let started = Instant::now();
    let (s, body) = get(&p.url(PKG_URL));
    assert_eq!(s, 200);
    assert_eq!(sha256_hex(&body.expect("body")), sha256_hex(&data));
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    let range = fast.seen()[0].range.clone().expect("resumed with Range");
    assert!(
        range.starts_with("bytes=") && range != "bytes=0-",
        "{range}"
    );
    assert!(p.log().contains("too slow"), "{}", p.log());
}

#[test]
fn every_mirror_slow_is_a_slow_line_not_a_failure() {
    // The site's own uplink is the bottleneck: every mirror stays under min_rate, and the
    // download keeps progressing. It must finish, and no mirror is blamed.
    let a = FakeMirror::start();
    let b = FakeMirror::start();
    let data = payload(6 << 20, 21);
    a.put(PKG, data.clone());
    b.put(PKG, data.clone());
    a.set(Behaviour::Trickle(280 << 10));
    b.set(Behaviour::Trickle(280 << 10));
    let p = Pkgstash::start(&config(&[a.url(), b.url()], "min_rate = \"1MiB/s\""));
    let (s, body) = get(&p.url(PKG_URL));
    assert_eq!(s, 200);
    assert_eq!(sha256_hex(&body.expect("body")), sha256_hex(&data));
    assert_eq!(p.wait_cached(CACHED), data);
    // One switch to the untried mirror, then no more: both were found slow.
    assert!(p.log().contains("too slow"), "{}", p.log());
    assert_eq!(
        a.count(PKG) + b.count(PKG),
        2,
        "{:?} {:?}",
        a.seen(),
        b.seen()
    );
    let status = p.status_json();
    for m in status["mirrors"].as_array().expect("mirrors") {
        assert_eq!(m["failures"], 0, "a slow mirror is not a failed one: {m}");
        assert_eq!(m["healthy"], true, "{m}");
    }
    let metrics = p.metrics();
    assert!(
        !metrics.contains("pkgstash_mirror_failures_total{"),
        "{metrics}"
    );
}
