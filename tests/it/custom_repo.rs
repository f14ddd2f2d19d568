//! Custom repos: uploads through the admin API and the CLI, dbs compared with the real
//! `repo-add`'s field by field, the real pacman syncing and installing from them, refused
//! uploads that leave the db untouched, and gpg signing.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::fixture::{make_pkg, repo_add, tools_available};
use crate::sandbox::Sandbox;
use crate::support::{assert_success, bin, client, get_body, must, require_tool, Pkgstash};

const TOKEN: &str = "repo-token-31337";

struct Setup {
    p: Pkgstash,
    repo_dir: tempfile::TempDir,
    pkgs: tempfile::TempDir,
}

fn start(extra: &str, env: &[(&str, &str)]) -> Setup {
    let repo_dir = tempfile::tempdir().expect("tempdir");
    let pkgs = tempfile::tempdir().expect("tempdir");
    let mut env = env.to_vec();
    env.push(("PKGSTASH_TOKEN", TOKEN));
    let p = Pkgstash::start_env(
        &format!(
            "[repos.custom]\npath = \"{}\"\narch = [\"x86_64\"]\n{extra}\n",
            repo_dir.path().display()
        ),
        &env,
    );
    Setup { p, repo_dir, pkgs }
}

impl Setup {
    fn pkg(&self, name: &str, version: &str, arch: &str, payload: usize, deps: &[&str]) -> PathBuf {
        make_pkg(self.pkgs.path(), name, version, arch, payload, deps)
    }

    fn upload_as(&self, file: &Path, filename: &str) -> (u16, String) {
        let data = std::fs::read(file).expect("read pkg");
        let r = client()
            .put(self.p.url(&format!(
                "/_pkgstash/api/repos/custom/packages?filename={}",
                filename.replace(':', "%3A").replace('+', "%2B")
            )))
            .header("Authorization", format!("Bearer {TOKEN}"))
            .body(data)
            .send()
            .expect("upload");
        (r.status().as_u16(), r.text().unwrap_or_default())
    }

    fn upload(&self, file: &Path) -> (u16, String) {
        let name = file.file_name().and_then(|n| n.to_str()).expect("name");
        self.upload_as(file, name)
    }

    fn get(&self, path: &str) -> (u16, Vec<u8>) {
        get_body(&self.p.url(path))
    }

    fn db(&self, kind: &str) -> Vec<u8> {
        let (s, b) = self.get(&format!("/custom/os/x86_64/custom.{kind}"));
        assert_eq!(s, 200, "custom.{kind}");
        b
    }

    fn cli(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(bin())
            .args(args)
            .arg("-c")
            .arg(&self.p.config_path)
            .env("PKGSTASH__LISTEN", self.p.addr.to_string())
            .env("PKGSTASH_TOKEN", TOKEN)
            .env("RUST_LOG", "warn")
            .output()
            .expect("run pkgstash");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    }
}

/// Members of a gzip'd db: path → text.
fn members(db: &[u8]) -> BTreeMap<String, String> {
    let gz = flate2::read::GzDecoder::new(db);
    let mut ar = tar::Archive::new(gz);
    let mut out = BTreeMap::new();
    for e in ar.entries().expect("entries") {
        let mut e = e.expect("entry");
        if e.header().entry_type().is_dir() {
            continue;
        }
        let path = e.path().expect("path").display().to_string();
        let mut text = String::new();
        e.read_to_string(&mut text).expect("text");
        out.insert(path, text);
    }
    out
}

#[test]
fn custom_repo_db_matches_repo_add_field_by_field() {
    if !tools_available() {
        return;
    }
    let s = start("", &[]);
    let pkgs = vec![
        s.pkg("libfoo", "1:2.0-1", "x86_64", 30_000, &[]),
        s.pkg("foo+bar", "1.0-1", "x86_64", 20_000, &["libfoo>=1:2.0"]),
        s.pkg("docs", "3.1-2", "any", 10_000, &[]),
    ];
    for p in &pkgs {
        let (code, body) = s.upload(p);
        assert_eq!(code, 200, "{body}");
    }
    // The same packages through the real repo-add.
    let ref_dir = tempfile::tempdir().expect("tempdir");
    let mut copies = Vec::new();
    for p in &pkgs {
        let dest = ref_dir.path().join(p.file_name().expect("name"));
        std::fs::copy(p, &dest).expect("copy");
        copies.push(dest);
    }
    repo_add(&ref_dir.path().join("custom.db.tar.gz"), &copies);
    for kind in ["db", "files"] {
        let ours = members(&s.db(kind));
        let theirs = members(
            &std::fs::read(ref_dir.path().join(format!("custom.{kind}.tar.gz"))).expect("ref"),
        );
        assert_eq!(
            ours.keys().collect::<Vec<_>>(),
            theirs.keys().collect::<Vec<_>>(),
            "{kind}: same members"
        );
        for (k, v) in &theirs {
            assert_eq!(&ours[k], v, "{kind}: member {k} differs from repo-add's");
        }
    }
    // The db is also reachable under its long name, and the package files are served.
    let (code, _) = s.get("/custom/os/x86_64/custom.db.tar.gz");
    assert_eq!(code, 200);
    let (code, body) = s.get("/custom/os/x86_64/libfoo-1%3A2.0-1-x86_64.pkg.tar.zst");
    assert_eq!(code, 200);
    assert_eq!(body, std::fs::read(&pkgs[0]).expect("pkg"));
    let (code, _) = s.get("/custom/os/aarch64/custom.db");
    assert_eq!(code, 404, "not a configured arch");
    let (code, _) = s.get("/custom/os/x86_64/../../etc/passwd");
    assert!(code == 400 || code == 404);
}

#[test]
fn custom_repo_real_pacman_syncs_and_installs() {
    if !tools_available() || !require_tool("pacman") {
        return;
    }
    let s = start("", &[]);
    let lib = s.pkg("libfoo", "1:2.0-1", "x86_64", 30_000, &[]);
    let app = s.pkg("app", "1.0-1", "x86_64", 10_000, &["libfoo>=1:2.0"]);
    for p in [&lib, &app] {
        let (code, body) = s.upload(p);
        assert_eq!(code, 200, "{body}");
    }
    let sb = Sandbox::new(
        &[("custom", &s.p.url("/custom/os/$arch"))],
        "Optional TrustAll",
    );
    let pacman = |args: &[&str]| sb.ok(args);
    pacman(&["-Sy"]);
    let info = pacman(&["-Si", "app"]);
    assert!(info.contains("Version         : 1.0-1"), "{info}");
    assert!(info.contains("Repository      : custom"), "{info}");
    pacman(&["-S", "app"]);
    let q = pacman(&["-Q"]);
    assert!(
        q.contains("app 1.0-1") && q.contains("libfoo 1:2.0-1"),
        "{q}"
    );
    assert!(sb.root().join("usr/share/app/data").is_file());
}

#[test]
fn custom_repo_refuses_bad_uploads_and_keeps_the_db() {
    if !tools_available() {
        return;
    }
    let s = start("max_upload = \"100KiB\"", &[]);
    let good = s.pkg("good", "1.0-1", "x86_64", 5_000, &[]);
    assert_eq!(s.upload(&good).0, 200);
    let db = s.db("db");
    let files = s.db("files");

    let garbage = s.pkgs.path().join("junk-1.0-1-x86_64.pkg.tar.zst");
    std::fs::write(&garbage, b"this is not a package at all").expect("write");
    let (code, body) = s.upload(&garbage);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("not a package archive"), "{body}");

    let (code, body) = s.upload_as(&good, "other-1.0-1-x86_64.pkg.tar.zst");
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("does not match"), "{body}");

    let (code, body) = s.upload_as(&good, "../evil.pkg.tar.zst");
    assert_eq!(code, 400, "{body}");

    let arm = s.pkg("armthing", "1.0-1", "aarch64", 1_000, &[]);
    let (code, body) = s.upload(&arm);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("aarch64"), "{body}");

    let big = s.pkg("big", "1.0-1", "x86_64", 300_000, &[]);
    let (code, body) = s.upload(&big);
    assert_eq!(code, 413, "{body}");

    let (code, _) = s.upload_as(&good, "good-1.0-1-x86_64.pkg.tar.zst.sig");
    assert_eq!(code, 400);

    // Nothing changed, nothing left behind.
    assert_eq!(s.db("db"), db);
    assert_eq!(s.db("files"), files);
    let leftovers: Vec<_> = std::fs::read_dir(s.repo_dir.path().join(".pkgstash"))
        .expect("dir")
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n != "state.json" && n != "dbs.stamp")
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let pool: Vec<_> = std::fs::read_dir(s.repo_dir.path().join("pool"))
        .expect("pool")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(pool, vec!["good-1.0-1-x86_64.pkg.tar.zst".to_string()]);
    // Without the token nothing is accepted.
    let r = client()
        .put(s.p.url("/_pkgstash/api/repos/custom/packages?filename=good-1.0-1-x86_64.pkg.tar.zst"))
        .body(std::fs::read(&good).expect("read"))
        .send()
        .expect("put");
    assert_eq!(r.status().as_u16(), 401);
}

#[test]
fn custom_repo_add_replace_remove_with_the_cli() {
    if !tools_available() {
        return;
    }
    let s = start("[cleanup]\nkeep_versions = 2\n", &[]);
    let v1 = s.pkg("tool", "1.0-1", "x86_64", 2_000, &[]);
    let v2 = s.pkg("tool", "1.1-1", "x86_64", 2_000, &[]);
    let v3 = s.pkg("tool", "2.0-1", "x86_64", 2_000, &[]);
    let path = |p: &Path| p.display().to_string();

    let (code, out, err) = s.cli(&["repo", "add", "custom", &path(&v1)]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("added tool 1.0-1"), "{out}");
    let (code, out, err) = s.cli(&["repo", "add", "custom", &path(&v2)]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("replacing 1.0-1"), "{out}");
    let (code, out, _) = s.cli(&["repo", "list", "custom"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("tool") && out.contains("1.1-1") && !out.contains("1.0-1"),
        "{out}"
    );
    let (code, out, err) = s.cli(&["repo", "add", "custom", &path(&v3), "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["replaced"], "1.1-1");
    assert_eq!(
        v["pruned"][0], "tool-1.0-1-x86_64.pkg.tar.zst",
        "keep_versions = 2"
    );
    let listed = members(&s.db("db"));
    assert_eq!(listed.keys().collect::<Vec<_>>(), vec!["tool-2.0-1/desc"]);

    let (code, out, err) = s.cli(&["repo", "remove", "custom", "tool"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("removed tool 2.0-1"), "{out}");
    assert!(members(&s.db("db")).is_empty());
    let (code, _, err) = s.cli(&["repo", "remove", "custom", "tool"]);
    assert_eq!(code, 1);
    assert!(err.contains("404"), "{err}");
    let (code, _, err) = s.cli(&["repo", "list", "nosuchrepo"]);
    assert_eq!(code, 1);
    assert!(err.contains("no repo named"), "{err}");

    // The state survives a restart. Dbs that match it are left alone (same file, same
    // Last-Modified: clients do not download them again); a missing one is regenerated.
    let (code, _, _) = s.cli(&["repo", "add", "custom", &path(&v2)]);
    assert_eq!(code, 0);
    let db = members(&s.db("db"));
    let db_file = s.repo_dir.path().join("x86_64/custom.db.tar.gz");
    let identity = |f: &Path| {
        use std::os::unix::fs::MetadataExt as _;
        let m = std::fs::metadata(f).expect("db file");
        (m.ino(), m.mtime(), m.mtime_nsec())
    };
    let before = identity(&db_file);
    let work = s.p.config_path.parent().expect("dir").to_path_buf();
    let cache = s.p.cache_dir.clone();
    let body = std::fs::read_to_string(&s.p.config_path).expect("config");
    let body = body.lines().skip(2).collect::<Vec<_>>().join("\n");
    // Kill `p`, start again on the same config and cache: the new server and its db's entries.
    let restart = |p: Pkgstash| {
        let p = Pkgstash::start_in(&work, &cache, &body, &[], p.kill9());
        let r = client()
            .get(p.url("/custom/os/x86_64/custom.db"))
            .send()
            .expect("get");
        let listed = members(&r.bytes().expect("db"));
        (p, listed)
    };
    let (p2, listed) = restart(s.p);
    assert_eq!(listed, db);
    assert_eq!(identity(&db_file), before, "not rewritten at start");
    assert!(!p2.log().contains("dbs regenerated"), "{}", p2.log());
    std::fs::remove_file(&db_file).expect("rm db");
    let (p3, listed) = restart(p2);
    assert_eq!(listed, db);
    assert!(p3.log().contains("(dbs regenerated)"), "{}", p3.log());
}

#[test]
fn custom_repo_signed_with_gpg_verifies() {
    if !tools_available() || !require_tool("gpg") {
        return;
    }
    let home = tempfile::tempdir().expect("gnupghome");
    let gh = home.path().display().to_string();
    must(
        Command::new("gpg").args([
            "--homedir",
            &gh,
            "--batch",
            "--passphrase",
            "",
            "--quick-gen-key",
            "pkgstash test <repo@example.org>",
            "ed25519",
            "sign",
            "never",
        ]),
        "gpg --quick-gen-key",
    );
    let s = start(
        "sign_key = \"repo@example.org\"",
        &[("GNUPGHOME", gh.as_str())],
    );
    let pkg = s.pkg("signed", "1.0-1", "x86_64", 3_000, &[]);
    let (code, body) = s.upload(&pkg);
    assert_eq!(code, 200, "{body}");
    let verify = |data: &[u8], sig: &[u8]| {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("f"), data).expect("write");
        std::fs::write(dir.path().join("f.sig"), sig).expect("write");
        let out = Command::new("gpg")
            .args(["--homedir", &gh, "--batch", "--verify"])
            .arg(dir.path().join("f.sig"))
            .arg(dir.path().join("f"))
            .output()
            .expect("gpg verify");
        out.status.success()
    };
    let db = s.db("db");
    let (code, db_sig) = s.get("/custom/os/x86_64/custom.db.sig");
    assert_eq!(code, 200);
    assert!(verify(&db, &db_sig), "db signature verifies");
    let (code, pkg_sig) = s.get("/custom/os/x86_64/signed-1.0-1-x86_64.pkg.tar.zst.sig");
    assert_eq!(code, 200);
    let pkg_bytes = std::fs::read(&pkg).expect("pkg");
    assert!(verify(&pkg_bytes, &pkg_sig), "package signature verifies");
    let mut tampered = pkg_bytes.clone();
    tampered[10] ^= 1;
    assert!(
        !verify(&tampered, &pkg_sig),
        "a tampered package does not verify"
    );
    let desc = members(&db).into_values().next().expect("one package");
    assert!(desc.contains("%PGPSIG%"), "{desc}");
}

/// A `.pkg.tar.zst` whose only member is `path` (of `kind`) claiming `size` bytes, which start
/// with `head` and go on as zeros: streamed through the `zstd` tool, never held in memory.
fn zstd_bomb(path: &str, kind: tar::EntryType, head: &[u8], size: u64) -> Vec<u8> {
    use std::io::Write;
    use std::process::Stdio;
    let mut zstd = Command::new("zstd")
        .args(["-q", "-1", "-c"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("zstd");
    let mut stdin = zstd.stdin.take().expect("stdin");
    let mut h = tar::Header::new_gnu();
    h.set_path(path).expect("path");
    h.set_size(size);
    h.set_mode(0o644);
    h.set_entry_type(kind);
    h.set_cksum();
    let head = head.to_vec();
    let writer = std::thread::spawn(move || {
        stdin.write_all(h.as_bytes()).expect("header");
        stdin.write_all(&head).expect("head");
        let zeros = vec![0u8; 1 << 20];
        let mut left = size - head.len() as u64;
        while left > 0 {
            let n = left.min(zeros.len() as u64) as usize;
            stdin.write_all(&zeros[..n]).expect("zeros");
            left -= n as u64;
        }
        stdin.write_all(&[0u8; 1024]).expect("end of archive");
    });
    let out = zstd.wait_with_output().expect("zstd output");
    writer.join().expect("writer");
    assert_success(&out, "zstd");
    out.stdout
}

#[test]
fn custom_repo_refuses_upload_bombs_with_400_and_bounded_memory() {
    if !tools_available() {
        return;
    }
    let s = start("", &[]);
    let upload = |bytes: Vec<u8>, name: &str| {
        let f = s.pkgs.path().join(name);
        std::fs::write(&f, bytes).expect("write bomb");
        s.upload_as(&f, name)
    };
    const BIG: u64 = 512 << 20;
    // A GNU long name of 512 MiB: the tar reader would hold it whole in memory.
    let name_bomb = zstd_bomb("././@LongLink", tar::EntryType::GNULongName, b"x", BIG);
    assert!(name_bomb.len() < 1 << 20, "{} bytes", name_bomb.len());
    let (code, body) = upload(name_bomb, "bomb-1-1-x86_64.pkg.tar.zst");
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("extension header"), "{body}");
    let peak = s.p.peak_rss();
    assert!(peak < 256 << 20, "pkgstash peaked at {peak} bytes");
    // A .PKGINFO that decompresses to 512 MiB: valid fields, then zeros.
    let info = b"pkgname = bomb\npkgver = 1-1\narch = x86_64\n";
    let info_bomb = zstd_bomb(".PKGINFO", tar::EntryType::Regular, info, BIG);
    let (code, body) = upload(info_bomb, "bomb-1-1-x86_64.pkg.tar.zst");
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains(".PKGINFO") && body.contains("limit"),
        "{body}"
    );
    let peak = s.p.peak_rss();
    assert!(peak < 256 << 20, "pkgstash peaked at {peak} bytes");
    let (code, out, err) = s.cli(&["repo", "list", "custom"]);
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("bomb"), "{out}");
}
