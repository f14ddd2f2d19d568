//! The release: `scripts/release.sh` run in a throw-away snapshot repository of the working
//! tree (tracked and untracked-but-not-ignored files as one commit, tagged `vVERSION`, so
//! uncommitted work is what gets tested and the real repository is never tagged). It must
//! pin the tarball it made in the PKGBUILD and `.SRCINFO`, and makepkg must check that pin.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::makepkg::{as_user, built, hand_over, unprivileged};
use crate::pkgfiles::{pkg_file, pkgbuild_var, read, repo};
use crate::support::{must, require_tool, sha256_hex, text};

/// Files of the working tree that a release would hold: git's view (tracked, and untracked
/// but not ignored, so uncommitted work is what gets tested) when there is a git checkout,
/// else a walk without `.git`, `target` and `cache`.
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

fn git(dir: &Path) -> Command {
    let mut c = Command::new("git");
    // A fixed identity and date: the same tree gives the same commit, hence the same
    // `git archive` bytes, and cargo's cache holds between runs (see `source_date_epoch`).
    c.arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=pkgstash tests",
            "-c",
            "user.email=tests@localhost",
        ])
        .env("GIT_AUTHOR_DATE", "2024-01-01T00:00:00Z")
        .env("GIT_COMMITTER_DATE", "2024-01-01T00:00:00Z");
    c
}

/// A git repository at `dir` holding the working tree's files as one commit tagged
/// `v<version>`, and `scripts/release.sh <version> <srcdest>` run in it. Returns the
/// tarball's path.
pub fn release(dir: &Path, version: &str, srcdest: &Path) -> PathBuf {
    for rel in source_files() {
        let to = dir.join(&rel);
        fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
        fs::copy(repo().join(&rel), &to).unwrap_or_else(|e| panic!("copy {}: {e}", rel.display()));
    }
    must(git(dir).args(["init", "-q"]), "git init");
    must(git(dir).args(["add", "-A"]), "git add");
    must(
        git(dir).args(["commit", "-q", "-m", "snapshot"]),
        "git commit",
    );
    must(git(dir).args(["tag", &format!("v{version}")]), "git tag");
    let out = must(
        Command::new(dir.join("scripts/release.sh"))
            .arg(version)
            .arg(srcdest)
            .current_dir(dir)
            .stdin(Stdio::null()),
        "scripts/release.sh",
    );
    eprintln!("{}", text(&out.stdout));
    srcdest.join(format!("pkgstash-{version}.tar.gz"))
}

/// `scripts/release.sh` pins the tarball it made from the tag: `pkgver`, one real sha256 (no
/// `SKIP`), the release-asset URL, and a `.SRCINFO` equal to `makepkg --printsrcinfo`;
/// makepkg verified that sum before building, and refuses a tarball that differs by a byte.
#[test]
fn packaging_release_script_pins_the_source() {
    let Some(b) = built() else { return };
    let version = env!("CARGO_PKG_VERSION");
    let sum = sha256_hex(&fs::read(&b.tarball).expect("tarball"));
    assert_eq!(pkgbuild_var(&b.pkgbuild, "pkgver"), version);
    assert!(
        b.pkgbuild
            .lines()
            .any(|l| l == format!("sha256sums=('{sum}')")),
        "release.sh must write the tarball's sha256:\n{}",
        b.pkgbuild
    );
    assert!(!b.pkgbuild.contains("SKIP"), "no SKIP after release.sh");
    let url = pkgbuild_var(&b.pkgbuild, "url");
    for line in [
        format!("\tsha256sums = {sum}"),
        format!("\tsource = {url}/releases/download/v{version}/pkgstash-{version}.tar.gz"),
        format!("\tpkgver = {version}"),
    ] {
        assert!(
            b.srcinfo.lines().any(|l| l == line),
            "{line:?} in:\n{}",
            b.srcinfo
        );
    }
    let who = as_user();
    let out = must(
        unprivileged(who, "makepkg")
            .arg("--printsrcinfo")
            .current_dir(&b.arch_dir),
        "makepkg --printsrcinfo",
    );
    assert_eq!(
        text(&out.stdout),
        b.srcinfo,
        ".SRCINFO written by release.sh"
    );

    // The tarball is `git archive` of the tag, under pkgstash-VERSION/.
    let list = text(
        &must(
            Command::new("bsdtar").arg("-tzf").arg(&b.tarball),
            "bsdtar -t",
        )
        .stdout,
    );
    let prefix = format!("pkgstash-{version}/");
    assert!(list.lines().all(|l| l.starts_with(&prefix)), "{list}");
    for f in [
        "Cargo.lock",
        "src/main.rs",
        "packaging/arch/pkgstash.install",
        "LICENSE",
    ] {
        assert!(
            list.lines().any(|l| l == format!("{prefix}{f}")),
            "{f} in the tarball"
        );
    }
    assert!(!list.contains("/target/"), "no build output in the tarball");

    // release.sh refuses a version without its tag, and a tag whose Cargo.toml disagrees.
    let snapshot = b
        .arch_dir
        .parent()
        .and_then(Path::parent)
        .expect("snapshot");
    let release_sh = |version: &str| {
        let out = Command::new(snapshot.join("scripts/release.sh"))
            .arg(version)
            .arg(snapshot.join("dist"))
            .current_dir(snapshot)
            .stdin(Stdio::null())
            .output()
            .expect("release.sh");
        (out.status.code(), text(&out.stderr))
    };
    let (code, err) = release_sh("9.9.9");
    assert!(
        code == Some(1) && err.contains("no tag v9.9.9"),
        "{code:?} {err}"
    );
    must(
        Command::new("git")
            .arg("-C")
            .arg(snapshot)
            .args(["tag", "v9.9.9"]),
        "git tag",
    );
    let (code, err) = release_sh("9.9.9");
    assert!(
        code == Some(1) && err.contains(&format!("says version \"{version}\", not \"9.9.9\"")),
        "{code:?} {err}"
    );
    assert!(
        !snapshot.join("dist").exists(),
        "no tarball for a refused version"
    );

    // makepkg checked the sum on the real build ...
    assert!(
        b.log.contains("Validating source files with sha256sums")
            && b.log
                .contains(&format!("pkgstash-{version}.tar.gz ... Passed")),
        "makepkg must verify the tarball:\n{}",
        b.log
    );
    // ... and a tarball that is not the release's fails it.
    let dir = tempfile::tempdir().expect("tempdir");
    let (start, srcdest) = (dir.path().join("start"), dir.path().join("srcdest"));
    fs::create_dir_all(&start).expect("mkdir");
    fs::create_dir_all(&srcdest).expect("mkdir");
    for f in ["PKGBUILD", "pkgstash.install"] {
        fs::copy(b.arch_dir.join(f), start.join(f)).expect("copy");
    }
    let mut bytes = fs::read(&b.tarball).expect("tarball");
    bytes.extend_from_slice(&[0; 512]);
    fs::write(srcdest.join(format!("pkgstash-{version}.tar.gz")), bytes).expect("write");
    hand_over(who, dir.path());
    let out = unprivileged(who, "makepkg")
        .args(["--verifysource", "--nocolor"])
        .current_dir(&start)
        .env("SRCDEST", &srcdest)
        .stdin(Stdio::null())
        .output()
        .expect("makepkg --verifysource");
    let msg = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        !out.status.success() && msg.contains("FAILED"),
        "makepkg must refuse a tarball with another checksum:\n{msg}"
    );
}

/// The committed `.SRCINFO` is what `makepkg --printsrcinfo` makes of the committed PKGBUILD
/// (the AUR reads it).
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
