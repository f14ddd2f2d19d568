//! Real pacman packages and repo databases for tests: packages are `.pkg.tar.zst` archives
//! with a `.PKGINFO` (made with bsdtar + zstd), databases are made by the real `repo-add`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::require_tool;

/// Are bsdtar, zstd and repo-add available? (In CI a missing one panics.)
pub fn tools_available() -> bool {
    ["bsdtar", "zstd", "repo-add"]
        .iter()
        .all(|t| require_tool(t))
}

/// Build `name-version-arch.pkg.tar.zst` in `out_dir` with a payload of `payload` bytes.
/// Returns the package path.
pub fn make_pkg(
    out_dir: &Path,
    name: &str,
    version: &str,
    arch: &str,
    payload: usize,
    deps: &[&str],
) -> PathBuf {
    let work = tempfile::tempdir().expect("tempdir");
    let root = work.path();
    let data_dir = root.join("usr/share").join(name);
    std::fs::create_dir_all(&data_dir).expect("mkdir");
    let seed = name.len() as u64 * 31 + version.len() as u64;
    std::fs::write(
        data_dir.join("data"),
        crate::upstream::payload(payload, seed),
    )
    .expect("payload");
    let mut info = format!(
        "pkgname = {name}\npkgbase = {name}\npkgver = {version}\npkgdesc = test package {name}\nurl = https://example.org\nbuilddate = 1700000000\npackager = pkgstash tests\nsize = {payload}\narch = {arch}\nlicense = MIT\n"
    );
    for d in deps {
        info.push_str(&format!("depend = {d}\n"));
    }
    std::fs::write(root.join(".PKGINFO"), info).expect("pkginfo");
    let file = out_dir.join(format!("{name}-{version}-{arch}.pkg.tar.zst"));
    let tar = root.join("pkg.tar");
    let st = Command::new("bsdtar")
        .arg("-cf")
        .arg(&tar)
        .arg("-C")
        .arg(root)
        .args([".PKGINFO", "usr"])
        .status()
        .expect("bsdtar");
    assert!(st.success(), "bsdtar failed");
    let st = Command::new("zstd")
        .args(["-q", "-f", "-1"])
        .arg(&tar)
        .arg("-o")
        .arg(&file)
        .status()
        .expect("zstd");
    assert!(st.success(), "zstd failed");
    file
}

/// Run `repo-add` for `db` (e.g. `dir/core.db.tar.gz`) with `pkgs`.
pub fn repo_add(db: &Path, pkgs: &[PathBuf]) {
    let out = Command::new("repo-add")
        .arg("-q")
        .arg(db)
        .args(pkgs)
        .output()
        .expect("repo-add");
    assert!(
        out.status.success(),
        "repo-add failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A throw-away repo dir: packages and `core.db` (following repo-add's symlink).
pub struct Repo {
    pub dir: tempfile::TempDir,
}

impl Repo {
    pub fn new() -> Repo {
        Repo {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn add(&self, name: &str, version: &str, payload: usize) -> PathBuf {
        let p = make_pkg(self.path(), name, version, "x86_64", payload, &[]);
        repo_add(
            &self.path().join("core.db.tar.gz"),
            std::slice::from_ref(&p),
        );
        p
    }

    /// The current `core.db` bytes.
    pub fn db(&self) -> Vec<u8> {
        std::fs::read(self.path().join("core.db.tar.gz")).expect("db")
    }
}
