//! Local storage faults: the cache on a full or read-only filesystem (a real tmpfs, mounted by
//! the test, so root's permission bypass does not hide the fault). The fault is the cache's:
//! mirrors stay healthy, nothing is fetched again upstream, clients get a generic 507/500
//! without paths, and status and metrics show the disk trouble.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{arch_config, client, in_ci, must, wait_for, Pkgstash};
use crate::upstream::{payload, Behaviour, FakeMirror};

const PKG: &str = "/core/os/x86_64/bar-1.0-1-x86_64.pkg.tar.zst";
const PKG_URL: &str = "/arch/core/os/x86_64/bar-1.0-1-x86_64.pkg.tar.zst";

/// A tmpfs mounted at a directory; unmounted (lazily) when dropped.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// Mount a tmpfs of `size` (e.g. "1m") at `dir`. `None` (skip) when mounting is not
    /// possible here; in CI that is a failure.
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).expect("mkdir");
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(dir)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs {
                dir: dir.to_path_buf(),
            }),
            other => {
                let why = format!("cannot mount a tmpfs at {}: {other:?}", dir.display());
                assert!(!in_ci(), "{why} (CI=true: needed to simulate a full cache)");
                eprintln!("SKIP: {why}");
                None
            }
        }
    }

    fn remount(&self, opts: &str) {
        must(
            Command::new("mount")
                .args(["-o", &format!("remount,{opts}")])
                .arg(&self.dir),
            &format!("remount {opts}"),
        );
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// pkgstash over mirror `m` with its cache on a tmpfs of `size` (`None`: no tmpfs here, the
/// test is skipped); the work dir and the tmpfs live as long as the tuple.
fn on_tmpfs(m: &FakeMirror, size: &str) -> Option<(tempfile::TempDir, Tmpfs, Pkgstash)> {
    let work = tempfile::tempdir().expect("tempdir");
    let cache = work.path().join("cache");
    let fs = Tmpfs::mount(&cache, size)?;
    let config = arch_config("2s", &[m.url()], "");
    let p = Pkgstash::start_in(work.path(), &cache, &config, &[], None);
    Some((work, fs, p))
}

/// The mirror is untouched by the cache's fault, and status shows the disk trouble.
fn assert_blamed_on_disk(p: &Pkgstash, kind: &str) {
    let v = p.status_json();
    let m = &v["mirrors"][0];
    assert_eq!(
        (
            m["failures"].as_u64(),
            m["healthy"].as_bool(),
            &m["last_error"]
        ),
        (Some(0), Some(true), &Value::Null),
        "the mirror is not blamed: {m}"
    );
    let e = &v["storage_error"];
    assert_eq!(e["kind"], kind, "{v}");
    let message = e["message"].as_str().expect("message");
    assert!(
        !message.contains('/'),
        "no path on the public page: {message}"
    );
    assert!(
        p.metrics()
            .contains(&format!("pkgstash_local_errors_total{{kind=\"{kind}\"}} 1")),
        "{}",
        p.metrics()
    );
    wait_for("no partial left", Duration::from_secs(5), || {
        std::fs::read_dir(p.cache_dir.join(".partial")).is_ok_and(|d| d.count() == 0)
    });
}

/// A generic body: no path, no OS error text.
fn assert_generic(body: &str, p: &Pkgstash) {
    let cache = p.cache_dir.display().to_string();
    for leak in [
        cache.as_str(),
        ".partial",
        "os error",
        "Read-only",
        "No space",
    ] {
        assert!(!body.contains(leak), "the body shows `{leak}`: {body}");
    }
}

#[test]
fn read_only_cache_gives_500_and_leaves_the_mirror_alone() {
    let m = FakeMirror::start();
    let data = payload(100_000, 61);
    m.put(PKG, data.clone());
    let Some((_work, fs, p)) = on_tmpfs(&m, "64m") else {
        return;
    };
    fs.remount("ro");
    let resp = client().get(p.url(PKG_URL)).send().expect("get");
    let status = resp.status().as_u16();
    let body = resp.text().expect("body");
    assert_eq!(status, 500, "{body}");
    assert_generic(&body, &p);
    assert_eq!(m.count(PKG), 1, "not fetched again upstream");
    assert_blamed_on_disk(&p, "read_only");
    assert!(
        p.log().contains("Read-only file system"),
        "details in the log"
    );
    // Disk repaired: the mirror is asked at once (it was never put in cooldown).
    fs.remount("rw");
    let started = Instant::now();
    let resp = client().get(p.url(PKG_URL)).send().expect("get");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.bytes().expect("body").to_vec(), data);
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn full_cache_gives_507_before_any_byte_is_fetched() {
    let m = FakeMirror::start();
    m.put(PKG, payload(3 << 20, 62));
    let Some((_work, _fs, p)) = on_tmpfs(&m, "1m") else {
        return;
    };
    let resp = client().get(p.url(PKG_URL)).send().expect("get");
    let status = resp.status().as_u16();
    let body = resp.text().expect("body");
    assert_eq!(status, 507, "{body}");
    assert_generic(&body, &p);
    assert_eq!(m.count(PKG), 1);
    assert_blamed_on_disk(&p, "no_space");
    // That plain GET was the sendfile fast path's; one it leaves to the mirror handler (a
    // conditional header) gets the same answer: a new download (a failed one is not joined),
    // failing alike.
    let resp = client()
        .get(p.url(PKG_URL))
        .header("if-none-match", "\"none\"")
        .send()
        .expect("get");
    let status = resp.status().as_u16();
    let text = resp.text().expect("body");
    assert_eq!((status, text.as_str()), (507, body.as_str()));
}

#[test]
fn disk_full_mid_body_of_unknown_length_is_not_retried_upstream() {
    let m = FakeMirror::start();
    m.put(PKG, payload(3 << 20, 63));
    m.set(Behaviour::Chunked);
    let Some((_work, _fs, p)) = on_tmpfs(&m, "1m") else {
        return;
    };
    let resp = client().get(p.url(PKG_URL)).send().expect("get");
    // The client's answer starts once the first bytes are on disk: usually the head goes out
    // and the body is then aborted, never ended cleanly. On a loaded machine the local mirror
    // can fill the 1 MiB disk before the client's task sends that head: then the answer is
    // the 507 a full disk gets before any byte. Never a clean short body either way.
    match resp.status().as_u16() {
        200 => assert!(resp.bytes().is_err(), "an aborted body"),
        507 => assert_generic(&resp.text().expect("body"), &p),
        other => panic!("{other}: neither an aborted 200 nor a 507"),
    }
    assert_eq!(m.count(PKG), 1, "the same bytes are not fetched again");
    assert_blamed_on_disk(&p, "no_space");
}

/// The health check (`GET /_pkgstash/health`) fails while the cache cannot be written, and
/// recovers with the disk.
#[test]
fn health_fails_while_the_cache_is_read_only() {
    let m = FakeMirror::start();
    let Some((_work, fs, p)) = on_tmpfs(&m, "8m") else {
        return;
    };
    let health = || {
        let resp = client()
            .get(p.url("/_pkgstash/health"))
            .send()
            .expect("health");
        (resp.status().as_u16(), resp.text().unwrap_or_default())
    };
    assert_eq!(health().0, 200);
    fs.remount("ro");
    // The probe's answer is kept 2 s.
    wait_for("health 503", Duration::from_secs(5), || health().0 == 503);
    let (_, body) = health();
    assert!(body.contains("cache_not_writable"), "{body}");
    assert!(body.contains("Read-only file system"), "{body}");
    fs.remount("rw");
    wait_for("health 200", Duration::from_secs(5), || health().0 == 200);
}
