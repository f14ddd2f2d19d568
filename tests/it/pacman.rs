//! End-to-end with the real client: the real `pacman` (Debian's `pacman-package-manager`) in
//! a sandbox, talking to pkgstash, in front of a real nginx serving a synthetic Arch mirror
//! built with the real `repo-add`. pacman's default download timeout stays on.
//!
//! Two clients: the host's pacman 6.0, and Debian 13's pacman 7.0 in a trixie chroot
//! (`*_pacman7` tests; download sandboxing with `DownloadUser = alpm`). The core scenarios
//! (sync, download, install, 304 on `-Sy`, resume) run with both; `CacheServer` (pacman >=
//! 6.1) is in `pacman7`.
//!
//! Run only this suite: `cargo test --test it pacman_e2e`.
//! `PKGSTASH_E2E_BIG_MIB` sets the size of the large package (default 64).

use std::path::Path;
use std::process::{Child, Command};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::fixture::{tools_available, ArchMirror, PkgSpec};
use crate::nginx::Nginx;
use crate::sandbox::{Client, Sandbox};
use crate::support::{arch_config, is_root, require_tool, wait_for, Pkgstash};

const MIB: usize = 1 << 20;

/// The packages of the shared mirror: awkward names on purpose.
fn core_packages() -> Vec<PkgSpec> {
    vec![
        // An epoch: the file name holds a ':'.
        PkgSpec::new("libfoo", "1:2.0-1", 40_000),
        // A '+' in the name.
        PkgSpec::new("foo+bar", "1.0-1", 30_000),
        PkgSpec {
            arch: "any",
            ..PkgSpec::new("docs", "3.1-2", 20_000)
        },
        PkgSpec {
            deps: &["libfoo>=1:2.0", "foo+bar"],
            ..PkgSpec::new("app", "1.0-1", 10_000)
        },
        PkgSpec::new("medium", "1.0-1", MIB),
    ]
}

pub fn big_package() -> PkgSpec {
    let mib = std::env::var("PKGSTASH_E2E_BIG_MIB")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(64);
    PkgSpec::new("big", "1.0-1", mib * MIB)
}

/// Every package name of the shared mirror.
pub fn all_names() -> Vec<&'static str> {
    let mut v: Vec<&str> = core_packages().iter().map(|p| p.name).collect();
    v.push("big");
    v
}

/// Are `client`, nginx and the repo tools here? (In CI a missing one panics.)
pub fn e2e_tools(client: Client) -> bool {
    let mut ok = tools_available();
    ok &= crate::nginx::available();
    ok &= is_root() || require_tool("fakeroot");
    ok && client.available()
}

/// The same scenario as two tests: `$host` with the host's pacman 6.0, `$v7` with pacman 7.0
/// in the trixie chroot.
macro_rules! with_both_clients {
    ($scenario:ident: $host:ident, $v7:ident) => {
        #[test]
        fn $host() {
            $scenario(Client::Host);
        }
        #[test]
        fn $v7() {
            $scenario(Client::Trixie);
        }
    };
}

/// The shared mirror (core + extra with the large package), built once per test run under
/// cargo's target tmp dir.
pub fn shared_mirror() -> &'static ArchMirror {
    static MIRROR: OnceLock<ArchMirror> = OnceLock::new();
    MIRROR.get_or_init(|| {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e-mirror");
        let _ = std::fs::remove_dir_all(&root);
        let mut m = ArchMirror::at(&root);
        m.add("core", &core_packages());
        m.add("extra", &[big_package()]);
        m
    })
}

/// The shared mirror served by nginx at `rate` (its `limit_rate`; `"0"`: unlimited), and
/// pkgstash in front of it.
pub fn mirror_behind_pkgstash(rate: &str) -> (&'static ArchMirror, Nginx, Pkgstash) {
    let mirror = shared_mirror();
    let nginx = Nginx::serve(&mirror.root, rate);
    let p = pkgstash(&[nginx.url()], "");
    (mirror, nginx, p)
}

/// pkgstash with one upstream `arch` over `mirrors`.
pub fn pkgstash(mirrors: &[String], extra: &str) -> Pkgstash {
    Pkgstash::start(&arch_config("5s", mirrors, extra))
}

/// A host-pacman sandbox syncing `core` and `extra` through pkgstash's `arch` upstream.
fn arch_sandbox(p: &Pkgstash) -> Sandbox {
    client_sandbox(Client::Host, p)
}

/// A `client` sandbox syncing `core` and `extra` through pkgstash's `arch` upstream.
fn client_sandbox(client: Client, p: &Pkgstash) -> Sandbox {
    let server = p.url("/arch/$repo/os/$arch");
    Sandbox::with_client(client, &[("core", &server), ("extra", &server)], "Never")
}

/// Assert every package of `mirror` sits in the sandbox cache, byte-identical to the pool.
pub fn assert_identical(mirror: &ArchMirror, sb: &Sandbox, names: &[String]) {
    for name in names {
        let got = std::fs::read(sb.cache_file(name))
            .unwrap_or_else(|e| panic!("{name} not in pacman's cache: {e}"));
        let want = std::fs::read(mirror.pool_file(name)).expect("pool file");
        assert!(got == want, "{name}: pacman got different bytes");
    }
}

pub fn package_files(mirror: &ArchMirror) -> Vec<String> {
    mirror.packages.iter().map(|(_, n)| n.clone()).collect()
}

/// Successful (200/206) GETs nginx served for a file name.
pub fn fetches(nginx: &Nginx, name: &str) -> usize {
    nginx
        .requests_ending(&format!("/{name}"))
        .iter()
        .filter(|a| a.method == "GET" && (a.status == 200 || a.status == 206))
        .count()
}

/// SIGKILL a spawned pacman with everything in its process group, and reap it.
fn kill_group(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .status();
    let _ = child.wait();
}

with_both_clients!(sync_and_download_every_package_byte_identical:
    pacman_e2e_sync_and_download_every_package_byte_identical,
    pacman_e2e_sync_and_download_every_package_byte_identical_pacman7);

fn sync_and_download_every_package_byte_identical(client: Client) {
    if !e2e_tools(client) {
        return;
    }
    let (mirror, _nginx, p) = mirror_behind_pkgstash("0");
    let sb = client_sandbox(client, &p);
    sb.ok(&["-Syy"]);
    let mut args = vec!["-Sw"];
    args.extend(all_names());
    sb.ok(&args);
    let names = package_files(mirror);
    assert_eq!(names.len(), 6);
    assert_identical(mirror, &sb, &names);
    // pacman's synced dbs are the mirror's.
    for repo in ["core", "extra"] {
        let got = std::fs::read(sb.root().join(format!("db/sync/{repo}.db"))).expect("db");
        let want = std::fs::read(mirror.repo_dir(repo).join(format!("{repo}.db"))).expect("db");
        assert!(got == want, "{repo}.db differs");
    }
    // And pkgstash kept them.
    // (each is published right after its last byte reached pacman: waited for, briefly)
    for (repo, name) in &mirror.packages {
        p.wait_cached(&format!("arch/{repo}/os/x86_64/{name}"));
    }
}

#[test]
fn pacman_e2e_warm_cache_makes_no_upstream_package_request() {
    if !e2e_tools(Client::Host) {
        return;
    }
    let (mirror, nginx, p) = mirror_behind_pkgstash("0");
    let mut args = vec!["-Syyw"];
    args.extend(all_names());
    arch_sandbox(&p).ok(&args);
    let before = nginx.log().len();
    let names = package_files(mirror);
    for n in &names {
        assert_eq!(fetches(&nginx, n), 1, "{n} fetched once when cold");
    }
    // A second machine on the LAN: everything comes from the cache.
    let warm = arch_sandbox(&p);
    warm.ok(&args);
    assert_identical(mirror, &warm, &names);
    let after = nginx.log();
    let pkg_requests: Vec<_> = after[before..]
        .iter()
        .filter(|a| a.uri.contains(".pkg.tar"))
        .collect();
    assert!(
        pkg_requests.is_empty(),
        "warm run asked upstream for packages: {pkg_requests:?}"
    );
    assert!(p.log().contains(" hit"), "access log shows hits");
}

with_both_clients!(install_with_dependencies:
    pacman_e2e_install_with_dependencies,
    pacman_e2e_install_with_dependencies_pacman7);

fn install_with_dependencies(client: Client) {
    if !e2e_tools(client) {
        return;
    }
    let (_mirror, _nginx, p) = mirror_behind_pkgstash("0");
    let sb = client_sandbox(client, &p);
    sb.ok(&["-Sy", "app"]);
    let installed = sb.ok(&["-Q"]);
    for pkg in ["app 1.0-1", "libfoo 1:2.0-1", "foo+bar 1.0-1"] {
        assert!(installed.contains(pkg), "{pkg} not installed:\n{installed}");
    }
    for f in ["app", "libfoo", "foo+bar"] {
        let data = sb.root().join("usr/share").join(f).join("data");
        assert!(data.is_file(), "{} missing", data.display());
    }
    // The installed files pass pacman's own mtree check.
    sb.ok(&["-Qkk", "app", "libfoo", "foo+bar"]);
}

/// SIGINT to the pacman processes of a spawned pacman's process group (Ctrl-C in its
/// terminal, where no `timeout`/`bwrap` of the tests would get it too: bwrap dying of it
/// would SIGKILL pacman before its handler ran); wait for it to end.
fn interrupt_group(child: &mut Child) {
    let pids = Command::new("pgrep")
        .args(["-g", &child.id().to_string(), "-x", "pacman"])
        .output()
        .expect("pgrep");
    let pids = String::from_utf8_lossy(&pids.stdout).into_owned();
    assert!(!pids.trim().is_empty(), "no pacman process to interrupt");
    let _ = Command::new("kill")
        .arg("-INT")
        .args(pids.split_whitespace())
        .status();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().ok().flatten().is_none() {
        if Instant::now() > deadline {
            kill_group(child);
            panic!("pacman did not stop on SIGINT within 30 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn pacman_e2e_eight_parallel_pacmans_fetch_each_file_once() {
    if !e2e_tools(Client::Host) {
        return;
    }
    // Slow enough that the clients overlap on the large package.
    let (mirror, nginx, p) = mirror_behind_pkgstash("16m");
    let sandboxes: Vec<Sandbox> = (0..8).map(|_| arch_sandbox(&p)).collect();
    let mut args = vec!["-Syyw"];
    args.extend(all_names());
    let children: Vec<Child> = sandboxes.iter().map(|sb| sb.spawn(&args)).collect();
    for (i, mut c) in children.into_iter().enumerate() {
        let st = c.wait().expect("wait pacman");
        assert!(st.success(), "pacman #{i} failed: {st}");
    }
    let names = package_files(mirror);
    for sb in &sandboxes {
        assert_identical(mirror, sb, &names);
    }
    for n in names
        .iter()
        .cloned()
        .chain(["core.db".to_string(), "extra.db".to_string()])
    {
        assert_eq!(fetches(&nginx, &n), 1, "{n} must be fetched upstream once");
    }
}

#[test]
fn pacman_e2e_large_package_slow_mirror_default_timeout() {
    if !e2e_tools(Client::Host) {
        return;
    }
    let (mirror, nginx, p) = mirror_behind_pkgstash("2m");
    let first = arch_sandbox(&p);
    let late = arch_sandbox(&p);
    first.ok(&["-Syy"]);
    late.ok(&["-Syy"]);
    let big = big_package().file_name();
    let mut a = first.spawn(&["-Sw", "big"]);
    // A second client joins the download well after it started (nginx's cache lock would
    // keep it waiting without a byte, and pacman would give up after 10 s).
    std::thread::sleep(Duration::from_secs(3));
    let started = Instant::now();
    late.ok(&["-Sw", "big"]);
    let st = a.wait().expect("wait");
    assert!(st.success(), "first pacman failed: {st}");
    assert_identical(mirror, &first, std::slice::from_ref(&big));
    assert_identical(mirror, &late, std::slice::from_ref(&big));
    assert_eq!(fetches(&nginx, &big), 1, "one upstream download");
    eprintln!("joined client finished in {:?}", started.elapsed());
}

with_both_clients!(repo_bump_and_unchanged_db_304:
    pacman_e2e_repo_bump_and_unchanged_db_304,
    pacman_e2e_repo_bump_and_unchanged_db_304_pacman7);

fn repo_bump_and_unchanged_db_304(client: Client) {
    if !e2e_tools(client) {
        return;
    }
    let mut mirror = ArchMirror::new();
    mirror.add("core", &[PkgSpec::new("app", "1.0-1", 5_000)]);
    mirror.add("extra", &[PkgSpec::new("tool", "1.0-1", 5_000)]);
    mirror.age_dbs("core", 3600);
    mirror.age_dbs("extra", 3600);
    let nginx = Nginx::serve(&mirror.root, "0");
    // Revalidate on every request: pacman's -Sy must see upstream changes at once.
    let p = pkgstash(&[nginx.url()], "db_max_age = \"0s\"");
    let sb = client_sandbox(client, &p);
    sb.ok(&["-Sy"]);
    assert_eq!(sb.sync_version("app"), "1.0-1");

    // Upstream rebuilds core with a bumped version.
    mirror.add("core", &[PkgSpec::new("app", "1.1-1", 5_000)]);
    sb.ok(&["-Sy"]);
    assert_eq!(sb.sync_version("app"), "1.1-1");
    // extra did not change: pacman's If-Modified-Since got a 304.
    assert_eq!(answers(&p, "/extra.db"), vec![200, 304]);
    sb.ok(&["-Sw", "app"]);
    assert_identical(&mirror, &sb, &["app-1.1-1-x86_64.pkg.tar.zst".to_string()]);

    // Nothing changed: pacman's conditional request gets a 304, and so does pkgstash's.
    let before = nginx.log().len();
    sb.ok(&["-Sy"]);
    assert_eq!(answers(&p, "/core.db"), vec![200, 200, 304]);
    assert_eq!(answers(&p, "/extra.db"), vec![200, 304, 304]);
    let revalidations: Vec<_> = nginx.log()[before..]
        .iter()
        .filter(|a| a.uri.ends_with("/core.db"))
        .cloned()
        .collect();
    assert!(
        !revalidations.is_empty() && revalidations.iter().all(|a| a.status == 304),
        "pkgstash must revalidate core.db upstream and get 304: {revalidations:?}"
    );
}

/// Statuses pkgstash answered (its access log) for GETs of paths ending with `suffix`.
pub fn answers(p: &Pkgstash, suffix: &str) -> Vec<u16> {
    let needle = format!("{suffix} HTTP/1.1\" ");
    p.log()
        .lines()
        .filter(|l| l.contains("pkgstash::access") && l.contains("\"GET "))
        .filter_map(|l| l.split(&needle).nth(1))
        .filter_map(|rest| rest.split(' ').next()?.parse().ok())
        .collect()
}

with_both_clients!(interrupted_download_resumed_with_range:
    pacman_e2e_interrupted_download_resumed_with_range,
    pacman_e2e_interrupted_download_resumed_with_range_pacman7);

fn interrupted_download_resumed_with_range(client: Client) {
    if !e2e_tools(client) {
        return;
    }
    let (mirror, nginx, p) = mirror_behind_pkgstash("8m");
    let sb = client_sandbox(client, &p);
    sb.ok(&["-Syy"]);
    let big = big_package().file_name();
    let part_len = || {
        sb.partial_file(&big)
            .and_then(|f| std::fs::metadata(f).ok())
            .map_or(0, |m| m.len())
    };
    let mut child = sb.spawn(&["-Sw", "big"]);
    wait_for("a partial download", Duration::from_secs(60), || {
        part_len() >= MIB as u64
    });
    match client {
        // The machine loses power mid-download.
        Client::Host => kill_group(&mut child),
        // The user presses Ctrl-C. pacman 7 with a DownloadUser downloads into a
        // `download-XXXXXX` dir of the cache and moves a partial file back into the cache dir
        // when interrupted; after a SIGKILL it stays behind and the next run starts over
        // (Debian's 7.0.0), so a power loss is not a resume case for this client.
        Client::Trixie => interrupt_group(&mut child),
    }
    let _ = std::fs::remove_file(sb.root().join("db/db.lck"));
    assert!(part_len() >= MIB as u64, "a .part file is left");

    sb.ok(&["-Sw", "big"]);
    assert_identical(mirror, &sb, std::slice::from_ref(&big));
    assert!(
        answers(&p, &format!("/{big}")).contains(&206),
        "pacman's resume must be answered with 206:\n{}",
        p.log()
    );
    // The download went on without its client: upstream sent the file once.
    assert_eq!(fetches(&nginx, &big), 1);
}

#[test]
fn pacman_e2e_first_mirror_down_second_serves() {
    if !e2e_tools(Client::Host) {
        return;
    }
    let mirror = shared_mirror();
    let mut dead = Nginx::serve(&mirror.root, "0");
    let dead_url = dead.url();
    // Started before the first one stops, so it cannot take over its port.
    let nginx = Nginx::serve(&mirror.root, "0");
    dead.stop();
    let p = pkgstash(&[dead_url.clone(), nginx.url()], "");
    let sb = arch_sandbox(&p);
    let mut args = vec!["-Syyw"];
    args.extend(all_names());
    sb.ok(&args);
    assert_identical(mirror, &sb, &package_files(mirror));
    let log = p.log();
    assert!(
        log.lines()
            .any(|l| l.contains(&dead_url) && l.contains("cooling down")),
        "the dead mirror is put in cooldown, in the log:\n{log}"
    );
}

#[test]
fn pacman_e2e_through_a_redirecting_mirror() {
    if !e2e_tools(Client::Host) {
        return;
    }
    let mirror = shared_mirror();
    let real = Nginx::serve(&mirror.root, "0");
    // A GeoIP-style redirector in front of the real mirror: every request is a 302.
    let redirector = Nginx::redirect_to(&real.url());
    let p = pkgstash(&[redirector.url()], "");
    let sb = arch_sandbox(&p);
    let mut args = vec!["-Syyw"];
    args.extend(all_names());
    sb.ok(&args);
    let names = package_files(mirror);
    assert_identical(mirror, &sb, &names);
    for n in &names {
        assert_eq!(
            fetches(&real, n),
            1,
            "{n} fetched once, from the redirect target"
        );
    }
    let redirects = redirector.log();
    assert!(
        !redirects.is_empty() && redirects.iter().all(|a| a.status == 302),
        "{redirects:?}"
    );
    let status = p.status_json();
    assert_eq!(status["mirrors"][0]["redirects_to"], real.url());
    assert_eq!(status["mirrors"][0]["failures"], 0);
    assert!(
        p.log()
            .contains(&format!("via {}/core/os/x86_64/", real.url())),
        "{}",
        p.log()
    );
}
