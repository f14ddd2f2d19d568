//! The AUR package built for real: the release tarball made by `scripts/release.sh` from a
//! tag ([`crate::release`]), then the real `makepkg` on the PKGBUILD as release.sh left it,
//! from that tarball, verifying its checksum. A second package with `pkgrel` bumped and a
//! changed sample config is repackaged from the same build (`makepkg -R`) for the upgrade
//! test. Both are built once per test run and shared ([`built`]).
//!
//! Compile budget: one release compile of pkgstash per run. makepkg runs with `--nocheck`
//! (`check()` would compile the unit tests a second time in release mode; the suite ran them
//! already) unless `PKGSTASH_MAKEPKG_CHECK=1`; the cargo target dir persists in
//! `target/packaging/cargo-target` so local reruns reuse it.
//!
//! `makepkg` refuses to run as root. As a normal user the tests run it directly; as root
//! they run it in a user namespace in which they are uid 1000 (`unshare --user
//! --map-user=1000`: no capabilities on the host, yet the files it creates are root's on the
//! outside, and the root-owned toolchain stays readable); where user namespaces are not
//! allowed they fall back to a dedicated `pkgstash-pkgtest` user (`useradd`, `runuser`),
//! which needs a toolchain that user can run.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Instant;

use crate::pkgfiles::{euid, pkg_file, pkgbuild_var, read, target_dir, unix_now};
use crate::support::{must, require_tool, sha256_hex};

const BUILD_USER: &str = "pkgstash-pkgtest";

/// Who runs makepkg.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum AsUser {
    /// Not root: run directly.
    Me,
    /// Root: uid 1000 in a fresh user namespace.
    UserNs,
    /// Root without user namespaces: the `pkgstash-pkgtest` system user.
    BuildUser,
}

const USERNS: [&str; 4] = ["--user", "--map-user=1000", "--map-group=1000", "--"];

pub fn as_user() -> AsUser {
    if euid() != 0 {
        return AsUser::Me;
    }
    let userns = Command::new("unshare")
        .args(USERNS)
        .arg("true")
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if userns {
        return AsUser::UserNs;
    }
    let exists = Command::new("id")
        .arg(BUILD_USER)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !exists {
        must(
            Command::new("useradd").args(["--system", "--create-home", BUILD_USER]),
            "useradd",
        );
    }
    let cargo_ok = unprivileged(AsUser::BuildUser, "cargo")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        cargo_ok,
        "running as root without user namespaces, and the build user `{BUILD_USER}` cannot run \
         cargo (a toolchain under /root is not readable by it): install a system-wide toolchain \
         or allow unprivileged user namespaces"
    );
    AsUser::BuildUser
}

/// `program` run as `who`, with this process's environment.
pub fn unprivileged(who: AsUser, program: &str) -> Command {
    match who {
        AsUser::Me => Command::new(program),
        AsUser::UserNs => {
            let mut c = Command::new("unshare");
            c.args(USERNS).arg(program);
            c
        }
        AsUser::BuildUser => {
            let mut c = Command::new("runuser");
            c.args(["-u", BUILD_USER, "--", "env"])
                .arg(format!(
                    "PATH={}",
                    std::env::var("PATH").unwrap_or_default()
                ))
                .arg(program);
            c
        }
    }
}

/// Give `dir` to the build user when that is who runs makepkg.
pub fn hand_over(who: AsUser, dir: &Path) {
    if who == AsUser::BuildUser {
        must(
            Command::new("chown")
                .arg("-R")
                .arg(format!("{BUILD_USER}:"))
                .arg(dir),
            "chown",
        );
    }
}

/// `makepkg.conf` for the tests: the system one (Debian's `makepkg` package), plus on x86_64
/// Arch's compiler flags and its default `lto` option, so a PKGBUILD that only builds with
/// Debian's bare defaults fails here as it would on Arch.
fn makepkg_conf(dir: &Path) -> PathBuf {
    let base = std::env::var("MAKEPKG_CONF").unwrap_or_else(|_| "/etc/makepkg.conf".into());
    let mut conf = read(Path::new(&base));
    if std::env::consts::ARCH == "x86_64" {
        conf.push_str(
            r#"
# --- pkgstash packaging test: Arch Linux x86_64 defaults ---
CARCH="x86_64"
CFLAGS="-march=x86-64 -mtune=generic -O2 -pipe -fno-plt -fexceptions -Wp,-D_FORTIFY_SOURCE=3 -Wformat -Werror=format-security -fstack-clash-protection -fcf-protection -fno-omit-frame-pointer -mno-omit-leaf-frame-pointer"
CXXFLAGS="$CFLAGS -Wp,-D_GLIBCXX_ASSERTIONS"
LDFLAGS="-Wl,-O1 -Wl,--sort-common -Wl,--as-needed -Wl,-z,relro -Wl,-z,now"
LTOFLAGS="-flto=auto"
RUSTFLAGS="-Cforce-frame-pointers=yes"
OPTIONS=(strip docs !libtool !staticlibs emptydirs zipman purge !debug lto)
"#,
        );
    }
    let path = dir.join("makepkg.conf");
    fs::write(&path, conf).expect("write makepkg.conf");
    path
}

/// SOURCE_DATE_EPOCH for this build: the one of the last build when the source tarball is
/// the same (so cargo's cache holds), else now.
///
/// Without it makepkg exports the current time, and the C crates' build scripts (cc:
/// `rerun-if-env-changed=SOURCE_DATE_EPOCH`) rebuild ring and zstd on every run. With it
/// makepkg also touches every source file to that time; "now" for a changed tree keeps
/// those sources newer than the last build, so cargo rebuilds them.
fn source_date_epoch(base: &Path, tarball: &Path) -> String {
    let digest = sha256_hex(&fs::read(tarball).expect("read tarball"));
    let stamp = base.join("source-date-epoch");
    if let Ok(last) = fs::read_to_string(&stamp) {
        if let Some((d, epoch)) = last.trim().split_once(' ') {
            if d == digest {
                return epoch.to_string();
            }
        }
    }
    let now = unix_now().to_string();
    fs::write(&stamp, format!("{digest} {now}\n")).expect("write stamp");
    now
}

/// What the shared build made.
pub struct Built {
    /// `pkgstash-VERSION-PKGREL-ARCH.pkg.tar.*`, built from the release tarball.
    pub pkg: PathBuf,
    /// The same with `pkgrel` + 1 and a sample `pkgstash.toml` that changed.
    pub bumped: PathBuf,
    pub pkgrel: u32,
    /// The release tarball release.sh made, and the PKGBUILD / .SRCINFO it wrote.
    pub tarball: PathBuf,
    pub pkgbuild: String,
    pub srcinfo: String,
    /// The snapshot repository's `packaging/arch` (PKGBUILD as release.sh left it).
    pub arch_dir: PathBuf,
    /// makepkg's output of the full build.
    pub log: String,
}

/// Are makepkg and what it needs here? (In CI a missing one panics.)
pub fn tools() -> bool {
    ["makepkg", "fakeroot", "bsdtar", "git", "sha256sum"]
        .iter()
        .all(|t| require_tool(t))
}

/// The packages, built once per test run by the first test that asks (the others wait);
/// `None` when the tools are missing outside CI. A failed build fails every test that
/// needs it, with the first failure's message. libtest starts tests in name order:
/// `aur_install` asks first, and the other tests that wait for the build (`release`,
/// `package_contents`) sort late, so the second test thread runs most of the suite
/// meanwhile instead of waiting too.
pub fn built() -> Option<&'static Built> {
    static BUILT: OnceLock<Result<Built, String>> = OnceLock::new();
    if !tools() {
        return None;
    }
    let result = BUILT.get_or_init(|| {
        std::panic::catch_unwind(build).map_err(|e| {
            e.downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        })
    });
    match result {
        Ok(b) => Some(b),
        Err(msg) => panic!("the makepkg build failed:\n{msg}"),
    }
}

/// Run makepkg in `work/start` with the shared settings plus `args`; the log goes to
/// `log_path`. Panics with the log's tail on failure.
fn makepkg(who: AsUser, work: &Path, epoch: &str, args: &[&str], log_path: &Path) -> String {
    let cargo_target = work.parent().expect("base").join("cargo-target");
    fs::create_dir_all(&cargo_target).expect("mkdir");
    let conf = makepkg_conf(work);
    hand_over(who, work.parent().expect("base"));
    let log = fs::File::create(log_path).expect("log");
    let mut cmd = unprivileged(who, "nice");
    // nice: the timing-sensitive tests running beside it keep their CPU.
    cmd.args(["-n", "19", "makepkg", "--config"])
        .arg(&conf)
        .args(["--noconfirm", "--noprogressbar", "--nocolor", "--force"])
        // Debian's pacman db has none of the Arch packages in depends/makedepends.
        .arg("--nodeps")
        .args(args)
        .current_dir(work.join("start"))
        .env("SRCDEST", work.join("srcdest"))
        .env("BUILDDIR", work.join("build"))
        .env("PKGDEST", work.join("pkg"))
        .env("CARGO_TARGET_DIR", &cargo_target)
        .env("PACKAGER", "pkgstash packaging test <test@localhost>")
        .env("SOURCE_DATE_EPOCH", epoch)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log);
    if who != AsUser::BuildUser {
        // every crate is in the registry already (the main build fetched them); the build
        // user has a registry of its own and may need the network
        cmd.env("CARGO_NET_OFFLINE", "true");
    }
    let status = cmd.status().expect("run makepkg");
    let log = read(log_path);
    let tail: Vec<&str> = log.lines().rev().take(60).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    assert!(
        status.success(),
        "makepkg {args:?} failed ({status}) as {who:?}; last lines of {}:\n{}",
        log_path.display(),
        tail.join("\n")
    );
    log
}

/// The package in PKGDEST for `pkgver-pkgrel`.
fn find_package(work: &Path, version: &str, pkgrel: u32) -> PathBuf {
    fs::read_dir(work.join("pkg"))
        .expect("PKGDEST")
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            let n = p.file_name().unwrap_or_default().to_string_lossy();
            n.starts_with(&format!("pkgstash-{version}-{pkgrel}-")) && n.contains(".pkg.tar")
        })
        .unwrap_or_else(|| panic!("no pkgstash-{version}-{pkgrel}-*.pkg.tar.* in PKGDEST"))
}

/// The release and both builds, in `target/packaging/` (work dir recreated each run, cargo
/// target dir kept). Timings go to stderr.
fn build() -> Built {
    let who = as_user();
    let version = env!("CARGO_PKG_VERSION");
    let committed = read(&pkg_file("arch/PKGBUILD"));
    assert_eq!(
        pkgbuild_var(&committed, "pkgver"),
        version,
        "PKGBUILD pkgver must follow Cargo.toml's version"
    );
    let base = target_dir().join("packaging");
    let work = base.join("work");
    if work.exists() {
        fs::remove_dir_all(&work).expect("clean work dir");
    }
    for d in ["start", "srcdest", "build", "pkg", "snapshot"] {
        fs::create_dir_all(work.join(d)).expect("mkdir");
    }

    let started = Instant::now();
    let tarball = crate::release::release(&work.join("snapshot"), version, &work.join("srcdest"));
    eprintln!("release.sh: tarball in {:.1?}", started.elapsed());
    let arch_dir = work.join("snapshot/packaging/arch");
    for f in ["PKGBUILD", "pkgstash.install"] {
        fs::copy(arch_dir.join(f), work.join("start").join(f)).expect("copy");
    }
    let pkgbuild = read(&arch_dir.join("PKGBUILD"));
    let pkgrel: u32 = pkgbuild_var(&pkgbuild, "pkgrel").parse().expect("pkgrel");
    let epoch = source_date_epoch(&base, &tarball);

    // The release build: sources downloaded (found in SRCDEST) and verified against
    // sha256sums, prepare(), build(), package().
    let check = std::env::var("PKGSTASH_MAKEPKG_CHECK").is_ok_and(|v| v == "1");
    let started = Instant::now();
    let log = makepkg(
        who,
        &work,
        &epoch,
        if check { &[] } else { &["--nocheck"] },
        &work.join("makepkg.log"),
    );
    eprintln!(
        "makepkg ({who:?}) built the package in {:.0?}",
        started.elapsed()
    );
    if check {
        assert!(
            log.contains("Starting check()") && log.contains("test result: ok."),
            "check() must run the unit tests"
        );
    }
    let pkg = find_package(&work, version, pkgrel);

    // The next package release: pkgrel + 1, and a sample config that changed (what makes
    // pacman write a .pacnew next to a config the user edited). `makepkg -R` packages the
    // existing build again: no second compile.
    let sample = work
        .join("build/pkgstash/src")
        .join(format!("pkgstash-{version}"))
        .join("config/pkgstash.toml");
    let mut changed = read(&sample);
    changed.push_str(&format!(
        "\n# pkgstash {version}-{}: the sample config changed in this package release\n",
        pkgrel + 1
    ));
    fs::write(&sample, changed).expect("write sample");
    let start_pkgbuild = work.join("start/PKGBUILD");
    let bumped_pkgbuild = read(&start_pkgbuild).replace(
        &format!("\npkgrel={pkgrel}\n"),
        &format!("\npkgrel={}\n", pkgrel + 1),
    );
    fs::write(&start_pkgbuild, bumped_pkgbuild).expect("write PKGBUILD");
    let started = Instant::now();
    makepkg(
        who,
        &work,
        &epoch,
        &["--repackage", "--nocheck"],
        &work.join("makepkg-repackage.log"),
    );
    eprintln!(
        "makepkg --repackage (pkgrel {}) in {:.1?}",
        pkgrel + 1,
        started.elapsed()
    );
    let bumped = find_package(&work, version, pkgrel + 1);

    Built {
        pkg,
        bumped,
        pkgrel,
        srcinfo: read(&arch_dir.join(".SRCINFO")),
        pkgbuild,
        tarball,
        arch_dir,
        log,
    }
}
