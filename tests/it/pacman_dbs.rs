//! Repo dbs with the real pacman, through pkgstash, in front of a real nginx mirror: signed dbs
//! (`DatabaseRequired`, a key made by `gpg` here) whose `.sig` stays in step with the db, a
//! repaired db that reaches clients, and a package re-published under the same file name.
//!
//! Run only these: `cargo test --test it pacman_e2e_db`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use crate::fixture::{tools_available, ArchMirror, PkgSpec};
use crate::nginx::Nginx;
use crate::sandbox::Sandbox;
use crate::support::{arch_config, bin, is_root, must, output_text, require_tool, Pkgstash};

const TOKEN: &str = "pacman-dbs-token";

fn e2e_tools() -> bool {
    let mut ok = tools_available();
    ok &= require_tool("pacman");
    ok &= require_tool("gpg");
    ok &= crate::nginx::available();
    ok &= is_root() || require_tool("fakeroot");
    ok
}

fn pkgstash(nginx: &Nginx, extra: &str) -> Pkgstash {
    Pkgstash::start_env(
        &arch_config("5s", &[nginx.url()], extra),
        &[("PKGSTASH_TOKEN", TOKEN)],
    )
}

fn sandbox(p: &Pkgstash, sig_level: &str) -> Sandbox {
    Sandbox::new(&[("core", &p.url("/arch/$repo/os/$arch"))], sig_level)
}

/// A signing key in its own GnuPG home, made for this test.
struct Signer {
    home: tempfile::TempDir,
}

impl Signer {
    fn new() -> Signer {
        let home = tempfile::tempdir().expect("gnupg home");
        let s = Signer { home };
        must(
            s.gpg().args([
                "--passphrase",
                "",
                "--quick-gen-key",
                "pkgstash db test <db@example.org>",
                "ed25519",
                "sign",
                "never",
            ]),
            "gpg --quick-gen-key",
        );
        s
    }

    fn gpg(&self) -> Command {
        let mut c = Command::new("gpg");
        c.arg("--homedir").arg(self.home.path()).arg("--batch");
        c
    }

    /// Sign `file` into `file.sig` (binary, detached: what pacman fetches).
    fn sign(&self, file: &Path) {
        let sig = PathBuf::from(format!("{}.sig", file.display()));
        must(
            self.gpg()
                .args(["--yes", "--detach-sign", "--no-armor", "-o"])
                .arg(&sig)
                .arg(file),
            "gpg --detach-sign",
        );
    }

    /// Put the public key in a pacman sandbox's keyring.
    fn trust_in(&self, sb: &Sandbox) {
        let key = self.home.path().join("pub.asc");
        must(
            self.gpg()
                .args(["--armor", "-o"])
                .arg(&key)
                .args(["--export", "db@example.org"]),
            "gpg --export",
        );
        // pacman looks for `pubring.gpg` (what `pacman-key --init` makes), not gpg's default
        // `pubring.kbx`: an existing empty one makes gpg import into it.
        let keyring = sb.root().join("gnupg");
        std::fs::write(keyring.join("pubring.gpg"), b"").expect("pubring.gpg");
        must(
            Command::new("gpg")
                .arg("--homedir")
                .arg(&keyring)
                .args(["--batch", "--import"])
                .arg(&key),
            "gpg --import",
        );
        let _ = Command::new("gpgconf")
            .arg("--homedir")
            .arg(&keyring)
            .args(["--kill", "gpg-agent"])
            .status();
    }
}

impl Drop for Signer {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .arg("--homedir")
            .arg(self.home.path())
            .args(["--kill", "gpg-agent"])
            .status();
    }
}

/// Sign core's `.db` and `.files` (the files behind repo-add's symlinks).
fn sign_core(mirror: &ArchMirror, signer: &Signer) {
    let dir = mirror.repo_dir("core");
    for db in ["core.db", "core.files"] {
        signer.sign(&dir.join(format!("{db}.tar.gz")));
        let link = dir.join(format!("{db}.sig"));
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(format!("{db}.tar.gz.sig"), &link).expect("symlink");
    }
}

/// Set the mtime of core's db files to `secs` seconds after the Unix epoch.
fn set_db_mtime(mirror: &ArchMirror, db: &str, secs: u64) {
    must(
        Command::new("touch")
            .arg("-d")
            .arg(format!("@{secs}"))
            .arg(mirror.repo_dir("core").join(db)),
        "touch",
    );
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[test]
fn pacman_e2e_db_and_signature_stay_in_step() {
    if !e2e_tools() {
        return;
    }
    let signer = Signer::new();
    let mut mirror = ArchMirror::new();
    mirror.add("core", &[PkgSpec::new("app", "1.0-1", 5_000)]);
    mirror.age_dbs("core", 60);
    sign_core(&mirror, &signer);
    let nginx = Nginx::serve(&mirror.root, "0");
    // The recipe, with db_max_age 4 s instead of 20 s.
    let p = pkgstash(&nginx, "db_max_age = \"4s\"");
    let sb = sandbox(&p, "PackageNever DatabaseRequired DatabaseTrustAll");
    signer.trust_in(&sb);
    sb.ok(&["-Syy"]);
    sb.ok(&["-Fyy"]);
    assert_eq!(sb.sync_version("app"), "1.0-1");

    std::thread::sleep(Duration::from_millis(4500));
    // A client that fetches only the dbs, not their signatures.
    for db in ["core.db", "core.files"] {
        let r = crate::support::client()
            .get(p.url(&format!("/arch/core/os/x86_64/{db}")))
            .send()
            .expect("get");
        assert_eq!(r.status().as_u16(), 200);
        r.bytes().expect("body");
    }
    // Upstream publishes v2 of both dbs and both signatures.
    mirror.add("core", &[PkgSpec::new("app", "1.1-1", 5_000)]);
    sign_core(&mirror, &signer);
    // pacman verifies every signature it gets against the db it got with it.
    sb.ok(&["-Syy"]);
    sb.ok(&["-Fyy"]);
    std::thread::sleep(Duration::from_millis(4500));
    sb.ok(&["-Syy"]);
    sb.ok(&["-Fyy"]);
    assert_eq!(sb.sync_version("app"), "1.1-1");
    sb.ok(&["-S", "app"]);
}

#[test]
fn pacman_e2e_db_repaired_upstream_reaches_clients() {
    if !e2e_tools() {
        return;
    }
    let mut mirror = ArchMirror::new();
    mirror.add("core", &[PkgSpec::new("app", "1.0-1", 5_000)]);
    let db = mirror.repo_dir("core").join("core.db.tar.gz");
    let good = std::fs::read(&db).expect("good db");
    // A broken sync left a db that lists a version that is not there.
    let mut broken_mirror = ArchMirror::new();
    broken_mirror.add("core", &[PkgSpec::new("app", "0.9-1", 5_000)]);
    let broken =
        std::fs::read(broken_mirror.repo_dir("core").join("core.db.tar.gz")).expect("broken db");
    let t = now_secs();
    std::fs::write(&db, &broken).expect("write");
    set_db_mtime(&mirror, "core.db.tar.gz", t - 60);
    let nginx = Nginx::serve(&mirror.root, "0");
    let p = pkgstash(&nginx, "db_max_age = \"1s\"");
    let sb = sandbox(&p, "Never");
    sb.ok(&["-Sy"]);
    assert_eq!(sb.sync_version("app"), "0.9-1");
    let out = sb.run(&["-S", "app"]);
    assert!(!out.status.success(), "0.9-1 is not on the mirror");

    // The mirror restores the good db, with its older date.
    std::fs::write(&db, &good).expect("write");
    set_db_mtime(&mirror, "core.db.tar.gz", t - 3600);
    std::thread::sleep(Duration::from_millis(1100));
    // pacman -Sy asks with the broken db's date: it must get the repaired db.
    sb.ok(&["-Sy"]);
    assert_eq!(
        sb.sync_version("app"),
        "1.0-1",
        "{}\n{:?}",
        p.log(),
        nginx.log()
    );
    sb.ok(&["-S", "app"]);
}

const FOO: &str = "foo-1.0-1-x86_64.pkg.tar.zst";

/// A new sandbox syncs and downloads foo: it gets exactly the mirror's current build.
fn pacman_gets_the_mirrors_build(p: &Pkgstash, mirror: &ArchMirror) {
    let sb = sandbox(p, "Never");
    sb.ok(&["-Sy"]);
    sb.ok(&["-Sw", "foo"]);
    let got = std::fs::read(sb.cache_file(FOO)).expect("in pacman's cache");
    let want = std::fs::read(mirror.pool_file(FOO)).expect("pool");
    assert!(got == want, "pacman got another build of {FOO}");
}

#[test]
fn pacman_e2e_db_republished_package_is_fetched_again() {
    if !e2e_tools() {
        return;
    }
    let mut mirror = ArchMirror::new();
    mirror.add("core", &[PkgSpec::new("foo", "1.0-1", 50_000)]);
    mirror.age_dbs("core", 60);
    let nginx = Nginx::serve(&mirror.root, "0");
    let p = pkgstash(&nginx, "db_max_age = \"1s\"\n[refresh]\nprefetch = false");
    pacman_gets_the_mirrors_build(&p, &mirror);

    // Rebuilt upstream with the same version: same file name, new size and sha256.
    mirror.add("core", &[PkgSpec::new("foo", "1.0-1", 60_000)]);
    std::thread::sleep(Duration::from_millis(1100));
    let out = output_text(&must(
        Command::new(bin())
            .args(["refresh", "-c"])
            .arg(&p.config_path)
            .env("PKGSTASH__LISTEN", p.addr.to_string())
            .env("PKGSTASH_TOKEN", TOKEN)
            .env("RUST_LOG", "warn"),
        "pkgstash refresh",
    ));
    pacman_gets_the_mirrors_build(&p, &mirror);
    assert!(
        out.contains(&format!("dropped arch/core/os/x86_64/{FOO}")),
        "refresh reports the re-published package:\n{out}"
    );
    assert!(out.contains("1 re-published files dropped"), "{out}");

    // Once more, noticed by a client's own -Sy (no refresh).
    mirror.add("core", &[PkgSpec::new("foo", "1.0-1", 70_000)]);
    std::thread::sleep(Duration::from_millis(1100));
    pacman_gets_the_mirrors_build(&p, &mirror);
}
