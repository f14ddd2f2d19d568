//! The AUR package's contents, as namcap would check them: the package that `makepkg` built
//! from the release tarball ([`crate::makepkg::built`]) has the right files, modes, owners,
//! `backup` entries, dependencies and install scriptlet, and its binary runs. The install
//! scriptlet's functions are also run alone with stubbed tools (what each one calls).

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;

use crate::makepkg::built;
use crate::pkgfiles::{pkg_file, read, repo};
use crate::support::{must, text};

/// The unit files the package installs under /usr/lib/systemd/system.
pub const UNITS: [&str; 3] = [
    "pkgstash.service",
    "pkgstash-refresh.service",
    "pkgstash-refresh.timer",
];

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

/// The package makepkg built from the release tarball has the right files, modes, owners,
/// backup entries, dependencies and install scriptlet — what namcap checks — and its binary
/// runs and accepts its config. The first run compiles everything (~5 min on 2 cores), a run
/// after the tree changed recompiles ring, zstd and pkgstash (~2 min), a run on an unchanged
/// tree takes seconds (see `crate::makepkg`).
#[test]
fn packaging_makepkg_builds_package() {
    if !crate::support::require_tool("ldd") {
        return;
    }
    let Some(b) = built() else { return };
    let files = check_file_list(&b.pkg);
    let depends = check_pkginfo(&b.pkg, b.pkgrel, &files);
    check_packaged_files(&b.pkg, &depends);
    eprintln!("makepkg package ok: {}", b.pkg.display());
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
fn check_pkginfo(pkg: &Path, pkgrel: u32, files: &BTreeMap<String, Entry>) -> Vec<String> {
    let version = env!("CARGO_PKG_VERSION");
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

/// The install scriptlet's functions alone, with stubbed tools (pacman running them for real
/// is `crate::aur_install`): they create the user and the cache dir
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
