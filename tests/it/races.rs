//! Files removed from the cache under live traffic: evictions through the admin API racing
//! keep-alive clients on the sendfile fast path and on the actix handler (ranges, HEAD).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::support::{arch_config, sha256_hex, Pkgstash};
use crate::upstream::{payload, FakeMirror};

const TOKEN: &str = "race-token-99";
const PKG: &str = "/core/os/x86_64/hot-1.0-1-x86_64.pkg.tar.zst";

/// (what, status) → count.
type Tally = Arc<Mutex<BTreeMap<(String, u16), usize>>>;

#[test]
fn evictions_racing_keep_alive_clients_never_answer_404_or_500() {
    let up = FakeMirror::start();
    let data = payload(64 * 1024, 5);
    up.put(PKG, data.clone());
    let p = Pkgstash::start_env(
        &arch_config("5s", &[up.url()], ""),
        &[("PKGSTASH_TOKEN", TOKEN)],
    );
    let url = p.url(&format!("/arch{PKG}"));
    let evict_url = p.url(&format!("/_pkgstash/api/cache/arch{PKG}"));
    let stop = Arc::new(AtomicBool::new(false));
    let tally: Tally = Arc::default();
    let want = sha256_hex(&data);
    let mut threads = Vec::new();
    // Keep-alive clients: plain GETs (the fast path), ranges and HEADs (the actix handler).
    for i in 0..16 {
        let (url, stop, tally, want) = (url.clone(), stop.clone(), tally.clone(), want.clone());
        threads.push(std::thread::spawn(move || {
            let c = reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client");
            while !stop.load(Ordering::Relaxed) {
                let (what, r) = match i % 4 {
                    0 => ("range", c.get(&url).header("Range", "bytes=100-199").send()),
                    1 => ("head", c.head(&url).send()),
                    _ => ("get", c.get(&url).send()),
                };
                let r = r.expect("request");
                let status = r.status().as_u16();
                let body = r.bytes().expect("body");
                match (what, status) {
                    ("get", 200) => assert_eq!(sha256_hex(&body), want, "GET body"),
                    ("range", 206) => assert_eq!(body.len(), 100),
                    ("head", 200) => {}
                    _ => {}
                }
                *tally.lock().entry((what.to_string(), status)).or_default() += 1;
            }
        }));
    }
    for _ in 0..4 {
        let (url, stop, tally) = (evict_url.clone(), stop.clone(), tally.clone());
        threads.push(std::thread::spawn(move || {
            let c = reqwest::blocking::Client::new();
            while !stop.load(Ordering::Relaxed) {
                let r = c
                    .delete(&url)
                    .header("Authorization", format!("Bearer {TOKEN}"))
                    .send()
                    .expect("evict");
                let status = r.status().as_u16();
                *tally
                    .lock()
                    .entry(("evict".to_string(), status))
                    .or_default() += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
        }));
    }
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(8) {
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("client thread");
    }
    let tally = tally.lock().clone();
    let count = |what: &str, status: u16| {
        tally
            .get(&(what.to_string(), status))
            .copied()
            .unwrap_or_default()
    };
    let wrong: Vec<_> = tally
        .iter()
        .filter(|((what, status), _)| match what.as_str() {
            "get" | "head" => *status != 200,
            "range" => *status != 206,
            // Evicted, already gone, or being downloaded right now.
            _ => ![200, 404, 409].contains(status),
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "unexpected answers {wrong:?} of {tally:?}"
    );
    assert!(
        count("evict", 200) >= 20 && count("get", 200) >= 100,
        "the race did not happen often enough to mean anything: {tally:?}"
    );
    eprintln!("{tally:?}");
}
