//! The AUR package installed, upgraded and removed by the real pacman (the host's 6.0,
//! `pacman -U --root ROOT --dbpath ROOT/var/lib/pacman`), then checked from the installed
//! tree.
//!
//! ROOT is a copy of the trixie root ([`crate::trixie`]): pacman runs the `.install`
//! scriptlet in a chroot into ROOT with ROOT's `/bin/sh`, so ROOT needs a shell and what the
//! scriptlet calls (`cat`, `systemd-sysusers`, `systemd-tmpfiles`); a Debian userland gives
//! all of them for real, where a bare directory would need stubs. No `bsdtar -x` shortcut:
//! pacman itself extracts, records the files and backup hashes, and writes `.pacnew` /
//! `.pacsave`. What Debian lacks are the Arch packages in `depends` (`glibc`, `gcc-libs`,
//! `xz`): empty stand-ins by those names are installed first, so pacman's dependency check
//! runs instead of being skipped with `-dd`. No ALPM hooks run (the root has none; on Arch,
//! systemd's hooks would run sysusers/tmpfiles again and daemon-reload).

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

use crate::fixture::make_pkg;
use crate::makepkg::built;
use crate::package_contents::UNITS;
use crate::pkgfiles::{pkg_file, read, read_bytes};
use crate::support::{must, output_text, require_tool, text};
use crate::trixie;

/// A root that pacman installs into.
struct Root {
    _dir: tempfile::TempDir,
    root: PathBuf,
    conf: PathBuf,
}

impl Root {
    fn new() -> Root {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("root");
        trixie::copy(&root);
        let r = root.display();
        for d in [
            "var/lib/pacman",
            "var/cache/pacman/pkg",
            "etc/pacman.d/hooks",
        ] {
            fs::create_dir_all(root.join(d)).expect("mkdir");
        }
        let conf = dir.path().join("pacman.conf");
        fs::write(
            &conf,
            format!(
                "[options]\nRootDir = {r}\nDBPath = {r}/var/lib/pacman/\n\
                 CacheDir = {r}/var/cache/pacman/pkg/\nLogFile = {r}/var/log/pacman.log\n\
                 GPGDir = {r}/etc/pacman.d/gnupg/\nHookDir = {r}/etc/pacman.d/hooks/\n\
                 Architecture = x86_64\nSigLevel = Never\nLocalFileSigLevel = Never\n"
            ),
        )
        .expect("pacman.conf");
        Root {
            _dir: dir,
            root,
            conf,
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// The host's pacman on this root, with a fresh `/proc` and `/dev` mounted in the root
    /// while it runs (bubblewrap, in a mount namespace of its own), as Arch's `pacstrap`
    /// mounts them before `pacman -r`: the scriptlet's `systemd-tmpfiles` refuses to work
    /// without /proc.
    fn pacman(&self, args: &[&str]) -> Output {
        Command::new("timeout")
            .args(["-k", "5", "300", "bwrap", "--bind", "/", "/", "--proc"])
            .arg(self.root.join("proc"))
            .arg("--dev")
            .arg(self.root.join("dev"))
            .args(["--die-with-parent", "--", "pacman", "--config"])
            .arg(&self.conf)
            .arg("--root")
            .arg(&self.root)
            .arg("--dbpath")
            .arg(self.root.join("var/lib/pacman"))
            .args(["--noconfirm", "--color", "never"])
            .args(args)
            .args(
                args.first()
                    .filter(|a| !a.starts_with("-Q"))
                    .map(|_| "--noprogressbar"),
            )
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .output()
            .expect("run pacman")
    }

    /// pacman must succeed without an error or a warning other than `allowed` ones;
    /// returns its output, the root's path taken out of file names.
    fn pacman_ok(&self, args: &[&str], allowed: &[&str]) -> String {
        let out = self.pacman(args);
        // Paths as in the installed system (pacman prints them with the root in front).
        let msg = output_text(&out).replace(&self.root.display().to_string(), "");
        assert!(out.status.success(), "pacman {args:?} failed:\n{msg}");
        for line in msg.lines() {
            let bad = line.starts_with("error")
                || (line.starts_with("warning") && !allowed.contains(&line))
                || line.contains("not found");
            assert!(!bad, "pacman {args:?}: {line:?}\n{msg}");
        }
        msg
    }

    /// `usr/bin/pkgstash check-config -c etc/pkgstash/pkgstash.toml` from `/` of the
    /// installed tree (in it, with bubblewrap): its output.
    fn check_config(&self) -> String {
        let out = must(
            trixie::command_in(&self.root, "usr/bin/pkgstash")
                .args(["check-config", "-c", "etc/pkgstash/pkgstash.toml"])
                .env_remove("PKGSTASH_CONFIG")
                .env_remove("PKGSTASH_TOKEN"),
            "installed pkgstash check-config of the installed config",
        );
        text(&out.stdout)
    }
}

/// The lines `func` of the install scriptlet prints (its `cat <<'MSG'` text).
fn scriptlet_message(func: &str) -> Vec<String> {
    let script = read(&pkg_file("arch/pkgstash.install"));
    let body = script
        .split(&format!("\n{func}() {{\n"))
        .nth(1)
        .unwrap_or_else(|| panic!("no {func}() in pkgstash.install"));
    let msg = body
        .split("<<'MSG'\n")
        .nth(1)
        .and_then(|m| m.split("\nMSG\n").next())
        .unwrap_or_else(|| panic!("no message in {func}()"));
    msg.lines().map(str::to_string).collect()
}

fn assert_printed(out: &str, func: &str) {
    for line in scriptlet_message(func) {
        assert!(
            out.lines().any(|l| l == line),
            "pacman did not print {func}'s {line:?}:\n{out}"
        );
    }
}

/// `(mode & 0o7777, uid, gid)`.
fn stat(path: &Path) -> (u32, u32, u32) {
    let m = fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (m.mode() & 0o7777, m.uid(), m.gid())
}

/// Install, upgrade over an edited config, remove: what an Arch user does with the AUR
/// package, and what they must find each time.
#[test]
fn packaging_aur_package_installs_upgrades_and_removes_with_pacman() {
    if !trixie::available() || !require_tool("pacman") || !crate::makepkg::tools() {
        return;
    }
    // debootstrap (network, dpkg) and the release compile (CPU) overlap.
    let making_root = std::thread::spawn(|| {
        trixie::root();
    });
    let Some(b) = built() else { return };
    making_root.join().expect("making the trixie root failed");
    let version = env!("CARGO_PKG_VERSION");
    let started = Instant::now();
    let root = Root::new();

    // Stand-ins for the Arch packages the Debian userland provides.
    let stand_ins = tempfile::tempdir().expect("tempdir");
    let mut args = vec!["-U".to_string()];
    for name in ["glibc", "gcc-libs", "xz"] {
        let p = make_pkg(stand_ins.path(), name, "1-1", "x86_64", 16, &[]);
        args.push(p.display().to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    root.pacman_ok(&args, &[]);

    // 1. Install.
    let pkg = b.pkg.display().to_string();
    let out = root.pacman_ok(&["-U", &pkg], &[]);
    assert_printed(&out, "post_install");
    let q = root.pacman_ok(&["-Q", "pkgstash"], &[]);
    assert_eq!(q.trim(), format!("pkgstash {version}-{}", b.pkgrel));
    // pacman's own check of every installed file against the package's mtree.
    root.pacman_ok(&["-Qkk", "pkgstash"], &[]);

    let effective = root.check_config();
    assert!(
        effective.contains("cache_dir = \"/var/cache/pkgstash\""),
        "{effective}"
    );
    assert_eq!(stat(&root.path("etc/pkgstash/pkgstash.env")), (0o600, 0, 0));
    assert_eq!(
        stat(&root.path("etc/pkgstash/pkgstash.toml")),
        (0o644, 0, 0)
    );
    assert_eq!(stat(&root.path("usr/bin/pkgstash")).0, 0o755);
    let same = |installed: &str, ours: PathBuf| {
        assert!(
            read_bytes(&root.path(installed)) == read_bytes(&ours),
            "{installed} is not {}",
            ours.display()
        );
    };
    for unit in UNITS {
        same(
            &format!("usr/lib/systemd/system/{unit}"),
            pkg_file(&format!("systemd/{unit}")),
        );
    }
    same(
        "usr/lib/sysusers.d/pkgstash.conf",
        pkg_file("systemd/pkgstash.sysusers"),
    );
    same(
        "usr/lib/tmpfiles.d/pkgstash.conf",
        pkg_file("systemd/pkgstash.tmpfiles"),
    );
    same(
        "etc/pkgstash/pkgstash.toml",
        crate::pkgfiles::repo().join("config/pkgstash.toml"),
    );
    same(
        &format!(
            "var/lib/pacman/local/pkgstash-{version}-{}/install",
            b.pkgrel
        ),
        pkg_file("arch/pkgstash.install"),
    );

    // The scriptlet ran the real systemd-sysusers and systemd-tmpfiles in the root.
    let passwd = read(&root.path("etc/passwd"));
    let user: Vec<&str> = passwd
        .lines()
        .find(|l| l.starts_with("pkgstash:"))
        .unwrap_or_else(|| panic!("post_install made no pkgstash user:\n{passwd}"))
        .split(':')
        .collect();
    let uid: u32 = user[2].parse().expect("uid");
    assert!(uid > 0 && uid < 1000, "a system user: {uid}");
    let cache = root.path("var/cache/pkgstash");
    assert!(cache.is_dir(), "post_install made no /var/cache/pkgstash");
    assert_eq!(stat(&cache).0, 0o750);
    assert_eq!(stat(&cache).1, uid, "the cache dir belongs to pkgstash");
    eprintln!("install checks in {:.1?}", started.elapsed());

    // 2. The user edits both config files (as the post_install message says), then the
    //    next package release (pkgrel + 1, with a changed sample config) is installed.
    let toml_path = root.path("etc/pkgstash/pkgstash.toml");
    let edited =
        read(&toml_path).replace("listen = \"0.0.0.0:7878\"", "listen = \"127.0.0.1:7878\"");
    assert!(
        edited.contains("127.0.0.1:7878"),
        "the sample config has no listen line"
    );
    fs::write(&toml_path, &edited).expect("edit pkgstash.toml");
    let env_path = root.path("etc/pkgstash/pkgstash.env");
    let token = "PKGSTASH_TOKEN=00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    let env_edited = read(&env_path).replace("PKGSTASH_TOKEN=\n", &format!("{token}\n"));
    assert!(
        env_edited.contains(token),
        "the sample env has no empty token line"
    );
    fs::write(&env_path, &env_edited).expect("edit pkgstash.env");

    let started = Instant::now();
    let bumped = b.bumped.display().to_string();
    let out = root.pacman_ok(
        &["-U", &bumped],
        &["warning: /etc/pkgstash/pkgstash.toml installed as /etc/pkgstash/pkgstash.toml.pacnew"],
    );
    assert!(
        out.contains("/etc/pkgstash/pkgstash.toml installed as /etc/pkgstash/pkgstash.toml.pacnew"),
        "pacman must say it wrote a .pacnew:\n{out}"
    );
    assert_printed(&out, "post_upgrade");
    let q = root.pacman_ok(&["-Q", "pkgstash"], &[]);
    assert_eq!(q.trim(), format!("pkgstash {version}-{}", b.pkgrel + 1));
    assert_eq!(read(&toml_path), edited, "the user's pkgstash.toml is kept");
    let new_sample = text(
        &must(
            Command::new("bsdtar")
                .arg("-xOf")
                .arg(&b.bumped)
                .arg("etc/pkgstash/pkgstash.toml"),
            "read the new sample",
        )
        .stdout,
    );
    assert_ne!(
        new_sample,
        read(&crate::pkgfiles::repo().join("config/pkgstash.toml"))
    );
    assert_eq!(
        read(&root.path("etc/pkgstash/pkgstash.toml.pacnew")),
        new_sample,
        "the new sample arrives as .pacnew"
    );
    // The env file did not change in the package: the user's stays, no .pacnew.
    assert_eq!(read(&env_path), env_edited);
    assert_eq!(stat(&env_path), (0o600, 0, 0));
    assert!(!root.path("etc/pkgstash/pkgstash.env.pacnew").exists());
    assert!(root
        .check_config()
        .contains("listen = [\"127.0.0.1:7878\"]"));

    // 3. Remove: the edited configs are saved as .pacsave, the cache and the user stay.
    let out = root.pacman_ok(
        &["-R", "pkgstash"],
        &[
            "warning: /etc/pkgstash/pkgstash.toml saved as /etc/pkgstash/pkgstash.toml.pacsave",
            "warning: /etc/pkgstash/pkgstash.env saved as /etc/pkgstash/pkgstash.env.pacsave",
        ],
    );
    assert_printed(&out, "post_remove");
    assert!(!root.path("usr/bin/pkgstash").exists());
    assert_eq!(
        read(&root.path("etc/pkgstash/pkgstash.toml.pacsave")),
        edited
    );
    assert_eq!(
        read(&root.path("etc/pkgstash/pkgstash.env.pacsave")),
        env_edited
    );
    assert!(cache.is_dir(), "removal keeps the cache");
    assert!(
        read(&root.path("etc/passwd")).contains("\npkgstash:"),
        "and the user"
    );
    eprintln!("upgrade and removal checks in {:.1?}", started.elapsed());
}
