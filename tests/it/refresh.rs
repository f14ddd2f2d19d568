//! Repo-db intelligence with real `repo-add` databases: verification before publish, scheduled
//! refresh + prefetch, cleanup policy, and `verify`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::fixture::{tools_available, Repo};
use crate::support::{arch_config, assert_refused_whole, client, wait_for, Pkgstash};
use crate::upstream::{Behaviour, FakeMirror};

const DIR: &str = "/core/os/x86_64";

fn name_of(p: &Path) -> String {
    p.file_name()
        .and_then(|n| n.to_str())
        .expect("name")
        .to_string()
}

/// URL path below pkgstash for a file of the repo dir (`:` percent-encoded like pacman does).
fn url_path(name: &str) -> String {
    format!("/arch{DIR}/{}", name.replace(':', "%3A"))
}

/// A real repo with one package, and two mirrors with its db: `good` has the package,
/// `bad` what the test puts there.
struct BadAndGood {
    repo: Repo,
    pkg_name: String,
    pkg_bytes: Vec<u8>,
    bad: FakeMirror,
    good: FakeMirror,
}

impl BadAndGood {
    fn new(name: &str, version: &str, size: usize) -> BadAndGood {
        let repo = Repo::new();
        let pkg = repo.add(name, version, size);
        let pkg_name = name_of(&pkg);
        let pkg_bytes = std::fs::read(&pkg).expect("pkg");
        let bad = FakeMirror::start();
        let good = FakeMirror::start();
        for m in [&bad, &good] {
            m.put(&format!("{DIR}/core.db"), repo.db());
        }
        good.put(&format!("{DIR}/{pkg_name}"), pkg_bytes.clone());
        BadAndGood {
            repo,
            pkg_name,
            pkg_bytes,
            bad,
            good,
        }
    }

    /// pkgstash over both mirrors, `bad` first.
    fn pkgstash(&self) -> Pkgstash {
        Pkgstash::start(&arch_config("2s", &[self.bad.url(), self.good.url()], ""))
    }
}

#[test]
fn package_with_wrong_bytes_is_never_published() {
    if !tools_available() {
        return;
    }
    let m = BadAndGood::new("foo", "1.0-1", 200_000);
    let (repo, pkg_name, pkg_bytes, bad) = (&m.repo, &m.pkg_name, &m.pkg_bytes, &m.bad);
    bad.put(&format!("{DIR}/{pkg_name}"), pkg_bytes.clone());
    let p = m.pkgstash();
    // The db is cached first, so pkgstash knows the package's size and sha256.
    let db = client()
        .get(p.url(&url_path("core.db")))
        .send()
        .expect("db");
    assert_eq!(db.bytes().expect("db body").as_ref(), repo.db().as_slice());

    // Same length, other bytes: only the hash can tell. The client is aborted, nothing cached.
    bad.set(Behaviour::WrongBytes);
    assert_refused_whole(&p.url(&url_path(pkg_name)), "wrong bytes, right length");
    let cached = p.cache_dir.join(format!("arch{DIR}/{pkg_name}"));
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        !cached.exists(),
        "a file that does not match the db must not be published"
    );
    assert!(
        p.log().contains("does not match the repo db") || p.log().contains("the repo db says"),
        "{}",
        p.log()
    );

    // pacman retries: the bad mirror is cooling down, the good one serves the right bytes.
    let body = client()
        .get(p.url(&url_path(pkg_name)))
        .send()
        .and_then(|r| r.bytes())
        .expect("retry");
    assert_eq!(body.as_ref(), pkg_bytes.as_slice());
    wait_for("publish", Duration::from_secs(5), || cached.exists());
    assert_eq!(&std::fs::read(&cached).expect("cached"), pkg_bytes);
}

#[test]
fn package_with_wrong_size_is_rejected_before_any_byte() {
    if !tools_available() {
        return;
    }
    let m = BadAndGood::new("bar", "2:1.5-3", 100_000);
    let (pkg_name, pkg_bytes) = (&m.pkg_name, &m.pkg_bytes);
    m.bad.put(&format!("{DIR}/{pkg_name}"), vec![7u8; 1234]);
    let p = m.pkgstash();
    client()
        .get(p.url(&url_path("core.db")))
        .send()
        .and_then(|r| r.bytes())
        .expect("db");
    // One request: the bad mirror's length disagrees with the db, so the good one serves.
    let body = client()
        .get(p.url(&url_path(pkg_name)))
        .send()
        .and_then(|r| r.bytes())
        .expect("package");
    assert_eq!(body.as_ref(), pkg_bytes.as_slice());
}

#[test]
fn refresh_prefetches_new_versions_of_cached_packages_and_cleans_old_ones() {
    if !tools_available() {
        return;
    }
    let repo = Repo::new();
    let foo1 = repo.add("foo", "1.0-1", 50_000);
    let bar1 = repo.add("bar", "1.0-1", 50_000);
    let t1 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let up = FakeMirror::start();
    let put_file = |p: &Path, t| {
        up.put_at(
            &format!("{DIR}/{}", name_of(p)),
            std::fs::read(p).expect("read"),
            t,
        )
    };
    up.put_at(&format!("{DIR}/core.db"), repo.db(), t1);
    put_file(&foo1, t1);
    put_file(&bar1, t1);
    up.put_at(
        &format!("{DIR}/{}.sig", name_of(&foo1)),
        b"sig-foo-1".to_vec(),
        t1,
    );
    let p = Pkgstash::start(&arch_config(
        "2s",
        &[up.url()],
        "[refresh]\ninterval = \"1s\"\n[cleanup]\nkeep_versions = 1\n",
    ));
    // A client installs foo (with its signature) but never bar.
    for f in [
        "core.db".to_string(),
        name_of(&foo1),
        format!("{}.sig", name_of(&foo1)),
    ] {
        let r = client().get(p.url(&url_path(&f))).send().expect("get");
        assert_eq!(r.status().as_u16(), 200, "{f}");
        r.bytes().expect("body");
    }
    // Upstream publishes foo 1.1.
    let foo2 = repo.add("foo", "1.1-1", 60_000);
    let t2 = t1 + Duration::from_secs(3600);
    put_file(&foo2, t2);
    up.put_at(
        &format!("{DIR}/{}.sig", name_of(&foo2)),
        b"sig-foo-2".to_vec(),
        t2,
    );
    up.put_at(&format!("{DIR}/core.db"), repo.db(), t2);

    let cached = |name: &str| p.cache_dir.join(format!("arch{DIR}/{name}"));
    wait_for("prefetch of foo 1.1", Duration::from_secs(20), || {
        cached(&name_of(&foo2)).exists() && cached(&format!("{}.sig", name_of(&foo2))).exists()
    });
    assert_eq!(
        std::fs::read(cached(&name_of(&foo2))).expect("read"),
        std::fs::read(&foo2).expect("read")
    );
    assert_eq!(
        up.count(&format!("{DIR}/{}", name_of(&bar1))),
        0,
        "bar was never cached: not prefetched"
    );
    // keep_versions = 1: the cleanup after the refresh drops foo 1.0 and its signature.
    wait_for("cleanup of foo 1.0", Duration::from_secs(10), || {
        !cached(&name_of(&foo1)).exists() && !cached(&format!("{}.sig", name_of(&foo1))).exists()
    });
    assert!(cached("core.db").exists(), "dbs are never removed");
    // The client's upgrade is now a pure hit.
    let mut r = client()
        .get(p.url(&url_path(&name_of(&foo2))))
        .send()
        .expect("get");
    let mut body = Vec::new();
    r.read_to_end(&mut body).expect("body");
    assert_eq!(body, std::fs::read(&foo2).expect("read"));
    assert_eq!(
        up.count(&format!("{DIR}/{}", name_of(&foo2))),
        1,
        "fetched once, by the prefetch"
    );
}

/// A cache directory built by hand: a real db and package files with chosen mtimes.
struct Cache {
    dir: tempfile::TempDir,
}

impl Cache {
    fn new(repo: &Repo) -> Cache {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().join(format!("arch{DIR}"));
        std::fs::create_dir_all(&d).expect("mkdir");
        std::fs::write(d.join("core.db"), repo.db()).expect("db");
        Cache { dir }
    }

    fn put(&self, name: &str, data: &[u8], age_days: u64) {
        let f = self.dir.path().join(format!("arch{DIR}/{name}"));
        std::fs::write(&f, data).expect("write");
        let t = SystemTime::now() - Duration::from_secs(age_days * 86400);
        std::fs::File::options()
            .write(true)
            .open(&f)
            .and_then(|h| h.set_modified(t))
            .expect("mtime");
    }

    fn cleaner(
        &self,
        keep: usize,
        max_age_days: Option<u64>,
        max_size: Option<u64>,
    ) -> pkgstash::jobs::cleanup::Cleaner {
        let root = self.dir.path();
        pkgstash::jobs::cleanup::Cleaner {
            store: Arc::new(pkgstash::cache::store::Store::open(root).expect("store")),
            index: Arc::new(pkgstash::cache::index::CacheIndex::scan(root)),
            catalog: Arc::new(pkgstash::cache::catalog::Catalog::default()),
            registry: Arc::new(pkgstash::cache::inflight::Registry::default()),
            policy: pkgstash::config::CleanupConfig {
                keep_versions: keep,
                max_age: max_age_days.map(|d| Duration::from_secs(d * 86400)),
                max_size,
            },
        }
    }
}

#[test]
fn cleanup_keeps_newest_versions_and_what_the_db_lists() {
    if !tools_available() {
        return;
    }
    let repo = Repo::new();
    // The db lists foo 1:3.0 (an epoch) only.
    let foo3 = repo.add("foo", "1:3.0-1", 1000);
    let cache = Cache::new(&repo);
    cache.put(&name_of(&foo3), &std::fs::read(&foo3).expect("read"), 0);
    cache.put("foo-2.0-1-x86_64.pkg.tar.zst", &[1; 2000], 10);
    cache.put("foo-10.0-1-x86_64.pkg.tar.zst", &[1; 3000], 10); // newer than 2.0, older than 1:3.0
    cache.put("foo-10.0-1-x86_64.pkg.tar.zst.sig", &[1; 10], 10);
    cache.put("foo-1.0-1-x86_64.pkg.tar.zst", &[1; 4000], 10);
    cache.put("foo-1.0-1-x86_64.pkg.tar.zst.sig", &[1; 10], 10);
    cache.put("old-1.0-1-any.pkg.tar.zst", &[1; 5000], 200); // in no db, unused for 200 days

    let report = cache.cleaner(2, Some(90), None).run(true);
    let removed: Vec<(&str, &str)> = report
        .removed
        .iter()
        .map(|r| (r.path.rsplit('/').next().unwrap_or(""), r.reason.as_str()))
        .collect();
    let names: Vec<&str> = removed.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        names,
        vec![
            "foo-1.0-1-x86_64.pkg.tar.zst",
            "foo-1.0-1-x86_64.pkg.tar.zst.sig",
            "foo-2.0-1-x86_64.pkg.tar.zst",
            "old-1.0-1-any.pkg.tar.zst",
        ],
        "{removed:?}"
    );
    assert!(removed[0].1.contains("newest"));
    assert!(removed[3].1.contains("unused"));
    assert_eq!(report.freed_bytes, 4000 + 10 + 2000 + 5000);
    // A dry run removes nothing.
    assert!(cache
        .dir
        .path()
        .join(format!("arch{DIR}/foo-1.0-1-x86_64.pkg.tar.zst"))
        .exists());

    // max_size: least recently served goes first, never the version the db lists.
    let report = cache.cleaner(10, None, Some(3500)).run(false);
    let left: Vec<String> = std::fs::read_dir(cache.dir.path().join(format!("arch{DIR}")))
        .expect("ls")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    assert!(left.contains(&name_of(&foo3)), "{left:?}");
    assert!(left.contains(&"core.db".to_string()), "{left:?}");
    assert!(
        !left.contains(&"old-1.0-1-any.pkg.tar.zst".to_string()),
        "{left:?}"
    );
    assert!(report.freed_bytes >= 5000, "{report:?}");
}

/// A repo listing `good` and `bad` (3000 bytes each), and a cache with its db and `good`:
/// the repo, the two packages' paths, the cache.
fn good_and_bad() -> (Repo, PathBuf, PathBuf, Cache) {
    let repo = Repo::new();
    let good = repo.add("good", "1.0-1", 3000);
    let bad = repo.add("bad", "1.0-1", 3000);
    let cache = Cache::new(&repo);
    cache.put(&name_of(&good), &std::fs::read(&good).expect("read"), 0);
    (repo, good, bad, cache)
}

#[test]
fn verify_finds_and_quarantines_corrupt_packages() {
    if !tools_available() {
        return;
    }
    let (_repo, good, bad, cache) = good_and_bad();
    let mut corrupt = std::fs::read(&bad).expect("read");
    let mid = corrupt.len() / 2;
    corrupt[mid] ^= 0xff;
    cache.put(&name_of(&bad), &corrupt, 0);
    cache.put("stray-1.0-1-any.pkg.tar.zst", b"unknown", 0);
    let rows = pkgstash::jobs::verify::verify_cache(cache.dir.path(), true);
    let verdict = |n: &str| {
        rows.iter()
            .find(|r| r.path.ends_with(n))
            .map(|r| r.verdict.clone())
            .unwrap_or_else(|| panic!("{n} not checked: {rows:?}"))
    };
    use pkgstash::jobs::verify::Verdict;
    assert_eq!(verdict(&name_of(&good)), Verdict::Ok);
    assert_eq!(verdict(&name_of(&bad)), Verdict::Mismatch);
    assert_eq!(verdict("stray-1.0-1-any.pkg.tar.zst"), Verdict::Unknown);
    assert!(!cache
        .dir
        .path()
        .join(format!("arch{DIR}/{}", name_of(&bad)))
        .exists());
    assert!(cache
        .dir
        .path()
        .join(format!(".quarantine/arch{DIR}/{}", name_of(&bad)))
        .exists());
}

#[test]
fn verify_command_reports_and_exits_1_on_mismatch() {
    if !tools_available() {
        return;
    }
    let (_repo, _good, bad, cache) = good_and_bad();
    let verify = || {
        let cfg = cache.dir.path().join("pkgstash.toml");
        std::fs::write(
            &cfg,
            format!(
                "cache_dir = \"{}\"\n[upstreams.arch]\nmirrors = [\"http://127.0.0.1:1\"]\n",
                cache.dir.path().display()
            ),
        )
        .expect("config");
        let out = std::process::Command::new(crate::support::bin())
            .arg("verify")
            .arg("-c")
            .arg(&cfg)
            .output()
            .expect("run verify");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, out, err) = verify();
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("1 ok, 0 mismatch"), "{out}");

    let mut corrupt = std::fs::read(&bad).expect("read");
    let last = corrupt.len() - 1;
    corrupt[last] ^= 1;
    cache.put(&name_of(&bad), &corrupt, 0);
    let (code, out, err) = verify();
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(
        out.contains("MISMATCH") && out.contains(&name_of(&bad)),
        "{out}"
    );
    assert!(err.contains("do not match"), "{err}");
    // Quarantined: the next run is clean again.
    let (code, _, _) = verify();
    assert_eq!(code, Some(0));
}
