//! Tiers: a site pkgstash whose mirror is a regional pkgstash, whose mirror is a real nginx
//! (the public mirror), with the real pacman at the site. A herd at the site is one request to
//! the region and one upstream; the region resumes with `Range` on its next mirror when its
//! first one drops, unseen by the site; `-Sy` revalidates end to end (nginx answers 304); and
//! with the top mirror down the dbs are served stale through both tiers.

use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use crate::fixture::{tools_available, ArchMirror, PkgSpec};
use crate::nginx::Nginx;
use crate::sandbox::{Client, Sandbox};
use crate::support::{arch_config, get_body, is_root, require_tool, wait_for, Pkgstash};
use crate::upstream::{Behaviour, FakeMirror};

const BIG: &str = "big-1.0-1-x86_64.pkg.tar.zst";
const BIG_URL: &str = "/arch/extra/os/x86_64/big-1.0-1-x86_64.pkg.tar.zst";

/// core: two small packages; extra: one of 4 MiB. Built once per test run.
fn mirror() -> &'static ArchMirror {
    static MIRROR: OnceLock<ArchMirror> = OnceLock::new();
    MIRROR.get_or_init(|| {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("tiers-mirror");
        let _ = std::fs::remove_dir_all(&root);
        let mut m = ArchMirror::at(&root);
        m.add(
            "core",
            &[
                PkgSpec::new("alpha", "1.0-1", 20_000),
                PkgSpec::new("bravo", "1.0-1", 30_000),
            ],
        );
        m.add("extra", &[PkgSpec::new("big", "1.0-1", 4 << 20)]);
        m
    })
}

fn tools() -> bool {
    let mut ok = tools_available() && crate::nginx::available();
    ok &= is_root() || require_tool("fakeroot");
    ok && Client::Host.available()
}

/// The region over `mirrors`, the site over the region; both revalidate dbs after 1 s.
fn tiers(mirrors: &[String]) -> (Pkgstash, Pkgstash) {
    let region = Pkgstash::start(&arch_config("3s", mirrors, "db_max_age = \"1s\"\n"));
    let site = Pkgstash::start(&arch_config(
        "5s",
        &[region.url("/arch")],
        "db_max_age = \"1s\"\n",
    ));
    (region, site)
}

/// Access-log lines of `p` for `GET path` with `status`.
fn logged(p: &Pkgstash, path: &str, status: u16) -> usize {
    let needle = format!("\"GET {path} HTTP/1.1\" {status} ");
    p.log().lines().filter(|l| l.contains(&needle)).count()
}

fn big_bytes() -> Vec<u8> {
    std::fs::read(mirror().pool_file(BIG)).expect("big")
}

#[test]
fn a_herd_at_the_site_is_one_request_per_tier() {
    if !tools() {
        return;
    }
    let nginx = Nginx::serve(&mirror().root, "4m");
    let (region, site) = tiers(&[nginx.url()]);
    let readers: Vec<_> = (0..8)
        .map(|_| crate::support::get_in_background(&site.url(BIG_URL)))
        .collect();
    let want = big_bytes();
    for r in readers {
        let got = r.join().expect("reader").expect("body");
        assert!(got == want, "every client gets the whole package");
    }
    wait_for("the region's log line", Duration::from_secs(5), || {
        logged(&region, BIG_URL, 200) == 1
    });
    assert_eq!(logged(&region, BIG_URL, 200), 1, "{}", region.log());
    let upstream: Vec<_> = nginx
        .requests_ending(BIG)
        .into_iter()
        .filter(|a| a.method == "GET")
        .collect();
    assert_eq!(upstream.len(), 1, "{upstream:?}");
}

#[test]
fn the_region_resumes_on_its_next_mirror_unseen_by_the_site() {
    if !tools() {
        return;
    }
    let want = big_bytes();
    let dropping = FakeMirror::start();
    dropping.put(&BIG_URL["/arch".len()..], want.clone());
    dropping.set(Behaviour::CloseAfter(1 << 20));
    let nginx = Nginx::serve(&mirror().root, "0");
    let (_region, site) = tiers(&[dropping.url(), nginx.url()]);
    let (status, body) = get_body(&site.url(BIG_URL));
    assert_eq!(status, 200);
    assert!(body == want, "the whole package, once");
    let resumed = nginx.requests_ending(BIG);
    assert_eq!(resumed.len(), 1, "{resumed:?}");
    assert!(
        resumed[0].range.starts_with("bytes=") && resumed[0].status == 206,
        "resumed with Range on the next mirror: {resumed:?}"
    );
    assert_eq!(
        dropping.count(&BIG_URL["/arch".len()..]),
        1,
        "the first mirror was asked once"
    );
}

#[test]
fn sync_revalidates_end_to_end_and_is_served_stale_with_the_top_mirror_down() {
    if !tools() {
        return;
    }
    let mut nginx = Nginx::serve(&mirror().root, "0");
    let (region, site) = tiers(&[nginx.url()]);
    let server = site.url("/arch/$repo/os/$arch");
    let sb = Sandbox::new(&[("core", &server), ("extra", &server)], "Never");
    sb.ok(&["-Sy"]);
    std::thread::sleep(Duration::from_millis(1500));
    // Both tiers' copies are older than db_max_age: the site asks the region, the region
    // asks nginx, each with its validators; nginx answers 304 and so does each tier.
    sb.ok(&["-Sy"]);
    let db = "/core/os/x86_64/core.db";
    // (a log line is written when its answer has gone out: waited for)
    wait_for("the site's 304 logged", Duration::from_secs(5), || {
        logged(&site, &format!("/arch{db}"), 304) >= 1
    });
    wait_for("the region's 304 logged", Duration::from_secs(5), || {
        logged(&region, &format!("/arch{db}"), 304) >= 1
    });
    assert_eq!(
        logged(&site, &format!("/arch{db}"), 304),
        1,
        "pacman's If-Modified-Since got a 304 at the site:\n{}",
        site.log()
    );
    let answers: Vec<u16> = nginx
        .requests_ending("/core.db")
        .iter()
        .map(|a| a.status)
        .collect();
    assert_eq!(answers[0], 200, "{answers:?}");
    assert!(
        answers.len() >= 2 && answers[1..].iter().all(|s| *s == 304),
        "revalidated, never fetched again: {:?}",
        nginx.log()
    );
    assert!(nginx
        .requests_ending("/core.db")
        .iter()
        .skip(1)
        .all(|a| !a.ims.is_empty()));
    assert!(
        logged(&region, &format!("/arch{db}"), 304) >= 1,
        "the region answered the site 304:\n{}",
        region.log()
    );
    // The top mirror goes down: both tiers serve their cached dbs (stale), pacman syncs.
    nginx.stop();
    std::thread::sleep(Duration::from_millis(1500));
    let stale = sb.ok(&["-Syy"]);
    assert!(
        stale.contains("core") && !stale.contains("error"),
        "{stale}"
    );
    let (status, body) = get_body(&site.url(&format!("/arch{db}")));
    assert_eq!(status, 200);
    assert!(body == std::fs::read(mirror().repo_dir("core").join("core.db")).expect("db"));
}
