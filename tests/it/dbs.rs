//! Repo dbs against programmable mirrors: a db and its `.sig` revalidated and replaced together,
//! revalidation with the mirror's own validators (dates that go backwards, ETags, a server that
//! answers 304 to any later date, a cached db pkgstash cannot read), packages re-published
//! under the same file name, and malformed or unreadable dbs.

use std::io::Write;
use std::time::{Duration, SystemTime};

use reqwest::header;

use crate::support::{
    arch_config, assert_refused_whole, client, get_body, sha256_hex, wait_for, Pkgstash,
};
use crate::upstream::{payload, Behaviour, FakeMirror};

const DIR: &str = "/core/os/x86_64";
const TOKEN: &str = "dbs-token-4711";

fn config(up: &FakeMirror, extra: &str) -> String {
    arch_config("2s", &[up.url()], extra)
}

fn get(p: &Pkgstash, name: &str) -> (u16, Vec<u8>) {
    get_body(&p.url(&format!("/arch{DIR}/{name}")))
}

/// The mirror's `name` is refused: its client is aborted (the last byte of a db waits for its
/// publication) or, when the refusal came first, answered 502.
fn not_served(p: &Pkgstash, name: &str) {
    let (status, body) = get(p, name);
    assert!(
        (status == 200 && body.is_empty()) || status == 502,
        "{status} {}",
        String::from_utf8_lossy(&body)
    );
}

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
}

/// A gzip'd repo db listing `pkgs` (name, file bytes); `extra` desc members go in verbatim.
pub fn db_of(pkgs: &[(&str, &[u8])], extra: &[(&str, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |path: &str, body: &str| {
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, path, body.as_bytes())
            .expect("append");
    };
    for (name, data) in pkgs {
        add(
            &format!("{name}-1.0-1/desc"),
            &format!(
                "%FILENAME%\n{name}-1.0-1-x86_64.pkg.tar.zst\n\n%NAME%\n{name}\n\n%VERSION%\n1.0-1\n\n%ARCH%\nx86_64\n\n%CSIZE%\n{}\n\n%SHA256SUM%\n{}\n",
                data.len(),
                sha256_hex(data)
            ),
        );
    }
    for (path, body) in extra {
        add(path, body);
    }
    let tar = b.into_inner().expect("tar");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).expect("gz");
    gz.finish().expect("gz")
}

fn pkg_name(name: &str) -> String {
    format!("{name}-1.0-1-x86_64.pkg.tar.zst")
}

/// Version `v` of the db `db` (a real, readable db: pkgstash never publishes another).
fn versioned(db: &str, v: &str) -> Vec<u8> {
    db_of(&[("pkg", format!("{db} {v}").as_bytes())], &[])
}

/// Which of `versions` of `db` the bytes `got` are.
fn version_of(db: &str, got: &[u8], versions: &[&str]) -> String {
    versions
        .iter()
        .find(|v| versioned(db, v) == got)
        .map(|v| format!("{db} {v}"))
        .unwrap_or_else(|| format!("{db}: {} unknown bytes", got.len()))
}

#[test]
fn db_and_signature_are_revalidated_and_replaced_together() {
    let up = FakeMirror::start();
    // Every form pacman and repo-add use: `.db`, `.files`, `.db.tar.gz`.
    let dbs = ["core.db", "core.files", "core.db.tar.gz"];
    let versions = ["v1", "v2", "v3"];
    let put = |v: &str, t| {
        for db in dbs {
            up.put_at(&format!("{DIR}/{db}"), versioned(db, v), t);
            up.put_at(
                &format!("{DIR}/{db}.sig"),
                format!("sig of {db} {v}").into_bytes(),
                t,
            );
        }
    };
    let fetch_pair = |p: &Pkgstash, db: &str| {
        let d = get(p, db);
        let s = get(p, &format!("{db}.sig"));
        assert_eq!((d.0, s.0), (200, 200), "{db}");
        (
            version_of(db, &d.1, &versions),
            String::from_utf8_lossy(&s.1).to_string(),
        )
    };
    let same_version = |(db, sig): &(String, String)| sig.strip_prefix("sig of ") == Some(db);
    put("v1", at(0));
    // The recipe, with db_max_age 2 s instead of 20 s.
    let p = Pkgstash::start(&config(&up, "db_max_age = \"2s\""));
    for db in dbs {
        assert_eq!(
            fetch_pair(&p, db),
            (format!("{db} v1"), format!("sig of {db} v1"))
        );
    }
    std::thread::sleep(Duration::from_millis(2200));
    for db in dbs {
        // A client that fetches only the db: its signature is revalidated with it.
        assert_eq!(get(&p, db).1, versioned(db, "v1"));
    }
    put("v2", at(100));
    for db in dbs {
        let pair = fetch_pair(&p, db);
        assert!(
            same_version(&pair),
            "{db}: a db with another version's signature: {pair:?}"
        );
    }
    std::thread::sleep(Duration::from_millis(2200));
    for db in dbs {
        assert_eq!(
            fetch_pair(&p, db),
            (format!("{db} v2"), format!("sig of {db} v2"))
        );
        // One revalidation asked the mirror for both files, and from then on both are fresh.
        let sig = format!("{DIR}/{db}.sig");
        let sig_requests: Vec<_> = up.seen().into_iter().filter(|s| s.path == sig).collect();
        assert_eq!(sig_requests.len(), 3, "{db}.sig: {sig_requests:?}");
    }

    // The mirror publishes a db without a signature: the old signature is not served with it,
    // and is gone from the cache.
    for db in dbs {
        up.put_at(&format!("{DIR}/{db}"), versioned(db, "v3"), at(200));
        up.remove(&format!("{DIR}/{db}.sig"));
    }
    std::thread::sleep(Duration::from_millis(2200));
    for db in dbs {
        assert_eq!(get(&p, db).1, versioned(db, "v3"));
        let cached_sig = p.cache_dir.join(format!("arch{DIR}/{db}.sig"));
        assert!(
            !cached_sig.exists(),
            "{db}.sig of v2 is still cached beside {db} v3"
        );
        assert_eq!(get(&p, &format!("{db}.sig")).0, 404, "{db}.sig");
    }
}

#[test]
fn a_signature_asked_first_brings_its_db() {
    let up = FakeMirror::start();
    for db in ["core.db", "core.files"] {
        up.put_at(&format!("{DIR}/{db}"), versioned(db, "v1"), at(0));
        up.put_at(
            &format!("{DIR}/{db}.sig"),
            format!("sig of {db} v1").into_bytes(),
            at(0),
        );
    }
    let p = Pkgstash::start(&config(&up, "db_max_age = \"1s\""));
    for db in ["core.db", "core.files"] {
        let sig = get(&p, &format!("{db}.sig"));
        assert_eq!(
            sig,
            (200, format!("sig of {db} v1").into_bytes()),
            "{db}.sig"
        );
        // Fetched and published with it: the db is a hit now.
        let cached = p.cache_dir.join(format!("arch{DIR}/{db}"));
        assert_eq!(
            std::fs::read(&cached).expect("cached db"),
            versioned(db, "v1")
        );
        assert_eq!(get(&p, db).1, versioned(db, "v1"));
        assert_eq!(up.count(&format!("{DIR}/{db}.sig")), 1, "{db}.sig");
    }
}

#[test]
fn a_signature_is_not_published_with_a_db_that_cannot_be() {
    let up = FakeMirror::start();
    let db = format!("{DIR}/core.db");
    up.put_at(&db, versioned("core.db", "v1"), at(0));
    up.put_at(&format!("{db}.sig"), b"sig of core.db v1".to_vec(), at(0));
    let p = Pkgstash::start(&config(&up, "db_max_age = \"1s\""));
    assert_eq!(get(&p, "core.db").1, versioned("core.db", "v1"));
    assert_eq!(get(&p, "core.db.sig").1, b"sig of core.db v1");
    // The mirror's new db is unreadable (a captive page with a 200), its new `.sig` is fine.
    up.put_at(&db, b"<html>oops</html>".to_vec(), at(100));
    up.put_at(&format!("{db}.sig"), b"sig of core.db v2".to_vec(), at(100));
    std::thread::sleep(Duration::from_millis(1100));
    // Neither is published: the client of the db is aborted or answered from the cache, the
    // next one gets the cached pair as it was.
    let (_, body) = get(&p, "core.db");
    assert!(
        body.is_empty() || body == versioned("core.db", "v1"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(get(&p, "core.db.sig").1, b"sig of core.db v1");
    let cached = |name: &str| std::fs::read(p.cache_dir.join(format!("arch{DIR}/{name}")));
    assert_eq!(cached("core.db").expect("db"), versioned("core.db", "v1"));
    assert_eq!(
        cached("core.db.sig").expect("sig"),
        b"sig of core.db v1".to_vec()
    );
    assert!(p.log().contains("unreadable repo db"), "{}", p.log());
}

#[test]
fn revalidation_uses_the_mirrors_validators_not_our_dates() {
    let up = FakeMirror::start();
    let broken = db_of(&[("foo", b"foo build 1")], &[]);
    let repaired = db_of(&[("foo", b"foo build 2")], &[]);
    // The mirror published a bad db (readable, but wrong) at t=100 ...
    up.put_at(&format!("{DIR}/core.db"), broken.clone(), at(100));
    let p = Pkgstash::start(&config(&up, "db_max_age = \"1s\""));
    assert_eq!(get(&p, "core.db").1, broken);
    // ... and restores the good one, with its older date (this mirror, like Apache, answers 304
    // to any If-Modified-Since not earlier than its file).
    up.put_at(&format!("{DIR}/core.db"), repaired.clone(), at(50));
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(
        get(&p, "core.db").1,
        repaired,
        "the repaired db reaches clients"
    );
    // Every conditional request carried one of the mirror's own Last-Modified values; the
    // revalidation of the broken copy got the 304 and did not take it.
    let asked: Vec<_> = up
        .seen()
        .into_iter()
        .filter(|s| s.path == format!("{DIR}/core.db"))
        .collect();
    let mirror_dates = [
        httpdate::fmt_http_date(at(100)),
        httpdate::fmt_http_date(at(50)),
    ];
    assert!(
        asked
            .iter()
            .filter_map(|s| s.if_modified_since.as_ref())
            .all(|d| mirror_dates.contains(d)),
        "{asked:?}"
    );
    assert!(
        asked
            .iter()
            .any(|s| s.status == 304
                && s.if_modified_since.as_deref() == Some(mirror_dates[0].as_str())),
        "{asked:?}"
    );
    // A client holding the newer, broken copy asks with its date: it gets the repaired db,
    // dated after the broken one (pacman's libcurl ignores a 200 dated before its copy).
    let r = client()
        .get(p.url(&format!("/arch{DIR}/core.db")))
        .header(header::IF_MODIFIED_SINCE, httpdate::fmt_http_date(at(100)))
        .send()
        .expect("request");
    assert_eq!(r.status().as_u16(), 200);
    let served = r.headers()[header::LAST_MODIFIED]
        .to_str()
        .expect("ascii")
        .to_string();
    let served_at = httpdate::parse_http_date(&served).expect("date");
    assert!(served_at > at(100), "Last-Modified {served}");
    assert_eq!(r.bytes().expect("body").to_vec(), repaired);
    // Its own date gets a 304; any other date the file (If-Modified-Since compares exactly).
    for (date, status) in [(served_at, 304), (at(50), 200), (at(1000), 200)] {
        let r = client()
            .get(p.url(&format!("/arch{DIR}/core.db")))
            .header(header::IF_MODIFIED_SINCE, httpdate::fmt_http_date(date))
            .send()
            .expect("request");
        assert_eq!(
            r.status().as_u16(),
            status,
            "{}",
            httpdate::fmt_http_date(date)
        );
    }
}

#[test]
fn an_etag_change_is_seen_even_within_the_same_second() {
    let up = FakeMirror::start();
    up.set_etags(true);
    let v1 = db_of(&[("foo", b"one")], &[]);
    let v2 = db_of(&[("foo", b"two")], &[]);
    up.put_at(&format!("{DIR}/core.db"), v1.clone(), at(0));
    let p = Pkgstash::start(&config(&up, "db_max_age = \"1s\""));
    assert_eq!(get(&p, "core.db").1, v1);
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(get(&p, "core.db").1, v1);
    up.put_at(&format!("{DIR}/core.db"), v2.clone(), at(0));
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(get(&p, "core.db").1, v2);
    let asked: Vec<_> = up
        .seen()
        .into_iter()
        .filter(|s| s.path == format!("{DIR}/core.db"))
        .collect();
    // (After each 200, one conditional request checks the db did not change meanwhile.)
    let statuses: Vec<u16> = asked.iter().map(|s| s.status).collect();
    assert_eq!(statuses, vec![200, 304, 304, 200, 304], "{asked:?}");
    assert!(
        asked[1..].iter().all(|s| s
            .if_none_match
            .as_deref()
            .is_some_and(|t| t.starts_with('"'))),
        "If-None-Match with the mirror's ETag: {asked:?}"
    );
}

#[test]
fn a_mirror_that_ignores_conditional_requests_still_serves_dbs() {
    let up = FakeMirror::start();
    up.set(Behaviour::IgnoreConditionals);
    let (v1, v2) = (versioned("core.db", "v1"), versioned("core.db", "v2"));
    up.put_at(&format!("{DIR}/core.db"), v1.clone(), at(0));
    up.put_at(&format!("{DIR}/core.db.sig"), b"sig v1".to_vec(), at(0));
    let p = Pkgstash::start(&config(&up, "db_max_age = \"1s\""));
    assert_eq!(get(&p, "core.db").1, v1);
    assert_eq!(get(&p, "core.db.sig").1, b"sig v1");
    up.put_at(&format!("{DIR}/core.db"), v2.clone(), at(9));
    up.put_at(&format!("{DIR}/core.db.sig"), b"sig v2".to_vec(), at(9));
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(get(&p, "core.db").1, v2);
    assert_eq!(get(&p, "core.db.sig").1, b"sig v2");
    assert!(p.cache_dir.join(format!("arch{DIR}/core.db")).is_file());
}

#[test]
fn an_unreadable_db_is_never_cached_and_its_fix_reaches_clients() {
    let up = FakeMirror::start();
    // A broken db and its fix carry the same date: a conditional request would get a 304.
    up.put_at(
        &format!("{DIR}/core.db"),
        b"<html>oops</html>".to_vec(),
        at(0),
    );
    let p = Pkgstash::start(&config(&up, "db_max_age = \"1s\""));
    not_served(&p, "core.db");
    assert!(!p.cache_dir.join(format!("arch{DIR}/core.db")).exists());
    let good = db_of(&[("foo", b"foo")], &[]);
    up.put_at(&format!("{DIR}/core.db"), good.clone(), at(0));
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(get(&p, "core.db").1, good);
    let fetched: Vec<_> = up
        .seen()
        .into_iter()
        .filter(|s| s.path == format!("{DIR}/core.db") && s.status == 200)
        .collect();
    assert_eq!(fetched.len(), 2, "{fetched:?}");
    assert_eq!(fetched[1].if_modified_since, None, "{fetched:?}");
}

#[test]
fn a_malformed_db_entry_fails_closed_for_its_package_only() {
    let up = FakeMirror::start();
    let good = payload(30_000, 1);
    let bad = payload(20_000, 2);
    let overflow = format!(
        "%FILENAME%\n{}\n\n%NAME%\nbad\n\n%VERSION%\n1.0-1\n\n%CSIZE%\n99999999999999999999999\n\n%SHA256SUM%\n{}\n",
        pkg_name("bad"),
        sha256_hex(&bad)
    );
    let db = db_of(&[("good", &good)], &[("bad-1.0-1/desc", overflow.as_str())]);
    up.put(&format!("{DIR}/core.db"), db);
    up.put(&format!("{DIR}/{}", pkg_name("good")), good.clone());
    up.put(&format!("{DIR}/{}", pkg_name("bad")), bad);
    let p = Pkgstash::start(&config(&up, ""));
    assert_eq!(get(&p, "core.db").0, 200);
    // The package with the malformed entry: refused, not served unverified.
    let (status, body) = get(&p, &pkg_name("bad"));
    assert_eq!(status, 502, "{}", String::from_utf8_lossy(&body));
    assert!(
        String::from_utf8_lossy(&body).contains("malformed"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert!(!p
        .cache_dir
        .join(format!("arch{DIR}/{}", pkg_name("bad")))
        .exists());
    // The rest of the db still verifies: wrong bytes for `good` are refused ...
    up.set(Behaviour::WrongBytes);
    assert_refused_whole(
        &p.url(&format!("/arch{DIR}/{}", pkg_name("good"))),
        "a body that does not match the db",
    );
    // ... and the right ones served and cached.
    up.set(Behaviour::Normal);
    std::thread::sleep(Duration::from_millis(100));
    let (status, body) = get(&p, &pkg_name("good"));
    assert_eq!((status, sha256_hex(&body)), (200, sha256_hex(&good)));
}

/// After a restart the cached dbs are read in the background (issue 21: no package miss
/// waits for a parse before asking upstream), and packages are verified against them from
/// the first request on: wrong bytes and a malformed entry refused, the right bytes served.
#[test]
fn after_a_restart_packages_are_verified_against_the_dbs_read_at_start_up() {
    let up = FakeMirror::start();
    let good = payload(30_000, 1);
    let malformed = format!(
        "%FILENAME%\n{}\n\n%NAME%\nbad\n\n%VERSION%\n1.0-1\n\n%CSIZE%\n12x\n",
        pkg_name("bad")
    );
    let db = db_of(
        &[("good", &good)],
        &[("bad-1.0-1/desc", malformed.as_str())],
    );
    up.put(&format!("{DIR}/core.db"), db);
    up.put(&format!("{DIR}/{}", pkg_name("good")), good.clone());
    up.put(&format!("{DIR}/{}", pkg_name("bad")), payload(20_000, 2));
    let p = Pkgstash::start(&config(&up, ""));
    assert_eq!(get(&p, "core.db").0, 200);
    let cache = p.cache_dir.clone();
    let work = cache.parent().expect("work dir").to_path_buf();
    let p = Pkgstash::start_in(&work, &cache, &config(&up, ""), &[], p.kill9());

    up.set(Behaviour::WrongBytes);
    let url = |name: &str| p.url(&format!("/arch{DIR}/{}", pkg_name(name)));
    assert_refused_whole(&url("good"), "wrong bytes right after a restart");
    up.set(Behaviour::Normal);
    assert_refused_whole(
        &url("bad"),
        "a package with a malformed entry after a restart",
    );
    wait_for(
        "the cached db read at start-up",
        Duration::from_secs(10),
        || p.log().contains("catalog: 1 of 1 cached repo db(s) read"),
    );
    std::thread::sleep(Duration::from_millis(100));
    let (status, body) = get(&p, &pkg_name("good"));
    assert_eq!((status, sha256_hex(&body)), (200, sha256_hex(&good)));
    p.wait_cached(&format!("arch{DIR}/{}", pkg_name("good")));
    assert!(!cache
        .join(format!("arch{DIR}/{}", pkg_name("bad")))
        .exists());
}

#[test]
fn an_unreadable_db_is_parsed_once_per_version() {
    let up = FakeMirror::start();
    up.put(
        &format!("{DIR}/core.db"),
        b"\x1f\x8bnot really gzip".to_vec(),
    );
    for i in 0..5 {
        up.put(
            &format!("{DIR}/p{i}-1.0-1-x86_64.pkg.tar.zst"),
            payload(1000, i),
        );
    }
    let p = Pkgstash::start(&config(&up, ""));
    // A mirror's unreadable db is refused ...
    not_served(&p, "core.db");
    // ... but one can be in the cache all the same (left by an older pkgstash, damaged on
    // disk): it is read once, not on every package miss.
    let cached = p.cache_dir.join(format!("arch{DIR}/core.db"));
    std::fs::create_dir_all(cached.parent().expect("dir")).expect("mkdir");
    std::fs::write(&cached, b"\x1f\x8bnot really gzip").expect("write");
    for i in 0..5 {
        assert_eq!(get(&p, &format!("p{i}-1.0-1-x86_64.pkg.tar.zst")).0, 200);
    }
    let complaints = p
        .log()
        .lines()
        .filter(|l| {
            l.contains("core.db")
                && (l.contains("cannot parse") || l.contains("cannot read repo db"))
        })
        .count();
    assert_eq!(complaints, 1, "{}", p.log());
}

#[test]
fn a_package_republished_under_the_same_name_is_fetched_again_and_reported() {
    let up = FakeMirror::start();
    let build1 = payload(40_000, 10);
    let build2 = payload(41_000, 11);
    let other = payload(5_000, 12);
    up.put_at(
        &format!("{DIR}/core.db"),
        db_of(&[("foo", &build1), ("bar", &other)], &[]),
        at(0),
    );
    up.put(&format!("{DIR}/{}", pkg_name("foo")), build1.clone());
    up.put(&format!("{DIR}/{}", pkg_name("bar")), other.clone());
    let p = Pkgstash::start_env(
        &config(&up, "db_max_age = \"1s\"\n[refresh]\nprefetch = false\n"),
        &[("PKGSTASH_TOKEN", TOKEN)],
    );
    assert_eq!(get(&p, "core.db").0, 200);
    assert_eq!(get(&p, &pkg_name("foo")).1, build1);
    assert_eq!(get(&p, &pkg_name("bar")).1, other);
    let cached = p.cache_dir.join(format!("arch{DIR}/{}", pkg_name("foo")));
    wait_for("foo cached", Duration::from_secs(5), || cached.is_file());

    // Upstream rebuilds foo with the same version: same file name, new size and sha256.
    up.put(&format!("{DIR}/{}", pkg_name("foo")), build2.clone());
    up.put_at(
        &format!("{DIR}/core.db"),
        db_of(&[("foo", &build2), ("bar", &other)], &[]),
        at(60),
    );
    std::thread::sleep(Duration::from_millis(1100));
    let r = client()
        .post(p.url("/_pkgstash/api/refresh"))
        .header("Authorization", format!("Bearer {TOKEN}"))
        .send()
        .expect("refresh");
    assert_eq!(r.status().as_u16(), 200);
    let report: serde_json::Value = r.json().expect("json");
    assert!(!cached.exists(), "the old build is no longer a hit");
    assert_eq!(
        get(&p, &pkg_name("foo")).1,
        build2,
        "the new build is fetched"
    );
    assert_eq!(
        report["republished"],
        serde_json::json!([format!("arch{DIR}/{}", pkg_name("foo"))]),
        "{report}"
    );
    assert_eq!(
        up.count(&format!("{DIR}/{}", pkg_name("bar"))),
        1,
        "bar did not change"
    );
}

#[test]
fn refresh_prefetches_the_new_build_of_a_republished_package() {
    let up = FakeMirror::start();
    let build1 = payload(30_000, 20);
    let build2 = payload(31_000, 21);
    up.put_at(
        &format!("{DIR}/core.db"),
        db_of(&[("foo", &build1)], &[]),
        at(0),
    );
    up.put(&format!("{DIR}/{}", pkg_name("foo")), build1.clone());
    let p = Pkgstash::start_env(
        &config(&up, "db_max_age = \"1s\""),
        &[("PKGSTASH_TOKEN", TOKEN)],
    );
    assert_eq!(get(&p, "core.db").0, 200);
    assert_eq!(get(&p, &pkg_name("foo")).1, build1);
    let cached = p.cache_dir.join(format!("arch{DIR}/{}", pkg_name("foo")));
    wait_for("foo cached", Duration::from_secs(5), || cached.is_file());
    up.put(&format!("{DIR}/{}", pkg_name("foo")), build2.clone());
    up.put_at(
        &format!("{DIR}/core.db"),
        db_of(&[("foo", &build2)], &[]),
        at(60),
    );
    std::thread::sleep(Duration::from_millis(1100));
    let report: serde_json::Value = client()
        .post(p.url("/_pkgstash/api/refresh"))
        .header("Authorization", format!("Bearer {TOKEN}"))
        .send()
        .and_then(|r| r.json())
        .expect("refresh");
    let key = format!("arch{DIR}/{}", pkg_name("foo"));
    assert_eq!(report["republished"], serde_json::json!([key]), "{report}");
    assert_eq!(report["prefetched"], serde_json::json!([key]), "{report}");
    assert_eq!(std::fs::read(&cached).expect("cached"), build2);
}

#[test]
fn a_download_overtaken_by_a_republish_is_not_published() {
    let up = FakeMirror::start();
    let build1 = payload(60_000, 30);
    let build2 = payload(61_000, 31);
    up.put_at(
        &format!("{DIR}/core.db"),
        db_of(&[("foo", &build1)], &[]),
        at(0),
    );
    up.put(&format!("{DIR}/{}", pkg_name("foo")), build1.clone());
    let p = Pkgstash::start(&config(&up, "db_max_age = \"1s\""));
    assert_eq!(get(&p, "core.db").0, 200);
    std::thread::sleep(Duration::from_millis(1100));
    // A slow download of build 1 ...
    up.set(Behaviour::Trickle(40_000));
    let url = p.url(&format!("/arch{DIR}/{}", pkg_name("foo")));
    let slow = std::thread::spawn(move || {
        client()
            .get(url)
            .send()
            .and_then(|r| r.bytes())
            .map(|b| b.to_vec())
    });
    std::thread::sleep(Duration::from_millis(300));
    // ... while upstream re-publishes foo, and a client's -Sy brings the new db in.
    up.put(&format!("{DIR}/{}", pkg_name("foo")), build2.clone());
    up.put_at(
        &format!("{DIR}/core.db"),
        db_of(&[("foo", &build2)], &[]),
        at(60),
    );
    assert_eq!(get(&p, "core.db").0, 200);
    let first = slow.join().expect("client thread");
    assert!(
        first.as_ref().map_or(true, |b| *b != build1),
        "the old build must not be delivered as complete"
    );
    let cached = p.cache_dir.join(format!("arch{DIR}/{}", pkg_name("foo")));
    assert!(
        std::fs::read(&cached).map_or(true, |c| c != build1),
        "the old build was published"
    );
    up.set(Behaviour::Normal);
    assert_eq!(get(&p, &pkg_name("foo")).1, build2);
}
