//! Real pacman packages and repo databases for tests: packages are `.pkg.tar.zst` archives
//! with a `.PKGINFO` (made with bsdtar + zstd), databases are made by the real `repo-add`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{must, require_tool};

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
    let seed = name
        .bytes()
        .chain(version.bytes())
        .fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
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
    // The same .MTREE makepkg writes: gzip'd mtree of the package's files.
    must(
        Command::new("bsdtar").current_dir(root).args([
            "-czf",
            ".MTREE",
            "--format=mtree",
            "--options=!all,use-set,type,uid,gid,mode,time,size,md5,sha256,link",
            ".PKGINFO",
            "usr",
        ]),
        "bsdtar (mtree)",
    );
    let tar = root.join("pkg.tar");
    must(
        Command::new("bsdtar")
            .arg("-cf")
            .arg(&tar)
            .arg("-C")
            .arg(root)
            .args([".PKGINFO", ".MTREE", "usr"]),
        "bsdtar",
    );
    must(
        Command::new("zstd")
            .args(["-q", "-f", "-1"])
            .arg(&tar)
            .arg("-o")
            .arg(&file),
        "zstd",
    );
    file
}

/// Run `repo-add` for `db` (e.g. `dir/core.db.tar.gz`) with `pkgs`.
pub fn repo_add(db: &Path, pkgs: &[PathBuf]) {
    must(
        Command::new("repo-add").arg("-q").arg(db).args(pkgs),
        "repo-add",
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

/// One package of a synthetic mirror.
#[derive(Debug, Clone)]
pub struct PkgSpec {
    pub name: &'static str,
    pub version: &'static str,
    pub arch: &'static str,
    pub payload: usize,
    pub deps: &'static [&'static str],
}

impl PkgSpec {
    pub const fn new(name: &'static str, version: &'static str, payload: usize) -> PkgSpec {
        PkgSpec {
            name,
            version,
            arch: "x86_64",
            payload,
            deps: &[],
        }
    }

    /// The package's file name, as pacman requests it.
    pub fn file_name(&self) -> String {
        format!("{}-{}-{}.pkg.tar.zst", self.name, self.version, self.arch)
    }
}

/// A real Arch mirror tree, laid out like the real ones:
/// `pool/packages/<file>` holds the packages, `<repo>/os/x86_64/<file>` are symlinks to them,
/// `<repo>/os/x86_64/<repo>.db` (+ `.files`) are made by `repo-add`, `lastsync` at the top.
pub struct ArchMirror {
    pub root: PathBuf,
    /// (repo, package file name) of every package added so far.
    pub packages: Vec<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl ArchMirror {
    /// A new empty mirror in a temp dir.
    pub fn new() -> ArchMirror {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut m = Self::at(dir.path());
        m._dir = Some(dir);
        m
    }

    /// A new empty mirror at `root` (created; the caller owns its lifetime).
    pub fn at(root: &Path) -> ArchMirror {
        std::fs::create_dir_all(root.join("pool/packages")).expect("mkdir pool");
        ArchMirror {
            root: root.to_path_buf(),
            packages: Vec::new(),
            _dir: None,
        }
    }

    /// `<root>/<repo>/os/x86_64`.
    pub fn repo_dir(&self, repo: &str) -> PathBuf {
        self.root.join(repo).join("os/x86_64")
    }

    /// Build packages into the pool, link them into `repo` and add them to its db.
    pub fn add(&mut self, repo: &str, specs: &[PkgSpec]) {
        let dir = self.repo_dir(repo);
        std::fs::create_dir_all(&dir).expect("mkdir repo");
        let pool = self.root.join("pool/packages");
        let mut links = Vec::new();
        for s in specs {
            let built = make_pkg(&pool, s.name, s.version, s.arch, s.payload, s.deps);
            let name = built
                .file_name()
                .and_then(|n| n.to_str())
                .expect("name")
                .to_string();
            let link = dir.join(&name);
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(format!("../../../pool/packages/{name}"), &link)
                .expect("symlink");
            links.push(link);
            self.packages.push((repo.to_string(), name));
        }
        repo_add(&dir.join(format!("{repo}.db.tar.gz")), &links);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        std::fs::write(self.root.join("lastsync"), format!("{now}\n")).expect("lastsync");
    }

    /// Path of a package file in the pool.
    pub fn pool_file(&self, name: &str) -> PathBuf {
        self.root.join("pool/packages").join(name)
    }

    /// Set the mtime of a repo's databases (so a rebuilt db has a later Last-Modified).
    pub fn age_dbs(&self, repo: &str, secs: u64) {
        let dir = self.repo_dir(repo);
        for f in [format!("{repo}.db.tar.gz"), format!("{repo}.files.tar.gz")] {
            must(
                Command::new("touch")
                    .arg("-d")
                    .arg(format!("{secs} seconds ago"))
                    .arg(dir.join(f)),
                "touch",
            );
        }
    }
}
