//! A Debian 13 (trixie) root for the tests: Debian's pacman 7.0 (`pacman-package-manager`,
//! the second real client) and `systemd-sysusers`/`systemd-tmpfiles` (what the AUR
//! package's install scriptlet runs), made once by `debootstrap --variant=minbase` under
//! `target/chroots/trixie` and reused by later runs (never committed).
//!
//! Nothing inside the root reaches the network: debootstrap downloads on the host, from the
//! Debian mirror the host's apt uses (its `sources.list*`, with its `Acquire::http::Proxy`
//! if any; `PKGSTASH_DEBIAN_MIRROR` overrides), and dpkg installs offline in the root.
//!
//! Programs run in it with bubblewrap: a chroot with a fresh `/proc`, `/dev` and `/tmp`, the
//! root itself read-only, sharing the host's network namespace (so 127.0.0.1 is the host's
//! loopback, where the tests' servers listen) and the host's uid 0 with its capabilities.
//! Needs root; in CI a missing tool or a non-root run is a failure.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Instant;

use crate::pkgfiles::target_dir;
use crate::support::{in_ci, is_root, must, output_text, require_tool};

/// Debian packages added to the minbase root.
const PACKAGES: [&str; 3] = [
    "pacman-package-manager",
    "systemd-standalone-sysusers",
    "systemd-standalone-tmpfiles",
];

/// Written into the root when it is complete; a root whose stamp differs is made again.
fn stamp() -> String {
    format!(
        "pkgstash test root 1: debootstrap --variant=minbase trixie, {}, user alpm\n",
        PACKAGES.join(",")
    )
}

/// Where a sandbox directory of the host is bound in the root.
pub const SANDBOX_MOUNT: &str = "/sandbox";

/// Can the trixie root be made and used here (root, debootstrap, bwrap)? Outside CI a
/// missing piece skips (with a message); in CI it fails.
pub fn available() -> bool {
    if !is_root() {
        assert!(
            !in_ci(),
            "the trixie chroot tests need root (CI runs as root)"
        );
        eprintln!("SKIP: the trixie chroot needs root");
        return false;
    }
    require_tool("debootstrap") && require_tool("bwrap")
}

/// The root, made on first use (about 2 minutes) and reused afterwards.
pub fn root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let dir = target_dir().join("chroots");
        let root = dir.join("trixie");
        if fs::read_to_string(root.join(".pkgstash-root")).ok() == Some(stamp()) {
            return root;
        }
        fs::create_dir_all(&dir).expect("mkdir chroots");
        let building = dir.join(format!("trixie.new-{}", std::process::id()));
        let _ = fs::remove_dir_all(&building);
        let started = Instant::now();
        debootstrap(&building);
        eprintln!("trixie root made in {:.0?}", started.elapsed());
        // Another test process may have finished one meanwhile: either is fine.
        if fs::read_to_string(root.join(".pkgstash-root")).ok() != Some(stamp()) {
            let _ = fs::remove_dir_all(&root);
            fs::rename(&building, &root).expect("rename root into place");
        } else {
            let _ = fs::remove_dir_all(&building);
        }
        root
    })
}

/// The Debian mirror and proxy the host's apt uses: (mirror URL, proxy environment).
fn host_apt_source() -> (String, Vec<(String, String)>) {
    let proxies: Vec<(String, String)> = Command::new("apt-config")
        .arg("dump")
        .output()
        .map(|o| output_text(&o))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (key, value) = l.split_once(' ')?;
            let value = value.trim().trim_end_matches(';').trim_matches('"');
            let var = match key {
                "Acquire::http::Proxy" => "http_proxy",
                "Acquire::https::Proxy" => "https_proxy",
                _ => return None,
            };
            (!value.is_empty() && value != "DIRECT").then(|| (var.to_string(), value.to_string()))
        })
        .collect();
    if let Ok(m) = std::env::var("PKGSTASH_DEBIAN_MIRROR") {
        return (m, proxies);
    }
    // The first archive (not -security, not a third-party repo) in the host's sources.
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(rd) = fs::read_dir("/etc/apt/sources.list.d") {
        let mut more: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        more.sort();
        files.extend(more);
    }
    let is_archive = |uri: &str| uri.contains("debian") && !uri.contains("security");
    for f in files {
        let name = f.to_string_lossy().into_owned();
        let text = fs::read_to_string(&f).unwrap_or_default();
        let uri = if name.ends_with(".sources") {
            text.lines()
                .filter_map(|l| l.strip_prefix("URIs:"))
                .flat_map(|v| v.split_whitespace())
                .find(|u| is_archive(u))
                .map(str::to_string)
        } else if name.ends_with(".list") {
            text.lines()
                .filter(|l| l.starts_with("deb "))
                .flat_map(|l| l.split_whitespace())
                .find(|w| w.contains("://") && is_archive(w))
                .map(str::to_string)
        } else {
            None
        };
        if let Some(uri) = uri {
            return (uri, proxies);
        }
    }
    ("http://deb.debian.org/debian".to_string(), proxies)
}

fn debootstrap(dir: &Path) {
    let (mirror, proxies) = host_apt_source();
    eprintln!("debootstrap trixie from {mirror} {proxies:?}");
    must(
        Command::new("debootstrap")
            .arg("--variant=minbase")
            .arg(format!("--include={}", PACKAGES.join(",")))
            .arg("trixie")
            .arg(dir)
            .arg(&mirror)
            .envs(proxies)
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .stdin(Stdio::null()),
        "debootstrap trixie",
    );
    // pacman 7's DownloadUser, as Arch's pacman package creates it.
    must(
        Command::new("chroot").arg(dir).args([
            "useradd",
            "--system",
            "--no-create-home",
            "--home-dir",
            "/",
            "--shell",
            "/usr/sbin/nologin",
            "alpm",
        ]),
        "useradd alpm in the trixie root",
    );
    let _ = Command::new("chroot")
        .arg(dir)
        .args(["apt-get", "clean"])
        .status();
    fs::create_dir_all(dir.join(SANDBOX_MOUNT.trim_start_matches('/'))).expect("mkdir");
    fs::write(dir.join(".pkgstash-root"), stamp()).expect("stamp");
}

/// `bwrap … -- program`: `program` run in the root (read-only) with bubblewrap;
/// `sandbox`, if any, is bound read-write at [`SANDBOX_MOUNT`].
pub fn argv(sandbox: Option<&Path>, program: &str) -> Vec<OsString> {
    let mut v: Vec<OsString> = vec![
        "bwrap".into(),
        "--ro-bind".into(),
        root().into(),
        "/".into(),
    ];
    if let Some(s) = sandbox {
        v.extend(["--bind".into(), s.into(), SANDBOX_MOUNT.into()]);
    }
    v.extend(bwrap_tail(program));
    v
}

/// `program` run with bubblewrap in `root` (a [`copy`], writable), from `/`.
pub fn command_in(root: &Path, program: &str) -> Command {
    let mut c = Command::new("bwrap");
    c.arg("--bind").arg(root).arg("/").args(bwrap_tail(program));
    c
}

fn bwrap_tail(program: &str) -> Vec<OsString> {
    [
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--tmpfs",
        "/tmp",
        "--chdir",
        "/",
        "--die-with-parent",
        "--",
        program,
    ]
    .iter()
    .map(OsString::from)
    .collect()
}

/// A writable copy of the root (`cp -a`, about a second), for tests that install into it.
pub fn copy(dest: &Path) {
    must(
        Command::new("cp").arg("-a").arg(root()).arg(dest),
        "copy the trixie root",
    );
}
