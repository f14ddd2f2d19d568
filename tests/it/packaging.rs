//! Packaging: the AUR `PKGBUILD` built by the real `makepkg`, the systemd units checked by
//! `systemd-analyze`, sysusers/tmpfiles applied to a scratch root. (The Docker image has a
//! test target of its own: `tests/docker`.)
//!
//! `makepkg` refuses to run as root. As a normal user the tests run it directly; as root
//! they run it in a user namespace in which they are uid 1000 (`unshare --user
//! --map-user=1000`: no capabilities on the host, yet the files it creates are root's on the
//! outside, and the root-owned toolchain stays readable); where user namespaces are not
//! allowed they fall back to a dedicated `pkgstash-pkgtest` user (`useradd`, `runuser`),
//! which needs a toolchain that user can run.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

use crate::support::{bin, require_tool, sha256_hex};

const BUILD_USER: &str = "pkgstash-pkgtest";
const REFRESH_CMD: &str = "/usr/bin/pkgstash refresh -c /etc/pkgstash/pkgstash.toml";
const SERVE_CMD: &str = "/usr/bin/pkgstash serve -c /etc/pkgstash/pkgstash.toml";
const UNITS: [&str; 3] = [
    "pkgstash.service",
    "pkgstash-refresh.service",
    "pkgstash-refresh.timer",
];

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn pkg_file(rel: &str) -> PathBuf {
    repo().join("packaging").join(rel)
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Run `cmd`, panic with its output unless it succeeds.
fn must(cmd: &mut Command, what: &str) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}): {cmd:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    out
}

fn euid() -> u32 {
    let status = fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|u| u.parse().ok())
        .expect("effective uid")
}

/// The cargo target dir of this build (`.../target`), from the binary's path.
fn target_dir() -> PathBuf {
    Path::new(bin())
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf()
}

// ---------------------------------------------------------------------------------------
// Running makepkg as an unprivileged user
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq)]
enum AsUser {
    /// Not root: run directly.
    Me,
    /// Root: uid 1000 in a fresh user namespace.
    UserNs,
    /// Root without user namespaces: the `pkgstash-pkgtest` system user.
    BuildUser,
}

const USERNS: [&str; 4] = ["--user", "--map-user=1000", "--map-group=1000", "--"];

fn as_user() -> AsUser {
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
fn unprivileged(who: AsUser, program: &str) -> Command {
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
fn hand_over(who: AsUser, dir: &Path) {
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

/// Files of the working tree that a release tarball would hold: git's view (tracked and
/// untracked-but-not-ignored) when there is a git checkout, else a walk without
/// `.git`, `target` and `cache`.
fn source_files() -> Vec<PathBuf> {
    let git = Command::new("git")
        .arg("-C")
        .arg(repo())
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .output();
    if let Ok(out) = git {
        if out.status.success() {
            return text(&out.stdout)
                .split('\0')
                .filter(|p| !p.is_empty())
                .map(PathBuf::from)
                .filter(|p| repo().join(p).is_file())
                .collect();
        }
    }
    fn walk(root: &Path, rel: &Path, out: &mut Vec<PathBuf>) {
        for e in fs::read_dir(root.join(rel)).expect("read_dir").flatten() {
            let rel = rel.join(e.file_name());
            let name = e.file_name().to_string_lossy().into_owned();
            let ty = e.file_type().expect("file type");
            if ty.is_dir() {
                if !(rel.components().count() == 1 && ["target", "cache"].contains(&&*name))
                    && name != ".git"
                {
                    walk(root, &rel, out);
                }
            } else if ty.is_file() {
                out.push(rel);
            }
        }
    }
    let mut out = Vec::new();
    walk(repo(), Path::new(""), &mut out);
    out
}

/// `pkgstash-VERSION.tar.gz` of the working tree with the top directory GitHub's release
/// archives have (`pkgstash-VERSION/`): the PKGBUILD's `source` then finds it in SRCDEST
/// and downloads nothing. Returns the tarball's path.
fn source_tarball(dest: &Path, version: &str) -> PathBuf {
    let path = dest.join(format!("pkgstash-{version}.tar.gz"));
    let file = fs::File::create(&path).expect("tarball");
    let gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    for rel in source_files() {
        tar.append_path_with_name(
            repo().join(&rel),
            Path::new(&format!("pkgstash-{version}")).join(&rel),
        )
        .unwrap_or_else(|e| panic!("tar {}: {e}", rel.display()));
    }
    tar.into_inner()
        .expect("tar")
        .finish()
        .expect("gzip")
        .sync_all()
        .expect("sync");
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
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        .to_string();
    fs::write(&stamp, format!("{digest} {now}\n")).expect("write stamp");
    now
}

/// `key = value` pairs of a PKGBUILD's simple scalar assignments (`pkgver=0.1.0`).
fn pkgbuild_var(pkgbuild: &str, key: &str) -> String {
    pkgbuild
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .map(|v| v.trim().trim_matches(['\'', '"']).to_string())
        .unwrap_or_else(|| panic!("PKGBUILD has no {key}="))
}

/// One entry of `bsdtar -tvf`: mode string, owner, group.
struct Entry {
    mode: String,
    owner: String,
    group: String,
}

fn list_package(pkg: &Path) -> BTreeMap<String, Entry> {
    let out = must(Command::new("bsdtar").arg("-tvf").arg(pkg), "bsdtar -tvf");
    text(&out.stdout)
        .lines()
        .map(|l| {
            // -rw-r--r--  0 root   root     1359 Nov 25 16:30 .INSTALL
            let f: Vec<&str> = l.split_whitespace().collect();
            assert!(f.len() >= 9, "unexpected bsdtar line: {l}");
            let entry = Entry {
                mode: f[0].to_string(),
                owner: f[2].to_string(),
                group: f[3].to_string(),
            };
            (f[8..].join(" "), entry)
        })
        .collect()
}

/// Arch package that provides a shared library (what namcap's dependency check does).
fn arch_package_of(soname: &str) -> Option<&'static str> {
    const MAP: [(&str, &str); 8] = [
        ("linux-vdso.so", "-"),
        ("ld-linux", "glibc"),
        ("libc.so", "glibc"),
        ("libm.so", "glibc"),
        ("libpthread.so", "glibc"),
        ("libdl.so", "glibc"),
        ("libgcc_s.so", "gcc-libs"),
        ("liblzma.so", "xz"),
    ];
    MAP.iter()
        .find(|(prefix, _)| soname.starts_with(prefix))
        .map(|(_, p)| *p)
}

/// The real makepkg builds the PKGBUILD from a tarball of the working tree (running
/// `check()`, i.e. the unit tests, in release mode), and the package has the right files,
/// modes, owners, backup entries, dependencies and install scriptlet — what namcap checks.
///
/// Flags: `--nodeps` because Debian's pacman db has none of the Arch packages in
/// `depends`/`makedepends`; `--skipchecksums` because the source is the local tarball, not
/// the release one. The cargo target dir persists in `target/packaging/cargo-target`:
/// the first run compiles everything (~5 min on 2 cores), a run after the tree changed
/// recompiles ring, zstd and pkgstash (~2 min, see `source_date_epoch`), a run on an
/// unchanged tree takes ~10 s. makepkg runs under `nice -n 19` so that the timing-sensitive
/// tests running beside it keep their CPU.
#[test]
fn packaging_makepkg_builds_package() {
    for tool in ["makepkg", "fakeroot", "bsdtar", "ldd"] {
        if !require_tool(tool) {
            return;
        }
    }
    let pkg = build_package(as_user());
    let files = check_file_list(&pkg);
    let depends = check_pkginfo(&pkg, &files);
    check_packaged_files(&pkg, &depends);
    eprintln!("makepkg package ok: {}", pkg.display());
}

/// Run makepkg on the PKGBUILD (in `target/packaging/work`) and return the package path.
fn build_package(who: AsUser) -> PathBuf {
    let version = env!("CARGO_PKG_VERSION");
    let pkgbuild = read(&pkg_file("arch/PKGBUILD"));
    assert_eq!(
        pkgbuild_var(&pkgbuild, "pkgver"),
        version,
        "PKGBUILD pkgver must follow Cargo.toml's version"
    );
    let pkgrel = pkgbuild_var(&pkgbuild, "pkgrel");

    let base = target_dir().join("packaging");
    let work = base.join("work");
    let cargo_target = base.join("cargo-target");
    if work.exists() {
        fs::remove_dir_all(&work).expect("clean work dir");
    }
    for d in ["start", "srcdest", "build", "pkg"] {
        fs::create_dir_all(work.join(d)).expect("mkdir");
    }
    fs::create_dir_all(&cargo_target).expect("mkdir");
    for f in ["PKGBUILD", "pkgstash.install"] {
        fs::copy(pkg_file(&format!("arch/{f}")), work.join("start").join(f)).expect("copy");
    }
    let tarball = source_tarball(&work.join("srcdest"), version);
    let epoch = source_date_epoch(&base, &tarball);
    let conf = makepkg_conf(&work);
    hand_over(who, &base);

    let log_path = work.join("makepkg.log");
    let log = fs::File::create(&log_path).expect("log");
    let started = Instant::now();
    let mut cmd = unprivileged(who, "nice");
    cmd.args(["-n", "19", "makepkg", "--config"])
        .arg(&conf)
        .args([
            "--noconfirm",
            "--nodeps",
            "--skipchecksums",
            "--noprogressbar",
            "--nocolor",
            "--force",
        ])
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
    let elapsed = started.elapsed();
    let log = read(&log_path);
    let tail: Vec<&str> = log.lines().rev().take(60).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    assert!(
        status.success(),
        "makepkg failed ({status}) as {who:?}; last lines of {}:\n{}",
        log_path.display(),
        tail.join("\n")
    );
    eprintln!("makepkg ({who:?}) built the package in {elapsed:.0?}");
    assert!(
        log.contains("Starting check()") && log.contains("test result: ok."),
        "check() must run the unit tests:\n{}",
        tail.join("\n")
    );

    fs::read_dir(work.join("pkg"))
        .expect("PKGDEST")
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.starts_with(&format!("pkgstash-{version}-{pkgrel}-")) && n.contains(".pkg.tar")
        })
        .expect("no pkgstash-*.pkg.tar.* in PKGDEST")
}

/// File list, modes and owners (`bsdtar -tvf`): everything needed is there, nothing
/// outside /etc and /usr, nothing setuid or world-writable.
fn check_file_list(pkg: &Path) -> BTreeMap<String, Entry> {
    let files = list_package(pkg);
    let listing = files.keys().cloned().collect::<Vec<_>>().join("\n");
    for (path, mode) in [
        ("usr/bin/pkgstash", "-rwxr-xr-x"),
        ("etc/pkgstash/pkgstash.toml", "-rw-r--r--"),
        ("etc/pkgstash/pkgstash.env", "-rw-------"),
        ("usr/lib/systemd/system/pkgstash.service", "-rw-r--r--"),
        (
            "usr/lib/systemd/system/pkgstash-refresh.service",
            "-rw-r--r--",
        ),
        (
            "usr/lib/systemd/system/pkgstash-refresh.timer",
            "-rw-r--r--",
        ),
        ("usr/lib/sysusers.d/pkgstash.conf", "-rw-r--r--"),
        ("usr/lib/tmpfiles.d/pkgstash.conf", "-rw-r--r--"),
        ("usr/share/licenses/pkgstash/LICENSE", "-rw-r--r--"),
        (".PKGINFO", "-rw-r--r--"),
        (".INSTALL", "-rw-r--r--"),
    ] {
        let e = files
            .get(path)
            .unwrap_or_else(|| panic!("{path} missing from the package:\n{listing}"));
        assert_eq!(e.mode, mode, "mode of {path}");
    }
    for (path, e) in &files {
        assert_eq!(
            (e.owner.as_str(), e.group.as_str()),
            ("root", "root"),
            "{path} must be root:root"
        );
        let top = path.split('/').next().unwrap();
        assert!(
            top.starts_with('.') || top == "etc" || top == "usr",
            "{path}: a package installs under /etc and /usr only (the cache dir comes \
             from tmpfiles.d)"
        );
        assert!(
            !path.starts_with("usr/local"),
            "{path}: no files in /usr/local"
        );
        assert!(
            !e.mode[1..].contains('s') && !e.mode[1..].contains('S'),
            "{path}: no setuid/setgid ({})",
            e.mode
        );
        assert!(
            e.mode.len() == 10 && &e.mode[8..9] != "w",
            "{path}: world-writable ({})",
            e.mode
        );
    }
    files
}

/// `.PKGINFO`: version, both config files in `backup`; returns `depend` entries.
fn check_pkginfo(pkg: &Path, files: &BTreeMap<String, Entry>) -> Vec<String> {
    let version = env!("CARGO_PKG_VERSION");
    let pkgrel = pkgbuild_var(&read(&pkg_file("arch/PKGBUILD")), "pkgrel");
    let pkginfo = text(
        &must(
            Command::new("bsdtar").arg("-xOf").arg(pkg).arg(".PKGINFO"),
            "read .PKGINFO",
        )
        .stdout,
    );
    let field = |k: &str| -> Vec<String> {
        pkginfo
            .lines()
            .filter_map(|l| l.strip_prefix(&format!("{k} = ")))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(field("pkgver"), vec![format!("{version}-{pkgrel}")]);
    let backup = field("backup");
    for conf_file in ["etc/pkgstash/pkgstash.toml", "etc/pkgstash/pkgstash.env"] {
        assert!(
            backup.iter().any(|b| b == conf_file),
            "{conf_file} must be in backup=():\n{pkginfo}"
        );
    }
    for b in &backup {
        assert!(
            files.contains_key(b),
            "backup entry {b} is not a file of the package"
        );
    }
    field("depend")
}

/// The packaged files are the repo's; the packaged binary runs, accepts the packaged
/// config, and links only libraries of packages in `depends` (namcap's check).
fn check_packaged_files(pkg: &Path, depends: &[String]) {
    let version = env!("CARGO_PKG_VERSION");
    let root = tempfile::tempdir().expect("tempdir");
    must(
        Command::new("bsdtar")
            .arg("-xf")
            .arg(pkg)
            .arg("-C")
            .arg(root.path()),
        "extract package",
    );
    let r = root.path();
    assert_eq!(
        read(&r.join(".INSTALL")),
        read(&pkg_file("arch/pkgstash.install")),
        ".INSTALL must be packaging/arch/pkgstash.install"
    );
    for unit in UNITS {
        assert_eq!(
            read(&r.join("usr/lib/systemd/system").join(unit)),
            read(&pkg_file(&format!("systemd/{unit}"))),
            "{unit}"
        );
    }
    assert_eq!(
        read(&r.join("usr/lib/sysusers.d/pkgstash.conf")),
        read(&pkg_file("systemd/pkgstash.sysusers"))
    );
    assert_eq!(
        read(&r.join("usr/lib/tmpfiles.d/pkgstash.conf")),
        read(&pkg_file("systemd/pkgstash.tmpfiles"))
    );
    assert_eq!(
        read(&r.join("etc/pkgstash/pkgstash.env")),
        read(&repo().join("config/pkgstash.env"))
    );

    // The packaged binary runs and accepts the packaged config.
    let packaged_bin = r.join("usr/bin/pkgstash");
    let out = must(
        Command::new(&packaged_bin).arg("--version"),
        "pkgstash --version",
    );
    assert!(text(&out.stdout).contains(version), "{}", text(&out.stdout));
    must(
        Command::new(&packaged_bin)
            .arg("check-config")
            .arg("-c")
            .arg(r.join("etc/pkgstash/pkgstash.toml"))
            .env_remove("PKGSTASH_CONFIG")
            .env_remove("PKGSTASH_TOKEN"),
        "packaged binary: check-config of the packaged config",
    );

    // Every shared library the binary links comes from a package in depends=().
    let ldd = text(&must(Command::new("ldd").arg(&packaged_bin), "ldd").stdout);
    for lib in ldd.lines().filter_map(|l| l.split_whitespace().next()) {
        let soname = lib.rsplit('/').next().unwrap();
        let provider = arch_package_of(soname).unwrap_or_else(|| {
            panic!("pkgstash links {soname}: add its Arch package to depends=() and to this map")
        });
        assert!(
            provider == "-" || depends.iter().any(|d| d == provider),
            "pkgstash links {soname} (from {provider}) but depends=({}) lacks it",
            depends.join(" ")
        );
    }
}

/// `.SRCINFO` is what `makepkg --printsrcinfo` makes of the PKGBUILD (the AUR reads it).
#[test]
fn packaging_srcinfo_matches_pkgbuild() {
    if !require_tool("makepkg") {
        return;
    }
    let who = as_user();
    let dir = tempfile::tempdir().expect("tempdir");
    for f in ["PKGBUILD", "pkgstash.install"] {
        fs::copy(pkg_file(&format!("arch/{f}")), dir.path().join(f)).expect("copy");
    }
    hand_over(who, dir.path());
    let out = must(
        unprivileged(who, "makepkg")
            .arg("--printsrcinfo")
            .current_dir(dir.path()),
        "makepkg --printsrcinfo",
    );
    let srcinfo = read(&pkg_file("arch/.SRCINFO"));
    assert_eq!(
        text(&out.stdout),
        srcinfo,
        "packaging/arch/.SRCINFO is stale: regenerate it with `makepkg --printsrcinfo > .SRCINFO`"
    );
    for line in [
        "\tmakedepends = cargo",
        "\tbackup = etc/pkgstash/pkgstash.toml",
        "\tbackup = etc/pkgstash/pkgstash.env",
        "\tinstall = pkgstash.install",
        &format!("\tpkgver = {}", env!("CARGO_PKG_VERSION")),
    ] {
        assert!(srcinfo.lines().any(|l| l == line), "{line:?} in .SRCINFO");
    }
}

/// The install scriptlet (run by pacman with /bin/sh) creates the user and the cache dir
/// through sysusers/tmpfiles, tells how to set the token and enable the units, and deletes
/// nothing on removal.
#[test]
fn packaging_install_scriptlet() {
    let dir = tempfile::tempdir().expect("tempdir");
    let stubs = dir.path().join("bin");
    fs::create_dir(&stubs).expect("mkdir");
    let calls = dir.path().join("calls");
    for tool in [
        "systemd-sysusers",
        "systemd-tmpfiles",
        "rm",
        "userdel",
        "groupdel",
        "systemctl",
    ] {
        let stub = stubs.join(tool);
        fs::write(
            &stub,
            format!("#!/bin/sh\necho \"{tool} $*\" >> '{}'\n", calls.display()),
        )
        .expect("stub");
        must(Command::new("chmod").arg("+x").arg(&stub), "chmod");
    }
    let path = format!(
        "{}:{}",
        stubs.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let script = pkg_file("arch/pkgstash.install");
    must(Command::new("sh").arg("-n").arg(&script), "sh -n");
    let run = |func: &str| -> String {
        let _ = fs::remove_file(&calls);
        let out = must(
            Command::new("sh")
                .arg("-ec")
                .arg(format!(". '{}'; {func} 0.1.0-1 0.0.9-1", script.display()))
                .env("PATH", &path),
            func,
        );
        text(&out.stdout)
    };

    let msg = run("post_install");
    let called = fs::read_to_string(&calls).unwrap_or_default();
    assert_eq!(
        called, "systemd-sysusers pkgstash.conf\nsystemd-tmpfiles --create pkgstash.conf\n",
        "post_install: sysusers, then tmpfiles"
    );
    for needle in [
        "openssl rand -hex 32",
        "/etc/pkgstash/pkgstash.env",
        "systemctl enable --now pkgstash.service pkgstash-refresh.timer",
        "Server = http://THIS-HOST:7878/archlinux/$repo/os/$arch",
    ] {
        assert!(
            msg.contains(needle),
            "post_install output lacks {needle:?}:\n{msg}"
        );
    }

    let msg = run("post_upgrade");
    assert!(msg.contains("try-restart pkgstash.service"), "{msg}");
    assert!(fs::read_to_string(&calls)
        .unwrap_or_default()
        .contains("systemd-sysusers pkgstash.conf"));

    let msg = run("post_remove");
    assert!(msg.contains("/var/cache/pkgstash"), "{msg}");
    assert_eq!(
        fs::read_to_string(&calls).unwrap_or_default(),
        "",
        "post_remove must keep the cache, the user and the config"
    );
}

// ---------------------------------------------------------------------------------------
// systemd
// ---------------------------------------------------------------------------------------

/// `[Section]` → `Key` → values (a key may repeat) of a unit file.
fn unit_settings(unit: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut section = String::new();
    for line in read(&pkg_file(&format!("systemd/{unit}"))).lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(s) = line.strip_prefix('[') {
            section = s.trim_end_matches(']').to_string();
        } else if let Some((k, v)) = line.split_once('=') {
            out.entry(format!("{section}.{k}"))
                .or_default()
                .push(v.to_string());
        }
    }
    out
}

fn one(settings: &BTreeMap<String, Vec<String>>, key: &str) -> String {
    let v = settings
        .get(key)
        .unwrap_or_else(|| panic!("{key} is not set"));
    v.last().unwrap().clone()
}

/// `systemd-analyze verify` accepts the units without a single warning, in a scratch root
/// that has the system's units and a `/usr/bin/pkgstash`.
#[test]
fn packaging_systemd_units_verify() {
    if !require_tool("systemd-analyze") {
        return;
    }
    let root = tempfile::tempdir().expect("tempdir");
    let r = root.path();
    let units = r.join("usr/lib/systemd/system");
    fs::create_dir_all(&units).expect("mkdir");
    fs::create_dir_all(r.join("usr/bin")).expect("mkdir");
    fs::copy(bin(), r.join("usr/bin/pkgstash")).expect("copy binary");
    for sys in ["/usr/lib/systemd/system", "/lib/systemd/system"] {
        if Path::new(sys).join("sysinit.target").exists() {
            must(
                Command::new("cp")
                    .arg("-a")
                    .arg(format!("{sys}/."))
                    .arg(&units),
                "copy system units",
            );
            break;
        }
    }
    let mut cmd = Command::new("systemd-analyze");
    cmd.arg("verify")
        .arg("--man=no")
        .arg(format!("--root={}", r.display()));
    for unit in UNITS {
        fs::copy(pkg_file(&format!("systemd/{unit}")), units.join(unit)).expect("copy unit");
        cmd.arg(units.join(unit));
    }
    let out = must(&mut cmd, "systemd-analyze verify");
    let noise = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        noise.trim().is_empty(),
        "systemd-analyze verify warned:\n{noise}"
    );

    // The same with the AUR builder drop-in (shipped as a doc example) in place.
    let dropin = r.join("etc/systemd/system/pkgstash.service.d");
    fs::create_dir_all(&dropin).expect("mkdir");
    fs::copy(
        pkg_file("systemd/aur-builder.conf"),
        dropin.join("aur-builder.conf"),
    )
    .expect("copy");
    let out = must(
        Command::new("systemd-analyze")
            .arg("verify")
            .arg("--man=no")
            .arg(format!("--root={}", r.display()))
            .arg(units.join("pkgstash.service")),
        "systemd-analyze verify with the aur-builder drop-in",
    );
    let noise = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        noise.trim().is_empty(),
        "systemd-analyze verify warned:\n{noise}"
    );

    // What the units must say.
    let serve = unit_settings("pkgstash.service");
    assert_eq!(one(&serve, "Service.ExecStart"), SERVE_CMD);
    assert_eq!(one(&serve, "Service.User"), "pkgstash");
    assert_eq!(
        one(&serve, "Service.EnvironmentFile"),
        "-/etc/pkgstash/pkgstash.env"
    );
    assert_eq!(one(&serve, "Service.Restart"), "on-failure");
    assert_eq!(one(&serve, "Service.ProtectSystem"), "strict");
    assert_eq!(
        one(&serve, "Service.ReadWritePaths"),
        "/var/cache/pkgstash /var/lib/pkgstash",
        "the cache and the custom repos are writable"
    );
    assert_eq!(one(&serve, "Install.WantedBy"), "multi-user.target");

    let refresh = unit_settings("pkgstash-refresh.service");
    assert_eq!(one(&refresh, "Service.ExecStart"), REFRESH_CMD);
    assert_eq!(one(&refresh, "Service.Type"), "oneshot");
    assert_eq!(
        one(&refresh, "Service.EnvironmentFile"),
        "-/etc/pkgstash/pkgstash.env"
    );
    let timer = unit_settings("pkgstash-refresh.timer");
    assert_eq!(one(&timer, "Timer.Persistent"), "true");
    assert!(timer.contains_key("Timer.RandomizedDelaySec"));
    assert_eq!(one(&timer, "Install.WantedBy"), "timers.target");
    must(
        Command::new("systemd-analyze")
            .arg("calendar")
            .arg(one(&timer, "Timer.OnCalendar")),
        "OnCalendar parses",
    );

    // The sysusers home and the tmpfiles dir are the cache dir the unit may write.
    let sysusers = read(&pkg_file("systemd/pkgstash.sysusers"));
    assert!(
        sysusers
            .lines()
            .any(|l| l.starts_with("u pkgstash ") && l.ends_with(" /var/cache/pkgstash")),
        "{sysusers}"
    );
    let tmpfiles = read(&pkg_file("systemd/pkgstash.tmpfiles"));
    assert!(
        tmpfiles
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == [
                    "d",
                    "/var/cache/pkgstash",
                    "0750",
                    "pkgstash",
                    "pkgstash",
                    "-"
                ]),
        "{tmpfiles}"
    );
}

/// `systemd-analyze security` rates both services "OK" or better (exposure < 5).
#[test]
fn packaging_systemd_security_ok() {
    if !require_tool("systemd-analyze") {
        return;
    }
    for unit in ["pkgstash.service", "pkgstash-refresh.service"] {
        let out = Command::new("systemd-analyze")
            .args(["security", "--offline=true", "--no-pager"])
            .arg(pkg_file(&format!("systemd/{unit}")))
            .output()
            .expect("systemd-analyze security");
        let report = text(&out.stdout);
        let overall = report
            .lines()
            .find_map(|l| {
                l.split(&format!("Overall exposure level for {unit}: "))
                    .nth(1)
            })
            .unwrap_or_else(|| panic!("no overall exposure for {unit}:\n{report}"));
        let mut words = overall.split_whitespace();
        let score: f64 = words
            .next()
            .and_then(|s| s.parse().ok())
            .expect("exposure score");
        let level = words.next().unwrap_or("");
        eprintln!("{unit}: exposure {score} {level}");
        assert!(
            ["OK", "SAFE", "PERFECT"].contains(&level) && score < 5.0,
            "{unit}: exposure {overall}\n{report}"
        );
        assert!(out.status.success(), "{unit}: {}", text(&out.stderr));
    }
}

/// sysusers.d creates a system user whose home is the cache, tmpfiles.d the cache dir,
/// owned by it, mode 0750 (applied to a scratch root).
#[test]
fn packaging_sysusers_and_tmpfiles_apply() {
    for tool in ["systemd-sysusers", "systemd-tmpfiles"] {
        if !require_tool(tool) {
            return;
        }
    }
    if euid() != 0 {
        eprintln!("SKIP: applying sysusers/tmpfiles to a scratch root needs root");
        return;
    }
    let root = tempfile::tempdir().expect("tempdir");
    let r = root.path();
    fs::create_dir_all(r.join("etc")).expect("mkdir");
    let rootarg = format!("--root={}", r.display());
    must(
        Command::new("systemd-sysusers")
            .arg(&rootarg)
            .arg(pkg_file("systemd/pkgstash.sysusers")),
        "systemd-sysusers",
    );
    let passwd = read(&r.join("etc/passwd"));
    let user: Vec<&str> = passwd
        .lines()
        .find(|l| l.starts_with("pkgstash:"))
        .unwrap_or_else(|| panic!("no pkgstash user:\n{passwd}"))
        .split(':')
        .collect();
    let uid: u32 = user[2].parse().expect("uid");
    assert!(uid > 0 && uid < 1000, "a system uid: {uid}");
    assert_eq!(user[5], "/var/cache/pkgstash");
    assert!(user[6].ends_with("nologin"), "shell {}", user[6]);
    must(
        Command::new("systemd-tmpfiles")
            .arg(&rootarg)
            .arg("--create")
            .arg(pkg_file("systemd/pkgstash.tmpfiles")),
        "systemd-tmpfiles --create",
    );
    let out = must(
        Command::new("stat")
            .args(["-c", "%F %a %u"])
            .arg(r.join("var/cache/pkgstash")),
        "stat",
    );
    assert_eq!(text(&out.stdout).trim(), format!("directory 750 {uid}"));
}
